"""The one record of a search: which cells were evaluated, in which order, and what they scored.

Strategies read nothing else, so a strategy can always be rebuilt from a :class:`History` (that is
what makes a resumed run identical to an uninterrupted one). Cells are deduplicated by the
space's :meth:`~diffusionnag.spaces.base.SearchSpace.canonical_key`: on NAS-Bench-201 that key
merges isomorphic cells (cells computing the same function), so the 15,625 cells form 6,466
classes and a search never spends budget on a second member of a class it has already seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffusionnag.evaluators.base import EvalResult
from diffusionnag.spaces.base import Arch, SearchSpace


@dataclass(frozen=True)
class Trial:
    """One evaluated cell.

    ``value`` is the objective (``nan`` when the evaluation failed); ``strategy_seconds`` is the
    wall time of the strategy's ``ask`` that proposed the cell (a batch's time split evenly over
    its cells) and ``eval_seconds`` the wall time of the evaluation.
    """

    index: int
    arch: Arch
    value: float
    metrics: dict[str, float] = field(default_factory=dict)
    failed: bool = False
    strategy_seconds: float = 0.0
    eval_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the trial has a usable value (not failed, not nan)."""
        return not self.failed and not math.isnan(self.value)

    def to_json(self, space: SearchSpace) -> dict[str, Any]:
        """A JSON-ready dict; the cell as its string form, a nan value as ``null``."""
        return {
            "index": self.index,
            "arch": space.to_string(self.arch),
            "value": self.value if self.ok else None,
            "metrics": {k: v if math.isfinite(v) else None for k, v in self.metrics.items()},
            "failed": self.failed,
            "strategy_seconds": self.strategy_seconds,
            "eval_seconds": self.eval_seconds,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], space: SearchSpace) -> Trial:
        """Inverse of :meth:`to_json`; ``ValueError`` names a missing or malformed field."""
        try:
            value = data["value"]
            return cls(
                index=int(data["index"]),
                arch=space.from_string(data["arch"]),
                value=_float(value),
                metrics={str(k): _float(v) for k, v in data.get("metrics", {}).items()},
                failed=bool(data.get("failed", False)),
                strategy_seconds=float(data.get("strategy_seconds", 0.0)),
                eval_seconds=float(data.get("eval_seconds", 0.0)),
            )
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"malformed trial record {dict(data)!r}: {err!r}") from err


class History:
    """Trials in evaluation order, indexed ``0..len-1``, at most one per canonical key."""

    def __init__(self, space: SearchSpace, trials: Iterable[Trial] = ()) -> None:
        self.space = space
        self._trials: list[Trial] = []
        self._key_index: dict[str, int] = {}
        self._best: Trial | None = None  # kept as trials arrive: loops ask for it every step
        for trial in trials:
            self.append(trial)

    def __len__(self) -> int:
        return len(self._trials)

    def __iter__(self) -> Iterator[Trial]:
        return iter(self._trials)

    def __getitem__(self, index: int) -> Trial:
        return self._trials[index]

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(self._trials)

    @property
    def seen_keys(self) -> frozenset[str]:
        """Canonical keys of every evaluated cell (isomorphic NB201 cells share one key)."""
        return frozenset(self._key_index)

    def key(self, arch: Arch) -> str:
        return self.space.canonical_key(arch)

    def is_seen(self, arch: Arch) -> bool:
        """Whether ``arch`` or a cell equivalent to it (same canonical key) was evaluated."""
        return self.key(arch) in self._key_index

    def has_key(self, key: str) -> bool:
        return key in self._key_index

    def trial_for_key(self, key: str) -> Trial | None:
        """The trial that evaluated the class ``key``, or ``None``."""
        index = self._key_index.get(key)
        return None if index is None else self._trials[index]

    def append(self, trial: Trial) -> None:
        """Add ``trial``; it must carry the next index and a canonical key not seen before."""
        if trial.index != len(self._trials):
            raise ValueError(f"trial index {trial.index} given, expected {len(self._trials)}")
        self.space.validate(trial.arch)
        key = self.key(trial.arch)
        if key in self._key_index:
            first = self._key_index[key]
            raise ValueError(
                f"trial {trial.index} repeats the canonical key of trial {first}: "
                f"{self.space.to_string(trial.arch)}"
            )
        self._key_index[key] = trial.index
        self._trials.append(trial)
        if trial.ok and (self._best is None or trial.value > self._best.value):
            self._best = trial

    def record(
        self,
        arch: Arch,
        result: EvalResult,
        *,
        strategy_seconds: float = 0.0,
        eval_seconds: float = 0.0,
    ) -> Trial:
        """Append the evaluation of ``arch`` as the next trial and return it."""
        failed = result.failed or math.isnan(result.value)
        trial = Trial(
            index=len(self._trials),
            arch=arch,
            value=math.nan if failed else float(result.value),
            metrics=dict(result.metrics),
            failed=failed,
            strategy_seconds=strategy_seconds,
            eval_seconds=eval_seconds,
        )
        self.append(trial)
        return trial

    def prefix(self, length: int) -> History:
        """A new history holding the first ``length`` trials."""
        return History(self.space, self._trials[:length])

    @property
    def best(self) -> Trial | None:
        """The best usable trial (earliest on ties), or ``None`` if there is none."""
        return self._best

    def top(self, k: int) -> list[Trial]:
        """The ``k`` best usable trials, best first; ties go to the earlier trial."""
        usable = [t for t in self._trials if t.ok]
        return sorted(usable, key=lambda t: (-t.value, t.index))[:k]

    def values(self) -> np.ndarray:
        """``[len]`` objective values, nan for failed trials."""
        return np.array([t.value for t in self._trials], dtype=np.float64)

    def best_so_far(self) -> np.ndarray:
        """``[len]``: entry i is the best value among trials 0..i (nan before the first success)."""
        values = np.where(np.isnan(self.values()), -np.inf, self.values())
        running = np.maximum.accumulate(values) if len(values) else values
        return np.where(np.isneginf(running), np.nan, running)

    def archs(self) -> list[Arch]:
        return [t.arch for t in self._trials]

    def to_json(self) -> dict[str, Any]:
        return {"space": self.space.name, "trials": [t.to_json(self.space) for t in self._trials]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], space: SearchSpace) -> History:
        """Inverse of :meth:`to_json`; the recorded space must be ``space``."""
        if data.get("space") != space.name:
            raise ValueError(f"history of space {data.get('space')!r}, expected {space.name!r}")
        return cls(space, (Trial.from_json(item, space) for item in data.get("trials", [])))


def _float(value: Any) -> float:
    """JSON ``null`` (how non-finite numbers are written) back to nan."""
    return math.nan if value is None else float(value)
