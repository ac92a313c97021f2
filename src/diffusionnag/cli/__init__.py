"""The ``diffusionnag`` command: parse, build through registries, call one library function,
write results.

Each command is a pair ``_add_<name>_parser(subparsers)`` / ``_cmd_<name>(args) -> int`` listed
in :data:`COMMANDS`. User mistakes (bad options, missing or corrupt files, unwritable paths) end
as one line ``diffusionnag: error: <message>`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from diffusionnag.cli.benchmark import add_benchmark_parser, cmd_benchmark
from diffusionnag.cli.common import PROG, USAGE_ERROR, Parser
from diffusionnag.cli.metadata import add_meta_dataset_parser, cmd_meta_dataset
from diffusionnag.cli.predict import add_train_predictor_parser, cmd_train_predictor
from diffusionnag.cli.score import (
    add_generate_parser,
    add_train_score_parser,
    cmd_generate,
    cmd_train_score,
    train_config_from_args,
)
from diffusionnag.cli.search import (
    add_search_parser,
    cmd_search,
)
from diffusionnag.cli.transfer import (
    add_meta_train_parser,
    add_transfer_parser,
    cmd_meta_train,
    cmd_transfer,
)
from diffusionnag.device import one_thread_unless_told

# --- entry point --------------------------------------------------------------------------

Command = tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "train-score": (add_train_score_parser, cmd_train_score),
    "generate": (add_generate_parser, cmd_generate),
    "train-predictor": (add_train_predictor_parser, cmd_train_predictor),
    "search": (add_search_parser, cmd_search),
    "benchmark": (add_benchmark_parser, cmd_benchmark),
    "meta-dataset": (add_meta_dataset_parser, cmd_meta_dataset),
    "meta-train": (add_meta_train_parser, cmd_meta_train),
    "transfer": (add_transfer_parser, cmd_transfer),
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Neural architecture generation by diffusion.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    one_thread_unless_told()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command][1](args)
    except (ValueError, OSError) as error:  # FileNotFoundError is an OSError
        message = " ".join(str(error).split())  # one line, whatever the library wrote
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return USAGE_ERROR


__all__ = ["COMMANDS", "build_parser", "main", "train_config_from_args"]
