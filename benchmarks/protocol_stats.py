"""What the protocol reports share: seed noise, spread, labels averaged over training seeds, rank
agreement and table numbers (``protocol_scale_report.py``, ``proxy_agreement_report.py``,
``protocol_eval_noise.py``)."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

import numpy as np

from diffusionnag.metrics import rank_correlations


def mean(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def iqr(values: Iterable[float]) -> float:
    """Interquartile range; NaN below 4 values."""
    values = list(values)
    if len(values) < 4:
        return math.nan
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def seed_groups(rows: Iterable[dict], field: str) -> list[np.ndarray]:
    """``field`` of each cell's rows, for the cells with two or more (its seeds' runs)."""
    by_cell: dict[int, list[float]] = {}
    for row in rows:
        by_cell.setdefault(row["cell_index"], []).append(row[field])
    return [np.array(v) for v in by_cell.values() if len(v) >= 2]


def pooled_std(groups: list[np.ndarray]) -> tuple[float, int]:
    """Root of the within-group variance pooled over ``groups``, and its degrees of freedom."""
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return math.nan, 0
    return math.sqrt(sum(g.var(ddof=1) * (len(g) - 1) for g in groups) / dof), dof


def seed_mean_labels(rows: Iterable[dict], seeds: Collection[int]) -> dict[int, dict]:
    """Per cell with a run of every seed in ``seeds``: its label (mean valid and test accuracy
    of those runs), its parameter count and what the label cost (CPU seconds, summed)."""
    runs: dict[int, dict[int, dict]] = {}
    for row in rows:
        if row["seed"] in seeds:
            runs.setdefault(row["cell_index"], {})[row["seed"]] = row
    return {
        cell: {
            "test": mean(r["test"] for r in by_seed.values()),
            "valid": mean(r["valid"] for r in by_seed.values()),
            "params": next(iter(by_seed.values()))["params"],
            "cpu": float(
                sum(r["train_cpu_seconds"] + r["eval_cpu_seconds"] for r in by_seed.values())
            ),
        }
        for cell, by_seed in runs.items()
        if len(by_seed) == len(seeds)
    }


def agreement(
    guess: Mapping[int, float], truth: Mapping[int, float], min_pairs: int
) -> dict[str, float]:
    """Spearman and Kendall between two scores of the cells both hold; NaN below ``min_pairs``."""
    both = sorted(set(guess) & set(truth))
    if len(both) < min_pairs:
        return {"pairs": len(both), "spearman": math.nan, "kendall": math.nan}
    corr = rank_correlations([guess[i] for i in both], [truth[i] for i in both])
    return {"pairs": len(both), "spearman": corr["spearman"], "kendall": corr["kendall_tau"]}


def fmt(value: float | None, digits: int = 2) -> str:
    """A table number; ``-`` for a missing or NaN one."""
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"
