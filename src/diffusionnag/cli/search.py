"""``search``: one run (with no options, DiffusionNAG-BO on digits); helpers for benchmark."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from diffusionnag.cli.common import (
    add_device_option,
    add_numerics_options,
    check_writable,
    numerics,
    positive_int,
    shown_path,
)
from diffusionnag.device import resolve_device
from diffusionnag.evaluators.registry import (
    DEFAULT_TRAIN_STEPS,
    BenchmarkSpec,
    train_config,
)
from diffusionnag.execution import EXECUTORS
from diffusionnag.io import parse_json
from diffusionnag.search.job import (
    SearchJob,
    best_table,
    chosen_line,
    prepare_job,
    run_prepared,
    run_warnings,
)
from diffusionnag.search.journal import journal_epochs
from diffusionnag.search.strategies import STRATEGIES
from diffusionnag.spaces import SPACES

DEFAULT_JOB = SearchJob()


def add_search_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search for an architecture (no options: DiffusionNAG-BO on digits, real training)",
        description="Run one search strategy against a benchmark, journaling every evaluation.",
    )
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default=DEFAULT_JOB.strategy)
    parser.add_argument("--space", choices=sorted(SPACES), default=DEFAULT_JOB.space)
    _add_benchmark_options(parser)
    parser.add_argument("--budget", type=positive_int, default=DEFAULT_JOB.budget)
    parser.add_argument("--seed", type=int, default=DEFAULT_JOB.seed)
    parser.add_argument("--out", type=Path, default=DEFAULT_JOB.out, help="result JSON")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help="training epochs per candidate; default: 4 for train:* raised to at least "
        f"{DEFAULT_TRAIN_STEPS} SGD steps for small datasets, 2 for task:* (the meta-dataset "
        "protocol)",
    )
    parser.add_argument(
        "--width-mult",
        type=float,
        default=DEFAULT_JOB.train.width_mult,
        help="width multiplier of MobileNetV3 subnets (train:*); default %(default)s",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy option, e.g. --option scale=5 (repeatable)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        help="cells the strategy proposes at once (evaluated in parallel with --workers); "
        "default: --workers, so every worker has a cell",
    )
    add_executor_options(parser, default_workers=DEFAULT_JOB.workers)
    add_numerics_options(parser)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_benchmark_options(parser: argparse.ArgumentParser) -> None:
    """What to evaluate against, and where its data lives."""
    parser.add_argument(
        "--benchmark",
        default=str(DEFAULT_JOB.benchmark),
        help="nb201:<cifar10|cifar100|ImageNet16-120> (table), nb201-valid:<cifar10-valid|cifar100|"
        "ImageNet16-120> (one seed's validation accuracy) or train:<digits|folder:PATH|"
        "idx:PATH|cifar10|cifar100> (real training) or task:<task name> (training on a task "
        "cut from a dataset, e.g. task:digits/c0-1-2/n50/r8/s0) or ofa:imagenet[,max_flops=F,"
        "...] (predicted ImageNet top-1 of MobileNetV3 subnets; --space mbv3); "
        "default %(default)s",
    )
    parser.add_argument("--table", type=Path, help="NATS-Bench topology CSV for nb201:*")
    parser.add_argument("--data-root", type=Path, help="folder holding local CIFAR files")
    parser.add_argument(
        "--ofa-dir",
        type=Path,
        help="once-for-all accuracy predictor and Note10 latency tables for ofa:* "
        "(default: $DIFFUSIONNAG_OFA_DIR, else the nearest shared/data/ofa)",
    )


def outputs_line(out: Path) -> str:
    files = {"results": out, "journal": out.with_suffix(".jsonl"), "plot": out.with_suffix(".png")}
    return ", ".join(f"{name} -> {shown_path(path)}" for name, path in files.items())


def _resumed(args: argparse.Namespace) -> Path | None:
    journal = args.out.with_suffix(".jsonl")
    return journal if args.resume and journal.is_file() else None


def batch_size_for(given: int | None, workers: int, journal: Path | None = None) -> int:
    """``--batch-size``, by default the resumed journal's (its trajectory depends on it), else
    ``--workers`` (a batch of one keeps all but one worker idle); a batch smaller than the
    workers is kept, with a line saying what it costs."""
    if given is None and journal is not None:
        given = _journal_batch_size(journal)
    if given is None:
        return workers
    if given < workers:
        print(
            f"note: batch size {given} < --workers {workers}: only {given} of the workers "
            "can be busy at once"
        )
    return given


def _journal_batch_size(journal: Path) -> int | None:
    """The batch size in a journal's header line, ``None`` where it cannot be read (opening the
    journal then reports what is wrong)."""
    try:
        with journal.open(encoding="utf-8") as handle:
            header = parse_json(handle.readline(1_000_000))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    size = header.get("batch_size") if isinstance(header, dict) else None
    return size if isinstance(size, int) and size >= 1 else None


def add_executor_options(parser: argparse.ArgumentParser, default_workers: int) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_workers,
        help="evaluations run at once; default %(default)s",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this process (1 worker) or local processes; ray: Ray tasks (extra 'ray')",
    )
    parser.add_argument(
        "--ray-address",
        help="Ray cluster to join (HOST:PORT or auto; default $RAY_ADDRESS, else a local Ray)",
    )


def parse_options(pairs: list[str]) -> dict:
    """``NAME=VALUE`` pairs, values read as JSON where they parse (numbers, true/false), else
    kept as text; the strategy checks each against its option's type."""
    options = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"strategy option {pair!r} is not of the form NAME=VALUE")
        try:
            options[name] = parse_json(value)
        except ValueError:  # not JSON, or hostile JSON: the strategy refuses the text
            options[name] = value
    return options


def parse_strategy_options(pairs: list[str], strategies: list[str]) -> dict[str, dict]:
    """``STRATEGY:NAME=VALUE`` pairs as ``{strategy: {name: value}}`` (values as in
    :func:`parse_options`); an error quotes the ``--option`` it is about."""
    options: dict[str, dict] = {}
    for pair in pairs:
        strategy, sep, rest = pair.partition(":")
        if not sep or not strategy or "=" in strategy or "=" not in rest:
            raise ValueError(f"--option {pair!r} is not of the form STRATEGY:NAME=VALUE")
        if strategy not in strategies:
            raise ValueError(
                f"--option {pair!r} names strategy {strategy!r}, which is not being run "
                f"(--strategies {' '.join(strategies)})"
            )
        try:
            options.setdefault(strategy, {}).update(parse_options([rest]))
        except ValueError:
            raise ValueError(f"--option {pair!r} is not of the form STRATEGY:NAME=VALUE") from None
    return options


def _epochs(args: argparse.Namespace) -> int | None:
    """The epochs given, else those of the journal being resumed (``None``: the default)."""
    if args.epochs is None and args.resume:
        return journal_epochs(args.out.with_suffix(".jsonl"))
    return args.epochs


def cmd_search(args: argparse.Namespace) -> int:
    resolve_device(args.device)  # also for table benchmarks, which never use it
    check_writable(args.out, folder=False)
    benchmark = BenchmarkSpec.parse(args.benchmark)
    job = SearchJob(
        strategy=args.strategy,
        space=args.space,
        benchmark=benchmark,
        budget=args.budget,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        table=args.table,
        data_root=args.data_root,
        ofa_dir=args.ofa_dir,
        train=train_config(
            benchmark,
            _epochs(args),
            width_mult=args.width_mult,
            seed=args.seed,
            device=args.device,
            **numerics(args),
        ),
        options=parse_options(args.option),
        progress=not args.quiet,
        batch_size=batch_size_for(args.batch_size, args.workers, _resumed(args)),
        workers=args.workers,
        executor=args.executor,
        ray_address=args.ray_address,
    )
    started = time.perf_counter()
    prepared = prepare_job(job)
    history = run_prepared(prepared)
    for warning in run_warnings(history, prepared.target):
        print(f"diffusionnag: warning: {warning}", file=sys.stderr)
    value_name = prepared.target.evaluator.value_name
    print(best_table(history, prepared.space, value_name))
    print(chosen_line(history, prepared.space, value_name, time.perf_counter() - started))
    print(outputs_line(args.out))
    return 0
