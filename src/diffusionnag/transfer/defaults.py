"""The shipped meta-predictor a target gets when none is given.

Shipped meta-predictors (``assets/meta-nb201-*``, see :data:`SHIPPED_META`) make
``transfer --benchmark nb201:<dataset>`` work without training: the default for a table target
is the one meta-trained on the *other* tables, so the target was never seen. Each is what

    diffusionnag meta-train --table PATH --table-tasks cifar10 cifar100 ImageNet16-120 \
        --holdout nb201:<dataset> --device cpu --out DIR

writes (seed 0, 3,000 steps; without ``--holdout`` for ``meta-nb201-tables``), copied there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from diffusionnag.evaluators.registry import BenchmarkSpec, Target
from diffusionnag.pretrained import SHIPPED as ASSETS
from diffusionnag.transfer.metadata import task_dataset

SHIPPED_META = {
    "nb201:cifar10": "meta-nb201-no-cifar10",
    "nb201:cifar100": "meta-nb201-no-cifar100",
    "nb201:ImageNet16-120": "meta-nb201-no-ImageNet16-120",
}
"""Table targets -> the shipped meta-predictor that never saw them."""
SHIPPED_ALL_TABLES = "meta-nb201-tables"
"""Meta-trained on all three NB201 tables: the default for other nb201 targets."""
SHIPPED_IMAGES = "meta-nb201-fmnist-images"
SHIPPED_BY_KIND = {"task": SHIPPED_IMAGES, "train": SHIPPED_IMAGES}
"""Meta-trained on Fashion-MNIST tasks, conditioned on images and task sizes: the default for
``task:`` targets, trained under that meta-dataset's protocol, and for ``train:`` targets (a
user's own images), whose images it reads where a table meta-predictor would read none."""
SHIPPED_LABELS = {
    SHIPPED_IMAGES: "its labels are validation accuracies after 2 epochs (C=16, N=1) on "
    "Fashion-MNIST tasks of 8 to 16 px, which rank cells poorly against longer training",
}
"""What the labels a shipped meta-predictor learnt from mean, where they are not the target's
own kind of number (the tables' predictors learnt the tables' 200-epoch accuracies)."""


def default_meta_predictor(target: Target) -> Path:
    """The shipped meta-predictor for ``target``; ``ValueError`` where none is shipped."""
    space = target.evaluator.space_name
    if target.table_dataset is not None:
        name = SHIPPED_META[str(BenchmarkSpec("nb201", target.table_dataset))]
    elif space == "nb201":
        name = SHIPPED_BY_KIND.get(target.spec.kind, SHIPPED_ALL_TABLES)
    elif target.class_images is None:  # e.g. ofa:imagenet, a predictor of ImageNet accuracy
        raise ValueError(
            f"transfer does not run on {target.spec}: no meta-predictor ships for space "
            f"{space!r} (one would need a meta-dataset of its accuracies on ImageNet-like tasks, "
            "which is not available offline) and the target has no images for a task encoder "
            f"to read; search it instead: diffusionnag search --space {space} --benchmark "
            f"{target.spec} --strategy diffusionnag-bo"
        )
    else:
        raise ValueError(
            f"no meta-predictor ships for space {space!r}; meta-train one "
            "(diffusionnag meta-train) and pass --meta-predictor DIR"
        )
    return ASSETS / name


def target_tasks(target: Target) -> set[str]:
    """The meta-dataset task names that are the target's own table: its NATS-Bench table and its
    validation table (``nb201-valid``), however the target names the dataset."""
    dataset = target.table_dataset
    if dataset is None:
        return {target.name}
    valid = "cifar10-valid" if dataset == "cifar10" else dataset
    return {target.name, f"nb201:{dataset}", f"nb201-valid:{valid}"}


def check_never_saw(target: Target, trained_on: Sequence[str], folder: Path) -> None:
    """``ValueError`` when the meta-predictor in ``folder`` was meta-trained on the target's own
    table: transferring to it would report what it memorised, not what transferred."""
    seen = sorted(task for task in trained_on if task_dataset(task) in target_tasks(target))
    if seen:
        raise ValueError(
            f"meta-predictor {folder} was meta-trained on {', '.join(seen)}, the target's own "
            "table; transfer needs one that never saw it (the default for the target does not)"
        )


def labels_note(folder: Path, target: Target) -> str | None:
    """What ``folder``'s labels mean, where it is a shipped meta-predictor whose labels are
    another number than the target's: a ``task:`` target is trained under the meta-dataset's
    own protocol, so it needs no note."""
    if target.spec.kind == "task" or folder.parent != ASSETS:
        return None
    return SHIPPED_LABELS.get(folder.name)
