"""Optuna studies on the NAS-Bench-201 table: trials until the table optimum is first evaluated.

Each run is one study (in memory, ``direction="maximize"``) whose objective is the table's test
accuracy of the suggested cell (six categorical parameters, ``suggest_arch``), stopped as soon as
a trial scores the optimum, or after ``--budget`` trials. Samplers: DiffusionNAGSampler (its
defaults, i.e. DiffusionNAG-BO's), and Optuna's TPESampler and GPSampler with Optuna's defaults;
each seeded with the run's seed. A trial is a trial: repeats of a cell a sampler proposes again
count, as they would in a user's study. One JSON per finished run under
``OUT/runs/<sampler>-<dataset>-seed<k>.json`` (finished runs are read back, not rerun), and
``OUT/summary.md`` / ``summary.json`` over whatever has finished. Usage:

    nice .venv/bin/python benchmarks/bench_optuna.py --seeds 20 --workers 2
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.integrations.optuna import DiffusionNAGSampler, arch_params, suggest_arch
from diffusionnag.io import atomic_write_json, atomic_write_text

SAMPLERS = ("diffusionnag", "tpe", "gp")
DATASETS = ("cifar10", "cifar100")
OUT = Path("runs/bench-optuna")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "diffusionnag":
        return DiffusionNAGSampler("nb201", seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def run_one(job: tuple[str, str, int, int, str, str]) -> dict[str, Any]:
    """One study; the record written to (or already in) the run's JSON file."""
    sampler_name, dataset, seed, budget, table_path, out = job
    path = Path(out) / "runs" / f"{sampler_name}-{dataset}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    table = NB201Table.from_csv(table_path)
    _, optimum = table.optimum(dataset)
    params = arch_params("nb201")

    def objective(trial: optuna.Trial) -> float:
        return table.accuracy(suggest_arch(trial, params), dataset)

    def stop_at_optimum(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.value is not None and trial.value >= optimum:
            study.stop()

    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler_name, seed))
    started = time.perf_counter()
    study.optimize(objective, n_trials=budget, callbacks=[stop_at_optimum])
    values = [t.value for t in study.trials]
    reached = [i for i, v in enumerate(values) if v is not None and v >= optimum]
    record = {
        "sampler": sampler_name,
        "dataset": dataset,
        "seed": seed,
        "budget": budget,
        "optimum": optimum,
        "trials_to_optimum": reached[0] + 1 if reached else None,
        "distinct_cells": len({table.index(a) for a in _archs(study, params)}),
        "values": values,
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(path, record)
    return record


def _archs(study: optuna.Study, params: Any) -> list[Any]:
    return [params.from_params(t.params) for t in study.trials]


def summarise(records: list[dict[str, Any]], budget: int) -> tuple[dict[str, Any], str]:
    """Median and interquartile range of trials to the optimum per (dataset, sampler)."""
    rows, lines = (
        [],
        [
            "| dataset | sampler | runs | reached | trials to optimum: median (IQR) | s/trial |",
            "|---|---|---|---|---|---|",
        ],
    )
    for dataset in DATASETS:
        for name in SAMPLERS:
            chosen = [r for r in records if r["dataset"] == dataset and r["sampler"] == name]
            if not chosen:
                continue
            counts = np.array([r["trials_to_optimum"] or np.inf for r in chosen], dtype=np.float64)
            q25, median, q75 = np.percentile(counts, [25, 50, 75])
            per_trial = sum(r["seconds"] for r in chosen) / sum(len(r["values"]) for r in chosen)
            row = {
                "dataset": dataset,
                "sampler": name,
                "seeds": sorted(r["seed"] for r in chosen),
                "reached": int(np.isfinite(counts).sum()),
                "median": _count(median, budget),
                "q25": _count(q25, budget),
                "q75": _count(q75, budget),
                "seconds_per_trial": per_trial,
            }
            rows.append(row)
            lines.append(
                f"| {dataset} | {name} | {len(chosen)} | {row['reached']}/{len(chosen)} | "
                f"{row['median']} ({row['q25']} to {row['q75']}) | {per_trial:.3f} |"
            )
    return {"budget": budget, "rows": rows}, "\n".join(lines) + "\n"


def _count(value: float, budget: int) -> str:
    return f">{budget}" if not np.isfinite(value) else f"{value:g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first..first+seeds-1")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    table_path = str(default_table_path())
    jobs = [
        (name, dataset, seed, args.budget, table_path, str(args.out))
        for seed in range(args.first_seed, args.first_seed + args.seeds)
        for dataset in args.datasets
        for name in args.samplers
    ]
    records = []
    with ProcessPoolExecutor(args.workers) as pool:
        for record in pool.map(run_one, jobs):
            records.append(record)
            print(
                f"{record['sampler']} {record['dataset']} seed {record['seed']}: "
                f"{record['trials_to_optimum']} trials, {record['seconds']:.0f} s",
                flush=True,
            )
    every = [json.loads(p.read_text(encoding="utf-8")) for p in (args.out / "runs").glob("*.json")]
    summary, table = summarise(every, args.budget)
    atomic_write_json(args.out / "summary.json", summary)
    atomic_write_text(args.out / "summary.md", table)
    print(table)


if __name__ == "__main__":
    main()
