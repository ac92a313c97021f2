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
from protocol_stats import iqr, pooled_std

FOLDS = 5
FOLD_PER_CLASS = 200


def _folds(images: int, per_class: int) -> list[np.ndarray]:
    """Image indices of each fold: 200 per class, disjoint (the split is ordered by class)."""
    position = np.arange(images) % per_class
    return [np.flatnonzero(position // FOLD_PER_CLASS == f) for f in range(FOLDS)]


def summarise(name: str, rows: list[dict], epochs: int) -> dict | None:
    """The evaluation-noise numbers of one setting, ``None`` without per-image outcomes."""
    rows = [r for r in rows if r["epochs"] == epochs and not r["failed"] and "test_correct" in r]
    decoded = [outcomes(row) for row in rows]
    by_cell: dict[int, list[np.ndarray]] = {}
    for row, correct in zip(rows, decoded, strict=True):
        by_cell.setdefault(row["cell_index"], []).append(correct)
    noise = [np.stack(v) for v in by_cell.values() if len(v) >= 2]
    if not noise or len(rows) < 5:
        return None
    images = noise[0].shape[1]
    folds = _folds(images, rows[0]["eval_per_class"])
    disagreement = float(
        np.mean([(a != b).mean() for g in noise for a, b in itertools.combinations(g, 2)])
    )
    seed0 = [correct for row, correct in zip(rows, decoded, strict=True) if row["seed"] == 0]
    fold_std = [pooled_std([100 * g[:, f].mean(1) for g in noise])[0] for f in folds]
    fold_iqr = [iqr([100 * o[f].mean() for o in seed0]) for f in folds]
    whole_std = pooled_std([100 * g.mean(1) for g in noise])[0]
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
        "iqr_whole": iqr([100 * o.mean() for o in seed0]),
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
