"""Evaluators for executor tests: table answers, plus a worker that reports itself on one cell.

They live in an importable module (not a test file) so that pool and Ray workers can unpickle
them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.io import atomic_write_text
from diffusionnag.spaces.base import Arch


class ReportingEvaluator(Evaluator):
    """The table's answers. On ``target`` it first writes its process id to
    ``folder/attempt<k>.pid`` (k counts the attempts so far), then sleeps ``seconds`` (so a test
    can kill it mid-evaluation) or, with ``exit_on_target``, dies at once."""

    def __init__(
        self,
        table: NB201Table,
        target: Arch,
        folder: Path,
        *,
        seconds: float = 30.0,
        exit_on_target: bool = False,
    ) -> None:
        self._inner = TableEvaluator(table, "cifar10")
        self.space_name = self._inner.space_name
        self.dataset = self._inner.dataset
        self.target = target
        self.folder = folder
        self.seconds = seconds
        self.exit_on_target = exit_on_target

    def evaluate(self, arch: Arch) -> EvalResult:
        if arch == self.target:
            attempt = len(list(self.folder.glob("attempt*.pid")))
            # atomic: the test polls these files, and must never read one still empty
            atomic_write_text(self.folder / f"attempt{attempt}.pid", str(os.getpid()))
            if self.exit_on_target:
                os._exit(1)
            if attempt == 0:
                time.sleep(self.seconds)  # killed here by the test
        return self._inner.evaluate(arch)


def attempt_pids(folder: Path) -> list[int]:
    """Process ids of the attempts on the target, in attempt order."""
    files = sorted(folder.glob("attempt*.pid"), key=lambda f: int(f.stem.removeprefix("attempt")))
    return [int(f.read_text()) for f in files]
