"""Score-model training: it learns, checkpoints reload exactly, and resume is exact."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from diffusionnag.diffusion.losses import dsm_loss
from diffusionnag.diffusion.model import (
    CONFIG_FILE,
    MODEL_FILE,
    STATE_FILE,
    ScoreModel,
    ScoreTrainConfig,
    build_score_model,
    load_score_model,
    read_config,
    train_score_model,
    training_architectures,
)
from diffusionnag.diffusion.score_net import ScoreNetConfig
from diffusionnag.io import atomic_write

TINY = ScoreTrainConfig(
    network=ScoreNetConfig(hidden=16, layers=1, heads=2),
    steps=60,
    batch_size=32,
    lr=5e-2,
    checkpoint_every=25,
)


def _seeded(function, *args, **kwargs):
    """Run with torch's global RNG pinned: the trainer initialises weights from it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return function(*args, **kwargs)


def _train(config: ScoreTrainConfig, out: Path, **kwargs) -> ScoreModel:
    return _seeded(train_score_model, config, out, device="cpu", progress=False, **kwargs)


def _eval_loss(model: ScoreModel, x0: torch.Tensor) -> float:
    with torch.no_grad():
        generator = torch.Generator().manual_seed(123)
        return sum(dsm_loss(model.network, model.sde, x0, generator).item() for _ in range(8)) / 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScoreModel, Path]:
    out = tmp_path_factory.mktemp("score") / "run"
    return _train(TINY, out), out


def test_training_reduces_the_dsm_loss(trained: tuple[ScoreModel, Path]) -> None:
    model, _ = trained
    initial = _seeded(build_score_model, TINY)
    archs = training_architectures(model.space, TINY)
    x0 = model.space.encode(archs[::61])  # 257 fixed cells
    before, after = _eval_loss(initial, x0), _eval_loss(model, x0)
    assert before > 40  # an untrained network predicts about zero: E|z|^2 = 56
    assert after < 0.6 * before


def test_checkpoint_files_and_exact_reload(trained: tuple[ScoreModel, Path]) -> None:
    model, out = trained
    assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, MODEL_FILE, STATE_FILE]
    assert json.loads((out / CONFIG_FILE).read_text()) == dataclasses.asdict(TINY)
    assert read_config(out) == TINY
    assert torch.load(out / STATE_FILE, weights_only=True)["step"] == TINY.steps
    reloaded = load_score_model(out, device="cpu")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 8, 7, generator=generator)
    t = torch.rand(5, generator=generator)
    with torch.no_grad():
        assert torch.equal(reloaded.score_fn()(x, t), model.score_fn()(x, t))
    assert not reloaded.network.training


def _tensors(value, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint dict, by path."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return {}
    found: dict[str, torch.Tensor] = {}
    for key, item in items:
        found.update(_tensors(item, f"{prefix}/{key}"))
    return found


def test_interrupted_then_resumed_run_is_identical(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, steps=12, checkpoint_every=5, batch_size=16)
    _train(config, tmp_path / "interrupted", stop_after=7)
    assert torch.load(tmp_path / "interrupted" / STATE_FILE, weights_only=True)["step"] == 7
    # A different global RNG state must not matter once the weights come from the checkpoint.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(99)
        train_score_model(config, tmp_path / "interrupted", device="cpu", progress=False)
    _train(config, tmp_path / "straight")
    for name in (STATE_FILE, MODEL_FILE):
        resumed = _tensors(torch.load(tmp_path / "interrupted" / name, weights_only=True))
        straight = _tensors(torch.load(tmp_path / "straight" / name, weights_only=True))
        assert resumed.keys() == straight.keys() and len(resumed) > 10
        for key, tensor in straight.items():
            assert torch.equal(resumed[key], tensor), f"{name}{key} differs after resume"


def test_same_config_gives_the_same_weights(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, steps=2)
    first = train_score_model(config, tmp_path / "a", device="cpu", progress=False)
    second = train_score_model(config, tmp_path / "b", device="cpu", progress=False)
    for key, tensor in first.network.state_dict().items():
        assert torch.equal(second.network.state_dict()[key], tensor)


def test_resume_with_different_settings_raises(trained: tuple[ScoreModel, Path]) -> None:
    _, out = trained
    with pytest.raises(ValueError, match="different settings"):
        train_score_model(dataclasses.replace(TINY, lr=1e-3), out, device="cpu", progress=False)


@pytest.fixture
def checkpoint_copy(trained: tuple[ScoreModel, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[1], tmp_path / "copy"))


def test_corrupt_weights_name_the_file(checkpoint_copy: Path) -> None:
    (checkpoint_copy / MODEL_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"model\.pt is corrupt or not a checkpoint"):
        load_score_model(checkpoint_copy, device="cpu")


def test_missing_files_are_named(checkpoint_copy: Path) -> None:
    (checkpoint_copy / MODEL_FILE).unlink()
    with pytest.raises(ValueError, match=r"model\.pt is missing"):
        load_score_model(checkpoint_copy, device="cpu")
    (checkpoint_copy / CONFIG_FILE).unlink()
    with pytest.raises(ValueError, match=r"not a score-model checkpoint folder: config\.json"):
        load_score_model(checkpoint_copy, device="cpu")


def test_corrupt_or_mismatched_config_is_named(checkpoint_copy: Path) -> None:
    config_path = checkpoint_copy / CONFIG_FILE
    config_path.write_text("{ truncated")
    with pytest.raises(ValueError, match=r"config\.json is corrupt"):
        load_score_model(checkpoint_copy, device="cpu")
    config_path.write_text(json.dumps({**dataclasses.asdict(TINY), "colour": "blue"}))
    with pytest.raises(ValueError, match=r"config\.json has unknown field\(s\) colour"):
        load_score_model(checkpoint_copy, device="cpu")
    bigger = dataclasses.replace(TINY, network=ScoreNetConfig(hidden=32, layers=1, heads=2))
    config_path.write_text(json.dumps(dataclasses.asdict(bigger)))
    with pytest.raises(ValueError, match=r"model\.pt do not fit its config"):
        load_score_model(checkpoint_copy, device="cpu")


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.json"
    atomic_write(target, lambda p: p.write_text("first"))
    assert target.read_text() == "first"

    def fail_halfway(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail_halfway)
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]
