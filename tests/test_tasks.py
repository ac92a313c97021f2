"""Tasks and their data: the IDX reader, Fashion-MNIST, task specs, the sampler, task loading."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusionnag.evaluators.datasets import FASHION_MNIST_DIR, load_dataset
from diffusionnag.evaluators.idx import read_idx
from diffusionnag.evaluators.tasks import (
    TaskSampler,
    TaskSpec,
    check_task,
    load_task,
    source_dataset,
    task_images,
)


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    """``array`` (uint8) in the IDX format."""
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, 0x08, array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_idx_folder(root: Path, train: int = 50, test: int = 20, classes: int = 5) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", images, gz=True)
        write_idx(root / f"{split}-labels-idx1-ubyte", np.arange(n) % classes)
    return root


def require_fashion_mnist() -> None:
    """Skip without the Debian package's files; fail instead on CI, where .ci/run installs it."""
    if not FASHION_MNIST_DIR.is_dir():
        message = f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} (dataset-fashion-mnist)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def test_idx_reader_reads_plain_and_gzip_files(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", array)), array)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b.gz", array, gz=True)), array)


def test_idx_reader_names_the_corrupt_file(tmp_path: Path) -> None:
    array = np.zeros((4, 3, 3), dtype=np.uint8)
    good = write_idx(tmp_path / "good", array).read_bytes()
    cases = {
        "magic": (b"\x01\x02" + good[2:], "bad magic number"),
        "short": (good[:-5], r"shape \(4, 3, 3\) needs 36 bytes of data, found 31"),
        "header": (good[:6], "header of 3 dimensions is truncated"),
        "gzip": (gzip.compress(good)[:-9], "corrupt gzip stream"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=f"IDX file {path} .*{message}"):
            read_idx(path)


def test_idx_folder_keeps_its_test_split_and_draws_a_stratified_valid_split(
    tmp_path: Path,
) -> None:
    root = write_idx_folder(tmp_path / "idx")
    data = load_dataset(f"idx:{root}")
    assert (len(data.train), len(data.valid), len(data.test)) == (40, 10, 20)
    assert data.num_classes == 5 and data.resolution == 6 and data.in_channels == 1
    assert torch.bincount(data.valid.labels).tolist() == [2] * 5
    assert torch.equal(data.test.labels, torch.arange(20) % 5)
    again, other = load_dataset(f"idx:{root}"), load_dataset(f"idx:{root}", seed=1)
    assert torch.equal(again.valid.images, data.valid.images)
    assert not torch.equal(other.valid.images, data.valid.images)


def test_idx_folder_errors(tmp_path: Path) -> None:
    root = write_idx_folder(tmp_path / "idx")
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError, match="lacks t10k-labels-idx1-ubyte"):
        load_dataset(f"idx:{root}")
    write_idx(root / "t10k-labels-idx1-ubyte", np.zeros(7))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte holds uint8 \(7,\), not 20"):
        load_dataset(f"idx:{root}")
    with pytest.raises(ValueError, match="'idx:' needs a path"):
        load_dataset("idx:")


def test_fashion_mnist_from_the_debian_package() -> None:
    require_fashion_mnist()
    data = source_dataset("fashion-mnist")
    assert (len(data.train), len(data.valid), len(data.test)) == (48_000, 12_000, 10_000)
    assert data.train.images.shape[1:] == (1, 28, 28)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    assert torch.bincount(data.valid.labels).tolist() == [1200] * 10


def test_task_spec_round_trip_name_and_errors() -> None:
    spec = TaskSpec("digits", (7, 1, 3), per_class=20, resolution=16, seed=5)
    assert spec.classes == (1, 3, 7)
    assert spec.name == "digits/c1-3-7/n20/r16/s5"
    assert TaskSpec.from_json(spec.to_json()) == spec
    assert spec.to_json()["classes"] == [1, 3, 7]
    with pytest.raises(ValueError, match="two or more distinct class indices"):
        TaskSpec("digits", (1, 1), 20, 16, 0)
    with pytest.raises(ValueError, match="resolution must be 4 to 64 px"):
        TaskSpec("digits", (0, 1), 20, 2, 0)
    no_seed = {k: v for k, v in spec.to_json().items() if k != "seed"}
    with pytest.raises(ValueError, match=r"missing \['seed'\], unknown \['colour'\]"):
        TaskSpec.from_json({**no_seed, "colour": 1})
    with pytest.raises(ValueError, match=r"mistyped field\(s\) per_class, classes"):
        TaskSpec.from_json({**spec.to_json(), "per_class": "20", "classes": [1, 2.5]})


def test_sampler_is_seeded_and_varies_every_axis() -> None:
    sampler = TaskSampler("digits", resolutions=(8, 16), max_per_class=100, seed=3)
    specs = sampler.sample(40)
    assert specs == sampler.sample(40)
    assert specs != TaskSampler("digits", resolutions=(8, 16), max_per_class=100).sample(40)
    assert len({s.name for s in specs}) == 40
    assert {s.resolution for s in specs} == {8, 16}
    counts = {len(s.classes) for s in specs}
    assert min(counts) == 2 and max(counts) >= 8
    sizes = [s.per_class for s in specs]
    assert 20 <= min(sizes) < 35 and 60 < max(sizes) <= 100


def test_sampler_refuses_what_the_source_cannot_give() -> None:
    with pytest.raises(ValueError, match="2 to 11 classes asked, but 'digits' has 10"):
        TaskSampler("digits", max_classes=11).sample(1)
    with pytest.raises(ValueError, match=r"up to 300 training images per class.*lower"):
        TaskSampler("digits").sample(1)
    with pytest.raises(ValueError, match="2 <= min <= max"):
        TaskSampler("digits", min_classes=4, max_classes=3)


def test_load_task_draws_standardised_class_balanced_splits() -> None:
    spec = TaskSpec("digits", (0, 4, 9), per_class=25, resolution=16, seed=1, eval_per_class=10)
    task = load_task.__wrapped__(spec)
    assert task.name == spec.name and task.num_classes == 3 and task.resolution == 16
    assert task.train.images.shape == (75, 1, 16, 16)
    assert torch.bincount(task.train.labels).tolist() == [25, 25, 25]
    assert torch.bincount(task.valid.labels).tolist() == [10, 10, 10]
    assert torch.bincount(task.test.labels).tolist() == [10, 10, 10]
    assert abs(float(task.train.images.mean())) < 1e-4
    assert float(task.train.images.std()) == pytest.approx(1.0, abs=1e-3)
    again = load_task.__wrapped__(spec)
    assert torch.equal(again.train.images, task.train.images)
    other = load_task.__wrapped__(TaskSpec("digits", (0, 4, 9), 25, 16, seed=2, eval_per_class=10))
    assert not torch.equal(other.train.images, task.train.images)
    images = task_images(spec)
    assert [tuple(i.shape) for i in images] == [(25, 1, 16, 16)] * 3
    assert torch.equal(torch.cat(images), task.train.images[task.train.labels.argsort(stable=True)])


def test_check_task_errors() -> None:
    digits = source_dataset("digits")
    with pytest.raises(ValueError, match="class 12 does not exist in 'digits', which has 10"):
        check_task(TaskSpec("digits", (0, 12), 20, 8, 0), digits)
    with pytest.raises(ValueError, match="1000 training images per class asked"):
        check_task(TaskSpec("digits", (0, 1), 1000, 8, 0), digits)


def test_load_task_gives_the_same_tensors_whatever_the_thread_count() -> None:
    """A pool worker (one thread) and a CLI parent (all cores) must build identical tasks."""
    spec = TaskSpec("digits", (0, 4, 9), per_class=100, resolution=16, seed=1, eval_per_class=30)
    previous = torch.get_num_threads()
    built = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            source_dataset.cache_clear()
            built.append(load_task.__wrapped__(spec))
    finally:
        torch.set_num_threads(previous)
        source_dataset.cache_clear()
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(built[0], split).images, getattr(built[1], split).images)
