"""The NB201 network: shapes, and costs checked against an independent closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusionnag.nn.nb201 import (
    build_nb201_network,
    count_flops,
    count_parameters,
    nb201_costs,
)
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import OPERATIONS, NB201Space

KERNEL = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


def closed_form(ops, *, channels, cells, classes, in_channels, resolution):
    """Parameters and MACs written out from the NB201 macro-structure, not from the module."""
    c, r = channels, resolution
    params = in_channels * c * 9 + 2 * c  # stem conv + BN
    flops = in_channels * c * 9 * r * r
    for width in (2 * c, 4 * c):  # reduction blocks: two 3x3 ReLUConvBN + 1x1 shortcut conv
        half, r = width // 2, r // 2
        params += half * width * 9 + width * width * 9 + 2 * 2 * width + half * width
        flops += (half * width * 9 + width * width * 9 + half * width) * r * r
    params += 2 * 4 * c + 4 * c * classes + classes  # final BN + classifier
    flops += 4 * c * classes
    for stage in range(3):
        width, size = c * 2**stage, resolution // 2**stage
        for op in ops:
            k = KERNEL.get(OPERATIONS[op])
            if k is not None:
                params += cells * (width * width * k * k + 2 * width)
                flops += cells * width * width * k * k * size * size
    return params, flops


def test_forward_shapes() -> None:
    arch = Arch("nb201", (3, 2, 1, 4, 0, 3))
    digits = build_nb201_network(arch, channels=4, cells_per_stage=1, in_channels=1)
    assert digits(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    cifar100 = build_nb201_network(arch, channels=4, cells_per_stage=2, num_classes=100)
    assert cifar100(torch.zeros(3, 3, 32, 32)).shape == (3, 100)


def test_benchmark_parameter_range_on_cifar10_settings() -> None:
    costs = [nb201_costs(arch) for arch in NB201Space().enumerate()]
    params = [c["params"] for c in costs]
    flops = [c["flops"] for c in costs]
    # NAS-Bench-201 reports 0.073306 to 1.531546 M parameters and 7.78 to 220.11 M FLOPs.
    assert (min(params), max(params)) == (73_306, 1_531_546)
    assert (min(flops), max(flops)) == (7_783_040, 220_119_680)
    none, conv3 = Arch("nb201", (0,) * 6), Arch("nb201", (3,) * 6)
    assert nb201_costs(none)["params"] == min(params)
    assert nb201_costs(conv3)["params"] == max(params)


@pytest.mark.parametrize("ops", [(0,) * 6, (3,) * 6, (2, 3, 1, 4, 0, 2), (4, 4, 3, 1, 2, 0)])
def test_costs_match_closed_form_and_direct_count(ops: tuple[int, ...]) -> None:
    settings = {"channels": 4, "cells": 2, "classes": 7, "in_channels": 1, "resolution": 8}
    model = build_nb201_network(
        Arch("nb201", ops), channels=4, cells_per_stage=2, num_classes=7, in_channels=1
    )
    params, flops = closed_form(ops, **settings)
    assert count_parameters(model) == params
    assert count_flops(model, (1, 1, 8, 8)) == flops
    cached = nb201_costs(
        Arch("nb201", ops),
        channels=4,
        cells_per_stage=2,
        num_classes=7,
        resolution=8,
        in_channels=1,
    )
    assert cached == {"params": params, "flops": flops}


def test_costs_match_direct_count_at_benchmark_settings() -> None:
    arch = Arch("nb201", (1, 3, 2, 0, 4, 3))
    model = build_nb201_network(arch)
    direct = {"params": count_parameters(model), "flops": count_flops(model, (1, 3, 32, 32))}
    assert nb201_costs(arch) == direct


def test_flops_grow_with_heavier_operations() -> None:
    def flops(ops: tuple[int, ...]) -> int:
        return nb201_costs(Arch("nb201", ops))["flops"]

    free = [flops((op,) * 6) for op in (0, 1, 4)]
    assert free[0] == free[1] == free[2] > 0
    assert free[0] < flops((2,) * 6) < flops((3,) * 6)
    assert flops((0, 0, 0, 0, 0, 2)) < flops((0, 0, 0, 0, 0, 3)) < flops((2, 0, 0, 0, 0, 3))
    batch = build_nb201_network(Arch("nb201", (3,) * 6), channels=4, cells_per_stage=1)
    assert count_flops(batch, (2, 3, 8, 8)) == 2 * count_flops(batch, (1, 3, 8, 8))


def test_count_flops_leaves_model_and_global_rng_untouched() -> None:
    model = build_nb201_network(Arch("nb201", (3,) * 6), channels=4, cells_per_stage=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.random.get_rng_state()
    count_flops(model, (4, 3, 8, 8))
    nb201_costs(Arch("nb201", (3,) * 6), channels=12, cells_per_stage=3)  # builds networks
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_cell_sums_incoming_edges() -> None:
    # Only skip connections 0->1->3 and 0->3: the cell output is 2x its input.
    ops = (1, 0, 0, 1, 1, 0)
    cell = build_nb201_network(Arch("nb201", ops), channels=2, cells_per_stage=1).body[0]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 2, 4, 4))).float()
    assert torch.allclose(cell(x), 2 * x)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="operation indices"):
        build_nb201_network(Arch("nb201", (0, 1, 2)))
    with pytest.raises(ValueError, match="operation indices"):
        nb201_costs(Arch("nb201", (0, 1, 2, 3, 4, 5)))
    with pytest.raises(ValueError, match="not a NAS-Bench-201 cell"):
        nb201_costs(Arch("mbv3", (0,) * 6))
    with pytest.raises(ValueError, match="channels must be at least 1"):
        build_nb201_network(Arch("nb201", (0,) * 6), channels=0)
