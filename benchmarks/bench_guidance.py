"""Issue-3 benchmark: how far predictor guidance moves generation on real NB201 numbers.

For each dataset and seed: fit a noise-aware predictor on 100 uniformly sampled table cells,
generate 1,000 cells guided and 1,000 unguided with the same sampler, and report mean test
accuracy, the share of unique cells in the table's top 5 % / 1 %, the best of the clean
predictor's top 5 and uniqueness; medians over seeds. Also a guidance-scale sweep, one
parameter-budget run and a histogram per dataset. Usage:

    .venv/bin/python benchmarks/bench_guidance.py --score runs/bench-generation/score-holdout0.0
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from diffusionnag.diffusion.model import load_score_model
from diffusionnag.evaluators.nb201_table import DATASETS, NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import (
    Budget,
    Objective,
    combined_log_prob,
    guided,
    sigma_scaled,
)
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import cost_pairs
from diffusionnag.predictors.objective import (
    ACCURACY_FLOOR_QUANTILE,
    PredictorConfig,
    train_predictor,
)


def summarise(archs, table, dataset, ranker, top5, top1) -> dict:
    valid = [a for a in archs if a is not None]
    unique = list(dict.fromkeys(valid))
    acc = np.array([table.accuracy(a, dataset) for a in valid])
    unique_acc = np.array([table.accuracy(a, dataset) for a in unique])
    ranked = np.argsort(-ranker.predict(unique))[:5] if unique else []
    return {
        "validity": len(valid) / len(archs),
        "uniqueness": len(unique) / max(1, len(valid)),
        "mean_accuracy": float(acc.mean()) if len(acc) else float("nan"),
        "share_top5": float((unique_acc >= top5).mean()) if unique else 0.0,
        "share_top1": float((unique_acc >= top1).mean()) if unique else 0.0,
        "best_of_ranked_top5": float(max(unique_acc[i] for i in ranked))
        if unique
        else float("nan"),
    }


def fit_accuracy_predictor(model, table, dataset, seed, cells):
    acc = table.accuracies(dataset)
    picks = np.random.default_rng(seed).choice(len(acc), cells, replace=False)
    archs = [table.archs[i] for i in picks]
    config = PredictorConfig(seed=seed, floor_quantile=ACCURACY_FLOOR_QUANTILE)
    return train_predictor(model.space, model.sde, archs, acc[picks], config, device="cpu")


def run_seed(model, table, dataset, seed, args) -> dict:
    acc = table.accuracies(dataset)
    predictor = fit_accuracy_predictor(model, table, dataset, seed, args.train_cells)
    top5, top1 = np.percentile(acc, 95), np.percentile(acc, 99)
    sampler = SamplerConfig(args.sampler, args.steps)
    out = {"seed": seed}
    for name, scale in (("unguided", 0.0), ("guided", args.scale)):
        score = None
        if scale:
            log_p = combined_log_prob([Objective(predictor)])
            score = guided(model.score_fn(), log_p, sigma_scaled(scale, model.sde.std))
        result = generate(model, args.num, sampler, seed=1000 + seed, score=score)
        out[name] = summarise(result.archs, table, dataset, predictor, top5, top1)
        out[name]["seconds"] = result.seconds
        out[name]["accuracies"] = [table.accuracy(a, dataset) for a in result.valid]
    return out


def scale_sweep(model, table, args) -> list[dict]:
    rows = []
    for scale in args.sweep:
        sweep_args = argparse.Namespace(**{**vars(args), "scale": scale})
        run = run_seed(model, table, "cifar10", 0, sweep_args)["guided"]
        run.pop("accuracies")
        rows.append({"scale": scale, **run})
        print("sweep", json.dumps(rows[-1]), flush=True)
    return rows


def budget_run(model, table, args) -> dict:
    """Maximise CIFAR-10 accuracy with parameters <= the table's 30th percentile."""
    dataset, seed = "cifar10", 0
    params = np.array([arch_costs(a)["params"] for a in table.archs])
    limit = float(np.percentile(params, 30))
    accuracy = fit_accuracy_predictor(model, table, dataset, seed, args.train_cells)
    cost_archs, costs = cost_pairs(model.space, "params", 1000, np.random.default_rng(seed))
    config = PredictorConfig(seed=seed, epochs=60)
    cost = train_predictor(model.space, model.sde, cost_archs, costs, config, device="cpu")
    terms = [Objective(accuracy), Budget(cost, limit, "params", weight=args.budget_weight)]
    score = guided(
        model.score_fn(), combined_log_prob(terms), sigma_scaled(args.scale, model.sde.std)
    )
    sampler = SamplerConfig(args.sampler, args.steps)
    valid = generate(model, args.num, sampler, seed=7, score=score).valid
    within = [a for a in valid if arch_costs(a)["params"] <= limit]
    unguided = generate(model, args.num, sampler, seed=7).valid
    row = {
        "limit_params": limit,
        "share_within_budget": len(within) / max(1, len(valid)),
        "mean_accuracy_within": float(np.mean([table.accuracy(a, dataset) for a in within])),
        "mean_accuracy_unguided": float(np.mean([table.accuracy(a, dataset) for a in unguided])),
        "validity": len(valid) / args.num,
        "uniqueness": len(set(valid)) / max(1, len(valid)),
    }
    print("budget", json.dumps(row), flush=True)
    return row


def plot_histogram(table_acc, run, dataset, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(np.percentile(table_acc, 1), table_acc.max(), 40)
    ax.hist(table_acc, bins=bins, density=True, alpha=0.4, label="whole table")
    ax.hist(run["unguided"]["accuracies"], bins=bins, density=True, alpha=0.4, label="unguided")
    ax.hist(run["guided"]["accuracies"], bins=bins, density=True, alpha=0.6, label="guided")
    ax.set_xlabel(f"{dataset} test accuracy (%)")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--score", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-guidance"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--train-cells", type=int, default=100)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--budget-weight", type=float, default=3.0)
    parser.add_argument("--budget-scale", type=float, default=3.0)
    parser.add_argument("--budget-only", action="store_true", help="write budget.json only")
    parser.add_argument("--sweep", type=float, nargs="*", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--sampler", default="pc")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args()
    matplotlib.use("Agg")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_score_model(args.score, "cpu")
    table = NB201Table.from_csv(default_table_path())
    if args.budget_only:
        (args.out / "budget.json").write_text(json.dumps(budget_run(model, table, args), indent=2))
        return
    report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    for dataset in args.datasets:
        runs = [run_seed(model, table, dataset, seed, args) for seed in range(args.seeds)]
        keys = [key for key in runs[0]["guided"] if key != "accuracies"]
        summary: dict = {
            kind: {key: float(np.median([r[kind][key] for r in runs])) for key in keys}
            for kind in ("unguided", "guided")
        }
        summary["table_mean"] = float(table.accuracies(dataset).mean())
        summary["table_optimum"] = float(table.accuracies(dataset).max())
        summary["time_ratio"] = summary["guided"]["seconds"] / summary["unguided"]["seconds"]
        report[dataset] = summary
        print(dataset, json.dumps(summary), flush=True)
        plot_histogram(
            table.accuracies(dataset), runs[0], dataset, args.out / f"hist_{dataset}.png"
        )
    report["scale_sweep"] = scale_sweep(model, table, args)
    report["budget"] = budget_run(model, table, args)
    (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
