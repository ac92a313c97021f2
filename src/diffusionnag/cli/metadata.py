"""``meta-dataset``: write meta-datasets (JSONL rows of task, cell, accuracy).

``from-table`` turns the NB201 table's datasets into tasks; ``build`` trains sampled NB201 cells
on sampled image tasks (:mod:`diffusionnag.transfer.builder`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusionnag.benchmarks.nb201_table import DATASETS as TABLE_DATASETS
from diffusionnag.cli.common import add_device_option, check_writable, positive_int
from diffusionnag.spaces import get_space


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
    build.add_argument("--out", type=Path, required=True, help="JSONL journal")
    build.add_argument("--workers", type=positive_int, default=1, help="local worker processes")
    build.add_argument("--epochs", type=positive_int, default=2)
    build.add_argument("--space", default="nb201", help="nb201 (default) or mbv3")
    build.add_argument("--channels", type=positive_int, default=16, help="NB201 C (N is 1)")
    build.add_argument("--resolutions", type=positive_int, nargs="+", default=[8, 16, 28])
    build.add_argument("--classes", type=positive_int, nargs=2, metavar=("MIN", "MAX"))
    build.add_argument(
        "--per-class", type=positive_int, nargs=2, default=[20, 300], metavar=("MIN", "MAX")
    )
    build.add_argument("--eval-per-class", type=positive_int, default=100)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--resume", action="store_true", help="continue the journal at --out")
    build.add_argument("--no-progress", action="store_true")
    add_device_option(build)


def cmd_meta_dataset(args: argparse.Namespace) -> int:
    return _cmd_build(args) if args.action == "build" else _cmd_from_table(args)


def _cmd_from_table(args: argparse.Namespace) -> int:
    from diffusionnag.benchmarks.nb201_table import NB201Table
    from diffusionnag.benchmarks.shared_data import default_table_path
    from diffusionnag.transfer.metadata import table_meta_dataset, write_meta_dataset_jsonl

    check_writable(args.out, folder=False)
    table = NB201Table.from_csv(args.table or default_table_path())
    dataset = table_meta_dataset(table, args.tasks)
    write_meta_dataset_jsonl(dataset, get_space("nb201"), args.out)
    rows = sum(len(task.archs) for task in dataset.tasks)
    print(f"{rows} rows over {len(dataset.tasks)} tasks -> {args.out}")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from diffusionnag.benchmarks.training import TrainConfig
    from diffusionnag.transfer.builder import BuildConfig, build_meta_dataset
    from diffusionnag.transfer.tasks import TaskSampler

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
    )
    shared = args.cells_per_task // 2 if args.shared_cells is None else args.shared_cells
    train = TrainConfig(epochs=args.epochs, channels=args.channels, device=args.device)
    config = BuildConfig(
        sampler, args.tasks, args.cells_per_task, shared, train, args.seed, args.space
    )
    summary = build_meta_dataset(
        config, args.out, workers=args.workers, resume=args.resume, progress=not args.no_progress
    )
    print(
        f"{summary.rows} rows over {summary.tasks} tasks -> {args.out} ({summary.written} "
        f"trained now in {summary.seconds:.0f} s: {summary.rows_per_hour:.0f} rows/hour)"
    )
    return 0
