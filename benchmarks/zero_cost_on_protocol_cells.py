"""How the free baselines rank the protocol study's trained cells (issue "Image transfer on
labels that mean something", part 5, baselines (b) and (c), an early look).

Reads the journals of one ``bench_protocol_scale.py`` scale (its 30 random NB201 cells, seed 0;
several files where the scale ran in shards) and
compares, by Spearman and Kendall over the cells, each free score with the cells' test accuracy
at the given epochs: the parameter count (of the N=5 benchmark network; the order is the same at
any N), synflow and NASWOT on random RGB images (the strategies' defaults), and NASWOT and
synflow on the study's own task images (option ``task``). The ground truth is whatever the
journal's protocol is: until part 1 names a final protocol, this is an indication, not the
part 5 benchmark. Usage:

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/zero_cost_on_protocol_cells.py \\
        --journal benchmarks/results/protocol-scale/fashion-mnist-C16-N5-r16-n100.jsonl \\
        --epochs 60 --task fashion-mnist/c0-1-2-3-4-5-6-7-8-9/n100/r16/s0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from protocol_rows import read_rows  # beside this script

from diffusionnag.metrics import rank_correlations
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.search.strategies.zero_cost import NaswotOrder, SynflowOrder
from diffusionnag.spaces import get_space


def trained_cells(journals: list[Path], epochs: int) -> dict[str, float]:
    """Cell string -> test accuracy of its seed-0 run at ``epochs``."""
    found = {}
    for row in (row for journal in journals for row in read_rows(journal)):
        if row.get("seed") == 0 and row.get("epochs") == epochs and not row.get("failed"):
            found[row["cell"]] = float(row["test"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--journal", type=Path, nargs="+", required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--task", required=True, help="the journal's task, by name")
    parser.add_argument("--seed", type=int, default=0, help="proxy network and image order")
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = get_space("nb201")
    truth = trained_cells(args.journal, args.epochs)
    cells = [space.from_string(cell) for cell in truth]
    accuracy = list(truth.values())
    proxies = {
        "synflow, random images": SynflowOrder(space, args.seed),
        "NASWOT, random images": NaswotOrder(space, args.seed),
        "synflow, task images": SynflowOrder(space, args.seed, task=args.task),
        "NASWOT, task images": NaswotOrder(space, args.seed, task=args.task),
    }
    scores = {"parameter count": [float(arch_costs(arch)["params"]) for arch in cells]}
    scores |= {name: proxy.scores(cells) for name, proxy in proxies.items()}
    names = ", ".join(journal.name for journal in args.journal)
    print(f"{len(cells)} cells of {names} at {args.epochs} epochs (test accuracy)\n")
    print("| score | Spearman | Kendall |\n|---|---|---|")
    for name, values in scores.items():
        corr = rank_correlations(values, accuracy)
        print(f"| {name} | {corr['spearman']:.2f} | {corr['kendall_tau']:.2f} |")


if __name__ == "__main__":
    main()
