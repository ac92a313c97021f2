"""The Ray executor on a Ray started in this process (2 CPUs): the same journals as the local
executor, a killed Ray worker retried with nothing lost or repeated, the benchmark harness on
Ray tasks, and no Ray process left once Ray shuts down."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from conftest import write_fake_table
from execution_evaluators import ReportingEvaluator
from test_execution import BATCH, BUDGET, _kill_first_attempt, search, trial_lines

from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.harness.harness import run_benchmark

ray = __import__("ray") if os.environ.get("CI") == "true" else pytest.importorskip("ray")
TESTS = Path(__file__).resolve().parent


def _descendants(marker: bytes = b"ray") -> set[int]:
    """Live processes below this one whose command line mentions ``marker`` (Ray's servers
    and workers; not the fork server other tests' local pools leave running)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    ours = set()
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    for pid in found:
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes().lower():
                ours.add(pid)
        except OSError:
            continue
    return ours


@pytest.fixture(scope="module")
def ray_cluster() -> object:
    before = _descendants()
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},  # workers import the test evaluators
    )  # fmt: skip
    yield ray
    ray.shutdown()
    deadline = time.monotonic() + 30
    while _descendants() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _descendants() - before, "Ray processes outlived ray.shutdown()"


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_table(tmp_path_factory.mktemp("table") / "table.csv", 15625, seed=0)


@pytest.fixture(scope="module")
def table(table_path: Path) -> NB201Table:
    return NB201Table.from_csv(table_path)


def test_ray_writes_the_journal_of_the_local_executor(
    ray_cluster: object, table: NB201Table, tmp_path: Path
) -> None:
    search(TableEvaluator(table, "cifar10"), tmp_path / "local.jsonl")  # local, one worker
    search(TableEvaluator(table, "cifar10"), tmp_path / "ray.jsonl", workers=2, executor="ray")
    local = trial_lines(tmp_path / "local.jsonl")
    assert len(local) == BUDGET
    assert trial_lines(tmp_path / "ray.jsonl") == local


def test_killed_ray_worker_is_retried_and_nothing_is_lost_or_repeated(
    ray_cluster: object, table: NB201Table, tmp_path: Path
) -> None:
    reference = search(TableEvaluator(table, "cifar10"))
    target = reference[BATCH].arch  # first cell of the second batch
    evaluator = ReportingEvaluator(table, target, tmp_path)
    journal = tmp_path / "run.jsonl"
    kwargs = {"workers": 2, "executor": "ray"}
    run = threading.Thread(target=search, args=(evaluator, journal), kwargs=kwargs)
    run.start()
    killed = _kill_first_attempt(tmp_path, run)
    run.join(timeout=120)
    assert not run.is_alive()
    lines = trial_lines(journal)
    assert [(t["arch"], t["value"]) for t in lines] == [
        (t.to_json(reference.space)["arch"], t.value) for t in reference
    ]
    assert lines[BATCH]["metrics"]["attempts"] == 2.0  # the killed evaluation, once more
    assert sum("attempts" in t["metrics"] for t in lines) == 1  # Ray lost only that task
    assert not any(t["failed"] for t in lines)
    assert killed not in _descendants()


def test_benchmark_on_ray_writes_the_journals_of_one_process(
    ray_cluster: object, table_path: Path, tmp_path: Path
) -> None:
    settings = {"strategies": ["evolution", "random"], "seeds": [0, 1], "datasets": ["cifar10"]}
    for name, workers, kind in (("one", 1, "local"), ("ray", 2, "ray")):
        run_benchmark(
            **settings, budget=10, table_path=table_path, out_dir=tmp_path / name,
            workers=workers, progress=False, executor=kind,
        )  # fmt: skip
    journals = sorted((tmp_path / "one").glob("runs/*/*/*.jsonl"))
    assert len(journals) == 4
    for journal in journals:
        twin = tmp_path / "ray" / journal.relative_to(tmp_path / "one")
        assert trial_lines(twin) == trial_lines(journal)
    summaries = [json.loads((tmp_path / n / "summary.json").read_text()) for n in ("one", "ray")]
    assert _same_curves(*summaries)


def _same_curves(one: dict, other: dict) -> bool:
    """Summaries agree except for the strategies' timings."""
    strip = lambda s: {  # noqa: E731
        n: {k: v for k, v in b.items() if "seconds" not in k}
        for n, b in s["datasets"]["cifar10"]["strategies"].items()
    }
    return strip(one) == strip(other)
