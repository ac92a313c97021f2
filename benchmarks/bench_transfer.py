"""Leave-one-table-out transfer on NAS-Bench-201 (issue 11).

For each target table: the meta-predictor meta-trained on the two other tables (by default the
shipped one, which is exactly that) transfers zero-shot, its support set growing with every
evaluated cell. Reported over seeds: evaluations until the table optimum is evaluated, and the
best test accuracy after 1, 2, 5 and 10 evaluations. Beside it, by the same script:

(a) evaluating cells in the order of the most correlated other table's true accuracies
    (deterministic; a strong, free baseline);
(b) DiffusionNAG-BO from scratch (its first ``num_init`` cells are random).

Every run is journaled under ``--out`` and resumed when the script is run again.

    .venv/bin/python benchmarks/bench_transfer.py --table PATH --seeds 10 --out runs/bench-transfer
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.nb201_table import DATASETS, NB201Table, TableEvaluator
from diffusionnag.evaluators.registry import BenchmarkSpec
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.metrics import rank_correlations
from diffusionnag.search.job import SearchJob
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.pipeline import TransferJob, run_transfer

CHECKPOINTS = (1, 2, 5, 10)


def curve_stats(values: list[float], optimum: float) -> dict:
    best = np.maximum.accumulate(values)
    hits = np.flatnonzero(np.asarray(values) >= optimum)
    return {
        "to_optimum": int(hits[0]) + 1 if len(hits) else None,
        **{f"best@{k}": float(best[min(k, len(best)) - 1]) for k in CHECKPOINTS},
    }


def nearest_table_order(table: NB201Table, target: str, budget: int) -> tuple[str, list[float]]:
    """The target's accuracies of the first ``budget`` classes in the nearest table's order."""
    space = NB201Space()
    others = [d for d in DATASETS if d != target]
    correlation = {
        d: rank_correlations(table.accuracies(d), table.accuracies(target))["spearman"]
        for d in others
    }
    source = max(others, key=correlation.get)
    seen, values = set(), []
    for index in np.argsort(-table.accuracies(source), kind="stable"):
        key = space.canonical_key(table.archs[index])
        if key not in seen:
            seen.add(key)
            values.append(float(table.accuracies(target)[index]))
        if len(values) == budget:
            break
    return source, values


def summarise(runs: list[dict]) -> dict:
    to_opt = [r["to_optimum"] for r in runs]
    reached = [v for v in to_opt if v is not None]
    out = {
        "runs": len(runs),
        "reached": len(reached),
        "to_optimum_median": float(np.median([v if v else np.inf for v in to_opt])),
        "to_optimum_iqr": [
            float(np.percentile([v or np.inf for v in to_opt], q, method="nearest"))
            for q in (25, 75)
        ],
    }
    for k in CHECKPOINTS:
        values = [r[f"best@{k}"] for r in runs]
        out[f"best@{k}"] = [float(np.median(values)), float(np.min(values)), float(np.max(values))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=50, help="transfer evaluations at most")
    parser.add_argument("--bo-budget", type=int, default=10)
    parser.add_argument("--targets", nargs="+", default=list(DATASETS))
    parser.add_argument("--meta-dir", type=Path, help="folder of meta-nb201-no-<dataset> models")
    parser.add_argument(
        "--strategy",
        choices=("transfer", "transfer-bo"),
        default="transfer",
        help="transfer-bo runs stop at the optimum (their journals are transfer-bo-seed*.json)",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-transfer"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    table_path = args.table or default_table_path()
    table = NB201Table.from_csv(table_path)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    report = {}
    for target in args.targets:
        optimum = table.optimum(target)[1]
        meta = args.meta_dir / f"meta-nb201-no-{target}" if args.meta_dir else None
        transfer = []
        for seed in seeds:
            out = args.out / target / f"{args.strategy}-seed{seed}.json"
            search = SearchJob(
                strategy=args.strategy,
                benchmark=BenchmarkSpec("nb201", target),
                stop_value=optimum if args.strategy == "transfer-bo" else None,
                budget=args.budget,
                seed=seed,
                out=out,
                resume=True,
                table=table_path,
                progress=False,
            )
            run = run_transfer(TransferJob(search, meta_predictor=meta))
            history, trained_on = run.history, run.transfer["trained_on"]
            values = [t.value for t in history]
            transfer.append(curve_stats(values, optimum))
        source, order = nearest_table_order(table, target, args.budget)
        bo = []
        for seed in seeds if args.bo_budget else ():
            space = NB201Space()
            history = run_search(
                get_strategy("diffusionnag-bo", space, seed),
                TableEvaluator(table, target),
                space,
                args.bo_budget,
                progress=False,
                resume=True,
                journal_path=args.out / target / f"bo-seed{seed}.jsonl",
            )
            bo.append(curve_stats([t.value for t in history], optimum))
        report[target] = {
            "optimum": optimum,
            "trained_on": trained_on,
            "transfer": summarise(transfer),
            "transfer_runs": transfer,
            f"nearest_table_order ({source})": curve_stats(order, optimum),
            "diffusionnag_bo": summarise(bo) if bo else None,
        }
        print(
            json.dumps(
                {target: {k: v for k, v in report[target].items() if k != "transfer_runs"}},
                indent=1,
            )
        )
    (args.out / f"summary-{args.strategy}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
