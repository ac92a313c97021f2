"""Task families: names, JSON, the sampler's draws, and what each transformation does to images."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from diffusionnag.evaluators.task_transforms import TRANSFORMS, split_generator
from diffusionnag.evaluators.tasks import TaskSampler, TaskSpec, load_task

PLAIN = TaskSpec("digits", (0, 1, 2), 40, 16, seed=5)


def family(transform: str) -> TaskSpec:
    return dataclasses.replace(PLAIN, transform=transform)


def total_variation(images: Tensor) -> float:
    """Mean absolute difference of neighbouring pixels: high for sharp or noisy images."""
    across = (images[..., 1:] - images[..., :-1]).abs().mean()
    down = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return float(across + down)


def test_a_family_is_part_of_the_name_and_the_json() -> None:
    rotated = family("rotate")
    assert rotated.name == "digits/c0-1-2/n40/r16/s5/rotate"
    assert TaskSpec.from_name(rotated.name) == rotated
    assert TaskSpec.from_json(rotated.to_json()) == rotated
    # specs and samplers saved before families existed still match
    assert PLAIN.name == "digits/c0-1-2/n40/r16/s5" and "transform" not in PLAIN.to_json()
    assert "transforms" not in TaskSampler("digits").to_json()
    with pytest.raises(ValueError, match="unknown task transform 'zoom'; known: none, invert"):
        TaskSpec.from_name("digits/c0-1-2/n40/r16/s5/zoom")
    with pytest.raises(ValueError, match=r"mistyped field\(s\) transform"):
        TaskSpec.from_json({**PLAIN.to_json(), "transform": 3})


def test_sampler_draws_families_and_one_family_draws_as_before() -> None:
    default = TaskSampler("digits", resolutions=(8, 16), max_per_class=100, seed=3)
    assert default.sample(20) == dataclasses.replace(default, transforms=("none",)).sample(20)
    mixed = dataclasses.replace(default, transforms=("none", "rotate", "noise"))
    specs = mixed.sample(40)
    assert {s.transform for s in specs} == {"none", "rotate", "noise"}
    assert specs == mixed.sample(40)
    assert mixed.to_json()["transforms"] == ["none", "rotate", "noise"]
    with pytest.raises(ValueError, match="task transforms must be distinct names"):
        TaskSampler("digits", transforms=("rotate", "rotate"))
    with pytest.raises(ValueError, match="got \\['blurry'\\]"):
        TaskSampler("digits", transforms=("blurry",))


def test_each_family_changes_the_images_as_documented() -> None:
    plain = load_task(PLAIN)
    tasks = {name: load_task(family(name)) for name in TRANSFORMS if name != "none"}
    for name, task in tasks.items():
        assert task.train.images.shape == plain.train.images.shape, name
        assert torch.equal(task.train.labels, plain.train.labels), name
        assert not torch.equal(task.train.images, plain.train.images), name
        # every task is standardised by its own training images
        assert abs(float(task.train.images.mean())) < 1e-4, name
    # the negative, exactly, after standardisation
    assert torch.equal(tasks["invert"].train.images, -plain.train.images)
    assert total_variation(tasks["blur"].train.images) < total_variation(plain.train.images)
    assert total_variation(tasks["noise"].train.images) > total_variation(plain.train.images)
    # rotation keeps the class (labels) but moves pixels; angles differ between images
    turned = tasks["rotate"].train.images
    distance = (turned - plain.train.images).flatten(1).norm(dim=1)
    assert float(distance.min()) < float(distance.max()) / 2


def test_families_repeat_exactly_and_draw_splits_apart() -> None:
    for name in ("rotate", "noise"):
        first = load_task(family(name))
        load_task.cache_clear()
        again = load_task(family(name))
        assert torch.equal(first.train.images, again.train.images), name
        assert torch.equal(first.test.images, again.test.images), name
    draws = {
        (split, stage): torch.randn(8, generator=split_generator(5, split, stage))
        for split in range(3)
        for stage in range(2)
    }
    assert len({tuple(d.tolist()) for d in draws.values()}) == 6
    assert torch.equal(torch.randn(8, generator=split_generator(5, 2, 1)), draws[2, 1])
