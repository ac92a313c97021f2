"""Evaluations a strategy needs to reach the NATS-Bench optimum under given options: a quick,
sequential check for choosing a strategy's defaults (the full comparison is
``diffusionnag benchmark``). Prints the median over seeds and every run's count (999 = not
reached within the budget). Usage:

    .venv/bin/python benchmarks/bench_search_options.py diffusionnag-bo --option acquisition=ei \\
        --seeds 10 --datasets cifar10
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from diffusionnag.cli.search import parse_options
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces import get_space

NOT_REACHED = 999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("strategy")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+N-1")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--datasets", nargs="+", default=["cifar10"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = parse_options(args.option)
    space = get_space("nb201")
    table = NB201Table.from_csv(default_table_path())
    for dataset in args.datasets:
        evaluator = TableEvaluator(table, dataset)
        _, optimum = table.optimum(dataset)
        started, counts = time.perf_counter(), []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            strategy = get_strategy(args.strategy, space, seed, **options)
            history = run_search(
                strategy, evaluator, space, args.budget, progress=False, stop_value=optimum
            )
            reached = history.best is not None and history.best.value >= optimum
            counts.append(len(history) if reached else NOT_REACHED)
        row = {
            "strategy": args.strategy,
            "options": options,
            "seeds": f"{args.first_seed}..{args.first_seed + args.seeds - 1}",
            "dataset": dataset,
            "median_evals_to_optimum": float(np.median(counts)),
            "evals": counts,
            "seconds": round(time.perf_counter() - started),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
