"""A space restricted to cost budgets: sampling, neighbours, mutation and batches stay inside,
the rest is the wrapped space's (no shared data needed: the costs are mbv3's own)."""

from __future__ import annotations

import numpy as np
import pytest

from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.search.history import History
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.constrained import ConstrainedSpace
from diffusionnag.spaces.mbv3 import MBV3Space

SPACE = MBV3Space()
LIMIT = 250e6
"""About the 20th percentile of uniform cells' FLOPs at width 1.0 and 224 px."""


def restricted(limit: float = LIMIT) -> ConstrainedSpace:
    return ConstrainedSpace(SPACE, arch_costs, {"flops": limit})


def test_samples_are_uniform_among_feasible_cells_and_seeded() -> None:
    space = restricted()
    first = space.sample(200, np.random.default_rng(3))
    assert first == space.sample(200, np.random.default_rng(3))
    assert all(arch_costs(arch)["flops"] <= LIMIT for arch in first)
    assert len(set(first)) == 200


def test_neighbours_and_mutations_stay_within_the_budget() -> None:
    space = restricted()
    rng = np.random.default_rng(0)
    for arch in space.sample(10, rng):
        neighbours = space.neighbours(arch)
        assert neighbours and all(space.feasible(other) for other in neighbours)
        assert set(neighbours) <= set(SPACE.neighbours(arch))
        assert space.feasible(space.mutate(arch, rng))


def test_the_rest_is_the_wrapped_space() -> None:
    space = restricted()
    arch = space.sample(1, np.random.default_rng(1))[0]
    assert (space.name, space.num_nodes, space.vocab) == (SPACE.name, SPACE.num_nodes, SPACE.vocab)
    assert space.to_string(arch) == SPACE.to_string(arch)
    assert (space.encode([arch]) == SPACE.encode([arch])).all()
    assert space.to_ofa_config(arch) == SPACE.to_ofa_config(arch)
    assert SPACE.feasible(arch)


def test_a_batch_refuses_cells_over_budget() -> None:
    space = restricted()
    strategy = get_strategy("random", space, 0)
    batch = strategy.new_batch(History(space), 5)
    over = next(a for a in SPACE.sample(100, np.random.default_rng(2)) if not space.feasible(a))
    assert not batch.offer(over)
    assert batch.offer(space.sample(1, np.random.default_rng(2))[0])


def test_an_impossible_budget_says_so() -> None:
    space = ConstrainedSpace(SPACE, lambda arch: {"flops": 2.0}, {"flops": 1.0})
    with pytest.raises(ValueError, match="budgets are too tight"):
        space.sample(1, np.random.default_rng(0))
