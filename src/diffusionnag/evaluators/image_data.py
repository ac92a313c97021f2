"""Image datasets in memory: train/valid/test splits of normalised ``[n, C, H, W]`` images.

Splits that a source does not fix are drawn by a seeded stratified split, so the same seed gives
the same split on every machine; normalisation uses the training split's per-channel mean and
std, so no statistic leaks from valid or test. The loaders are in
:mod:`diffusionnag.evaluators.datasets`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Split:
    images: Tensor  # [n, C, H, W] float32, normalised
    labels: Tensor  # [n] int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ImageDataset:
    """``skipped_files`` counts image files of a folder dataset that could not be decoded;
    ``split_seed`` is the seed of the splits the source does not fix."""

    name: str
    train: Split
    valid: Split
    test: Split
    num_classes: int
    in_channels: int
    resolution: int
    classes: tuple[str, ...]
    skipped_files: int = 0
    split_seed: int = 0


def stratified_split(
    labels: np.ndarray, fractions: Sequence[float], rng: np.random.Generator
) -> list[np.ndarray]:
    """Index arrays, one per fraction, holding each class in (rounded) those proportions.

    Every split but the first gets ``round(n * fraction)`` of each class of size ``n``; the first
    gets the rest, so a small class still lands in the training split.
    """
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        sizes = [round(len(members) * f) for f in fractions[1:]]
        bounds = np.cumsum([len(members) - sum(sizes), *sizes])[:-1]
        for part, chunk in zip(parts, np.split(members, bounds), strict=True):
            part.append(chunk)
    return [np.sort(np.concatenate(part)) for part in parts]


def make_dataset(
    name: str,
    images: Tensor,
    labels: Tensor,
    indices: Sequence[np.ndarray],
    classes: Sequence[str],
    skipped_files: int = 0,
    *,
    split_seed: int,
) -> ImageDataset:
    """Normalise ``images`` ([n, C, H, W] in [0, 1]) in place by training statistics; split."""
    for split_name, index in zip(("train", "valid", "test"), indices, strict=True):
        if len(index) == 0:
            raise ValueError(
                f"dataset {name!r} has {len(labels)} images, too few to give a non-empty "
                f"{split_name} split; add images (at least 3 per class)"
            )
    train = images[torch.as_tensor(indices[0])]
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    images.sub_(mean).div_(std)
    splits = [Split(images[torch.as_tensor(i)], labels[torch.as_tensor(i)]) for i in indices]
    return ImageDataset(
        name=name,
        train=splits[0],
        valid=splits[1],
        test=splits[2],
        num_classes=len(classes),
        in_channels=images.shape[1],
        resolution=images.shape[-1],
        classes=tuple(classes),
        skipped_files=skipped_files,
        split_seed=split_seed,
    )


def upscale(data: ImageDataset, resolution: int) -> ImageDataset:
    """``data`` with its images resized bilinearly to ``resolution`` if they are smaller.

    Images at or above ``resolution`` come back untouched (the same object): shrinking would
    throw information away, and no caller needs it.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    if data.resolution >= resolution:
        return data

    def grow(split: Split) -> Split:
        size = (resolution, resolution)
        images = F.interpolate(split.images, size=size, mode="bilinear", align_corners=False)
        return Split(images, split.labels)  # [n, C, resolution, resolution]

    return dataclasses.replace(
        data,
        train=grow(data.train),
        valid=grow(data.valid),
        test=grow(data.test),
        resolution=resolution,
    )
