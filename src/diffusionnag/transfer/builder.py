"""Meta-datasets from real training: sampled tasks x sampled cells, each pair trained once.

The plan is fixed by the config alone: ``tasks`` task specs from the :class:`TaskSampler` (or
the fixed ``specs``: a one-task build is a reference distribution, see
:mod:`diffusionnag.transfer.reference`), and
for each task ``cells_per_task`` distinct cells of the space (NB201 cells, or MobileNetV3
subnets), the first ``shared_cells`` of them the same for every task (so tasks can be compared
cell by cell) and the rest drawn for that task. Row ``i`` of the plan is always the same (task,
cell) pair, trained under one protocol (the :class:`TrainConfig` in the header and in every
row), so a build is the same whatever the number of workers and however often it was
interrupted; only timings differ.

Rows go to a search journal (:func:`diffusionnag.search.journal.open_journal`: locked, one
writer, index-checked, fsynced line by line): each row is a trial record (``index``, ``arch``,
``value``) that also carries the meta-dataset fields ``task``, ``spec``, ``cell``, ``accuracy``
(validation accuracy in %, ``null`` when training diverged), ``test_accuracy``, ``params``,
``flops``, ``seconds`` and ``protocol``. Workers train and send rows back; the parent writes
them in plan order, so a killed build loses at most the rows in flight.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.device import resolve_device
from diffusionnag.evaluators.tasks import SOURCE_SPLIT_SEED, TaskSampler, TaskSpec, load_task
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import NETWORKS, TrainingEvaluator
from diffusionnag.execution import Executor, InProcessExecutor, LocalPoolExecutor
from diffusionnag.progress import phase
from diffusionnag.search.history import Trial
from diffusionnag.search.journal import Journal, open_journal
from diffusionnag.spaces import SearchSpace, get_space

BUILD_FORMAT = 1


@dataclass(frozen=True)
class BuildConfig:
    """Everything that fixes a build's rows (saved as the journal header). Tasks come from
    ``sampler``, or are the given ``specs`` when there are any (then ``tasks == len(specs)``)."""

    sampler: TaskSampler | None
    tasks: int
    cells_per_task: int
    shared_cells: int
    train: TrainConfig
    seed: int = 0
    space: str = "nb201"
    specs: tuple[TaskSpec, ...] = ()

    def __post_init__(self) -> None:
        if (self.sampler is None) == (not self.specs):
            raise ValueError("a build takes its tasks from a task sampler or from fixed specs")
        if self.specs and self.tasks != len(self.specs):
            raise ValueError(f"{len(self.specs)} task specs given for {self.tasks} tasks")
        if self.space not in NETWORKS:
            known = ", ".join(NETWORKS)
            raise ValueError(f"no network to train for space {self.space!r}; trainable: {known}")
        if self.tasks < 1 or self.cells_per_task < 2:
            raise ValueError("a build needs at least 1 task and 2 cells per task")
        if not 0 <= self.shared_cells <= self.cells_per_task:
            raise ValueError(
                f"shared cells must be 0 to cells per task ({self.cells_per_task}), "
                f"got {self.shared_cells}"
            )

    def protocol(self) -> dict[str, Any]:
        """How every row's numbers were measured."""
        train = self.train.settings()
        cfg = self.train
        network = (
            f"nb201 C={cfg.channels} N={cfg.cells_per_stage}"
            if self.space == "nb201"
            else f"{self.space} width_mult={cfg.width_mult}, min resolution {cfg.min_resolution}"
        )
        length = f"{cfg.epochs} epochs"
        if cfg.steps is not None:
            length += f" and at least {cfg.steps} SGD steps"
        return {
            "network": network,
            "accuracy": f"validation top-1 % after {length}",
            "train": train,
            "device": resolve_device(self.train.device).type,
            "source_split_seed": SOURCE_SPLIT_SEED,
        }

    def task_specs(self) -> list[TaskSpec]:
        if self.sampler is None:  # __post_init__ allows no sampler only with specs
            return list(self.specs)
        return self.sampler.sample(self.tasks)

    def header(self) -> dict[str, Any]:
        return {
            "kind": "meta-dataset",
            "format": BUILD_FORMAT,
            "space": self.space,
            "source": self.task_specs()[0].source,
            "tasks": self.tasks,
            "cells_per_task": self.cells_per_task,
            "shared_cells": self.shared_cells,
            "seed": self.seed,
            "sampler": None if self.sampler is None else self.sampler.to_json(),
            **({"specs": [spec.to_json() for spec in self.specs]} if self.specs else {}),
            "protocol": self.protocol(),
        }


@dataclass(frozen=True)
class RowJob:
    """One (task, cell) pair of the plan, sent to a worker."""

    index: int
    task: TaskSpec
    cell: str
    train: TrainConfig
    space: str


def _distinct_cells(
    space: SearchSpace, n: int, rng: np.random.Generator, taken: set[str]
) -> list[str]:
    """``n`` cells whose canonical keys are new (isomorphic NB201 cells count once)."""
    cells: list[str] = []
    while len(cells) < n:
        for arch in space.sample(n - len(cells), rng):
            key = space.canonical_key(arch)
            if key not in taken:
                taken.add(key)
                cells.append(space.to_string(arch))
    return cells


def plan(config: BuildConfig) -> list[RowJob]:
    """Every row of the build, in journal order (task by task)."""
    space = get_space(config.space)
    specs = config.task_specs()
    shared_keys: set[str] = set()
    shared = _distinct_cells(
        space, config.shared_cells, np.random.default_rng([config.seed, 0]), shared_keys
    )
    jobs: list[RowJob] = []
    own = config.cells_per_task - config.shared_cells
    for task_index, spec in enumerate(specs):
        rng = np.random.default_rng([config.seed, 1, task_index])
        cells = shared + _distinct_cells(space, own, rng, set(shared_keys))
        for cell in cells:
            jobs.append(RowJob(len(jobs), spec, cell, config.train, config.space))
    return jobs


def train_row(job: RowJob) -> dict[str, Any]:
    """Train one cell on one task (in a worker); the row as the journal stores it."""
    evaluator = TrainingEvaluator(load_task(job.task), job.train, space=job.space)
    result = evaluator.evaluate(get_space(job.space).from_string(job.cell))
    failed = result.failed or math.isnan(result.value)
    accuracy = None if failed else result.value
    test = result.metrics["test_accuracy"]
    return {
        "index": job.index,
        "arch": job.cell,
        "value": accuracy,
        "failed": failed,
        "task": job.task.name,
        "spec": job.task.to_json(),
        "cell": job.cell,
        "accuracy": accuracy,
        "test_accuracy": None if failed or math.isnan(test) else test,
        "params": int(result.metrics["params"]),
        "flops": int(result.metrics["flops"]),
        "seconds": result.cost_seconds,
        "protocol": evaluator.protocol(),
    }


def _check_done(journal: Journal, done: list[Trial], jobs: list[RowJob]) -> None:
    space = get_space(jobs[0].space)
    if len(done) > len(jobs):
        raise ValueError(f"journal {journal.path} holds {len(done)} rows; the plan has {len(jobs)}")
    for trial, job in zip(done, jobs, strict=False):
        if space.to_string(trial.arch) != job.cell:
            raise ValueError(
                f"journal {journal.path} row {trial.index} is cell {space.to_string(trial.arch)}, "
                f"but the plan has {job.cell} there; it was not written by this build"
            )


def _results(executor: Executor, jobs: list[RowJob], window: int) -> Iterator[dict[str, Any]]:
    """Rows in plan order; at most ``window`` jobs run or wait to be written at any time."""
    pending: dict[futures.Future, int] = {}
    finished: dict[int, dict[str, Any]] = {}
    upcoming = iter(jobs)
    for job in jobs:
        while len(pending) + len(finished) < window:
            nxt = next(upcoming, None)
            if nxt is None:
                break
            pending[executor.submit(train_row, nxt)] = nxt.index
        while job.index not in finished:  # jobs are submitted in order: it is pending
            done = next(iter(executor.as_completed(pending)))
            finished[pending.pop(done)] = done.result()
        yield finished.pop(job.index)


def _write_rows(
    journal: Journal, jobs: list[RowJob], executor: Executor, window: int, bar: Any
) -> None:
    start = time.perf_counter()
    for written, row in enumerate(_results(executor, jobs, window), start=1):
        journal.append_record(row)
        bar.update()
        bar.set_postfix_str(f"{3600.0 * written / (time.perf_counter() - start):.0f} rows/h")


def _local_executor(workers: int) -> Executor:
    return InProcessExecutor() if workers == 1 else LocalPoolExecutor(workers, preload=(__name__,))


@dataclass(frozen=True)
class BuildSummary:
    rows: int
    written: int
    tasks: int
    seconds: float

    @property
    def rows_per_hour(self) -> float:
        return 3600.0 * self.written / self.seconds if self.seconds > 0 else 0.0


def build_meta_dataset(
    config: BuildConfig,
    out: Path,
    *,
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> BuildSummary:
    """Train every row of the plan not yet in the journal at ``out``; see the module docstring.

    Rows train on ``workers`` local processes, or on ``executor`` when given (its owner shuts
    it down; ``workers`` then says how many jobs it runs at once).
    """
    jobs = plan(config)
    written, seconds = train_rows(
        jobs, out, config.header(), workers=workers, resume=resume, progress=progress,
        executor=executor,
    )  # fmt: skip
    return BuildSummary(len(jobs), written, config.tasks, seconds)


def train_rows(
    jobs: list[RowJob],
    out: Path,
    header: dict[str, Any],
    *,
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> tuple[int, float]:
    """Train the ``jobs`` not yet in the journal at ``out`` (a fixed list: the journal must
    hold a prefix of it); returns (rows trained now, seconds)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    journal, done = open_journal(out, header, get_space(jobs[0].space), resume=resume)
    start = time.perf_counter()
    with journal:
        _check_done(journal, done, jobs)
        remaining = jobs[len(done) :]
        if remaining:
            runner = executor if executor is not None else _local_executor(workers)
            # Run ahead of the row due next, so that one slow row does not idle the others.
            window = 1 if workers == 1 else 4 * workers
            bar = phase(
                "rows", len(jobs), enabled=progress, initial=len(done), unit="row", milestones=True
            )
            try:
                with bar:
                    _write_rows(journal, remaining, runner, window, bar)
            except BaseException:
                if executor is None:
                    runner.shutdown(wait=False)
                raise
            if executor is None:
                runner.shutdown()
    return len(remaining), time.perf_counter() - start
