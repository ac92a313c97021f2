"""``meta-dataset``: write meta-datasets (JSONL rows of task, cell, accuracy).

``from-table`` turns the NB201 table's datasets into tasks; ``build`` trains sampled NB201 cells
on sampled image tasks (:mod:`diffusionnag.transfer.builder`); ``reference`` trains random cells
on one given task, the distribution a found cell is placed in
(:mod:`diffusionnag.transfer.reference`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusionnag.cli.common import (
    add_device_option,
    add_numerics_options,
    check_writable,
    numerics,
    positive_int,
)
from diffusionnag.evaluators.nb201_table import DATASETS as TABLE_DATASETS
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.evaluators.task_transforms import TRANSFORMS
from diffusionnag.evaluators.tasks import TaskSampler, TaskSpec
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.spaces import get_space
from diffusionnag.transfer.builder import BuildConfig, build_meta_dataset
from diffusionnag.transfer.metadata import table_meta_dataset, write_meta_dataset_jsonl


def add_meta_dataset_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "meta-dataset",
        help="write a meta-dataset (JSONL rows task, cell, accuracy)",
        description="Write a meta-dataset: from the NB201 table, or by training cells on tasks.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    table = actions.add_parser("from-table", help="each NB201 table dataset becomes a task")
    table.add_argument("--table", type=Path, help="NATS-Bench topology CSV")
    table.add_argument("--tasks", nargs="+", default=list(TABLE_DATASETS))
    table.add_argument("--out", type=Path, required=True, help="JSONL file")
    _add_build_parser(actions)
    _add_reference_parser(actions)


def _add_build_parser(actions: argparse._SubParsersAction) -> None:
    build = actions.add_parser(
        "build",
        help="train sampled cells on sampled image tasks (a resumable JSONL journal)",
        description="Sample tasks (class subset, images per class, resolution) from an image "
        "dataset and cells of the space, train every (cell, task) pair under one short "
        "protocol and append the rows to a locked JSONL journal; --resume continues a killed "
        "build.",
    )
    build.add_argument("--source", required=True, help="digits, fashion-mnist or idx:PATH")
    build.add_argument("--tasks", type=positive_int, required=True)
    build.add_argument("--cells-per-task", type=positive_int, required=True)
    build.add_argument(
        "--shared-cells", type=int, help="cells every task trains (default: half of each task's)"
    )
    _add_run_options(build)
    build.add_argument("--resolutions", type=positive_int, nargs="+", default=[8, 16, 28])
    build.add_argument("--classes", type=positive_int, nargs=2, metavar=("MIN", "MAX"))
    build.add_argument(
        "--per-class", type=positive_int, nargs=2, default=[20, 300], metavar=("MIN", "MAX")
    )
    build.add_argument("--eval-per-class", type=positive_int, default=100)
    build.add_argument(
        "--transforms",
        nargs="+",
        choices=list(TRANSFORMS),
        default=["none"],
        help="task families, one drawn per task (default: none, the source's own images)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """What ``build`` and ``reference`` share: output, workers and the training protocol."""
    parser.add_argument("--out", type=Path, required=True, help="JSONL journal")
    parser.add_argument("--workers", type=positive_int, default=1, help="local worker processes")
    parser.add_argument("--epochs", type=positive_int, default=2)
    parser.add_argument("--space", default="nb201", help="nb201 (default) or mbv3")
    parser.add_argument("--channels", type=positive_int, default=16, help="NB201 C")
    parser.add_argument(
        "--cells-per-stage", type=positive_int, default=1, help="NB201 N (default %(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        help="least SGD steps per cell: small tasks train more epochs to reach it (default: none)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue the journal at --out")
    parser.add_argument("--no-progress", action="store_true")
    add_numerics_options(parser)
    add_device_option(parser)


def _add_reference_parser(actions: argparse._SubParsersAction) -> None:
    reference = actions.add_parser(
        "reference",
        help="train random cells on one task: the distribution a found cell is placed in",
        description="Train distinct random cells of the space on one task under the build "
        "protocol (a one-task meta-dataset journal); transfer --reference places its chosen "
        "cell among them.",
    )
    reference.add_argument(
        "--task", required=True, help="task name, e.g. digits/c0-1-2-3-4-5-6-7-8-9/n50/r8/s0"
    )
    reference.add_argument("--cells", type=positive_int, default=100)
    reference.add_argument("--eval-per-class", type=positive_int, default=100)
    _add_run_options(reference)


def cmd_meta_dataset(args: argparse.Namespace) -> int:
    actions = {"build": _cmd_build, "reference": _cmd_reference, "from-table": _cmd_from_table}
    return actions[args.action](args)


def _cmd_from_table(args: argparse.Namespace) -> int:

    check_writable(args.out, folder=False)
    table = NB201Table.from_csv(args.table or default_table_path())
    dataset = table_meta_dataset(table, args.tasks)
    write_meta_dataset_jsonl(dataset, get_space("nb201"), args.out)
    rows = sum(len(task.archs) for task in dataset.tasks)
    print(f"{rows} rows over {len(dataset.tasks)} tasks -> {args.out}")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:

    check_writable(args.out, folder=False)
    min_classes, max_classes = args.classes or (2, None)
    sampler = TaskSampler(
        source=args.source,
        resolutions=tuple(args.resolutions),
        min_classes=min_classes,
        max_classes=max_classes,
        min_per_class=args.per_class[0],
        max_per_class=args.per_class[1],
        eval_per_class=args.eval_per_class,
        seed=args.seed,
        transforms=tuple(args.transforms),
    )
    shared = args.cells_per_task // 2 if args.shared_cells is None else args.shared_cells
    config = BuildConfig(
        sampler, args.tasks, args.cells_per_task, shared, _train_config(args), args.seed, args.space
    )
    return _run_build(config, args)


def _cmd_reference(args: argparse.Namespace) -> int:

    check_writable(args.out, folder=False)
    spec = TaskSpec.from_name(args.task, args.eval_per_class)
    config = BuildConfig(
        None, 1, args.cells, 0, _train_config(args), args.seed, args.space, specs=(spec,)
    )
    return _run_build(config, args)


def _train_config(args: argparse.Namespace):

    return TrainConfig(
        epochs=args.epochs,
        channels=args.channels,
        cells_per_stage=args.cells_per_stage,
        steps=args.steps,
        device=args.device,
        **numerics(args),
    )


def _run_build(config, args: argparse.Namespace) -> int:

    summary = build_meta_dataset(
        config, args.out, workers=args.workers, resume=args.resume, progress=not args.no_progress
    )
    print(
        f"{summary.rows} rows over {summary.tasks} tasks -> {args.out} ({summary.written} "
        f"trained now in {summary.seconds:.0f} s: {summary.rows_per_hour:.0f} rows/hour)"
    )
    return 0
