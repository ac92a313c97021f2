"""The benchmark runner: strategies x seeds x datasets on the NAS-Bench-201 table, in parallel;
``targets.py`` runs the same machinery on any registry target (``runs.py``: what a run searches).

Under ``protocol="valid"`` a run's objective is one training seed's validation accuracy instead
of the table's test accuracy, and the summary reports the chosen cell's test accuracy (see
harness/protocols.py). Each run has its own journal, so a killed benchmark continues with
``resume=True``. How runs execute (workers, journals): ``runner.py``.
Outputs under ``out_dir``::

    runs/<dataset>/<strategy>/seed<k>.jsonl        journal of one run (+ .result.json)
    summary.json, summary.md                        the comparison (see harness/summary.py)
    best_so_far_<dataset>.png                       median and interquartile band per strategy
    chosen_test_<dataset>.png                       instead, under protocol="valid"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.harness.protocols import (
    check_protocol,
    group_histories,
    valid_summary,
    write_valid_outputs,
)
from diffusionnag.harness.runner import (
    RunSpec,
    benchmark_settings,
    collect_curves,
    execute,
    run_specs,
)
from diffusionnag.harness.runs import TableRuns
from diffusionnag.harness.summary import (
    expected_best_of_random,
    random_yardstick,
    strategy_summary,
    summary_markdown,
)
from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.spaces.nb201 import NB201Space

__all__ = ["RunSpec", "expected_best_of_random", "run_benchmark"]


def run_benchmark(
    strategies: Sequence[str],
    seeds: Sequence[int],
    datasets: Sequence[str],
    budget: int,
    table_path: str | Path,
    out_dir: str | Path,
    workers: int = 1,
    *,
    strategy_options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 1,
    resume: bool = False,
    progress: bool = True,
    stop_at_optimum: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    protocol: str = "table",
) -> dict[str, Any]:
    """Run every (dataset, strategy, seed), write journals, summary and plots; return the summary.

    ``strategy_options`` maps a strategy name to its keyword options. ``resume=True`` continues
    runs whose journals exist (finished runs are just read back). ``workers=1`` runs in this
    process; more uses a process pool, or Ray tasks with ``executor="ray"`` (``ray_address``,
    else ``RAY_ADDRESS``, else a local Ray), the table put once into Ray's object store.
    ``stop_at_optimum`` ends a run once it has evaluated the
    table optimum: its best-so-far cannot change after that, so its curve is extended with the
    optimum, and only the time of the steps really taken is counted (``protocol="table"`` only).
    ``protocol="valid"``: datasets are nb201-valid's (cifar10 means cifar10-valid), each run's
    evaluator draws validation seeds from the run seed, and the summary is
    :func:`~diffusionnag.harness.protocols.valid_summary`.
    """
    resolve = check_protocol(protocol, stop_at_optimum)
    settings = benchmark_settings(
        strategies, seeds, [resolve(d) for d in datasets], budget, table_path, workers,
        strategy_options, batch_size,
    )  # fmt: skip
    settings["stop_at_optimum"] = stop_at_optimum
    settings["protocol"] = protocol
    table = NB201Table.from_csv(table_path)
    out = Path(out_dir)
    specs = run_specs(settings, out, resume)
    records = execute(specs, workers, TableRuns(table), progress, executor, ray_address)
    summary = _summarise(settings, specs, records, table)
    _write_outputs(out, summary, specs, records, table)
    return summary


def _summarise(
    settings: dict[str, Any],
    specs: list[RunSpec],
    records: list[dict[str, Any]],
    table: NB201Table,
) -> dict[str, Any]:
    if settings["protocol"] == "valid":
        return valid_summary(settings, group_histories(specs, records), table)
    blocks: dict[str, Any] = {}
    for dataset in settings["datasets"]:
        arch, optimum = table.optimum(dataset)
        block: dict[str, Any] = {
            "optimum": {"arch": NB201Space().to_string(arch), "value": optimum},
            "random_expectation": random_yardstick(table.accuracies(dataset), settings["budget"]),
            "strategies": {},
        }
        for name in settings["strategies"]:
            curves, seconds = collect_curves(specs, records, dataset, name)
            block["strategies"][name] = strategy_summary(
                curves, seconds, optimum, settings["budget"]
            )
        blocks[dataset] = block
    return {"settings": settings, "datasets": blocks}


def _write_outputs(
    out: Path,
    summary: dict[str, Any],
    specs: list[RunSpec],
    records: list[dict[str, Any]],
    table: NB201Table,
) -> None:
    from diffusionnag.search.plots import plot_best_so_far  # matplotlib: only the parent needs it

    if summary["settings"]["protocol"] == "valid":
        write_valid_outputs(out, summary, group_histories(specs, records), table)
        return
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    budget = summary["settings"]["budget"]
    seeds = len(summary["settings"]["seeds"])
    for dataset, block in summary["datasets"].items():
        values = table.accuracies(dataset)
        expectation = np.array([expected_best_of_random(values, n) for n in range(1, budget + 1)])
        curves = {
            name: collect_curves(specs, records, dataset, name)[0] for name in block["strategies"]
        }
        plot_best_so_far(
            curves,
            block["optimum"]["value"],
            out / f"best_so_far_{dataset}.png",
            title=f"NAS-Bench-201 {dataset}: {seeds} seeds per strategy",
            random_expectation=expectation,
        )
