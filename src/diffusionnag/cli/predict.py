"""``train-predictor``: fit a noise-aware predictor from a table column, a pairs file or a cost."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from diffusionnag.cli.common import add_device_option, check_writable, positive_int
from diffusionnag.diffusion.model import ScoreTrainConfig, build_score_model, read_config
from diffusionnag.diffusion.sde import SDE
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.metrics import rank_correlations
from diffusionnag.predictors.data import COST_METRICS, cost_pairs, load_pairs
from diffusionnag.predictors.objective import (
    ACCURACY_FLOOR_QUANTILE,
    PredictorConfig,
    save_predictor,
    train_predictor,
)
from diffusionnag.spaces import SPACES, Arch, SearchSpace, get_space

HELD_OUT = 2000


def add_train_predictor_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-predictor",
        help="fit a noise-aware predictor used for guidance and ranking",
        description="Fit a predictor on architectures perturbed by the score model's SDE. "
        "Targets come from exactly one of --dataset (a table column), --pairs or --cost.",
    )
    parser.add_argument("--space", choices=sorted(SPACES), default="nb201")
    parser.add_argument("--out", type=Path, required=True, help="predictor folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", help="table column: cifar10, cifar100 or ImageNet16-120")
    source.add_argument(
        "--pairs",
        type=Path,
        help="JSON or CSV of (cell, value) pairs, or a search run's result JSON or .jsonl journal",
    )
    source.add_argument("--cost", choices=COST_METRICS, help="exact cost of sampled cells")
    parser.add_argument("--table", type=Path, help="NATS-Bench topology CSV (with --dataset)")
    parser.add_argument(
        "--sample",
        type=positive_int,
        default=100,
        help="cells drawn uniformly from the table or for --cost",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="score-model folder whose SDE to use (default: the default SDE)",
    )
    parser.add_argument("--epochs", type=positive_int, default=PredictorConfig.epochs)
    parser.add_argument(
        "--floor-quantile",
        type=float,
        help=f"raise targets below this quantile (default {ACCURACY_FLOOR_QUANTILE} "
        "for --dataset/--pairs, 0 for --cost)",
    )
    parser.add_argument("--seed", type=int, default=0)
    add_device_option(parser)


def _score_sde(args: argparse.Namespace) -> SDE:
    config = read_config(args.checkpoint) if args.checkpoint else ScoreTrainConfig(space=args.space)
    if config.space != args.space:
        raise ValueError(f"checkpoint {args.checkpoint} is for space {config.space!r}")
    return build_score_model(config).sde


def _targets(args, space: SearchSpace, rng) -> tuple[list[Arch], np.ndarray, list, np.ndarray]:
    """Training cells and values, plus held-out cells and values where the source has them."""
    if args.pairs:
        archs, values = load_pairs(args.pairs, space)
        return archs, values, [], np.array([])
    if args.cost:
        archs, values = cost_pairs(space, args.cost, args.sample + HELD_OUT, rng)
        return (
            archs[: args.sample],
            values[: args.sample],
            archs[args.sample :],
            values[args.sample :],
        )

    table = NB201Table.from_csv(args.table or default_table_path())
    values = table.accuracies(args.dataset)
    order = rng.permutation(len(values))
    train, test = order[: args.sample], order[args.sample : args.sample + HELD_OUT]
    return (
        [table.archs[i] for i in train],
        values[train],
        [table.archs[i] for i in test],
        values[test],
    )


def cmd_train_predictor(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    check_writable(args.out, folder=True)
    rng = np.random.default_rng(args.seed)
    archs, values, test_archs, test_values = _targets(args, space, rng)
    floor = args.floor_quantile
    if floor is None:
        floor = 0.0 if args.cost else ACCURACY_FLOOR_QUANTILE
    config = PredictorConfig(epochs=args.epochs, seed=args.seed, floor_quantile=floor)
    target = args.cost or args.dataset or f"pairs:{args.pairs}"
    meta = {"target": target, "cost": args.cost, "train_cells": len(archs)}
    predictor = train_predictor(
        space, _score_sde(args), archs, values, config, device=args.device, meta=meta, progress=True
    )
    if test_archs:
        meta["held_out"] = rank_correlations(predictor.predict(test_archs), test_values)
        predictor.meta.update(meta)
    save_predictor(predictor, args.out, config)
    print(f"trained on {len(archs)} cells ({target}) -> {args.out}")
    for name, value in meta.get("held_out", {}).items():
        print(f"held-out {name:<14} {value:.4f}  ({len(test_archs)} cells)")
    return 0
