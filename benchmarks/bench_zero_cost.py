"""Experiment: how well free proxies rank NAS-Bench-201 cells, against every table column.

Proxies: NASWOT and synflow (:mod:`diffusionnag.nn.zero_cost`, C=16, N=5 network at 32 px,
random inputs, one score per proxy seed), parameter count and FLOPs (CIFAR-10 settings, no seed).
Ground truth: each column of the shared table (cifar10, cifar100, ImageNet16-120 test accuracy
after 200 epochs). Cells are a seeded uniform sample of the table; scores land one line per
(cell, proxy seed) in a resumable journal, proxy seed 0 first for every cell, then seed 1, ...,
and the summary is rewritten every ``--summary-every`` lines so a partial run still reports.
Usage (one thread, low priority, in the background):

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_zero_cost.py \\
        --cells 1000 --proxy-seeds 0 1 2 > runs/zero-cost/log.txt 2>&1 &
"""

from __future__ import annotations

import argparse
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--proxy-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--journal", type=Path, default=Path("runs/zero-cost/scores.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/zero-cost"))
    parser.add_argument("--summary-every", type=int, default=100)
    return parser.parse_args()


def sample_cells(table: NB201Table, cells: int, seed: int) -> list[Arch]:
    chosen = np.random.default_rng(seed).choice(len(table), size=cells, replace=False)
    return [table.archs[i] for i in sorted(chosen)]


def read_journal(path: Path) -> dict[tuple[str, int], dict[str, float]]:
    """Scores by (cell string, proxy seed); a torn last line (killed mid-write) is skipped."""
    done: dict[tuple[str, int], dict[str, float]] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[(row["cell"], row["seed"])] = {p: _from_json(row[p]) for p in PROXIES}
    return done


def _from_json(value: float | None) -> float:
    """The journal writes a singular NASWOT kernel's ``-inf`` as null (strict JSON)."""
    return -math.inf if value is None else float(value)


def correlations(cells: list[Arch], table: NB201Table, scores: dict) -> list[dict]:
    """One row per (proxy, proxy seed or None, dataset) over the cells that have that score."""
    rows = []
    costs = [nb201_costs(arch) for arch in cells]
    seeds = sorted({seed for _, seed in scores})
    for name in PROXIES + COSTS:
        for seed in [None] if name in COSTS else seeds:
            if name in COSTS:
                have = cells
                values = [c[name] for c in costs]
            else:
                have = [a for a in cells if (SPACE.to_string(a), seed) in scores]
                values = [scores[(SPACE.to_string(a), seed)][name] for a in have]
            if len(have) < 3:
                continue
            for dataset in DATASETS:
                truth = [table.accuracy(arch, dataset) for arch in have]
                result = rank_correlations(_finite_floor(values), truth)
                rows.append(
                    {"proxy": name, "seed": seed, "dataset": dataset, "cells": len(have), **result}
                )
    return rows


def _finite_floor(values: list[float]) -> np.ndarray:
    """``-inf`` (a singular kernel: the network cannot tell inputs apart) ties below the rest."""
    array = np.asarray(values, dtype=float)
    finite = array[np.isfinite(array)]
    floor = finite.min() - 1.0 if finite.size else 0.0
    return np.where(np.isfinite(array), array, floor)


def write_summary(out: Path, rows: list[dict], args: argparse.Namespace, seconds: dict) -> None:
    atomic_write_json(
        out / "summary.json",
        {"args": _jsonable(vars(args)), "seconds_per_cell": seconds, "rows": rows},
    )
    lines = [
        "# Zero-cost proxies vs the NAS-Bench-201 table",
        "",
        f"{args.cells} cells sampled with seed {args.sample_seed}; network C=16, N=5, 32 px, "
        "10 outputs, PyTorch's default initialisation from the proxy seed; NASWOT on 64 "
        "standard-normal images, synflow on one all-ones image (float64, BN as identity). "
        "Parameters and FLOPs: CIFAR-10 settings, no seed.",
        "",
        "Seconds per cell (one thread): " + ", ".join(f"{k} {v:.3f}" for k, v in seconds.items()),
        "",
        "| proxy | proxy seed | cells | "
        + " | ".join(f"{d} Spearman | {d} Kendall" for d in DATASETS)
        + " |",
        "|---|---|---|" + "---|---|" * len(DATASETS),
    ]
    keyed: dict[tuple, dict] = {}
    for row in rows:
        keyed.setdefault((row["proxy"], row["seed"], row["cells"]), {})[row["dataset"]] = row
    for (proxy, seed, cells), by_dataset in keyed.items():
        cols = " | ".join(
            f"{by_dataset[d]['spearman']:.3f} | {by_dataset[d]['kendall_tau']:.3f}"
            for d in DATASETS
        )
        lines.append(f"| {proxy} | {'-' if seed is None else seed} | {cells} | {cols} |")
    lines += [
        "",
        "Command: `OMP_NUM_THREADS=1 nice -n 15 python benchmarks/bench_zero_cost.py "
        + " ".join(f"--{k.replace('_', '-')} {_cli(v)}" for k, v in vars(args).items())
        + "`",
        "",
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines))


def _jsonable(values: dict) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def _cli(value: object) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    table = NB201Table.from_csv(default_table_path())
    cells = sample_cells(table, args.cells, args.sample_seed)
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    scores = read_journal(args.journal)
    seconds = {p: [] for p in PROXIES}
    todo = [
        (seed, arch)
        for seed in args.proxy_seeds
        for arch in cells
        if (SPACE.to_string(arch), seed) not in scores
    ]
    print(f"{len(scores)} scores journalled, {len(todo)} to go", flush=True)
    with args.journal.open("a") as journal:
        for done, (seed, arch) in enumerate(todo, start=1):
            row = {"cell": SPACE.to_string(arch), "seed": seed}
            for proxy in PROXIES:
                start = time.perf_counter()
                row[proxy] = proxy_score(proxy, arch, seed=seed)
                seconds[proxy].append(time.perf_counter() - start)
            scores[(row["cell"], seed)] = {p: row[p] for p in PROXIES}
            journal.write(
                json.dumps({k: None if v == -math.inf else v for k, v in row.items()}) + "\n"
            )
            journal.flush()
            if done % args.summary_every == 0 or done == len(todo):
                mean = {p: float(np.mean(s)) for p, s in seconds.items() if s}
                write_summary(args.out, correlations(cells, table, scores), args, mean)
                print(f"{done}/{len(todo)} done", flush=True)
    if not todo:
        write_summary(args.out, correlations(cells, table, scores), args, {})


if __name__ == "__main__":
    main()
