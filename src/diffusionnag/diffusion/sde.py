"""Forward SDEs over encoded architectures: the only home of their math.

Every other module talks to an SDE through ``marginal``, ``coefficients``, ``discretize``,
``prior``, ``score`` and ``time_grid``, so samplers, losses and guidance work unchanged for VE and
VP processes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape ``[B]`` to broadcast against ``like`` (``[B, ...]``)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class SDE(ABC):
    """``dx = f(x, t) dt + g(t) dw`` for t in ``[t_min, 1]``."""

    t_min: float

    @abstractmethod
    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean ``[B, ...]`` and std ``[B]`` of ``p_t(x | x0)``."""

    @abstractmethod
    def coefficients(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Drift ``f(x, t)`` ``[B, ...]`` and diffusion ``g(t)`` ``[B]``."""

    @abstractmethod
    def prior(
        self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
    ) -> Tensor:
        """A sample of ``p_1``."""

    def std(self, t: Tensor) -> Tensor:
        """Marginal std at ``t`` (independent of x0 for both processes here)."""
        return self.marginal(torch.zeros(t.shape[0], 1, device=t.device), t)[1]

    def score(self, output: Tensor, t: Tensor) -> Tensor:
        """Network output -> score: the network predicts ``-noise``, so score = output / std."""
        return output / _per_sample(self.std(t), output)

    def discretize(self, x: Tensor, t: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor]:
        """Forward step ``t_next -> t`` as ``x_t = x + f + G z``; returns ``f`` and ``G`` ``[B]``.

        Euler-Maruyama by default; processes with an exact discretisation override it.
        """
        dt = t - t_next
        drift, diffusion = self.coefficients(x, t)
        return drift * _per_sample(dt, x), diffusion * dt.sqrt()

    def perturb(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        mean, std = self.marginal(x0, t)
        return mean + _per_sample(std, x0) * noise

    def time_grid(self, steps: int, device: torch.device | None = None) -> Tensor:
        """``steps + 1`` times from 1 down to ``t_min``: ``steps`` reverse-time intervals."""
        if steps < 1:
            raise ValueError(f"number of sampling steps must be >= 1, got {steps}")
        return torch.linspace(1.0, self.t_min, steps + 1, device=device)


@dataclass(frozen=True)
class VESDE(SDE):
    """Variance exploding: ``sigma(t) = sigma_min (sigma_max / sigma_min) ** t``, no drift."""

    sigma_min: float = 0.05
    sigma_max: float = 5.0
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"need 0 < sigma_min < sigma_max, got {self.sigma_min} and {self.sigma_max}"
            )
        if not 0 < self.t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {self.t_min}")

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return x0, self.sigma(t)

    def coefficients(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        log_ratio = math.log(self.sigma_max / self.sigma_min)
        return torch.zeros_like(x), self.sigma(t) * math.sqrt(2 * log_ratio)

    def prior(
        self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
    ) -> Tensor:
        noise = torch.randn(shape, generator=generator, device=generator.device)
        return (noise * self.sigma_max).to(device)

    def discretize(self, x: Tensor, t: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor]:
        variance = (self.sigma(t) ** 2 - self.sigma(t_next) ** 2).clamp_min(0)
        return torch.zeros_like(x), variance.sqrt()


@dataclass(frozen=True)
class VPSDE(SDE):
    """Variance preserving with a linear ``beta(t)`` (DDPM in continuous time)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError(
                f"need 0 < beta_min < beta_max, got {self.beta_min} and {self.beta_max}"
            )
        if not 0 < self.t_min < 1:
            raise ValueError(f"t_min must be in (0, 1), got {self.t_min}")

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        log_coef = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        return _per_sample(log_coef.exp(), x0) * x0, (1 - (2 * log_coef).exp()).sqrt()

    def coefficients(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        beta = self.beta(t)
        return -0.5 * _per_sample(beta, x) * x, beta.sqrt()

    def prior(
        self, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
    ) -> Tensor:
        return torch.randn(shape, generator=generator, device=generator.device).to(device)


SDES: dict[str, type[SDE]] = {"ve": VESDE, "vp": VPSDE}


def build_sde(name: str, **params: float) -> SDE:
    """An SDE by registered name (``ve`` or ``vp``) with its parameters."""
    if name not in SDES:
        raise ValueError(f"unknown SDE {name!r}; known: {', '.join(SDES)}")
    known = {f.name for f in fields(SDES[name])}  # type: ignore[arg-type]
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"{name} SDE has no parameter {', '.join(unknown)}; its parameters: "
            f"{', '.join(sorted(known))}"
        )
    return SDES[name](**params)


def sde_to_dict(sde: SDE) -> dict:
    """``{"name": ..., "params": {...}}``, the inverse of :func:`sde_from_dict`."""
    name = next(key for key, cls in SDES.items() if type(sde) is cls)
    return {"name": name, "params": asdict(sde)}  # type: ignore[call-overload]


def sde_from_dict(data: dict) -> SDE:
    return build_sde(data["name"], **data["params"])
