"""The experts prior: the meta-predictor and source tables weighted by agreement (RGPE)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_table

from diffusionnag.cli import main
from diffusionnag.evaluators.nb201_valid import ValidationEvaluator
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.experts import fused_scores, misordered_share, rgpe_weights


def test_the_expert_that_orders_the_evaluated_cells_takes_the_weight() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    right, wrong = values * 10, -values
    weights = rgpe_weights(np.stack([wrong, right]), values, np.random.default_rng(0))
    assert misordered_share(right, values) == 0.0 and misordered_share(wrong, values) == 1.0
    assert weights[1] > 0.9 and np.isclose(weights.sum(), 1.0)


def test_weights_are_equal_before_two_evaluations_and_seeded() -> None:
    scores = np.random.default_rng(1).normal(size=(3, 20))
    fused = fused_scores(scores, [0], [5.0], np.random.default_rng(0))
    z = (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True)
    assert np.allclose(fused, z.mean(0))
    again = [fused_scores(scores, [0, 1, 2], [1.0, 3.0, 2.0], np.random.default_rng(4))
             for _ in range(2)]  # fmt: skip
    assert np.array_equal(*again)


def test_a_validation_table_reads_sources_but_never_its_own_dataset() -> None:
    evaluator = ValidationEvaluator("cifar100")
    cell = NB201Space().sample(1, np.random.default_rng(0))[0]
    assert 0 < evaluator.source_accuracy(cell, "cifar10") < 100
    with pytest.raises(ValueError, match="is the target, not a source"):
        evaluator.source_accuracy(cell, "cifar100")


def test_unknown_prior_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="choose one of meta, experts"):
        get_strategy("transfer", NB201Space(), 0, prior="copy")


def test_transfer_with_the_experts_prior_on_a_table(tmp_path: Path) -> None:
    table = write_fake_table(tmp_path / "table.csv", len(NB201Space().enumerate()), seed=1)
    out = tmp_path / "run.json"
    argv = ["transfer", "--benchmark", "nb201:cifar10", "--table", str(table), "--prior",
            "experts", "--budget", "3", "--candidates", "4", "--steps", "5", "--round-samples",
            "50", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["num_evaluated"] == 3 and result["settings"]["options"]["prior"] == "experts"
    assert result["transfer"]["candidates"] > 4  # the generated cells and the sources' top cells
