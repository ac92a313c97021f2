"""The images encoder's feature extractors: the shipped pretrained one and its config field."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusionnag.diffusion.sde import build_sde
from diffusionnag.evaluators.datasets import FASHION_MNIST_DIR
from diffusionnag.predictors import extractor as extractors
from diffusionnag.predictors.extractor import (
    ASSET,
    ConvFeatures,
    PretrainConfig,
    RandomConvFeatures,
    build_extractor,
    load_pretrained,
    pretrain_extractor,
    read_extractor,
    resize,
    save_extractor,
)
from diffusionnag.predictors.meta import MetaPredictor, MetaPredictorConfig
from diffusionnag.predictors.task_encoders import TaskData
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.defaults import ASSETS
from diffusionnag.transfer.meta_train import (
    CONFIG_FILE,
    load_meta_predictor,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import MetaDataset, MetaTask

SPACE = NB201Space()
SDE = build_sde("ve", sigma_min=0.05, sigma_max=5.0)
SMALL = {"hidden": 16, "layers": 2, "task_dim": 16}


def _shipped() -> ConvFeatures:
    extractor = build_extractor("fmnist")
    load_pretrained(extractor)
    return extractor


def test_shipped_extractor_loads_and_is_deterministic() -> None:
    config, state = read_extractor(ASSET)
    assert config.resolutions == (8, 12, 16) and config.features == 64
    first, second = _shipped(), _shipped()
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)
    assert not any(p.requires_grad for p in first.parameters())  # frozen in meta-training
    images = torch.randn(6, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for resolution in (8, 12, 16, 28):
            x = resize(images, resolution)
            features = first(x)
            assert features.shape == (6, 128) and torch.isfinite(features).all()
            torch.testing.assert_close(second(x), features, rtol=0, atol=0)
            # colour input: channels are averaged, so three equal channels read as grey
            torch.testing.assert_close(first(x.expand(-1, 3, -1, -1)), features)


def _nearest_mean_accuracy(extractor: torch.nn.Module, images, labels) -> float:
    """Nearest class mean over standardised features: half the images fit, half are scored."""
    with torch.no_grad():
        features = extractor(images)
    features = (features - features.mean(0)) / features.std(0).clamp_min(1e-6)
    fit, score = np.arange(len(labels)) % 2 == 0, np.arange(len(labels)) % 2 == 1
    means = torch.stack([features[fit][labels[fit] == c].mean(0) for c in range(10)])
    predicted = torch.cdist(features[score], means).argmin(1)
    return float((predicted == labels[score]).float().mean())


def test_shipped_extractor_separates_unseen_fashion_mnist_classes_better_than_random() -> None:
    """On validation images (never trained on), at each task resolution."""
    if not FASHION_MNIST_DIR.is_dir():
        message = f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} (dataset-fashion-mnist)"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from diffusionnag.evaluators.tasks import source_dataset

    valid = source_dataset("fashion-mnist").valid
    images, labels = valid.images[:2000], valid.labels[:2000]
    trained, seeded = _shipped(), build_extractor("random")
    for resolution in (8, 12, 16):
        small = resize(images, resolution)
        trained_accuracy = _nearest_mean_accuracy(trained, small, labels)
        # measured: 0.75 / 0.76 / 0.76 against 0.71 / 0.70 / 0.68 at 8 / 12 / 16 px
        assert trained_accuracy > _nearest_mean_accuracy(seeded, small, labels) + 0.03
        assert trained_accuracy > 0.7  # chance: 0.1


def _stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: horizontal stripes, class 1: vertical, at random phases, plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    phase = torch.randint(0, 8, (n, 1, 1), generator=generator)
    rows = ((torch.arange(16)[None, :, None] + phase) // 4 % 2).float().expand(n, 16, 16)
    images = torch.where(labels[:, None, None] == 0, rows, rows.transpose(1, 2))
    return (images + 0.3 * torch.randn(n, 16, 16, generator=generator))[:, None], labels


def test_pretraining_is_seeded_and_learns(tmp_path: Path) -> None:
    images, labels = _stripes(64, seed=0)
    config = PretrainConfig(features=8, resolutions=(8, 16), steps=40, batch_size=16, lr=1e-2)
    first, head = pretrain_extractor(images, labels, config)
    second, _ = pretrain_extractor(images, labels, config)
    for name, tensor in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[name], tensor, rtol=0, atol=0)
    test_images, test_labels = _stripes(32, seed=1)
    with torch.no_grad():
        for resolution in (8, 16):
            logits = head(first(resize(test_images, resolution)))
            assert (logits.argmax(1) == test_labels).float().mean() > 0.9
    save_extractor(first, config, {"note": "test"}, tmp_path)
    loaded = build_extractor("fmnist", features=8)
    load_pretrained(loaded, tmp_path)
    torch.testing.assert_close(loaded(test_images), first(test_images), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"holds a 8-feature extractor, not this one"):
        load_pretrained(build_extractor("fmnist"), tmp_path)


def test_a_corrupt_extractor_asset_is_one_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "extractor.json").write_text('{"config": {"features": 1}}')
    with pytest.raises(ValueError, match=r"extractor.json is corrupt: .*features must be an int"):
        read_extractor(tmp_path)
    with pytest.raises(ValueError, match=r"extractor asset .*missing"):
        read_extractor(tmp_path / "nowhere")


@pytest.mark.parametrize("name", ["random", "fmnist"])
def test_images_encoder_is_permutation_invariant_with_each_extractor(name: str) -> None:
    torch.manual_seed(0)
    config = MetaPredictorConfig(encoder="images", extractor=name, **SMALL)
    network = MetaPredictor(SPACE, config, pretrained=True).eval()
    images = torch.randn(4, 6, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    within = torch.stack([task[torch.randperm(6)] for task in images])
    shuffled = within[torch.tensor([2, 0, 3, 1])]
    with torch.no_grad():
        first = network.encode_task(TaskData(images=images))
        second = network.encode_task(TaskData(images=shuffled))
        other = network.encode_task(TaskData(images=images.flip(-1)))
    torch.testing.assert_close(first, second, atol=1e-5, rtol=1e-5)
    assert (first - other).abs().max() > 1e-4  # the images matter


def test_the_random_extractor_is_the_seeded_one() -> None:
    network = MetaPredictor(SPACE, MetaPredictorConfig(encoder="images", seed=3, **SMALL))
    expected = RandomConvFeatures(64, seed=3).state_dict()
    state = network.task_encoder.extractor.state_dict()
    assert state.keys() == expected.keys() == {"kernels.0", "kernels.1"}
    for key in expected:
        torch.testing.assert_close(state[key], expected[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"encoder": "images", "extractor": "imagenet"},
            "field 'config.extractor': unknown extractor 'imagenet'; known: fmnist, random",
        ),
        ({"encoder": "images", "extractor": 3}, "field 'config.extractor' must be a string, got 3"),
        (
            {"encoder": "evaluations", "extractor": "fmnist"},
            r"field 'config.extractor' \('fmnist'\) is for the images encoder, not 'evaluations'",
        ),
    ],
)
def test_bad_extractor_in_a_saved_config_is_one_line_naming_file_and_field(
    tmp_path: Path, config: dict, message: str
) -> None:
    folder = tmp_path / "meta"
    folder.mkdir()
    shipped = ASSETS / "meta-nb201-fmnist-images" / CONFIG_FILE
    header = json.loads(shipped.read_text())
    header["config"].update(config)
    (folder / CONFIG_FILE).write_text(json.dumps(header))
    with pytest.raises(ValueError) as error:
        load_meta_predictor(folder, "cpu")
    text = str(error.value)
    assert "\n" not in text
    assert text.startswith(f"{folder / CONFIG_FILE}: field 'config.extractor'")
    assert re.search(message, text)


OLD_SHIPPED = ["meta-nb201-no-ImageNet16-120", "meta-nb201-no-cifar10", "meta-nb201-no-cifar100",
               "meta-nb201-tables"]  # fmt: skip
"""Shipped before the field existed."""


@pytest.mark.parametrize("name", OLD_SHIPPED)
def test_shipped_configs_without_the_field_load_with_the_random_extractor(name: str) -> None:
    header = json.loads((ASSETS / name / CONFIG_FILE).read_text())
    assert "extractor" not in header["config"]
    predictor = load_meta_predictor(ASSETS / name, "cpu")
    assert predictor.config.extractor == "random"


def _image_tasks(num: int) -> list[MetaTask]:
    rng = np.random.default_rng(0)
    archs = SPACE.sample(30, np.random.default_rng(1))
    generator = torch.Generator().manual_seed(0)
    return [
        MetaTask(
            f"fake{i}",
            archs,
            rng.normal(size=len(archs)),
            images=[torch.randn(5, 1, 8, 8, generator=generator) for _ in range(3)],
        )
        for i in range(num)
    ]


def test_a_meta_trained_predictor_carries_its_extractor_and_loads_without_the_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = MetaPredictorConfig(
        encoder="images", extractor="fmnist", steps=3, queries_per_task=8, per_class=4, **SMALL
    )
    dataset = MetaDataset("nb201", _image_tasks(2))
    predictor = train_meta_predictor(SPACE, SDE, dataset, config, device="cpu")
    _, shipped = read_extractor(ASSET)
    trained = predictor.network.task_encoder.extractor.state_dict()
    for key in shipped:  # started from the asset, untouched by meta-training (weight decay too)
        torch.testing.assert_close(trained[key], shipped[key], rtol=0, atol=0)
    save_meta_predictor(predictor, tmp_path / "meta")

    def refuse(*args: object) -> None:
        raise AssertionError("loading a meta-predictor must not read the extractor asset")

    monkeypatch.setattr(extractors, "read_extractor", refuse)
    loaded = load_meta_predictor(tmp_path / "meta", "cpu")
    assert loaded.config.extractor == "fmnist"
    state = loaded.network.task_encoder.extractor.state_dict()
    for key in shipped:
        torch.testing.assert_close(state[key], shipped[key], rtol=0, atol=0)
    images = TaskData(images=torch.randn(3, 4, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(loaded.embed([images]), predictor.embed([images]))
