"""A user's own images (``train:folder:PATH``): the default protocol trains in SGD steps, the
protocol is recorded, transfer reads the images, and a run at chance says so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusionnag.cli import main
from diffusionnag.evaluators.base import EvalResult
from diffusionnag.evaluators.datasets import load_dataset
from diffusionnag.evaluators.registry import (
    DEFAULT_TRAIN_STEPS,
    BenchmarkSpec,
    TargetSettings,
    build_target,
    train_config,
)
from diffusionnag.evaluators.train_config import TrainConfig, steps_per_epoch
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.search.chance import chance_margin, chance_warning
from diffusionnag.search.history import History
from diffusionnag.search.journal import journal_epochs
from diffusionnag.search.run import run_header
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.defaults import SHIPPED_IMAGES, default_meta_predictor

CLASSES, PER_CLASS, SIZE = 3, 30, 16
CHEAP_CELL = (
    "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|"
    "+|skip_connect~0|avg_pool_3x3~1|skip_connect~2|"
)


def _write_folder(root: Path, *, learnable: bool, seed: int = 0) -> Path:
    """``CLASSES`` x ``PER_CLASS`` PNGs. Learnable: each class a stripe orientation (vertical,
    horizontal, diagonal) of random period, phase and colour under pixel noise; else noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for label in range(CLASSES):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(PER_CLASS):
            if learnable:
                direction = (xx, yy, xx + yy)[label]
                stripes = np.sin(2 * np.pi * direction / rng.uniform(3, 6) + rng.uniform(0, 6.3))
                pixels = rng.uniform(60, 190, 3) + 50 * stripes[..., None]
                pixels = pixels + rng.normal(0, 25, (SIZE, SIZE, 3))
            else:
                pixels = rng.uniform(0, 255, (SIZE, SIZE, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(folder / f"{index:02d}.png")
    return root


@pytest.fixture(scope="module")
def learnable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("folder") / "stripes", learnable=True)


@pytest.fixture(scope="module")
def noise(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_folder(tmp_path_factory.mktemp("folder") / "noise", learnable=False, seed=1)


def test_train_config_validation_names_the_field() -> None:
    for field in ("epochs", "steps", "batch_size", "num_threads"):
        with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be at least 1"):
            TrainConfig(**{field: 0})


def test_steps_raise_epochs_for_small_training_sets_only() -> None:
    assert steps_per_epoch(54, 64) == 1
    assert steps_per_epoch(65, 64) == 1  # a last batch of one image is skipped, not a step
    assert steps_per_epoch(66, 64) == 2
    config = TrainConfig(epochs=4, steps=200)
    assert config.for_train_size(54).epochs == 200
    assert config.for_train_size(1078).epochs == math.ceil(200 / 17)
    assert config.for_train_size(60_000).epochs == 4  # 3,752 steps already
    assert TrainConfig(epochs=4).for_train_size(54) == TrainConfig(epochs=4)


def test_default_length_by_kind_and_explicit_epochs() -> None:
    train = train_config(BenchmarkSpec.parse("train:folder:x"), None, seed=3)
    assert (train.epochs, train.steps, train.seed) == (4, DEFAULT_TRAIN_STEPS, 3)
    task = train_config(BenchmarkSpec.parse("task:digits/c0-1/n5/r8/s0"), None)
    assert (task.epochs, task.steps) == (2, None)  # the meta-dataset protocol
    given = train_config(BenchmarkSpec.parse("train:folder:x"), 7)
    assert (given.epochs, given.steps) == (7, None)


def test_protocol_records_steps_and_keeps_the_old_form_without(learnable: Path) -> None:
    data = load_dataset(f"folder:{learnable}")
    stepped = TrainingEvaluator(data, TrainConfig(epochs=1, steps=3, device="cpu"))
    protocol = stepped.protocol()
    assert (protocol["train"]["epochs"], protocol["train"]["steps"]) == (3, 3)
    assert protocol["sgd_steps"] == 3 and protocol["data"]["sizes"] == [54, 18, 18]
    cell = NB201Space().from_string(CHEAP_CELL)
    assert stepped.evaluate(cell).epochs == 3
    plain = TrainingEvaluator(data, TrainConfig(epochs=2, device="cpu")).protocol()
    assert "steps" not in plain["train"] and "sgd_steps" not in plain  # journals before steps


def _search(folder: Path, out: Path, *extra: str) -> int:
    argv = ["search", "--benchmark", f"train:folder:{folder}", "--strategy", "random",
            "--budget", "1", "--device", "cpu", "--quiet", "--out", str(out), *extra]  # fmt: skip
    return main(argv)


def test_default_protocol_trains_a_small_folder_above_chance(learnable: Path) -> None:
    """The default ``train:`` protocol: 200 steps where 4 epochs were 4 steps (cell with cheap
    operations, so the test takes seconds; the stem and reductions hold 3x3 convolutions)."""
    spec = BenchmarkSpec.parse(f"train:folder:{learnable}")
    space = NB201Space()
    settings = TargetSettings(train=train_config(spec, None, device="cpu"))
    target = build_target(spec, settings, space)
    header = run_header(get_strategy("random", space), target.evaluator, space, 1, 1)
    assert header["protocol"]["train"]["steps"] == DEFAULT_TRAIN_STEPS
    assert header["protocol"]["sgd_steps"] == DEFAULT_TRAIN_STEPS  # one step an epoch
    result = target.evaluator.evaluate(space.from_string(CHEAP_CELL))
    assert result.epochs == DEFAULT_TRAIN_STEPS
    assert result.value > 100 / CLASSES + chance_margin(CLASSES, 18)
    history = History(space)
    history.record(space.from_string(CHEAP_CELL), result)
    assert chance_warning(history, target) is None


def test_chance_warning_fires_on_noise_in_one_line(
    noise: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    assert _search(noise, out, "--epochs", "2") == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "diffusionnag: warning: every evaluated cell scored at chance (33.3 %) on "
        f"train:folder:{noise}: the protocol trained 2 SGD steps (2 epochs of 54 training "
        "images); pass --epochs 8 (more steps) or add images"
    ]
    assert json.loads(out.read_text())["warnings"] == [lines[0].split("warning: ", 1)[1]]


def test_chance_warning_threshold(learnable: Path) -> None:
    assert chance_margin(3, 18) == pytest.approx(100 * math.sqrt(2 / 9 / 18))
    assert chance_margin(10, 100_000) == 2.0
    space = NB201Space()
    settings = TargetSettings(train=TrainConfig(epochs=1, device="cpu"))
    target = build_target(BenchmarkSpec.parse(f"train:folder:{learnable}"), settings, space)
    cell = space.from_string(CHEAP_CELL)

    def history(value: float) -> History:
        record = History(space)
        record.record(cell, EvalResult(value=value, dataset="stripes", split="valid"))
        return record

    assert chance_warning(history(44.0), target) is not None  # 8 of 18 is within noise
    assert chance_warning(history(50.0), target) is None
    assert chance_warning(History(space), target) is None


def test_transfer_on_a_folder_reads_its_images(
    learnable: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = NB201Space()
    settings = TargetSettings(train=TrainConfig(epochs=1, device="cpu"))
    target = build_target(BenchmarkSpec.parse(f"train:folder:{learnable}"), settings, space)
    assert default_meta_predictor(target).name == SHIPPED_IMAGES
    out = tmp_path / "transfer.json"
    argv = ["transfer", "--benchmark", f"train:folder:{learnable}", "--budget", "1",
            "--epochs", "1", "--candidates", "3", "--round-samples", "30", "--steps", "5",
            "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    transfer = json.loads(out.read_text())["transfer"]
    assert Path(transfer["meta_predictor"]).name == SHIPPED_IMAGES
    assert "2 epochs" in transfer["labels"] and "Fashion-MNIST" in transfer["labels"]
    assert transfer["labels"] in printed


def test_resume_without_epochs_keeps_the_journals_length(
    noise: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    assert _search(noise, out, "--epochs", "2") == 0
    assert journal_epochs(out.with_suffix(".jsonl")) == 2
    assert _search(noise, out, "--resume") == 0  # not the default's 200 steps: no mismatch
    assert "error" not in capsys.readouterr().err
    stepped = tmp_path / "stepped.jsonl"
    header = {"type": "header", "protocol": {"train": {"epochs": 200, "steps": 200}}}
    stepped.write_text(json.dumps(header) + "\n")
    assert journal_epochs(stepped) is None and journal_epochs(tmp_path / "none.jsonl") is None
