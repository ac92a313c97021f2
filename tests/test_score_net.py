"""The score network: shapes, and attention that really follows the space's graph."""

from __future__ import annotations

import pytest
import torch

from diffusionnag.diffusion.score_net import ScoreNetConfig, ScoreNetwork
from diffusionnag.spaces import SPACES, get_space
from diffusionnag.spaces.nb201 import NB201Space

TINY = ScoreNetConfig(hidden=16, layers=1, heads=2)


def _network(space, config: ScoreNetConfig = TINY, seed: int = 0) -> ScoreNetwork:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ScoreNetwork(space, config).eval()


def _inputs(space, batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, space.num_nodes, len(space.vocab), generator=generator)
    return x, torch.rand(batch, generator=generator) + 0.05


class DisconnectedNB201(NB201Space):
    """NB201 nodes with every edge removed: no node may see any other."""

    def adjacency(self) -> torch.Tensor:
        return torch.zeros(self.num_nodes, self.num_nodes)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_output_shape(name: str) -> None:
    space = get_space(name)
    x, std = _inputs(space)
    out = _network(space)(x, std)
    assert out.shape == x.shape
    assert bool(out.isfinite().all())


@pytest.mark.parametrize("name", sorted(SPACES))
def test_mask_is_the_spaces_reachability(name: str) -> None:
    space = get_space(name)
    mask = _network(space).mask
    assert torch.equal(mask, space.attention_mask())
    reach = space.adjacency().bool() | torch.eye(space.num_nodes, dtype=torch.bool)
    for _ in range(space.num_nodes):
        reach = reach | (reach.float() @ reach.float() > 0)
    assert torch.equal(mask, reach | reach.T)


def test_nb201_mask_separates_parallel_edges() -> None:
    mask = NB201Space().attention_mask()
    # Nodes: 0 input, 1..6 the edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3), 7 output.
    assert bool(mask[0].all()) and bool(mask[7].all())
    assert not mask[1, 2]  # 0->1 and 0->2 lie on different paths
    assert not mask[3, 4]  # 1->2 and 0->3
    assert mask[1, 3] and mask[3, 6]  # 0->1 feeds 1->2, which feeds 2->3
    assert torch.equal(mask, mask.T)


def _changed_outputs(network: ScoreNetwork, x: torch.Tensor, std: torch.Tensor, node: int):
    """``[N]`` bool: which nodes' outputs move when only ``node``'s input is perturbed."""
    with torch.no_grad():
        before = network(x, std)
        perturbed = x.clone()
        perturbed[:, node] += 3.0
        after = network(perturbed, std)
    return (before != after).flatten(start_dim=2).any(-1).any(0)


def test_one_layer_sees_exactly_the_masked_neighbours() -> None:
    space = NB201Space()
    network = _network(space)
    x, std = _inputs(space)
    mask = space.attention_mask()
    for node in range(space.num_nodes):
        assert torch.equal(_changed_outputs(network, x, std, node), mask[:, node])


def test_mask_built_from_the_adjacency_blocks_all_flow() -> None:
    space = DisconnectedNB201()
    network = _network(space, ScoreNetConfig(hidden=16, layers=3, heads=2))
    assert torch.equal(network.mask, torch.eye(space.num_nodes, dtype=torch.bool))
    x, std = _inputs(space)
    for node in range(space.num_nodes):
        expected = torch.zeros(space.num_nodes, dtype=torch.bool)
        expected[node] = True
        assert torch.equal(_changed_outputs(network, x, std, node), expected)


def test_output_depends_on_the_noise_level() -> None:
    space = NB201Space()
    network = _network(space)
    x, std = _inputs(space)
    with torch.no_grad():
        assert not torch.allclose(network(x, std), network(x, std * 2))


def test_heads_must_divide_hidden() -> None:
    with pytest.raises(ValueError, match="hidden size 10 is not divisible by 4 heads"):
        ScoreNetwork(NB201Space(), ScoreNetConfig(hidden=10, heads=4))
