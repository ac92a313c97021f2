"""Shared pieces of the command line: one-line errors, option types, safe output."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from diffusionnag.device import DEVICE_CHOICES
from diffusionnag.io import atomic_write
from diffusionnag.pretrained import SHIPPED

PROG = "diffusionnag"
USAGE_ERROR = 2


class UsageError(ValueError):
    """A command line argparse rejects; reported like any other user mistake."""


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` states every option's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or not _shows_default(action):
            return action.help
        return f"{text} (default: %(default)s)".strip()


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    hidden = default is None or default is False or default == [] or default == argparse.SUPPRESS
    return bool(action.option_strings) and not hidden


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)  # subcommands' parsers too
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.help is None and _shows_default(action):
            action.help = "default: %(default)s"  # argparse prints nothing for help=None
        return action

    # argparse would print the whole usage block and exit; one line is easier to read in logs.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def positive_int(text: str) -> int:
    value = parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        help=f"{', '.join(DEVICE_CHOICES)} or cuda:N (default: auto = CUDA when available)",
    )


def add_numerics_options(parser: argparse.ArgumentParser) -> None:
    """How real training runs its networks (``TrainConfig.channels_last`` and ``bf16``)."""
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="train in channels-last memory: results differ only at float rounding, steps "
        "are cheaper on CPUs (1.4x for NB201 here)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="train under bfloat16 autocast: a different protocol, cheaper where the processor "
        "has bfloat16 units (2.3x with --channels-last on an AMX CPU)",
    )


def numerics(args: argparse.Namespace) -> dict[str, bool]:
    return {"channels_last": args.channels_last, "bf16": args.bf16}


def check_writable(path: Path, *, folder: bool) -> None:
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


def shown_path(path: str | Path) -> str:
    """A path as a user reads it: relative to the working folder where it lies below it, a
    shipped file as ``<package>/...`` rather than the install's absolute path."""
    path = Path(path)
    for base, shown in ((Path.cwd(), ""), (SHIPPED, "<package>/assets/")):
        try:
            return shown + str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            continue
    return str(path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
