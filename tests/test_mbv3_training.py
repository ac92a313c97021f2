"""Real training of MobileNetV3 subnets: the evaluator, the search job, pairs from a run."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from strategy_options import FAST_OPTIONS

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.datasets import load_digits
from diffusionnag.evaluators.image_data import ImageDataset, Split, upscale
from diffusionnag.evaluators.registry import BenchmarkSpec, TargetSettings, build_target
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.nn.costs import count_flops, count_parameters
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import load_pairs
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces import Arch, get_space

SPACE = get_space("mbv3")
CELL = SPACE.from_string("k3e3-k5e4/k7e6-k3e3/k3e3-k3e3-k3e3/k5e6-k5e6/k3e4-k3e3")
TINY = TrainConfig(epochs=1, batch_size=16, width_mult=0.1, seed=0, device="cpu", num_threads=1)


def _head(split: Split, n: int) -> Split:
    return Split(split.images[:n].clone(), split.labels[:n].clone())


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    """A handful of 8x8 digits, so one tiny epoch at 32 px takes a fraction of a second."""
    data = load_digits(seed=0)
    return dataclasses.replace(
        data, train=_head(data.train, 48), valid=_head(data.valid, 20), test=_head(data.test, 20)
    )


def test_mbv3_cell_trains_on_upscaled_digits_and_repeats(digits: ImageDataset) -> None:
    rng_state = torch.random.get_rng_state()
    evaluator = TrainingEvaluator(digits, TINY, space=SPACE)
    first = evaluator.evaluate(CELL)
    second = TrainingEvaluator(digits, TINY, space="mbv3").evaluate(CELL)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert evaluator.space_name == "mbv3" and evaluator.data.resolution == 32
    assert not first.failed and 0.0 <= first.value <= 100.0
    assert math.isfinite(first.metrics["test_accuracy"])
    assert (first.value, first.metrics["test_accuracy"]) == (
        second.value,
        second.metrics["test_accuracy"],
    )
    model = evaluator.build_network(CELL)
    assert first.metrics["params"] == count_parameters(model)
    assert first.metrics["flops"] == count_flops(model, (1, 1, 32, 32))


def test_upscale_only_grows_small_images(digits: ImageDataset) -> None:
    grown = upscale(digits, 32)
    assert grown.train.images.shape[1:] == (1, 32, 32) and grown.resolution == 32
    assert torch.equal(grown.test.labels, digits.test.labels)
    assert upscale(digits, 8) is digits and upscale(grown, 16) is grown


def test_nb201_training_keeps_the_images_as_given(digits: ImageDataset) -> None:
    assert TrainingEvaluator(digits, TINY).data is digits


def test_evaluator_and_config_errors(digits: ImageDataset) -> None:
    with pytest.raises(ValueError, match="no network to train for space 'darts'; trainable: nb201"):
        TrainingEvaluator(digits, TINY, space="darts")
    with pytest.raises(ValueError, match="width_mult must be positive"):
        TrainConfig(width_mult=0.0)
    with pytest.raises(ValueError, match="min_resolution must be at least 1"):
        TrainConfig(min_resolution=0)


def test_job_trains_mbv3_but_the_table_is_nb201_only() -> None:
    evaluator = build_target(BenchmarkSpec("train", "digits"), TargetSettings(), SPACE).evaluator
    assert isinstance(evaluator, TrainingEvaluator)
    assert (evaluator.space_name, evaluator.dataset, evaluator.data.resolution) == (
        "mbv3",
        "digits",
        32,
    )
    with pytest.raises(ValueError, match=r"NAS-Bench-201 table.*not 'mbv3'.*train:<dataset>"):
        build_target(BenchmarkSpec("nb201", "cifar10"), TargetSettings(), SPACE)


def test_pairs_from_a_search_run(digits: ImageDataset, tmp_path: Path) -> None:
    evaluator = TrainingEvaluator(digits, TINY, space=SPACE)
    result = tmp_path / "run.json"
    strategy = get_strategy("random", SPACE, 0)
    history = run_search(strategy, evaluator, SPACE, 2, progress=False, result_path=result)
    archs, values = load_pairs(result, SPACE)
    assert archs == [trial.arch for trial in history]
    assert values.tolist() == [trial.value for trial in history]
    with pytest.raises(ValueError, match=r"search in space 'mbv3', not 'nb201'"):
        load_pairs(result, get_space("nb201"))


class _FlopsEvaluator(Evaluator):
    """A cheap stand-in objective: fewer FLOPs is better."""

    space_name = "mbv3"
    dataset = "flops"

    def evaluate(self, arch: Arch) -> EvalResult:
        return EvalResult(value=-arch_costs(arch)["flops"] / 1e6, dataset="flops", split="-")


def test_diffusionnag_bo_searches_mbv3_with_the_shipped_score_model() -> None:
    options = {**FAST_OPTIONS["diffusionnag-bo"], "num_init": 4}
    strategy = get_strategy("diffusionnag-bo", SPACE, 0, **options)
    history = run_search(strategy, _FlopsEvaluator(), SPACE, 6, progress=False)
    assert len(history) == 6
    assert len({SPACE.to_string(t.arch) for t in history}) == 6
    assert all(SPACE.validate(t.arch) == t.arch for t in history)
