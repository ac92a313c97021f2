"""Zero-cost proxies (NASWOT, synflow) and the strategies that propose cells in their order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from diffusionnag.evaluators.base import EvalResult
from diffusionnag.metrics import rank_correlations
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.nn.zero_cost import (
    naswot,
    proxy_score,
    random_inputs,
    seeded_nb201_network,
    synflow,
)
from diffusionnag.search.history import History
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import MBV3Space
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()
ALL_CONV_3X3 = Arch("nb201", (3,) * 6)
MIXED = SPACE.from_string(
    "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
)


def small_inputs(seed: int = 0) -> torch.Tensor:
    return random_inputs((8, 3, 32, 32), torch.Generator().manual_seed(seed))


def test_naswot_is_the_log_determinant_of_agreement_counts() -> None:
    images = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])  # codes 10, 11, 00
    agreements = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    assert naswot(nn.Sequential(nn.ReLU()), images) == pytest.approx(math.log(agreements.det()))


def test_naswot_of_a_network_that_cannot_tell_inputs_apart_is_minus_infinity() -> None:
    all_none = Arch("nb201", (0,) * 6)  # every edge "none": the head sees zeros for any image
    assert naswot(seeded_nb201_network(all_none, 0), small_inputs()) == -math.inf
    with pytest.raises(ValueError, match="at least 2 inputs"):
        naswot(seeded_nb201_network(all_none, 0), small_inputs()[:1])


def test_synflow_is_the_flow_through_the_linearised_network() -> None:
    """For ones -> |v| |W| x, each layer's summed |theta * dR/dtheta| equals R itself."""
    first, second = nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 0.0, 3.0]]))
        second.weight.copy_(torch.tensor([[-2.0, 1.0]]))
    flow = 2.0 * 3.5 + 1.0 * 4.0
    assert synflow(nn.Sequential(first, second), (1, 3)) == pytest.approx(2 * flow)
    with_bn = nn.Sequential(first, nn.BatchNorm1d(2), second)  # BN counts as the identity
    assert synflow(with_bn, (1, 3)) == pytest.approx(2 * flow)
    assert first.weight[0, 1] == -2.0, "the network itself keeps its signed weights"


def test_proxies_leave_the_network_as_it_was() -> None:
    network = seeded_nb201_network(MIXED, 0).eval()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    naswot(network, small_inputs())
    synflow(network, (1, 3, 32, 32))
    assert not network.training and not any(m.training for m in network.modules())
    for name, value in network.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("proxy", ["naswot", "synflow"])
def test_proxies_are_deterministic_by_seed_finite_and_tell_cells_apart(proxy: str) -> None:
    inputs = small_inputs()
    score = proxy_score(proxy, MIXED, seed=0, inputs=inputs)
    assert proxy_score(proxy, MIXED, seed=0, inputs=inputs) == score
    assert proxy_score(proxy, MIXED, seed=1, inputs=inputs) != score
    other = proxy_score(proxy, ALL_CONV_3X3, seed=0, inputs=inputs)
    assert math.isfinite(score) and math.isfinite(other) and other != score


def test_unknown_proxy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown zero-cost proxy 'snip'; known: naswot, synflow"):
        proxy_score("snip", MIXED, seed=0)


def fake_accuracy(arch: Arch) -> float:
    """A made-up table in which bigger networks are better: accuracy grows with log(params)."""
    return 10.0 * math.log(arch_costs(arch)["params"])


def test_params_and_synflow_rank_a_size_driven_table_above_chance() -> None:
    cells = SPACE.sample(8, np.random.default_rng(0))
    truth = [fake_accuracy(arch) for arch in cells]
    inputs = small_inputs()
    params = [arch_costs(arch)["params"] for arch in cells]
    flow = [proxy_score("synflow", arch, seed=0, inputs=inputs) for arch in cells]
    assert rank_correlations(params, truth)["spearman"] == pytest.approx(1.0)
    assert rank_correlations(flow, truth)["spearman"] > 0.5


@pytest.mark.parametrize("name", ["params", "zc-synflow"])
def test_strategies_propose_their_pool_best_first_then_random_cells(name: str) -> None:
    strategy = get_strategy(name, SPACE, 3, pool_size=3)
    ranked = strategy.ranked()
    scores = strategy.scores(ranked)
    assert len({SPACE.canonical_key(a) for a in ranked}) == 3
    assert scores == sorted(scores, reverse=True)
    history = History(SPACE)
    for arch in strategy.ask(history, 2):
        history.record(arch, EvalResult(fake_accuracy(arch), "fake", "test"))
    assert history.archs() == ranked[:2]
    rest = strategy.ask(history, 5)  # the last pool cell, then random unseen cells
    assert rest[0] == ranked[2]
    assert not {SPACE.canonical_key(a) for a in rest} & history.seen_keys


def test_params_beats_random_order_on_a_size_driven_table() -> None:
    strategy = get_strategy("params", SPACE, 0, pool_size=200)
    random_cells = SPACE.sample(10, np.random.default_rng(0))
    first = strategy.ask(History(SPACE), 10)
    assert np.mean([fake_accuracy(a) for a in first]) > np.mean(
        [fake_accuracy(a) for a in random_cells]
    )


def test_strategy_options_and_spaces_are_checked() -> None:
    with pytest.raises(ValueError, match="option pool_size must be an int >= 1"):
        get_strategy("zc-synflow", SPACE, pool_size=0)
    with pytest.raises(ValueError, match="option batch_size must be an int >= 2"):
        get_strategy("zc-naswot", SPACE, batch_size=1)
    with pytest.raises(ValueError, match="space 'mbv3' is not supported"):
        get_strategy("zc-naswot", MBV3Space())
    options = {"pool_size": 64, "batch_size": 64, "task": ""}
    assert get_strategy("zc-naswot", SPACE).options() == options
    with pytest.raises(ValueError, match="task 'digits' is not a task name"):
        get_strategy("zc-naswot", SPACE, task="digits")


def test_naswot_on_a_tasks_own_images() -> None:
    """With ``task`` the proxy codes the task's training images (grey 8 px digits here, one
    output per class), in an order fixed by the seed; random RGB images rank the pool otherwise."""
    task = "digits/c0-1-2/n20/r8/s0"
    strategy = get_strategy("zc-naswot", SPACE, 0, pool_size=6, batch_size=16, task=task)
    inputs = strategy.proxy_inputs()
    assert inputs.shape == (16, 1, 8, 8)
    same = get_strategy("zc-naswot", SPACE, 0, pool_size=6, batch_size=16, task=task)
    torch.testing.assert_close(same.proxy_inputs(), inputs)
    scores = strategy.scores(strategy.pool())
    assert all(math.isfinite(v) or v == -math.inf for v in scores)
    assert len(set(scores)) > 1
    random_images = get_strategy("zc-naswot", SPACE, 0, pool_size=6, batch_size=16)
    assert random_images.scores(random_images.pool()) != scores
    every_image = get_strategy("zc-naswot", SPACE, 0, batch_size=100, task=task)
    assert every_image.proxy_inputs().shape == (60, 1, 8, 8)  # 3 classes x 20: all of them
    flow = get_strategy("zc-synflow", SPACE, 0, pool_size=2, task=task)
    assert flow.proxy_inputs().shape == (1, 1, 8, 8)
    assert all(v > 0 for v in flow.scores(flow.pool()))
    assert get_strategy("params", MBV3Space(), pool_size=5).ranked()
