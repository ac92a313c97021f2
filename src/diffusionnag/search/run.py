"""The search loop: ask the strategy, evaluate, record, journal; the budget is counted here.

Batches are asked at history lengths ``0, q, 2q, ...`` (``q = batch_size``). A resumed run that
stopped inside a batch asks again at the batch's start (strategies are functions of seed and
history), checks that the journal agrees with the batch, and evaluates the rest of it, so the
resumed trajectory is exactly the uninterrupted one.

With an :class:`~diffusionnag.execution.Executor` (``workers > 1`` or Ray) the cells of a batch
are evaluated at once and recorded in batch order, each as soon as it and those before it are
done, so the journal and the resume are those of the one-by-one loop. An evaluation whose worker
died is retried ``retries`` times, then recorded as a failed trial (``metrics["worker_lost"]``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from diffusionnag import __version__
from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.execution import Executor, WorkerLost, in_order, make_executor
from diffusionnag.io import atomic_write_json
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.pretrained import portable
from diffusionnag.progress import log_line, phase, reporting
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History, Trial
from diffusionnag.search.journal import JOURNAL_FORMAT, open_journal
from diffusionnag.spaces import get_space
from diffusionnag.spaces.base import Arch, SearchSpace


def run_search(
    strategy: SearchStrategy,
    evaluator: Evaluator,
    space: SearchSpace,
    budget: int,
    *,
    journal_path: str | Path | None = None,
    resume: bool = False,
    batch_size: int = 1,
    progress: bool = True,
    result_path: str | Path | None = None,
    stop_value: float | None = None,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    report: Callable[[History], Mapping[str, Any]] | None = None,
) -> History:
    """Evaluate ``budget`` distinct cells (by canonical key) proposed by ``strategy``.

    ``journal_path``: JSONL, one line per trial as it happens; ``resume=True`` replays it (its
    header must match these settings) and continues. The result (:func:`_result`) is written
    atomically to ``result_path`` (default: ``<journal stem>.result.json``). ``stop_value``:
    end once a trial reaches it. ``workers``, ``executor``, ``ray_address``: where a batch's
    cells are evaluated (:func:`evaluation_executor`). ``report`` adds sections made of the
    finished history (where the chosen cell stands, say); ``elapsed_seconds`` counts a resumed
    run from its resumption.
    """
    started = time.perf_counter()
    header = run_header(strategy, evaluator, space, budget, batch_size)
    if resume and journal_path is None:
        raise ValueError("resume=True needs a journal_path to resume from")
    pool = evaluation_executor(executor, workers, evaluator, address=ray_address)
    loop: dict[str, Any] = dict(batch_size=batch_size, progress=progress, stop_value=stop_value)
    try:
        if journal_path is None:
            history = search_trials(strategy, evaluator, space, budget, [], executor=pool, **loop)
        else:
            history = _journaled(strategy, evaluator, space, budget, journal_path, header, resume,
                                 executor=pool, **loop)  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown(wait=False)
    if result_path is None and journal_path is not None:
        journal_path = Path(journal_path)
        result_path = journal_path.with_name(journal_path.stem + ".result.json")
    if result_path is not None:
        sections = {**strategy.result_sections(), **(report(history) if report else {})}
        result = _result(history, header, evaluator, sections, time.perf_counter() - started)
        atomic_write_json(result_path, result)
    return history


def _journaled(
    strategy: SearchStrategy,
    evaluator: Evaluator,
    space: SearchSpace,
    budget: int,
    journal_path: str | Path,
    header: dict[str, Any],
    resume: bool,
    **loop: Any,
) -> History:
    """:func:`search_trials` appending each trial to the journal (replayed first if resuming)."""
    journal, replayed = open_journal(
        journal_path, header, space, resume=resume, option_defaults=strategy.option_defaults()
    )
    with journal:
        return search_trials(
            strategy, evaluator, space, budget, replayed, on_trial=journal.append, **loop
        )


def _result(
    history: History,
    header: dict[str, Any],
    evaluator: Evaluator,
    sections: Mapping[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The result file: settings, trajectory and best, the sections strategy and report add,
    what ``value`` is, and the run's wall time."""
    result = {**run_result(history, header), **portable(sections)}
    result["value_name"] = getattr(evaluator, "value_name", "value")
    result["elapsed_seconds"] = round(seconds, 2)
    return result


def search_trials(
    strategy: SearchStrategy,
    evaluator: Evaluator,
    space: SearchSpace,
    budget: int,
    replayed: Iterable[Trial],
    *,
    batch_size: int = 1,
    on_trial: Callable[[Trial], None] | None = None,
    progress: bool = False,
    stop_value: float | None = None,
    executor: Executor | None = None,
    retries: int = 2,
) -> History:
    """The search loop without any file: replay ``replayed``, then evaluate up to ``budget``
    cells, handing each new trial to ``on_trial`` (a journal's append, or a message to the
    process that owns the journal) in evaluation order. Without ``executor`` each cell is
    evaluated here before the next starts; with one (from :func:`evaluation_executor`, which
    gave its workers ``evaluator``) a batch's cells run at once, a lost one retried
    ``retries`` times."""
    history = History(space)
    for trial in replayed:
        history.append(trial)
        strategy.tell(history, trial)
    evaluate = _evaluations(evaluator, executor, retries)
    desc = f"{strategy.name} {evaluator.dataset}"
    bar = phase(desc, budget, enabled=progress, initial=len(history), unit="cell")
    with bar, reporting(progress):
        _loop(strategy, evaluate, history, budget, batch_size, on_trial, bar, stop_value)
    return history


def evaluation_executor(
    kind: str, workers: int, evaluator: Evaluator, *, address: str | None = None
) -> Executor | None:
    """Workers that each hold ``evaluator`` (sent once, not with every cell), or ``None`` for
    one local worker (the loop then evaluates in this process). On Ray each evaluation is a
    task with one CPU, and one GPU when the evaluator trains on CUDA."""
    if kind == "local" and workers == 1:
        return None
    device = getattr(evaluator, "device", None)
    gpus = 1.0 if getattr(device, "type", "cpu") == "cuda" else 0.0
    return make_executor(
        kind, workers, preload=(__name__,), setup=install_evaluator, setup_args=(evaluator,),
        address=address, gpus_per_task=gpus,
    )  # fmt: skip


_WORKER_EVALUATOR: list[Evaluator] = []
"""The evaluator of this worker process (installed once by :func:`install_evaluator`)."""


def install_evaluator(evaluator: Evaluator) -> None:
    _WORKER_EVALUATOR[:] = [evaluator]


def evaluate_installed(arch: Arch) -> tuple[EvalResult, float]:
    """Evaluate ``arch`` with this worker's evaluator: the result and its wall seconds."""
    (evaluator,) = _WORKER_EVALUATOR
    start = time.perf_counter()
    result = evaluator.evaluate(arch)
    return result, time.perf_counter() - start


Evaluations = Callable[[list[Arch]], Generator[tuple[EvalResult, float], None, None]]


def _evaluations(evaluator: Evaluator, executor: Executor | None, retries: int) -> Evaluations:
    """How a batch is evaluated: ``(result, seconds)`` per cell, in batch order. In parallel,
    cells start in order of decreasing FLOPs (a proxy for training time): longest first
    leaves the short cells to fill in, so fewer workers sit idle at a batch's end."""

    def one_by_one(archs: list[Arch]) -> Generator[tuple[EvalResult, float], None, None]:
        for arch in archs:
            start = time.perf_counter()
            result = evaluator.evaluate(arch)
            yield result, time.perf_counter() - start

    def at_once(archs: list[Arch]) -> Generator[tuple[EvalResult, float], None, None]:
        assert executor is not None
        jobs = [(arch,) for arch in archs]
        flops = [arch_costs(arch)["flops"] for arch in archs]
        order = sorted(range(len(archs)), key=lambda number: -flops[number])
        outcomes = in_order(executor, evaluate_installed, jobs, retries=retries, submit_order=order)
        for outcome, attempts in outcomes:
            if isinstance(outcome, WorkerLost):
                yield _lost(evaluator, attempts), 0.0
                continue
            result, seconds = outcome
            if attempts > 1:  # the journal says the evaluation was retried
                result = replace(result, metrics={**result.metrics, "attempts": float(attempts)})
            yield result, seconds

    return one_by_one if executor is None else at_once


def _lost(evaluator: Evaluator, attempts: int) -> EvalResult:
    """A failed trial for a cell whose worker died on every one of its ``attempts``."""
    return EvalResult(
        value=math.nan,
        dataset=evaluator.dataset,
        split="",
        metrics={"worker_lost": 1.0, "attempts": float(attempts)},
        failed=True,
    )


def run_header(
    strategy: SearchStrategy,
    evaluator: Evaluator,
    space: SearchSpace,
    budget: int,
    batch_size: int,
) -> dict[str, Any]:
    """The settings that define a run's trajectory; a journal must match them to be resumed.

    That is the strategy with its options and seed, the evaluator with its protocol (for real
    training: every training setting, the data and its split), and the package version.
    """
    check_budget(space, budget)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if strategy.space.name != space.name or evaluator.space_name != space.name:
        raise ValueError(
            f"space mismatch: run on {space.name!r}, strategy on {strategy.space.name!r}, "
            f"evaluator on {evaluator.space_name!r}"
        )
    return {
        "format": JOURNAL_FORMAT,
        "strategy": strategy.name,
        "options": portable(strategy.options()),
        "seed": strategy.seed,
        "space": space.name,
        "dataset": evaluator.dataset,
        "evaluator": type(evaluator).__name__,
        "protocol": evaluator_protocol(evaluator),
        "budget": budget,
        "batch_size": batch_size,
        "version": __version__,
    }


def evaluator_protocol(evaluator: Evaluator) -> dict[str, Any]:
    """What fixes an evaluator's answers beyond its dataset: ``evaluator.protocol()`` where it
    has one (real training), else nothing (a table's answers are the table's)."""
    protocol = getattr(evaluator, "protocol", None)
    return dict(protocol()) if callable(protocol) else {}


def check_budget(space: SearchSpace, budget: int) -> None:
    """Refuse, before anything is evaluated, a budget no search can spend."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be an int >= 1 (evaluated cells), got {budget!r}")
    if hasattr(space, "enumerate") and budget > distinct_cells(space.name):
        raise ValueError(
            f"budget {budget} is larger than the {distinct_cells(space.name)} distinct cells "
            f"of space {space.name!r} (cells that compute the same function count once)"
        )


@cache
def distinct_cells(space_name: str) -> int:
    """The number of canonical classes of an enumerable space."""
    space = get_space(space_name)
    return len({space.canonical_key(arch) for arch in space.enumerate()})  # type: ignore[attr-defined]


def run_result(history: History, settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON result of a run: settings, best cell, and the trajectory with best-so-far."""
    space = history.space
    best = history.best
    best_so_far = history.best_so_far()
    trajectory = [
        {**t.to_json(space), "best_so_far": None if math.isnan(b) else float(b)}
        for t, b in zip(history, best_so_far, strict=True)
    ]
    return {
        "settings": settings,
        "num_evaluated": len(history),
        "best": None if best is None else best.to_json(space),
        "strategy_seconds_total": sum(t.strategy_seconds for t in history),
        "eval_seconds_total": sum(t.eval_seconds for t in history),
        "trajectory": trajectory,
    }


def _loop(
    strategy: SearchStrategy,
    evaluate: Evaluations,
    history: History,
    budget: int,
    batch_size: int,
    on_trial: Callable[[Trial], None] | None,
    bar: Any,
    stop_value: float | None,
) -> None:
    def reached() -> bool:
        best = history.best
        return stop_value is not None and best is not None and best.value >= stop_value

    pending, share = _rest_of_batch(strategy, history, budget, batch_size)
    while len(history) < budget and not reached():
        if not pending:
            n = min(batch_size, budget - len(history))
            start = time.perf_counter()
            pending = strategy.ask(history, n)
            share = (time.perf_counter() - start) / n
        with contextlib.closing(evaluate(pending)) as outcomes:
            for arch in pending:
                if reached():  # checked before each cell, however the batch is evaluated
                    return
                result, seconds = next(outcomes)
                trial = history.record(arch, result, strategy_seconds=share, eval_seconds=seconds)
                if on_trial is not None:
                    on_trial(trial)
                strategy.tell(history, trial)
                bar.update(1)
                if history.best is not None:
                    bar.set_postfix(best=f"{history.best.value:.3f}")
                log_line(bar, _cell_line(history, trial, budget))
        pending = []


def _cell_line(history: History, trial: Trial, budget: int) -> str:
    value = "failed" if trial.failed else f"{trial.value:.2f}"
    best = history.best
    best_text = "-" if best is None else f"{best.value:.2f}"
    cell = history.space.to_string(trial.arch)
    seconds = f"ask {trial.strategy_seconds:.1f} s, evaluation {trial.eval_seconds:.1f} s"
    return f"cell {len(history)}/{budget}: {value} (best {best_text}; {seconds}) {cell}"


def _rest_of_batch(
    strategy: SearchStrategy, history: History, budget: int, batch_size: int
) -> tuple[list[Arch], float]:
    """The unevaluated part of the batch a resumed run stopped in (empty at a batch boundary)."""
    done = len(history) % batch_size
    if done == 0 or len(history) >= budget:
        return [], 0.0
    start_index = len(history) - done
    n = min(batch_size, budget - start_index)
    start = time.perf_counter()
    batch = strategy.ask(history.prefix(start_index), n)
    share = (time.perf_counter() - start) / n
    if batch[:done] != history.archs()[start_index:]:
        raise ValueError(
            f"the journal's trials {start_index}..{len(history) - 1} are not the batch that "
            f"strategy {strategy.name!r} proposes there; was it written by another version?"
        )
    return batch[done:], share
