"""Task families: the same classes seen through a change of image statistics.

A transformation changes what a network must be invariant to, and so can change which
architecture wins; the meta-dataset draws tasks from several families so that the task encoder
has something to condition on besides class identity. Random parts (rotation angles, noise) are
drawn from the task's seed and the split, so a task spec gives the same images in every process.

- ``invert``: the negative image (``-x`` on standardised images).
- ``rotate``: each image turned by its own angle, uniform in [-180, 180) degrees; pixels
  turned in from outside repeat the border (the background on these datasets).
- ``blur``: a Gaussian blur of standard deviation 1/28 of the image side (1 px on
  Fashion-MNIST's 28 px).
- ``noise``: Gaussian noise of standard deviation 0.5 (half the standardised images' own)
  added to every pixel once, at the task's resolution.

Rotation and blur act at the source's resolution, before a task resizes its images, where they
have pixels to act on. Lower contrast is not a family: a task standardises its images by its own
training statistics, which undoes any scaling of contrast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ImageMap = Callable[[Tensor, torch.Generator], Tensor]
NOISE_STD = 0.5
BLUR_SIGMA_PER_SIDE = 1 / 28


def _identity(images: Tensor, _generator: torch.Generator) -> Tensor:
    return images


def _invert(images: Tensor, _generator: torch.Generator) -> Tensor:
    return -images


def _rotate(images: Tensor, generator: torch.Generator) -> Tensor:
    angles = (torch.rand(len(images), generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    cos, sin = angles.cos(), angles.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(images: Tensor, _generator: torch.Generator) -> Tensor:
    sigma = BLUR_SIGMA_PER_SIDE * images.shape[-1]
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    padded = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    images = F.conv2d(padded, rows, groups=channels)
    padded = F.pad(images, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(padded, rows.transpose(2, 3), groups=channels)


def _noise(images: Tensor, generator: torch.Generator) -> Tensor:
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return images + NOISE_STD * noise


@dataclass(frozen=True)
class TaskTransform:
    """What a family does to a split's images at the source's resolution and then at the
    task's (after resizing)."""

    at_source: ImageMap = _identity
    at_task: ImageMap = _identity


TRANSFORMS: dict[str, TaskTransform] = {
    "none": TaskTransform(),
    "invert": TaskTransform(at_source=_invert),
    "rotate": TaskTransform(at_source=_rotate),
    "blur": TaskTransform(at_source=_blur),
    "noise": TaskTransform(at_task=_noise),
}


def split_generator(task_seed: int, split: int, stage: int) -> torch.Generator:
    """Independent random streams per task, split (train, valid, test) and stage."""
    state = np.random.SeedSequence([task_seed, split, stage]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state) % 2**63)
