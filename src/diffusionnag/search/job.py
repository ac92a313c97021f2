"""One search run as a user starts it: target from a benchmark spec, strategy by name, journal,
report.

``benchmark`` is a :class:`~diffusionnag.evaluators.registry.BenchmarkSpec` (registered kinds:
:mod:`diffusionnag.evaluators.registry`). Outputs sit next to ``out`` (``run.json``): the journal
``run.jsonl`` (appended per trial, so ``resume`` continues a killed run) and ``run.png``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffusionnag.config import check_type
from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.registry import BenchmarkSpec, Target, TargetSettings, build_target
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainProgress
from diffusionnag.progress import interactive, phase
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.chance import chance_warning
from diffusionnag.search.history import History
from diffusionnag.search.run import check_budget, run_search
from diffusionnag.search.strategies import get_strategy, strategy_class
from diffusionnag.spaces import SearchSpace, get_space

if TYPE_CHECKING:
    from matplotlib.figure import Figure

Report = Callable[[History], Mapping[str, Any]]
DEFAULT_BENCHMARK = BenchmarkSpec("train", "digits")


@dataclass(frozen=True)
class SearchJob:
    strategy: str = "diffusionnag-bo"
    space: str = "nb201"
    benchmark: BenchmarkSpec = DEFAULT_BENCHMARK
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
    ofa_dir: Path | None = None
    """Folder of the once-for-all predictor and latency tables (``ofa:`` benchmarks)."""

    @property
    def in_process(self) -> bool:
        """Whether candidates are evaluated in this process (one local worker)."""
        return self.executor == "local" and self.workers == 1

    def target_settings(self) -> TargetSettings:
        """What the target is built with; a progress bar per trained candidate when the
        candidates train in this process."""
        nested = self.progress and self.in_process and interactive()
        progress = _candidate_bar() if nested else None
        return TargetSettings(
            self.table, self.data_root, self.seed, self.train, progress, self.ofa_dir
        )


def _candidate_bar():
    """A progress bar per trained candidate, fed by the evaluator's per-step callback; cleared
    when the next candidate starts or the run's bar closes (a log gets a line per cell)."""
    bar: list[Any] = []

    def update(step: TrainProgress) -> None:
        if step.epoch == 1 and step.batch == 1:
            if bar:
                bar.pop().close()
            total = step.epochs * step.batches
            bar.append(phase("  training candidate", total, unit="step", nested=True))
        bar[0].update(1)
        bar[0].set_postfix(epoch=f"{step.epoch}/{step.epochs}", loss=f"{step.loss:.3f}")
        if step.epoch == step.epochs and step.batch == step.batches:
            bar.pop().close()  # cleared before the run's bar reports the cell

    return update


def build_strategy(
    name: str, space: SearchSpace, seed: int, options: Mapping[str, Any]
) -> SearchStrategy:
    """:func:`get_strategy` with each option first checked against its parameter's type, so
    ``scale="abc"`` or ``multivariate="maybe"`` (from ``--option``) is one clear error."""
    parameters = inspect.signature(strategy_class(name).__init__, eval_str=True).parameters
    for key, value in options.items():
        if key in parameters:
            check_type(f"option {key} of strategy {name!r}", value, parameters[key].annotation)
    return get_strategy(name, space, seed, **options)


@dataclass(frozen=True)
class PreparedJob:
    """A job's space, its strategy by name and its built target, the strategy prepared."""

    job: SearchJob
    space: SearchSpace
    strategy: SearchStrategy
    target: Target


def prepare_job(job: SearchJob) -> PreparedJob:
    """Everything a run needs, each user mistake a ``ValueError`` before anything is evaluated."""
    space = get_space(job.space)
    check_budget(space, job.budget)
    target = build_target(job.benchmark, job.target_settings(), space)
    space = target.space or space  # a target with cost budgets restricts what is searched
    strategy = build_strategy(job.strategy, space, job.seed, job.options)
    strategy.prepare(target)
    return PreparedJob(job, space, strategy, target)


def run_job(job: SearchJob) -> History:
    """Run (or resume) the search and write the journal, the result JSON and the plot."""
    return run_prepared(prepare_job(job))


def run_warnings(history: History, target: Target) -> list[str]:
    """What a user should know about a finished run's numbers (one line each; the result JSON
    holds them under ``warnings``): so far, that every cell scored at chance."""
    warning = chance_warning(history, target)
    return [] if warning is None else [warning]


def run_prepared(prepared: PreparedJob, report: Report | None = None) -> History:
    """The strategy against the target with the job's budget and execution, journaled next to
    ``job.out`` (refusing to overwrite a journal unless resuming), plus the result (with the
    sections ``report`` adds and the :func:`run_warnings`) and the plot."""
    job, strategy, space = prepared.job, prepared.strategy, prepared.space

    def sections(history: History) -> Mapping[str, Any]:
        added = dict(report(history)) if report else {}
        warnings = run_warnings(history, prepared.target)
        return {**added, "warnings": warnings} if warnings else added

    out = Path(job.out)
    journal = out.with_suffix(".jsonl")
    if journal.exists() and not job.resume:
        raise ValueError(f"{journal} exists: pass --resume to continue that run, or another --out")
    history = run_search(
        strategy,
        prepared.target.evaluator,
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
        report=sections,
    )
    title = f"{strategy.name} on {job.benchmark}"
    plot_history(history, out.with_suffix(".png"), title, prepared.target.evaluator)
    return history


def best_table(
    history: History, space: SearchSpace, value_name: str = "value", top: int = 5
) -> str:
    """A plain-text table of the best cells: rank, value (headed by what it is), the test
    accuracy beside a validation value where known, cell."""
    head = short_name(value_name)
    with_test = head != "test acc"
    lines = [f"{'rank':>4}  {head:>9}" + (f"  {'test acc':>8}" if with_test else "") + "  cell"]
    for rank, trial in enumerate(history.top(top), start=1):
        test = trial.metrics.get("test_accuracy")
        test_text = (f"  {test:8.2f}" if test is not None else "         -") if with_test else ""
        cell = space.to_string(trial.arch)
        lines.append(f"{rank:>4}  {trial.value:9.2f}{test_text}  {cell}")
    return "\n".join(lines)


def short_name(value_name: str) -> str:
    """A column heading for a value name: "test acc", "valid acc" or the name itself."""
    for prefix, head in (("test", "test acc"), ("valid", "valid acc")):
        if value_name.startswith(prefix):
            return head
    return value_name[:9]


def chosen_line(history: History, space: SearchSpace, value_name: str, seconds: float) -> str:
    """The chosen cell with its value named, its test accuracy where known, and the time."""
    best = history.best
    if best is None:
        return f"no cell evaluated successfully; {len(history)} evaluated in {seconds:.1f} s"
    test = best.metrics.get("test_accuracy")
    test_text = f", test accuracy {test:.2f} %" if test is not None else ""
    return (
        f"chosen cell: {space.to_string(best.arch)} ({_with_unit(value_name, best.value)}"
        f"{test_text}); "
        f"{len(history)} cells evaluated, {seconds:.1f} s elapsed"
    )


def _with_unit(value_name: str, value: float) -> str:
    if value_name.endswith(" (%)"):
        return f"{value_name[:-4]} {value:.2f} %"
    return f"{value_name} {value:.2f}"


def plot_history(
    history: History, path: Path, title: str, evaluator: Evaluator | None = None
) -> Figure | None:
    """The run's best-so-far steps and every evaluated cell's value; the dotted line is the
    table optimum where the evaluator knows one (a single run with real training has none)."""
    from diffusionnag.search.plots import plot_best_so_far

    curve = history.best_so_far()
    if np.isnan(curve).all():
        return None
    name = title.split(" on ")[0]
    optimum = getattr(evaluator, "optimum", None)
    value_name = getattr(evaluator, "value_name", "value")
    return plot_best_so_far(
        {name: curve[None, :]},
        optimum() if callable(optimum) else None,
        path,
        title=title,
        ylabel=value_name,
        evaluated={name: np.array([t.value for t in history])},
    )
