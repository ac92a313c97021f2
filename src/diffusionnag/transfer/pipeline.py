"""The transfer pipeline as a user runs it: target -> meta-predictor -> ranked proposals -> report.

encode the target task -> guided generation with a decreasing scale until K unique valid
cells -> rank them with the clean meta-predictor -> evaluate in that order (table look-up or
real training) up to a budget, re-ranking as evaluations arrive -> report, placing the chosen
cell in a reference distribution of random cells where one is given or ships for the target
(:mod:`diffusionnag.transfer.reference`). Outputs next to ``out`` (``run.json``): the journal
``run.jsonl`` (``resume`` continues a killed run) and ``run.png``.

Shipped meta-predictors (``assets/meta-nb201-*``, see :data:`SHIPPED_META`) make
``transfer --benchmark nb201:<dataset>`` work without training: the default for a table target
is the one meta-trained on the *other* tables, so the target was never seen. Each is what

    diffusionnag meta-train --table PATH --table-tasks cifar10 cifar100 ImageNet16-120 \
        --holdout nb201:<dataset> --device cpu --out DIR

writes (seed 0, 3,000 steps; without ``--holdout`` for ``meta-nb201-tables``), copied there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from diffusionnag.diffusion.model import ScoreModel, load_score_model
from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.training import TrainConfig, TrainingEvaluator
from diffusionnag.io import atomic_write_json
from diffusionnag.predictors.data import load_pairs
from diffusionnag.pretrained import SHIPPED as ASSETS
from diffusionnag.pretrained import default_score_model
from diffusionnag.search.history import History
from diffusionnag.search.job import SearchJob, build_evaluator, run_with_outputs
from diffusionnag.search.run import run_header, run_result
from diffusionnag.spaces import get_space
from diffusionnag.transfer.bo import TransferBO
from diffusionnag.transfer.meta_train import load_meta_predictor
from diffusionnag.transfer.reference import Placement, Reference, read_reference, shipped_reference
from diffusionnag.transfer.strategy import TransferStrategy

SHIPPED_META = {
    "nb201:cifar10": "meta-nb201-no-cifar10",
    "nb201:cifar100": "meta-nb201-no-cifar100",
    "nb201:ImageNet16-120": "meta-nb201-no-ImageNet16-120",
}
"""Table targets -> the shipped meta-predictor that never saw them."""
SHIPPED_ALL_TABLES = "meta-nb201-tables"
"""Meta-trained on all three NB201 tables: the default for ``train:`` targets."""
SHIPPED_IMAGES = "meta-nb201-fmnist-images"
"""Meta-trained on Fashion-MNIST tasks, conditioned on images: the default for ``task:``
targets, which are trained under that meta-dataset's protocol."""
TRANSFER_STRATEGIES = {"transfer": TransferStrategy, "transfer-bo": TransferBO}


@dataclass(frozen=True)
class TransferJob:
    benchmark: str = "nb201:cifar10"
    space: str = "nb201"
    meta_predictor: Path | None = None
    support: Path | None = None
    """Cells already evaluated on the target (a pairs file, ``load_pairs``): the first support."""
    score_model: Path | None = None
    budget: int = 3
    seed: int = 0
    out: Path = Path("runs/transfer/run.json")
    resume: bool = False
    table: Path | None = None
    data_root: Path | None = None
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4))
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    reference: Path | None = None
    """Random cells trained on the target (``meta-dataset reference``); default: the shipped one
    for a ``task:`` target under its protocol, if any."""
    stop_value: float | None = None
    """End the run once a trial reaches this value (benchmarks: the table optimum)."""
    strategy: str = "transfer"
    """``transfer`` (rank generated cells by the meta-predictor) or ``transfer-bo``
    (DiffusionNAG-BO warm-started by it, :mod:`diffusionnag.transfer.bo`)."""

    def __post_init__(self) -> None:
        if self.strategy not in TRANSFER_STRATEGIES:
            raise ValueError(
                f"unknown transfer strategy {self.strategy!r}; "
                f"choose one of {', '.join(TRANSFER_STRATEGIES)}"
            )


def default_meta_predictor(benchmark: str, space: str) -> Path:
    """The shipped meta-predictor for ``benchmark``; ``ValueError`` where none is shipped."""
    kind, _, dataset = benchmark.partition(":")
    if kind == "nb201":
        from diffusionnag.evaluators.nb201_table import resolve_dataset

        name = SHIPPED_META[f"nb201:{resolve_dataset(dataset)}"]
    elif space == "nb201":
        name = SHIPPED_IMAGES if kind == "task" else SHIPPED_ALL_TABLES
    else:
        raise ValueError(
            f"no meta-predictor ships for space {space!r}; meta-train one "
            "(diffusionnag meta-train) and pass --meta-predictor DIR"
        )
    return ASSETS / name


@dataclass(frozen=True)
class TransferRun:
    history: History
    strategy: TransferStrategy | TransferBO
    placement: Placement | None
    """Where the chosen cell's test accuracy falls among the reference's random cells."""


def run_transfer(job: TransferJob) -> TransferRun:
    """Run (or resume) transfer to ``job.benchmark``; writes the journal, result JSON and plot."""
    space = get_space(job.space)
    reference = _reference(job)
    search_job = SearchJob(
        space=job.space,
        benchmark=job.benchmark,
        seed=job.seed,
        table=job.table,
        data_root=job.data_root,
        train=job.train,
        progress=job.progress,
        budget=job.budget,
        out=job.out,
        resume=job.resume,
        stop_value=job.stop_value,
    )
    evaluator = build_evaluator(search_job, space)
    known = load_pairs(job.support, space) if job.support else ([], [])
    folder = job.meta_predictor or default_meta_predictor(job.benchmark, job.space)
    predictor = load_meta_predictor(folder, "cpu")
    model = _score_model(job.score_model, job.space)
    strategy = TRANSFER_STRATEGIES[job.strategy](
        space,
        job.seed,
        predictor,
        model,
        class_images(evaluator) if predictor.config.encoder == "images" else None,
        (list(known[0]), [float(v) for v in known[1]]),
        meta_predictor=str(folder),
        **job.options,
    )
    history = run_with_outputs(search_job, strategy, evaluator, space)
    result = run_result(history, run_header(strategy, evaluator, space, job.budget, 1))
    prior = strategy.prior if isinstance(strategy, TransferBO) else strategy
    result["transfer"] = {
        "strategy": job.strategy,
        "meta_predictor": str(folder),
        "trained_on": predictor.trained_on,
        "candidates": len(prior.pool()) if prior.generated else None,
        "generation": prior.generation_rounds,
    }
    placement = _place(history, reference)
    if placement is not None:
        result["reference"] = {
            "path": str(reference.path),
            **asdict(placement),
            "percentile": placement.percentile,
        }
    atomic_write_json(job.out, result)
    return TransferRun(history, strategy, placement)


def _reference(job: TransferJob) -> Reference | None:
    """The given reference (``ValueError`` unless it matches the target and protocol), else the
    shipped one for a ``task:`` target when the protocol is its own."""
    kind, _, task = job.benchmark.partition(":")
    if job.reference is not None:
        reference = read_reference(job.reference)
        reference.check_protocol(task if kind == "task" else job.benchmark, job.train)
        return reference
    shipped = shipped_reference(task) if kind == "task" else None
    if shipped is None:
        return None
    reference = read_reference(shipped)
    try:
        reference.check_protocol(task, job.train)
    except ValueError:
        return None
    return reference


def _place(history: History, reference: Reference | None) -> Placement | None:
    best = history.best
    if reference is None or best is None:
        return None
    return reference.place(best.metrics.get("test_accuracy", best.value))


def _score_model(folder: Path | None, space: str) -> ScoreModel:
    if folder is not None:
        return load_score_model(folder, "cpu")
    return default_score_model(space)


def class_images(evaluator: Evaluator) -> list[Tensor] | None:
    """The training images of a real-training target, one tensor per class (``None`` for a
    table, which has no images)."""
    if not isinstance(evaluator, TrainingEvaluator):
        return None
    train = evaluator.data.train
    return [train.images[train.labels == c] for c in range(evaluator.data.num_classes)]
