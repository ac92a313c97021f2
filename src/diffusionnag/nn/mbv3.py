"""Once-for-all MobileNetV3 subnets in PyTorch, and their exact parameter and FLOP counts.

The network follows OFA's ``OFAMobileNetV3`` (``ofa_mbv3_d234_e346_k357``) as a standalone subnet:

- first conv 3x3 stride 2 to 16 channels, BN, h-swish;
- first block: 3x3 depthwise (expand 1, no expand conv), BN, ReLU, project 1x1 to 16, BN, with an
  identity shortcut (16 -> 16, stride 1);
- five searchable stages, widths (24, 40, 80, 112, 160), first-layer strides (2, 2, 2, 1, 2),
  activations (relu, relu, h-swish, h-swish, h-swish), squeeze-excitation on stages 2, 4 and 5;
  each layer is expand 1x1-BN-act, depthwise kxk-BN-act, optional SE, project 1x1-BN, with an
  identity shortcut where the stride is 1 and the widths match;
- final expand 1x1 to 960, BN, h-swish; global average pool; feature mix 1x1 to 1280 (no bias,
  no BN), h-swish; dropout; linear classifier.

Widths are scaled by ``width_mult`` and rounded with :func:`make_divisible`; the middle width of
a layer is ``make_divisible(round(in * expand))``, the SE hidden width ``make_divisible(mid // 4)``.

FLOPs here are multiply-accumulates of convolutions and linear layers, biases, batch norm,
activations, pooling, SE scaling and residual additions excluded: the convention of OFA's own
``flops_counter``, so "FLOPs" and "MACs" name the same number in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import stage_layers

STEM_WIDTH = 16
FIRST_BLOCK_WIDTH = 16
STAGE_WIDTHS = (24, 40, 80, 112, 160)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)
FINAL_EXPAND_WIDTH = 960
FEATURE_MIX_WIDTH = 1280
SE_REDUCTION = 4
DIVISOR = 8


def make_divisible(value: float, divisor: int = DIVISOR) -> int:
    """Nearest multiple of ``divisor``, at least ``divisor`` and at most 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block; ``expand`` is False for the first block (expand ratio 1)."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    act: str
    se: bool
    expand: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def se_channels(self) -> int:
        return make_divisible(self.mid_channels // SE_REDUCTION)


@dataclass(frozen=True)
class MBV3Costs:
    """Exact costs of one subnet at one resolution, width multiplier and class count."""

    params: int
    flops: int
    """Multiply-accumulates of conv and linear layers for one image (see module docstring)."""


def block_specs(arch: Arch, width_mult: float = 1.0) -> list[BlockSpec]:
    """The first block and every present layer of ``arch``, in execution order."""
    if width_mult <= 0:
        raise ValueError(f"width_mult must be positive, got {width_mult}")
    channels = make_divisible(STEM_WIDTH * width_mult)
    first = make_divisible(FIRST_BLOCK_WIDTH * width_mult)
    specs = [BlockSpec(channels, channels, first, 3, 1, "relu", False, False)]
    channels = first
    for stage, layers in enumerate(stage_layers(arch)):
        width = make_divisible(STAGE_WIDTHS[stage] * width_mult)
        for position, (kernel, expand) in enumerate(layers):
            stride = STAGE_STRIDES[stage] if position == 0 else 1
            mid = make_divisible(round(channels * expand))
            act, se = STAGE_ACTS[stage], STAGE_SE[stage]
            specs.append(BlockSpec(channels, mid, width, kernel, stride, act, se, True))
            channels = width
    return specs


def head_widths(width_mult: float = 1.0) -> tuple[int, int]:
    """Widths of the final expand and feature mix layers."""
    expand_width = make_divisible(FINAL_EXPAND_WIDTH * width_mult)
    return expand_width, make_divisible(FEATURE_MIX_WIDTH * width_mult)


def _activation(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish(inplace=True)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class SqueezeExcite(nn.Module):
    """Channel gates from the pooled features: 1x1 reduce, ReLU, 1x1 expand, hard sigmoid."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        gate = x.mean((2, 3), keepdim=True)  # [B, C, 1, 1]
        gate = self.expand(torch.relu(self.reduce(gate)))
        return x * nn.functional.hardsigmoid(gate)


class InvertedResidual(nn.Module):
    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.mid_channels
        layers: list[nn.Module] = []
        if spec.expand:
            layers += [*_conv_bn(spec.in_channels, mid, 1), _activation(spec.act)]
        layers += [*_conv_bn(mid, mid, spec.kernel, spec.stride, groups=mid), _activation(spec.act)]
        if spec.se:
            layers.append(SqueezeExcite(mid, spec.se_channels))
        layers += _conv_bn(mid, spec.out_channels, 1)
        self.body = nn.Sequential(*layers)
        self.residual = spec.residual

    def forward(self, x: Tensor) -> Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MBV3Net(nn.Module):
    """A standalone once-for-all MobileNetV3 subnet for ``arch``."""

    def __init__(
        self,
        arch: Arch,
        *,
        width_mult: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        _check_sizes(num_classes, in_channels)
        specs = block_specs(arch, width_mult)
        expand_width, mix_width = head_widths(width_mult)
        stem = specs[0].in_channels
        self.stem = nn.Sequential(*_conv_bn(in_channels, stem, 3, 2), nn.Hardswish(inplace=True))
        self.blocks = nn.Sequential(*(InvertedResidual(spec) for spec in specs))
        self.final_expand = nn.Sequential(
            *_conv_bn(specs[-1].out_channels, expand_width, 1), nn.Hardswish(inplace=True)
        )
        self.feature_mix = nn.Sequential(
            nn.Conv2d(expand_width, mix_width, 1, bias=False), nn.Hardswish(inplace=True)
        )
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(mix_width, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)  # [B, 16, H/2, W/2]
        x = self.blocks(x)  # [B, 160, H/32, W/32]
        x = self.final_expand(x).mean((2, 3), keepdim=True)  # [B, 960, 1, 1]
        x = self.feature_mix(x).flatten(1)  # [B, 1280]
        return self.classifier(x)  # [B, num_classes]


def _check_sizes(num_classes: int, in_channels: int) -> None:
    for label, value in [("num_classes", num_classes), ("in_channels", in_channels)]:
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")


def conv_out_size(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel conv with padding ``kernel // 2``."""
    return (size - 1) // stride + 1


def _bn_conv_cost(cin: int, cout: int, kernel: int, groups: int, out: int) -> tuple[int, int]:
    """Params (weights + BN affine) and MACs of a bias-free conv followed by batch norm."""
    weights = cin // groups * cout * kernel * kernel
    return weights + 2 * cout, weights * out * out


def _block_cost(spec: BlockSpec, size: int) -> tuple[int, int, int]:
    """Params, MACs and output size of one block whose input is ``size`` x ``size``."""
    out = conv_out_size(size, spec.stride)
    mid = spec.mid_channels
    parts = [_bn_conv_cost(mid, mid, spec.kernel, mid, out)]
    if spec.expand:
        parts.append(_bn_conv_cost(spec.in_channels, mid, 1, 1, size))
    if spec.se:
        hidden = spec.se_channels
        parts.append((2 * mid * hidden + hidden + mid, 2 * mid * hidden))
    parts.append(_bn_conv_cost(mid, spec.out_channels, 1, 1, out))
    return sum(p for p, _ in parts), sum(f for _, f in parts), out


def _head_cost(last: int, width_mult: float, num_classes: int) -> tuple[int, int]:
    """Params of the head (final expand, feature mix, classifier), MACs of its post-pool part."""
    expand_width, mix_width = head_widths(width_mult)
    params = last * expand_width + 2 * expand_width
    params += expand_width * mix_width + mix_width * num_classes + num_classes
    return params, expand_width * mix_width + mix_width * num_classes


def mbv3_params(
    arch: Arch, width_mult: float = 1.0, num_classes: int = 1000, in_channels: int = 3
) -> int:
    """Closed-form parameter count of ``MBV3Net(arch, ...)`` (BN affine included, no buffers)."""
    _check_sizes(num_classes, in_channels)
    specs = block_specs(arch, width_mult)
    stem_params, _ = _bn_conv_cost(in_channels, specs[0].in_channels, 3, 1, 1)
    blocks = sum(_block_cost(spec, 1)[0] for spec in specs)
    return stem_params + blocks + _head_cost(specs[-1].out_channels, width_mult, num_classes)[0]


def mbv3_flops(
    arch: Arch,
    resolution: int = 224,
    width_mult: float = 1.0,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> int:
    """Closed-form conv + linear multiply-accumulates of one ``resolution``-pixel image."""
    if resolution < 1:
        raise ValueError(f"resolution must be a positive number of pixels, got {resolution}")
    _check_sizes(num_classes, in_channels)
    specs = block_specs(arch, width_mult)
    size = conv_out_size(resolution, 2)
    flops = _bn_conv_cost(in_channels, specs[0].in_channels, 3, 1, size)[1]
    for spec in specs:
        _, block_flops, size = _block_cost(spec, size)
        flops += block_flops
    expand_width, _ = head_widths(width_mult)
    flops += specs[-1].out_channels * expand_width * size * size
    return flops + _head_cost(specs[-1].out_channels, width_mult, num_classes)[1]


@lru_cache(maxsize=1 << 16)
def mbv3_costs(
    arch: Arch,
    resolution: int = 224,
    width_mult: float = 1.0,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> MBV3Costs:
    """Exact params and FLOPs (MACs) of ``arch``'s subnet, analytically and cached."""
    return MBV3Costs(
        params=mbv3_params(arch, width_mult, num_classes, in_channels),
        flops=mbv3_flops(arch, resolution, width_mult, num_classes, in_channels),
    )
