"""The benchmark harness (parallel runs, summary, plots) and the numbers it reports."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.harness.harness import expected_best_of_random, run_benchmark
from diffusionnag.harness.summary import evals_to_reach, median_count


def test_expected_best_of_random_matches_enumeration() -> None:
    values = np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])
    for n in range(1, len(values) + 1):
        brute = np.mean([max(c) for c in itertools.combinations(values, n)])
        assert expected_best_of_random(values, n) == pytest.approx(brute, rel=1e-12)
    with pytest.raises(ValueError, match=r"n must be an int in \[1, 6\]"):
        expected_best_of_random(values, 7)


def test_expected_best_of_random_on_the_table(nb201_table: NB201Table) -> None:
    values = nb201_table.accuracies("cifar10")
    assert expected_best_of_random(values, 1) == pytest.approx(values.mean())
    assert expected_best_of_random(values, len(values)) == values.max()
    curve = [expected_best_of_random(values, n) for n in (10, 100, 1000)]
    assert curve == sorted(curve) and curve[-1] < values.max()


def test_reach_counts_treat_never_as_infinite() -> None:
    curve = np.array([np.nan, 90.0, 94.0, 94.3])
    assert evals_to_reach(curve, 94.0) == 3.0
    assert evals_to_reach(curve, 95.0) == math.inf
    assert median_count([3.0, math.inf, math.inf]) is None
    assert median_count([3.0, 5.0, math.inf]) == 5.0


def test_harness_writes_summary_journals_and_plot(nb201_table_path: Path, tmp_path: Path):
    summary = run_benchmark(
        ["random", "evolution"], [0, 1], ["cifar10"], 15, nb201_table_path, tmp_path, workers=2,
        strategy_options={"evolution": {"population_size": 5, "sample_size": 2}},
        progress=False,
    )  # fmt: skip
    block = summary["datasets"]["cifar10"]
    assert block["optimum"]["value"] == pytest.approx(94.3733, abs=1e-4)
    assert list(block["strategies"]) == ["random", "evolution"]
    for row in block["strategies"].values():
        assert row["runs"] == 2 and set(row["best_so_far_median"]) == {"10", "15"}
        assert row["evals_to"]["optimum"]["reached"] <= 2
        assert row["mean_strategy_seconds"] >= 0
    assert block["random_expectation"]["10"] == pytest.approx(
        expected_best_of_random(NB201Table.from_csv(nb201_table_path).accuracies("cifar10"), 10)
    )
    for name, seed in itertools.product(["random", "evolution"], [0, 1]):
        journal = tmp_path / "runs" / "cifar10" / name / f"seed{seed}.jsonl"
        assert len(journal.read_text().splitlines()) == 16
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert "| evolution | 2 |" in (tmp_path / "summary.md").read_text()
    png = (tmp_path / "best_so_far_cifar10.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    again = run_benchmark(
        ["random", "evolution"], [0, 1], ["cifar10"], 15, nb201_table_path, tmp_path,
        strategy_options={"evolution": {"population_size": 5, "sample_size": 2}},
        resume=True, progress=False,
    )  # fmt: skip
    assert again["datasets"] == summary["datasets"]  # finished runs are read back
    with pytest.raises(ValueError, match=r"4 run journal\(s\) already exist under"):
        run_benchmark(["random", "evolution"], [0, 1], ["cifar10"], 15, nb201_table_path, tmp_path)


def test_harness_checks_arguments_up_front(nb201_table_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown search strategy 'x'"):
        run_benchmark(["x"], [0], ["cifar10"], 5, nb201_table_path, tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        run_benchmark(["random"], [0], ["mnist"], 5, nb201_table_path, tmp_path)
    with pytest.raises(ValueError, match="workers must be an int >= 1"):
        run_benchmark(["random"], [0], ["cifar10"], 5, nb201_table_path, tmp_path, workers=0)
    with pytest.raises(ValueError, match="options given for strategies not being run: local"):
        run_benchmark(
            ["random"], [0], ["cifar10"], 5, nb201_table_path, tmp_path,
            strategy_options={"local": {}},
        )  # fmt: skip
    assert not (tmp_path / "runs").exists()


def test_a_lost_benchmark_worker_is_one_error_line_that_says_resume() -> None:
    from concurrent.futures import Future

    from diffusionnag.execution import WorkerLost
    from diffusionnag.harness.runner import RunSpec, _result_of

    lost: Future = Future()
    lost.set_exception(WorkerLost("process 123 ended"))
    spec = RunSpec("random", 0, "cifar10", 5, 1, "runs/x/seed0.jsonl", resume=False)
    with pytest.raises(ValueError, match=r"runs/x/seed0.jsonl died .*rerun with --resume"):
        _result_of(lost, spec)
