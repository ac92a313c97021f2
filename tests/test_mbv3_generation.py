"""MobileNetV3 generation end to end with tiny models: the generic score model, sampler and
guidance produce once-for-all subnets, and a FLOPs budget moves them under the limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.diffusion.model import (
    ScoreModel,
    ScoreTrainConfig,
    build_score_model,
    default_train_config,
    train_score_model,
)
from diffusionnag.diffusion.score_net import ScoreNetConfig, ScoreNetwork, row_log_likelihoods
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import Budget, combined_log_prob, guided, sigma_scaled
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import cost_pairs
from diffusionnag.predictors.objective import PredictorConfig, TrainedPredictor, train_predictor
from diffusionnag.spaces import Arch
from diffusionnag.spaces.mbv3 import MBV3Space

SPACE = MBV3Space()
# The recommended mbv3 network options at toy size: about two thirds of the samples are valid.
SCORE_CONFIG = ScoreTrainConfig(
    space="mbv3",
    steps=150,
    batch_size=64,
    lr=3e-2,
    train_size=1000,
    network=ScoreNetConfig(hidden=16, layers=1, heads=2, head="categorical", messages=True),
    checkpoint_every=150,
)
SAMPLER = SamplerConfig(name="em", steps=20)
TINY = PredictorConfig(hidden=16, layers=1, epochs=20)
NUM = 200


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ScoreModel:
    out = tmp_path_factory.mktemp("mbv3") / "score"
    return train_score_model(SCORE_CONFIG, out, device="cpu", progress=False)


@pytest.fixture(scope="module")
def unguided(model: ScoreModel) -> list[Arch | None]:
    return generate(model, NUM, SAMPLER, seed=1).archs


@pytest.fixture(scope="module")
def flops_predictor(model: ScoreModel) -> TrainedPredictor:
    archs, flops = cost_pairs(SPACE, "flops", NUM, np.random.default_rng(1))
    return train_predictor(SPACE, model.sde, archs, flops, TINY, device="cpu")


def flops(archs: list[Arch]) -> np.ndarray:
    return np.array([arch_costs(arch)["flops"] for arch in archs])


def test_generated_cells_are_mbv3_subnets_or_none(unguided: list[Arch | None]) -> None:
    assert len(unguided) == NUM
    valid = [arch for arch in unguided if arch is not None]
    assert len(valid) >= NUM // 2
    for arch in valid:
        assert arch.space == "mbv3"
        assert SPACE.validate(arch) == arch  # five stages, each keeping its first 2 to 4 layers
    assert len(set(valid)) == len(valid)  # 2e19 cells: repeats would mean memorisation


def test_valid_cells_round_trip_through_encoding_and_strings(
    unguided: list[Arch | None],
) -> None:
    valid = [arch for arch in unguided if arch is not None]
    assert SPACE.decode(SPACE.encode(valid)) == valid
    assert [SPACE.from_string(SPACE.to_string(arch)) for arch in valid] == valid


def test_flops_budget_raises_the_share_within_it(
    model: ScoreModel, unguided: list[Arch | None], flops_predictor: TrainedPredictor
) -> None:
    uniform = flops(SPACE.sample(NUM, np.random.default_rng(2)))
    limit = float(np.quantile(uniform, 0.25))
    log_p = combined_log_prob([Budget(flops_predictor, limit, "flops")])
    score = guided(model.score_fn(), log_p, sigma_scaled(2.0, model.sde.std))
    guided_cells = generate(model, NUM, SAMPLER, seed=1, score=score).valid
    plain = [arch for arch in unguided if arch is not None]
    assert len(guided_cells) >= NUM // 3
    plain_share = (flops(plain) <= limit).mean()
    guided_share = (flops(guided_cells) <= limit).mean()
    assert plain_share < 0.45  # about a quarter, as for uniform cells
    assert guided_share > plain_share + 0.25


def test_categorical_head_weighs_rows_by_their_likelihood() -> None:
    x = torch.tensor([[[0.9, 0.2, 0.0], [0.1, 0.0, -0.1]]])  # [1, 2, 3]
    std = torch.tensor([0.5])
    expected = torch.tensor([[[0.0, 1.6, -1.2, -2.0], [0.0, -1.6, -2.0, -2.4]]])
    torch.testing.assert_close(row_log_likelihoods(x, std), expected)
    config = ScoreNetConfig(hidden=8, layers=1, heads=2, head="categorical", messages=True)
    network = ScoreNetwork(SPACE, config)
    with torch.no_grad():
        network.out.weight.zero_()
        network.out.bias.zero_()  # no prior from context: the likelihood alone decides
        x = SPACE.encode(SPACE.sample(3, np.random.default_rng(0))) * 0.8 + 0.05
        std = torch.full((3,), 0.3)
        denoised = x + std[:, None, None] * network(x, std)
    weights = row_log_likelihoods(x, std).softmax(-1)[..., 1:]
    torch.testing.assert_close(denoised, weights)


def test_score_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown score head 'softmax'; known: noise, categorical"):
        ScoreNetConfig(head="softmax")
    vp = ScoreTrainConfig(space="mbv3", sde="vp", sde_params={}, network=SCORE_CONFIG.network)
    with pytest.raises(ValueError, match="categorical score head needs an SDE without drift"):
        build_score_model(vp)
    with pytest.raises(ValueError, match="unknown search space 'mbv4'; known: mbv3, nb201"):
        default_train_config("mbv4")
    assert default_train_config("nb201") == ScoreTrainConfig()
    assert default_train_config("mbv3").network.head == "categorical"
