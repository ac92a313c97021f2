"""Leave-one-table-out transfer on NAS-Bench-201 (issue 11), beside the free baselines.

For each target table: the meta-predictor meta-trained on the two other tables (by default the
shipped one, which is exactly that) transfers zero-shot, its support set growing with every
evaluated cell (``--prior experts``: fused with the two source tables, each weighted by how well
it orders the evaluated cells, ``transfer.experts``). Runs stop at the table optimum. Reported
over seeds (the seed changes the generated pool, the support subsets, the experts' bootstrap and
the free orders' tie-breaks): evaluations until the optimum is evaluated, and the best test
accuracy after 1, 2, 3, 5 and 10 evaluations. Beside it, scored alike over every computation
class of the table (one representative each):

(a) the nearest other table's order (the one that correlates best with the target: an oracle
    choice no user can make before evaluating, an upper bound on "copy a source");
(b) the mean z-score of the two source tables;
(c) parameter count, largest first;
(d) DiffusionNAG-BO from scratch (its first ``num_init`` cells are random).

Every run is journaled under ``--out`` and resumed when the script is run again; the summary is
written as ``summary-<label>-seeds<a>-<b>.{json,md}``.

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
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.search.job import SearchJob
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.pipeline import TransferJob, run_transfer

CHECKPOINTS = (1, 2, 3, 5, 10)


def curve_stats(values: list[float], optimum: float) -> dict:
    best = np.maximum.accumulate(values)
    hits = np.flatnonzero(np.asarray(values) >= optimum)
    return {
        "to_optimum": int(hits[0]) + 1 if len(hits) else None,
        **{f"best@{k}": float(best[min(k, len(best)) - 1]) for k in CHECKPOINTS},
    }


def representatives(table: NB201Table) -> np.ndarray:
    """One table row per computation (the first), as a search evaluates them."""
    space, seen, rows = NB201Space(), set(), []
    for index, arch in enumerate(table.archs):
        key = space.canonical_key(arch)
        if key not in seen:
            seen.add(key)
            rows.append(index)
    return np.array(rows)


def zscore(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / values.std()


def free_orders(table: NB201Table, target: str) -> dict[str, np.ndarray]:
    """Scores of every representative row by each free baseline (higher is evaluated first):
    the nearest other table (by Spearman with the target: an oracle choice), the mean z-score of
    the two source tables, and parameter count."""
    rows = representatives(table)
    others = [d for d in DATASETS if d != target]
    accuracy = {d: table.accuracies(d)[rows] for d in DATASETS}
    correlation = {d: rank_correlations(accuracy[d], accuracy[target])["spearman"] for d in others}
    nearest = max(others, key=correlation.get)
    return {
        f"nearest table order ({nearest})": accuracy[nearest],
        "mean z of the sources": sum(zscore(accuracy[d]) for d in others),
        "parameter-count order": np.array([arch_costs(table.archs[i])["params"] for i in rows]),
    }


def order_values(
    table: NB201Table, scores: np.ndarray, target: str, rng: np.random.Generator
) -> list[float]:
    """The target's accuracies of every representative in decreasing ``scores``, ties drawn
    at random (the seed's only effect on a free order)."""
    rows = representatives(table)
    order = np.lexsort((rng.random(len(scores)), -scores))
    return [float(v) for v in table.accuracies(target)[rows][order]]


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


def transfer_runs(args: argparse.Namespace, table_path: Path, target: str, optimum: float):
    """One transfer run per seed, stopped at the optimum; its curve statistics."""
    meta = args.meta_dir / f"meta-nb201-no-{target}" if args.meta_dir else None
    options = {"round_samples": args.round_samples, "prior": args.prior}
    runs, trained_on = [], []
    for seed in seeds_of(args):
        search = SearchJob(
            strategy=args.strategy,
            benchmark=BenchmarkSpec("nb201", target),
            stop_value=optimum,
            budget=args.budget,
            seed=seed,
            out=args.out / target / f"{label(args)}-seed{seed}.json",
            resume=True,
            table=table_path,
            options=options,
            progress=False,
        )
        run = run_transfer(TransferJob(search, meta_predictor=meta))
        trained_on = run.transfer["trained_on"]
        runs.append(curve_stats([t.value for t in run.history], optimum))
    return runs, trained_on


def bo_runs(args: argparse.Namespace, table: NB201Table, target: str, optimum: float):
    space, runs = NB201Space(), []
    for seed in seeds_of(args) if args.bo_budget else ():
        history = run_search(
            get_strategy("diffusionnag-bo", space, seed),
            TableEvaluator(table, target),
            space,
            args.bo_budget,
            progress=False,
            resume=True,
            journal_path=args.out / target / f"bo-seed{seed}.jsonl",
        )
        runs.append(curve_stats([t.value for t in history], optimum))
    return runs


def proxy_orders(args: argparse.Namespace, proxies: list[str]) -> dict[str, list[list]]:
    """Each proxy strategy's ranked pool per seed (a function of the seed alone, computed once
    for every target: a zero-cost proxy never sees the dataset)."""
    space = NB201Space()
    return {
        proxy: [get_strategy(proxy, space, seed).ranked() for seed in seeds_of(args)]
        for proxy in proxies
    }


def seeds_of(args: argparse.Namespace) -> range:
    return range(args.first_seed, args.first_seed + args.seeds)


def label(args: argparse.Namespace) -> str:
    """Journal and summary name: the strategy, and the prior where not the default."""
    return args.strategy if args.prior == "meta" else f"{args.strategy}-{args.prior}"


def markdown(report: dict, name: str) -> str:
    """One table per target: median evaluations to the optimum and median best after k."""
    lines = []
    for target, parts in report.items():
        lines += [f"\n### {target} (optimum {parts['optimum']:.2f})\n"]
        lines += ["| method | to optimum (median [IQR]) | reached | "
                  + " | ".join(f"best@{k}" for k in CHECKPOINTS) + " |"]  # fmt: skip
        lines += ["|---" * (3 + len(CHECKPOINTS)) + "|"]
        for method, summary in parts["methods"].items():
            iqr = "/".join(f"{v:g}" for v in summary["to_optimum_iqr"])
            best = " | ".join(f"{summary[f'best@{k}'][0]:.2f}" for k in CHECKPOINTS)
            lines.append(
                f"| {method} | {summary['to_optimum_median']:g} [{iqr}] | "
                f"{summary['reached']}/{summary['runs']} | {best} |"
            )
    return f"## {name}\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=50, help="transfer evaluations at most")
    parser.add_argument("--bo-budget", type=int, default=10)
    parser.add_argument("--round-samples", type=int, default=1000)
    parser.add_argument("--targets", nargs="+", default=list(DATASETS))
    parser.add_argument("--meta-dir", type=Path, help="folder of meta-nb201-no-<dataset> models")
    parser.add_argument("--strategy", choices=("transfer", "transfer-bo"), default="transfer")
    parser.add_argument("--prior", choices=("meta", "experts"), default="meta")
    parser.add_argument(
        "--proxies",
        nargs="*",
        default=[],
        help="zero-cost baselines by strategy name (zc-naswot, zc-synflow): their seeded pool in "
        "proxy order; the optimum counts as reached only inside the pool",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-transfer"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    table_path = args.table or default_table_path()
    table = NB201Table.from_csv(table_path)
    report = {}
    proxies = proxy_orders(args, args.proxies)
    for target in args.targets:
        optimum = table.optimum(target)[1]
        transfer, trained_on = transfer_runs(args, table_path, target, optimum)
        methods = {label(args): summarise(transfer)}
        for name, scores in free_orders(table, target).items():
            orders = [order_values(table, scores, target, np.random.default_rng([s, 3]))
                      for s in seeds_of(args)]  # fmt: skip
            runs = [curve_stats(order, optimum) for order in orders]
            methods[name] = summarise(runs)
        for proxy, pools in proxies.items():
            runs = [
                curve_stats([table.accuracy(a, target) for a in pool], optimum) for pool in pools
            ]
            methods[f"{proxy} (pool {len(pools[0])})"] = summarise(runs)
        bo = bo_runs(args, table, target, optimum)
        if bo:
            methods["DiffusionNAG-BO from scratch"] = summarise(bo)
        report[target] = {"optimum": optimum, "trained_on": trained_on, "methods": methods,
                          "transfer_runs": transfer}  # fmt: skip
        print(json.dumps({target: methods}, indent=1), flush=True)
    name = f"{label(args)}, seeds {args.first_seed}-{args.first_seed + args.seeds - 1}"
    stem = f"{label(args)}-seeds{args.first_seed}-{args.first_seed + args.seeds - 1}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"summary-{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"summary-{stem}.md").write_text(markdown(report, name))
    print(markdown(report, name))


if __name__ == "__main__":
    main()
