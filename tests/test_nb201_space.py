"""NB201Space: strings, encodings, the derived adjacency, validity rules and canonical keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import EDGES, OPERATIONS, NB201Space

SPACE = NB201Space()
README_CELL = (  # the example in shared/data/README.md
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
)
INPUT, OUTPUT = 0, SPACE.num_nodes - 1


def test_table_strings_round_trip(nb201_table) -> None:
    strings = [SPACE.to_string(arch) for arch in nb201_table.archs]
    assert len(set(strings)) == 15_625
    for text in strings:
        assert SPACE.to_string(SPACE.from_string(text)) == text


def test_enumerate_round_trips_and_covers_the_table(nb201_table) -> None:
    cells = SPACE.enumerate()
    assert len(cells) == len(set(cells)) == 15_625
    assert all(SPACE.from_string(SPACE.to_string(arch)) == arch for arch in cells)
    assert set(cells) == set(nb201_table.archs)


def test_known_string_parses_to_known_ops() -> None:
    arch = SPACE.from_string(README_CELL)
    names = [OPERATIONS[op] for op in arch.ops]
    assert names == ["nor_conv_3x3"] * 3 + ["skip_connect", "nor_conv_3x3", "nor_conv_1x1"]


def test_encode_decode_round_trip_all_cells() -> None:
    cells = SPACE.enumerate()
    x = SPACE.encode(cells)
    assert x.shape == (15_625, 8, len(SPACE.vocab))
    assert torch.equal(x.sum(-1), torch.ones(15_625, 8))
    assert SPACE.decode(x) == cells


def test_decode_reads_noisy_samples_on_the_one_hot_scale() -> None:
    cells = SPACE.sample(64, np.random.default_rng(0))
    x = SPACE.encode(cells)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 0.4
    noisy = torch.where(x > 0, 0.55 + noise, noise)  # ones in (0.55, 0.95), zeros in [0, 0.4)
    assert SPACE.decode(noisy) == cells


def test_canonical_key_equals_unique_string_for_every_row(nb201_table) -> None:
    keys = [SPACE.canonical_key(arch) for arch in nb201_table.archs]
    assert keys == list(nb201_table.unique_strings)
    assert len(set(keys)) == 6_466


def test_canonical_key_merges_cells_whose_output_is_zero() -> None:
    none_index, skip = OPERATIONS.index("none"), OPERATIONS.index("skip_connect")
    # Everything into node 3 is "none": the output is zero whatever the first three edges do.
    dead = [
        Arch("nb201", (a, b, c, none_index, none_index, none_index))
        for a, b, c in [(0, 0, 0), (3, 2, 4), (1, 1, 1)]
    ]
    assert len({SPACE.canonical_key(arch) for arch in dead}) == 1
    identity = Arch("nb201", (none_index, none_index, none_index, skip, none_index, none_index))
    assert SPACE.canonical_key(identity) != SPACE.canonical_key(dead[0])


def test_adjacency_is_derived_from_the_cell_edges() -> None:
    adj = SPACE.adjacency()
    assert adj.shape == (8, 8)
    # Operation nodes 1..6 are the edges (0,1) (0,2) (1,2) (0,3) (1,3) (2,3).
    expected = {
        (INPUT, 1),
        (INPUT, 2),
        (INPUT, 4),  # edges leaving cell node 0 read the input
        (1, 3),
        (1, 5),  # (0,1) feeds the edges leaving cell node 1
        (2, 6),
        (3, 6),  # (0,2) and (1,2) feed (2,3)
        (4, OUTPUT),
        (5, OUTPUT),
        (6, OUTPUT),  # edges into cell node 3 form the output
    }
    assert {tuple(e) for e in adj.nonzero().tolist()} == expected
    assert torch.equal(adj, torch.triu(adj, diagonal=1))  # upper-triangular, so acyclic
    assert torch.equal(SPACE.adjacency(), adj)
    SPACE.adjacency()[0, 0] = 5.0  # a copy: callers cannot corrupt the space's graph
    assert SPACE.adjacency()[0, 0] == 0


def test_every_node_lies_on_a_path_from_input_to_output() -> None:
    adj = SPACE.adjacency()
    reach = torch.eye(8) + adj
    for _ in range(8):
        reach = ((reach @ reach) > 0).float()
    assert (reach[INPUT] > 0).all() and (reach[:, OUTPUT] > 0).all()
    assert torch.count_nonzero(torch.linalg.matrix_power(adj, 8)) == 0  # nilpotent: no cycle


def _valid_encoding() -> torch.Tensor:
    return SPACE.encode([SPACE.from_string(README_CELL)])


def _two_hot(x: torch.Tensor) -> None:
    x[0, 2, 2:] = 0.9


def _input_on_operation(x: torch.Tensor) -> None:
    x[0, 3] = 0
    x[0, 3, SPACE.vocab.index("input")] = 1


def _zero_row(x: torch.Tensor) -> None:
    x[0, 4] = 0


def _output_not_last(x: torch.Tensor) -> None:
    x[0, OUTPUT], x[0, 6] = x[0, 6].clone(), x[0, OUTPUT].clone()


def _input_not_first(x: torch.Tensor) -> None:
    x[0, INPUT], x[0, 1] = x[0, 1].clone(), x[0, INPUT].clone()


@pytest.mark.parametrize(
    "corrupt", [_two_hot, _input_on_operation, _zero_row, _output_not_last, _input_not_first]
)
def test_decode_rejects_invalid_rows(corrupt) -> None:
    x = _valid_encoding()
    assert SPACE.decode(x) == [SPACE.from_string(README_CELL)]
    corrupt(x)
    assert SPACE.decode(x) == [None]


def test_decode_marks_only_the_invalid_sample() -> None:
    cells = SPACE.sample(3, np.random.default_rng(1))
    x = SPACE.encode(cells)
    x[1, 5] = 0
    assert SPACE.decode(x) == [cells[0], None, cells[2]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("|none~0|+|none~0|none~1|", "2 node groups"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "4 node groups"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "has 1 edges, expected 2"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|", "has 2 edges, expected 3"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~2|none~2|", "must come from node 1, not 2"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "must come from node 0, not 1"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must start and end with '|'"),
        ("|none~0|+|none~0|none~1+|none~0|none~1|none~2|", "must start and end with '|'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form op~index"),
    ],
)
def test_malformed_strings_raise_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        SPACE.from_string(text)


def test_unknown_operation_error_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        SPACE.from_string("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert all(op in str(info.value) for op in OPERATIONS)


def test_neighbours_differ_in_exactly_one_operation() -> None:
    arch = SPACE.from_string(README_CELL)
    neighbours = SPACE.neighbours(arch)
    assert len(neighbours) == len(set(neighbours)) == len(EDGES) * (len(OPERATIONS) - 1) == 24
    assert arch not in neighbours
    for other in neighbours:
        assert sum(a != b for a, b in zip(arch.ops, other.ops, strict=True)) == 1
        assert SPACE.validate(other) == other


def test_sample_is_deterministic_given_the_generator() -> None:
    first = SPACE.sample(50, np.random.default_rng(7))
    assert first == SPACE.sample(50, np.random.default_rng(7))
    assert first != SPACE.sample(50, np.random.default_rng(8))
    assert all(SPACE.validate(arch) == arch for arch in first)


def test_sample_is_uniform_over_operations() -> None:
    ops = np.array([arch.ops for arch in SPACE.sample(5_000, np.random.default_rng(0))])
    freq = np.stack([(ops == op).mean(0) for op in range(len(OPERATIONS))])  # [5, 6]
    assert np.abs(freq - 0.2).max() < 0.03


def test_mutate_returns_a_neighbour_deterministically() -> None:
    arch = SPACE.from_string(README_CELL)
    child = SPACE.mutate(arch, np.random.default_rng(3))
    assert child in SPACE.neighbours(arch)
    assert child == SPACE.mutate(arch, np.random.default_rng(3))


def test_validate_rejects_other_spaces() -> None:
    with pytest.raises(ValueError, match="space 'mbv3'"):
        SPACE.validate(Arch("mbv3", (0,) * 6))
