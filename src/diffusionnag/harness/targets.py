"""The benchmark harness on any registry target: ``diffusionnag benchmark --benchmark SPEC``.

The same runs as on the table (``runner.py``: one journaled search per strategy and seed,
resumable, in parallel), but each run's space and evaluator come from
:class:`~diffusionnag.harness.runs.TargetRuns`, which builds the target exactly as ``search``
does. A target may restrict the space (``ofa:imagenet,max_flops=3e8``): every strategy then
searches the restricted space, so no strategy proposes a cell over budget (see
``spaces/constrained.py``).

A target has no table, hence no known optimum and no expectation of random search: the summary
counts evaluations to a *reference* value per benchmark (``references``, e.g. a high-water mark
found by a long search; without one, the best value any run of this benchmark found) and to
within 0.1 of it, and gives the median best-so-far at the standard checkpoints. Outputs under
``out_dir``: ``runs/<benchmark folder>/<strategy>/seed<k>.jsonl`` (+ ``.result.json``),
``summary.json``, ``summary.md``, ``best_so_far_<benchmark folder>.png``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from diffusionnag.device import single_thread
from diffusionnag.evaluators.registry import BenchmarkSpec
from diffusionnag.harness.runner import (
    RunSpec,
    benchmark_settings,
    collect_curves,
    execute,
    run_specs,
)
from diffusionnag.harness.runs import TargetRuns, folder_name
from diffusionnag.harness.summary import strategy_rows, strategy_summary
from diffusionnag.io import atomic_write_json, atomic_write_text
from diffusionnag.search.history import History

REFERENCE = "reference"


def run_target_benchmark(
    strategies: Sequence[str],
    seeds: Sequence[int],
    benchmarks: Sequence[str],
    budget: int,
    out_dir: str | Path,
    workers: int = 1,
    *,
    space: str = "nb201",
    ofa_dir: str | Path | None = None,
    table: str | Path | None = None,
    references: Mapping[str, float] | None = None,
    strategy_options: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int = 1,
    resume: bool = False,
    progress: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run every (benchmark, strategy, seed) on registry targets; write journals, summary and
    plots; return the summary. ``benchmarks`` are ``KIND:ARGUMENT`` specs built for ``space``
    (with ``ofa_dir`` and ``table`` where the kind reads them); ``references`` maps a spec to
    the value evaluations are counted to. Other arguments as :func:`harness.run_benchmark`."""
    names = [str(BenchmarkSpec.parse(text)) for text in benchmarks]
    source = TargetRuns(space, _text(ofa_dir), _text(table))
    given = _check_references(names, references or {})
    with single_thread():  # every target is built here first: a wrong one fails before any run
        spaces = [source.space_of(name, seeds[0] if seeds else 0) for name in names]
    settings = benchmark_settings(
        strategies, seeds, names, budget, "", workers, strategy_options, batch_size,
        space=spaces[0] if spaces else None,
    )  # fmt: skip
    del settings["table"]
    settings.update(space=space, ofa_dir=_text(ofa_dir), table=_text(table), references=given)
    settings.update(stop_at_optimum=False, protocol="target")
    out = Path(out_dir)
    specs = run_specs(settings, out, resume)
    records = execute(specs, workers, source, progress, executor, ray_address)
    summary = _summarise(settings, specs, records, source)
    _write_outputs(out, summary, specs, records)
    return summary


def _text(path: str | Path | None) -> str | None:
    return None if path is None else str(path)


def _check_references(names: list[str], references: Mapping[str, float]) -> dict[str, float]:
    """References by the specs' canonical text; ``ValueError`` for one of no benchmark run."""
    given = {str(BenchmarkSpec.parse(name)): float(value) for name, value in references.items()}
    extra = sorted(set(given) - set(names))
    if extra:
        raise ValueError(f"references given for benchmarks not being run: {', '.join(extra)}")
    bad = [name for name, value in given.items() if not math.isfinite(value)]
    if bad:
        raise ValueError(f"the reference of {bad[0]} must be a finite number")
    return given


def _summarise(
    settings: dict[str, Any],
    specs: list[RunSpec],
    records: list[dict[str, Any]],
    source: TargetRuns,
) -> dict[str, Any]:
    blocks: dict[str, Any] = {}
    for benchmark in settings["datasets"]:
        histories = [
            record["history"]
            for spec, record in zip(specs, records, strict=True)
            if spec.dataset == benchmark
        ]
        best = _best_found(histories)
        given = settings["references"].get(benchmark)
        reference = {"value": given, "source": "given"}
        if given is None:
            reference = {"value": best["value"], "source": "best found by any run"}
        block: dict[str, Any] = {
            "value_name": source.build(benchmark, settings["seeds"][0]).evaluator.value_name,
            REFERENCE: reference,
            "best_found": best,
            "strategies": {},
        }
        for name in settings["strategies"]:
            curves, seconds = collect_curves(specs, records, benchmark, name)
            target = math.inf if reference["value"] is None else reference["value"]  # no value
            row = strategy_summary(curves, seconds, target, settings["budget"])
            row["evals_to"] = {REFERENCE: row["evals_to"].pop("optimum"), **row["evals_to"]}
            block["strategies"][name] = row
        blocks[benchmark] = block
    return {"settings": settings, "benchmarks": blocks}


def _best_found(histories: list[History]) -> dict[str, Any]:
    """The best cell any of ``histories`` evaluated, with its value (``None`` if none did)."""
    best = [(trial, history) for history in histories if (trial := history.best) is not None]
    if not best:
        return {"value": None, "arch": None}
    trial, history = max(best, key=lambda pair: pair[0].value)
    return {"value": trial.value, "arch": history.space.to_string(trial.arch)}


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as markdown: one table per benchmark."""
    settings = summary["settings"]
    budget = settings["budget"]
    lines = [
        "# Search benchmark on targets",
        "",
        f"Budget {budget} evaluated cells, batch size {settings['batch_size']}, "
        f"seeds {settings['seeds']}, space `{settings['space']}`.",
        "Evaluations to a target: median over seeds (runs that never get there count as "
        f"infinite: `>{budget}`), with how many runs reached it. The reference is the value "
        "given for the benchmark, else the best any run found.",
    ]
    for benchmark, block in summary["benchmarks"].items():
        reference, best = block[REFERENCE], block["best_found"]
        found = "-" if best["value"] is None else f"{best['value']:.4f} (`{best['arch']}`)"
        lines += [
            "",
            f"## {benchmark}: reference {_shown(reference['value'])} ({reference['source']})",
            "",
            f"Value: {block['value_name']}. Best found by any run: {found}.",
            "",
            *strategy_rows(block, budget, REFERENCE),
        ]
    return "\n".join(lines) + "\n"


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _write_outputs(
    out: Path,
    summary: dict[str, Any],
    specs: list[RunSpec],
    records: list[dict[str, Any]],
) -> None:
    from diffusionnag.search.plots import plot_best_so_far  # matplotlib: only the parent needs it

    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    seeds = len(summary["settings"]["seeds"])
    for benchmark, block in summary["benchmarks"].items():
        curves = {
            name: collect_curves(specs, records, benchmark, name)[0] for name in block["strategies"]
        }
        plot_best_so_far(
            curves,
            block[REFERENCE]["value"],
            out / f"best_so_far_{folder_name(benchmark)}.png",
            title=f"{benchmark}: {seeds} seeds per strategy",
            reference_label=f"reference ({block[REFERENCE]['source']})",
            ylabel=f"best {block['value_name']} so far",
        )
