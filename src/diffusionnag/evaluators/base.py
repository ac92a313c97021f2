"""What an evaluation returns, and the interface every evaluator (table or real training) has."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from diffusionnag.spaces.base import Arch


@dataclass(frozen=True)
class EvalResult:
    """The worth of one architecture under a named protocol.

    ``value`` is the objective a search maximises (accuracy in %); ``dataset``, ``split`` and
    ``epochs`` say exactly which number it is. ``metrics`` carries the rest (parameters, FLOPs,
    test accuracy next to a validation ``value``, ...). A diverging or crashed training run is a
    result with ``failed=True`` and ``value`` set to ``float('nan')``, not an exception.
    """

    value: float
    dataset: str
    split: str
    epochs: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    cost_seconds: float = 0.0
    failed: bool = False


class Evaluator(ABC):
    """Says what an architecture is worth on one dataset; search budgets are counted outside."""

    space_name: str
    dataset: str
    value_name: str = "value"
    """What ``EvalResult.value`` is, for tables, JSON and plot axes (e.g. "test accuracy (%)");
    a search maximises it whatever it is called."""

    @abstractmethod
    def evaluate(self, arch: Arch) -> EvalResult: ...
