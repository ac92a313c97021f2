"""``meta-dataset``: write meta-datasets (JSONL rows of task, cell, accuracy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusionnag.benchmarks.nb201_table import DATASETS as TABLE_DATASETS
from diffusionnag.cli.common import check_writable
from diffusionnag.spaces import get_space


def add_meta_dataset_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "meta-dataset",
        help="write a meta-dataset (JSONL rows task, cell, accuracy)",
        description="Write the NB201 table's datasets as a meta-dataset, one task each.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    table = actions.add_parser("from-table", help="each NB201 table dataset becomes a task")
    table.add_argument("--table", type=Path, help="NATS-Bench topology CSV")
    table.add_argument("--tasks", nargs="+", default=list(TABLE_DATASETS))
    table.add_argument("--out", type=Path, required=True, help="JSONL file")


def cmd_meta_dataset(args: argparse.Namespace) -> int:
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
