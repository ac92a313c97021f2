"""Tasks cut from an image dataset: which classes, how many training images, at what size.

A :class:`TaskSpec` says everything that makes a task, so a task is rebuilt from the spec saved
in a meta-dataset row: from the source's fixed splits (``load_dataset(source, seed=0)``) it
draws ``per_class`` training images of each chosen class, and up to ``eval_per_class``
validation and test images of each, resizes them to ``resolution`` and standardises them by the
task's own training images. Labels are the classes' positions in ``classes``.

:class:`TaskSampler` draws tasks that differ in what decides which architecture wins, not only
in class identity: the number of classes, the training-set size (log-uniform, so small and large
sets are equally common) and the resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffusionnag.device import single_thread
from diffusionnag.evaluators.datasets import load_dataset
from diffusionnag.evaluators.image_data import ImageDataset, Split
from diffusionnag.evaluators.task_transforms import TRANSFORMS, split_generator

SOURCE_SPLIT_SEED = 0
"""Seed of the source's own train/valid(/test) split that every task draws from."""
RESOLUTION_RANGE = (4, 64)
TASK_NAME = re.compile(r"(.+)/c(\d+(?:-\d+)*)/n(\d+)/r(\d+)/s(\d+)(?:/([a-z]+))?")


@dataclass(frozen=True)
class TaskSpec:
    """One task, JSON-serialisable; ``classes`` are the source's label indices (kept sorted)."""

    source: str
    classes: tuple[int, ...]
    per_class: int
    resolution: int
    seed: int
    eval_per_class: int = 100
    transform: str = "none"
    """The task's family (:data:`TRANSFORMS`): ``none`` keeps the source's images."""

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"unknown task transform {self.transform!r}; known: {', '.join(TRANSFORMS)}"
            )
        classes = tuple(sorted(int(c) for c in self.classes))
        object.__setattr__(self, "classes", classes)
        if len(classes) < 2 or len(set(classes)) != len(classes) or classes[0] < 0:
            raise ValueError(f"a task needs two or more distinct class indices >= 0, got {classes}")
        low, high = RESOLUTION_RANGE
        if not low <= self.resolution <= high:
            raise ValueError(f"task resolution must be {low} to {high} px, got {self.resolution}")
        if self.per_class < 1 or self.eval_per_class < 1:
            raise ValueError("a task needs per_class >= 1 and eval_per_class >= 1")

    @property
    def name(self) -> str:
        """Unique per spec, readable: ``fashion-mnist/c0-3-7/n50/r16/s12``, and
        ``.../s12/rotate`` for a transformed family."""
        classes = "-".join(str(c) for c in self.classes)
        family = "" if self.transform == "none" else f"/{self.transform}"
        return f"{self.source}/c{classes}/n{self.per_class}/r{self.resolution}/s{self.seed}{family}"

    @classmethod
    def from_name(cls, name: str, eval_per_class: int = 100) -> TaskSpec:
        """Inverse of :attr:`name` (which leaves ``eval_per_class`` out); ``ValueError`` shows
        the expected form."""
        match = TASK_NAME.fullmatch(name)
        if match is None:
            raise ValueError(
                f"task {name!r} is not a task name: SOURCE/cCLASSES/nPER_CLASS/rRESOLUTION/sSEED"
                "[/TRANSFORM], e.g. digits/c0-1-2/n100/r8/s0 or digits/c0-1-2/n100/r8/s0/rotate"
            )
        source, classes, per_class, resolution, seed, transform = match.groups()
        return cls(
            source=source,
            classes=tuple(int(c) for c in classes.split("-")),
            per_class=int(per_class),
            resolution=int(resolution),
            seed=int(seed),
            eval_per_class=eval_per_class,
            transform=transform or "none",
        )

    def to_json(self) -> dict[str, Any]:
        """Every field; ``transform`` only when set, so specs saved before it existed match."""
        data = {**dataclasses.asdict(self), "classes": list(self.classes)}
        if self.transform == "none":
            del data["transform"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskSpec:
        """Inverse of :meth:`to_json`; ``ValueError`` names a missing or mistyped field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a task spec is a JSON object, got {data!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in data]
        if unknown or missing:
            raise ValueError(f"task spec {dict(data)!r}: missing {missing}, unknown {unknown}")
        classes = data["classes"]
        strings = ("source", "transform")
        mistyped = [n for n in fields if n not in (*strings, "classes") and n in data]
        mistyped = [n for n in mistyped if type(data[n]) is not int]
        mistyped += [n for n in strings if n in data and not isinstance(data[n], str)]
        if not isinstance(classes, list) or not all(type(c) is int for c in classes):
            mistyped.append("classes")
        if mistyped:
            raise ValueError(
                f"task spec {dict(data)!r}: mistyped field(s) {', '.join(mistyped)} (source "
                "and transform are strings, classes a list of integers, the rest integers)"
            )
        return cls(**{**data, "classes": tuple(data["classes"])})


@functools.lru_cache(maxsize=2)
def source_dataset(source: str) -> ImageDataset:
    """The source's fixed splits, loaded once per process (on one thread: see :func:`load_task`)."""
    with single_thread():
        return load_dataset(source, seed=SOURCE_SPLIT_SEED)


def class_counts(data: ImageDataset) -> np.ndarray:
    """``[3, K]``: images of each class in the train, valid and test splits."""
    k = data.num_classes
    splits = (data.train, data.valid, data.test)
    return np.stack([np.bincount(s.labels.numpy(), minlength=k) for s in splits])


def check_task(spec: TaskSpec, data: ImageDataset) -> None:
    """``ValueError`` unless ``data`` (the source) can give this task."""
    if spec.classes[-1] >= data.num_classes:
        raise ValueError(
            f"task {spec.name}: class {spec.classes[-1]} does not exist in {spec.source!r}, "
            f"which has {data.num_classes} classes (0..{data.num_classes - 1})"
        )
    available = int(class_counts(data)[0, list(spec.classes)].min())
    if spec.per_class > available:
        raise ValueError(
            f"task {spec.name}: {spec.per_class} training images per class asked, but "
            f"{spec.source!r} has only {available} for one of classes {list(spec.classes)}"
        )


def _draw(split: Split, classes: tuple[int, ...], count: int, rng: np.random.Generator) -> Split:
    """Up to ``count`` images of each class, relabelled ``0..len(classes)-1``."""
    labels = split.labels.numpy()
    chosen, new_labels = [], []
    for position, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        picked = np.sort(rng.choice(members, min(count, len(members)), replace=False))
        chosen.append(picked)
        new_labels.append(np.full(len(picked), position, dtype=np.int64))
    index = torch.from_numpy(np.concatenate(chosen))
    return Split(split.images[index], torch.from_numpy(np.concatenate(new_labels)))


def _resize(images: Tensor, resolution: int) -> Tensor:
    if images.shape[-1] == resolution:
        return images.clone()
    size = (resolution, resolution)
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


@functools.lru_cache(maxsize=4)
def load_task(spec: TaskSpec) -> ImageDataset:
    """The task's train/valid/test splits: the same spec gives the same tensors in every process.

    Means and stds are reduced on one thread: a CPU reduction's float sum depends on how many
    threads split it, and the last bits of the normalisation were enough to change accuracies
    after two epochs by up to 3 points between a two-thread parent and a one-thread worker.
    """
    with single_thread():
        return _build_task(spec)


def _build_task(spec: TaskSpec) -> ImageDataset:
    source = source_dataset(spec.source)
    check_task(spec, source)
    rng = np.random.default_rng(spec.seed)
    counts = (spec.per_class, spec.eval_per_class, spec.eval_per_class)
    splits = (source.train, source.valid, source.test)
    drawn = [_draw(split, spec.classes, n, rng) for split, n in zip(splits, counts, strict=True)]
    family = TRANSFORMS[spec.transform]
    resized = []
    for index, split in enumerate(drawn):
        images = family.at_source(split.images, split_generator(spec.seed, index, 0))
        images = _resize(images, spec.resolution)
        images = family.at_task(images, split_generator(spec.seed, index, 1))
        resized.append(Split(images, split.labels))
    train = resized[0].images
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    train_split, valid, test = (Split((s.images - mean) / std, s.labels) for s in resized)
    return ImageDataset(
        name=spec.name,
        train=train_split,
        valid=valid,
        test=test,
        num_classes=len(spec.classes),
        in_channels=source.in_channels,
        resolution=spec.resolution,
        classes=tuple(source.classes[c] for c in spec.classes),
        split_seed=spec.seed,
    )


def task_images(spec: TaskSpec) -> list[Tensor]:
    """The task's training images, one ``[per_class, c, H, W]`` tensor per class (what the
    ``images`` task encoder reads, as the transfer pipeline gives it for a target)."""
    train = load_task(spec).train
    return [train.images[train.labels == c] for c in range(len(spec.classes))]


@dataclass(frozen=True)
class TaskSampler:
    """Seeded draws of tasks from ``source``. ``max_classes=None`` allows all its classes;
    each task's family is drawn uniformly from ``transforms``."""

    source: str
    resolutions: tuple[int, ...] = (8, 16, 28)
    min_classes: int = 2
    max_classes: int | None = None
    min_per_class: int = 20
    max_per_class: int = 300
    eval_per_class: int = 100
    seed: int = 0
    transforms: tuple[str, ...] = ("none",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolutions", tuple(int(r) for r in self.resolutions))
        object.__setattr__(self, "transforms", tuple(self.transforms))
        unknown = [t for t in self.transforms if t not in TRANSFORMS]
        if not self.transforms or unknown or len(set(self.transforms)) != len(self.transforms):
            raise ValueError(
                f"task transforms must be distinct names of {', '.join(TRANSFORMS)}, "
                f"got {list(self.transforms)}"
            )
        low, high = RESOLUTION_RANGE
        if not self.resolutions or not all(low <= r <= high for r in self.resolutions):
            raise ValueError(f"task resolutions must be {low} to {high} px, got {self.resolutions}")
        top = self.max_classes if self.max_classes is not None else self.min_classes
        if not 2 <= self.min_classes <= top:
            raise ValueError(
                f"task classes must satisfy 2 <= min <= max, got {self.min_classes}..{top}"
            )
        if not 1 <= self.min_per_class <= self.max_per_class or self.eval_per_class < 1:
            raise ValueError(
                "task images per class must satisfy 1 <= min <= max and eval_per_class >= 1, "
                f"got {self.min_per_class}..{self.max_per_class}, {self.eval_per_class}"
            )

    def check(self, data: ImageDataset) -> int:
        """The largest class count drawn; ``ValueError`` where ``data`` cannot give a task."""
        top = self.max_classes if self.max_classes is not None else data.num_classes
        if top > data.num_classes or self.min_classes > top:
            raise ValueError(
                f"tasks of {self.min_classes} to {top} classes asked, but {self.source!r} has "
                f"{data.num_classes} classes"
            )
        fewest = int(class_counts(data)[0].min())
        if self.max_per_class > fewest:
            raise ValueError(
                f"tasks of up to {self.max_per_class} training images per class asked, but "
                f"{self.source!r} has {fewest} in its smallest class; lower the maximum"
            )
        return top

    def sample(self, n: int) -> list[TaskSpec]:
        """``n`` task specs, the same for the same sampler."""
        data = source_dataset(self.source)
        top = self.check(data)
        rng = np.random.default_rng(self.seed)
        log_low, log_high = math.log(self.min_per_class), math.log(self.max_per_class)
        specs = []
        for _ in range(n):
            count = int(rng.integers(self.min_classes, top + 1))
            classes = rng.choice(data.num_classes, count, replace=False)
            per_class = round(math.exp(rng.uniform(log_low, log_high)))
            resolution = int(rng.choice(self.resolutions))
            seed = int(rng.integers(2**31 - 1))
            # one family draws nothing, so samplers saved before families existed give the
            # same tasks
            transform = self.transforms[0]
            if len(self.transforms) > 1:
                transform = self.transforms[int(rng.integers(len(self.transforms)))]
            specs.append(
                TaskSpec(
                    source=self.source,
                    classes=tuple(int(c) for c in classes),
                    per_class=per_class,
                    resolution=resolution,
                    seed=seed,
                    eval_per_class=self.eval_per_class,
                    transform=transform,
                )
            )
        return specs

    def to_json(self) -> dict[str, Any]:
        """Every field; ``transforms`` only when not the default, as for task specs."""
        data = {
            **dataclasses.asdict(self),
            "resolutions": list(self.resolutions),
            "transforms": list(self.transforms),
        }
        if self.transforms == ("none",):
            del data["transforms"]
        return data
