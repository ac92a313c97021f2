"""Acquisition functions over a predictive mean and standard deviation (maximisation).

Plain functions of tensors so any model-based strategy can use them: the ensemble strategies
(BANANAS, DiffusionNAG-BO) get ``mean, std`` from :func:`mean_std` of their ensemble's
``[M, B]`` predictions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ACQUISITIONS = ("its", "ei", "ucb")
_MIN_STD = 1e-9


def mean_std(predictions: Tensor) -> tuple[Tensor, Tensor]:
    """``[M, B]`` ensemble predictions -> ``[B]`` mean and ``[B]`` (population) std."""
    if predictions.dim() != 2:
        raise ValueError(
            f"predictions must be [members, batch], got shape {tuple(predictions.shape)}"
        )
    return predictions.mean(0), predictions.std(0, unbiased=False)


def expected_improvement(mean: Tensor, std: Tensor, best: float, xi: float = 0.0) -> Tensor:
    """``E[max(f - best - xi, 0)]`` for ``f ~ N(mean, std^2)``; ``[B]``."""
    gap = mean - best - xi
    std = std.clamp_min(_MIN_STD)
    z = gap / std
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return gap * cdf + std * pdf


def upper_confidence_bound(mean: Tensor, std: Tensor, kappa: float = 2.0) -> Tensor:
    """``mean + kappa * std``; ``[B]``."""
    return mean + kappa * std


def independent_thompson(mean: Tensor, std: Tensor, generator: torch.Generator) -> Tensor:
    """One independent draw from ``N(mean, std^2)`` per candidate (BANANAS' ITS); ``[B]``."""
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
    return mean + std * noise


def acquisition_scores(
    name: str,
    mean: Tensor,
    std: Tensor,
    *,
    best: float,
    generator: torch.Generator,
    kappa: float = 2.0,
) -> Tensor:
    """Scores of acquisition ``name`` (one of :data:`ACQUISITIONS`); higher is better."""
    if name == "its":
        return independent_thompson(mean, std, generator)
    if name == "ei":
        return expected_improvement(mean, std, best)
    if name == "ucb":
        return upper_confidence_bound(mean, std, kappa)
    raise ValueError(f"unknown acquisition {name!r}; choose one of {', '.join(ACQUISITIONS)}")


def top_indices(scores: Tensor, n: int) -> list[int]:
    """Indices of the ``n`` highest scores, best first (ties: lower index first)."""
    order = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return order[:n]
