"""Reference distributions: random cells trained on one task, to say how good a found cell is.

A reference is a one-task meta-dataset (``diffusionnag meta-dataset reference``): distinct
random cells of the space, each trained on the task under one protocol. A cell found on that
task, trained the same way, is placed by its test accuracy among theirs ("better than 93 of
100 random cells trained the same way"); a random cell whose training diverged counts as beaten.
Placing is only meaningful under the reference's own protocol, so :func:`check_protocol` compares
every training setting but the seed (the reference's seed-to-seed spread is documented beside
it in ``docs/benchmarks.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.io import read_jsonl
from diffusionnag.predictors.data import finite_number
from diffusionnag.pretrained import SHIPPED

SHIPPED_REFERENCES = {"digits/c0-1-2-3-4-5-6-7-8-9/n50/r8/s0": "reference-digits"}
"""Task name -> the shipped reference folder (``rows.jsonl`` inside)."""


@dataclass(frozen=True)
class Placement:
    beaten: int
    total: int
    best: float
    """The reference's best test accuracy."""

    @property
    def percentile(self) -> float:
        return 100.0 * self.beaten / self.total

    def describe(self) -> str:
        return (
            f"better than {self.beaten} of {self.total} random cells trained the same way "
            f"(percentile {self.percentile:.0f}; the best of them: {self.best:.2f} %)"
        )


@dataclass(frozen=True)
class Reference:
    task: str
    cells: tuple[str, ...]
    accuracies: np.ndarray
    """Validation accuracy per cell, NaN where training diverged."""
    test_accuracies: np.ndarray
    train: Mapping[str, Any]
    """The protocol's training settings (``TrainConfig`` fields but the device)."""
    path: Path

    def place(self, test_accuracy: float) -> Placement:
        tests = np.nan_to_num(self.test_accuracies, nan=-np.inf)
        return Placement(int((tests < test_accuracy).sum()), len(tests), float(tests.max()))

    def check_protocol(self, task: str, train: TrainConfig) -> None:
        """``ValueError`` naming the first setting where a run differs from the reference."""
        if task != self.task:
            raise ValueError(f"reference {self.path} is for task {self.task}, not {task}")
        given = train.settings()
        for name, value in given.items():
            if name != "seed" and self.train.get(name) != value:
                raise ValueError(
                    f"reference {self.path} trained with {name}={self.train.get(name)!r}, this "
                    f"run with {name}={value!r}: its cells are not comparable"
                )


def shipped_reference(task: str) -> Path | None:
    folder = SHIPPED_REFERENCES.get(task)
    return None if folder is None else SHIPPED / folder / "rows.jsonl"


def read_reference(path: Path | str) -> Reference:
    """Read a reference journal; ``ValueError`` names the file (and line) of what is wrong."""
    path = Path(path)
    records = []
    for number, record in read_jsonl(path, "reference"):
        if not isinstance(record, dict):
            raise ValueError(f"reference {path} line {number} is not a JSON object")
        records.append((number, record))
    if not records or records[0][1].get("kind") != "meta-dataset":
        raise ValueError(f"reference {path} has no meta-dataset header on line 1")
    header, rows = records[0][1], records[1:]
    if header.get("tasks") != 1 or len(rows) < 2:
        raise ValueError(
            f"reference {path}: a reference is one task with 2 or more cells (meta-dataset "
            "reference writes one)"
        )
    return _reference(path, header, rows)


def _reference(path: Path, header: dict, rows: list[tuple[int, dict]]) -> Reference:
    for number, row in rows:
        if not isinstance(row.get("task"), str):
            raise ValueError(f"reference {path} line {number}: field 'task' must be a string")
    tasks = {row["task"] for _, row in rows}
    if len(tasks) != 1:
        raise ValueError(f"reference {path} holds rows of {len(tasks)} tasks; one is needed")
    protocol = header.get("protocol")
    train = protocol.get("train") if isinstance(protocol, dict) else None
    if not isinstance(train, dict):
        raise ValueError(f"reference {path} header has no protocol.train settings")
    cells, valid, test = [], [], []
    for number, row in rows:
        where = f"reference {path} line {number}"
        failed = bool(row.get("failed"))
        cells.append(str(row.get("cell")))
        valid.append(np.nan if failed else finite_number(row.get("accuracy"), where, "accuracy"))
        test_value = row.get("test_accuracy")
        test.append(np.nan if failed else finite_number(test_value, where, "test_accuracy"))
    return Reference(str(tasks.pop()), tuple(cells), np.array(valid), np.array(test), train, path)
