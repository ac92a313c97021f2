"""How much of a setting's seed noise is its finite evaluation set (``--report``'s second table).

Rows of settings with ``eval_per_class`` > 200 keep every test image's outcome (right or wrong).
If the seeds of one cell gave networks of equal true accuracy, their measured accuracies on
``n`` images would still differ: an image that the cell's networks classify right with
probability ``q`` adds ``q (1 - q)`` to the variance of the mean, so the seed-to-seed variance
from the evaluation set alone is ``d / 2n``, where ``d`` is how often two seeds disagree on an
image. The table gives, per setting: ``d``; the pooled seed std on five disjoint folds of 200
test images per class (the study's other settings) and on the whole test split; the part of the
whole-split std that ``d / 2n`` explains and what is left (training noise); and the cells' test
IQR and its ratio to seed std at 200 per class (mean over folds) and on the whole split.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from protocol_rows import outcomes

FOLDS = 5
FOLD_PER_CLASS = 200


def _classes(row: dict) -> int:
    return len(row["task"].split("/c")[1].split("/")[0].split("-"))


def _folds(row: dict) -> list[np.ndarray]:
    """Image indices of each fold: 200 per class, disjoint (the split is ordered by class)."""
    per_class = row["eval_per_class"]
    position = np.arange(per_class * _classes(row)) % per_class
    return [np.flatnonzero(position // FOLD_PER_CLASS == f) for f in range(FOLDS)]


def _pooled_std(groups: list[np.ndarray]) -> float:
    dof = sum(len(g) - 1 for g in groups)
    return math.sqrt(sum(g.var(ddof=1) * (len(g) - 1) for g in groups) / dof) if dof else math.nan


def _iqr(values: list[float]) -> float:
    q1, q3 = np.percentile(values, [25, 75])
    return float(q3 - q1)


def summarise(name: str, rows: list[dict], epochs: int) -> dict | None:
    """The evaluation-noise numbers of one setting, ``None`` without per-image outcomes."""
    rows = [r for r in rows if r["epochs"] == epochs and not r["failed"] and "test_correct" in r]
    by_cell: dict[int, list[np.ndarray]] = {}
    for row in rows:
        by_cell.setdefault(row["cell_index"], []).append(outcomes(row))
    noise = [np.stack(v) for v in by_cell.values() if len(v) >= 2]
    if not noise or len(rows) < 5:
        return None
    images = noise[0].shape[1]
    folds = _folds(rows[0])
    disagreement = float(
        np.mean([(a != b).mean() for g in noise for a, b in itertools.combinations(g, 2)])
    )
    seed0 = [outcomes(r) for r in rows if r["seed"] == 0]
    fold_std = [_pooled_std([100 * g[:, f].mean(1) for g in noise]) for f in folds]
    fold_iqr = [_iqr([100 * o[f].mean() for o in seed0]) for f in folds]
    whole_std = _pooled_std([100 * g.mean(1) for g in noise])
    finite = 100 * math.sqrt(disagreement / (2 * images))
    return {
        "setting": name,
        "noise_cells": len(noise),
        "seeds": [len(g) for g in noise],
        "cells": len(seed0),
        "test_images": images,
        "disagreement": disagreement,
        "seed_std_fold": float(np.sqrt(np.mean(np.square(fold_std)))),
        "seed_std_whole": whole_std,
        "finite_set_std_whole": finite,
        "training_std_whole": math.sqrt(max(0.0, whole_std**2 - finite**2)),
        "iqr_fold": float(np.mean(fold_iqr)),
        "iqr_whole": _iqr([100 * o.mean() for o in seed0]),
    }


def lines(summaries: list[dict]) -> list[str]:
    def f(value: float, digits: int = 2) -> str:
        return f"{value:.{digits}f}" if math.isfinite(value) else "-"

    table = [
        "| setting | cells (noise cells x seeds) | seeds disagree on | seed std, 200/class folds "
        "/ whole split | of which the finite split (d/2n) / training | cell IQR, folds / whole "
        "| ratio, folds / whole |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        seeds = "+".join(str(n) for n in s["seeds"])
        table.append(
            f"| {s['setting']} | {s['cells']} ({s['noise_cells']} x {seeds}) "
            f"| {f(100 * s['disagreement'], 1)} % of {s['test_images']:,} "
            f"| {f(s['seed_std_fold'])} / {f(s['seed_std_whole'])} "
            f"| {f(s['finite_set_std_whole'])} / {f(s['training_std_whole'])} "
            f"| {f(s['iqr_fold'])} / {f(s['iqr_whole'])} "
            f"| {f(s['iqr_fold'] / s['seed_std_fold'], 1)} / "
            f"{f(s['iqr_whole'] / s['seed_std_whole'], 1)} |"
        )
    return table
