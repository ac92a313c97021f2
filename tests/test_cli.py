"""The command line end to end on a tiny model, and one clear line for every user mistake."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from diffusionnag.cli import build_parser, main, train_config_from_args
from diffusionnag.diffusion.model import (
    CONFIG_FILE,
    MODEL_FILE,
    ScoreTrainConfig,
    build_score_model,
    default_train_config,
)
from diffusionnag.diffusion.score_net import ScoreNetConfig
from diffusionnag.spaces.nb201 import NB201Space

TINY_TRAIN = [
    "--steps", "20", "--batch-size", "32", "--hidden", "16", "--layers", "1", "--heads", "2",
    "--device", "cpu", "--quiet",
]  # fmt: skip
TINY_GENERATE = ["--num", "2", "--steps", "3", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "score"
    assert main(["train-score", "--out", str(out), *TINY_TRAIN]) == 0
    return out


def _generate(checkpoint: Path, out: Path, *extra: str) -> int:
    return main(["generate", "--checkpoint", str(checkpoint), "--out", str(out), *extra])


def test_train_then_generate(checkpoint: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    out = tmp_path / "results" / "gen.json"
    assert _generate(checkpoint, out, *TINY_GENERATE, "--sampler", "em", "--seed", "4") == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert set(report) == {"cells", "metrics", "notes", "settings", "timing"}
    assert len(report["cells"]) == 2
    space = NB201Space()
    for cell in report["cells"]:
        assert cell is None or space.to_string(space.from_string(cell)) == cell
    metrics = report["metrics"]
    assert set(metrics) == {"validity", "uniqueness", "uniqueness_canonical", "novelty"}
    assert metrics["validity"] == sum(c is not None for c in report["cells"]) / 2
    assert "novelty is 0 by construction" in report["notes"][0]
    settings = report["settings"]
    assert settings["sampler"] == {"name": "em", "steps": 3, "snr": 0.16, "corrector_steps": 1}
    assert (settings["seed"], settings["num"], settings["space"]) == (4, 2, "nb201")
    assert settings["checkpoint"] == str(checkpoint.resolve())
    assert settings["checkpoint_config"] == json.loads((checkpoint / CONFIG_FILE).read_text())
    assert report["timing"]["total_seconds"] >= report["timing"]["generate_seconds"] > 0
    assert "validity" in printed and str(out) in printed
    again = tmp_path / "again.json"
    assert _generate(checkpoint, again, *TINY_GENERATE, "--sampler", "em", "--seed", "4") == 0
    assert json.loads(again.read_text())["cells"] == report["cells"]
    assert [p.name for p in out.parent.iterdir()] == ["gen.json"]  # no temporary files


def test_vp_with_holdout_reports_real_novelty(tmp_path: Path, capsys) -> None:
    score = tmp_path / "vp"
    args = ["--sde", "vp", "--holdout", "0.5", *TINY_TRAIN, "--steps", "2"]  # the last wins
    assert main(["train-score", "--out", str(score), *args]) == 0
    assert "vp SDE" in capsys.readouterr().out
    out = tmp_path / "gen.json"
    assert _generate(score, out, *TINY_GENERATE, "--sampler", "ode") == 0
    report = json.loads(out.read_text())
    assert report["notes"] == [] and "novelty" in report["metrics"]
    assert report["settings"]["checkpoint_config"]["holdout_fraction"] == 0.5


def test_train_score_resumes_and_refuses_other_settings(checkpoint: Path, capsys) -> None:
    capsys.readouterr()
    loud = [arg for arg in TINY_TRAIN if arg != "--quiet"]
    assert main(["train-score", "--out", str(checkpoint), *loud]) == 0
    assert "resuming" in capsys.readouterr().err
    changed = ["train-score", "--out", str(checkpoint), *TINY_TRAIN, "--lr", "0.1"]
    assert main(changed) == 2
    assert "different settings" in capsys.readouterr().err


def _config(*options: str) -> ScoreTrainConfig:
    return train_config_from_args(
        build_parser().parse_args(["train-score", "--out", "x", *options])
    )


def test_train_config_overrides_only_given_options() -> None:
    assert _config() == ScoreTrainConfig()
    config = _config("--steps", "5", "--hidden", "8", "--holdout", "0.25", "--sigma-max", "2")
    default = ScoreTrainConfig()
    assert config == dataclasses.replace(
        default,
        steps=5,
        holdout_fraction=0.25,
        network=ScoreNetConfig(hidden=8),
        sde_params={**default.sde_params, "sigma_max": 2.0},
    )
    vp = _config("--sde", "vp")
    assert vp.sde == "vp" and set(vp.sde_params) == {"beta_min", "beta_max", "t_min"}
    assert build_score_model(vp).sde.std(torch.ones(1)).item() > 0.99


def test_train_config_starts_from_the_spaces_recommended_settings() -> None:
    mbv3 = _config("--space", "mbv3", "--steps", "7")
    assert mbv3 == dataclasses.replace(default_train_config("mbv3"), steps=7)
    assert mbv3.network.head == "categorical" and mbv3.network.messages
    assert _config("--space", "mbv3", "--hidden", "8").network.head == "categorical"


def _corrupt(checkpoint: Path, tmp_path: Path) -> Path:
    copy = Path(shutil.copytree(checkpoint, tmp_path / "corrupt"))
    (copy / MODEL_FILE).write_bytes(b"\x00garbage")
    return copy


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain.txt"
    path.write_text("not a folder")
    return path


ArgsFor = Callable[[Path, Path], list[str]]
GENERATE_ERRORS: list[tuple[str, ArgsFor, str]] = [
    ("missing", lambda c, t: ["--checkpoint", str(t / "nope")], "config.json is missing"),
    ("corrupt", lambda c, t: ["--checkpoint", str(_corrupt(c, t))], "model.pt is corrupt"),
    ("sampler", lambda c, t: ["--sampler", "ddim"], "invalid choice: 'ddim'"),
    ("steps", lambda c, t: ["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    ("num", lambda c, t: ["--num", "0"], "argument --num: must be >= 1, got 0"),
    ("num-text", lambda c, t: ["--num", "many"], "argument --num: not an integer: 'many'"),
    ("device", lambda c, t: ["--device", "tpu"], "unknown device 'tpu'"),
    ("corrector", lambda c, t: ["--corrector-steps", "-1"], "must be >= 0, got -1"),
]


@pytest.mark.parametrize(
    ("args_for", "expected"),
    [case[1:] for case in GENERATE_ERRORS],
    ids=[c[0] for c in GENERATE_ERRORS],
)
def test_generate_errors_are_one_line(
    checkpoint: Path, tmp_path: Path, capsys, args_for: ArgsFor, expected: str
) -> None:
    out = tmp_path / "gen.json"
    argv = ["generate", "--checkpoint", str(checkpoint), "--out", str(out), *TINY_GENERATE]
    code = main([*argv, *args_for(checkpoint, tmp_path)])
    _assert_one_line_error(code, capsys, expected)
    assert not out.exists()


def test_unwritable_output_fails_before_sampling(checkpoint: Path, tmp_path: Path, capsys) -> None:
    out = _a_file(tmp_path) / "gen.json"
    _assert_one_line_error(_generate(checkpoint, out, *TINY_GENERATE), capsys, "is not a folder")


TRAIN_ERRORS: list[tuple[str, list[str], str]] = [
    ("space", ["--space", "darts"], "argument --space: invalid choice: 'darts'"),
    ("holdout", ["--holdout", "1"], "--holdout must be in [0, 1), got 1.0"),
    ("negative-holdout", ["--holdout", "-0.1"], "--holdout must be in [0, 1), got -0.1"),
    ("steps", ["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    ("sde-param", ["--sde", "vp", "--sigma-min", "0.1"], "--sigma-min does not apply to the vp"),
    ("sde", ["--sde", "subvp"], "argument --sde: invalid choice: 'subvp'"),
    ("heads", ["--hidden", "10", "--heads", "4"], "--hidden (10) is not divisible by --heads (4)"),
]


@pytest.mark.parametrize(
    ("args", "expected"), [case[1:] for case in TRAIN_ERRORS], ids=[c[0] for c in TRAIN_ERRORS]
)
def test_train_score_errors_are_one_line(
    tmp_path: Path, capsys, args: list[str], expected: str
) -> None:
    out = tmp_path / "score"
    code = main(["train-score", "--out", str(out), "--device", "cpu", "--quiet", *args])
    _assert_one_line_error(code, capsys, expected)
    assert not out.exists()


def test_usage_errors_are_one_line(tmp_path: Path, capsys) -> None:
    _assert_one_line_error(main([]), capsys, "required: COMMAND")
    _assert_one_line_error(main(["train-score"]), capsys, "required: --out")
    _assert_one_line_error(main(["teleport"]), capsys, "invalid choice: 'teleport'")
    output_file = _a_file(tmp_path)
    _assert_one_line_error(
        main(["train-score", "--out", str(output_file)]), capsys, "plain.txt is a file"
    )


def _assert_one_line_error(code: int, capsys, expected: str) -> None:
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("diffusionnag: error: ")
    assert expected in lines[0]
    assert captured.out == ""
