"""Task encoders: one vector per task, invariant to the order of the sets that describe it.

Ways to know a task, registered by name in :data:`TASK_ENCODERS`:

- ``images`` (the paper's dataset encoder): a fixed number of images per class -> a frozen
  feature extractor (seeded random or pretrained by us: ``predictors.extractor``) -> set
  attention within each class, pooled to one vector per class -> set attention across classes,
  pooled to one task vector. Any number of classes.
- ``evaluations``: a task known only by a support set of (cell, accuracy) pairs measured on it,
  as a table is: set attention over (encoded cell, accuracy standardised within the set).
- ``none``: the task is not known; one learned vector for every task. A meta-predictor with it
  is the unconditioned ablation: the same network and meta-training, fitted to all tasks pooled.

The set layers are Set Transformer blocks (self-attention without positions, then attention
pooling with learned seeds), so permuting a set permutes nothing downstream. Both encoders map
an empty support set to a learned vector, the "unknown task" the meta-predictor falls back to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffusionnag.predictors.extractor import build_extractor

ENCODER_NAMES = ("evaluations", "images", "none")


class SetAttentionBlock(nn.Module):
    """``[S, L, D] -> [S, L, D]``: self-attention over each set's L elements, then an MLP.
    ``pad [S, L]`` marks padding elements (sets of different sizes batched together)."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class AttentionPool(nn.Module):
    """``[S, L, D] -> [S, D]``: one learned query attends over each set (Set Transformer PMA)."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        query = self.seed.expand(x.shape[0], -1, -1)  # [S, 1, D]
        pooled = self.attention(query, x, x, key_padding_mask=pad, need_weights=False)[0]
        return self.out(pooled.squeeze(1))  # [S, D]


class SetPooling(nn.Module):
    """Set attention blocks followed by attention pooling: a permutation-invariant set summary."""

    def __init__(self, dim: int, blocks: int = 1, heads: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SetAttentionBlock(dim, heads) for _ in range(blocks))
        self.pool = AttentionPool(dim, heads)

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, pad)
        return self.pool(x, pad)  # [S, L, D] -> [S, D]


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


def standardise_within(values: Tensor, valid: Tensor) -> Tensor:
    """``[S, L]`` z-scores within each set's valid entries (zeros for a single value): only a
    set's order and spacing carry over between tasks, never a task's absolute accuracy level."""
    count = valid.sum(1, keepdim=True).clamp_min(1)
    mean = (values * valid).sum(1, keepdim=True) / count
    var = ((values - mean).pow(2) * valid).sum(1, keepdim=True) / count
    z = (values - mean) / var.sqrt().clamp_min(1e-6)
    return torch.where(valid & (count > 1), z, torch.zeros_like(z))


class EvaluationsEncoder(nn.Module):
    """A support set of (cell, accuracy) pairs -> ``[D]`` task embedding."""

    def __init__(self, cell_encoder: nn.Module, cell_dim: int, dim: int) -> None:
        super().__init__()
        self.cell_encoder = cell_encoder
        self.element = nn.Sequential(
            nn.Linear(2 * cell_dim + 1, dim), nn.GELU(), nn.Linear(dim, dim)
        )
        self.pool = SetPooling(dim)
        self.empty = nn.Parameter(torch.zeros(dim))

    def forward(self, task: TaskData) -> Tensor:
        cells, values = task.support_cells, task.support_values
        if cells is None or values is None:
            raise ValueError("the evaluations encoder needs a support set of cells and accuracies")
        valid = torch.ones(1, len(cells), dtype=torch.bool, device=values.device)
        return self.batch(cells[None], values[None].float(), valid)[0]

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


class ImagesEncoder(nn.Module):
    """``[C, P, c, H, W]`` images per class -> ``[D]``: features of a frozen extractor
    (``predictors.extractor``), pooled within classes, then across classes."""

    def __init__(
        self,
        dim: int,
        features: int = 64,
        seed: int = 0,
        extractor: str = "random",
        sizes: bool = False,
    ) -> None:
        """``sizes``: add an embedding of (log training images per class, log classes), which
        attention pooling, a weighted mean, cannot see."""
        super().__init__()
        self.extractor = build_extractor(extractor, features, seed)
        self.project = nn.Linear(2 * features, dim)
        self.within_class = SetPooling(dim)
        self.across_classes = SetPooling(dim)
        self.sizes = (
            nn.Sequential(nn.Linear(2, dim), nn.ReLU(), nn.Linear(dim, dim)) if sizes else None
        )

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


class NoTaskEncoder(nn.Module):
    """Every task -> the same learned ``[D]`` vector (what it is given is ignored)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(dim))

    def forward(self, task: TaskData) -> Tensor:
        return self.embedding


TASK_ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "evaluations": EvaluationsEncoder,
    "images": ImagesEncoder,
    "none": NoTaskEncoder,
}


def check_encoder(name: str) -> str:
    if name not in TASK_ENCODERS:
        raise ValueError(f"unknown task encoder {name!r}; known: {', '.join(ENCODER_NAMES)}")
    return name
