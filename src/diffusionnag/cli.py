"""The ``diffusionnag`` command: parse, build through registries, call one library function,
write results.

Each command is a pair ``_add_<name>_parser(subparsers)`` / ``_cmd_<name>(args) -> int`` listed
in :data:`COMMANDS`. User mistakes (bad options, missing or corrupt files, unwritable paths) end
as one line ``diffusionnag: error: <message>`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from diffusionnag.device import DEVICE_CHOICES, resolve_device
from diffusionnag.diffusion.sde import SDES
from diffusionnag.generate import SAMPLER_NAMES, SamplerConfig, generate
from diffusionnag.metrics import generation_metrics
from diffusionnag.spaces import SPACES, SearchSpace
from diffusionnag.training import (
    STATE_FILE,
    ScoreTrainConfig,
    atomic_write,
    load_score_model,
    train_score_model,
    training_architectures,
)

PROG = "diffusionnag"
USAGE_ERROR = 2


class UsageError(ValueError):
    """A command line argparse rejects; reported like any other user mistake."""


class _Parser(argparse.ArgumentParser):
    # argparse would print the whole usage block and exit; one line is easier to read in logs.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto = CUDA when available)",
    )


def _check_writable(path: Path, *, folder: bool) -> None:
    """Fail before minutes of work rather than at the final write."""
    if path.exists() and path.is_dir() != folder:
        kind = "a folder" if path.is_dir() else "a file"
        raise ValueError(f"output path {path} is {kind}")
    parent = path if folder else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write to {path}: {parent} is not a folder")
    try:  # a real probe: permission bits say nothing for root or special file systems
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as error:
        raise ValueError(f"cannot write to {path}: {error.strerror} in {parent}") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror}") from None


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


def _add_train_score_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-score",
        help="train a score model into a checkpoint folder",
        description="Train (or resume training) a score network on a search space. "
        "Unset options take the defaults of diffusionnag.training.ScoreTrainConfig.",
    )
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder")
    parser.add_argument("--space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--sde", choices=sorted(SDES), help="forward process")
    parser.add_argument("--steps", type=_positive_int, help="optimiser steps")
    parser.add_argument("--batch-size", type=_positive_int)
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--holdout", type=float, help="fraction of the space kept out, in [0, 1)")
    parser.add_argument("--train-size", type=_positive_int, help="draws for non-enumerable spaces")
    parser.add_argument("--sigma-min", type=float, help="VE SDE only")
    parser.add_argument("--sigma-max", type=float, help="VE SDE only")
    parser.add_argument("--hidden", type=_positive_int, help="transformer width")
    parser.add_argument("--layers", type=_positive_int, help="transformer blocks")
    parser.add_argument("--heads", type=_positive_int, help="attention heads")
    _add_device_option(parser)
    parser.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start from scratch even if --out holds a checkpoint (it is overwritten)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config_from_args(args: argparse.Namespace) -> ScoreTrainConfig:
    """A config that differs from the dataclass defaults only where an option was given."""
    base = ScoreTrainConfig()
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
    return {field.name: field.default for field in dataclasses.fields(SDES[name])}


def _cmd_train_score(args: argparse.Namespace) -> int:
    config = train_config_from_args(args)
    resolve_device(args.device)
    _check_writable(args.out, folder=True)
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


def _add_generate_parser(subparsers: argparse._SubParsersAction) -> None:
    defaults = SamplerConfig()
    parser = subparsers.add_parser(
        "generate",
        help="sample architectures from a trained score model",
        description="Generate architectures by reverse diffusion and report validity, "
        "uniqueness and novelty.",
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="train-score folder")
    parser.add_argument("--out", type=Path, required=True, help="results JSON file")
    parser.add_argument("--num", type=_positive_int, default=1000, help="samples to generate")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default=defaults.name)
    parser.add_argument("--steps", type=_positive_int, default=defaults.steps)
    parser.add_argument("--snr", type=float, default=defaults.snr, help="corrector step size")
    parser.add_argument(
        "--corrector-steps", type=_non_negative_int, default=defaults.corrector_steps
    )
    parser.add_argument("--seed", type=int, default=0)
    _add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument_group(
        "guidance", "steering generation with a predictor (options to come: --guide, --scale)"
    )


def _cmd_generate(args: argparse.Namespace) -> int:
    sampler = SamplerConfig(args.sampler, args.steps, args.snr, args.corrector_steps)
    resolve_device(args.device)
    _check_writable(args.out, folder=False)
    started = time.perf_counter()
    model = load_score_model(args.checkpoint, device=args.device)
    result = generate(model, args.num, sampler, seed=args.seed, progress=not args.quiet)
    train = set(training_architectures(model.space, model.config))
    metrics = generation_metrics(model.space, result.archs, train)
    notes = _novelty_notes(model.space, model.config)
    report = {
        "cells": [None if a is None else model.space.to_string(a) for a in result.archs],
        "metrics": metrics,
        "notes": notes,
        "settings": {
            "space": model.space.name,
            "num": args.num,
            "sampler": dataclasses.asdict(sampler),
            "seed": args.seed,
            "device": str(resolve_device(args.device)),
            "checkpoint": str(args.checkpoint.resolve()),
            "checkpoint_config": dataclasses.asdict(model.config),
        },
        "timing": {
            "generate_seconds": result.seconds,
            "total_seconds": time.perf_counter() - started,
        },
    }
    _write_json(args.out, report)
    for name, value in metrics.items():
        print(f"{name:<21} {value:.4f}")
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.num} cells ({result.seconds:.1f} s of sampling) -> {args.out}")
    return 0


def _novelty_notes(space: SearchSpace, config: ScoreTrainConfig) -> list[str]:
    if config.holdout_fraction == 0 and hasattr(space, "enumerate"):
        return [
            "novelty is 0 by construction: the model was trained on the whole space "
            "(train with --holdout > 0 to measure it)"
        ]
    return []


# --- entry point --------------------------------------------------------------------------

Command = tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "train-score": (_add_train_score_parser, _cmd_train_score),
    "generate": (_add_generate_parser, _cmd_generate),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Neural architecture generation by diffusion.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return COMMANDS[args.command][1](args)
    except (ValueError, OSError) as error:  # FileNotFoundError is an OSError
        message = " ".join(str(error).split())  # one line, whatever the library wrote
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
