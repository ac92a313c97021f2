"""Summary of bench_protocol_scale.py's journals: ``summary.md`` and ``summary.json``.

Per setting: the interquartile range of the random cells' test accuracy at E epochs (test is
reported; valid is what a search would select on, shown beside it), the pooled seed-to-seed
standard deviation, their ratio, Spearman and Kendall of the cells' test accuracies at E and
2E, and the cost per cell. Settings still running are summarised from the rows so far.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from protocol_eval_noise import lines as noise_lines
from protocol_eval_noise import summarise as summarise_noise
from protocol_rows import plan_rows, read_rows
from protocol_stats import agreement, fmt, iqr, mean, pooled_std, seed_groups, seed_mean_labels

from diffusionnag.io import atomic_write_json, atomic_write_text

RATIO_NEEDED = 3.0
SPEARMAN_NEEDED = 0.9
FULL_NOISE_DOF = 9  # 3 cells x 4 seeds


def scale_rows(results: Path, scale: str) -> list[dict]:
    """Every row of a scale, from its journal and its shards' journals."""
    return plan_rows(results, scale, ("cell_index", "seed", "epochs"))


def summarise_setting(setting, rows: list[dict]) -> dict:
    """The numbers of one setting (see the module docstring)."""
    epochs, seeds = setting.epochs, range(setting.label_seeds)
    at_e = [r for r in rows if r["epochs"] == epochs and not r["failed"]]
    at_2e = [r for r in rows if r["epochs"] == 2 * epochs and not r["failed"]]
    short, long = seed_mean_labels(at_e, seeds), seed_mean_labels(at_2e, seeds)
    test = np.array([r["test"] for r in short.values()])
    valid = np.array([r["valid"] for r in short.values()])
    test_groups = seed_groups(at_e, "test")
    run_noise_test, dof = pooled_std(test_groups)
    run_noise_valid, _ = pooled_std(seed_groups(at_e, "valid"))
    # a label averages len(seeds) runs
    noise_test = run_noise_test / math.sqrt(len(seeds))
    noise_valid = run_noise_valid / math.sqrt(len(seeds))
    iqr_test = iqr(test)
    summary = {
        "setting": setting.name,
        "cells_at_E": len(short),
        "cells_at_2E": len(long),
        "failed_rows": sum(bool(r["failed"]) for r in rows),
        "test_iqr": iqr_test,
        "test_range": [float(test.min()), float(test.max())] if len(test) else None,
        "valid_iqr": iqr(valid),
        "seed_std_test": noise_test,
        "seed_std_valid": noise_valid,
        "seed_std_dof": dof,
        "seed_std_test_by_cell": [float(g.std(ddof=1)) for g in test_groups],
        "ratio_test": iqr_test / noise_test if noise_test > 0 else math.nan,
        "reliability": _reliability(test, noise_test),
        "E_vs_2E": agreement(_tests(short), _tests(long), min_pairs=5),
        "cpu_seconds_per_cell_E": mean([label["cpu"] for label in short.values()]),
        "cpu_seconds_per_cell_2E": mean([label["cpu"] for label in long.values()]),
        "train_cpu_seconds_per_epoch": mean(
            [r["train_cpu_seconds"] / r["epochs"] for r in rows if not r["failed"]]
        ),
        "wall_seconds_total": float(sum(r["seconds"] for r in rows)),
    }
    summary["verdict"] = _verdict(summary)
    return summary


def _reliability(labels: np.ndarray, noise: float) -> float:
    """The share of the labels' variance that is the cells' own, 1 - seed variance / label
    variance: about the correlation two independent runs of the protocol reach when nothing but
    seed noise tells them apart, so the most Spearman(E, 2E) can show even where E is final."""
    if len(labels) < 4 or not math.isfinite(noise):
        return math.nan
    return 1.0 - noise**2 / float(labels.var(ddof=1))


def _tests(labels: dict[int, dict]) -> dict[int, float]:
    return {cell: label["test"] for cell, label in labels.items()}


def _verdict(s: dict) -> str:
    if s["cells_at_E"] < 30 or s["seed_std_dof"] < FULL_NOISE_DOF:
        return "incomplete"
    spread = "separates" if s["ratio_test"] >= RATIO_NEEDED else "does not separate"
    if s["E_vs_2E"]["pairs"] < 30:
        return f"{spread}; E vs 2E incomplete"
    final = "E is final" if s["E_vs_2E"]["spearman"] >= SPEARMAN_NEEDED else "E too short"
    return f"{spread}; {final}"


def _setting_line(s: dict) -> str:
    e_vs_2e = s["E_vs_2E"]
    low, high = s["test_range"] or (math.nan, math.nan)
    stds = s["seed_std_test_by_cell"]
    by_cell = ", ".join(fmt(v) for v in stds)
    if len(stds) > 3:
        by_cell = f"{len(stds)} cells, median {fmt(float(np.median(stds)))}, max {fmt(max(stds))}"
    return (
        f"| {s['setting']} | {s['cells_at_E']}/{s['cells_at_2E']} | {fmt(s['test_iqr'])} "
        f"| {fmt(low, 1)}-{fmt(high, 1)} | {fmt(s['valid_iqr'])} "
        f"| {fmt(s['seed_std_test'])} ({s['seed_std_dof']} dof; by cell {by_cell}) "
        f"| {fmt(s['seed_std_valid'])} "
        f"| {fmt(s['ratio_test'], 1)} | {fmt(s['reliability'])} "
        f"| {fmt(e_vs_2e['spearman'])} / "
        f"{fmt(e_vs_2e['kendall'])} ({e_vs_2e['pairs']}) "
        f"| {fmt(s['cpu_seconds_per_cell_E'], 0)} / {fmt(s['cpu_seconds_per_cell_2E'], 0)} "
        f"| {fmt(s['train_cpu_seconds_per_epoch'], 1)} | {s['verdict']} |"
    )


def _pilot_lines(rows: list[dict]) -> list[str]:
    by_setting: dict[str, list[dict]] = {}
    for row in rows:
        by_setting.setdefault(row["setting"], []).append(row)
    lines = [
        "| scale (1 epoch) | cells | train CPU s/epoch, each cell | evaluation CPU s "
        "(4,000 images) | wall s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, group in by_setting.items():
        train = ", ".join(f"{r['train_cpu_seconds']:.1f}" for r in group)
        evaluation = mean([r["eval_cpu_seconds"] for r in group])
        wall = ", ".join(f"{r['seconds']:.0f}" for r in group)
        lines.append(f"| {name} | {len(group)} | {train} | {fmt(evaluation, 1)} | {wall} |")
    return lines


HEADER = """# Protocol scale: where do NB201 cells differ by more than seed noise?

Written by `benchmarks/bench_protocol_scale.py --report` from the journals beside it (one per
setting; rows so far for a setting still running). Per setting: the same 30 random cells
(seed-0 training) at E and at 2E epochs; the first three cells also with seeds 1-3 at E. A
setting ending in ``-mK`` labels a cell with the mean of seeds 0..K-1 (at E and at 2E), and its
seed std is a run's pooled std over sqrt(K), the noise of such a mean.
Accuracy is on the task's **test** split (Fashion-MNIST's test set, 200 per class); **valid**
(200 per class drawn from Fashion-MNIST's training set, disjoint from the training images) is
what a search would select on and is shown beside it. A setting qualifies when test IQR >= 3 x
pooled seed std, and E is "final" when Spearman(E, 2E) >= 0.9. Reliability, 1 - seed variance
/ variance of the cells' labels, is about the most that Spearman can reach from seed noise
alone. Cost is CPU seconds of the one training thread (process time; evaluation included): the
runs are niced on a 2-core machine shared with other jobs, where wall time mostly measures
those jobs.

"""
NOISE_HEADER = """
## Evaluation-set noise

Settings whose rows keep each test image's outcome (``-e1000``: the whole test split, 1,000
images per class). Two seeds of one cell disagree on a share ``d`` of the images; even networks
of equal true accuracy would then differ seed to seed by ``sqrt(d / 2n)`` on ``n`` images. The
seed std and the cells' IQR are given on five disjoint folds of 200 images per class (what the
other settings measure) and on the whole split (`benchmarks/protocol_eval_noise.py`).

"""
COLUMNS = (
    "setting",
    "cells E/2E",
    "test IQR",
    "test range",
    "valid IQR",
    "seed std test",
    "seed std valid",
    "ratio",
    "reliability (ceiling of E vs 2E)",
    "Spearman / Kendall E vs 2E (pairs)",
    "CPU s per cell E / 2E",
    "train CPU s/epoch",
    "verdict",
)
TABLE_HEAD = "| " + " | ".join(COLUMNS) + " |\n" + "| --- " * len(COLUMNS) + "|\n"


def _rows_of(setting, results: Path) -> list[dict]:
    """The rows of ``setting``'s scale journal at E and 2E epochs."""
    wanted = (setting.epochs, 2 * setting.epochs)
    return [r for r in scale_rows(results, setting.scale) if r["epochs"] in wanted]


def write_report(grid, results: Path) -> None:
    rows_by_setting = {s: rows for s in grid if (rows := _rows_of(s, results))}
    summaries = [summarise_setting(s, rows) for s, rows in rows_by_setting.items()]
    text = HEADER + TABLE_HEAD + "".join(_setting_line(s) + "\n" for s in summaries)
    noise = [
        summarise_noise(s.name, rows, s.epochs)
        for s, rows in rows_by_setting.items()
        if s.label_seeds == 1  # single runs: a -mK setting's rows are its base setting's
    ]
    noise = [n for n in noise if n is not None]
    if noise:
        text += NOISE_HEADER + "\n".join(noise_lines(noise)) + "\n"
    pilot = read_rows(results / "pilot.jsonl")
    if pilot:
        text += "\n## Pilot: cost per cell per epoch\n\n" + "\n".join(_pilot_lines(pilot)) + "\n"
    atomic_write_text(results / "summary.md", text)
    clean = json.loads(json.dumps(summaries), parse_constant=lambda _: None)  # NaN -> null
    clean_noise = json.loads(json.dumps(noise), parse_constant=lambda _: None)
    atomic_write_json(
        results / "summary.json", {"settings": clean, "evaluation_noise": clean_noise}
    )
    print(text)
