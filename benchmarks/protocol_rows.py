"""What the protocol benchmarks share: one training row with per-image outcomes, journals
that survive kills, and shards that split a plan over processes.

A row trains one NB201 cell on one task with one ``TrainConfig`` and records validation and
test accuracy (as ``TrainingEvaluator.evaluate`` computes them), each image's outcome as packed
bits (so accuracies can be recomputed on any subset of the evaluation images afterwards), the
network's size and the CPU seconds of training and of evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.tasks import TaskSpec, load_task
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator, correct_predictions
from diffusionnag.spaces import get_space


def random_cells(count: int, seed: int) -> list[str]:
    """``space.sample(count, default_rng(seed))``, kept as drawn (degenerate cells included)."""
    space = get_space("nb201")
    return [space.to_string(cell) for cell in space.sample(count, np.random.default_rng(seed))]


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` running one plan: it takes every ``count``-th planned
    run and writes its own journal, so two processes never share a file. A run done by any
    shard is skipped; use one ``count`` per plan at a time."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        index, _, count = text.partition("/")
        shard = cls(int(index), int(count))
        if not 0 <= shard.index < shard.count:
            raise argparse.ArgumentTypeError(f"--shard K/M needs 0 <= K < M, got {text!r}")
        return shard

    @classmethod
    def add_option(cls, parser: argparse.ArgumentParser) -> None:
        """``--shard K/M`` (default: the one process, 0/1)."""
        parser.add_argument(
            "--shard", type=cls.parse, default=cls(), help="K/M: this process runs shard K of M"
        )

    def journal(self, folder: Path, stem: str) -> Path:
        if self.count == 1:
            return folder / f"{stem}.jsonl"
        return folder / f"{stem}.shard-{self.index}-of-{self.count}.jsonl"

    def takes(self, position: int) -> bool:
        return position % self.count == self.index


def read_rows(path: Path) -> list[dict]:
    """Complete rows of a journal; a last line cut by a kill is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    return rows


def plan_rows(folder: Path, stem: str, key: tuple[str, ...]) -> list[dict]:
    """Every row of a plan: its journal, ``<stem>.jsonl``, and its shards' journals,
    ``<stem>.shard-K-of-M.jsonl``; a run (the ``key`` fields) in two journals is refused."""
    paths = [folder / f"{stem}.jsonl", *sorted(folder.glob(f"{stem}.shard-*.jsonl"))]
    rows = [row for path in paths for row in read_rows(path)]
    keys = [tuple(row[k] for k in key) for row in rows]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"{stem}: a run ({', '.join(key)}) is in two journals")
    return rows


def append_row(path: Path, row: dict) -> None:
    """One line, flushed and fsynced, so a kill loses at most the row in progress."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as handle:  # drop a partial last line left by a kill
            text = handle.read()
            if not text.endswith(b"\n"):
                handle.truncate(text.rfind(b"\n") + 1)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, allow_nan=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class CpuClock:
    """Process CPU time at the last optimisation step: splits a row's CPU seconds into
    training and evaluation. CPU time, not wall time, is the cost: at nice 19 on a shared
    machine the wall clock mostly measures other people's jobs."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.start = self.last_step = time.process_time()

    def tick(self, _progress: object) -> None:
        self.last_step = time.process_time()


def _packed(correct: torch.Tensor) -> str:
    """Per-image outcomes as hex of packed bits (``numpy.packbits`` order): 2,500 characters
    for 10,000 images."""
    return np.packbits(correct.numpy()).tobytes().hex()


def outcomes(row: dict, split: str = "test") -> np.ndarray:
    """A row's per-image outcomes (booleans, in split order: class by class)."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(row[f"{split}_correct"]), np.uint8))
    # rows written before the image counts were recorded evaluated eval_per_class per class
    classes = len(TaskSpec.from_name(row["task"]).classes)
    images = row.get(f"{split}_images", row["eval_per_class"] * classes)
    return bits[:images].astype(bool)


def _percent(correct: torch.Tensor | None) -> float:
    """Accuracy in %, computed as ``TrainingEvaluator.evaluate`` does; NaN if training diverged."""
    return math.nan if correct is None else 100.0 * int(correct.sum()) / len(correct)


def train_cell(spec: TaskSpec, config: TrainConfig, cell: str) -> dict:
    """One row (see the module docstring): the cell trained on the task with the config."""
    space = get_space("nb201")
    clock = CpuClock()
    evaluator = TrainingEvaluator(load_task(spec), config, progress=clock.tick, space="nb201")
    clock.restart()  # loading the task (done once per process) is not the cell's cost
    arch = space.from_string(cell)
    start = time.perf_counter()
    model = evaluator.train_network(arch)
    train_seconds = time.perf_counter() - start
    correct, eval_cpu = {}, {}
    if model is not None:
        for split in ("valid", "test"):
            images = getattr(evaluator.data, split)
            before = time.process_time()
            batch = 4 * config.batch_size
            correct[split] = correct_predictions(model, images, evaluator.device, batch)
            eval_cpu[f"{split}_eval_cpu_seconds"] = round(time.process_time() - before, 2)
    end = time.process_time()
    return {
        "cell": cell,
        **{split: _percent(correct.get(split)) for split in ("valid", "test")},
        "failed": model is None,
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - start, 2),
        "train_cpu_seconds": round(clock.last_step - clock.start, 2),
        "eval_cpu_seconds": round(end - clock.last_step, 2),
        **eval_cpu,
        **evaluator.network.costs(arch, evaluator.data, evaluator.config),
        "task": spec.name,
        "eval_per_class": spec.eval_per_class,
        "config": {k: v for k, v in asdict(evaluator.config).items() if k != "device"},
        **{f"{split}_images": len(v) for split, v in correct.items()},
        **{f"{split}_correct": _packed(v) for split, v in correct.items()},
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
