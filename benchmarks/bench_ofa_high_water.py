"""Issue-27 part 3: high-water marks of the ``ofa:imagenet`` evaluator under each budget.

Regularised evolution (population 100, tournament 25) with many evaluations per seed, on the
restricted space of each budget, so that "a search reached the best" has a yardstick: the best
predicted ImageNet top-1 any of these long runs found. Writes ``summary.json`` and
``summary.md`` (rewritten after every run, so an interrupted benchmark still reports). Usage:

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_ofa_high_water.py \
        --evaluations 20000 --seeds 0 1 2 --out benchmarks/results/ofa-high-water
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.ofa import load_ofa_evaluator
from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.search.run import search_trials
from diffusionnag.search.strategies import get_strategy

BUDGETS = {
    "flops<=300M": {"flops": 300e6},
    "flops<=450M": {"flops": 450e6},
    "latency<=25ms": {"latency_ms": 25.0},
    "unconstrained": {},
}
CHECKPOINTS = (50, 100, 200, 1000, 5000, 20000)
EVOLUTION = {"population_size": 100, "sample_size": 25}


def run_one(budget: str, seed: int, evaluations: int, resolution: int) -> dict:
    evaluator = load_ofa_evaluator(resolution=resolution, limits=BUDGETS[budget])
    space = evaluator.search_space()
    strategy = get_strategy("evolution", space, seed, **EVOLUTION)
    started = time.perf_counter()
    history = search_trials(strategy, evaluator, space, evaluations, [])
    best = history.best
    curve = history.best_so_far()
    return {
        "budget": budget,
        "seed": seed,
        "best": best.value,
        "arch": space.to_string(best.arch),
        "metrics": best.metrics,
        "found_at": best.index + 1,
        "best_at": {str(n): float(curve[n - 1]) for n in CHECKPOINTS if n <= len(curve)},
        "failed": sum(not t.ok for t in history),
        "seconds": round(time.perf_counter() - started, 1),
    }


def summarise(runs: list[dict], settings: dict) -> str:
    lines = [
        "# ofa:imagenet high-water marks (issue 27 part 3)",
        "",
        f"Command: `{settings['command']}`",
        "",
        f"Regularised evolution {EVOLUTION}, {settings['evaluations']} evaluations per run, "
        f"resolution {settings['resolution']} px, width 1.2. Value: OFA-predicted ImageNet top-1 "
        "(%, inherited weights). FLOPs are multiply-accumulates (`mbv3_costs` at width 1.2); "
        "latency is the Note10 table sum. A cell over budget is a failed trial costing one "
        "evaluation; evolution searches the restricted space, so `failed` counts should be 0.",
        "",
        "| budget | high-water | seeds | best per seed | best@200 (median) | found at (median) "
        "| MFLOPs / ms of the best | best cell |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for budget in BUDGETS:
        mine = [run for run in runs if run["budget"] == budget]
        if not mine:
            continue
        top = max(mine, key=lambda run: run["best"])
        at_200 = np.median([run["best_at"].get("200", np.nan) for run in mine])
        found = np.median([run["found_at"] for run in mine])
        costs = f"{top['metrics']['flops'] / 1e6:.1f} / {top['metrics']['latency_ms']:.2f}"
        per_seed = ", ".join(f"{run['best']:.3f}" for run in mine)
        lines.append(
            f"| {budget} | {top['best']:.3f} | {len(mine)} | {per_seed} | {at_200:.3f} "
            f"| {found:.0f} | {costs} | `{top['arch']}` |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--evaluations", type=int, default=20000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ofa-high-water"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = {
        "command": shlex.join(["python", *sys.argv]),
        "evaluations": args.evaluations,
        "resolution": args.resolution,
        "evolution": EVOLUTION,
    }
    runs = []
    for seed in args.seeds:  # every budget's first seed first: an interrupted run still reports
        for budget in args.budgets:
            runs.append(run_one(budget, seed, args.evaluations, args.resolution))
            print(f"{budget} seed {seed}: {runs[-1]['best']:.3f} in {runs[-1]['seconds']}s")
            atomic_write_json(args.out / "summary.json", {"settings": settings, "runs": runs})
            atomic_write_text(args.out / "summary.md", summarise(runs, settings))


if __name__ == "__main__":
    main()
