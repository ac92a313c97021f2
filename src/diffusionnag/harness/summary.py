"""Numbers that compare search strategies over seeds, and the random-search yardstick.

All counts are numbers of evaluated cells (1-based: "reached at 12" means the 12th evaluation).
A run that never reaches a target counts as infinitely late, so a median is finite only when at
least half of the runs got there; summaries say how many did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CHECKPOINTS = (10, 20, 50, 100, 200)
NEAR_OPTIMUM = 0.1
"""Points (of accuracy %) below the optimum that still count as "near"."""
_TOLERANCE = 1e-9


def expected_best_of_random(values: np.ndarray, n: int) -> float:
    """Exact expected maximum of ``n`` draws without replacement, uniform over ``values``.

    With the values sorted ascending, the i-th smallest (1-based) is the maximum with
    probability ``C(i-1, n-1) / C(N, n)``; the weights are built from ``w_N = n/N`` downwards by
    ``w_{i-1} = w_i (i-n)/(i-1)``, which never overflows. The harness passes every cell of the
    table, so this is plain random search over cells without replacement, not deduplicated by
    canonical class (the ``random`` strategy, which skips seen classes, is at least as good on
    NAS-Bench-201, where the duplicated classes are mostly poor cells).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("values must be a non-empty array of finite numbers")
    size = values.size
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= size:
        raise ValueError(f"n must be an int in [1, {size}] (the number of values), got {n!r}")
    i = np.arange(size, n, -1, dtype=np.float64)  # N, N-1, ..., n+1
    weights = (n / size) * np.cumprod(np.concatenate([[1.0], (i - n) / (i - 1)]))
    top = np.sort(values)[::-1][: size - n + 1]  # v_N, v_{N-1}, ..., v_n
    return float(np.dot(weights, top))


def checkpoints(budget: int) -> list[int]:
    """The standard checkpoints up to ``budget``, and ``budget`` itself."""
    points = [c for c in CHECKPOINTS if c <= budget]
    return points if budget in points else [*points, budget]


def evals_to_reach(best_so_far: np.ndarray, target: float) -> float:
    """1-based count of evaluations until ``best_so_far >= target``; ``inf`` if never."""
    curve = np.nan_to_num(np.asarray(best_so_far, dtype=np.float64), nan=-np.inf)
    hits = np.flatnonzero(curve >= target - _TOLERANCE)
    return float(hits[0] + 1) if hits.size else math.inf


def median_count(counts: Sequence[float]) -> float | None:
    """Median evaluation count, ``None`` (JSON ``null``) when it is infinite."""
    median = float(np.median(np.asarray(counts, dtype=np.float64)))
    return None if math.isinf(median) else median


def strategy_summary(
    curves: np.ndarray, strategy_seconds: np.ndarray, optimum: float, budget: int
) -> dict[str, Any]:
    """Summary of one strategy on one dataset from ``[runs, budget]`` best-so-far curves."""
    reach: dict[str, Any] = {}
    for name, target in (("optimum", optimum), (f"within_{NEAR_OPTIMUM}", optimum - NEAR_OPTIMUM)):
        counts = [evals_to_reach(curve, target) for curve in curves]
        reach[name] = {
            "median": median_count(counts),
            "reached": sum(not math.isinf(c) for c in counts),
            "per_run": [None if math.isinf(c) else c for c in counts],
        }
    return {
        "runs": int(curves.shape[0]),
        "evals_to": reach,
        "best_so_far_median": {
            str(c): _median_ignoring_nan(curves[:, c - 1]) for c in checkpoints(budget)
        },
        "mean_strategy_seconds": float(np.mean(strategy_seconds)),
    }


def random_yardstick(values: np.ndarray, budget: int) -> dict[str, float]:
    """:func:`expected_best_of_random` at each checkpoint."""
    return {str(c): expected_best_of_random(values, c) for c in checkpoints(budget)}


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as markdown: one table per dataset."""
    settings = summary["settings"]
    budget = settings["budget"]
    lines = [
        "# Search benchmark",
        "",
        f"Budget {budget} evaluated cells, batch size {settings['batch_size']}, "
        f"seeds {settings['seeds']}, table `{settings['table']}`.",
        "Evaluations to a target: median over seeds (runs that never get there count as "
        f"infinite: `>{budget}`), with how many runs reached it. `E[random]`: exact expected "
        "best of uniform draws without replacement over all cells.",
    ]
    for dataset, block in summary["datasets"].items():
        lines += ["", *_dataset_table(dataset, block, budget)]
    return "\n".join(lines) + "\n"


def _dataset_table(dataset: str, block: Mapping[str, Any], budget: int) -> list[str]:
    title = f"## {dataset}: optimum {block['optimum']['value']:.4f} (`{block['optimum']['arch']}`)"
    return [title, "", *strategy_rows(block, budget)]


def strategy_rows(block: Mapping[str, Any], budget: int, target: str = "optimum") -> list[str]:
    """The markdown table of a block's strategies (``target`` names what the first count is
    counted to), and the ``E[random]`` row where the block has the expectation."""
    points = checkpoints(budget)
    near = f"within_{NEAR_OPTIMUM}"
    header = ["strategy", "runs", f"evals to {target}", f"evals to within {NEAR_OPTIMUM}"]
    header += [f"best@{c}" for c in points] + ["strategy s/step"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in block["strategies"].items():
        cells = [name, str(row["runs"])]
        cells += [_count_cell(row["evals_to"][key], row["runs"], budget) for key in (target, near)]
        cells += [_number(row["best_so_far_median"][str(c)]) for c in points]
        cells.append(f"{row['mean_strategy_seconds']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    expected = block.get("random_expectation")
    if expected is not None:
        cells = ["E[random]", "-", "-", "-", *(_number(expected[str(c)]) for c in points), "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _count_cell(reach: Mapping[str, Any], runs: int, budget: int) -> str:
    median = reach["median"]
    shown = f">{budget}" if median is None else f"{median:g}"
    return f"{shown} ({reach['reached']}/{runs})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _median_ignoring_nan(column: np.ndarray) -> float | None:
    """Median over the runs that have a value yet; ``None`` when none has."""
    finite = column[~np.isnan(column)]
    return float(np.median(finite)) if finite.size else None
