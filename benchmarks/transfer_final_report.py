"""Summary of bench_transfer_final.py's rows: ``summary.md`` and ``summary.json``.

A cell's label is its final-protocol test accuracy (mean of seeds 0 and 1, as part 2 defines it). A
run at budget k keeps, of its first k cells, the best by proxy validation accuracy (seed 0); the
report places that cell's label among the reference's 50 labels (percentile: the share of them it
beats) and gives its regret (the reference's best label minus its own), median and quartiles over
targets and run seeds, for all targets and for the fresh ones alone, and checks the issue's targets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from protocol_stats import fmt

from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.spaces import get_space
from diffusionnag.transfer.reference import Placement

SPACE = get_space("nb201")
METHODS = ("conditioned", "unconditioned", "old", "params", "naswot", "synflow", "random")
FREE = ("params", "naswot", "synflow")
Runs = dict[str, list[list[str]]]


def cell_key(cell: str) -> str:
    """One key for the cells that compute the same function."""
    return SPACE.canonical_key(SPACE.from_string(cell))


def proxy_scores(rows: list[dict], proxy: str) -> dict[str, float]:
    seed0 = (r for r in rows if r["protocol"] == proxy and r["seed"] == 0)
    return {cell_key(r["cell"]): r["valid"] for r in seed0}


def final_labels(rows: list[dict], final: str, seeds: tuple[int, ...]) -> dict[str, float]:
    """Canonical key -> mean test accuracy of the ``final`` protocol's runs of ``seeds``."""
    runs: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["protocol"] == final and row["seed"] in seeds:
            runs.setdefault(cell_key(row["cell"]), {})[row["seed"]] = row["test"]
    return {k: float(np.mean(list(v.values()))) for k, v in runs.items() if len(v) == len(seeds)}


def choose(run: list[str], budget: int, scores: dict[str, float]) -> str | None:
    """The best of the run's first ``budget`` cells by proxy score (the first of equal scores,
    as a search keeps it); ``None`` until each has a score."""
    cells = run[:budget]
    if any(cell_key(cell) not in scores for cell in cells):
        return None
    return max(cells, key=lambda cell: scores[cell_key(cell)])


def chosen_cells(runs: list[list[str]], rows: list[dict], proxy: str, budgets) -> list[str]:
    """The cells the runs choose at the budgets, as far as their proxy rows exist."""
    scores = proxy_scores(rows, proxy)
    found = {choose(run, budget, scores) for run in runs for budget in budgets}
    return sorted(cell for cell in found if cell is not None)


Final = tuple[str, tuple[int, ...]]
"""The final protocol's name and the seeds a label averages."""


def _outcomes(
    rows: list[dict], runs: Runs, final: Final, proxy: str, reference: list[str], budgets
) -> dict:
    """Per method and budget: (percentile, regret) of every run whose chosen cell has a label;
    empty until every reference cell has its label."""
    labels, scores = final_labels(rows, *final), proxy_scores(rows, proxy)
    if any(cell_key(cell) not in labels for cell in reference):
        return {}
    tests = np.asarray([labels[cell_key(cell)] for cell in reference])
    out: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for method, method_runs in runs.items():
        for budget in budgets:
            for run in method_runs:
                chosen = choose(run, budget, scores)
                if chosen is None or cell_key(chosen) not in labels:
                    continue
                label = labels[cell_key(chosen)]
                place = Placement(int((tests < label).sum()), len(tests), float(tests.max()))
                entry = (place.percentile, place.best - label)
                out.setdefault(method, {}).setdefault(budget, []).append(entry)
    return out


def _quartiles(values: list[float]) -> str:
    if not values:
        return "-"
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.1f} ({q1:.1f} to {q3:.1f})"


def _table(per_target: dict[str, dict], names: list[str], budgets) -> tuple[list[str], dict]:
    lines = [
        "| budget | method | runs | percentile: median (IQR) | regret, points: median (IQR) |",
        "| --- | --- | --- | --- | --- |",
    ]
    medians: dict[str, dict[int, tuple[float, float]]] = {}
    for budget in budgets:
        for method in METHODS:
            entries = [e for n in names for e in per_target[n].get(method, {}).get(budget, [])]
            if not entries:
                continue
            percentiles, regrets = [e[0] for e in entries], [e[1] for e in entries]
            medians.setdefault(method, {})[budget] = (
                float(np.median(percentiles)),
                float(np.median(regrets)),
            )
            lines.append(
                f"| {budget} | {method} | {len(entries)} | {_quartiles(percentiles)} "
                f"| {_quartiles(regrets)} |"
            )
    return lines, medians


def checks(medians: dict) -> list[str]:
    """The issue's targets, each with its measured figures; empty until the methods ran."""
    if "conditioned" not in medians or not all(m in medians for m in FREE):
        return []
    ours = medians["conditioned"]
    lines = [f"- best of 2 at >= 95th percentile: {fmt(ours[2][0], 1)} ({ours[2][0] >= 95})"]
    for budget in (1, 2, 3):
        free = max(medians[m][budget][0] for m in FREE)
        lines.append(
            f"- budget {budget}: percentile {fmt(ours[budget][0], 1)} against the best free "
            f"baseline's {fmt(free, 1)} (never behind: {ours[budget][0] >= free})"
        )
    for budget in (1, 2):
        free = min(medians[m][budget][1] for m in FREE)
        lines.append(
            f"- budget {budget}: regret {fmt(ours[budget][1])} against the best free baseline's "
            f"{fmt(free)} (strictly ahead: {ours[budget][1] < free})"
        )
    if "old" in medians:
        old = medians["old"][1][0]
        lines.append(
            f"- budget 1 against the 2-epoch meta-predictor: percentile {fmt(ours[1][0], 1)} "
            f"against {fmt(old, 1)} (ahead: {ours[1][0] > old})"
        )
    return lines


def write_report(
    targets: dict[str, tuple[list[dict], Runs]],
    fresh: set[str],
    results: Path,
    final: Final,
    proxy: str,
    reference: list[str],
    budgets,
) -> None:
    per_target = {
        name: _outcomes(rows, runs, final, proxy, reference, budgets)
        for name, (rows, runs) in targets.items()
    }
    ready = [name for name, outcome in per_target.items() if outcome]
    lines = [HEADER.format(proxy=proxy, ready=len(ready), total=len(targets))]
    summary = {}
    for title, names in (
        ("All targets", ready),
        ("Fresh targets", [n for n in ready if n in fresh]),
    ):
        table, medians = _table(per_target, names, budgets)
        lines += ["", f"## {title} ({len(names)})", "", *table, "", *checks(medians)]
        summary[title] = {"targets": names, "medians": medians}
    text = "\n".join(lines) + "\n"
    atomic_write_text(results / "summary.md", text)
    atomic_write_json(results / "summary.json", json.loads(json.dumps(summary)))
    print(text)


HEADER = """# Transfer under the final protocol, held-out targets

Written by `benchmarks/bench_transfer_final.py --stage report --proxy {proxy}`. Budget k: a run
trains its first k cells with the proxy ({proxy}, seed 0), keeps the best by proxy validation
accuracy, and is scored by that cell's final label (test accuracy, whole test split) against
the reference's random cells. Targets with a complete reference:
{ready} of {total}."""
