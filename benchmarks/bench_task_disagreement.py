"""How much the tasks of a built meta-dataset disagree about which cells are good.

Task conditioning can only help where tasks rank cells differently. Over the cells every task
trained (``meta-dataset build`` gives each task the same ``--shared-cells``), this reports the
Spearman correlation of cell accuracies for every pair of tasks, split by whether the two tasks
share a resolution, a class-count band and a training-size band; how often two tasks agree on
the best shared cell; and the regret of a task-blind choice: on each task, the accuracy its best
shared cell has over the shared cell that is best on average over the *other* tasks.

Disagreement means something only beside training noise: ``--noise-tasks K`` retrains the
shared cells of the first K tasks under the same protocol with another training seed and reports
the seed-to-seed Spearman on each (what two runs of *one* task agree to).

    .venv/bin/python benchmarks/bench_task_disagreement.py runs/meta-fmnist/rows.jsonl \
        --noise-tasks 4 --out runs/meta-fmnist/disagreement.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from diffusionnag.evaluators.tasks import TaskSpec
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.io import atomic_write_json
from diffusionnag.metrics import rank_correlations
from diffusionnag.transfer.builder import RowJob, train_row

CLASS_BANDS = (2, 4, 7, 11)  # 2-3, 4-6, 7-10 classes
SIZE_BANDS = (0, 50, 150, 10**9)  # training images per class


def read_rows(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """Per task: accuracy by cell (failed rows dropped), and the task's spec."""
    accuracy: dict[str, dict[str, float]] = {}
    specs: dict[str, dict] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("type") == "header" or row.get("failed") or row.get("accuracy") is None:
            continue
        accuracy.setdefault(row["task"], {})[row["cell"]] = float(row["accuracy"])
        specs[row["task"]] = row["spec"]
    return accuracy, specs


def band(value: int, edges: tuple[int, ...]) -> int:
    return int(np.searchsorted(edges, value, side="right"))


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"pairs": 0}
    q = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {
        "pairs": len(values),
        "median": float(q[2]),
        "q25": float(q[1]),
        "q75": float(q[3]),
        "p10": float(q[0]),
        "p90": float(q[4]),
        "below_0.5": float(np.mean(np.asarray(values) < 0.5)),
    }


def task_blind_regret(table: np.ndarray) -> np.ndarray:
    """``[T]``: per task, its best shared cell minus the cell best on average elsewhere."""
    regrets = []
    for t in range(len(table)):
        others = np.delete(table, t, axis=0).mean(axis=0)
        regrets.append(table[t].max() - table[t, int(np.argmax(others))])
    return np.asarray(regrets)


def seed_noise(path: Path, shared: list[str], tasks: list[str], specs: dict, count: int) -> dict:
    """Seed-to-seed Spearman of the shared cells on ``count`` tasks (training seed 0 vs 1)."""
    header = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    protocol = header["protocol"]
    train = TrainConfig(**{**protocol["train"], "seed": 1, "device": protocol["device"]})
    accuracy, _ = read_rows(path)
    rhos, gaps = [], []
    for name in tasks[:count]:
        spec = TaskSpec.from_json(specs[name])
        again = [train_row(RowJob(0, spec, c, train, header["space"]))["accuracy"] for c in shared]
        first = [accuracy[name][c] for c in shared]
        rhos.append(rank_correlations(first, again)["spearman"])
        gaps.extend(abs(a - b) for a, b in zip(first, again, strict=True))
    return {
        "tasks": count,
        "spearman_per_task": rhos,
        "spearman_median": float(np.median(rhos)),
        "abs_accuracy_change_median": float(np.median(gaps)),
    }


def disagreement(path: Path, noise_tasks: int = 0) -> dict:
    accuracy, specs = read_rows(path)
    most = max(len(cells) for cells in accuracy.values())
    tasks = sorted(t for t in accuracy if len(accuracy[t]) == most)  # drop the unfinished task
    shared = sorted(set.intersection(*(set(accuracy[t]) for t in tasks)))
    if len(tasks) < 2 or len(shared) < 3:
        raise SystemExit(f"{path}: {len(tasks)} tasks share {len(shared)} cells; need 2 and 3")
    table = np.array([[accuracy[t][c] for c in shared] for t in tasks])  # [T, S]
    groups: dict[str, list[float]] = {"all": []}
    same_best = []
    for i, j in itertools.combinations(range(len(tasks)), 2):
        rho = rank_correlations(table[i], table[j])["spearman"]
        a, b = specs[tasks[i]], specs[tasks[j]]
        same = {
            "resolution": a["resolution"] == b["resolution"],
            "class band": band(len(a["classes"]), CLASS_BANDS)
            == band(len(b["classes"]), CLASS_BANDS),
            "size band": band(a["per_class"], SIZE_BANDS) == band(b["per_class"], SIZE_BANDS),
        }
        groups["all"].append(rho)
        for axis, equal in same.items():
            groups.setdefault(f"same {axis}" if equal else f"different {axis}", []).append(rho)
        if all(same.values()):
            groups.setdefault("same on all three", []).append(rho)
        same_best.append(int(np.argmax(table[i])) == int(np.argmax(table[j])))
    regret = task_blind_regret(table)
    noise = seed_noise(path, shared, tasks, specs, noise_tasks) if noise_tasks else None
    return {
        "seed_noise": noise,
        "meta_dataset": str(path),
        "tasks": len(tasks),
        "shared_cells": len(shared),
        "spearman": {name: summary(values) for name, values in sorted(groups.items())},
        "same_best_cell": float(np.mean(same_best)),
        "task_blind_regret_points": {
            "median": float(np.median(regret)),
            "mean": float(regret.mean()),
            "max": float(regret.max()),
            "zero": float(np.mean(regret == 0)),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meta_dataset", type=Path, help="JSONL written by meta-dataset build")
    parser.add_argument("--noise-tasks", type=int, default=0, help="tasks retrained with seed 1")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    result = disagreement(args.meta_dataset, args.noise_tasks)
    print(json.dumps(result, indent=2))
    if args.out is not None:
        atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
