"""Issue-6 benchmark, second part: MobileNetV3 generation guided by an accuracy predictor fitted on
real evaluations, alone and together with a FLOPs budget.

1. ``--cells`` uniformly sampled subnets are trained for real on scikit-learn's digits (upscaled
   to 32 px, width 0.25, ``--epochs`` epochs, the default ``TrainingEvaluator`` protocol): these
   pairs train a noise-aware accuracy predictor (as ``train-predictor --pairs`` does).
2. With the score model of ``bench_mbv3.py`` (``--score``), 500 cells are generated unguided,
   guided by accuracy, and guided by accuracy under a FLOPs budget at the 25th percentile of
   uniform cells (224 px MACs, the costs of ``bench_mbv3.py``). For each: validity, uniqueness,
   share within budget, mean predicted accuracy.
3. ``--check`` cells of each set (the top by predicted accuracy for the guided sets, the first
   valid ones unguided) are trained for real with the same protocol; mean validation accuracy.

Usage (after ``bench_mbv3.py --out runs/bench-mbv3``):

    .venv/bin/python benchmarks/bench_mbv3_accuracy.py --score runs/bench-mbv3/score \\
        --out runs/bench-mbv3-accuracy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from diffusionnag.diffusion.model import load_score_model
from diffusionnag.evaluators.datasets import load_digits
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import Budget, Objective, combined_log_prob, guided, sigma_scaled
from diffusionnag.metrics import rank_correlations
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import cost_pairs
from diffusionnag.predictors.objective import (
    ACCURACY_FLOOR_QUANTILE,
    PredictorConfig,
    train_predictor,
)


def real_accuracies(evaluator: TrainingEvaluator, archs) -> np.ndarray:
    return np.array([evaluator.evaluate(arch).value for arch in archs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--score", type=Path, default=Path("runs/bench-mbv3/score"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-mbv3-accuracy"))
    parser.add_argument("--cells", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--check", type=int, default=10)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--scale", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_score_model(args.score, "cpu")
    space = model.space
    evaluator = TrainingEvaluator(load_digits(seed=0), TrainConfig(epochs=args.epochs), space=space)
    report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    train_archs = space.sample(args.cells, rng)
    train_values = real_accuracies(evaluator, train_archs)
    report["real_training"] = {
        "cells": args.cells,
        "seconds_per_cell": round((time.perf_counter() - started) / args.cells, 2),
        "accuracy_quartiles": [
            round(float(q), 2) for q in np.percentile(train_values, [25, 50, 75])
        ],
    }
    print("real training", json.dumps(report["real_training"]), flush=True)
    config = PredictorConfig(seed=0, floor_quantile=ACCURACY_FLOOR_QUANTILE)
    accuracy = train_predictor(space, model.sde, train_archs, train_values, config, device="cpu")
    # Leave-out check on a fresh uniform sample, so the guide's quality is on record.
    test_archs = space.sample(args.check * 2, np.random.default_rng(1))
    test_values = real_accuracies(evaluator, test_archs)
    report["predictor_held_out"] = rank_correlations(accuracy.predict(test_archs), test_values)
    print("held out", json.dumps(report["predictor_held_out"]), flush=True)

    flops_archs, flops = cost_pairs(space, "flops", 2000, np.random.default_rng(1))
    flops_model = train_predictor(
        space, model.sde, flops_archs, flops, PredictorConfig(seed=0, epochs=30), device="cpu"
    )
    uniform = [arch_costs(a)["flops"] for a in space.sample(2000, np.random.default_rng(3))]
    limit = float(np.percentile(uniform, 25))
    budget = Budget(flops_model, limit, "flops", slack=0.3)
    runs = {
        "unguided": None,
        "accuracy": [Objective(accuracy)],
        "accuracy + FLOPs <= p25": [Objective(accuracy), budget],
    }
    sampler = SamplerConfig("em", 50)
    report["generation"] = []
    for name, terms in runs.items():
        score = None
        if terms:
            score = guided(
                model.score_fn(), combined_log_prob(terms), sigma_scaled(args.scale, model.sde.std)
            )
        cells = generate(model, args.num, sampler, seed=7, score=score).valid
        predicted = accuracy.predict(cells)
        within = np.array([arch_costs(a)["flops"] <= limit for a in cells])
        order = np.arange(len(cells)) if terms is None else np.argsort(-predicted)
        checked = [cells[i] for i in order[: args.check]]
        real = real_accuracies(evaluator, checked)
        row = {
            "run": name,
            "validity": round(len(cells) / args.num, 4),
            "uniqueness": round(len(set(cells)) / max(1, len(cells)), 4),
            "within_flops_p25": round(float(within.mean()), 4),
            "mean_predicted_accuracy": round(float(predicted.mean()), 2),
            "checked_cells": len(checked),
            "checked_mean_real_accuracy": round(float(real.mean()), 2),
            "checked_within_flops_p25": round(float(within[order[: args.check]].mean()), 2),
        }
        report["generation"].append(row)
        print("generate", json.dumps(row), flush=True)
    report["flops_limit_mmacs"] = round(limit / 1e6, 1)
    (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
