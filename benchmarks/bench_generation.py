"""Issue-2 benchmark: score-model training time and generation quality/speed on NB201.

Trains the default score model on the whole space and on a random 50 % of it (for novelty), then
times every sampler at several step counts for 256 and 1,000 cells, printing validity,
uniqueness (by string and canonical key) and novelty beside the exact expectation for uniform
sampling. Usage:

    .venv/bin/python benchmarks/bench_generation.py --out runs/bench-generation
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from diffusionnag.diffusion.model import ScoreTrainConfig, train_score_model, training_architectures
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.metrics import expected_uniqueness_uniform, generation_metrics

SAMPLERS = [("pc", 100), ("pc", 50), ("em", 100), ("em", 50), ("ode", 20), ("ode", 10)]


def measure(model, train_set, num: int, sampler: SamplerConfig, seed: int) -> dict:
    result = generate(model, num, sampler, seed=seed)
    metrics = generation_metrics(model.space, result.archs, train_set)
    return {
        "sampler": sampler.name,
        "steps": sampler.steps,
        "num": num,
        "seconds": round(result.seconds, 2),
        **{k: round(v, 4) for k, v in metrics.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-generation"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, report = [], {}
    space_size = 15_625
    for holdout in (0.0, 0.5):
        config = replace(ScoreTrainConfig(), holdout_fraction=holdout, seed=args.seed)
        folder = args.out / f"score-holdout{holdout}"
        started = time.perf_counter()
        model = train_score_model(config, folder, device="cpu", resume=False, progress=False)
        train_seconds = time.perf_counter() - started
        train_set = set(training_architectures(model.space, config)) if holdout else None
        report[f"train_seconds_holdout{holdout}"] = round(train_seconds, 1)
        print(
            f"holdout {holdout}: trained {config.steps} steps in {train_seconds:.1f} s", flush=True
        )
        for name, steps in SAMPLERS:
            for num in (256, 1000):
                row = {
                    "holdout": holdout,
                    **measure(model, train_set, num, SamplerConfig(name, steps), 1),
                }
                row["uniform_uniqueness"] = round(expected_uniqueness_uniform(num, space_size), 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
    report["rows"] = rows
    (args.out / "results.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
