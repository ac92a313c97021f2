"""One search run as a user starts it: evaluator from a spec, strategy by name, journal, report.

``benchmark`` specs: ``nb201:<dataset>`` queries the NATS-Bench table (cifar10, cifar100,
ImageNet16-120; nb201 cells only); ``train:<dataset>`` trains every candidate for real (digits,
folder:PATH, cifar10, cifar100 from a local root) in either space; ``task:<task name>`` trains
on a task cut from an image dataset (:class:`diffusionnag.evaluators.tasks.TaskSpec`: classes,
images per class, resolution), as meta-datasets and references are. Outputs sit next to ``out``
(``run.json``): the journal ``run.jsonl`` (appended per trial, so ``resume`` continues a killed
run) and ``run.png``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from diffusionnag.config import check_type
from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.training import TrainConfig, TrainingEvaluator, TrainProgress
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History
from diffusionnag.search.run import check_budget, run_search
from diffusionnag.search.strategies import STRATEGIES, get_strategy
from diffusionnag.spaces import SearchSpace, get_space

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BENCHMARK_KINDS = ("nb201", "nb201-valid", "train", "task")


@dataclass(frozen=True)
class SearchJob:
    strategy: str = "diffusionnag-bo"
    space: str = "nb201"
    benchmark: str = "train:digits"
    budget: int = 20
    seed: int = 0
    out: Path = Path("runs/search/run.json")
    resume: bool = False
    table: Path | None = None
    data_root: Path | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4))
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    batch_size: int = 1
    workers: int = 1
    executor: str = "local"
    ray_address: str | None = None
    stop_value: float | None = None
    """End the run once a trial reaches this value (benchmarks: the table optimum)."""

    @property
    def in_process(self) -> bool:
        """Whether candidates are evaluated in this process (one local worker)."""
        return self.executor == "local" and self.workers == 1


def build_evaluator(job: SearchJob, space: SearchSpace) -> Evaluator:
    """The evaluator a ``benchmark`` spec names; ``ValueError`` lists the valid kinds."""
    kind, _, dataset = job.benchmark.partition(":")
    if kind not in BENCHMARK_KINDS or not dataset:
        raise ValueError(
            f"unknown benchmark {job.benchmark!r}; use nb201:<dataset>, nb201-valid:<dataset>, "
            "train:<dataset> or task:<task name>"
        )
    if kind not in ("train", "task") and space.name != "nb201":
        raise ValueError(
            f"benchmark {job.benchmark!r} is a NAS-Bench-201 table, which scores only "
            f"nb201 cells, not {space.name!r} architectures; use train:<dataset> instead"
        )
    if kind == "nb201-valid":
        from diffusionnag.evaluators.nb201_table import NB201Table
        from diffusionnag.evaluators.nb201_valid import ValidationEvaluator

        test_table = NB201Table.from_csv(job.table) if job.table else None
        return ValidationEvaluator(dataset, job.seed, test_table)
    if kind == "nb201":
        from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
        from diffusionnag.evaluators.shared_data import default_table_path

        return TableEvaluator(NB201Table.from_csv(job.table or default_table_path()), dataset)
    if kind == "task":
        from diffusionnag.evaluators.tasks import TaskSpec, load_task

        data = load_task(TaskSpec.from_name(dataset))
    else:
        from diffusionnag.evaluators.datasets import load_dataset

        data = load_dataset(dataset, job.data_root, seed=job.seed)
    progress = _candidate_bar() if job.progress and job.in_process else None
    return TrainingEvaluator(data, job.train, progress, space=space)


def _candidate_bar():
    """A progress bar per trained candidate, fed by the evaluator's per-step callback."""
    bar: list[tqdm] = []

    def update(step: TrainProgress) -> None:
        if step.epoch == 1 and step.batch == 1:
            if bar:
                bar.pop().close()
            total = step.epochs * step.batches
            bar.append(tqdm(total=total, desc="  training candidate", leave=False, unit="step"))
        bar[0].update(1)
        bar[0].set_postfix(epoch=f"{step.epoch}/{step.epochs}", loss=f"{step.loss:.3f}")

    return update


def build_strategy(
    name: str, space: SearchSpace, seed: int, options: Mapping[str, Any]
) -> SearchStrategy:
    """:func:`get_strategy` with each option first checked against its parameter's type, so
    ``scale="abc"`` or ``multivariate="maybe"`` (from ``--option``) is one clear error."""
    if name in STRATEGIES:
        parameters = inspect.signature(STRATEGIES[name].__init__, eval_str=True).parameters
        for key, value in options.items():
            if key in parameters:
                check_type(f"option {key} of strategy {name!r}", value, parameters[key].annotation)
    return get_strategy(name, space, seed, **options)


def run_job(job: SearchJob) -> History:
    """Run (or resume) the search and write the journal, the result JSON and the plot."""
    space = get_space(job.space)
    check_budget(space, job.budget)
    strategy = build_strategy(job.strategy, space, job.seed, job.options)
    return run_with_outputs(job, strategy, build_evaluator(job, space), space)


def run_with_outputs(
    job: SearchJob, strategy: SearchStrategy, evaluator: Evaluator, space: SearchSpace
) -> History:
    """``strategy`` against ``evaluator`` with the job's budget and execution, journaled next to
    ``job.out`` (refusing to overwrite a journal unless resuming), plus the result and plot."""
    out = Path(job.out)
    journal = out.with_suffix(".jsonl")
    if journal.exists() and not job.resume:
        raise ValueError(f"{journal} exists: pass --resume to continue that run, or another --out")
    history = run_search(
        strategy,
        evaluator,
        space,
        job.budget,
        journal_path=journal,
        resume=job.resume,
        progress=job.progress,
        result_path=out,
        batch_size=job.batch_size,
        workers=job.workers,
        executor=job.executor,
        ray_address=job.ray_address,
        stop_value=job.stop_value,
    )
    plot_history(history, out.with_suffix(".png"), f"{strategy.name} on {job.benchmark}")
    return history


def best_table(history: History, space: SearchSpace, top: int = 5) -> str:
    """A plain-text table of the best cells: rank, value, test accuracy where known, cell."""
    lines = [f"{'rank':>4}  {'value':>7}  {'test':>7}  cell"]
    for rank, trial in enumerate(history.top(top), start=1):
        test = trial.metrics.get("test_accuracy")
        test_text = f"{test:7.2f}" if test is not None else "      -"
        lines.append(f"{rank:>4}  {trial.value:7.2f}  {test_text}  {space.to_string(trial.arch)}")
    return "\n".join(lines)


def plot_history(history: History, path: Path, title: str) -> Figure | None:
    """The run's best-so-far curve; the dotted line is the best value this run found (a single
    run knows no table optimum, and a training run has none)."""
    from diffusionnag.search.plots import plot_best_so_far

    curve = history.best_so_far()
    if np.isnan(curve).all():
        return None
    return plot_best_so_far(
        {title.split(" on ")[0]: curve[None, :]},
        float(np.nanmax(curve)),
        path,
        title=title,
        reference_label="best found",
    )
