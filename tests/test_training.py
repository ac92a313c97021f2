"""Real training on digits: learns, repeats exactly by seed, and reports divergence as a result."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from diffusionnag.evaluators.datasets import load_digits
from diffusionnag.evaluators.image_data import ImageDataset, Split
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator, TrainProgress, correct_predictions
from diffusionnag.spaces.base import Arch

CONV3 = Arch("nb201", (3,) * 6)
TINY = TrainConfig(epochs=2, batch_size=32, channels=8, cells_per_stage=1, seed=0, num_threads=1)


def _subset(data: ImageDataset, n: int) -> Split:
    return Split(data.train.images[:n].clone(), data.train.labels[:n].clone())


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    """Digits with 512 of its training images, to keep each run near a second."""
    data = load_digits(seed=0)
    return dataclasses.replace(data, train=_subset(data, 512))


def test_training_beats_chance_and_repeats_exactly(digits: ImageDataset) -> None:
    seen: list[TrainProgress] = []
    rng_state = torch.random.get_rng_state()
    first = TrainingEvaluator(digits, TINY, progress=seen.append).evaluate(CONV3)
    second = TrainingEvaluator(digits, TINY).evaluate(CONV3)
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    assert not first.failed
    assert first.value > 70.0 and first.metrics["test_accuracy"] > 70.0  # chance is 10%
    assert (first.value, first.metrics["test_accuracy"]) == (
        second.value,
        second.metrics["test_accuracy"],
    )
    assert (first.dataset, first.split, first.epochs) == ("digits", "valid", 2)
    assert first.metrics["params"] > 0 and first.metrics["flops"] > 0
    assert 0 < first.metrics["train_seconds"] <= first.cost_seconds
    assert len(seen) == 2 * 16 and seen[-1].epoch == 2 and seen[-1].batches == 16
    assert all(math.isfinite(p.loss) for p in seen)


def test_per_image_outcomes_give_the_reported_accuracies(digits: ImageDataset) -> None:
    evaluator = TrainingEvaluator(digits, TINY)
    result = evaluator.evaluate(CONV3)
    model = evaluator.train_network(CONV3)
    assert model is not None
    valid = correct_predictions(model, digits.valid, evaluator.device, 100)
    test = correct_predictions(model, digits.test, evaluator.device, 100)
    assert valid.dtype == torch.bool and valid.shape == (len(digits.valid),)
    assert 100.0 * int(valid.sum()) / len(valid) == result.value
    assert 100.0 * int(test.sum()) / len(test) == result.metrics["test_accuracy"]


def test_poisoned_input_gives_failed_result(digits: ImageDataset) -> None:
    train = _subset(digits, 32)
    train.images[3] = float("nan")
    poisoned = dataclasses.replace(digits, train=train)
    result = TrainingEvaluator(poisoned, dataclasses.replace(TINY, epochs=1)).evaluate(CONV3)
    assert result.failed and math.isnan(result.value)
    assert math.isnan(result.metrics["test_accuracy"])


def test_exploding_learning_rate_gives_failed_result(digits: ImageDataset) -> None:
    small = dataclasses.replace(digits, train=_subset(digits, 256))
    config = dataclasses.replace(TINY, epochs=1, lr=1e9)
    evaluator = TrainingEvaluator(small, config)
    result = evaluator.evaluate(CONV3)
    assert result.failed and math.isnan(result.value)
    assert evaluator.train_network(CONV3) is None


def test_train_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="lr > 0"):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match="num_threads"):
        TrainConfig(num_threads=0)


@pytest.mark.parametrize("numerics", [{"channels_last": True}, {"bf16": True}])
def test_cheaper_numerics_learn_repeat_and_are_recorded(
    digits: ImageDataset, numerics: dict[str, bool]
) -> None:
    config = dataclasses.replace(TINY, **numerics)
    first = TrainingEvaluator(digits, config).evaluate(CONV3)
    again = TrainingEvaluator(digits, config).evaluate(CONV3)
    default = TrainingEvaluator(digits, TINY).evaluate(CONV3)
    assert first.value == again.value and not first.failed
    assert first.value > 70.0 and abs(first.value - default.value) < 10.0
    if numerics == {"channels_last": True}:
        model = TrainingEvaluator(digits, config).build_network(CONV3)
        convs = [p for p in model.parameters() if p.dim() == 4]
        # channels fastest, then width: 1x1 kernels too, whose default strides are also
        # "contiguous" in channels-last and so would not be converted by .contiguous()
        assert any(p.shape[-1] == 1 for p in convs)
        assert all(p.stride(1) == 1 and p.stride(3) == p.shape[1] for p in convs)
    name = next(iter(numerics))
    assert config.settings()[name] is True and name not in TINY.settings()
