"""What a benchmark run searches and how its cells are scored, for the table and for any target.

The runner (``runner.py``) drives runs the same way whatever they search; it asks a
:class:`RunSource` for a run's space, evaluator and early-stop value. :class:`TableRuns` is the
NAS-Bench-201 table under the ``table`` or ``valid`` protocol (the table is pickled once into
each worker). :class:`TargetRuns` builds any ``--benchmark KIND:ARGUMENT`` target through the
evaluator registry (``build_target``), exactly as ``search`` does: a run searches the target's
space where it restricts the job's (cost budgets: a ``ConstrainedSpace``), else the named
space. A worker builds each target once per (benchmark, seed) and keeps it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.registry import BenchmarkSpec, Target, TargetSettings, build_target
from diffusionnag.harness.protocols import make_evaluator
from diffusionnag.spaces import get_space
from diffusionnag.spaces.base import SearchSpace
from diffusionnag.spaces.nb201 import NB201Space

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


class RunKey(Protocol):
    """What a source reads of a run (``harness.RunSpec`` has these fields)."""

    @property
    def dataset(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def protocol(self) -> str: ...
    @property
    def stop_at_optimum(self) -> bool: ...


class RunSource(Protocol):
    """A run's space, evaluator and the value at which it may stop (``None``: never early)."""

    def space(self, run: RunKey) -> SearchSpace: ...
    def evaluator(self, run: RunKey) -> Evaluator: ...
    def stop_value(self, run: RunKey) -> float | None: ...


@dataclass(frozen=True)
class TableRuns:
    """Runs on the NAS-Bench-201 table: ``run.dataset`` is a table dataset."""

    table: NB201Table

    def space(self, run: RunKey) -> SearchSpace:
        return NB201Space()

    def evaluator(self, run: RunKey) -> Evaluator:
        return make_evaluator(run.protocol, run.dataset, run.seed, self.table)

    def stop_value(self, run: RunKey) -> float | None:
        return self.table.optimum(run.dataset)[1] if run.stop_at_optimum else None


@dataclass(frozen=True)
class TargetRuns:
    """Runs on registry targets: ``run.dataset`` is a ``KIND:ARGUMENT`` benchmark spec."""

    space_name: str
    ofa_dir: str | None = None
    table: str | None = None

    def build(self, benchmark: str, seed: int) -> Target:
        """The target of ``benchmark`` (a spec) for runs of ``seed``."""
        return _target(self.space_name, benchmark, seed, self.ofa_dir, self.table)

    def space_of(self, benchmark: str, seed: int) -> SearchSpace:
        """What runs on ``benchmark`` search: the target's restricted space, else the named."""
        return self.build(benchmark, seed).space or get_space(self.space_name)

    def space(self, run: RunKey) -> SearchSpace:
        return self.space_of(run.dataset, run.seed)

    def evaluator(self, run: RunKey) -> Evaluator:
        return self.build(run.dataset, run.seed).evaluator

    def stop_value(self, run: RunKey) -> float | None:
        return None


@lru_cache(maxsize=64)
def _target(
    space_name: str, benchmark: str, seed: int, ofa_dir: str | None, table: str | None
) -> Target:
    """The built target of one (benchmark, seed); kept, since every run of a seed asks again."""
    settings = TargetSettings(
        table=Path(table) if table else None,
        seed=seed,
        ofa_dir=Path(ofa_dir) if ofa_dir else None,
    )
    return build_target(BenchmarkSpec.parse(benchmark), settings, get_space(space_name))


def folder_name(dataset: str) -> str:
    """A file-system-safe name for a dataset or benchmark spec (table datasets keep theirs):
    ``ofa:imagenet,max_flops=3e8`` becomes ``ofa-imagenet-max_flops=3e8``."""
    return _UNSAFE.sub("-", dataset).strip("-") or "benchmark"
