"""Denoising score matching, written against the SDE interface only."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffusionnag.diffusion.sde import SDE

NoisePredictor = Callable[[Tensor, Tensor], Tensor]
"""``(x_t [B, N, V], std [B]) -> -noise estimate [B, N, V]``, e.g. a ``ScoreNetwork``."""


def dsm_loss(network: NoisePredictor, sde: SDE, x0: Tensor, generator: torch.Generator) -> Tensor:
    """Mean over the batch of ``|| std * score + z ||^2`` (the lambda = std^2 weighting).

    With the network predicting ``-z`` and the score being output / std, this is the
    noise-prediction loss, well scaled at every noise level.
    """
    batch = x0.shape[0]
    t = (
        torch.rand(batch, generator=generator, device=generator.device) * (1 - sde.t_min)
        + sde.t_min
    )
    noise = torch.randn(x0.shape, generator=generator, device=generator.device)
    t, noise = t.to(x0.device), noise.to(x0.device)
    x_t = sde.perturb(x0, t, noise)
    output = network(x_t, sde.std(t))
    return (output + noise).pow(2).flatten(1).sum(-1).mean()
