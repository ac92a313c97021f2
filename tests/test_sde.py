"""VE and VP SDEs: marginals, coefficients, discretisation and prior agree with each other."""

from __future__ import annotations

import math

import pytest
import torch

from diffusionnag.diffusion.sde import SDE, SDES, VESDE, VPSDE, build_sde

CPU = torch.device("cpu")


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _variance(sde: SDE, t: torch.Tensor) -> torch.Tensor:
    return sde.std(t) ** 2


def test_ve_marginal_at_the_ends() -> None:
    sde = VESDE(sigma_min=0.05, sigma_max=5.0, t_min=1e-3)
    x0 = torch.randn(2, 8, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, std = sde.marginal(x0, _t(sde.t_min, 1.0))
    assert torch.equal(mean, x0)  # no drift: the mean stays at the data
    expected_low = 0.05 * 100.0**1e-3
    assert std.tolist() == pytest.approx([expected_low, 5.0], rel=1e-12)


def test_vp_marginal_at_the_ends() -> None:
    sde = VPSDE(beta_min=0.1, beta_max=20.0, t_min=1e-3)
    x0 = torch.ones(2, 3, dtype=torch.float64)
    mean, std = sde.marginal(x0, _t(sde.t_min, 1.0))
    integral = [0.1 * t + 0.5 * 19.9 * t**2 for t in (1e-3, 1.0)]  # int_0^t beta
    coef = [math.exp(-0.5 * b) for b in integral]
    assert mean[:, 0].tolist() == pytest.approx(coef, rel=1e-12)
    assert std.tolist() == pytest.approx([math.sqrt(1 - c**2) for c in coef], rel=1e-9)
    assert std[1].item() == pytest.approx(1.0, abs=1e-4)  # the prior is N(0, I)


@pytest.mark.parametrize(("sde", "scale"), [(VESDE(sigma_max=5.0), 5.0), (VPSDE(), 1.0)])
def test_prior_shape_scale_and_seed(sde: SDE, scale: float) -> None:
    first = sde.prior((500, 8, 7), torch.Generator().manual_seed(3), CPU)
    again = sde.prior((500, 8, 7), torch.Generator().manual_seed(3), CPU)
    assert first.shape == (500, 8, 7) and first.device == CPU
    assert torch.equal(first, again)
    assert first.mean().item() == pytest.approx(0.0, abs=0.02 * scale)
    assert first.std().item() == pytest.approx(scale, rel=0.02)


def test_ve_discretize_sums_to_the_marginal_variance() -> None:
    sde = VESDE(sigma_min=0.05, sigma_max=5.0)
    times = sde.time_grid(37).double()
    x = torch.zeros(37, 8, 7, dtype=torch.float64)
    drift, g = sde.discretize(x, times[:-1], times[1:])
    assert torch.equal(drift, torch.zeros_like(x))
    expected = _variance(sde, _t(1.0)) - _variance(sde, _t(sde.t_min))
    assert (g**2).sum().item() == pytest.approx(expected.item(), rel=1e-10)


def test_vp_discretize_accumulates_the_integrated_beta() -> None:
    # The Euler step's G^2 = beta(t) dt, and -log(mean coefficient^2) = int beta: they must agree.
    sde = VPSDE()
    times = sde.time_grid(2000).double()
    t, t_next = times[:-1], times[1:]
    x = torch.full((2000, 2), 0.5, dtype=torch.float64)
    drift, g = sde.discretize(x, t, t_next)
    expected_drift = (-0.5 * sde.beta(t) * 0.5 * (t - t_next))[:, None].expand(-1, 2)
    assert torch.allclose(drift, expected_drift, rtol=1e-12, atol=0)
    coef = sde.marginal(torch.ones(2, 1, dtype=torch.float64), _t(sde.t_min, 1.0))[0][:, 0]
    integral = 2 * (coef[0] / coef[1]).log()
    assert (g**2).sum().item() == pytest.approx(integral.item(), rel=1e-3)


@pytest.mark.parametrize("name", sorted(SDES))
def test_coefficients_match_the_marginal_variance(name: str) -> None:
    # Both drifts are linear, f = a(t) x, so a process started at a point has
    # d Var/dt = 2 a Var + g^2: plain g^2 for VE, beta (1 - Var) for VP.
    sde = build_sde(name)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)
    h = 1e-5
    slope = (_variance(sde, t + h) - _variance(sde, t - h)) / (2 * h)
    x = torch.ones(7, 1, dtype=torch.float64)
    drift, g = sde.coefficients(x, t)
    expected = 2 * drift[:, 0] * _variance(sde, t) + g**2
    assert slope.tolist() == pytest.approx(expected.tolist(), rel=1e-5)


@pytest.mark.parametrize("name", sorted(SDES))
def test_score_is_output_over_std(name: str) -> None:
    sde = build_sde(name)
    t = torch.tensor([0.01, 0.5, 1.0])
    output = torch.randn(3, 8, 7, generator=torch.Generator().manual_seed(1))
    expected = output / sde.std(t)[:, None, None]
    assert torch.allclose(sde.score(output, t), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", sorted(SDES))
def test_time_grid(name: str) -> None:
    sde = build_sde(name)
    grid = sde.time_grid(10)
    assert grid.shape == (11,)
    assert grid[0].item() == 1.0
    assert grid[-1].item() == pytest.approx(sde.t_min)
    assert bool((grid[1:] < grid[:-1]).all())
    assert sde.time_grid(1).tolist() == pytest.approx([1.0, sde.t_min])


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError, match="sampling steps must be >= 1, got 0"):
        VESDE().time_grid(0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(sigma_min=0.0, sigma_max=5.0)
    with pytest.raises(ValueError, match="unknown SDE 'subvp'; known: ve, vp"):
        build_sde("subvp")


def test_build_sde_passes_parameters() -> None:
    sde = build_sde("ve", sigma_min=0.01, sigma_max=2.0)
    assert isinstance(sde, VESDE)
    assert sde.std(_t(1.0)).item() == pytest.approx(2.0)
    assert isinstance(build_sde("vp", beta_max=10.0), VPSDE)
