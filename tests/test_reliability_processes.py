"""Real processes: a benchmark parent killed with ``kill -9`` takes its workers with it and
resumes onto exactly the uninterrupted journals; two concurrent ``search --resume`` on one
``--out`` cannot both write.

Processes of a test are found by a marker in their environment (workers inherit it through the
fork server), so the test can check that none survives its parent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import write_fake_table
from strategy_options import FAST_OPTIONS

from diffusionnag.cli import main
from diffusionnag.harness.harness import run_benchmark

MARKER = "DIFFUSIONNAG_TEST_MARKER"
CLI = "import sys; from diffusionnag.cli import main; sys.exit(main(sys.argv[1:]))"
TIMING_FIELDS = ("strategy_seconds", "eval_seconds")
"""The only fields of a trial line that may differ between a resumed and an unbroken run."""
BENCHMARK = {
    "strategies": ["bananas", "evolution"],
    "seeds": [0, 1],
    "datasets": ["cifar10"],
    "budget": 24,
    "strategy_options": {"bananas": FAST_OPTIONS["bananas"]},
}
PARENT = textwrap.dedent(
    """
    import json, sys
    from diffusionnag.harness.harness import run_benchmark

    if __name__ == "__main__":
        settings = json.loads(sys.argv[1])
        run_benchmark(
            settings["strategies"], settings["seeds"], settings["datasets"], settings["budget"],
            sys.argv[2], sys.argv[3], workers=2, strategy_options=settings["strategy_options"],
            progress=False,
        )
    """
)


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 cell with made-up accuracies: any cell a strategy proposes has a value."""
    return write_fake_table(tmp_path_factory.mktemp("table") / "table.csv", 15625, seed=0)


def _marked(marker: str) -> list[int]:
    """PIDs of live processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{MARKER}={marker}".encode() in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


def _lines(path: Path) -> int:
    return len(path.read_bytes().split(b"\n")) - 1 if path.exists() else 0


def _comparable(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]


def _journals(out: Path) -> list[Path]:
    return sorted((out / "runs").rglob("*.jsonl"))


def test_killed_benchmark_takes_its_workers_and_resumes_exactly(tmp_path: Path, table_path):
    marker = uuid.uuid4().hex
    out = tmp_path / "killed"
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen(
        [sys.executable, str(script), json.dumps(BENCHMARK), str(table_path), str(out)],
        env={**os.environ, MARKER: marker},
    )
    bananas = out / "runs" / "cifar10" / "bananas" / "seed0.jsonl"
    try:
        _wait_for(lambda: _lines(bananas) >= 12, 120, "the first run is in its model phase")
        assert parent.poll() is None, "the benchmark ended before it could be killed"
        workers = [pid for pid in _marked(marker) if pid != parent.pid]
        assert workers, "no worker processes found"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _wait_for(lambda: not _marked(marker), 10, f"processes {_marked(marker)} exit")
    finally:
        for pid in _marked(marker):  # only on failure: leave nothing behind
            os.kill(pid, signal.SIGKILL)
    assert _lines(bananas) < BENCHMARK["budget"] + 1 and not (out / "summary.json").exists()
    sizes = [j.stat().st_size for j in _journals(out)]
    time.sleep(0.5)
    assert [j.stat().st_size for j in _journals(out)] == sizes  # nobody writes any more
    settings = {k: v for k, v in BENCHMARK.items() if k != "strategy_options"}
    options = BENCHMARK["strategy_options"]
    common = {"strategy_options": options, "progress": False}
    resumed = run_benchmark(
        **settings, table_path=table_path, out_dir=out, workers=2, resume=True, **common
    )
    whole = tmp_path / "whole"
    unbroken = run_benchmark(**settings, table_path=table_path, out_dir=whole, workers=1, **common)
    assert resumed["datasets"]["cifar10"]["optimum"] == unbroken["datasets"]["cifar10"]["optimum"]
    killed_journals, whole_journals = _journals(out), _journals(whole)
    assert [j.relative_to(out) for j in killed_journals] == [
        j.relative_to(whole) for j in whole_journals
    ]
    assert len(killed_journals) == 4
    for killed, unbroken_journal in zip(killed_journals, whole_journals, strict=True):
        assert _comparable(killed) == _comparable(unbroken_journal), killed
        assert len(_comparable(killed)) == BENCHMARK["budget"] + 1


def test_concurrent_resumes_of_one_search_cannot_both_write(tmp_path: Path, table_path, capsys):
    out = tmp_path / "run.json"
    options = [f"--option={k}={v}" for k, v in FAST_OPTIONS["bananas"].items()]
    argv = [
        "search", "--strategy", "bananas", "--benchmark", "nb201:cifar10", "--budget", "60",
        "--table", str(table_path), "--out", str(out), "--resume", "--quiet", *options,
    ]  # fmt: skip
    marker = uuid.uuid4().hex
    first = subprocess.Popen(
        [sys.executable, "-c", CLI, *argv],
        env={**os.environ, MARKER: marker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    journal = out.with_suffix(".jsonl")
    try:
        _wait_for(
            lambda: _lines(journal) >= 2 or first.poll() is not None, 120, "the first one writes"
        )
        capsys.readouterr()
        assert main(argv) == 2  # the second, while the first holds the journal
        second = capsys.readouterr().err.splitlines()
        assert first.poll() is None, "the first search ended before the second started"
        _, errors = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    expected = f"diffusionnag: error: journal {journal} is being written by process {first.pid};"
    assert len(second) == 1 and second[0].startswith(expected)
    assert first.returncode == 0, errors
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r.get("index") for r in records] == [None, *range(60)]
    assert len({r["arch"] for r in records[1:]}) == 60
