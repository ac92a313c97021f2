"""Summary of bench_proxy_agreement.py's journals: ``summary.md`` and ``summary.json``.

Per task: whether it qualifies (the IQR of the 30 cells' final labels, each the mean test accuracy
of two runs (seeds 0 and 1), against a label's seed noise), and per proxy the Spearman and Kendall
correlation of the proxy's validation accuracy with the final labels, beside parameter count, NASWOT
and synflow (free baselines), the final protocol's own validation accuracy (what selecting on its
validation split reaches) and the earlier 10-epoch protocol (mean of seeds 0 and 1) where its rows
exist. Tasks and proxies still running are summarised from the rows so far; a correlation needs 10
cells.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from protocol_stats import agreement, fmt, iqr, mean, pooled_std, seed_groups, seed_mean_labels

from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.search.strategies.zero_cost import NaswotOrder, SynflowOrder
from diffusionnag.spaces import get_space

LABEL_SEEDS = (0, 1)
E10_SEEDS = (0, 1)
RATIO_NEEDED = 3.0
SPEARMAN_NEEDED = 0.8
MIN_PAIRS = 10
TASKS_NEEDED = 6
FULL_CELLS = 30


def _runs(rows: list[dict], protocol: str, seed: int = 0) -> dict[int, dict]:
    """Cell index -> the ``protocol`` run of ``seed`` that did not fail."""
    return {
        r["cell_index"]: r
        for r in rows
        if r["protocol"] == protocol and r["seed"] == seed and not r["failed"]
    }


def _cells(rows: list[dict], final: dict[int, dict]) -> dict[int, str]:
    """The cell string of every labelled cell index."""
    return {r["cell_index"]: r["cell"] for r in rows if r["cell_index"] in final}


def zero_cost_scores(task: str, cells: dict[int, str], cache: Path) -> dict[str, dict[int, float]]:
    """NASWOT and synflow on the task's own images (seed 0) per cell index, cached in ``cache``
    (a JSON file keyed by task, score and cell string): they take a few seconds a task."""
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    space = get_space("nb201")
    scores, computed = {}, False
    for name, order in (
        ("NASWOT, task images", NaswotOrder),
        ("synflow, task images", SynflowOrder),
    ):
        known = stored.setdefault(task, {}).setdefault(name, {})
        missing = [cell for cell in cells.values() if cell not in known]
        if missing:
            values = order(space, 0, task=task).scores([space.from_string(c) for c in missing])
            known.update(zip(missing, map(float, values), strict=True))
            computed = True
        scores[name] = {index: known[cell] for index, cell in cells.items()}
    if computed:
        atomic_write_json(cache, stored)
    return scores


def _cpu(rows: list[dict]) -> float:
    """Training plus the validation pass: what a proxy costs a search per cell."""
    return mean(r["train_cpu_seconds"] + r["valid_eval_cpu_seconds"] for r in rows)


def _seed_offset(final_runs: list[dict]) -> dict[str, float | int]:
    """Seed 0 minus seed 1 over the cells trained with both: the mean (an offset every cell of a
    seed shares, which cannot reorder cells trained with one seed) and the std of a run without
    it (the noise that can), as ``seed_std`` is a run's with it."""
    by_cell: dict[int, dict[int, float]] = {}
    for row in final_runs:
        by_cell.setdefault(row["cell_index"], {})[row["seed"]] = row["test"]
    diffs = np.array([t[0] - t[1] for t in by_cell.values() if 0 in t and 1 in t])
    if len(diffs) < 2:
        return {"seed_offset": math.nan, "offset_free_std": math.nan, "offset_cells": len(diffs)}
    offset_free = float(diffs.std(ddof=1)) / math.sqrt(2)
    return {
        "seed_offset": float(diffs.mean()),
        "offset_free_std": offset_free,
        "offset_cells": len(diffs),
    }


def summarise_task(
    name: str, rows: list[dict], proxies, cache: Path, final_name: str, e10_name: str
) -> dict:
    final_runs = [r for r in rows if r["protocol"] == final_name and not r["failed"]]
    final = seed_mean_labels(final_runs, LABEL_SEEDS)
    truth = {i: label["test"] for i, label in final.items()}
    # a run's seed std, pooled over every cell with two or more final runs; a label averages
    # LABEL_SEEDS runs
    run_noise, dof = pooled_std(seed_groups(final_runs, "test"))
    noise = run_noise / math.sqrt(len(LABEL_SEEDS))
    spread = iqr(truth.values())
    e10_runs = [r for r in rows if r["protocol"] == e10_name and not r["failed"]]
    e10 = {i: label["test"] for i, label in seed_mean_labels(e10_runs, E10_SEEDS).items()}

    def against_final(scores: dict[int, float]) -> dict[str, float]:
        return agreement(scores, truth, MIN_PAIRS)

    summary = {
        "task": name,
        "final_cells": len(final),
        "test_iqr": spread,
        "seed_std": noise,
        "seed_std_dof": dof,
        "ratio": spread / noise if noise > 0 else math.nan,
        **_seed_offset(final_runs),
        "final_cpu_seconds": mean(label["cpu"] for label in final.values()),
        "baselines": {
            "parameter count": against_final({i: r["params"] for i, r in final.items()}),
            "final protocol, valid": against_final({i: r["valid"] for i, r in final.items()}),
            "10 epochs, 2 seeds, test": against_final(e10),
            **{
                score: against_final(values)
                for score, values in zero_cost_scores(name, _cells(rows, final), cache).items()
            },
        },
        "proxies": {},
    }
    summary["qualifies"] = len(final) >= FULL_CELLS and summary["ratio"] >= RATIO_NEEDED
    checks = (proxy_seed_check(rows, proxy.name, truth) for proxy in proxies)
    summary["proxy_seed_checks"] = [check for check in checks if check is not None]
    for proxy in proxies:
        runs = _runs(rows, proxy.name)
        scores = {i: r["valid"] for i, r in runs.items()}
        summary["proxies"][proxy.name] = {
            **against_final(scores),
            "cells": len(runs),
            "cpu_seconds": _cpu(list(runs.values())),
        }
    return summary


def proxy_seed_check(rows: list[dict], proxy: str, truth: dict[int, float]) -> dict | None:
    """A proxy trained with seeds 0 and 1: how alike its two runs rank the cells, and how its
    two-run mean agrees with the final label beside seed 0's run alone; None below 30 cells."""
    runs = {seed: {i: r["valid"] for i, r in _runs(rows, proxy, seed).items()} for seed in (0, 1)}
    both = sorted(set(runs[0]) & set(runs[1]) & set(truth))
    if len(both) < FULL_CELLS:
        return None
    two = {i: (runs[0][i] + runs[1][i]) / 2 for i in both}
    return {
        "proxy": proxy,
        "cells": len(both),
        "between_seeds": agreement(runs[0], runs[1], MIN_PAIRS)["spearman"],
        "two_seed_mean": agreement(two, truth, MIN_PAIRS)["spearman"],
        "seed0": agreement({i: runs[0][i] for i in both}, truth, MIN_PAIRS)["spearman"],
    }


def _seed_check_line(task: str, check: dict) -> str:
    return (
        f"{task}: {check['proxy']} with seeds 0 and 1 ({check['cells']} cells): Spearman "
        f"{fmt(check['between_seeds'])} between the two runs; their mean against the final label "
        f"{fmt(check['two_seed_mean'])} (seed 0 alone {fmt(check['seed0'])})."
    )


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
        cells = " | ".join(f"{fmt(a['spearman'])} ({a['pairs']})" for a in per_task)
        lines.append(
            f"| {name} | {fmt(cost, 0)} | {cells} | {fmt(rho)} / {fmt(tau)} "
            f"({len(complete)} tasks) |"
        )
    return lines, medians


def _choice(medians: dict, proxies) -> str:
    good = [p for p in proxies if medians[p.name]["spearman"] >= SPEARMAN_NEEDED]
    if not good:
        return "no proxy reaches median Spearman 0.8 yet"
    best = min(good, key=lambda p: medians[p.name]["cpu"])
    tasks = medians[best.name]["tasks"]
    enough = "" if tasks >= TASKS_NEEDED else f" (the issue asks for {TASKS_NEEDED})"
    return (
        f"cheapest proxy with median Spearman >= 0.8: {best.name}, over {tasks} qualifying "
        f"tasks{enough}"
    )


def numerics_check(rows: list[dict], reference: str, protocol: str) -> dict | None:
    """On part 1's task: the check cells' test accuracy under ``reference`` (float32, the default
    layout: part 1's rows) against ``protocol`` (the same training in another layout or
    precision), seed by seed, beside the seed-to-seed differences of each."""
    default = {(r["cell_index"], r["seed"]): r["test"] for r in rows if r["protocol"] == reference}
    check = {(r["cell_index"], r["seed"]): r["test"] for r in rows if r["protocol"] == protocol}
    pairs = sorted(set(default) & set(check))
    if not pairs:
        return None
    changes = [check[k] - default[k] for k in pairs]
    cells = sorted({cell for cell, _ in pairs})
    by_seed = [
        abs(runs[(cell, 0)] - runs[(cell, 1)])
        for runs in (default, check)
        for cell in cells
        if (cell, 0) in runs and (cell, 1) in runs
    ]
    return {
        "protocol": protocol,
        "pairs": len(pairs),
        "mean_abs_change": float(np.mean(np.abs(changes))),
        "mean_change": float(np.mean(changes)),
        "mean_abs_change_of_seed": float(np.mean(by_seed)) if by_seed else math.nan,
        "by_pair": {f"cell {c} seed {s}": [default[c, s], check[c, s]] for c, s in pairs},
    }


def _check_line(check: dict) -> str:
    return (
        f"{check['protocol']} against float32 in the default layout at 10 epochs on part 1's task "
        f"({check['pairs']} cell-seed pairs): test accuracy moved by "
        f"{fmt(check['mean_abs_change'])} points on average ({fmt(check['mean_change'])} signed), "
        f"seed 0 to seed 1 by {fmt(check['mean_abs_change_of_seed'])} (float32 default / "
        + f"{check['protocol']}: "
        + ", ".join(f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in check["by_pair"].items())
        + ")."
    )


def write_report(
    rows_by_task: dict[str, list[dict]],
    results: Path,
    proxies,
    final_name: str,
    e10_name: str,
    checks: list[str],
) -> None:
    cache = results / "zero-cost.json"
    tasks = [
        summarise_task(n, rows, proxies, cache, final_name, e10_name)
        for n, rows in rows_by_task.items()
        if rows
    ]
    lines = [
        HEADER,
        "| task | cells | test IQR | label seed std (dof) | ratio | qualifies "
        "| final CPU s per cell |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in tasks:
        lines.append(
            f"| {t['task']} | {t['final_cells']} | {fmt(t['test_iqr'])} "
            f"| {fmt(t['seed_std'])} ({t['seed_std_dof']}) | {fmt(t['ratio'], 1)} "
            f"| {'yes' if t['qualifies'] else 'no'} | {fmt(t['final_cpu_seconds'], 0)} |"
        )
    lines += ["", *(_offset_line(t) for t in tasks if t["offset_cells"] >= 2)]
    names = [p.name for p in proxies] + list(tasks[0]["baselines"]) if tasks else []
    table, medians = _proxy_lines(tasks, names)
    lines += ["", "Spearman with the final protocol's test accuracy (cells):", "", *table]
    lines += ["", _choice(medians, proxies), ""]
    lines += [_seed_check_line(t["task"], c) for t in tasks for c in t["proxy_seed_checks"]]
    first = next(iter(rows_by_task.values()), [])
    numerics = [numerics_check(first, e10_name, name) for name in checks]
    numerics = [check for check in numerics if check is not None]
    lines += [line for check in numerics for line in ("", _check_line(check))]
    text = "\n".join(lines) + "\n"
    atomic_write_text(results / "summary.md", text)
    clean = json.loads(
        json.dumps({"tasks": tasks, "medians": medians, "numerics_checks": numerics}),
        parse_constant=lambda _: None,
    )
    atomic_write_json(results / "summary.json", clean)
    print(text)


def _offset_line(task: dict) -> str:
    offset_free = task["offset_free_std"] / math.sqrt(len(LABEL_SEEDS))
    return (
        f"{task['task']}: seed 0 minus seed 1 is {fmt(task['seed_offset'])} points on average "
        f"over {task['offset_cells']} cells; without that shared offset a run's seed std is "
        f"{fmt(task['offset_free_std'])} (a label's {fmt(offset_free)}, ratio "
        f"{fmt(task['test_iqr'] / offset_free, 1)})."
    )


HEADER = """# Proxy agreement: short protocols against the final one

Written by `benchmarks/bench_proxy_agreement.py --report` from the journals beside it (rows so
far where a task is still running). Final protocol: NB201 C=16, N=1, 20 epochs and at least
1,580 SGD steps, the mean test accuracy of two runs (seeds 0 and 1) on 1,000 images per class;
proxies: one run (seed 0), validation accuracy on 1,000 images per class (200 for those without
`-v1000`), cost = training plus that validation pass (CPU seconds of one thread). A task
qualifies when its 30 labels' IQR is >= 3 x a label's seed noise (a run's, pooled over the
cells' two runs, / sqrt 2).
"""
