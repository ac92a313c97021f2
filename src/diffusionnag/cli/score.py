"""``train-score`` and ``generate``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from diffusionnag.cli.common import (
    PROG,
    add_device_option,
    check_writable,
    non_negative_int,
    positive_int,
    write_json,
)
from diffusionnag.device import resolve_device
from diffusionnag.diffusion.model import (
    STATE_FILE,
    ScoreModel,
    ScoreTrainConfig,
    default_train_config,
    load_score_model,
    train_score_model,
    training_architectures,
)
from diffusionnag.diffusion.sde import SDES
from diffusionnag.generate import SAMPLER_NAMES, Generation, SamplerConfig, generate
from diffusionnag.guidance import (
    Budget,
    Objective,
    combined_log_prob,
    generate_ranked,
    guided,
    sigma_scaled,
)
from diffusionnag.metrics import generation_metrics
from diffusionnag.predictors.objective import TrainedPredictor, load_predictor
from diffusionnag.pretrained import SHIPPED
from diffusionnag.spaces import SPACES, Arch, SearchSpace

# --- train-score --------------------------------------------------------------------------

_TRAIN_FIELDS = {  # option dest -> ScoreTrainConfig field
    "space": "space",
    "sde": "sde",
    "steps": "steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "seed": "seed",
    "holdout": "holdout_fraction",
    "train_size": "train_size",
}
_NETWORK_FIELDS = ("hidden", "layers", "heads")
_SDE_PARAMS = ("sigma_min", "sigma_max")


def add_train_score_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-score",
        help="train a score model into a checkpoint folder",
        description="Train (or resume training) a score network on a search space. "
        "Unset options take the space's recommended settings "
        "(diffusionnag.diffusion.model.default_train_config).",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--sde", choices=sorted(SDES), help="forward process")
    parser.add_argument("--steps", type=positive_int, help="optimiser steps")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--holdout", type=float, help="fraction of the space kept out, in [0, 1)")
    parser.add_argument("--train-size", type=positive_int, help="draws for non-enumerable spaces")
    parser.add_argument("--sigma-min", type=float, help="VE SDE only")
    parser.add_argument("--sigma-max", type=float, help="VE SDE only")
    parser.add_argument("--hidden", type=positive_int, help="transformer width")
    parser.add_argument("--layers", type=positive_int, help="transformer blocks")
    parser.add_argument("--heads", type=positive_int, help="attention heads")
    add_device_option(parser)
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start from scratch even if --out holds a checkpoint (it is overwritten)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config_from_args(args: argparse.Namespace) -> ScoreTrainConfig:
    """A config that differs from the space's recommended one only where an option was given."""
    try:
        return _train_config(args)
    except ValueError as error:  # name the option the user typed, not the config field
        message = str(error)
        for field, option in _OPTION_OF_FIELD.items():
            message = message.replace(f"field {field!r}", option)
        raise ValueError(message) from None


_OPTION_OF_FIELD = {
    **{field: "--" + dest.replace("_", "-") for dest, field in _TRAIN_FIELDS.items()},
    **{f"network.{name}": f"--{name}" for name in _NETWORK_FIELDS},
}


def _train_config(args: argparse.Namespace) -> ScoreTrainConfig:
    base = default_train_config(args.space or ScoreTrainConfig.space)
    given = {
        field: getattr(args, dest)
        for dest, field in _TRAIN_FIELDS.items()
        if getattr(args, dest) is not None
    }
    network = {
        name: getattr(args, name) for name in _NETWORK_FIELDS if getattr(args, name) is not None
    }
    if network:
        given["network"] = dataclasses.replace(base.network, **network)
    sde = given.get("sde", base.sde)
    params = dict(base.sde_params) if sde == base.sde else _sde_defaults(sde)
    for name in _SDE_PARAMS:
        if getattr(args, name) is not None:
            if name not in params:
                option = "--" + name.replace("_", "-")
                raise ValueError(
                    f"{option} does not apply to the {sde} SDE (its parameters: "
                    f"{', '.join(_sde_defaults(sde))})"
                )
            params[name] = getattr(args, name)
    return dataclasses.replace(base, **given, sde_params=params)


def _sde_defaults(name: str) -> dict[str, float]:
    """Every parameter of SDE ``name`` with its default, saved explicitly with the checkpoint."""
    sde_fields = dataclasses.fields(SDES[name])  # type: ignore[arg-type]  # SDEs are dataclasses
    return {f.name: float(f.default) for f in sde_fields if isinstance(f.default, int | float)}


def cmd_train_score(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    resolve_device(args.device)
    check_writable(args.out, folder=True)
    resuming = args.resume and (args.out / STATE_FILE).exists()
    if resuming and not args.quiet:
        print(f"{PROG}: resuming from the checkpoint in {args.out}", file=sys.stderr)
    started = time.perf_counter()
    model = train_score_model(
        config, args.out, device=args.device, resume=args.resume, progress=not args.quiet
    )
    params = sum(p.numel() for p in model.network.parameters())
    print(
        f"trained {config.space} score model ({config.sde} SDE, {params:,} parameters, "
        f"{config.steps} steps) in {time.perf_counter() - started:.1f} s -> {args.out}"
    )
    return 0


# --- generate -----------------------------------------------------------------------------


def add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = SamplerConfig()
    parser = subparsers.add_parser(
        "generate",
        help="sample architectures from a trained score model",
        description="Generate architectures by reverse diffusion and report validity, "
        "uniqueness and novelty.",
    )
    parser.add_argument(
        "--checkpoint",
        default="nb201",
        help=f"train-score folder, or a space name ({', '.join(sorted(SPACES))}) for the "
        "model shipped with the package; default %(default)s",
    )
    parser.add_argument("--out", type=Path, required=True, help="results JSON file")
    parser.add_argument("--num", type=positive_int, default=1000, help="samples to generate")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default=defaults.name)
    parser.add_argument("--steps", type=positive_int, default=defaults.steps)
    parser.add_argument("--snr", type=float, default=defaults.snr, help="corrector step size")
    parser.add_argument(
        "--corrector-steps", type=non_negative_int, default=defaults.corrector_steps
    )
    parser.add_argument("--seed", type=int, default=0)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    guide = parser.add_argument_group("guidance", "steer generation with trained predictors")
    guide.add_argument(
        "--guide",
        action="append",
        default=[],
        metavar="FOLDER[:DIRECTION[:WEIGHT]]",
        help="predictor folder to maximize (default) or minimize, with a weight (repeatable)",
    )
    guide.add_argument(
        "--budget",
        action="append",
        default=[],
        metavar="FOLDER:LIMIT",
        help="cost predictor folder (train-predictor --cost) and its limit, enforced (repeatable)",
    )
    guide.add_argument("--scale", type=float, default=10.0, help="guidance scale k")
    guide.add_argument(
        "--unique",
        type=positive_int,
        help="generate until this many unique valid cells within budget, ranked best first",
    )


def checkpoint_folder(name: str) -> Path:
    """``--checkpoint``: a folder, or a space name for the score model shipped for it."""
    folder = Path(name)
    if name in SPACES and not folder.is_dir():
        return SHIPPED / f"score-{name}"
    return folder


def guidance_terms(
    args: argparse.Namespace, device: str, space: SearchSpace
) -> list[Objective | Budget]:
    """Objectives and budgets from ``--guide`` and ``--budget`` options; every predictor must
    be of the score model's ``space``."""
    terms: list[Objective | Budget] = []
    for spec in args.guide:
        folder, *rest = spec.split(":")
        direction = rest[0] if rest else "maximize"
        weight = _number(rest[1], spec) if len(rest) > 1 else 1.0
        predictor = _predictor_of(folder, device, space, "--guide")
        terms.append(Objective(predictor, direction, weight))
    for spec in args.budget:
        folder, sep, limit = spec.rpartition(":")
        if not sep:
            raise ValueError(f"--budget {spec!r} must be FOLDER:LIMIT")
        predictor = _predictor_of(folder, device, space, "--budget")
        metric = predictor.meta.get("cost")
        if not metric:
            raise ValueError(
                f"--budget needs a cost predictor (train-predictor --cost); {folder} "
                f"predicts {predictor.meta.get('target')!r}"
            )
        terms.append(Budget(predictor, _number(limit, spec), metric))
    return terms


def _predictor_of(folder: str, device: str, space: SearchSpace, option: str) -> TrainedPredictor:
    predictor = load_predictor(folder, device)
    if predictor.space.name != space.name:
        raise ValueError(
            f"{option} {folder}: the predictor is for space {predictor.space.name!r}, "
            f"but the score model generates {space.name!r} architectures"
        )
    return predictor


def _number(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} in {spec!r} is not a number") from None


def cmd_generate(args: argparse.Namespace) -> int:
    sampler = SamplerConfig(args.sampler, args.steps, args.snr, args.corrector_steps)
    resolve_device(args.device)
    check_writable(args.out, folder=False)
    started = time.perf_counter()
    checkpoint = checkpoint_folder(args.checkpoint)
    model = load_score_model(checkpoint, device=args.device)
    terms = guidance_terms(args, args.device, model.space)
    if args.unique and not terms:
        raise ValueError("--unique ranks guided cells: give at least one --guide or --budget")
    result = _generation(args, model, terms, sampler)
    train = set(training_architectures(model.space, model.config))
    metrics = generation_metrics(model.space, result.archs, train)
    notes = _novelty_notes(model.space, model.config)
    report = {
        "cells": [None if a is None else model.space.to_string(a) for a in result.archs],
        "metrics": metrics,
        "notes": notes,
        "settings": _generation_settings(args, model, checkpoint, sampler, bool(terms), result),
        "timing": {
            "generate_seconds": result.seconds,
            "total_seconds": time.perf_counter() - started,
        },
    }
    write_json(args.out, report)
    for name, value in metrics.items():
        print(f"{name:<21} {value:.4f}")
    for note in notes:
        print(f"note: {note}")
    if terms:
        _print_budgets(terms, result.valid)
    print(f"wrote {len(result.archs)} cells ({result.seconds:.1f} s of sampling) -> {args.out}")
    return 0


def _generation(
    args: argparse.Namespace, model: ScoreModel, terms: list, sampler: SamplerConfig
) -> Generation:
    """``--unique`` guided cells ranked by the guidance terms, else ``--num`` samples (guided
    where terms are given)."""
    if args.unique:
        ranked = generate_ranked(
            model, terms, args.unique, scale=args.scale, sampler=sampler, batch=args.num,
            seed=args.seed,
        )  # fmt: skip
        return Generation(
            list(ranked.archs),
            sum(r["seconds"] for r in ranked.rounds),
            {"rounds": ranked.rounds, "predicted": ranked.predicted.tolist()},
        )
    score = None
    if terms:
        log_p = combined_log_prob(terms)
        score = guided(model.score_fn(), log_p, sigma_scaled(args.scale, model.sde.std))
    return generate(model, args.num, sampler, seed=args.seed, score=score, progress=not args.quiet)


def _generation_settings(
    args: argparse.Namespace,
    model: ScoreModel,
    checkpoint: Path,
    sampler: SamplerConfig,
    guided_run: bool,
    result: Generation,
) -> dict[str, Any]:
    return {
        "space": model.space.name,
        "num": args.num,
        "sampler": dataclasses.asdict(sampler),
        "seed": args.seed,
        "device": str(resolve_device(args.device)),
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_config": dataclasses.asdict(model.config),
        "guide": args.guide,
        "budget": args.budget,
        "scale": args.scale if guided_run else 0.0,
        "unique": args.unique,
        **result.settings,
    }


def _novelty_notes(space: SearchSpace, config: ScoreTrainConfig) -> list[str]:
    if config.holdout_fraction == 0 and hasattr(space, "enumerate"):
        return [
            "novelty is 0 by construction: the model was trained on the whole space "
            "(train with --holdout > 0 to measure it)"
        ]
    return []


def _print_budgets(terms: list[Objective | Budget], valid: list[Arch]) -> None:
    for term in terms:
        if isinstance(term, Budget) and valid:
            share = sum(term.satisfied(a) for a in valid) / len(valid)
            print(f"within {term.metric} <= {term.limit:g}: {share:.4f} of valid cells")
