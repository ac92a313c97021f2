"""Summary of bench_proxy_agreement.py's journals: ``summary.md`` and ``summary.json``.

Per task: whether it qualifies (the IQR of the 30 cells' final labels, each the mean test
accuracy of seeds 0 and 1, against the labels' seed noise), and per proxy the Spearman and
Kendall correlation of the proxy's validation accuracy with the final labels, beside parameter
count (a free baseline) and the final protocol's own validation accuracy (what selecting on the
final protocol's validation split reaches). Tasks and proxies still running are summarised from
the rows so far; a correlation needs 10 cells.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.search.strategies.zero_cost import NaswotOrder, SynflowOrder
from diffusionnag.spaces import get_space

FINAL_SEEDS = (0, 1)
RATIO_NEEDED = 3.0
SPEARMAN_NEEDED = 0.8
MIN_PAIRS = 10
FULL_CELLS = 30


def _seed0(rows: list[dict], protocol: str) -> dict[int, dict]:
    return {
        r["cell_index"]: r
        for r in rows
        if r["protocol"] == protocol and r["seed"] == 0 and not r["failed"]
    }


def _cells(rows: list[dict], final: dict[int, dict]) -> dict[int, str]:
    """The cell string of every labelled cell index."""
    return {r["cell_index"]: r["cell"] for r in rows if r["cell_index"] in final}


def _final_labels(rows: list[dict]) -> dict[int, dict]:
    """Per cell with final runs of seeds 0 and 1: the mean of their test and valid accuracy,
    the parameter count and the label's CPU seconds."""
    runs: dict[int, dict[int, dict]] = {}
    for r in rows:
        if r["protocol"] == "final" and r["seed"] in FINAL_SEEDS and not r["failed"]:
            runs.setdefault(r["cell_index"], {})[r["seed"]] = r
    return {
        cell: {
            "test": float(np.mean([r["test"] for r in by_seed.values()])),
            "valid": float(np.mean([r["valid"] for r in by_seed.values()])),
            "params": by_seed[0]["params"],
            "cpu": float(
                sum(r["train_cpu_seconds"] + r["eval_cpu_seconds"] for r in by_seed.values())
            ),
        }
        for cell, by_seed in runs.items()
        if len(by_seed) == len(FINAL_SEEDS)
    }


def _pooled_seed_std(rows: list[dict]) -> tuple[float, int]:
    """A run's seed std, pooled over every cell with two or more final runs (part 1's task:
    its seeds 0-3 of three cells too)."""
    by_cell: dict[int, list[float]] = {}
    for r in rows:
        if r["protocol"] == "final" and not r["failed"]:
            by_cell.setdefault(r["cell_index"], []).append(r["test"])
    groups = [np.array(v) for v in by_cell.values() if len(v) >= 2]
    dof = sum(len(g) - 1 for g in groups)
    if not dof:
        return math.nan, 0
    return math.sqrt(sum(g.var(ddof=1) * (len(g) - 1) for g in groups) / dof), dof


def _agreement(final: dict[int, dict], scores: dict[int, float]) -> dict:
    both = sorted(set(final) & set(scores))
    if len(both) < MIN_PAIRS:
        return {"pairs": len(both), "spearman": math.nan, "kendall": math.nan}
    truth = [final[i]["test"] for i in both]
    guess = [scores[i] for i in both]
    return {
        "pairs": len(both),
        "spearman": float(spearmanr(guess, truth).statistic),
        "kendall": float(kendalltau(guess, truth).statistic),
    }


def zero_cost_scores(task: str, cells: dict[int, str], cache: Path) -> dict[str, dict[int, float]]:
    """NASWOT and synflow on the task's own images (seed 0) per cell index, cached in ``cache``
    (a JSON file keyed by task, score and cell string): they take a few seconds a task."""
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    space = get_space("nb201")
    scores = {}
    for name, order in (
        ("NASWOT, task images", NaswotOrder),
        ("synflow, task images", SynflowOrder),
    ):
        known = stored.setdefault(task, {}).setdefault(name, {})
        missing = [cell for cell in cells.values() if cell not in known]
        if missing:
            values = order(space, 0, task=task).scores([space.from_string(c) for c in missing])
            known.update(zip(missing, map(float, values), strict=True))
        scores[name] = {index: known[cell] for index, cell in cells.items()}
    atomic_write_json(cache, stored)
    return scores


def _cpu(rows: list[dict]) -> float:
    """Training plus the validation pass: what a proxy costs a search per cell."""
    return _mean([r["train_cpu_seconds"] + r["valid_eval_cpu_seconds"] for r in rows])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarise_task(name: str, rows: list[dict], proxies, cache: Path) -> dict:
    final = _final_labels(rows)
    test = np.array([label["test"] for label in final.values()])
    run_noise, dof = _pooled_seed_std(rows)
    noise = run_noise / math.sqrt(len(FINAL_SEEDS))
    q1, q3 = np.percentile(test, [25, 75]) if len(test) >= 4 else (math.nan, math.nan)
    iqr = float(q3 - q1)
    summary = {
        "task": name,
        "final_cells": len(final),
        "test_iqr": iqr,
        "seed_std": noise,
        "seed_std_dof": dof,
        "ratio": iqr / noise if noise > 0 else math.nan,
        "final_cpu_seconds": _mean([label["cpu"] for label in final.values()]),
        "baselines": {
            "parameter count": _agreement(final, {i: r["params"] for i, r in final.items()}),
            "final protocol, valid": _agreement(final, {i: r["valid"] for i, r in final.items()}),
            **{
                score: _agreement(final, values)
                for score, values in zero_cost_scores(name, _cells(rows, final), cache).items()
            },
        },
        "proxies": {},
    }
    summary["qualifies"] = len(final) >= FULL_CELLS and summary["ratio"] >= RATIO_NEEDED
    for proxy in proxies:
        runs = _seed0(rows, proxy.name)
        scores = {i: r["valid"] for i, r in runs.items()}
        summary["proxies"][proxy.name] = {
            **_agreement(final, scores),
            "cells": len(runs),
            "cpu_seconds": _cpu(list(runs.values())),
        }
    return summary


def _fmt(value: float, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _proxy_lines(tasks: list[dict], names: list[str]) -> tuple[list[str], dict]:
    qualifying = [t for t in tasks if t["qualifies"]]
    head = "| proxy | CPU s per cell | " + " | ".join(t["task"] for t in tasks)
    lines = [
        head + " | median Spearman / Kendall (qualifying tasks) |",
        "| --- " * (len(tasks) + 3) + "|",
    ]
    medians = {}
    for name in names:
        per_task = [t["proxies"].get(name) or t["baselines"].get(name) for t in tasks]
        used = [t["proxies"].get(name) or t["baselines"][name] for t in qualifying]
        complete = [u for u in used if u["pairs"] >= FULL_CELLS]
        rho = float(np.median([u["spearman"] for u in complete])) if complete else math.nan
        tau = float(np.median([u["kendall"] for u in complete])) if complete else math.nan
        cpu = [t["proxies"][name]["cpu_seconds"] for t in tasks if name in t["proxies"]]
        cost = float(np.nanmean(cpu)) if cpu and not all(map(math.isnan, cpu)) else math.nan
        medians[name] = {"spearman": rho, "kendall": tau, "tasks": len(complete), "cpu": cost}
        cells = " | ".join(f"{_fmt(a['spearman'])} ({a['pairs']})" for a in per_task)
        lines.append(
            f"| {name} | {_fmt(cost, 0)} | {cells} | {_fmt(rho)} / {_fmt(tau)} "
            f"({len(complete)} tasks) |"
        )
    return lines, medians


def _choice(medians: dict, proxies) -> str:
    good = [p for p in proxies if medians[p.name]["spearman"] >= SPEARMAN_NEEDED]
    if not good:
        return "no proxy reaches median Spearman 0.8 yet"
    best = min(good, key=lambda p: medians[p.name]["cpu"])
    return f"cheapest proxy with median Spearman >= 0.8: {best.name}"


def layout_check(rows: list[dict]) -> dict | None:
    """On part 1's task: the noise cells' test accuracy in the default layout (part 1's rows)
    against channels-last, seed by seed, beside the seed-to-seed differences of each."""
    default = {(r["cell_index"], r["seed"]): r["test"] for r in rows if r["protocol"] == "final"}
    check = {
        (r["cell_index"], r["seed"]): r["test"]
        for r in rows
        if r["protocol"] == "final-channels-last"
    }
    pairs = sorted(set(default) & set(check))
    if not pairs:
        return None
    by_layout = [abs(default[k] - check[k]) for k in pairs]
    cells = sorted({cell for cell, _ in pairs})
    by_seed = [
        abs(runs[(cell, 0)] - runs[(cell, 1)])
        for runs in (default, check)
        for cell in cells
        if (cell, 0) in runs and (cell, 1) in runs
    ]
    return {
        "pairs": len(pairs),
        "mean_abs_change_of_layout": float(np.mean(by_layout)),
        "mean_abs_change_of_seed": float(np.mean(by_seed)) if by_seed else math.nan,
        "by_pair": {f"cell {c} seed {s}": [default[c, s], check[c, s]] for c, s in pairs},
    }


def write_report(rows_by_task: dict[str, list[dict]], results: Path, final, proxies) -> None:
    cache = results / "zero-cost.json"
    tasks = [summarise_task(n, rows, proxies, cache) for n, rows in rows_by_task.items() if rows]
    lines = [
        HEADER,
        "| task | cells | test IQR | seed std (dof) | ratio | qualifies | final CPU s per cell |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in tasks:
        lines.append(
            f"| {t['task']} | {t['final_cells']} | {_fmt(t['test_iqr'])} "
            f"| {_fmt(t['seed_std'])} ({t['seed_std_dof']}) | {_fmt(t['ratio'], 1)} "
            f"| {'yes' if t['qualifies'] else 'no'} | {_fmt(t['final_cpu_seconds'], 0)} |"
        )
    names = [p.name for p in proxies] + list(tasks[0]["baselines"]) if tasks else []
    table, medians = _proxy_lines(tasks, names)
    lines += ["", "Spearman with the final protocol's test accuracy (cells):", "", *table]
    lines += ["", _choice(medians, proxies)]
    layout = layout_check(next(iter(rows_by_task.values()), []))
    if layout is not None:
        lines += [
            "",
            f"Layout check on part 1's task ({layout['pairs']} cell-seed pairs): test accuracy "
            f"moved by {_fmt(layout['mean_abs_change_of_layout'])} points on average from the "
            f"default layout to channels-last, seed 0 to seed 1 by "
            f"{_fmt(layout['mean_abs_change_of_seed'])} (default, channels-last: "
            + ", ".join(f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in layout["by_pair"].items())
            + ").",
        ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(results / "summary.md", text)
    clean = json.loads(
        json.dumps({"tasks": tasks, "medians": medians, "layout_check": layout}),
        parse_constant=lambda _: None,
    )
    atomic_write_json(results / "summary.json", clean)
    print(text)


HEADER = """# Proxy agreement: short protocols against the final one

Written by `benchmarks/bench_proxy_agreement.py --report` from the journals beside it (rows so
far where a task is still running). Final protocol: NB201 C=16, N=1, 10 epochs and at least
790 SGD steps, mean test accuracy of seeds 0 and 1 on 1,000 images per class; proxies: seed
0, validation accuracy on 200 images per class, cost = training plus that validation pass (CPU
seconds of one thread). A task qualifies when its 30 labels' IQR is >= 3 x their seed noise
(a run's pooled std / sqrt 2).
"""
