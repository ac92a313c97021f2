"""Issue-6 benchmark: MobileNetV3 (once-for-all) generation and FLOPs budgets.

Trains the recommended mbv3 score model (``default_train_config("mbv3")``), times it (or reuses
one with ``--score``), then generates 1,000 cells with several samplers and seeds (validity,
uniqueness, novelty against the training sample). Then FLOPs-budget guidance: a noise-aware
FLOPs predictor fitted on uniformly sampled cells, a guidance-scale and slack sweep at the
tightest budget, and 1,000 guided cells under each of three budgets (the 25th, 50th and 75th
percentiles of the FLOPs of 2,000 uniform cells), with the share of valid cells within budget,
uniqueness, validity and FLOPs quartiles, and a histogram.
FLOPs are multiply-accumulates at 224 px, in millions. Usage:

    .venv/bin/python benchmarks/bench_mbv3.py --out runs/bench-mbv3
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from diffusionnag.diffusion.model import (
    default_train_config,
    load_score_model,
    train_score_model,
    training_architectures,
)
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import Budget, combined_log_prob, guided, sigma_scaled
from diffusionnag.metrics import generation_metrics
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import cost_pairs
from diffusionnag.predictors.objective import PredictorConfig, train_predictor

SAMPLERS = [("pc", 100), ("em", 50), ("em", 200), ("ode", 20), ("ode", 50)]
SAMPLE_SEEDS = (1, 2, 3)
PERCENTILES = (25, 50, 75)


def mflops(space, archs) -> np.ndarray:
    return np.array([arch_costs(a)["flops"] / 1e6 for a in archs])


def train(args):
    config = replace(
        default_train_config("mbv3"), seed=args.seed, steps=args.steps, train_size=args.train_size
    )
    if args.score is not None:
        model = load_score_model(args.score, "cpu")
        if model.config != config:
            raise SystemExit(f"{args.score} was trained with {model.config}, not {config}")
        return model, set(training_architectures(model.space, config)), None
    started = time.perf_counter()
    model = train_score_model(
        config, args.out / "score", device="cpu", resume=False, progress=False
    )
    seconds = time.perf_counter() - started
    print(f"trained {config.steps} steps in {seconds:.1f} s: {config}", flush=True)
    return model, set(training_architectures(model.space, config)), seconds


def sampler_rows(model, train_set, args) -> list[dict]:
    rows = []
    for (name, steps), seed in itertools.product(SAMPLERS, SAMPLE_SEEDS):
        result = generate(model, args.num, SamplerConfig(name, steps), seed=seed)
        metrics = generation_metrics(model.space, result.archs, train_set)
        rows.append(
            {
                "sampler": name,
                "steps": steps,
                "seed": seed,
                "num": args.num,
                "seconds": round(result.seconds, 2),
                **{k: round(v, 4) for k, v in metrics.items()},
            }
        )
        print("generate", json.dumps(rows[-1]), flush=True)
    return rows


def fit_cost_predictor(model, args):
    started = time.perf_counter()
    archs, costs = cost_pairs(model.space, "flops", args.cost_cells, np.random.default_rng(1))
    config = PredictorConfig(seed=0, epochs=args.cost_epochs)
    predictor = train_predictor(model.space, model.sde, archs, costs, config, device="cpu")
    test = model.space.sample(1000, np.random.default_rng(2))
    truth = mflops(model.space, test) * 1e6
    fit = {
        "cells": args.cost_cells,
        "epochs": args.cost_epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "clean_spearman": round(float(_spearman(predictor.predict(test), truth)), 4),
    }
    print("cost predictor", json.dumps(fit), flush=True)
    return predictor, fit


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1])


def budget_run(model, predictor, limit, sampler, scale, slack, weight, num, seed):
    """Generate ``num`` cells guided by ``FLOPs <= limit`` alone; ``limit`` in MFLOPs."""
    budget = Budget(predictor, limit * 1e6, "flops", weight=weight, slack=slack)
    score = None
    if scale > 0:
        log_p = combined_log_prob([budget])
        score = guided(model.score_fn(), log_p, sigma_scaled(scale, model.sde.std))
    result = generate(model, num, sampler, seed=seed, score=score)
    flops = mflops(model.space, result.valid)
    row = {
        "limit_mflops": round(limit, 1),
        "scale": scale,
        "slack": slack,
        "weight": weight,
        "validity": round(len(result.valid) / num, 4),
        "within_budget": round(float((flops <= limit).mean()) if len(flops) else 0.0, 4),
        "uniqueness": round(len(set(result.valid)) / max(1, len(result.valid)), 4),
        "mflops_quartiles": [round(float(q), 1) for q in np.percentile(flops, [25, 50, 75])],
        "seconds": round(result.seconds, 2),
    }
    return row, flops


def sweep(model, predictor, limit, sampler, args) -> list[dict]:
    rows = []
    for slack in args.slacks:
        for scale in args.scales:
            row, _ = budget_run(
                model, predictor, limit, sampler, scale, slack, args.weight, args.num, 11
            )
            rows.append(row)
            print("sweep", json.dumps(row), flush=True)
    return rows


def choose(rows: list[dict]) -> dict:
    """The weakest guidance that meets both targets (>= 95 % within budget and unique); if none
    does, the row with the largest share within budget times uniqueness."""
    meeting = [r for r in rows if r["within_budget"] >= 0.95 and r["uniqueness"] >= 0.95]
    if meeting:
        return min(meeting, key=lambda r: (r["scale"], -r["slack"]))
    return max(rows, key=lambda r: r["within_budget"] * r["uniqueness"])


def plot(unguided: np.ndarray, guided_runs: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(
        min(unguided.min(), *(f.min() for f in guided_runs.values())), unguided.max(), 50
    )
    ax.hist(unguided, bins=bins, density=True, alpha=0.35, color="grey", label="unguided")
    for (limit, flops), color in zip(guided_runs.items(), ("C0", "C1", "C2"), strict=False):
        ax.hist(flops, bins=bins, density=True, alpha=0.45, color=color, label=f"<= {limit:.0f}")
        ax.axvline(limit, color=color, linestyle="--")
    ax.set_xlabel("MFLOPs (multiply-accumulates, 224 px)")
    ax.set_ylabel("density")
    ax.set_title("mbv3 generation under FLOPs budgets")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    defaults = default_train_config("mbv3")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-mbv3"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument(
        "--score", type=Path, help="reuse this trained model (its config must match) instead"
    )
    parser.add_argument("--train-size", type=int, default=defaults.train_size)
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--sampler", default="em")
    parser.add_argument("--sampler-steps", type=int, default=50)
    parser.add_argument("--cost-cells", type=int, default=2000)
    parser.add_argument("--cost-epochs", type=int, default=30)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    parser.add_argument("--slacks", type=float, nargs="+", default=[0.1, 0.3])
    parser.add_argument("--weight", type=float, default=1.0)
    args = parser.parse_args()
    matplotlib.use("Agg")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    model, train_set, seconds = train(args)
    report["train_seconds"] = None if seconds is None else round(seconds, 1)
    report["generation"] = sampler_rows(model, train_set, args)
    uniform = mflops(model.space, model.space.sample(2000, np.random.default_rng(3)))
    limits = [float(np.percentile(uniform, p)) for p in PERCENTILES]
    report["uniform_mflops_quartiles"] = [round(x, 1) for x in limits]
    predictor, report["cost_predictor"] = fit_cost_predictor(model, args)
    sampler = SamplerConfig(args.sampler, args.sampler_steps)
    report["sweep"] = sweep(model, predictor, limits[0], sampler, args)
    best = choose(report["sweep"])
    unguided, unguided_flops = budget_run(
        model, predictor, limits[0], sampler, 0.0, 0, 0, args.num, 7
    )
    report["unguided"] = unguided
    report["budgets"], runs = [], {}
    for percentile, limit in zip(PERCENTILES, limits, strict=True):
        row, runs[limit] = budget_run(
            model,
            predictor,
            limit,
            sampler,
            best["scale"],
            best["slack"],
            best["weight"],
            args.num,
            7,
        )
        row["percentile"] = percentile
        row["unguided_within_budget"] = round(float((unguided_flops <= limit).mean()), 4)
        report["budgets"].append(row)
        print("budget", json.dumps(row), flush=True)
    plot(unguided_flops, runs, args.out / "hist_flops.png")
    (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
