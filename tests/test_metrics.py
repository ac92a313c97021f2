"""Generation metrics on hand-made lists whose answers can be counted by eye."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffusionnag.metrics import expected_uniqueness_uniform, generation_metrics
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()
A = Arch("nb201", (3, 3, 3, 1, 3, 2))
B = Arch("nb201", (2, 2, 3, 1, 3, 3))
# Nothing reaches the output (every edge into node 3 is "none"), so these two compute the same
# function (a zero) and share one canonical key while being different cells.
DEAD_1 = Arch("nb201", (3, 3, 3, 0, 0, 0))
DEAD_2 = Arch("nb201", (1, 2, 4, 0, 0, 0))


def test_hand_counted_example() -> None:
    # 8 samples: 2 invalid, 6 valid = A, A, B, DEAD_1, DEAD_2, DEAD_2.
    archs = [A, None, A, B, DEAD_1, None, DEAD_2, DEAD_2]
    metrics = generation_metrics(SPACE, archs, train_archs=[B, DEAD_2, Arch("nb201", (0,) * 6)])
    assert metrics["validity"] == 6 / 8
    assert metrics["uniqueness"] == 4 / 6  # A, B, DEAD_1, DEAD_2
    assert metrics["uniqueness_canonical"] == 3 / 6  # A, B, zero
    assert metrics["novelty"] == 2 / 4  # A and DEAD_1 are not in the training set


def test_all_distinct_and_novel() -> None:
    metrics = generation_metrics(SPACE, [A, B, DEAD_1], train_archs=[DEAD_2])
    assert metrics == {
        "validity": 1.0,
        "uniqueness": 1.0,
        "uniqueness_canonical": 1.0,
        "novelty": 1.0,
    }


def test_canonical_uniqueness_counts_equivalent_cells_once() -> None:
    # The first 25 cells vary only edges (1,3) and (2,3); all other edges are "none". Node 1 is
    # a plain zero, so edge (1,3)'s op never matters; node 2 is a sum of two zeros, which the
    # benchmark's key (like NATS-Bench's UniqueString) keeps apart per op on edge (2,3): 5 keys.
    cells = SPACE.enumerate()[:25]
    metrics = generation_metrics(SPACE, cells)
    assert metrics["uniqueness"] == 1.0
    assert metrics["uniqueness_canonical"] == 5 / 25


def test_nothing_novel_when_everything_was_trained_on() -> None:
    metrics = generation_metrics(SPACE, [A, B, A], train_archs={A, B})
    assert metrics["novelty"] == 0.0
    assert metrics["uniqueness"] == 2 / 3


def test_novelty_is_absent_without_a_training_set() -> None:
    assert set(generation_metrics(SPACE, [A, B])) == {
        "validity",
        "uniqueness",
        "uniqueness_canonical",
    }


def test_no_valid_sample_reports_zeros() -> None:
    metrics = generation_metrics(SPACE, [None, None], train_archs=[A])
    assert metrics == {
        "validity": 0.0,
        "uniqueness": 0.0,
        "uniqueness_canonical": 0.0,
        "novelty": 0.0,
    }


def test_user_mistakes_raise() -> None:
    with pytest.raises(ValueError, match="empty"):
        generation_metrics(SPACE, [])
    with pytest.raises(ValueError, match="space 'mbv3'"):
        generation_metrics(SPACE, [A, Arch("mbv3", (1,))])


def test_expected_uniqueness_matches_the_closed_form() -> None:
    value = expected_uniqueness_uniform(1000, 15_625)
    assert value == pytest.approx(15_625 * (1 - (1 - 1 / 15_625) ** 1000) / 1000, rel=1e-12)
    assert value == pytest.approx(0.96870, abs=1e-5)
    assert expected_uniqueness_uniform(1, 15_625) == pytest.approx(1.0)
    assert expected_uniqueness_uniform(10, 1) == pytest.approx(0.1)
    assert expected_uniqueness_uniform(4, 2) == pytest.approx(2 * (1 - 0.5**4) / 4)


def test_expected_uniqueness_agrees_with_simulation() -> None:
    rng = np.random.default_rng(0)
    draws = rng.integers(15_625, size=(400, 1000))
    simulated = np.mean([len(np.unique(row)) / 1000 for row in draws])
    assert simulated == pytest.approx(expected_uniqueness_uniform(1000, 15_625), abs=2e-3)


def test_uniform_sampler_uniqueness_is_near_the_expectation() -> None:
    archs = SPACE.sample(1000, np.random.default_rng(1))
    assert generation_metrics(SPACE, archs)["uniqueness"] == pytest.approx(0.9687, abs=0.02)


@pytest.mark.parametrize(("draws", "size"), [(0, 10), (10, 0), (-1, 5), (2.5, 10), (10, 1.0)])
def test_expected_uniqueness_rejects_bad_arguments(draws, size) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        expected_uniqueness_uniform(draws, size)


def test_expected_uniqueness_is_accurate_for_huge_spaces() -> None:
    assert math.isclose(expected_uniqueness_uniform(2, 10**15), 1 - 0.5e-15, rel_tol=1e-15)
