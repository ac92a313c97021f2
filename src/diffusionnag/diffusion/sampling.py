"""Reverse-time samplers: plain functions of a score callable, an SDE, a start and a time grid.

Each sampler owns no state and has no notion of guidance: a guided score is just another
``ScoreFn`` (see ``diffusionnag.guidance``). All return the noise-free mean of their last step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from diffusionnag.diffusion.sde import SDE

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""``(x [B, N, V], t [B]) -> score [B, N, V]``."""

StepCallback = Callable[[int, Tensor], None]


def _noise(x: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def langevin_correct(
    score: ScoreFn, x: Tensor, t: Tensor, *, snr: float, steps: int, generator: torch.Generator
) -> Tensor:
    """Annealed Langevin steps at fixed ``t``, step size set by the target signal-to-noise ratio."""
    for _ in range(steps):
        grad = score(x, t)
        z = _noise(x, generator)
        grad_norm = grad.flatten(1).norm(dim=-1).clamp_min(1e-12)
        noise_norm = z.flatten(1).norm(dim=-1)
        step = 2 * (snr * noise_norm / grad_norm) ** 2  # [B]
        x = x + _per_sample(step, x) * grad + _per_sample((2 * step).sqrt(), x) * z
    return x


def sample_pc(
    score: ScoreFn,
    sde: SDE,
    x: Tensor,
    times: Tensor,
    *,
    generator: torch.Generator,
    predictor: str = "reverse_diffusion",
    snr: float = 0.16,
    corrector_steps: int = 1,
    callback: StepCallback | None = None,
) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021) as used by DiffusionNAG.

    ``predictor`` is ``reverse_diffusion`` (the discretised reverse SDE) or ``euler_maruyama``;
    the corrector is Langevin dynamics, ``corrector_steps`` per time step (0 disables it).
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"unknown predictor {predictor!r}; known: {', '.join(PREDICTORS)}")
    step_fn = PREDICTORS[predictor]
    mean = x
    for i in range(len(times) - 1):
        t = times[i].expand(x.shape[0])
        t_next = times[i + 1].expand(x.shape[0])
        x = langevin_correct(score, x, t, snr=snr, steps=corrector_steps, generator=generator)
        x, mean = step_fn(score, sde, x, t, t_next, generator)
        if callback is not None:
            callback(i, mean)
    return mean


def reverse_diffusion_step(
    score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, t_next: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One ancestral step of the discretised reverse SDE; returns the sample and its mean."""
    drift, diffusion = sde.discretize(x, t, t_next)
    g = _per_sample(diffusion, x)
    mean = x - drift + g**2 * score(x, t)
    return mean + g * _noise(x, generator), mean


def euler_maruyama_step(
    score: ScoreFn, sde: SDE, x: Tensor, t: Tensor, t_next: Tensor, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """One Euler-Maruyama step of the reverse-time SDE."""
    dt = _per_sample(t_next - t, x)  # negative
    drift, diffusion = sde.coefficients(x, t)
    g = _per_sample(diffusion, x)
    mean = x + (drift - g**2 * score(x, t)) * dt
    return mean + g * (-dt).sqrt() * _noise(x, generator), mean


PREDICTORS = {"reverse_diffusion": reverse_diffusion_step, "euler_maruyama": euler_maruyama_step}


def sample_ode(
    score: ScoreFn,
    sde: SDE,
    x: Tensor,
    times: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Heun's method on the probability-flow ODE: deterministic given the prior sample.

    The last interval uses a single Euler step, as a second evaluation at ``t_min`` adds nothing.
    """

    def velocity(state: Tensor, t: Tensor) -> Tensor:
        drift, diffusion = sde.coefficients(state, t)
        return drift - 0.5 * _per_sample(diffusion, state) ** 2 * score(state, t)

    for i in range(len(times) - 1):
        t = times[i].expand(x.shape[0])
        t_next = times[i + 1].expand(x.shape[0])
        dt = _per_sample(t_next - t, x)
        slope = velocity(x, t)
        proposal = x + slope * dt
        if i < len(times) - 2:
            proposal = x + 0.5 * (slope + velocity(proposal, t_next)) * dt
        x = proposal
        if callback is not None:
            callback(i, x)
    return x


SAMPLERS = {"pc": sample_pc, "ode": sample_ode}
