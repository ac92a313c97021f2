"""Typed configuration read from JSON: every field present, of its type, and in range.

Configs are frozen dataclasses; :func:`config_from_dict` reads one from a file's JSON and names
the file and the field in every error, so a hand-edited ``config.json`` with ``"hidden": "abc"``
or a missing ``sde`` is refused instead of silently taking a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

Config = TypeVar("Config")


@dataclass(frozen=True)
class Bound:
    """The range a numeric config field must lie in (closed unless ``*_open``)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE, NON_NEGATIVE = Bound(1), Bound(0)
POSITIVE_REAL = Bound(0, low_open=True)
FRACTION = Bound(0, 1, high_open=True)
WIDTH = Bound(1, 4096)
"""Hidden sizes and embedding widths: ours are at most 256; the cap keeps a hand-edited config
from asking for a network that cannot fit in memory."""
LAYERS = Bound(1, 64)
SEED = Bound(0, 2**63 - 1)
"""What ``torch.manual_seed`` accepts."""


def check_ranges(config: object, bounds: Mapping[str, Bound], prefix: str = "") -> None:
    """``ValueError`` naming the first field of ``config`` (``prefix`` + its name, for a nested
    config) outside its bound."""
    for name, bound in bounds.items():
        value = getattr(config, name)
        if value is not None and not bound.holds(value):
            raise ValueError(f"field {prefix + name!r} must be {bound}, got {value!r}")


def option_int(name: str, value: Any, bound: Bound = POSITIVE) -> int:
    """An integer option of a strategy or sampler inside ``bound`` (the :class:`Bound` artifact
    configs use), or a ``ValueError`` naming the option."""
    integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not (integer and bound.holds(int(value))):
        raise ValueError(f"option {name} must be an int {bound}, got {value!r}")
    return int(value)


def option_real(name: str, value: Any, bound: Bound = NON_NEGATIVE) -> float:
    """A finite real option inside ``bound``, or a ``ValueError`` naming the option."""
    real = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and bound.holds(value)):
        raise ValueError(f"option {name} must be a finite number {bound}, got {value!r}")
    return float(value)


def option_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``, or a ``ValueError`` naming the option and listing them."""
    if value not in choices:
        raise ValueError(
            f"option {name}={value!r} is not valid; choose one of {', '.join(choices)}"
        )
    return str(value)


def config_from_dict(cls: type[Config], data: Any, where: str, prefix: str = "") -> Config:
    """Dataclass ``cls`` from JSON ``data``: every field present and of its annotated type.

    Nested dataclass fields are read the same way (named ``outer.inner``); ``__post_init__``
    checks ranges. Errors name ``where`` (the file) and the field (after ``prefix``).
    """
    if not isinstance(data, dict):
        what = f"field {prefix[:-1]!r}" if prefix else "the config"
        raise ValueError(f"{where}: {what} must be a JSON object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    missing = [prefix + name for name in names if name not in data]
    unknown = sorted(prefix + name for name in set(data) - set(names))
    if missing or unknown:
        problem = f"lacks field(s) {', '.join(missing)}" if missing else ""
        problem += "; " if missing and unknown else ""
        problem += f"has unknown field(s) {', '.join(unknown)}" if unknown else ""
        raise ValueError(f"{where} {problem} (fields: {', '.join(prefix + n for n in names)})")
    values = {}
    for name in names:
        kind, value = hints[name], data[name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            value = config_from_dict(kind, value, where, f"{prefix}{name}.")
        else:
            check_type(f"{where}: field {prefix + name!r}", value, kind)
        values[name] = value
    try:
        return cls(**values)
    except ValueError as error:  # range checks name fields relative to ``cls``
        message = str(error).replace("field '", "field '" + prefix)
        raise ValueError(f"{where}: {message}") from None


def check_type(what: str, value: Any, kind: Any) -> None:
    """``ValueError`` unless ``value`` is of JSON-level type ``kind`` (bool is not a number)."""
    if not _matches(value, kind):
        raise ValueError(f"{what} must be {_describe(kind)}, got {value!r}")


def _matches(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is dict:
        return isinstance(value, dict) and all(
            _matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items()
        )
    if kind is type(None):
        return value is None
    if kind is float:
        return type(value) in (int, float) and math.isfinite(value)
    if kind is int:
        return type(value) is int
    return isinstance(value, kind)


def _describe(kind: Any) -> str:
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if typing.get_origin(kind) is dict:
        return (
            "a JSON object"
            if args[1] is Any
            else f"an object whose values are each {_describe(args[1])}"
        )
    names = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(kind, "null" if kind is type(None) else kind.__name__)
