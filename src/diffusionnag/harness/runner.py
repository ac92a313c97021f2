"""How the benchmark runners run: every (dataset, strategy, seed) a :class:`RunSpec`, checked
settings, and the runs executed with their journals; ``harness.py`` (the NB201 table) and
``targets.py`` (registry targets) both run through here.

Runs go to an :class:`~diffusionnag.execution.Executor`: this process for ``workers=1``, else a
pool of local processes (started clean, one intra-op torch thread each, exiting when this
process dies) or Ray tasks. Only this process writes journals: it locks a run's journal and
replays it before the run is submitted, and appends each trial the worker sends back, so the
journal of a killed benchmark holds exactly the trials the parent received.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.device import single_thread
from diffusionnag.execution import Channel, Executor, InProcessExecutor, WorkerLost, make_executor
from diffusionnag.harness.runs import RunSource, folder_name
from diffusionnag.io import atomic_write_json
from diffusionnag.progress import phase
from diffusionnag.search.base import as_seed
from diffusionnag.search.history import History, Trial
from diffusionnag.search.job import build_strategy
from diffusionnag.search.journal import Journal, open_journal
from diffusionnag.search.run import check_budget, run_header, run_result, search_trials
from diffusionnag.spaces.base import SearchSpace
from diffusionnag.spaces.nb201 import NB201Space


@dataclass(frozen=True)
class RunSpec:
    """One search run of the benchmark (picklable, sent to a worker)."""

    strategy: str
    seed: int
    dataset: str
    budget: int
    batch_size: int
    journal: str
    resume: bool
    options: dict[str, Any] = field(default_factory=dict)
    stop_at_optimum: bool = False
    protocol: str = "table"


def run_specs(settings: Mapping[str, Any], out: Path, resume: bool) -> list[RunSpec]:
    """Every (dataset, strategy, seed) run, its journal under ``out/runs``; without ``resume``,
    ``ValueError`` when any of those journals exists already."""
    specs = [
        RunSpec(
            strategy=name,
            seed=seed,
            dataset=dataset,
            budget=settings["budget"],
            batch_size=settings["batch_size"],
            journal=str(out / "runs" / folder_name(dataset) / name / f"seed{seed}.jsonl"),
            resume=resume,
            options=settings["strategy_options"].get(name, {}),
            stop_at_optimum=settings["stop_at_optimum"],
            protocol=settings["protocol"],
        )
        for dataset in settings["datasets"]
        for name in settings["strategies"]
        for seed in settings["seeds"]
    ]
    existing = [spec.journal for spec in specs if Path(spec.journal).exists()]
    if existing and not resume:
        raise ValueError(
            f"{len(existing)} run journal(s) already exist under {out} (e.g. {existing[0]}); "
            "add --resume to continue them (resume=True from Python), or choose another"
            " output folder"
        )
    return specs


def benchmark_settings(
    strategies: Sequence[str],
    seeds: Sequence[int],
    datasets: Sequence[str],
    budget: int,
    table_path: str | Path,
    workers: int,
    strategy_options: Mapping[str, Mapping[str, Any]] | None,
    batch_size: int,
    space: SearchSpace | None = None,
) -> dict[str, Any]:
    """The benchmark's settings, checked before any run starts (names, options, numbers), on
    ``space`` (default the NB201 table's)."""
    space = space or NB201Space()
    if not strategies or not seeds or not datasets:
        raise ValueError("need at least one strategy, one seed and one dataset")
    if len(set(strategies)) != len(strategies) or len(set(seeds)) != len(seeds):
        raise ValueError(f"strategies {list(strategies)} and seeds {list(seeds)} must not repeat")
    for name, value in (("budget", budget), ("batch_size", batch_size), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    options = {name: dict(values) for name, values in (strategy_options or {}).items()}
    extra = sorted(set(options) - set(strategies))
    if extra:
        raise ValueError(f"options given for strategies not being run: {', '.join(extra)}")
    check_budget(space, budget)
    for name in strategies:
        build_strategy(name, space, 0, options.get(name, {}))
    return {
        "strategies": list(strategies),
        "seeds": [as_seed(seed) for seed in seeds],
        "datasets": list(datasets),
        "budget": budget,
        "batch_size": batch_size,
        "table": str(table_path),
        "strategy_options": options,
    }


def execute(
    specs: list[RunSpec],
    workers: int,
    source: RunSource,
    progress: bool,
    kind: str = "local",
    address: str | None = None,
) -> list[dict[str, Any]]:
    """Records of the runs, in the order of ``specs``.

    ``workers=1`` runs them here, on one intra-op thread like a worker (two threads on two busy
    cores made DiffusionNAG-BO's asks several times slower). A run's journal is opened when the
    run is submitted and closed when it ends, so at most ``2 * workers`` are open at a time.
    """
    _init_worker(source)  # the parent builds every run's journal header
    if workers == 1 and kind == "local":
        with single_thread():
            return _drive(specs, InProcessExecutor(), 1, progress)
    executor = make_executor(
        kind, min(workers, len(specs)), preload=(__name__,), setup=_init_worker,
        setup_args=(source,), address=address,
    )  # fmt: skip
    return _drive(specs, executor, 2 * workers, progress)


@dataclass
class _OpenRun:
    """A submitted run as the parent sees it: its locked journal and the history so far."""

    spec: RunSpec
    header: dict[str, Any]
    journal: Journal
    history: History
    replayed: list[dict[str, Any]]
    done: bool = False

    def receive(self, message: tuple[Any, ...]) -> None:
        if message[0] == "done":
            self.done = True
            return
        trial = Trial.from_json(message[2], self.history.space)
        self.history.append(trial)  # checks the index and that the cell is new
        self.journal.append(trial)

    def finish(self) -> dict[str, Any]:
        """Close the journal, write the run's result file; the record for the summary."""
        self.journal.close()
        journal = Path(self.spec.journal)
        result_path = journal.with_name(journal.stem + ".result.json")
        atomic_write_json(result_path, run_result(self.history, self.header))
        curve = self.history.best_so_far()
        curve = np.concatenate([curve, np.full(self.spec.budget - len(curve), curve[-1])])
        return {
            "best_so_far": curve.tolist(),
            "strategy_seconds": [t.strategy_seconds for t in self.history],
            "history": self.history,  # the valid protocol's summary reads the trials' metrics
        }


def _drive(
    specs: list[RunSpec], executor: Executor, window: int, progress: bool
) -> list[dict[str, Any]]:
    """Submit runs (at most ``window`` at a time), record what they send back, collect them."""
    runs: dict[int, _OpenRun] = {}
    records: list[dict[str, Any]] = [{} for _ in specs]
    waiting = deque(range(len(specs)))
    in_flight: dict[Any, int] = {}
    channel = executor.channel(lambda message: runs[message[1]].receive(message))
    finished = False
    try:
        with phase("runs", len(specs), enabled=progress, unit="run", milestones=True) as bar:
            while waiting or in_flight:
                while waiting and len(in_flight) < window:
                    number = waiting.popleft()
                    runs[number] = _open_run(specs[number])
                    future = executor.submit(
                        _run_one, number, specs[number], runs[number].replayed, channel
                    )
                    in_flight[future] = number
                channel.drain(timeout=0.05)
                for future in [f for f in in_flight if f.done()]:
                    number = in_flight[future]
                    _result_of(future, specs[number])  # a worker's exception surfaces here
                    if runs[number].done:  # every message of the run has arrived
                        del in_flight[future]
                        records[number] = runs.pop(number).finish()
                        bar.update(1)
        finished = True
    finally:
        for run in runs.values():
            run.journal.close()
        executor.shutdown(wait=finished)
    return records


def _result_of(future: Any, spec: RunSpec) -> None:
    """A lost worker ends the benchmark with one line; its journal holds every trial that
    arrived, so ``--resume`` continues from there (runs are not retried in-process yet)."""
    try:
        future.result()
    except WorkerLost as error:
        raise ValueError(
            f"the worker running {spec.journal} died ({error}); its journal keeps every trial "
            "received: rerun with --resume to continue"
        ) from None


def _open_run(spec: RunSpec) -> _OpenRun:
    (source,) = _WORKER_SOURCE
    space = source.space(spec)
    strategy = build_strategy(spec.strategy, space, spec.seed, spec.options)
    evaluator = source.evaluator(spec)
    header = run_header(strategy, evaluator, space, spec.budget, spec.batch_size)
    journal, trials = open_journal(
        spec.journal, header, space, resume=spec.resume, option_defaults=strategy.option_defaults()
    )
    history = History(space)
    for trial in trials:
        history.append(trial)
    replayed = [trial.to_json(space) for trial in trials]
    return _OpenRun(spec, header, journal, history, replayed)


_WORKER_SOURCE: list[RunSource] = []
"""What this process' runs search and are scored by (sent pickled to each worker: the table
travels whole, faster than parsing the CSV; a target is built in the worker)."""


def _init_worker(source: RunSource) -> None:
    _WORKER_SOURCE[:] = [source]


def _run_one(number: int, spec: RunSpec, replayed: list[dict[str, Any]], channel: Channel) -> None:
    """Continue one search from its replayed trials, sending each new trial to the parent."""
    (source,) = _WORKER_SOURCE
    space = source.space(spec)
    search_trials(
        build_strategy(spec.strategy, space, spec.seed, spec.options),
        source.evaluator(spec),
        space,
        spec.budget,
        [Trial.from_json(record, space) for record in replayed],
        batch_size=spec.batch_size,
        on_trial=lambda trial: channel.put(("trial", number, trial.to_json(space))),
        stop_value=source.stop_value(spec),
    )
    channel.put(("done", number))


def collect_curves(
    specs: list[RunSpec], records: list[dict[str, Any]], dataset: str, strategy: str
) -> tuple[np.ndarray, np.ndarray]:
    """``[runs, budget]`` best-so-far curves and all per-step strategy seconds of one cell."""
    chosen = [
        record
        for spec, record in zip(specs, records, strict=True)
        if spec.dataset == dataset and spec.strategy == strategy
    ]
    curves = np.array([r["best_so_far"] for r in chosen], dtype=np.float64)
    seconds = np.array([s for r in chosen for s in r["strategy_seconds"]], dtype=np.float64)
    return curves, seconds
