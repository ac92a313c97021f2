"""Transfer judged under the final protocol on held-out targets (issue "Image transfer on labels
that mean something", part 5).

Targets (``targets()``): part 2's six tasks (``bench_proxy_agreement.TASKS``) and three drawn
by a fresh sampler seed at the same scale (28 px, 3 to 10 classes, 200 to 500 training images
per class): two from the meta-dataset's families and one rotated, the family the meta-dataset
leaves out (with part 2's rotated task, two targets of it). Part 2's tasks chose the proxy, so
the report gives the fresh targets apart too.

Reference: 50 random cells a target (``space.sample(50, default_rng(0))``: part 2's 30 and 20
more), each trained with the final protocol (part 2's ``FINAL``: its label is the mean test
accuracy of seeds 0 and 1 on the whole test split) and with the proxy (seed 0).

Methods, each a ranked list of cells per target and run seed (0-4):

- ``conditioned``: ``TransferStrategy`` with the images meta-predictor, on the target's images;
- ``unconditioned``: the same with a meta-predictor of task encoder ``none`` (same rows);
- ``old``: the previous images meta-predictor (2-epoch labels, ``assets/meta-nb201-fmnist-images``);
- ``params``: ``ParameterOrder`` (largest first over the whole space, ties by seed);
- ``naswot`` / ``synflow``: ``NaswotOrder`` / ``SynflowOrder`` on the target's training images;
- ``random``: the reference's cells in a seeded order.

A run at budget k trains its first k cells with the proxy, keeps the best by proxy validation
accuracy and trains it with the final protocol, as ``transfer --final-steps`` does; the report
places that cell's final label in the reference (percentile) and gives its regret to the
reference's best label (``transfer_final_report.py``).

Stages, each resuming (rows in ``benchmarks/results/transfer-final/<task>.jsonl``, proposals in
``proposals-<method>.json``); ``--targets 0 3`` runs only those targets (one process per
target, never two on one target, so that each journal has one writer):

    OMP_NUM_THREADS=1 PYTHONPATH=src nice .venv/bin/python benchmarks/bench_transfer_final.py \\
        --stage references            # final rows of the reference cells (no proxy needed)
    ... --stage proposals --meta-predictor DIR --unconditioned DIR
    ... --stage train --proxy s158    # proxy rows, then the chosen cells' final rows
    ... --stage report --proxy s158
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import torch
from bench_proxy_agreement import CELLS as PART2_CELLS  # beside this file
from bench_proxy_agreement import FINAL, FINAL_SEEDS, PROXIES, TASKS, Protocol, task_rows, task_stem
from bench_transfer_images import proposals_of
from protocol_rows import append_row, plan_rows, random_cells, train_cell
from transfer_final_report import METHODS, cell_key, chosen_cells, write_report

from diffusionnag.diffusion.model import ScoreModel
from diffusionnag.evaluators.tasks import TaskSampler, TaskSpec, task_images
from diffusionnag.io import atomic_write_json
from diffusionnag.predictors.meta import TrainedMetaPredictor
from diffusionnag.pretrained import default_score_model
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.strategies.zero_cost import NaswotOrder, ParameterOrder, SynflowOrder
from diffusionnag.spaces import get_space
from diffusionnag.transfer.defaults import ASSETS
from diffusionnag.transfer.meta_train import load_meta_predictor
from diffusionnag.transfer.strategy import TransferStrategy

RESULTS = Path(__file__).parent / "results" / "transfer-final"
SPACE = get_space("nb201")
REFERENCE_CELLS = 50
CELL_DRAW_SEED = 0  # part 2's, so its 30 cells are the reference's first 30
RUN_SEEDS = range(5)
BUDGETS = (1, 2, 3, 5)
FRESH_SEED = 2025
"""Sampler seeds FRESH_SEED (two tasks of the meta-dataset's families) and FRESH_SEED + 1 (one
rotated): chosen once, after part 2's tasks were fixed; never used to tune anything."""
META_FAMILIES = ("none", "invert", "blur", "noise")
"""The meta-dataset's families; ``rotate`` is left out of meta-training."""
OLD_META_PREDICTOR = ASSETS / "meta-nb201-fmnist-images"


def _fresh(transforms: tuple[str, ...], count: int, seed: int) -> list[TaskSpec]:
    sampler = TaskSampler(
        "fashion-mnist",
        (28,),
        min_classes=3,
        min_per_class=200,
        max_per_class=500,
        eval_per_class=1000,
        seed=seed,
        transforms=transforms,
    )
    return sampler.sample(count)


def targets() -> list[TaskSpec]:
    return [*TASKS, *_fresh(META_FAMILIES, 2, FRESH_SEED), *_fresh(("rotate",), 1, FRESH_SEED + 1)]


def is_fresh(task: TaskSpec) -> bool:
    return task not in TASKS


def target_rows(task: TaskSpec) -> list[dict]:
    """Every row trained on ``task``: this benchmark's journals and, for part 2's tasks, part 2's
    (its final rows, and its proxies' seed-0 rows)."""
    rows = plan_rows(RESULTS, task_stem(task), ("protocol", "cell", "seed"))
    if task in TASKS:  # part 1's rows too, on part 2's first task
        ours = {(r["protocol"], r["cell"], r["seed"]) for r in rows}
        part2 = [r for r in task_rows(task) if (r["protocol"], r["cell"], r["seed"]) not in ours]
        rows += part2
    return [r for r in rows if not r["failed"]]


def _train(task: TaskSpec, protocol: Protocol, cell: str, seed: int) -> None:
    row = {"protocol": protocol.name, "seed": seed}
    row |= train_cell(protocol.spec(task), protocol.config(seed), cell)
    append_row(RESULTS / f"{task_stem(task)}.jsonl", row)
    print(
        f"{row['finished_utc']} {task.name} {protocol.name} {cell} seed {seed}: "
        f"valid {row['valid']:.2f} test {row['test']:.2f} ({row['train_cpu_seconds']:.0f} s)",
        flush=True,
    )


def run_missing(task: TaskSpec, runs: list[tuple[Protocol, str, int]]) -> None:
    """Train the runs (protocol, cell, seed) no journal holds yet (one cell of each class)."""
    done = {(r["protocol"], cell_key(r["cell"]), r["seed"]) for r in target_rows(task)}
    for protocol, cell, seed in runs:
        key = (protocol.name, cell_key(cell), seed)
        if key not in done:
            done.add(key)
            _train(task, protocol, cell, seed)


def chosen_targets(args: argparse.Namespace) -> list[tuple[int, TaskSpec]]:
    return [(n, task) for n, task in enumerate(targets()) if n in args.targets]


def stage_references(args: argparse.Namespace) -> None:
    """Final rows of the reference cells; on part 2's tasks only those part 2 does not train,
    so that the two benchmarks never train one run twice side by side."""
    cells = random_cells(REFERENCE_CELLS, CELL_DRAW_SEED)
    for _, task in chosen_targets(args):
        mine = cells[PART2_CELLS:] if task in TASKS else cells
        run_missing(task, [(FINAL, c, s) for c in mine for s in FINAL_SEEDS])


@functools.cache
def _meta_predictor(folder: Path) -> TrainedMetaPredictor:
    """Loaded once a process: every target and seed reads the same folder."""
    return load_meta_predictor(folder, "cpu")


@functools.cache
def _score_model() -> ScoreModel:
    return default_score_model("nb201")


def _strategy(args: argparse.Namespace, method: str, task: TaskSpec, seed: int) -> SearchStrategy:
    if method == "params":
        return ParameterOrder(SPACE, seed)
    if method in ("naswot", "synflow"):
        order = NaswotOrder if method == "naswot" else SynflowOrder
        return order(SPACE, seed, task=task.name)
    folder = {
        "conditioned": args.meta_predictor,
        "unconditioned": args.unconditioned,
        "old": OLD_META_PREDICTOR,
    }[method]
    predictor = _meta_predictor(folder)
    images = "images" in predictor.network.task_encoder.needs
    strategy = TransferStrategy(SPACE, seed, candidates=args.candidates)
    strategy.use(predictor, _score_model(), task_images(task) if images else None)
    return strategy


def proposals_path(method: str) -> Path:
    return RESULTS / f"proposals-{method}.json"


def read_proposals(method: str) -> dict[str, list[str]]:
    path = proposals_path(method)
    return json.loads(path.read_text()) if path.exists() else {}


def stage_proposals(args: argparse.Namespace) -> None:
    """Each method's first ``max(BUDGETS)`` cells per target and seed (``random`` excepted:
    the report draws it from the reference)."""
    for method in args.methods:
        done = read_proposals(method)
        for _, task in chosen_targets(args):
            for seed in RUN_SEEDS:
                key = f"{task.name}|{seed}"
                if key not in done:
                    strategy = _strategy(args, method, task, seed)
                    done[key] = proposals_of(strategy, max(BUDGETS))
                    atomic_write_json(proposals_path(method), done)
                    print(f"{method} {key}: {done[key][0]} ...", flush=True)


def proposed_runs(task: TaskSpec, number: int) -> dict[str, list[list[str]]]:
    """Each method's runs on a target (ranked cells per seed); a method lacking a run is left
    out (``random`` never lacks one)."""
    reference = random_cells(REFERENCE_CELLS, CELL_DRAW_SEED)
    runs = {
        "random": [
            list(np.random.default_rng([seed, number]).permutation(reference))[: max(BUDGETS)]
            for seed in RUN_SEEDS
        ]
    }
    for method in (m for m in METHODS if m != "random"):
        done = read_proposals(method)
        found = [done.get(f"{task.name}|{seed}") for seed in RUN_SEEDS]
        if all(found):
            runs[method] = found
    return runs


def _proxy(name: str) -> Protocol:
    return next(p for p in PROXIES if p.name == name)


def stage_train(args: argparse.Namespace) -> None:
    """Per target: the proxy rows of the reference and of every proposed cell, then the final
    rows of every cell a run chooses."""
    proxy = _proxy(args.proxy)
    reference = random_cells(REFERENCE_CELLS, CELL_DRAW_SEED)
    for number, task in chosen_targets(args):
        runs = proposed_runs(task, number)
        proposed = [cell for method in runs.values() for run in method for cell in run]
        run_missing(task, [(proxy, c, 0) for c in reference + proposed])
        rows = target_rows(task)
        chosen = {
            c for method in runs.values() for c in chosen_cells(method, rows, proxy.name, BUDGETS)
        }
        run_missing(task, [(FINAL, c, s) for c in sorted(chosen) for s in FINAL_SEEDS])


def stage_report(args: argparse.Namespace) -> None:
    tasks = targets()
    write_report(
        {task.name: (target_rows(task), proposed_runs(task, n)) for n, task in enumerate(tasks)},
        {task.name for task in tasks if is_fresh(task)},
        RESULTS,
        (FINAL.name, FINAL_SEEDS),
        args.proxy,
        random_cells(REFERENCE_CELLS, CELL_DRAW_SEED),
        BUDGETS,
    )


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages = ("targets", "references", "proposals", "train", "report")
    parser.add_argument("--stage", required=True, choices=stages)
    parser.add_argument("--proxy", choices=[p.name for p in PROXIES], help="train, report")
    parser.add_argument("--meta-predictor", type=Path, help="images meta-predictor (proposals)")
    parser.add_argument("--unconditioned", type=Path, help="encoder-none meta-predictor")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=[m for m in METHODS if m != "random"],
        default=[m for m in METHODS if m != "random"],
    )
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument(
        "--targets",
        type=int,
        nargs="+",
        default=list(range(len(targets()))),
        help="indices of the targets (default: all); one process per target",
    )
    args = parser.parse_args()
    if args.stage in ("train", "report") and args.proxy is None:
        parser.error(f"--stage {args.stage} needs --proxy")
    needs = {"conditioned": "meta_predictor", "unconditioned": "unconditioned"}
    missing = [m for m, a in needs.items() if m in args.methods and getattr(args, a) is None]
    if args.stage == "proposals" and missing:
        parser.error(f"--stage proposals with {', '.join(missing)} needs its meta-predictor")
    if args.stage == "targets":
        for task in targets():
            print(task.name, "(fresh)" if is_fresh(task) else "(part 2)")
        return
    {
        "references": stage_references,
        "proposals": stage_proposals,
        "train": stage_train,
        "report": stage_report,
    }[args.stage](args)


if __name__ == "__main__":
    main()
