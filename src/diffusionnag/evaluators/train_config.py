"""The training protocol: a typed, validated config that every trained label records, and the
SGD steps it takes on a split of a given size."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Training protocol. The defaults (C=16, N=1, 5 epochs) suit the 8x8 digits: an epoch takes
    about 2.4 s on one busy CPU core; the benchmark's own network is ``cells_per_stage=5``.

    ``channels`` and ``cells_per_stage`` size NB201 networks; ``width_mult`` and
    ``min_resolution`` size MobileNetV3 subnets. Those halve the image five times (total stride
    32), so smaller images are upscaled bilinearly to ``min_resolution`` once, before training:
    at 32 px every stride-2 layer still halves a map larger than 1x1, while at the digits' 8 px
    stages 2 to 5 would run on 2x2 and 1x1 maps. A kernel size only changes what a layer
    computes where its input map is larger than 2x2 (beyond, its taps see only padding), so at
    32 px kernels matter in stages 1 and 2 and the first layer of stage 3; making every choice
    count takes 128 px, at 16 times the cost. At the default
    ``width_mult=0.25`` one epoch of the largest subnet (all layers k7e6) on digits at 32 px,
    BN recalibration included, took 5 to 7 s on one core of a busy two-core machine (18 to 21 s
    at width 1.0).

    ``num_threads`` sets PyTorch's intra-op threads during the run (``None`` leaves PyTorch's
    setting). The default of 1 keeps results identical across machines, since CPU reductions
    depend on the thread count, and is the fast choice for small networks on a shared CPU: two
    threads on two busy cores made a digits epoch five times slower in our measurements.

    ``steps``: the least number of SGD steps (``None``: none). A few epochs of a small dataset
    are a few steps: 4 epochs of 54 training images are 4 steps, after which every cell scores
    chance. With ``steps`` set, a dataset trains for ``max(epochs, ceil(steps / steps per
    epoch))`` epochs (:meth:`for_train_size`), so the protocol scales with the data.

    ``channels_last`` and ``bf16`` make a step cheaper. Channels-last memory changes only the
    convolution kernels' order of summation (results differ at float rounding, as between two
    machines); ``bf16`` runs convolutions and linear layers in bfloat16 under autocast, a
    different protocol whose agreement with float32 has to be measured. One NB201 step (N=1,
    28 px, batch 64, one thread of an AMX-capable Xeon) took 193 ms, 137 ms channels-last and
    85 ms with both (``benchmarks/profile_train_step.py --compare-formats``).
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    channels: int = 16
    cells_per_stage: int = 1
    width_mult: float = 0.25
    min_resolution: int = 32
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = 1
    steps: int | None = None
    channels_last: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "channels", "cells_per_stage", "min_resolution"):
            if getattr(self, name) < 1:
                value = getattr(self, name)
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {value}")
        if self.width_mult <= 0:
            raise ValueError(f"TrainConfig.width_mult must be positive, got {self.width_mult}")
        if self.lr <= 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("TrainConfig needs lr > 0, momentum >= 0 and weight_decay >= 0")
        for name in ("num_threads", "steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1 or None, got {value}")

    def settings(self) -> dict[str, Any]:
        """The settings that fix a result, as journals and meta-datasets record them: all but
        the device, and ``steps``, ``channels_last`` and ``bf16`` only when set (records
        written before they existed have none, and must still match)."""
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k != "device"}
        for name in ("steps", "channels_last", "bf16"):
            if settings[name] in (None, False):
                del settings[name]
        return settings

    def for_train_size(self, train_size: int) -> TrainConfig:
        """This config with ``epochs`` raised to give at least ``steps`` SGD steps on a
        training split of ``train_size`` images (itself when ``steps`` is unset)."""
        if self.steps is None:
            return self
        per_epoch = steps_per_epoch(train_size, self.batch_size)
        return dataclasses.replace(self, epochs=max(self.epochs, math.ceil(self.steps / per_epoch)))


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """SGD steps in one pass: a last batch of one image is skipped (BN cannot normalise a lone
    sample at 1x1 resolution), so it is not a step."""
    full, rest = divmod(train_size, batch_size)
    return max(1, full + (rest >= 2))
