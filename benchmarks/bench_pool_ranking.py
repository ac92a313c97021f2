"""Where DiffusionNAG-BO loses the optimum: the candidate pool, or the ranking of the pool?

For ``--histories`` random NB201 histories of ``--size`` cells (seeded, table accuracies), one
ask's pool is built for each ``--pools`` source with the strategy's own ensemble, and the table
rank (0 = the optimum; among all 15,625 cells) is printed for: the best cell in the pool, the
acquisition's pick (EI, the default) and the ensemble mean's pick, with the Spearman
correlation of the ensemble mean and the table inside the pool. Medians over histories, and
every history's figures. Usage:

    .venv/bin/python benchmarks/bench_pool_ranking.py --dataset ImageNet16-120 --size 30
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.metrics import rank_correlations
from diffusionnag.search.history import History
from diffusionnag.search.strategies import get_strategy
from diffusionnag.search.strategies.acquisition import expected_improvement
from diffusionnag.spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="ImageNet16-120")
    parser.add_argument("--size", type=int, default=30)
    parser.add_argument("--histories", type=int, default=6)
    parser.add_argument("--pools", nargs="+", default=["diffusion", "random", "mix"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    table = NB201Table.from_csv(default_table_path())
    accuracies = table.accuracies(args.dataset)

    def rank(value: float) -> int:
        return int((accuracies > value).sum())

    for pool_name in args.pools:
        rows = []
        for seed in range(args.histories):
            history = History(space)
            rng = np.random.default_rng(seed)
            while len(history) < args.size:
                arch = space.sample(1, rng)[0]
                if not history.is_seen(arch):
                    history.record(arch, table.query(arch, dataset=args.dataset))
            strategy = get_strategy("diffusionnag-bo", space, 0, pool=pool_name)
            draws = np.random.default_rng(1)
            surrogate = strategy.fit_surrogate(history, draws)  # type: ignore[attr-defined]
            pool = strategy.candidate_pool(surrogate, history, draws)  # type: ignore[attr-defined]
            true = np.array([table.query(a, dataset=args.dataset).value for a in pool])
            mean, std = surrogate.mean_std(pool)
            best = max(t.value for t in history)
            ei = expected_improvement(mean, std, best).numpy()
            rows.append(
                {
                    "pool_cells": len(pool),
                    "rank_pool_best": rank(true.max()),
                    "rank_ei_pick": rank(true[int(np.argmax(ei))]),
                    "rank_mean_pick": rank(true[int(np.argmax(mean.numpy()))]),
                    "spearman_in_pool": round(rank_correlations(mean.numpy(), true)["spearman"], 3),
                }
            )
        medians = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        line = {"pool": pool_name, "dataset": args.dataset, "history": args.size}
        print(json.dumps({**line, "median": medians, "per_history": rows}), flush=True)


if __name__ == "__main__":
    main()
