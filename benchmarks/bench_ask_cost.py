"""Seconds per ask of a strategy as the history grows, on one torch thread.

The history is ``n`` distinct random NB201 cells with their table accuracy (seeded), so the
figure is the cost of one model-based ask at history ``n`` and nothing else: the first ask at a
size is not timed (it loads the score model), then ``--repeats`` asks on the same history are,
and their median is printed with the time spent fitting the surrogate alone and that surrogate's
rank correlation with the table on 1,000 other random cells. Usage:

    nice -n 10 .venv/bin/python benchmarks/bench_ask_cost.py diffusionnag-bo \\
        --sizes 20 100 200 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from diffusionnag.cli.search import parse_options
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.metrics import rank_correlations
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces import Arch, get_space

HELD_OUT = 1000


def random_history(table: NB201Table, dataset: str, size: int, seed: int) -> History:
    """``size`` trials of distinct canonical classes drawn uniformly from the table."""
    space = get_space("nb201")
    history = History(space)
    rng = np.random.default_rng(seed)
    while len(history) < size:
        arch = space.sample(1, rng)[0]
        if not history.is_seen(arch):
            history.record(arch, table.query(arch, dataset=dataset))
    return history


def timed(call: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``call()``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def held_out(
    table: NB201Table, dataset: str, history: History, seed: int
) -> tuple[list[Arch], np.ndarray]:
    """``HELD_OUT`` random cells of classes not in ``history`` and their accuracies."""
    cells = random_history(table, dataset, HELD_OUT + len(history), seed + 1)
    kept = [t for t in cells if not history.is_seen(t.arch)][:HELD_OUT]
    return [t.arch for t in kept], np.array([t.value for t in kept])


def ask_seconds(
    strategy: SearchStrategy,
    history: History,
    test: tuple[list[Arch], np.ndarray],
    repeats: int,
) -> dict[str, Any]:
    """Median seconds of one ask; where the strategy exposes its surrogate fit, also the fit's
    seconds and its rank correlation with the true accuracy on ``test``."""
    strategy.ask(history)  # untimed: loads the score model, warms caches
    row: dict[str, Any] = {
        "seconds_per_ask": round(timed(lambda: strategy.ask(history), repeats), 3)
    }
    fit = getattr(strategy, "fit_surrogate", None)
    if fit is not None:
        seconds = timed(lambda: fit(history, np.random.default_rng(0)), repeats)
        mean, _ = fit(history, np.random.default_rng(0)).mean_std(test[0])
        correlations = rank_correlations(mean.numpy(), test[1])
        row["seconds_fit"] = round(seconds, 3)
        row["held_out"] = {name: round(value, 4) for name, value in correlations.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("strategy")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 100, 200])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    options = parse_options(args.option)
    table = NB201Table.from_csv(default_table_path())
    print("command:", " ".join(sys.argv), flush=True)
    rows = []
    for size in args.sizes:
        history = random_history(table, args.dataset, size, args.seed)
        strategy = get_strategy(args.strategy, get_space("nb201"), args.seed, **options)
        row = {"strategy": args.strategy, "options": options, "history": size}
        test = held_out(table, args.dataset, history, args.seed)
        row.update(ask_seconds(strategy, history, test, args.repeats))
        rows.append(row)
        print(json.dumps(row), flush=True)
    first, last = rows[0]["seconds_per_ask"], rows[-1]["seconds_per_ask"]
    print(f"ratio s/ask history {args.sizes[-1]} / {args.sizes[0]}: {last / first:.2f}")


if __name__ == "__main__":
    main()
