"""Once-for-all MobileNetV3 subnets: analytic costs against built models and published numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.nn.costs import count_flops, count_parameters
from diffusionnag.nn.mbv3 import (
    MBV3Costs,
    MBV3Net,
    block_specs,
    make_divisible,
    mbv3_costs,
    mbv3_flops,
    mbv3_params,
)
from diffusionnag.spaces.mbv3 import MBV3Space

SPACE = MBV3Space()
LARGEST = SPACE.from_string("/".join(["k7e6-k7e6-k7e6-k7e6"] * 5))
SMALLEST = SPACE.from_string("/".join(["k3e3-k3e3"] * 5))
MIXED = SPACE.from_string("k3e4-k5e6/k7e3-k3e3-k5e4/k3e3-k3e3/k5e6-k5e6-k5e6-k5e6/k7e4-k3e6")
RANDOM = SPACE.sample(3, np.random.default_rng(0))


def test_make_divisible() -> None:
    values = (16, 12, 28.8, 4, 1280 * 0.75, 35, 18)
    # 18 rounds to 16, more than 10% below, so it goes up to 24
    assert [make_divisible(v) for v in values] == [16, 16, 32, 8, 960, 32, 24]


@pytest.mark.parametrize(
    ("arch", "width_mult", "num_classes"),
    [
        (LARGEST, 1.0, 1000),
        (SMALLEST, 1.0, 1000),
        (MIXED, 0.75, 10),
        (MIXED, 1.2, 1000),
        *[(arch, 1.0, 100) for arch in RANDOM],
    ],
)
def test_analytic_params_equal_built_model(arch, width_mult: float, num_classes: int) -> None:
    model = MBV3Net(arch, width_mult=width_mult, num_classes=num_classes)
    assert mbv3_params(arch, width_mult, num_classes) == count_parameters(model)


@pytest.mark.parametrize(
    ("arch", "resolution", "width_mult"),
    [
        (LARGEST, 64, 1.0),
        (SMALLEST, 224, 1.0),
        (MIXED, 97, 1.0),  # odd sizes exercise the ceil(size / stride) rounding
        (MIXED, 48, 1.2),
        (RANDOM[0], 130, 0.75),
    ],
)
def test_analytic_flops_equal_hook_counted(arch, resolution: int, width_mult: float) -> None:
    model = MBV3Net(arch, width_mult=width_mult, num_classes=10)
    assert mbv3_flops(arch, resolution, width_mult, 10) == count_flops(
        model, (1, 3, resolution, resolution)
    )
    assert model.training  # counting does not leave the model in eval mode


def test_forward_shape_small_resolution() -> None:
    torch.manual_seed(0)
    model = MBV3Net(MIXED, num_classes=7)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_block_layout_follows_ofa() -> None:
    specs = block_specs(MIXED)
    assert len(specs) == 1 + 13  # the fixed first block plus every present layer
    first = specs[0]
    assert (first.in_channels, first.out_channels, first.expand, first.residual) == (
        16,
        16,
        False,
        True,
    )
    stage4_first = specs[1 + 2 + 3 + 2]  # 80 -> 112 at stride 1: no identity shortcut
    assert (stage4_first.in_channels, stage4_first.out_channels) == (80, 112)
    assert stage4_first.stride == 1 and not stage4_first.residual
    assert [s.stride for s in specs if not s.residual] == [2, 2, 2, 1, 2]
    assert specs[1].mid_channels == 64  # 16 in, expand 4
    se = specs[3]  # stage 2 layer 1: 24 in, expand 3 -> 72 mid; 72 // 4 = 18 -> 24 (16 < 0.9 * 18)
    assert (se.mid_channels, se.se, se.se_channels, se.act) == (72, True, 24, "relu")


def test_costs_cached_and_space_range() -> None:
    costs = mbv3_costs(LARGEST)
    assert costs is mbv3_costs(LARGEST)
    assert costs == MBV3Costs(params=7_664_760, flops=566_170_656)
    assert mbv3_costs(SMALLEST) == MBV3Costs(params=3_410_792, flops=121_278_672)
    for arch in SPACE.sample(200, np.random.default_rng(1)):
        sample = mbv3_costs(arch)
        assert 3_410_792 <= sample.params <= 7_664_760
        assert 121_278_672 <= sample.flops <= 566_170_656


@pytest.mark.parametrize(
    ("text", "resolution", "params_m", "macs_m"),
    [
        # OFA's published specialised nets (mit-han-lab/once-for-all README.md: note8_lat@22ms
        # 4.3M params / 67M MACs, note8_lat@31ms 4.6M / 101M); their ks/e/d and input sizes
        # from open-mmlab/mmrazor configs/nas/mmcls/onceforall/OFA_SUBNET_NOTE8_LAT{22,31}.yaml.
        ("k3e3-k3e3/k5e3-k5e3/k7e4-k3e3/k5e3-k3e4/k3e6-k7e6", 140, 4.3, 67),
        (
            "k5e3-k3e3/k5e4-k5e3/k3e4-k3e4-k5e4/k3e4-k5e3-k7e4/k3e6-k3e3-k5e3-k5e3",
            152,
            4.6,
            101,
        ),
    ],
)
def test_matches_published_ofa_numbers(text: str, resolution: int, params_m, macs_m) -> None:
    costs = mbv3_costs(SPACE.from_string(text), resolution)
    assert round(costs.params / 1e6, 1) == params_m
    assert round(costs.flops / 1e6) == macs_m


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, "resolution"),
        ({"width_mult": 0.0}, "width_mult"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_cost_argument_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mbv3_costs(SMALLEST, **kwargs)
