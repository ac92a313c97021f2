"""Task encoders: one vector per task, invariant to the order of the sets that describe it.

Ways to know a task, registered by name in :data:`ENCODERS`; each declares what of a task it
reads (:attr:`TaskEncoder.needs`) and builds its own input from a :class:`KnownTask`:

- ``images`` (the paper's dataset encoder): a fixed number of images per class -> a frozen
  feature extractor (seeded random or pretrained by us: ``predictors.extractor``) -> set
  attention within each class, pooled to one vector per class -> set attention across classes,
  pooled to one task vector. Any number of classes.
- ``evaluations``: a task known only by a support set of (cell, accuracy) pairs measured on it,
  as a table is: set attention over (encoded cell, accuracy standardised within the set).
- ``none``: the task is not known; one learned vector for every task. A meta-predictor with it
  is the unconditioned ablation: the same network and meta-training, fitted to all tasks pooled.

The set layers (``predictors.set_pooling``) are Set Transformer blocks (self-attention without
positions, then attention pooling with learned seeds), so permuting a set permutes nothing
downstream. Both encoders map an empty support set to a learned vector, the "unknown task" the
meta-predictor falls back to. Another encoder joins with :func:`register_encoder`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from diffusionnag.predictors.cell_graph import CellGraphEncoder
from diffusionnag.predictors.extractor import build_extractor, load_pretrained
from diffusionnag.predictors.set_pooling import SetPooling
from diffusionnag.spaces.base import SearchSpace

NEEDS = frozenset({"images", "sizes", "support"})
"""What an encoder may read of a task: its training images per class, their sizes (training
images per class and classes), a support set of evaluated cells."""


@dataclass(frozen=True)
class TaskData:
    """What a task encoder may read. ``support_*`` for ``evaluations``: encoded cells
    ``[K, N, V]`` and their accuracies ``[K]`` (K may be 0). ``images`` for ``images``:
    ``[C, P, channels, H, W]``, P images of each of C classes, a sample of the task's
    ``train_per_class`` training images per class."""

    support_cells: Tensor | None = None
    support_values: Tensor | None = None
    images: Tensor | None = None
    train_per_class: float | None = None


@dataclass(frozen=True)
class KnownTask:
    """What a caller knows of a task; an encoder reads the parts its ``needs`` names.

    ``class_images``: the training images, one ``[n_c, c, H, W]`` tensor per class (they also
    give the sizes); ``support_cells [K, N, V]`` and ``support_values [K]``: evaluated cells
    (K may be 0). ``name`` says which task an error is about.
    """

    name: str = "the task"
    class_images: Sequence[Tensor] | None = None
    support_cells: Tensor | None = None
    support_values: Tensor | None = None

    def has(self, need: str) -> bool:
        if need == "support":
            return self.support_cells is not None and self.support_values is not None
        return self.class_images is not None  # images, and the sizes they have


class TaskEncoder(nn.Module, ABC):
    """A task -> ``[D]`` embedding, invariant to the order of the sets that describe the task.

    ``needs`` (a subset of :data:`NEEDS`) says what the encoder reads: callers fetch only that
    (images are loaded, support sets drawn, only for an encoder that reads them).
    """

    needs: frozenset[str]

    def task_data(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        """One encoding's input, drawn from ``task`` with ``rng`` where the encoder samples."""
        self.check(task)
        return self.input_of(task, rng)

    def check(self, task: KnownTask) -> None:
        """``ValueError`` unless ``task`` holds all the encoder reads."""
        missing = sorted(need for need in self.needs if not task.has(need))
        if missing:
            raise ValueError(
                f"this task encoder reads the task's {' and '.join(missing)}, but {task.name} "
                "has none (a table has no images); use a meta-predictor whose encoder reads "
                "what the task has"
            )

    @abstractmethod
    def input_of(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        """:meth:`task_data` once ``task`` is known to hold what :attr:`needs` names."""

    @abstractmethod
    def forward(self, task: TaskData) -> Tensor:
        """``[D]``."""

    def encode_batch(self, tasks: list[TaskData]) -> Tensor:
        """``[T, D]``, one embedding per task."""
        return torch.stack([self(task) for task in tasks])


def standardise_within(values: Tensor, valid: Tensor) -> Tensor:
    """``[S, L]`` z-scores within each set's valid entries (zeros for a single value): only a
    set's order and spacing carry over between tasks, never a task's absolute accuracy level."""
    count = valid.sum(1, keepdim=True).clamp_min(1)
    mean = (values * valid).sum(1, keepdim=True) / count
    var = ((values - mean).pow(2) * valid).sum(1, keepdim=True) / count
    z = (values - mean) / var.sqrt().clamp_min(1e-6)
    return torch.where(valid & (count > 1), z, torch.zeros_like(z))


class CleanCells(nn.Module):
    """Support cells are clean: a cell graph encoder at a fixed tiny noise level."""

    def __init__(self, space: SearchSpace, hidden: int) -> None:
        super().__init__()
        self.graph = CellGraphEncoder(space, hidden, 2)

    def forward(self, cells: Tensor) -> Tensor:
        return self.graph(cells, torch.full((len(cells),), 1e-3, device=cells.device))


class EvaluationsEncoder(TaskEncoder):
    """A support set of (cell, accuracy) pairs -> ``[D]`` task embedding."""

    needs = frozenset({"support"})

    def __init__(self, cell_encoder: nn.Module, cell_dim: int, dim: int) -> None:
        super().__init__()
        self.cell_encoder = cell_encoder
        self.element = nn.Sequential(
            nn.Linear(2 * cell_dim + 1, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.pool = SetPooling(dim)
        self.empty = nn.Parameter(torch.zeros(dim))

    def input_of(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        return TaskData(support_cells=task.support_cells, support_values=task.support_values)

    def forward(self, task: TaskData) -> Tensor:
        cells, values = task.support_cells, task.support_values
        if cells is None or values is None:
            raise ValueError("the evaluations encoder needs a support set of cells and accuracies")
        valid = torch.ones(1, len(cells), dtype=torch.bool, device=values.device)
        return self.batch(cells[None], values[None].float(), valid)[0]

    def encode_batch(self, tasks: list[TaskData]) -> Tensor:
        """``[T, D]``; support sets of different sizes are padded and encoded in one batch."""
        sizes = [len(task.support_values) for task in tasks]  # type: ignore[arg-type]
        length = max(sizes)
        if length == 0:
            return self.empty.expand(len(tasks), -1)
        reference = next(t.support_cells for t, size in zip(tasks, sizes, strict=True) if size)
        assert reference is not None
        cells = reference.new_zeros(len(tasks), length, *reference.shape[1:])
        values = reference.new_zeros(len(tasks), length)
        valid = torch.zeros(len(tasks), length, dtype=torch.bool, device=reference.device)
        for row, (task, size) in enumerate(zip(tasks, sizes, strict=True)):
            if size:
                assert task.support_cells is not None and task.support_values is not None
                cells[row, :size], values[row, :size] = task.support_cells, task.support_values
                valid[row, :size] = True
        return self.batch(cells, values, valid)

    def batch(self, cells: Tensor, values: Tensor, valid: Tensor) -> Tensor:
        """``[S, L, N, V]`` cells, ``[S, L]`` values, ``[S, L]`` validity -> ``[S, D]``; a set
        with no valid element (an empty support set) gets the learned empty embedding."""
        sets, length = valid.shape
        if length == 0:
            return self.empty.expand(sets, -1)
        features = self.cell_encoder(cells.flatten(0, 1)).view(sets, length, -1)  # [S, L, F]
        z = standardise_within(values, valid)[..., None]  # [S, L, 1]
        # z * features: its set mean is the covariance of cell features and accuracy, what a
        # linear model of the task would need; given directly, few steps learn to read it.
        elements = self.element(torch.cat([features, z, z * features], dim=-1))  # [S, L, D]
        empty = ~valid.any(1)  # attention over no element is undefined: give it one, then drop
        pad = ~valid.clone()
        pad[empty, 0] = False
        weights = valid[..., None].float()
        mean = (elements * weights).sum(1) / weights.sum(1).clamp_min(1)
        # The mean is a residual path around attention pooling: with it, meta-training learns to
        # read the support set in a few hundred steps; through attention alone it took far
        # longer on the fake tasks of tests/test_transfer.py.
        pooled = mean + self.pool(elements, pad)  # [S, D]
        return torch.where(empty[:, None], self.empty.expand(sets, -1), pooled)


class ImagesEncoder(TaskEncoder):
    """``[C, P, c, H, W]`` images per class -> ``[D]``: features of a frozen extractor
    (``predictors.extractor``), pooled within classes, then across classes."""

    def __init__(
        self,
        dim: int,
        features: int = 64,
        seed: int = 0,
        extractor: str = "random",
        sizes: bool = False,
        per_class: int = 20,
    ) -> None:
        """``sizes``: add an embedding of (log training images per class, log classes), which
        attention pooling, a weighted mean, cannot see. ``per_class``: images of each class
        in one encoding."""
        super().__init__()
        self.needs = frozenset({"images", "sizes"} if sizes else {"images"})
        self.per_class = per_class
        self.extractor = build_extractor(extractor, features, seed)
        self.project = nn.Linear(2 * features, dim)
        self.within_class = SetPooling(dim)
        self.across_classes = SetPooling(dim)
        self.sizes = (
            nn.Sequential(nn.Linear(2, dim), nn.ReLU(), nn.Linear(dim, dim)) if sizes else None
        )

    def input_of(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        assert task.class_images is not None
        return image_encoding(task.class_images, self.per_class, rng)

    def forward(self, task: TaskData) -> Tensor:
        images = task.images
        if images is None or images.dim() != 5:
            raise ValueError("the images encoder needs images shaped [classes, per_class, c, H, W]")
        if images.shape[0] < 2:
            raise ValueError(f"a task needs at least two classes, got {images.shape[0]}")
        classes, per_class = images.shape[:2]
        with torch.no_grad():
            features = self.extractor(images.flatten(0, 1))  # [C * P, 2F]
        h = self.project(features).view(classes, per_class, -1)  # [C, P, D]
        per_class_vectors = self.within_class(h)  # [C, D]
        embedding = self.across_classes(per_class_vectors[None])[0]  # [D]
        if self.sizes is None:
            return embedding
        if task.train_per_class is None or not task.train_per_class >= 1:
            raise ValueError("this images encoder also reads the task's training images per class")
        sizes = torch.tensor([task.train_per_class, classes], dtype=h.dtype, device=h.device)
        return embedding + self.sizes(sizes.log())


class NoTaskEncoder(TaskEncoder):
    """Every task -> the same learned ``[D]`` vector (what it is given is ignored)."""

    needs: frozenset[str] = frozenset()

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(dim))

    def input_of(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        return TaskData()

    def forward(self, task: TaskData) -> Tensor:
        return self.embedding


def image_encoding(images: Sequence[Tensor], per_class: int, rng: np.random.Generator) -> TaskData:
    """One ``images`` encoding of a task whose training images per class are ``images``."""
    train_per_class = float(np.mean([len(pool) for pool in images]))
    return TaskData(
        images=sample_class_images(images, per_class, rng), train_per_class=train_per_class
    )


def sample_class_images(
    images: Sequence[Tensor], per_class: int, rng: np.random.Generator
) -> Tensor:
    """``[C, per_class, c, H, W]``: per class, distinct images where it has enough."""
    chosen = []
    for pool in images:
        replace = len(pool) < per_class
        chosen.append(pool[rng.choice(len(pool), per_class, replace=replace)])
    return torch.stack(chosen)


class EncoderSettings(Protocol):
    """What an encoder builder reads (a ``MetaPredictorConfig`` has it all)."""

    @property
    def encoder(self) -> str: ...
    @property
    def hidden(self) -> int: ...
    @property
    def task_dim(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def extractor(self) -> str: ...
    @property
    def task_sizes(self) -> bool: ...
    @property
    def per_class(self) -> int: ...


EncoderBuilder = Callable[[SearchSpace, EncoderSettings, bool], TaskEncoder]
"""``(space, settings, pretrained) -> encoder``; ``pretrained``: start from shipped weights
where the encoder has any (a network about to be meta-trained; a saved one brings its own)."""


def _evaluations(space: SearchSpace, settings: EncoderSettings, pretrained: bool) -> TaskEncoder:
    cells = CleanCells(space, settings.hidden)
    return EvaluationsEncoder(cells, 2 * settings.hidden, settings.task_dim)


def _images(space: SearchSpace, settings: EncoderSettings, pretrained: bool) -> TaskEncoder:
    encoder = ImagesEncoder(
        settings.task_dim,
        seed=settings.seed,
        extractor=settings.extractor,
        sizes=settings.task_sizes,
        per_class=settings.per_class,
    )
    if pretrained and settings.extractor != "random":
        load_pretrained(encoder.extractor)
    return encoder


def _none(space: SearchSpace, settings: EncoderSettings, pretrained: bool) -> TaskEncoder:
    return NoTaskEncoder(settings.task_dim)


ENCODERS: dict[str, EncoderBuilder] = {
    "evaluations": _evaluations,
    "images": _images,
    "none": _none,
}


def register_encoder(name: str, build: EncoderBuilder) -> None:
    """Make ``name`` a task encoder that meta-predictor configs can name."""
    ENCODERS[name] = build


def check_encoder(name: str) -> str:
    if name not in ENCODERS:
        raise ValueError(f"unknown task encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return name


def build_encoder(
    space: SearchSpace, settings: EncoderSettings, *, pretrained: bool = False
) -> TaskEncoder:
    """The encoder ``settings.encoder`` names, for cells of ``space``."""
    encoder = ENCODERS[check_encoder(settings.encoder)](space, settings, pretrained)
    unknown = encoder.needs - NEEDS
    if unknown:
        raise ValueError(
            f"task encoder {settings.encoder!r} needs {sorted(unknown)}; an encoder may read "
            f"{', '.join(sorted(NEEDS))}"
        )
    return encoder


def encoder_needs(space: SearchSpace, settings: EncoderSettings) -> frozenset[str]:
    """What the encoder ``settings`` names reads (to fetch only that), leaving the global
    random state as it was although building the encoder draws its initial weights."""
    with torch.random.fork_rng(devices=[]):
        return build_encoder(space, settings).needs
