"""Datasets from local files: split sizes, stratification, determinism and every user error."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusionnag.evaluators.datasets import (
    load_cifar,
    load_dataset,
    load_digits,
    load_image_folder,
)
from diffusionnag.evaluators.image_data import stratified_split


def test_stratified_split_is_a_seeded_partition_with_class_proportions() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 5])
    parts = stratified_split(labels, (0.6, 0.2, 0.2), np.random.default_rng(1))
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    assert [np.bincount(labels[p], minlength=3).tolist() for p in parts] == [
        [6, 12, 3],
        [2, 4, 1],
        [2, 4, 1],
    ]
    again = stratified_split(labels, (0.6, 0.2, 0.2), np.random.default_rng(1))
    other = stratified_split(labels, (0.6, 0.2, 0.2), np.random.default_rng(2))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not np.array_equal(parts[0], other[0])


def test_digits_split_sizes_stratification_and_normalisation() -> None:
    data = load_digits(seed=0)
    assert (len(data.train), len(data.valid), len(data.test)) == (1079, 359, 359)
    assert data.train.images.shape == (1079, 1, 8, 8)
    assert (data.num_classes, data.in_channels, data.resolution) == (10, 1, 8)
    assert data.train.labels.dtype == torch.int64 and data.skipped_files == 0
    for split, share in ((data.train, 0.6), (data.valid, 0.2), (data.test, 0.2)):
        counts = torch.bincount(split.labels, minlength=10).float()
        assert torch.all((counts / len(split) - 0.1).abs() < 0.01), share
    assert data.train.images.mean().abs() < 1e-4
    assert (data.train.images.std() - 1).abs() < 1e-3


def test_digits_split_is_stable_and_seeded() -> None:
    first, second, other = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(first.valid.images, second.valid.images)
    assert torch.equal(first.test.labels, second.test.labels)
    assert not torch.equal(first.valid.labels, other.valid.labels)


def _write_png(path: Path, colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    for i in range(5):
        _write_png(tmp_path / "cat" / f"{i}.png", (200, 10 * i, 0), (10, 6))
        _write_png(tmp_path / "dog" / f"{i}.png", (0, 10 * i, 200), (5, 7))
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "dog" / "notes.txt").write_text("not an image, ignored")
    return tmp_path


def test_image_folder_loads_resizes_and_counts_corrupt_files(image_folder: Path) -> None:
    data = load_image_folder(image_folder, resolution=4, seed=0)
    assert data.classes == ("cat", "dog") and data.num_classes == 2
    assert data.skipped_files == 1
    assert (data.in_channels, data.resolution) == (3, 4)
    assert (len(data.train), len(data.valid), len(data.test)) == (6, 2, 2)
    assert data.train.images.shape == (6, 3, 4, 4)
    for split in (data.train, data.valid, data.test):
        assert torch.bincount(split.labels).tolist() == [len(split) // 2] * 2
    # cats are red and dogs blue: after normalisation the red channel still separates them
    red = data.train.images[:, 0].mean(dim=(1, 2))
    assert torch.all(red[data.train.labels == 0] > red[data.train.labels == 1].max())
    again = load_dataset(f"folder:{image_folder}", resolution=4, seed=0)
    assert torch.equal(again.test.images, data.test.images)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no class subfolders with image files"):
        load_image_folder(tmp_path)
    for i in range(3):
        _write_png(tmp_path / "only" / f"{i}.png", (1, 2, 3), (4, 4))
    with pytest.raises(ValueError, match="single class"):
        load_image_folder(tmp_path)
    broken = tmp_path.parent / f"{tmp_path.name}_broken"
    for name in ("a", "b"):
        (broken / name).mkdir(parents=True)
        (broken / name / "x.jpg").write_bytes(b"\x00\x01")
    with pytest.raises(ValueError, match="none of the 2 image files"):
        load_image_folder(broken)


def _write_cifar10(root: Path, per_batch: int) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_from_python_batches(tmp_path: Path) -> None:
    _write_cifar10(tmp_path, per_batch=20)
    data = load_dataset("cifar10", tmp_path)
    assert (len(data.train), len(data.valid), len(data.test)) == (80, 20, 20)
    assert data.train.images.shape == (80, 3, 32, 32)
    assert data.num_classes == 10
    direct = load_cifar("cifar10", tmp_path / "cifar-10-batches-py")
    assert torch.equal(direct.valid.images, data.valid.images)


def test_dataset_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cifar10 not found.*data_batch_1"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(ValueError, match=r"cifar100 not found.*cifar-100-python"):
        load_dataset("cifar100", tmp_path)
    with pytest.raises(ValueError, match="needs a root directory"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="'folder:' needs a path"):
        load_dataset("folder:")
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; valid: digits, folder:PATH"):
        load_dataset("mnist")
