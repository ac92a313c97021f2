"""The once-for-all MobileNetV3 space: strings, OFA dicts, encoding, validity, mutation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.spaces import get_space
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import (
    NUM_SLOTS,
    OPERATIONS,
    SKIP,
    MBV3Space,
    num_archs,
    op_index,
    stage_depths,
)

SPACE = MBV3Space()
LARGEST = "/".join(["k7e6-k7e6-k7e6-k7e6"] * 5)
SMALLEST = "/".join(["k3e3-k3e3"] * 5)
MIXED = "k3e4-k5e6/k7e3-k3e3-k5e4/k3e3-k3e3/k5e6-k5e6-k5e6-k5e6/k7e4-k3e6"


def _ops(*stages: list[int]) -> Arch:
    """Arch from per-stage op lists padded with SKIP to 4 slots."""
    ops: list[int] = []
    for stage in stages:
        ops += stage + [SKIP] * (4 - len(stage))
    return Arch("mbv3", tuple(ops))


def test_registered_with_vocab_and_size() -> None:
    space = get_space("mbv3")
    assert isinstance(space, MBV3Space)
    assert space.vocab == OPERATIONS and len(OPERATIONS) == 9
    assert OPERATIONS[0] == "k3_e3" and OPERATIONS[op_index(5, 6)] == "k5_e6"
    assert space.num_nodes == NUM_SLOTS == 20
    assert num_archs() == (9**2 + 9**3 + 9**4) ** 5 == 21_758_655_492_572_485_851


@pytest.mark.parametrize("text", [LARGEST, SMALLEST, MIXED])
def test_string_round_trip_edge_cases(text: str) -> None:
    arch = SPACE.from_string(text)
    assert SPACE.to_string(arch) == text
    assert len(arch.ops) == 20


def test_string_round_trip_random_samples() -> None:
    for arch in SPACE.sample(200, np.random.default_rng(0)):
        assert SPACE.from_string(SPACE.to_string(arch)) == arch
        assert SPACE.canonical_key(arch) == SPACE.to_string(arch)


def test_parse_layout() -> None:
    arch = SPACE.from_string(MIXED)
    assert stage_depths(arch) == (2, 3, 2, 4, 2)
    assert arch.ops[:4] == (op_index(3, 4), op_index(5, 6), SKIP, SKIP)
    assert arch.ops[4:8] == (op_index(7, 3), op_index(3, 3), op_index(5, 4), SKIP)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("k3e3-k3e3/k3e3-k3e3", "has 2 stages"),
        (SMALLEST + "/k3e3-k3e3", "has 6 stages"),
        ("k3e3/" + "/".join(["k3e3-k3e3"] * 4), "depth must be one of"),
        ("k3e3-k3e3-k3e3-k3e3-k3e3/" + "/".join(["k3e3-k3e3"] * 4), "has 5 layers"),
        ("k4e3-k3e3/" + "/".join(["k3e3-k3e3"] * 4), "unknown kernel size 4"),
        ("k3e5-k3e3/" + "/".join(["k3e3-k3e3"] * 4), "unknown expand ratio 5"),
        ("k3_e3-k3e3/" + "/".join(["k3e3-k3e3"] * 4), "not of the form"),
        ("k3e3--k3e3/" + "/".join(["k3e3-k3e3"] * 4), "'' in"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SPACE.from_string(text)


def test_ofa_dict_round_trip() -> None:
    for arch in [*SPACE.sample(50, np.random.default_rng(1)), SPACE.from_string(MIXED)]:
        config = SPACE.to_ofa_config(arch)
        assert len(config["ks"]) == 20 and len(config["e"]) == 20
        assert config["d"] == list(stage_depths(arch))
        assert SPACE.from_ofa_config(config) == arch


def test_ofa_dict_ignores_absent_slots_like_ofa() -> None:
    config = {"ks": [7] * 20, "e": [6] * 20, "d": [2] * 5}
    config["ks"][2], config["e"][3] = 0, 99  # beyond depth 2: ignored by once-for-all too
    arch = SPACE.from_ofa_config(config)
    assert SPACE.to_string(arch) == "/".join(["k7e6-k7e6"] * 5)
    assert SPACE.to_ofa_config(arch)["ks"][2] == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ks": [3] * 20, "e": [3] * 20}, "lacks keys"),
        ({"ks": [3] * 19, "e": [3] * 20, "d": [2] * 5}, "needs 20"),
        ({"ks": [3] * 20, "e": [3] * 20, "d": [2, 2, 5, 2, 2]}, "depth 5 of stage 3"),
        ({"ks": [4] * 20, "e": [3] * 20, "d": [2] * 5}, "unknown kernel size 4"),
        ({"ks": [3] * 20, "e": [2] * 20, "d": [2] * 5}, "unknown expand ratio 2"),
    ],
)
def test_ofa_dict_errors(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SPACE.from_ofa_config(config)


def test_encode_layout_and_decode_identity() -> None:
    archs = [*SPACE.sample(64, np.random.default_rng(2)), SPACE.from_string(MIXED)]
    x = SPACE.encode(archs)
    assert x.shape == (65, 20, 9)
    present = torch.tensor([[op != SKIP for op in a.ops] for a in archs])
    assert torch.equal(x.sum(-1), present.float())  # one-hot rows, zero rows for absent slots
    assert SPACE.decode(x) == archs


def test_decode_uses_half_threshold() -> None:
    arch = SPACE.from_string(MIXED)
    x = SPACE.encode([arch]) * 0.9 + 0.04  # still one entry > 0.5 per present row
    assert SPACE.decode(x) == [arch]


def _decode_one(arch_ops: Arch, hot: tuple[int, int] | None = None) -> Arch | None:
    """Decode a hand-built encoding, optionally turning on one more entry (slot, op)."""
    x = torch.zeros(1, 20, 9)
    for slot, op in enumerate(arch_ops.ops):
        if op != SKIP:
            x[0, slot, op] = 1.0
    if hot is not None:
        x[0, hot[0], hot[1]] = 0.8
    return SPACE.decode(x)[0]


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_depths_2_3_4_valid(depth: int) -> None:
    arch = _ops(*[[1] * depth] * 5)
    assert _decode_one(arch) == arch
    assert stage_depths(arch) == (depth,) * 5


def test_validity_rules_on_edge_cases() -> None:
    full = [0, 1, 2, 3]
    assert _decode_one(_ops([0, SKIP, 2, 3], *[full] * 4)) is None  # missing slot 2
    assert _decode_one(_ops([SKIP, 1, 2, 3], *[full] * 4)) is None  # missing slot 1
    assert _decode_one(_ops(full, full, [0, 1, SKIP, 3], full, full)) is None  # 3 absent, 4 not
    assert _decode_one(_ops(*[full] * 5), hot=(7, 8)) is None  # two hot entries in one row
    assert _decode_one(_ops([0, 1], *[full] * 4), hot=(3, 4)) is None  # slot 3 absent, 4 on
    assert _decode_one(_ops([0, 1, 2], *[full] * 4)) == _ops([0, 1, 2], *[full] * 4)


def test_invalid_arch_rejected_by_encode_and_string() -> None:
    bad = _ops([0, 1, SKIP, 3], *[[0, 1]] * 4)
    with pytest.raises(ValueError, match="first 2, 3 or 4 slots"):
        SPACE.encode([bad])
    with pytest.raises(ValueError, match="first 2, 3 or 4 slots"):
        SPACE.to_string(bad)
    with pytest.raises(ValueError, match="20 slots"):
        SPACE.encode([Arch("mbv3", (0,) * 19)])
    with pytest.raises(ValueError, match="space 'nb201'"):
        SPACE.to_string(Arch("nb201", (0,) * 20))


def test_adjacency_chain_and_positions() -> None:
    adj = SPACE.adjacency()
    assert adj.shape == (20, 20)
    assert torch.equal(adj, torch.diag(torch.ones(19), 1))
    assert SPACE.attention_mask().all()  # a chain reaches every slot
    assert SPACE.positions().tolist() == [0, 1, 2, 3] * 5


def test_sample_is_deterministic_and_valid() -> None:
    first = SPACE.sample(20, np.random.default_rng(7))
    assert first == SPACE.sample(20, np.random.default_rng(7))
    assert first != SPACE.sample(20, np.random.default_rng(8))
    assert all(SPACE.validate(arch) == arch for arch in first)


def test_sample_depths_and_ops_roughly_uniform() -> None:
    archs = SPACE.sample(3000, np.random.default_rng(3))
    depths = np.array([stage_depths(a) for a in archs]).ravel()  # 15000 stage depths
    counts = np.bincount(depths, minlength=5)[2:]
    assert np.all(np.abs(counts / depths.size - 1 / 3) < 0.02), counts
    ops = np.array([op for a in archs for op in a.ops if op != SKIP])
    assert np.all(np.abs(np.bincount(ops, minlength=9) / ops.size - 1 / 9) < 0.01)


def test_neighbours_valid_distinct_and_complete() -> None:
    arch = SPACE.from_string(MIXED)  # depths (2, 3, 2, 4, 2): 13 layers
    neighbours = SPACE.neighbours(arch)
    # 13 layers x 8 other ops + 2 stages (depth 3, 4) shrink + 4 stages grow by any of 9 ops
    assert len(neighbours) == 13 * 8 + 2 + 4 * 9
    assert len(set(neighbours)) == len(neighbours) and arch not in neighbours
    assert all(SPACE.validate(n) == n for n in neighbours)
    diffs = {sum(a != b for a, b in zip(arch.ops, n.ops, strict=True)) for n in neighbours}
    assert diffs == {1}
    for extreme in (LARGEST, SMALLEST):
        options = SPACE.neighbours(SPACE.from_string(extreme))
        assert len(options) == len(set(options)) > 0


def test_mutate_is_seeded() -> None:
    arch = SPACE.from_string(MIXED)
    first = SPACE.mutate(arch, np.random.default_rng(5))
    assert first == SPACE.mutate(arch, np.random.default_rng(5))
    assert first in SPACE.neighbours(arch)
