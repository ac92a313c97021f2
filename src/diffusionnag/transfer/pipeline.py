"""The transfer pipeline as a user runs it: target -> meta-predictor -> ranked proposals -> report.

encode the target task -> guided generation with a decreasing scale until K unique valid
cells -> rank them with the clean meta-predictor -> evaluate in that order (table look-up or
real training) up to a budget, re-ranking as evaluations arrive -> report, placing the chosen
cell in a reference distribution of random cells where one is given or ships for the target
(:mod:`diffusionnag.transfer.reference`). A transfer run is a search run
(:mod:`diffusionnag.search.job`) of a transfer strategy (``transfer`` or ``transfer-bo``, by
name) plus that placement; the strategy loads the meta-predictor (by default the shipped one
for the target: :mod:`diffusionnag.transfer.defaults`) and adds its section to the result.
Outputs next to ``out`` (``run.json``): the journal ``run.jsonl`` (``resume`` continues a
killed run) and ``run.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.registry import BenchmarkSpec, Target
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.search.history import History
from diffusionnag.search.job import SearchJob, prepare_job, run_prepared, run_warnings
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.transfer.baselines import (
    Outcome,
    ValidationTruth,
    comparable_evaluator,
    compare_run,
)
from diffusionnag.transfer.reference import Placement, Reference, read_reference, shipped_reference

TRANSFER_STRATEGIES = ("transfer", "transfer-bo")
"""``transfer`` (rank generated cells by the meta-predictor) or ``transfer-bo``
(DiffusionNAG-BO warm-started by it, :mod:`diffusionnag.transfer.bo`)."""


DEFAULT_BENCHMARK = BenchmarkSpec("nb201", "cifar10")


def _default_search() -> SearchJob:
    return SearchJob(
        strategy="transfer",
        benchmark=DEFAULT_BENCHMARK,
        budget=3,
        out=Path("runs/transfer/run.json"),
    )


@dataclass(frozen=True)
class TransferJob:
    """A search run of a transfer strategy, plus where its meta-predictor, score model and
    first support set come from and the reference to place its chosen cell in."""

    search: SearchJob = field(default_factory=_default_search)
    meta_predictor: Path | None = None
    """Default: the shipped one for the target (``transfer.defaults``)."""
    support: Path | None = None
    """Cells already evaluated on the target (a pairs file, ``load_pairs``): the first support."""
    score_model: Path | None = None
    reference: Path | None = None
    """Random cells trained on the target (``meta-dataset reference``); default: the shipped one
    for a ``task:`` target under its protocol, if any."""
    compare_baselines: bool = False
    """Score the run beside the free baselines (``transfer.baselines``; ``nb201-valid:`` only)."""
    final: TrainConfig | None = None
    """Training targets: the protocol the chosen cell is trained with once more after the
    search. The search's own protocol (``search.train``, a cheap proxy) ranks the candidates;
    this one says what the chosen cell is worth, and a reference must be trained with it."""

    def __post_init__(self) -> None:
        if self.search.strategy not in TRANSFER_STRATEGIES:
            raise ValueError(
                f"unknown transfer strategy {self.search.strategy!r}; "
                f"choose one of {', '.join(TRANSFER_STRATEGIES)}"
            )

    def strategy_job(self) -> SearchJob:
        """The search job whose strategy options name this job's files."""
        files = {
            "meta_predictor": self.meta_predictor,
            "support": self.support,
            "score_model": self.score_model,
        }
        given = {name: str(path) for name, path in files.items() if path is not None}
        return replace(self.search, options={**self.search.options, **given})


@dataclass(frozen=True)
class TransferRun:
    history: History
    transfer: Mapping[str, Any]
    """The result's ``transfer`` section: meta-predictor, what it was trained on, candidates."""
    placement: Placement | None
    """Where the chosen cell's test accuracy falls among the reference's random cells."""
    value_name: str = "value"
    """What the trials' ``value`` is (the target evaluator's ``value_name``)."""
    placement_plot: Path | None = None
    """The reference histogram with the chosen cell marked, where there is a reference."""
    warnings: list[str] = field(default_factory=list)
    """One line each on what the numbers cannot say (:func:`run_warnings`)."""
    baselines: list[Outcome] = field(default_factory=list)
    """The run and the free baselines, scored alike (``compare_baselines``), the run first."""
    final: FinalResult | None = None
    """The chosen cell trained with the job's final protocol, where it has one."""


@dataclass(frozen=True)
class FinalResult:
    """The chosen cell trained with the final protocol: the numbers a user gets."""

    cell: str
    valid_accuracy: float
    test_accuracy: float
    protocol: Mapping[str, Any]
    seconds: float


def run_transfer(job: TransferJob) -> TransferRun:
    """Run (or resume) transfer to the job's benchmark; writes the journal, result JSON (once,
    with the strategy's and the reference's sections) and plot."""
    given = read_reference(job.reference) if job.reference is not None else None
    prepared = prepare_job(job.strategy_job())
    if job.compare_baselines:
        comparable_evaluator(prepared.target)
    final_trainer = _final_trainer(prepared.target, job.final)
    reference = _reference(given, prepared.target, job.final or job.search.train)
    outcomes: list[Outcome] = []
    truths: list[ValidationTruth] = []
    finals: list[FinalResult] = []

    def report_sections(history: History) -> dict[str, Any]:
        sections: dict[str, Any] = {}
        if job.compare_baselines:
            budget = job.search.budget
            method = _method(job.strategy_job())
            truth, outcomes[:] = compare_run(prepared.target, method, history, budget)
            truths[:] = [truth]
            sections["baselines"] = [asdict(outcome) for outcome in outcomes]
        if final_trainer is not None and history.best is not None:
            finals[:] = [_train_final(final_trainer, history.best.arch, prepared.space)]
            sections["final"] = asdict(finals[0])
        placement = _place(_chosen_test(history, finals), reference)
        if placement is not None and reference is not None:
            details = {"path": str(reference.path), **asdict(placement)}
            sections["reference"] = {**details, "percentile": placement.percentile}
        return sections

    history = run_prepared(prepared, report=report_sections)
    transfer = prepared.strategy.result_sections().get("transfer", {})
    evaluator = prepared.target.evaluator
    out = Path(job.search.out)
    chosen = _chosen_test(history, finals)
    plot: Path | None
    if truths:
        plot = plot_comparison(truths[0], outcomes, out)
    else:
        plot = plot_reference(chosen, out, _distribution(reference, evaluator))
    final = finals[0] if finals else None
    placement, warnings = _place(chosen, reference), run_warnings(history, prepared.target)
    name = evaluator.value_name
    return TransferRun(history, transfer, placement, name, plot, warnings, outcomes, final)


def _final_trainer(target: Target, final: TrainConfig | None) -> TrainingEvaluator | None:
    """The evaluator of the final protocol on the target's images; ``ValueError`` for a final
    protocol on a target that does not train (a table has no protocol to change)."""
    if final is None:
        return None
    evaluator = target.evaluator
    if not isinstance(evaluator, TrainingEvaluator):
        raise ValueError(
            f"a final training protocol needs a training target (train:, task:), not {target.spec}"
        )
    return TrainingEvaluator(evaluator.data, final, space=evaluator.space_name)


def _train_final(trainer: TrainingEvaluator, arch: Arch, space: SearchSpace) -> FinalResult:
    result = trainer.evaluate(arch)
    return FinalResult(
        cell=space.to_string(arch),
        valid_accuracy=result.value,
        test_accuracy=result.metrics["test_accuracy"],
        protocol=trainer.protocol(),
        seconds=round(result.cost_seconds, 2),
    )


def _chosen_test(history: History, finals: Sequence[FinalResult]) -> float | None:
    """The chosen cell's test accuracy: under the final protocol where there is one."""
    if finals:
        return finals[0].test_accuracy
    best = history.best
    return None if best is None else best.metrics.get("test_accuracy", best.value)


def _method(search: SearchJob) -> str:
    """The run's name in a comparison: the strategy, and its prior where not the default."""
    prior = search.options.get("prior", "meta")
    return search.strategy if prior == "meta" else f"{search.strategy} ({prior} prior)"


Distribution = tuple[np.ndarray, str]
"""Test accuracies of reference cells and what they are (a legend label)."""


def _distribution(reference: Reference | None, evaluator: Evaluator) -> Distribution | None:
    """The cells to place the chosen one among: the reference's random cells trained the same
    way, else every cell of a table target, else none."""
    if reference is not None:
        label = f"{len(reference.cells)} random cells of {reference.task} trained the same way"
        return reference.test_accuracies, label
    table_values = getattr(evaluator, "table_values", None)
    if callable(table_values):
        values = table_values()
        return values, f"all {len(values)} cells of the table ({evaluator.dataset})"
    return None


def plot_reference(
    chosen: float | None,
    out: Path,
    distribution: Distribution | None,
    picks: Mapping[str, float] | None = None,
) -> Path | None:
    """``<out stem>_reference.png``: a histogram of the ``distribution``'s test accuracies with
    the ``chosen`` cell's test accuracy marked, then each of ``picks`` (e.g. baselines' chosen
    cells by name); ``None`` and no file without a distribution or a chosen cell."""
    from diffusionnag.search.plots import plot_placement  # matplotlib: only when plotting

    if distribution is None or chosen is None:
        return None
    values, label = distribution
    path = out.with_name(out.stem + "_reference.png")
    title = "the chosen cell's test accuracy among the reference cells"
    plot_placement(values, {"chosen cell": chosen, **(picks or {})}, path, title=title,
                   reference_label=label)  # fmt: skip
    return path


def plot_comparison(truth: ValidationTruth, outcomes: Sequence[Outcome], out: Path) -> Path:
    """``<out stem>_reference.png``: every cell class's mean validation accuracy, with the
    cell each method chose marked (the run first), all scored by the same truth."""
    from diffusionnag.search.plots import plot_placement  # matplotlib: only when plotting

    path = out.with_name(out.stem + "_reference.png")
    marks = {outcome.method: outcome.chosen_truth for outcome in outcomes}
    label = f"all {len(truth.truth)} cell classes ({truth.dataset}, mean over training seeds)"
    title = "the cells each method chose, among all cells"
    plot_placement(truth.truth, marks, path, title=title, xlabel="mean validation accuracy (%)",
                   reference_label=label)  # fmt: skip
    return path


def _reference(given: Reference | None, target: Target, train: TrainConfig) -> Reference | None:
    """The given reference (``ValueError`` unless it matches the target and protocol), else the
    shipped one for the target when the protocol is its own."""
    if given is not None:
        given.check_protocol(target.name, train)
        return given
    shipped = shipped_reference(target.name)
    if shipped is None:
        return None
    reference = read_reference(shipped)
    try:
        reference.check_protocol(target.name, train)
    except ValueError:
        return None
    return reference


def _place(chosen: float | None, reference: Reference | None) -> Placement | None:
    if reference is None or chosen is None:
        return None
    return reference.place(chosen)
