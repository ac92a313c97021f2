"""The generation pipeline: prior -> reverse diffusion -> decode.

Guidance enters only as a different score function (``diffusionnag.guidance.guided``); this
module does not know whether the score is guided.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from diffusionnag.diffusion.model import ScoreModel
from diffusionnag.diffusion.sampling import ScoreFn, StepCallback, sample_ode, sample_pc
from diffusionnag.progress import phase
from diffusionnag.spaces import Arch

SAMPLER_NAMES = ("pc", "em", "ode")


@dataclass(frozen=True)
class SamplerConfig:
    """``pc``: reverse-diffusion predictor + Langevin corrector (the paper's sampler);
    ``em``: Euler-Maruyama predictor, no corrector; ``ode``: Heun on the probability-flow ODE."""

    name: str = "pc"
    steps: int = 100
    snr: float = 0.16
    corrector_steps: int = 1

    def __post_init__(self) -> None:
        if self.name not in SAMPLER_NAMES:
            raise ValueError(f"unknown sampler {self.name!r}; known: {', '.join(SAMPLER_NAMES)}")
        if self.steps < 1:
            raise ValueError(f"number of sampling steps must be >= 1, got {self.steps}")


DEFAULT_SAMPLER = SamplerConfig()


@dataclass
class Generation:
    """One entry per generated sample: the architecture, or ``None`` where the raw sample was
    not a valid architecture."""

    archs: list[Arch | None]
    seconds: float
    settings: dict = field(default_factory=dict)

    @property
    def valid(self) -> list[Arch]:
        return [a for a in self.archs if a is not None]


def reverse_diffusion(
    score: ScoreFn,
    model: ScoreModel,
    x: torch.Tensor,
    sampler: SamplerConfig,
    generator: torch.Generator,
    callback: StepCallback | None = None,
) -> torch.Tensor:
    """Run the configured sampler from prior sample ``x`` to ``t_min``; ``callback`` after
    every step."""
    times = model.sde.time_grid(sampler.steps, x.device)
    if sampler.name == "ode":
        return sample_ode(score, model.sde, x, times, callback=callback)
    predictor = "euler_maruyama" if sampler.name == "em" else "reverse_diffusion"
    corrector_steps = 0 if sampler.name == "em" else sampler.corrector_steps
    return sample_pc(
        score,
        model.sde,
        x,
        times,
        generator=generator,
        predictor=predictor,
        snr=sampler.snr,
        corrector_steps=corrector_steps,
        callback=callback,
    )


def generate(
    model: ScoreModel,
    num: int,
    sampler: SamplerConfig = DEFAULT_SAMPLER,
    *,
    seed: int = 0,
    score: ScoreFn | None = None,
    batch_size: int = 1000,
    progress: bool = False,
    on_step: Callable[[], None] | None = None,
) -> Generation:
    """Generate ``num`` samples; ``score`` overrides the model's own (e.g. a guided score).
    ``on_step`` is called after every sampler step of every batch (a progress bar's tick).

    >>> from diffusionnag import SamplerConfig, default_score_model, generate
    >>> result = generate(default_score_model(), 16, SamplerConfig("em", 10), seed=0)
    >>> len(result.archs), all(arch.space == "nb201" for arch in result.valid)
    (16, True)
    """
    if num < 1:
        raise ValueError(f"number of architectures to generate must be >= 1, got {num}")
    space, sde = model.space, model.sde
    device = next(model.network.parameters()).device
    score = score or model.score_fn()
    generator = torch.Generator(device).manual_seed(seed)
    archs: list[Arch | None] = []
    started = time.perf_counter()
    with torch.no_grad():
        batches = range(0, num, batch_size)
        with phase("generate", len(batches), enabled=progress, unit="batch") as bar:
            for start in batches:
                shape = (min(batch_size, num - start), space.num_nodes, len(space.vocab))
                x = sde.prior(shape, generator, device)
                tick = None if on_step is None else lambda *_: on_step()
                x = reverse_diffusion(score, model, x, sampler, generator, tick)
                archs.extend(space.decode(x))
                bar.update(1)
    settings = {"sampler": sampler.__dict__, "seed": seed, "num": num}
    return Generation(archs, time.perf_counter() - started, settings)
