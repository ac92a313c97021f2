"""Samplers against the exact score of Gaussian data, where the right answer is known."""

from __future__ import annotations

import pytest
import torch

from diffusionnag.diffusion.sampling import (
    PREDICTORS,
    ScoreFn,
    langevin_correct,
    sample_ode,
    sample_pc,
)
from diffusionnag.diffusion.sde import SDE, VESDE, VPSDE

DATA_MEAN, DATA_STD = 0.7, 0.1
SHAPE = (500, 8, 7)
SAMPLERS = ("pc", "em", "ode")


def gaussian_score(sde: SDE) -> ScoreFn:
    """Exact score of ``p_t`` when every coordinate of the data is N(DATA_MEAN, DATA_STD^2)."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        coef = sde.marginal(torch.ones(t.shape[0], 1), t)[0][:, 0]  # [B]
        variance = coef**2 * DATA_STD**2 + sde.std(t) ** 2  # [B]
        return -(x - (coef * DATA_MEAN)[:, None, None]) / variance[:, None, None]

    return score


def run(name: str, sde: SDE, times: torch.Tensor, seed: int, **kwargs) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = sde.prior(SHAPE, generator, torch.device("cpu"))
    score = gaussian_score(sde)
    if name == "ode":
        return sample_ode(score, sde, x, times, **kwargs)
    predictor = "euler_maruyama" if name == "em" else "reverse_diffusion"
    corrector_steps = 1 if name == "pc" else 0
    return sample_pc(
        score,
        sde,
        x,
        times,
        generator=generator,
        predictor=predictor,
        corrector_steps=corrector_steps,
        **kwargs,
    )


@pytest.mark.parametrize("sde", [VESDE(), VPSDE()], ids=["ve", "vp"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_three_point_grid_runs_and_repeats_by_seed(name: str, sde: SDE) -> None:
    times = torch.tensor([1.0, 0.5, sde.t_min])
    steps: list[int] = []
    first = run(name, sde, times, seed=0, callback=lambda i, x: steps.append(i))
    again = run(name, sde, times, seed=0)
    other = run(name, sde, times, seed=1)
    assert first.shape == SHAPE and bool(first.isfinite().all())
    assert steps == [0, 1]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_reverse_diffusion_step_is_exact_enough_for_three_points() -> None:
    # Its VE step uses the exact variance sigma(t)^2 - sigma(t_next)^2, so even two steps land
    # on the data: the prior's spread of 5 shrinks to a few times the data's.
    out = run("pc", VESDE(), torch.tensor([1.0, 0.5, 1e-3]), seed=0)
    assert out.mean().item() == pytest.approx(DATA_MEAN, abs=0.01)
    assert out.std().item() < 3 * DATA_STD


@pytest.mark.parametrize("sde", [VESDE(), VPSDE()], ids=["ve", "vp"])
@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_move_the_prior_onto_the_data(name: str, sde: SDE) -> None:
    prior = sde.prior(SHAPE, torch.Generator().manual_seed(0), torch.device("cpu"))
    out = run(name, sde, sde.time_grid(20), seed=0)
    assert abs(out.mean().item() - DATA_MEAN) < 0.03 < abs(prior.mean().item() - DATA_MEAN)
    assert out.std().item() < 1.5 * DATA_STD < 0.2 * prior.std().item()


def test_ode_follows_the_exact_probability_flow() -> None:
    # For Gaussian data the flow is affine: x_t - m stays proportional to the marginal std.
    sde = VESDE()
    x1 = sde.prior(SHAPE, torch.Generator().manual_seed(0), torch.device("cpu"))
    out = sample_ode(gaussian_score(sde), sde, x1, sde.time_grid(50))
    std = (DATA_STD**2 + sde.std(torch.tensor([sde.t_min, 1.0])) ** 2).sqrt()
    expected = DATA_MEAN + (x1 - DATA_MEAN) * std[0] / std[1]
    assert torch.allclose(out, expected, atol=0.01)


def test_langevin_corrector_keeps_the_marginal() -> None:
    sde, t = VESDE(), torch.full((SHAPE[0],), 0.5)
    generator = torch.Generator().manual_seed(0)
    std = (DATA_STD**2 + sde.std(t[:1]) ** 2).sqrt().item()
    x = DATA_MEAN + std * torch.randn(SHAPE, generator=generator)
    out = langevin_correct(gaussian_score(sde), x, t, snr=0.16, steps=20, generator=generator)
    assert not torch.equal(out, x)
    assert out.mean().item() == pytest.approx(DATA_MEAN, abs=0.01)
    # Step sizes set per sample from the noise and score norms inflate the spread slightly
    # (about 4% here); a wrong step or noise scale would be off by tens of percent.
    assert out.std().item() == pytest.approx(std, rel=0.06)


def test_unknown_predictor_lists_the_known_ones() -> None:
    sde = VESDE()
    x = torch.zeros(1, 8, 7)
    known = ", ".join(PREDICTORS)
    with pytest.raises(ValueError, match=f"unknown predictor 'heun'; known: {known}"):
        sample_pc(
            gaussian_score(sde),
            sde,
            x,
            sde.time_grid(2),
            generator=torch.Generator(),
            predictor="heun",
        )
