"""Guidance: the exact math of the guided score and its terms, and that guided generation with a
tiny score model really moves cells toward the objective and inside the budget."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from diffusionnag.diffusion.model import ScoreModel, ScoreTrainConfig, train_score_model
from diffusionnag.diffusion.score_net import ScoreNetConfig
from diffusionnag.diffusion.sde import VESDE
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.guidance import (
    Budget,
    Objective,
    combined_log_prob,
    generate_ranked,
    guided,
    sigma_scaled,
)
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import cost_pairs
from diffusionnag.predictors.objective import PredictorConfig, TrainedPredictor, train_predictor
from diffusionnag.spaces import Arch
from diffusionnag.spaces.nb201 import OPERATIONS, NB201Space

SPACE = NB201Space()
CONV3 = OPERATIONS.index("nor_conv_3x3")
CONV3_CHANNEL = SPACE.vocab.index("nor_conv_3x3")
# The smallest score model whose samples are mostly valid cells: the trainer's 200-step warm-up
# leaves shorter runs with almost no valid samples.
SCORE_CONFIG = ScoreTrainConfig(
    steps=300,
    batch_size=64,
    lr=3e-2,
    network=ScoreNetConfig(hidden=32, layers=1, heads=2),
    checkpoint_every=300,
)
SAMPLER = SamplerConfig(name="em", steps=20)
# No target floor: the toy objective needs its zeros and the cost model its cheap cells.
TINY = PredictorConfig(hidden=16, layers=1, epochs=20, floor_quantile=0.0)
NUM = 200


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny networks run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ScoreModel:
    out = tmp_path_factory.mktemp("guidance") / "score"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the score network is initialised from the global RNG
        return train_score_model(SCORE_CONFIG, out, device="cpu", progress=False)


def conv3_count(archs: list[Arch]) -> np.ndarray:
    return np.array([arch.ops.count(CONV3) for arch in archs], dtype=float)


@pytest.fixture(scope="module")
def conv3_predictor(model: ScoreModel) -> TrainedPredictor:
    archs = SPACE.sample(NUM, np.random.default_rng(0))
    return train_predictor(SPACE, model.sde, archs, conv3_count(archs), TINY, device="cpu")


@pytest.fixture(scope="module")
def params_predictor(model: ScoreModel) -> TrainedPredictor:
    archs, params = cost_pairs(SPACE, "params", NUM, np.random.default_rng(1))
    return train_predictor(SPACE, model.sde, archs, params, TINY, device="cpu")


# ---- exact math -------------------------------------------------------------------------------


def _inputs() -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, SPACE.num_nodes, len(SPACE.vocab), generator=generator)
    w = torch.randn(x.shape[1:], generator=generator)
    return x, torch.tensor([0.1, 0.4, 0.7, 1.0]), w


def test_guided_adds_exactly_scale_times_the_gradient() -> None:
    x, t, w = _inputs()
    original = x.clone()

    def score(x: Tensor, t: Tensor) -> Tensor:
        return -x * t[:, None, None]

    def log_p(x: Tensor, t: Tensor) -> Tensor:
        return (x * w).sum((1, 2))  # gradient: w

    with torch.no_grad():  # as inside generate(): guidance must take its gradient anyway
        constant = guided(score, log_p, 3.0)(x, t)
        scheduled = guided(score, log_p, lambda t: 2 * t)(x, t)
    assert torch.equal(constant, score(x, t) + 3.0 * w)
    assert torch.equal(scheduled, score(x, t) + (2 * t)[:, None, None] * w)
    assert torch.equal(x, original) and not constant.requires_grad


def test_guided_gradient_is_per_sample() -> None:
    x, t, w = _inputs()

    def log_p(x: Tensor, t: Tensor) -> Tensor:
        return -0.5 * (x - w).pow(2).sum((1, 2))  # gradient: w - x

    result = guided(lambda x, t: torch.zeros_like(x), log_p, 0.5)(x, t)
    torch.testing.assert_close(result, 0.5 * (w - x))


def test_sigma_scaled_schedule() -> None:
    sde = VESDE()
    t = torch.tensor([sde.t_min, 0.5, 1.0])
    torch.testing.assert_close(sigma_scaled(2.0, sde.std)(t), 2.0 / sde.std(t))


class Conv3Counter(nn.Module):
    """A hand-made predictor: the number of operation nodes holding a 3x3 convolution."""

    def forward(self, x: Tensor, std: Tensor) -> Tensor:
        return x[:, 1:-1, CONV3_CHANNEL].sum(1)  # [B]


def _exact(mean: float = 0.0, scale: float = 1.0) -> TrainedPredictor:
    return TrainedPredictor(SPACE, VESDE(), Conv3Counter(), mean, scale, {})  # type: ignore[arg-type]


def test_objective_log_probs() -> None:
    x = SPACE.encode([Arch("nb201", (3, 3, 0, 1, 2, 4)), Arch("nb201", (0,) * 6)])  # 2 and 0
    t = torch.full((2,), 0.5)
    exact = _exact(mean=1.0, scale=2.0)
    torch.testing.assert_close(Objective(exact).log_prob(x, t), torch.tensor([2.0, 0.0]))
    minimize = Objective(exact, "minimize", weight=3.0)
    torch.testing.assert_close(minimize.log_prob(x, t), torch.tensor([-6.0, 0.0]))
    # target 5 in the objective's units is (5 - 1) / 2 = 2 standardised: the first cell hits it
    on_target = Objective(exact, target=5.0)
    torch.testing.assert_close(on_target.log_prob(x, t), torch.tensor([0.0, -2.0]))


def test_budget_log_prob_and_exact_check() -> None:
    x = SPACE.encode([Arch("nb201", (3, 3, 0, 1, 2, 4)), Arch("nb201", (0,) * 6)])
    t = torch.full((2,), 0.5)
    budget = Budget(_exact(), limit=1.0, slack=0.5, weight=2.0)
    margin = (1.0 - np.array([2.0, 0.0])) / 0.5
    expected = 2.0 * -np.log1p(np.exp(-margin))  # log sigmoid
    np.testing.assert_allclose(budget.log_prob(x, t).numpy(), expected, rtol=1e-5)
    objective = Objective(_exact())
    both = combined_log_prob([objective, budget])(x, t)
    torch.testing.assert_close(both, objective.log_prob(x, t) + budget.log_prob(x, t))
    small, large = Arch("nb201", (0,) * 6), Arch("nb201", (3,) * 6)
    limit = arch_costs(small)["params"]
    assert Budget(_exact(), limit).satisfied(small)
    assert not Budget(_exact(), limit).satisfied(large)


def test_budget_floor_guides_into_a_band_and_is_never_enforced() -> None:
    x = SPACE.encode([Arch("nb201", (3, 3, 0, 1, 2, 4)), Arch("nb201", (0,) * 6)])  # 2 and 0
    t = torch.full((2,), 0.5)
    band = Budget(_exact(), limit=3.0, slack=0.5, floor=1.5)
    ceiling = Budget(_exact(), limit=3.0, slack=0.5)
    below_floor = -np.log1p(np.exp(-(np.array([2.0, 0.0]) - 1.5) / 0.5))
    np.testing.assert_allclose(
        (band.log_prob(x, t) - ceiling.log_prob(x, t)).numpy(), below_floor, rtol=1e-5
    )
    assert band.log_prob(x, t)[0] > band.log_prob(x, t)[1]  # inside the band beats under it
    small = Arch("nb201", (0,) * 6)
    assert Budget(_exact(), limit=arch_costs(small)["params"], floor=1e12).satisfied(small)


def test_user_mistakes_raise() -> None:
    with pytest.raises(ValueError, match="unknown direction 'up'; known: maximize, minimize"):
        Objective(_exact(), direction="up")
    with pytest.raises(ValueError, match="at least one objective or budget"):
        combined_log_prob([])


@pytest.mark.parametrize("scale", [-1.0, math.nan, math.inf])
def test_generate_ranked_rejects_bad_scales(scale: float) -> None:
    # No network: the scale must be rejected before anything is generated.
    model = ScoreModel(SPACE, VESDE(), None, SCORE_CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="guidance scale must be a finite number >= 0"):
        generate_ranked(model, [Objective(_exact())], 5, scale=scale)


# ---- guided generation with a tiny score model ------------------------------------------------


def _params_limit() -> float:
    """A tight budget: the 20th percentile of the parameters of uniformly sampled cells."""
    return float(np.quantile(cost_pairs(SPACE, "params", NUM, np.random.default_rng(2))[1], 0.2))


def _generate(model: ScoreModel, terms: list, scale: float) -> list[Arch]:
    score = guided(model.score_fn(), combined_log_prob(terms), sigma_scaled(scale, model.sde.std))
    return generate(model, NUM, SAMPLER, seed=1, score=score).valid


def test_guidance_moves_cells_toward_the_objective(
    model: ScoreModel, conv3_predictor: TrainedPredictor
) -> None:
    plain = generate(model, NUM, SAMPLER, seed=1).valid
    up = _generate(model, [Objective(conv3_predictor)], 2.0)
    down = _generate(model, [Objective(conv3_predictor, "minimize")], 2.0)
    assert min(len(plain), len(up), len(down)) >= NUM // 3
    baseline = conv3_count(plain).mean()  # about 6 / 5 for uniform cells
    assert 0.8 < baseline < 1.8
    assert conv3_count(up).mean() > baseline + 1.0
    assert conv3_count(down).mean() < baseline - 0.5
    assert _generate(model, [Objective(conv3_predictor)], 2.0) == up  # same seed, same cells


def test_budget_guidance_keeps_cells_within_the_budget(
    model: ScoreModel, params_predictor: TrainedPredictor
) -> None:
    limit = _params_limit()
    budget = Budget(params_predictor, limit)
    plain = generate(model, NUM, SAMPLER, seed=1).valid
    within = _generate(model, [budget], 1.0)
    assert len(within) >= NUM // 4
    share_plain = np.mean([budget.satisfied(a) for a in plain])
    share_guided = np.mean([budget.satisfied(a) for a in within])
    assert share_plain < 0.5 and share_guided > share_plain + 0.3


def test_generate_ranked_unique_feasible_and_sorted(
    model: ScoreModel, conv3_predictor: TrainedPredictor, params_predictor: TrainedPredictor
) -> None:
    limit = _params_limit()
    terms = [Objective(conv3_predictor), Budget(params_predictor, limit)]
    ranked = generate_ranked(
        model, terms, 90, scale=2.0, sampler=SAMPLER, batch=100, max_rounds=3, seed=0
    )
    found = [r["new_unique"] for r in ranked.rounds]
    assert len(ranked.archs) == min(90, sum(found)) >= 10
    assert sum(found[:-1]) < 90  # it stops after the round that reaches num_unique
    assert all(arch_costs(a)["params"] <= limit for a in ranked.archs)
    keys = [SPACE.canonical_key(a) for a in ranked.archs]
    assert len(set(keys)) == len(keys)
    assert (np.diff(ranked.predicted) <= 0).all()
    np.testing.assert_allclose(ranked.predicted, conv3_predictor.predict(ranked.archs), atol=1e-5)
    scales = [r["scale"] for r in ranked.rounds]
    assert scales == [2.0 * 0.5**i for i in range(len(scales))] and 2 <= len(scales) <= 3
    assert all(r["feasible"] <= r["valid"] <= r["generated"] == 100 for r in ranked.rounds)


def test_generate_ranked_minimize_sorts_ascending(
    model: ScoreModel, conv3_predictor: TrainedPredictor
) -> None:
    objective = Objective(conv3_predictor, "minimize")
    ranked = generate_ranked(model, [objective], 10, scale=1.0, sampler=SAMPLER, batch=100)
    assert len(ranked.archs) == 10 and len(ranked.rounds) == 1
    assert (np.diff(ranked.predicted) >= 0).all()
    assert conv3_count(ranked.archs).mean() < 0.5
