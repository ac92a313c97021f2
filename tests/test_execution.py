"""Parallel batch evaluation: the journal of ``--workers 2`` is the journal of one worker, a
worker killed mid-evaluation is retried (nothing lost or evaluated twice), a worker that dies on
every attempt becomes a failed trial, and bad executor options are one error line."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import write_fake_table
from execution_evaluators import ReportingEvaluator, attempt_pids

from diffusionnag.cli import main
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.execution import InProcessExecutor, WorkerLost, in_order, make_executor
from diffusionnag.search.history import History
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space

TIMING_FIELDS = ("strategy_seconds", "eval_seconds")
BUDGET, BATCH = 12, 4


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 cell with made-up accuracies, so any proposed cell has a value."""
    return write_fake_table(tmp_path_factory.mktemp("table") / "table.csv", 15625, seed=0)


@pytest.fixture(scope="module")
def table(table_path: Path) -> NB201Table:
    return NB201Table.from_csv(table_path)


def search(evaluator, journal: Path | None = None, **kwargs) -> History:
    space = NB201Space()
    return run_search(
        get_strategy("evolution", space, 3), evaluator, space, BUDGET, batch_size=BATCH,
        journal_path=journal, progress=False, **kwargs,
    )  # fmt: skip


def trial_lines(journal: Path) -> list[dict]:
    """The journal's trials without their timings (the only fields that may differ)."""
    lines = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    return [{k: v for k, v in line.items() if k not in TIMING_FIELDS} for line in lines]


def test_two_workers_write_the_journal_of_one(table: NB201Table, tmp_path: Path) -> None:
    search(TableEvaluator(table, "cifar10"), tmp_path / "one.jsonl")
    search(TableEvaluator(table, "cifar10"), tmp_path / "two.jsonl", workers=2)
    one, two = trial_lines(tmp_path / "one.jsonl"), trial_lines(tmp_path / "two.jsonl")
    assert len(one) == BUDGET
    assert [line["index"] for line in two] == list(range(BUDGET))
    assert two == one
    header = lambda name: (tmp_path / name).read_text().splitlines()[0]  # noqa: E731
    assert header("one.jsonl") == header("two.jsonl")  # so either resumes the other


def test_parallel_resume_mid_batch_is_exact(table: NB201Table, tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl"
    search(TableEvaluator(table, "cifar10"), full)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(full.read_text().splitlines()[: 1 + BATCH + 2]) + "\n")
    search(TableEvaluator(table, "cifar10"), cut, workers=2, resume=True)
    assert trial_lines(cut) == trial_lines(full)


def _kill_first_attempt(folder: Path, run: threading.Thread) -> int:
    deadline = time.monotonic() + 60
    while not attempt_pids(folder):
        assert run.is_alive() and time.monotonic() < deadline, "the target was never evaluated"
        time.sleep(0.05)
    (pid,) = attempt_pids(folder)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_killed_worker_is_retried_and_nothing_is_lost_or_repeated(
    table: NB201Table, tmp_path: Path
) -> None:
    reference = search(TableEvaluator(table, "cifar10"))
    target = reference[BATCH + 1].arch  # second cell of the second batch
    evaluator = ReportingEvaluator(table, target, tmp_path)
    journal = tmp_path / "run.jsonl"
    run = threading.Thread(target=search, args=(evaluator, journal), kwargs={"workers": 2})
    run.start()
    killed = _kill_first_attempt(tmp_path, run)
    run.join(timeout=120)
    assert not run.is_alive()
    pids = attempt_pids(tmp_path)
    assert len(pids) == 2 and pids[0] == killed and pids[1] != killed  # retried elsewhere
    lines = trial_lines(journal)
    assert [(t["arch"], t["value"]) for t in lines] == [
        (NB201Space().to_string(t.arch), t.value) for t in reference
    ]
    assert lines[BATCH + 1]["metrics"]["attempts"] == 2.0
    assert not any(t["failed"] for t in lines)
    assert all("attempts" not in t["metrics"] for t in lines[:BATCH])  # done before the kill


def test_worker_dying_on_every_attempt_is_a_failed_trial(table: NB201Table, tmp_path: Path) -> None:
    reference = search(TableEvaluator(table, "cifar10"))
    target = reference[2].arch
    evaluator = ReportingEvaluator(table, target, tmp_path, exit_on_target=True)
    history = search(evaluator, tmp_path / "run.jsonl", workers=2)
    assert len(attempt_pids(tmp_path)) == 3  # the first try and two retries
    lost = history[2]
    assert lost.arch == target and lost.failed
    assert lost.metrics == {"worker_lost": 1.0, "attempts": 3.0}
    assert [t.value for t in history][:2] == [t.value for t in reference][:2]
    assert len(history) == BUDGET and sum(t.failed for t in history) == 1


def test_in_order_yields_in_job_order_with_attempts() -> None:
    executor = make_executor("local", 2)
    try:
        results = list(in_order(executor, time.sleep, [(0.4,), (0.0,), (0.2,)]))
    finally:
        executor.shutdown()
    assert results == [(None, 1), (None, 1), (None, 1)]
    assert list(in_order(InProcessExecutor(), abs, [(-2,), (3,)])) == [(2, 1), (3, 1)]
    with pytest.raises(ValueError, match="unknown executor 'spark'; known: local, ray"):
        make_executor("spark", 2)
    assert issubclass(WorkerLost, RuntimeError)


def _search_cli(table_path: Path, out: Path, *extra: str) -> int:
    return main(
        ["search", "--strategy", "evolution", "--benchmark", "nb201:cifar10", "--table",
         str(table_path), "--budget", str(BUDGET), "--batch-size", str(BATCH), "--seed", "1",
         "--out", str(out), "--quiet", *extra]
    )  # fmt: skip


def test_in_order_submits_in_the_given_order_and_yields_in_job_order() -> None:
    started: list[int] = []
    executor = InProcessExecutor()  # runs each job as it is submitted

    def job(number: int) -> int:
        started.append(number)
        return 10 * number

    outcomes = list(in_order(executor, job, [(0,), (1,), (2,)], submit_order=[2, 0, 1]))
    assert started == [2, 0, 1]
    assert outcomes == [(0, 1), (10, 1), (20, 1)]
    with pytest.raises(ValueError, match=r"submit order \[0, 0\] is not a permutation of 2 jobs"):
        list(in_order(executor, job, [(0,), (1,)], submit_order=[0, 0]))


def test_search_cli_two_workers_same_result_as_one(
    table_path: Path, tmp_path: Path, capsys
) -> None:
    assert _search_cli(table_path, tmp_path / "one.json", "--workers", "1") == 0
    assert _search_cli(table_path, tmp_path / "two.json", "--workers", "2") == 0
    capsys.readouterr()
    trajectories = [
        [(t["arch"], t["value"]) for t in json.loads((tmp_path / name).read_text())["trajectory"]]
        for name in ("one.json", "two.json")
    ]
    assert len(trajectories[0]) == BUDGET
    assert trajectories[0] == trajectories[1]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--executor", "spark"], "argument --executor: invalid choice: 'spark'"),
        (["--workers", "0"], "argument --workers: must be >= 1, got 0"),
        (
            ["--executor", "ray", "--ray-address", "127.0.0.1:9"],
            "cannot reach the Ray cluster at 127.0.0.1:9",
        ),
        (["--executor", "ray", "--ray-address", "nowhere"], "--ray-address 'nowhere' is not auto"),
    ],
)
def test_bad_executor_options_are_one_error_line(
    table_path: Path, tmp_path: Path, capsys, extra: list[str], expected: str
) -> None:
    code = _search_cli(table_path, tmp_path / "run.json", *extra)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"diffusionnag: error: {expected}")


def test_ray_missing_says_how_to_install(
    table_path: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    code = _search_cli(table_path, tmp_path / "run.json", "--executor", "ray")
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        "diffusionnag: error: --executor ray needs Ray: pip install 'diffusionnag[ray]'\n"
    )
