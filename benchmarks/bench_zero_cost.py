"""Experiment: how well free proxies rank NAS-Bench-201 cells, against every table column.

Proxies: NASWOT and synflow (:mod:`diffusionnag.nn.zero_cost`, C=16, N=5 network at 32 px,
random inputs, one score per proxy seed), parameter count and FLOPs (CIFAR-10 settings, no seed).
Ground truth: each column of the shared table (cifar10, cifar100, ImageNet16-120 test accuracy
after 200 epochs). Cells are a seeded uniform sample of the table; scores land one line per
(cell, proxy seed) in a resumable journal: the first proxy seed for every cell, then the others
for the sample's first ``--seed-cells`` cells. The summary is rewritten every
``--summary-every`` lines, so a partial run still reports.
Usage (one thread, low priority, in the background):

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_zero_cost.py \\
        --cells 1000 --proxy-seeds 0 1 2 --seed-cells 200 > runs/zero-cost/log.txt 2>&1 &
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.nb201_table import DATASETS, NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.metrics import rank_correlations
from diffusionnag.nn.nb201 import nb201_costs
from diffusionnag.nn.zero_cost import PROXIES, proxy_score
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()
COSTS = ("params", "flops")
TOP_K = 10
"""The summary also reports the best accuracy among each proxy's TOP_K highest-scoring cells."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--proxy-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--seed-cells",
        type=int,
        default=200,
        help="how many of the cells (the sample's first) are scored at the proxy seeds after "
        "the first, to show how much a proxy depends on its seed",
    )
    parser.add_argument("--journal", type=Path, default=Path("runs/zero-cost/scores.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zero-cost"))
    parser.add_argument("--summary-every", type=int, default=100)
    parser.add_argument(
        "--summary-only", action="store_true", help="summarise the journal, score nothing new"
    )
    return parser.parse_args()


def sample_cells(table: NB201Table, cells: int, seed: int) -> list[Arch]:
    """A uniform sample in random order, so that any prefix is a uniform sample too."""
    chosen = np.random.default_rng(seed).choice(len(table), size=cells, replace=False)
    return [table.archs[i] for i in chosen]


def read_journal(path: Path) -> tuple[dict[tuple[str, int], dict[str, float]], dict]:
    """Scores by (cell string, proxy seed), and seconds per proxy per line where recorded.

    A torn last line (the run was killed mid-write) is skipped.
    """
    scores: dict[tuple[str, int], dict[str, float]] = {}
    seconds: dict[str, list[float]] = {p: [] for p in PROXIES}
    if not path.is_file():
        return scores, seconds
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        scores[(row["cell"], row["seed"])] = {p: _from_json(row[p]) for p in PROXIES}
        for proxy, spent in row.get("seconds", {}).items():
            seconds[proxy].append(spent)
    return scores, seconds


def _from_json(value: float | None) -> float:
    """The journal writes a singular NASWOT kernel's ``-inf`` as null (strict JSON)."""
    return -math.inf if value is None else float(value)


def score_one(arch: Arch, seed: int) -> dict:
    """One journal line: both proxies of ``arch`` at proxy seed ``seed``, and their seconds."""
    row: dict = {"cell": SPACE.to_string(arch), "seed": seed, "seconds": {}}
    for proxy in PROXIES:
        start = time.perf_counter()
        value = proxy_score(proxy, arch, seed=seed)
        row["seconds"][proxy] = round(time.perf_counter() - start, 4)
        row[proxy] = None if value == -math.inf else value  # strict JSON has no -Infinity
    return row


def correlations(cells: list[Arch], table: NB201Table, scores: dict) -> list[dict]:
    """Rows per (proxy, proxy seed or None, cell set, dataset): each proxy seed over the cells it
    scored, and also over the cells scored at every seed, so that seeds compare like for like."""
    keys = [SPACE.to_string(arch) for arch in cells]
    seeds = sorted({seed for _, seed in scores})
    common = [i for i, key in enumerate(keys) if all((key, s) in scores for s in seeds)]
    rows = []
    for name in COSTS:
        values = [nb201_costs(arch)[name] for arch in cells]
        rows += _rows_for(name, None, cells, values, table)
    for name, seed in itertools.product(PROXIES, seeds):
        scored = [i for i, key in enumerate(keys) if (key, seed) in scores]
        for subset in [scored] + ([common] if len(common) < len(scored) else []):
            values = [scores[(keys[i], seed)][name] for i in subset]
            rows += _rows_for(name, seed, [cells[i] for i in subset], values, table)
    return rows


def _rows_for(
    name: str, seed: int | None, cells: list[Arch], values: list[float], table: NB201Table
) -> list[dict]:
    if len(cells) < 3:
        return []
    rows = []
    ranked = _finite_floor(values)
    top = np.argsort(-ranked, kind="stable")[:TOP_K]
    for dataset in DATASETS:
        truth = [table.accuracy(arch, dataset) for arch in cells]
        result = rank_correlations(ranked, truth)
        result[f"top{TOP_K}_best"] = max(truth[i] for i in top)
        result["best"] = max(truth)
        rows.append(
            {"proxy": name, "seed": seed, "dataset": dataset, "cells": len(cells), **result}
        )
    return rows


def seed_agreement(scores: dict) -> list[dict]:
    """Rank agreement of each proxy seed with the first, over the cells both have scored."""
    seeds = sorted({seed for _, seed in scores})
    rows = []
    for name in PROXIES:
        for seed in seeds[1:]:
            cells = [c for c, s in scores if s == seed and (c, seeds[0]) in scores]
            if len(cells) < 3:
                continue
            first = _finite_floor([scores[(c, seeds[0])][name] for c in cells])
            other = _finite_floor([scores[(c, seed)][name] for c in cells])
            result = rank_correlations(first, other)
            rows.append({"proxy": name, "seeds": [seeds[0], seed], "cells": len(cells), **result})
    return rows


def _finite_floor(values: list[float]) -> np.ndarray:
    """``-inf`` (a singular kernel: the network cannot tell inputs apart) ties below the rest."""
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    floor = finite.min() - 1.0 if finite.size else 0.0
    return np.where(np.isfinite(array), array, floor)


def summarise(cells: list[Arch], table: NB201Table, scores: dict, seconds: dict) -> dict:
    return {
        "seconds_per_cell": {p: float(np.mean(s)) for p, s in seconds.items() if s},
        "correlations": correlations(cells, table, scores),
        "seed_agreement": seed_agreement(scores),
    }


def write_summary(out: Path, summary: dict, args: argparse.Namespace) -> None:
    atomic_write_json(out / "summary.json", {"args": _jsonable(vars(args)), **summary})
    seconds = summary["seconds_per_cell"]
    lines = [
        "# Zero-cost proxies vs the NAS-Bench-201 table",
        "",
        f"{args.cells} cells sampled with seed {args.sample_seed}; network C=16, N=5, 32 px, "
        "10 outputs, PyTorch's default initialisation from the proxy seed; NASWOT on 64 "
        "standard-normal images, synflow on one all-ones image (float64, BN as identity). "
        "Parameters and FLOPs: CIFAR-10 settings, no seed. Ground truth: the shared table's "
        "test accuracy after 200 epochs, per column.",
        "",
        "Seconds per cell (one thread, shared machine): "
        + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()),
        "",
        *_correlation_table(summary["correlations"]),
        "",
        f"Best test accuracy among each proxy's {TOP_K} highest-scoring cells (what evaluating "
        f"its first {TOP_K} picks would find), and the best of all the cells it scored:",
        "",
        *_top_k_table(summary["correlations"]),
        "",
        "Seed dependence: rank agreement of each proxy seed with the first over shared cells.",
        "",
        "| proxy | seeds | cells | Spearman | Kendall |",
        "|---|---|---|---|---|",
        *(
            f"| {r['proxy']} | {r['seeds'][0]} vs {r['seeds'][1]} | {r['cells']} "
            f"| {r['spearman']:.3f} | {r['kendall_tau']:.3f} |"
            for r in summary["seed_agreement"]
        ),
        "",
        "Command: `OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_zero_cost.py "
        + " ".join(_cli(k, v) for k, v in vars(args).items() if k != "summary_only")
        + "`",
        "",
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def _correlation_table(rows: list[dict]) -> list[str]:
    columns = {"Spearman": "spearman", "Kendall": "kendall_tau"}
    return _per_dataset_table(rows, columns, "{:.3f}")


def _top_k_table(rows: list[dict]) -> list[str]:
    return _per_dataset_table(
        rows, {f"top-{TOP_K} best": f"top{TOP_K}_best", "best": "best"}, "{:.2f}"
    )


def _per_dataset_table(rows: list[dict], columns: dict[str, str], fmt: str) -> list[str]:
    """One line per (proxy, seed, cells); per dataset, one column per ``columns`` entry."""
    lines = [
        "| proxy | proxy seed | cells | "
        + " | ".join(f"{d} {title}" for d in DATASETS for title in columns)
        + " |",
        "|---|---|---|" + "---|" * (len(DATASETS) * len(columns)),
    ]
    keyed: dict[tuple, dict] = {}
    for row in rows:
        keyed.setdefault((row["proxy"], row["seed"], row["cells"]), {})[row["dataset"]] = row
    for (proxy, seed, cells), by_dataset in keyed.items():
        values = " | ".join(
            fmt.format(by_dataset[d][key]) for d in DATASETS for key in columns.values()
        )
        lines.append(f"| {proxy} | {'-' if seed is None else seed} | {cells} | {values} |")
    return lines


def _jsonable(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def _cli(name: str, value: object) -> str:
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"--{name.replace('_', '-')} {text}"


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    table = NB201Table.from_csv(default_table_path())
    cells = sample_cells(table, args.cells, args.sample_seed)
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    scores, seconds = read_journal(args.journal)
    todo = [
        (seed, arch)
        for seed in args.proxy_seeds  # every cell at the first seed before any at the next
        for arch in (cells if seed == args.proxy_seeds[0] else cells[: args.seed_cells])
        if (SPACE.to_string(arch), seed) not in scores
    ]
    if args.summary_only:
        todo = []
    print(f"{len(scores)} scores journalled, {len(todo)} to go", flush=True)
    with args.journal.open("a") as journal:
        for done, (seed, arch) in enumerate(todo, start=1):
            row = score_one(arch, seed)
            journal.write(json.dumps(row) + "\n")
            journal.flush()
            scores[(row["cell"], seed)] = {p: _from_json(row[p]) for p in PROXIES}
            for proxy, spent in row["seconds"].items():
                seconds[proxy].append(spent)
            if done % args.summary_every == 0:
                write_summary(args.out, summarise(cells, table, scores, seconds), args)
                print(f"{done}/{len(todo)} done", flush=True)
    write_summary(args.out, summarise(cells, table, scores, seconds), args)


if __name__ == "__main__":
    main()
