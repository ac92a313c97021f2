"""Experiment: seconds of each strategy's first ask on an empty NB201 history, one thread.

For strategies that do their work up front (the free baselines score their whole pool on the
first ask), this is the number their default pool size was chosen by. Usage:

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python benchmarks/bench_first_ask.py \\
        params zc-synflow zc-naswot
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from diffusionnag.search.history import History
from diffusionnag.search.strategies import STRATEGIES, get_strategy
from diffusionnag.spaces.nb201 import NB201Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("strategies", nargs="+", choices=sorted(STRATEGIES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = NB201Space()
    print("| strategy | options | first ask (s) | load average |")
    print("|---|---|---|---|")
    for name in args.strategies:
        strategy = get_strategy(name, space, args.seed)
        start = time.perf_counter()
        strategy.ask(History(space), 1)
        seconds = time.perf_counter() - start
        load = os.getloadavg()[0]
        print(f"| {name} | {strategy.options()} | {seconds:.1f} | {load:.1f} |", flush=True)


if __name__ == "__main__":
    main()
