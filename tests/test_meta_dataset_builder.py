"""``meta-dataset build``: the plan, rows readable as a meta-dataset with task images, one writer,
kill -9 and resume onto exactly the uninterrupted rows, and one error line for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_tasks import write_idx_folder

from diffusionnag.cli import main
from diffusionnag.diffusion.sde import build_sde
from diffusionnag.evaluators.tasks import TaskSpec
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.predictors.task_encoders import TaskData, sample_class_images
from diffusionnag.spaces import get_space
from diffusionnag.transfer.meta_train import train_meta_predictor
from diffusionnag.transfer.metadata import read_meta_dataset

CLI = "import sys; from diffusionnag.cli import main; sys.exit(main(sys.argv[1:]))"
OPTIONS: dict[str, str | list[str]] = {
    "--source": "digits",
    "--tasks": "3",
    "--cells-per-task": "4",
    "--shared-cells": "2",
    "--epochs": "2",
    "--resolutions": "8",
    "--classes": ["2", "4"],
    "--per-class": ["20", "30"],
    "--eval-per-class": "10",
    "--seed": "4",
    "--device": "cpu",
}
"""A tiny plan: 12 rows of a fraction of a second each."""


def _argv(options: dict[str, str | list[str]], out: Path) -> list[str]:
    argv = ["meta-dataset", "build", "--out", str(out), "--no-progress"]
    for key, value in options.items():
        argv += [key, *(value if isinstance(value, list) else [value])]
    return argv


TIMING_FIELDS = ("seconds",)
"""The only fields of a row that may differ between builds of one plan."""


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_timings(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k not in TIMING_FIELDS} for line in lines]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny plan built in one go, in this process."""
    out = tmp_path_factory.mktemp("reference") / "rows.jsonl"
    assert main(_argv(OPTIONS, out)) == 0
    return out


def test_rows_hold_the_plan_and_read_as_a_meta_dataset_with_images(reference: Path) -> None:
    header, *rows = _lines(reference)
    assert header["type"] == "header" and header["kind"] == "meta-dataset"
    assert header["protocol"]["train"]["epochs"] == 2 and header["protocol"]["device"] == "cpu"
    assert [row["index"] for row in rows] == list(range(12))
    for row in rows:
        assert row["cell"] == row["arch"] and row["accuracy"] == row["value"]
        assert 0.0 <= row["accuracy"] <= 100.0 and 0.0 <= row["test_accuracy"] <= 100.0
        assert row["params"] > 0 and row["flops"] > 0 and row["seconds"] > 0
        assert row["protocol"]["data"]["name"] == row["task"]
        assert TaskSpec.from_json(row["spec"]).name == row["task"]
    cells = [[row["cell"] for row in rows[i : i + 4]] for i in range(0, 12, 4)]
    assert cells[0][:2] == cells[1][:2] == cells[2][:2]  # the shared cells
    assert len({c for task in cells for c in task[2:]}) == 6  # each task's own cells
    dataset = read_meta_dataset(reference, get_space("nb201"), images=True)
    assert dataset.task_names == list(dict.fromkeys(row["task"] for row in rows))
    for task, first in zip(dataset.tasks, rows[::4], strict=True):
        spec = TaskSpec.from_json(first["spec"])
        assert task.images is not None and len(task.images) == len(spec.classes)
        assert all(i.shape == (spec.per_class, 1, 8, 8) for i in task.images)
        assert task.values.tolist() == [r["accuracy"] for r in rows if r["task"] == task.name]


def test_a_built_meta_dataset_meta_trains_an_images_predictor(reference: Path) -> None:
    space = get_space("nb201")
    dataset = read_meta_dataset(reference, space, images=True)
    config = MetaPredictorConfig(
        encoder="images", hidden=16, layers=1, task_dim=16, steps=3, tasks_per_step=2,
        queries_per_task=4, per_class=5,
    )  # fmt: skip
    sde = build_sde("ve", sigma_min=0.05, sigma_max=5.0)
    predictor = train_meta_predictor(space, sde, dataset, config, device="cpu")
    assert predictor.trained_on == dataset.task_names
    rng = np.random.default_rng(0)
    encodings = [
        TaskData(images=sample_class_images(task.images, 5, rng)) for task in dataset.tasks
    ]
    embeddings = predictor.embed(encodings)  # tasks of 2 to 4 classes
    assert embeddings.shape == (3, 16) and bool(embeddings.isfinite().all())
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_mobilenet_v3_subnets_build_too(tmp_path: Path) -> None:
    out = tmp_path / "mbv3.jsonl"
    options = {**OPTIONS, "--space": "mbv3", "--tasks": "1", "--cells-per-task": "2"}
    options.update({"--epochs": "1", "--classes": ["2", "2"], "--per-class": ["20", "20"]})
    assert main(_argv(options, out)) == 0
    header, *rows = _lines(out)
    assert header["space"] == "mbv3" and header["protocol"]["network"].startswith("mbv3 ")
    assert [row["protocol"]["data"]["resolution"] for row in rows] == [32, 32]  # upscaled
    dataset = read_meta_dataset(out, get_space("mbv3"))
    assert len(dataset.tasks) == 1 and len(dataset.tasks[0].archs) == 2


def test_task_families_are_drawn_recorded_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "families.jsonl"
    options = {**OPTIONS, "--tasks": "4", "--cells-per-task": "2", "--epochs": "1"}
    options["--transforms"] = ["rotate", "noise"]
    assert main(_argv(options, out)) == 0
    header, *rows = _lines(out)
    assert header["sampler"]["transforms"] == ["rotate", "noise"]
    families = {TaskSpec.from_json(row["spec"]).transform for row in rows}
    assert families == {"rotate", "noise"}
    assert all(row["task"].endswith(("/rotate", "/noise")) for row in rows)
    dataset = read_meta_dataset(out, get_space("nb201"), images=True)
    assert all(task.name.rsplit("/", 1)[1] in families for task in dataset.tasks)


def test_steps_depth_and_numerics_reach_every_row_and_the_header(tmp_path: Path) -> None:
    out = tmp_path / "steps.jsonl"
    options = {**OPTIONS, "--tasks": "2", "--cells-per-task": "2", "--epochs": "1"}
    options.update({"--steps": "5", "--cells-per-stage": "2", "--per-class": ["20", "60"]})
    options.update({"--channels-last": [], "--bf16": []})
    assert main(_argv(options, out)) == 0
    header, *rows = _lines(out)
    protocol = header["protocol"]
    assert protocol["network"] == "nb201 C=16 N=2"
    assert protocol["accuracy"] == "validation top-1 % after 1 epochs and at least 5 SGD steps"
    for row in rows:
        train, sizes = row["protocol"]["train"], row["protocol"]["data"]["sizes"]
        per_epoch = -(-sizes[0] // 64)  # at most 240 images: no lone last image
        assert train["steps"] == 5 and train["cells_per_stage"] == 2
        assert train["channels_last"] is True and train["bf16"] is True
        assert train["epochs"] == -(-5 // per_epoch)
        assert row["protocol"]["sgd_steps"] == train["epochs"] * per_epoch >= 5
    # the tasks' sizes give them different epochs, and the rows still read as one protocol
    assert len({row["protocol"]["train"]["epochs"] for row in rows}) == 2
    read_meta_dataset(out, get_space("nb201"))


def _wait_for(condition, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the builder"
        time.sleep(0.05)


def test_one_writer_then_kill_9_and_resume_give_the_uninterrupted_rows(
    reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.jsonl"
    args = _argv(OPTIONS, out)
    child = subprocess.Popen([sys.executable, "-c", CLI, *args, "--workers", "2"])
    try:
        _wait_for(lambda: out.is_file() and len(out.read_bytes().splitlines()) >= 3)
        assert main([*args, "--resume"]) == 2  # a second builder on the same journal
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and error.startswith("diffusionnag: error: journal ")
        assert f"is being written by process {child.pid}" in error
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    written = len(out.read_bytes().splitlines()) - 1
    assert 2 <= written < 12, "the build must be killed midway for this test to mean anything"
    assert main([*args, "--resume"]) == 0
    assert f"({12 - written} trained now" in capsys.readouterr().out
    assert _without_timings(_lines(out)) == _without_timings(_lines(reference))


def _corrupt_idx(tmp_path: Path) -> str:
    root = write_idx_folder(tmp_path / "idx")
    path = root / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    return f"idx:{root}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"--source": "cifar7"},
            "unknown dataset 'cifar7'; valid: digits, folder:PATH, fashion-mnist, idx:PATH",
        ),
        ({"--classes": ["2", "11"]}, "tasks of 2 to 11 classes asked, but 'digits' has 10"),
        ({"--per-class": ["20", "500"]}, "up to 500 training images per class asked"),
        ({"--shared-cells": "5"}, "shared cells must be 0 to cells per task (4), got 5"),
        ({"--resolutions": ["2"]}, "task resolutions must be 4 to 64 px"),
        ({"--transforms": ["zoom"]}, "argument --transforms: invalid choice: 'zoom'"),
        ({"--transforms": ["blur", "blur"]}, "task transforms must be distinct names"),
        ({"--space": "resnet"}, "no network to train for space 'resnet'; trainable: nb201, mbv3"),
        ({"--source": _corrupt_idx}, "train-images-idx3-ubyte.gz is a corrupt gzip stream"),
    ],
)
def test_bad_input_is_one_error_line(
    change: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = dict(OPTIONS)
    for key, value in change.items():
        options[key] = value(tmp_path) if callable(value) else value
    assert main(_argv(options, tmp_path / "rows.jsonl")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("diffusionnag: error: ")
    assert message in error
    assert not (tmp_path / "rows.jsonl").exists()


def test_reader_skips_failed_rows_and_needs_specs_for_images(tmp_path: Path) -> None:
    space = get_space("nb201")
    cells = [space.to_string(a) for a in space.sample(3, np.random.default_rng(0))]
    rows = [
        {"task": "t", "cell": cells[0], "accuracy": 50.0},
        {"task": "t", "cell": cells[1], "accuracy": None, "failed": True},
        {"task": "t", "cell": cells[2], "accuracy": 60.0},
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = read_meta_dataset(path, space)
    assert dataset.tasks[0].values.tolist() == [50.0, 60.0]
    with pytest.raises(ValueError, match="task 't' has no task spec, so no images"):
        read_meta_dataset(path, space, images=True)
