"""An ensemble of noise-aware predictors: independently initialised members trained together.

The members' weights are stacked (``[M, ...]``) and run through one ``torch.func.vmap``: a member
trains exactly as it would alone (its own initialisation, batch order and noise; AdamW is per
parameter), but M small networks cost about one network's Python overhead, which is what
dominates at these sizes. Its spread is what DiffusionNAG-BO's acquisition reads as uncertainty.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from diffusionnag.device import resolve_device
from diffusionnag.diffusion.sde import SDE
from diffusionnag.predictors.objective import (
    ObjectivePredictor,
    PredictorConfig,
    init_network,
    noise_draws,
    training_data,
)
from diffusionnag.spaces import Arch, SearchSpace


@dataclass
class NoiseAwareEnsemble:
    """Predictors trained on the same targets, evaluated together. ``standardised`` is the
    members' mean, so an ensemble guides wherever a single predictor does."""

    space: SearchSpace
    sde: SDE
    template: ObjectivePredictor
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    mean: float
    scale: float

    @property
    def members(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def member_outputs(self, x: Tensor, t: Tensor) -> Tensor:
        """``[M, B]`` standardised predictions of every member at noisy ``x`` and time ``t``."""
        return _members_call(self.template, self.params, self.buffers, x, self.sde.std(t))

    def standardised(self, x: Tensor, t: Tensor) -> Tensor:
        return self.member_outputs(x, t).mean(0)

    @torch.no_grad()
    def member_predictions(self, archs: list[Arch]) -> np.ndarray:
        """``[M, B]`` clean predictions in the objective's own units."""
        device = next(iter(self.buffers.values())).device
        x = self.space.encode(archs).to(device)
        t = torch.full((len(archs),), self.sde.t_min, device=device)
        return self.member_outputs(x, t).cpu().numpy() * self.scale + self.mean

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Clean ensemble-mean predictions in the objective's own units."""
        return self.member_predictions(archs).mean(0)


def _members_call(
    template: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    x: Tensor,
    std: Tensor,
) -> Tensor:
    """``[M, B]``: every member on the same ``x [B, N, V]``, or on its own ``x [M, B, N, V]``."""
    shared = None if x.dim() == 3 else 0

    def one(p: dict[str, Tensor], b: dict[str, Tensor], xm: Tensor, sm: Tensor) -> Tensor:
        return functional_call(template, (p, b), (xm, sm))

    return vmap(one, in_dims=(0, 0, shared, shared))(params, buffers, x, std)


def train_noise_aware_ensemble(
    space: SearchSpace,
    sde: SDE,
    archs: list[Arch],
    values: np.ndarray | list[float],
    config: PredictorConfig = PredictorConfig(),
    *,
    members: int = 5,
    device: str = "auto",
    steps: int | None = None,
) -> NoiseAwareEnsemble:
    """``members`` predictors fitted as :func:`train_predictor` fits one, all in one pass.

    ``steps``: exactly that many minibatch steps instead of ``config.epochs`` passes, so the cost
    of a fit does not grow with the number of cells (the passes go on as long as the steps do).
    """
    if members < 1:
        raise ValueError(f"an ensemble needs at least one member, got {members}")
    if steps is not None and steps < 1:
        raise ValueError(f"an ensemble fit needs at least one step, got {steps}")
    dev = resolve_device(device)
    x0, y, mean, scale = training_data(space, archs, values, config, dev)
    seeds = torch.Generator().manual_seed(config.seed)
    networks = [init_network(space, config, seeds).to(dev) for _ in range(members)]
    params, buffers = stack_module_state(networks)
    template = networks[0]
    optimizer = torch.optim.AdamW(params.values(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator(dev).manual_seed(config.seed)
    n = len(archs)
    if steps is None:
        steps = config.epochs * math.ceil(n / config.batch_size)
    batches = _member_batches(members, n, config.batch_size, generator)
    for batch in itertools.islice(batches, steps):  # [M, b]
        t, noise = noise_draws(sde, (*batch.shape, *x0.shape[1:]), config, generator)
        noisy = sde.perturb(x0[batch].flatten(0, 1), t.flatten(), noise.flatten(0, 1))
        outputs = _members_call(
            template, params, buffers, noisy.view(noise.shape), sde.std(t)
        )  # [M, b]
        loss = (outputs - y[batch]).pow(2).mean(1).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    params = {name: value.detach() for name, value in params.items()}
    return NoiseAwareEnsemble(space, sde, template.eval(), params, buffers, mean, scale)


def _member_batches(
    members: int, n: int, batch_size: int, generator: torch.Generator
) -> Iterator[Tensor]:
    """Endless ``[M, b]`` index batches: pass after pass, each member in its own random order."""
    while True:
        orders = torch.rand(members, n, generator=generator, device=generator.device)
        yield from orders.argsort(1).split(batch_size, dim=1)
