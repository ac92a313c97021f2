"""Issue-5 benchmark: real architecture search on scikit-learn's digits.

DiffusionNAG-BO, random search and regularised evolution, each with the same number of trained
candidates, over several seeds; every candidate is an NB201 network trained from scratch. Reports
the median best validation accuracy and the test accuracy of the chosen cell (best by
validation), with min and max over seeds; and the time of one training epoch at the default
width. Usage:

    .venv/bin/python benchmarks/bench_digits.py --out runs/bench-digits
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.datasets import load_digits
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.search.job import SearchJob, run_job
from diffusionnag.spaces import Arch

STRATEGIES = ("diffusionnag-bo", "random", "evolution")


def one_run(strategy: str, seed: int, budget: int, epochs: int, out: Path) -> dict:
    torch.set_num_threads(1)
    job = SearchJob(
        strategy=strategy,
        budget=budget,
        seed=seed,
        out=out / strategy / f"seed{seed}.json",
        resume=True,
        train=TrainConfig(epochs=epochs, seed=seed),
        progress=False,
    )
    history = run_job(job)
    best = history.best
    return {
        "strategy": strategy,
        "seed": seed,
        "best_valid": best.value,
        "chosen_test": best.metrics["test_accuracy"],
    }


def epoch_seconds() -> dict:
    """One epoch of the all-3x3 cell (the costliest) at the default width and depth."""
    config = TrainConfig(epochs=1, device="cpu")
    result = TrainingEvaluator(load_digits(seed=0), config).evaluate(Arch("nb201", (3,) * 6))
    return {
        "channels": config.channels,
        "cells_per_stage": config.cells_per_stage,
        "seconds": result.metrics["train_seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-digits"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    report: dict = {"settings": vars(args) | {"out": str(args.out)}, "epoch": epoch_seconds()}
    print("epoch", json.dumps(report["epoch"]), flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [
            pool.submit(one_run, s, seed, args.budget, args.epochs, args.out)
            for s in STRATEGIES
            for seed in range(args.seeds)
        ]
        runs = [f.result() for f in futures]
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        summary = {}
        for key in ("best_valid", "chosen_test"):
            values = np.array([r[key] for r in mine])
            summary[key] = {
                "median": float(np.median(values)),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        report[strategy] = summary | {"runs": mine}
        print(strategy, json.dumps(summary), flush=True)
    report["wall_seconds"] = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
