"""Median evaluations to the optimum over a range of a benchmark's seeds, from its summary.json:
the figure for seeds that were not used to choose a strategy's options. Prints one JSON line per
dataset and strategy (``null`` = fewer than half of the runs reached it). Usage:

    .venv/bin/python benchmarks/seed_range_medians.py benchmarks/results/paper-protocol-v2 \\
        --first-seed 10 --seeds 10
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from diffusionnag.harness.summary import median_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a `diffusionnag benchmark --out` folder")
    parser.add_argument("--first-seed", type=int, required=True)
    parser.add_argument("--seeds", type=int, required=True)
    parser.add_argument("--target", default="optimum", help="a key of evals_to, e.g. within_0.1")
    args = parser.parse_args()
    summary = json.loads((args.out / "summary.json").read_text())
    seeds = summary["settings"]["seeds"]
    wanted = range(args.first_seed, args.first_seed + args.seeds)
    missing = [seed for seed in wanted if seed not in seeds]
    if missing:
        raise SystemExit(f"seed_range_medians: error: seeds {missing} are not in {args.out}")
    positions = [seeds.index(seed) for seed in wanted]
    for dataset, entry in summary["datasets"].items():
        for strategy, row in entry["strategies"].items():
            per_run = row["evals_to"][args.target]["per_run"]
            counts = [math.inf if per_run[i] is None else per_run[i] for i in positions]
            line = {
                "dataset": dataset,
                "strategy": strategy,
                "seeds": f"{wanted.start}..{wanted.stop - 1}",
                "median": median_count(counts),
                "reached": sum(not math.isinf(c) for c in counts),
            }
            print(json.dumps(line))


if __name__ == "__main__":
    main()
