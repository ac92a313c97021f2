"""The generation pipeline: decoded samples are architectures of the space, or marked invalid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.diffusion.model import (
    ScoreModel,
    ScoreTrainConfig,
    build_score_model,
    train_score_model,
)
from diffusionnag.diffusion.score_net import ScoreNetConfig
from diffusionnag.diffusion.sde import SDE
from diffusionnag.generate import SAMPLER_NAMES, SamplerConfig, generate
from diffusionnag.spaces import Arch

TINY = ScoreTrainConfig(
    network=ScoreNetConfig(hidden=16, layers=1, heads=2), steps=20, batch_size=32, lr=5e-2
)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ScoreModel:
    out = tmp_path_factory.mktemp("generate") / "run"
    return train_score_model(TINY, out, device="cpu", progress=False)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_samples_decode_to_the_space_or_none(model: ScoreModel, sampler: str) -> None:
    config = SamplerConfig(sampler, steps=5)
    result = generate(model, 24, config, seed=3, batch_size=10)
    again = generate(model, 24, config, seed=3, batch_size=10)
    assert len(result.archs) == 24 and result.archs == again.archs
    assert result.valid == [a for a in result.archs if a is not None]
    for arch in result.valid:
        assert arch.space == "nb201" and len(arch.ops) == 6
        assert model.space.from_string(model.space.to_string(arch)) == arch
    assert result.settings == {"sampler": config.__dict__, "seed": 3, "num": 24}
    assert result.seconds > 0


def mixture_score(sde: SDE, data: torch.Tensor):
    """Exact score of ``p_t`` for data that is uniform over the rows of ``data`` [M, N, V]."""
    flat = data.flatten(1)  # [M, D]

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        coef = sde.marginal(torch.ones(t.shape[0], 1), t)[0][:, 0]  # [B]
        variance = sde.std(t)[:, None] ** 2  # [B, 1]
        offset = x.flatten(1)[:, None, :] - coef[:, None, None] * flat  # [B, M, D]
        weights = torch.softmax(-offset.pow(2).sum(-1) / (2 * variance), dim=-1)  # [B, M]
        return (-(weights[..., None] * offset).sum(1) / variance).reshape(x.shape)

    return score


def test_exact_score_generates_only_training_cells() -> None:
    # With the true score of a small data set, every sample must decode into that set: this
    # checks prior -> sampler -> decode end to end, independent of how well a network learns.
    model = build_score_model(TINY)
    archs = model.space.sample(40, np.random.default_rng(0))
    score = mixture_score(model.sde, model.space.encode(archs))
    result = generate(model, 64, SamplerConfig("pc", steps=30), seed=0, score=score)
    assert all(isinstance(a, Arch) for a in result.archs)
    assert set(result.valid) <= set(archs)
    assert len(set(result.valid)) > 15  # spread over the data, not one mode


def test_generate_rejects_nonsense(model: ScoreModel) -> None:
    with pytest.raises(ValueError, match="must be >= 1, got 0"):
        generate(model, 0)
    with pytest.raises(ValueError, match="unknown sampler 'ddim'; known: pc, em, ode"):
        SamplerConfig("ddim")
    with pytest.raises(ValueError, match="sampling steps must be >= 1"):
        SamplerConfig(steps=0)
