"""What a user sees: logs without bars or escapes when the output is not a terminal, a line
per cell, paths relative to the working folder, the value named, elapsed time reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusionnag.cli import build_parser


def _run(arguments: list[str], cwd: Path) -> str:
    """The command's stdout and stderr together, both going to a file as in ``cmd > log 2>&1``."""
    log = cwd / "log.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("w") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "diffusionnag", *arguments],
            stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=env, timeout=600,
        )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text[-2000:]
    return text


def _assert_plain(text: str) -> None:
    assert "\r" not in text and "\x1b" not in text


def test_a_piped_search_writes_plain_lines(nb201_table_path: Path, tmp_path: Path) -> None:
    text = _run(
        ["search", "--strategy", "random", "--benchmark", "nb201:cifar10",
         "--table", str(nb201_table_path), "--budget", "3", "--out", "runs/s.json"],
        tmp_path,
    )  # fmt: skip
    _assert_plain(text)
    assert [line.split(":")[0] for line in text.splitlines()[:3]] == [
        "cell 1/3", "cell 2/3", "cell 3/3",
    ]  # fmt: skip
    assert "results -> runs/s.json" in text and str(tmp_path) not in text
    assert "test accuracy" in text and "s elapsed" in text
    result = json.loads((tmp_path / "runs/s.json").read_text())
    assert result["value_name"] == "test accuracy (%)"
    assert result["elapsed_seconds"] >= 0


def test_a_piped_transfer_writes_plain_lines(nb201_table_path: Path, tmp_path: Path) -> None:
    text = _run(
        ["transfer", "--benchmark", "nb201:cifar10", "--table", str(nb201_table_path),
         "--budget", "2", "--candidates", "4", "--round-samples", "20", "--steps", "5",
         "--out", "runs/t.json"],
        tmp_path,
    )  # fmt: skip
    _assert_plain(text)
    assert "generation round 1:" in text and "cell 2/2:" in text
    assert "<package>/assets/" in text and "site-packages" not in text
    assert (tmp_path / "runs/t_reference.png").is_file()  # among all cells of the table


def test_help_shows_defaults() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["search"].format_help()
    assert "default: 20" in help_text and "default: random" not in help_text


@pytest.mark.parametrize(("given", "workers", "expected"), [(None, 3, 3), (None, 1, 1), (4, 2, 4)])
def test_batch_size_follows_workers(given: int | None, workers: int, expected: int) -> None:
    from diffusionnag.cli.search import batch_size_for

    assert batch_size_for(given, workers) == expected


def test_a_resumed_run_keeps_its_journal_batch_size(tmp_path: Path) -> None:
    from diffusionnag.cli.search import batch_size_for

    journal = tmp_path / "run.jsonl"
    journal.write_text('{"type": "header", "batch_size": 1}\n')
    assert batch_size_for(None, 2, journal) == 1
    assert batch_size_for(3, 2, journal) == 3


def test_a_batch_below_the_workers_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    from diffusionnag.cli.search import batch_size_for

    assert batch_size_for(1, 2) == 1
    assert "only 1 of the workers" in capsys.readouterr().out


def test_off_a_terminal_a_long_phase_prints_a_line_per_tenth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from diffusionnag.progress import iterate

    assert list(iterate(range(20), "train-score", enabled=True)) == list(range(20))
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0] == "train-score: 2/20" and lines[-1] == "train-score: 20/20" and len(lines) == 10
    )
    assert list(iterate(range(3), "quiet", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().out == ""
