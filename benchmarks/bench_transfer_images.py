"""Transfer to unseen image tasks (issue 12, part 4): conditioned vs unconditioned vs random.

Targets: the tasks the images meta-predictor held out of meta-training (every 11th task of the
shipped Fashion-MNIST meta-dataset, names in its ``meta_predictor.json``) and a task of another
dataset, scikit-learn's digits (10 classes, 50 training images each, 8 px). Every cell is trained
under the meta-dataset's protocol (NB201 C=16 N=1, 2 epochs, training seed 0); a cell is chosen
by validation accuracy and reported by test accuracy.

For each target, a reference distribution: ``--reference-cells`` distinct random cells trained
under that protocol (``meta-dataset reference``; digits uses the shipped one). At trained-cell
budgets 1, 2, 3, 5 the best cell found (by validation) is placed by its test accuracy in the
reference (percentile) and its regret to the reference's best test accuracy is reported, for:

- ``conditioned``: the transfer pipeline with the images meta-predictor (the target's images);
- ``unconditioned``: the same pipeline with a meta-predictor whose task encoder is ``none``
  (same rows, holdout and training; one learned vector for every task);
- ``random``: cells in a random order of the reference itself (random cells trained the same
  way, so this is random search exactly, without training anything again).

DiffusionNAG-BO from scratch starts with ``num_init=10`` uniformly random cells, so at these
budgets its proposals are random search's by construction; the report says so instead of
training a second random sample.

With the images or none encoder the pipeline's ranking never reads the evaluated accuracies
(only which cells were evaluated), so each run's proposals are computed first, the proposed
cells trained after: the same cells, in the same order, as a run that trained as it went.

``--fresh N`` replaces the targets by N new Fashion-MNIST tasks drawn by the meta-dataset's
sampler settings with another seed (never seen, and never used for any design decision).

Stages (each resumes; run ``references`` and ``proposals`` side by side, then the rest):

    nice .venv/bin/python benchmarks/bench_transfer_images.py --stage references --workers 2
    nice .venv/bin/python benchmarks/bench_transfer_images.py --stage proposals \
        --unconditioned runs/meta/extractor/none-s0
    nice .venv/bin/python benchmarks/bench_transfer_images.py --stage candidates --workers 2
    .venv/bin/python benchmarks/bench_transfer_images.py --stage report
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.tasks import TaskSampler, TaskSpec, task_images
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.io import atomic_write_json
from diffusionnag.pretrained import default_score_model
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History, Trial
from diffusionnag.spaces import get_space
from diffusionnag.transfer.builder import BuildConfig, RowJob, build_meta_dataset, train_rows
from diffusionnag.transfer.defaults import ASSETS
from diffusionnag.transfer.meta_train import load_meta_predictor
from diffusionnag.transfer.reference import read_reference, shipped_reference
from diffusionnag.transfer.strategy import TransferStrategy

DIGITS = "digits/c0-1-2-3-4-5-6-7-8-9/n50/r8/s0"
SPACE = get_space("nb201")
PROTOCOL = TrainConfig(epochs=2)
"""The shipped meta-dataset's protocol (its header): every field at its default but epochs."""


def targets(args: argparse.Namespace) -> list[str]:
    """The meta-predictor's held-out tasks and digits; with ``--fresh N``, N new Fashion-MNIST
    tasks drawn like the meta-dataset's (sampler seed ``--fresh-seed``) instead."""
    if args.fresh:
        sampler = TaskSampler(
            "fashion-mnist", (8, 12, 16), min_per_class=20, max_per_class=200,
            seed=args.fresh_seed,
        )  # fmt: skip
        return [spec.name for spec in sampler.sample(args.fresh)]
    meta = args.meta_predictor / "meta_predictor.json"
    return [*json.loads(meta.read_text())["meta"]["held_out"], DIGITS]


def slug(task: str) -> str:
    return task.replace("/", "_")


def reference_path(out: Path, task: str) -> Path:
    shipped = shipped_reference(task)
    return shipped if shipped is not None else out / "references" / f"{slug(task)}.jsonl"


def stage_references(args: argparse.Namespace) -> None:
    for task in targets(args):
        if shipped_reference(task) is not None:
            continue
        config = BuildConfig(
            None, 1, args.reference_cells, 0, PROTOCOL, seed=0, specs=(TaskSpec.from_name(task),)
        )
        summary = build_meta_dataset(
            config, reference_path(args.out, task), workers=args.workers, resume=True
        )
        print(f"{task}: {summary.rows} reference cells ({summary.written} trained now)")


def proposals_of(strategy: SearchStrategy, budget: int) -> list[str]:
    """The cells a run proposes, in order (the ranking ignores the values: module docstring)."""
    history = History(SPACE)
    for index in range(budget):
        (arch,) = strategy.ask(history, 1)
        history.append(Trial(index, arch, 0.0))
    return [SPACE.to_string(trial.arch) for trial in history]


def proposals_path(args: argparse.Namespace, method: str) -> Path:
    """One file per method and shard, so stages can run side by side."""
    shard = f"-{args.shard[0]}of{args.shard[1]}" if args.shard else ""
    return args.out / f"proposals-{method}{shard}.json"


def read_proposals(args: argparse.Namespace, method: str) -> dict[str, list[str]]:
    """Every shard's proposals of ``method``."""
    done: dict[str, list[str]] = {}
    for path in sorted(args.out.glob(f"proposals-{method}*.json")):
        done.update(json.loads(path.read_text()))
    return done


def stage_proposals(args: argparse.Namespace) -> None:
    model = default_score_model("nb201")
    methods = {"conditioned": args.meta_predictor, "unconditioned": args.unconditioned}
    for method, folder in methods.items():
        if method not in args.methods:
            continue
        path = proposals_path(args, method)
        done = read_proposals(args, method)
        mine = json.loads(path.read_text()) if path.exists() else {}
        predictor = load_meta_predictor(folder, "cpu")
        images = "images" in predictor.network.task_encoder.needs
        # Without task conditioning every target gets the same proposals: compute them once.
        tasks = targets(args) if images else ["any target"]
        if args.shard:
            tasks = tasks[args.shard[0] :: args.shard[1]]
        for task in tasks:
            for seed in range(args.seeds):
                key = f"{method}|{task}|{seed}"
                if key in done:
                    continue
                strategy = TransferStrategy(
                    SPACE, seed, candidates=args.candidates, round_samples=args.round_samples
                )
                strategy.use(
                    predictor, model, task_images(TaskSpec.from_name(task)) if images else None
                )
                done[key] = mine[key] = proposals_of(strategy, max(args.budgets))
                atomic_write_json(path, mine)
                print(f"{key}: {done[key][0]} ... ({strategy.generation_rounds})", flush=True)


def method_cells(args: argparse.Namespace, task: str) -> dict[str, list[list[str]]] | None:
    """Each method's runs (proposed cells in order) on ``task``; ``None`` until all exist."""
    cells = {}
    for method in ("conditioned", "unconditioned"):
        done = read_proposals(args, method)
        runs = []
        for seed in range(args.seeds):
            run = done.get(f"{method}|{task}|{seed}") or done.get(f"{method}|any target|{seed}")
            if run is None:
                return None
            runs.append(run)
        cells[method] = runs
    return cells


def stage_candidates(args: argparse.Namespace) -> None:
    """Train every proposed cell the reference lacks, in order of first proposal."""
    for task in targets(args):
        reference = read_reference(reference_path(args.out, task))
        known = {SPACE.canonical_key(SPACE.from_string(c)) for c in reference.cells}
        methods = method_cells(args, task)
        if methods is None:
            print(f"{task}: proposals not finished; skipped (run this stage again)")
            continue
        needed: list[str] = []
        for runs in methods.values():
            for cell in (c for run in runs for c in run):
                key = SPACE.canonical_key(SPACE.from_string(cell))
                if key not in known:
                    known.add(key)
                    needed.append(cell)
        if not needed:
            continue
        spec = TaskSpec.from_name(task)
        jobs = [RowJob(i, spec, cell, PROTOCOL, "nb201") for i, cell in enumerate(needed)]
        header = {"kind": "transfer-candidates", "task": task, "cells": len(jobs)}
        out = args.out / "candidates" / f"{slug(task)}.jsonl"
        written, seconds = train_rows(jobs, out, header, workers=args.workers, resume=True)
        print(f"{task}: {len(jobs)} candidate cells ({written} trained now, {seconds:.0f} s)")


def lookup(args: argparse.Namespace, task: str) -> dict[str, tuple[float, float]]:
    """Canonical key -> (validation, test) accuracy; a diverged cell is (-inf, -inf)."""
    table = {}
    paths = [reference_path(args.out, task), args.out / "candidates" / f"{slug(task)}.jsonl"]
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            row = json.loads(line)
            key = SPACE.canonical_key(SPACE.from_string(row["cell"]))
            failed = row["failed"] or row["accuracy"] is None
            table[key] = (-np.inf, -np.inf) if failed else (row["accuracy"], row["test_accuracy"])
    return table


def chosen_test(cells: list[str], table: dict[str, tuple[float, float]]) -> float:
    """Test accuracy of the best cell by validation accuracy."""
    scored = [table[SPACE.canonical_key(SPACE.from_string(c))] for c in cells]
    return max(scored)[1]


def stage_report(args: argparse.Namespace) -> None:
    rows: dict[tuple[str, int], list[tuple[float, float]]] = {}
    per_target: dict[tuple[str, int, str], list[float]] = {}
    for number, task in enumerate(targets(args)):
        reference = read_reference(reference_path(args.out, task))
        table = lookup(args, task)
        runs = method_cells(args, task)
        if runs is None:
            raise SystemExit(f"no proposals for every run on {task}: run --stage proposals")
        runs["random"] = [
            list(np.random.default_rng([seed, number]).permutation(reference.cells))
            for seed in range(args.seeds)
        ]
        best = float(np.nanmax(reference.test_accuracies))
        for method, method_runs in runs.items():
            for budget in args.budgets:
                for run in method_runs:
                    test = chosen_test(run[:budget], table)
                    entry = (reference.place(test).percentile, best - test)
                    rows.setdefault((method, budget), []).append(entry)
                    per_target.setdefault((task, budget, method), []).append(entry[0])
    print_report(args, rows, per_target)


def _quartiles(values: list[float]) -> str:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.1f} ({q1:.1f} to {q3:.1f})"


def print_report(args, rows, per_target) -> None:
    print(f"{args.seeds} seeds x {len(targets(args))} targets per cell of the table")
    print("| budget | method | percentile: median (IQR) | regret, test points: median (IQR) |")
    print("|---|---|---|---|")
    for budget in args.budgets:
        for method in ("conditioned", "unconditioned", "random"):
            entries = rows[(method, budget)]
            percentiles, regrets = [e[0] for e in entries], [e[1] for e in entries]
            print(f"| {budget} | {method} | {_quartiles(percentiles)} | {_quartiles(regrets)} |")
    print("\nmedian percentile per target at budget 2 (conditioned / unconditioned / random):")
    for task in targets(args):
        medians = [statistics.median(per_target[(task, 2, m)]) for m in
                   ("conditioned", "unconditioned", "random")]  # fmt: skip
        print(f"  {task}: " + " / ".join(f"{m:.0f}" for m in medians))


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=("references", "proposals", "candidates", "report"))
    parser.add_argument("--meta-predictor", type=Path, default=ASSETS / "meta-nb201-fmnist-images")
    parser.add_argument("--unconditioned", type=Path, help="a meta-predictor with encoder none")
    parser.add_argument(
        "--methods", nargs="+", default=["conditioned", "unconditioned"], help="for proposals"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=0, help="N new tasks as the targets")
    parser.add_argument("--fresh-seed", type=int, default=1)
    parser.add_argument(
        "--shard", type=int, nargs=2, metavar=("I", "N"), help="proposals: every N-th target from I"
    )
    parser.add_argument("--budgets", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--reference-cells", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--round-samples", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/transfer_images"))
    args = parser.parse_args()
    if args.stage == "proposals" and args.unconditioned is None:
        parser.error("--stage proposals needs --unconditioned DIR (meta-train --encoder none)")
    stages = {
        "references": stage_references,
        "proposals": stage_proposals,
        "candidates": stage_candidates,
        "report": stage_report,
    }
    stages[args.stage](args)


if __name__ == "__main__":
    main()
