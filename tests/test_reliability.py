"""Bad input of every kind ends in exactly one ``diffusionnag: error:`` line, exit code 2.

One case per failure found when the CLI was tried as a careful user would (issue 10): broken
checkpoints and configs, hostile pickles, wrong option values, impossible budgets, devices,
corrupt datasets and journals, a full disk. Each case builds its input in a temporary folder
and names what the error line must mention (the file or the option).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_fake_table

from diffusionnag.cli import main
from diffusionnag.diffusion.model import CONFIG_FILE, MODEL_FILE, STATE_FILE
from diffusionnag.diffusion.sde import build_sde
from diffusionnag.evaluators.datasets import read_cifar_batch
from diffusionnag.predictors.objective import PredictorConfig, save_predictor, train_predictor
from diffusionnag.spaces import get_space

TINY_TRAIN = [
    "--steps", "4", "--batch-size", "8", "--hidden", "16", "--layers", "1", "--heads", "2",
    "--device", "cpu", "--quiet",
]  # fmt: skip
TINY_GENERATE = ["--num", "2", "--steps", "2", "--device", "cpu", "--quiet"]
PAYLOAD_MARKER = "payload-ran"


class Payload:
    """Pickles to a call that would create a marker file: proof a loader ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny score checkpoint, predictors of both spaces and a full fake NB201 table."""
    root = tmp_path_factory.mktemp("reliability")
    assert main(["train-score", "--out", str(root / "score"), *TINY_TRAIN]) == 0
    sde = build_sde("ve")
    config = PredictorConfig(hidden=8, layers=1, epochs=0)
    for name in ("nb201", "mbv3"):
        space = get_space(name)
        archs = space.sample(4, np.random.default_rng(0))
        predictor = train_predictor(space, sde, archs, [1.0, 2.0, 3.0, 4.0], config, device="cpu")
        save_predictor(predictor, root / f"predictor-{name}", config)
    write_fake_table(root / "table.csv", 15625, seed=0)
    return root


def _copy(work: Path, tmp: Path, name: str) -> Path:
    return Path(shutil.copytree(work / name, tmp / name))


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _checkpoint_with(work: Path, tmp: Path, edit: Callable[[dict], None]) -> Path:
    folder = _copy(work, tmp, "score")
    _edit_json(folder / CONFIG_FILE, edit)
    return folder


def _generate(checkpoint: Path, tmp: Path, *extra: str) -> list[str]:
    out = tmp / "gen.json"
    return ["generate", "--checkpoint", str(checkpoint), "--out", str(out), *TINY_GENERATE, *extra]


def _bare_tensor(work: Path, tmp: Path) -> list[str]:
    folder = _copy(work, tmp, "score")
    torch.save(torch.zeros(3), folder / MODEL_FILE)
    return _generate(folder, tmp)


def _config_field(section: str | None, name: str, value: object) -> Callable:
    def args(work: Path, tmp: Path) -> list[str]:
        def edit(config: dict) -> None:
            (config[section] if section else config)[name] = value

        return _generate(_checkpoint_with(work, tmp, edit), tmp)

    return args


def _missing_sde(work: Path, tmp: Path) -> list[str]:
    return _generate(_checkpoint_with(work, tmp, lambda c: c.pop("sde")), tmp)


def _predictor_hidden(work: Path, tmp: Path) -> list[str]:
    folder = _copy(work, tmp, "predictor-nb201")
    _edit_json(folder / "predictor.json", lambda h: h["config"].update(hidden=-4))
    return _generate(work / "score", tmp, "--guide", str(folder))


def _other_space_predictor(work: Path, tmp: Path) -> list[str]:
    return _generate(work / "score", tmp, "--guide", str(work / "predictor-mbv3"))


def _state_holds_weights(work: Path, tmp: Path) -> list[str]:
    folder = _copy(work, tmp, "score")
    shutil.copy(folder / MODEL_FILE, folder / STATE_FILE)
    return ["train-score", "--out", str(folder), *TINY_TRAIN]


def _unsafe_weights(work: Path, tmp: Path) -> list[str]:
    folder = _copy(work, tmp, "score")
    torch.save({"weight": Payload(tmp / PAYLOAD_MARKER)}, folder / MODEL_FILE)
    return _generate(folder, tmp)


def _search(work: Path, tmp: Path, *extra: str) -> list[str]:
    table = ["--benchmark", "nb201:cifar10", "--table", str(work / "table.csv")]
    return ["search", *table, "--out", str(tmp / "run.json"), "--quiet", *extra]


def _option(strategy: str, option: str) -> Callable:
    return lambda work, tmp: _search(work, tmp, "--strategy", strategy, "--option", option)


def _cifar(write: Callable[[Path, Path], None]) -> Callable:
    def args(work: Path, tmp: Path) -> list[str]:
        folder = tmp / "cifar-10-batches-py"
        folder.mkdir()
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
            (folder / name).write_bytes(pickle.dumps(batch))
        write(folder / "data_batch_1", tmp)
        bench = ["--benchmark", "train:cifar10", "--data-root", str(tmp), "--budget", "1"]
        return ["search", *bench, "--out", str(tmp / "run.json"), "--quiet", "--device", "cpu"]

    return args


def _hostile_batch(path: Path, tmp: Path) -> None:
    path.write_bytes(pickle.dumps({b"data": Payload(tmp / PAYLOAD_MARKER), b"labels": [0]}))


def _truncated_batch(path: Path, tmp: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _journal(write: Callable[[Path], None], budget: int = 5) -> Callable:
    def args(work: Path, tmp: Path) -> list[str]:
        assert main(_search(work, tmp, "--strategy", "random", "--budget", "5")) == 0
        write(tmp / "run.jsonl")
        return _search(work, tmp, "--strategy", "random", "--budget", str(budget), "--resume")

    return args


def _drop_line(number: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:number] + lines[number + 1 :]))

    return write


def _not_utf8(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b'{"type": "trial", "arch": "\xff"}\n')


ERRORS: list[tuple[str, Callable[[Path, Path], list[str]], str]] = [
    ("model-bare-tensor", _bare_tensor, "model.pt holds a Tensor, not the network weights"),
    (
        "hidden-text",
        _config_field("network", "hidden", "abc"),
        "config.json: field 'network.hidden' must be an integer",
    ),
    (
        "hidden-negative",
        _config_field("network", "hidden", -8),
        "'network.hidden' must be in [1, 4096], got -8",
    ),
    ("steps-float", _config_field(None, "steps", 2.5), "field 'steps' must be an integer"),
    ("sde-params-text", _config_field(None, "sde_params", "x"), "field 'sde_params' must be"),
    ("config-missing-sde", _missing_sde, "config.json lacks field(s) sde"),
    (
        "predictor-hidden",
        _predictor_hidden,
        "predictor.json: field 'config.hidden' must be in [1, 4096]",
    ),
    ("predictor-other-space", _other_space_predictor, "the predictor is for space 'mbv3'"),
    ("state-holds-weights", _state_holds_weights, "state.pt holds a dict with keys"),
    ("unsafe-pickle", _unsafe_weights, "model.pt is not a weights file written by diffusionnag"),
    ("option-scale", _option("diffusionnag-bo", "scale=abc"), "option scale of strategy"),
    ("option-lr", _option("bananas", "lr=abc"), "option lr of strategy 'bananas' must be a"),
    ("option-bool", _option("tpe", "multivariate=maybe"), "multivariate of strategy 'tpe' must"),
    ("option-floor", _option("diffusionnag-bo", "budget_floor=1.5"), "budget_floor must be a"),
    ("budget-too-large", lambda w, t: _search(w, t, "--budget", "7000"), "budget 7000 is larger"),
    ("device-tpu", lambda w, t: _search(w, t, "--device", "tpu"), "unknown device 'tpu'"),
    ("device-cuda", lambda w, t: _search(w, t, "--device", "cuda:0"), "device 'cuda:0'"),
    ("cifar-hostile", _cifar(_hostile_batch), "data_batch_1 is not a CIFAR python batch"),
    ("cifar-corrupt", _cifar(_truncated_batch), "CIFAR batch"),
    ("journal-index-gap", _journal(_drop_line(3)), "run.jsonl line 4: trial index 3, expected 2"),
    ("journal-not-utf8", _journal(_not_utf8), "run.jsonl is not UTF-8 text"),
    ("journal-other-settings", _journal(lambda p: None, 4), "budget: journal 5, now 4"),
]


@pytest.mark.parametrize(
    ("args_for", "expected"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS]
)
def test_bad_input_is_one_error_line(
    work: Path, tmp_path: Path, capsys, args_for: Callable, expected: str
) -> None:
    if "cuda" in expected and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = args_for(work, tmp_path)
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("diffusionnag: error: ")
    assert expected in lines[0]
    assert "weights_only" not in captured.err  # never advise disabling the safe loader
    assert not (tmp_path / PAYLOAD_MARKER).exists()  # no file ever ran code


def test_full_disk_names_the_journal(work: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("diffusionnag.search.journal.os.fsync", no_space)
    capsys.readouterr()
    assert main(_search(work, tmp_path, "--strategy", "random", "--budget", "3")) == 2
    lines = capsys.readouterr().err.splitlines()
    journal = tmp_path / "run.jsonl"
    assert lines == [
        f"diffusionnag: error: cannot write journal {journal}: No space left on device"
    ]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_load(tmp_path: Path, protocol: int) -> None:
    """Python 2 (the official release) and 3 write bytes and arrays differently; all load."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 1, 4], b"data": pixels}
    batch[b"filenames"] = [b"a.png", b"b.png", b"c.png"]
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    images, labels = read_cifar_batch(path)
    assert images.shape == (3, 3, 32, 32) and labels.tolist() == [3, 1, 4]
    np.testing.assert_array_equal(images.reshape(3, -1), pixels)
