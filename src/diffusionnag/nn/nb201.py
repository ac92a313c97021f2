"""The NAS-Bench-201 network of a cell, for real training and for cost counts.

Macro-structure as in the benchmark: a 3x3 conv + BN stem, three stages of ``N`` copies of the
cell at ``C``, ``2C`` and ``4C`` channels, joined by residual reduction blocks, then BN-ReLU,
global average pooling and a linear classifier. Every BN layer is affine with running statistics,
which is what the benchmark trained; with it the CIFAR-10 parameter counts match the benchmark's
(0.0733M for cells without convolutions to 1.5315M for the all-``nor_conv_3x3`` cell).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from diffusionnag.nn.costs import count_flops, count_parameters
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import CELL_NODES, EDGES, OPERATIONS


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class Zero(nn.Module):
    """The ``none`` operation; multiplying keeps NaN/inf visible, as the benchmark's Zero does."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mul(0.0)


def make_operation(name: str, channels: int) -> nn.Module:
    """One cell edge; every operation keeps the shape ``[B, C, H, W]``."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}; known: {', '.join(OPERATIONS)}")


def _check_ops(ops: tuple[int, ...]) -> None:
    if len(ops) != len(EDGES) or not all(0 <= op < len(OPERATIONS) for op in ops):
        raise ValueError(
            f"a cell needs {len(EDGES)} operation indices in 0..{len(OPERATIONS) - 1}, got {ops}"
        )


class Cell(nn.Module):
    """Node i is the sum of the operations on the edges into it; node 0 is the input."""

    def __init__(self, ops: tuple[int, ...], channels: int) -> None:
        super().__init__()
        _check_ops(ops)
        self.edges = nn.ModuleList(make_operation(OPERATIONS[op], channels) for op in ops)
        self.incoming = [
            [(k, src) for k, (src, dst) in enumerate(EDGES) if dst == node]
            for node in range(1, CELL_NODES)
        ]

    def forward(self, x: Tensor) -> Tensor:
        nodes = [x]  # each [B, C, H, W]
        for edges_in in self.incoming:
            terms = [self.edges[k](nodes[src]) for k, src in edges_in]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class ReductionBlock(nn.Module):
    """Residual block halving the resolution; the shortcut is AvgPool 2x2 then a 1x1 conv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    def __init__(
        self,
        ops: tuple[int, ...],
        channels: int,
        cells_per_stage: int,
        num_classes: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        blocks: list[nn.Module] = []
        for stage in range(3):
            width = channels * 2**stage
            if stage > 0:
                blocks.append(ReductionBlock(width // 2, width))
            blocks.extend(Cell(ops, width) for _ in range(cells_per_stage))
        self.body = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(channels * 4), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(channels * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.body(self.stem(x))  # [B, 4C, H/4, W/4]
        x = self.head(x).mean(dim=(2, 3))  # [B, 4C]
        return self.classifier(x)  # [B, num_classes]


def build_nb201_network(
    arch: Arch,
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    in_channels: int = 3,
) -> nn.Module:
    """The NAS-Bench-201 network of ``arch`` (benchmark defaults: C=16, N=5).

    >>> import torch
    >>> from diffusionnag import build_nb201_network, get_space
    >>> text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|"
    >>> cell = get_space("nb201").from_string(text + "+|skip_connect~0|none~1|nor_conv_1x1~2|")
    >>> network = build_nb201_network(cell, channels=8, cells_per_stage=1, num_classes=10)
    >>> network(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    if arch.space != "nb201":
        raise ValueError(f"architecture of space {arch.space!r} is not a NAS-Bench-201 cell")
    for label, value in [
        ("channels", channels),
        ("cells_per_stage", cells_per_stage),
        ("num_classes", num_classes),
        ("in_channels", in_channels),
    ]:
        if value < 1:
            raise ValueError(f"{label} must be at least 1, got {value}")
    return NB201Network(tuple(arch.ops), channels, cells_per_stage, num_classes, in_channels)


@lru_cache(maxsize=256)
def _edge_costs(
    channels: int, cells_per_stage: int, num_classes: int, resolution: int, in_channels: int
) -> tuple[tuple[int, int], tuple[tuple[int, ...], ...]]:
    """``(params, flops)`` of the network without cells, and what one edge of each operation adds.

    Every edge keeps its stage's shape, so an edge's cost depends only on its operation: the
    network with one uniform cell per stage, minus the all-``none`` network, is six such edges
    per stage. Five small networks are counted once per setting instead of one large one per cell.
    """
    counts = []
    for op in range(len(OPERATIONS)):
        with torch.random.fork_rng(devices=[]):  # initialisation must not move the global RNG
            model = build_nb201_network(
                Arch("nb201", (op,) * len(EDGES)),
                channels=channels,
                cells_per_stage=1,
                num_classes=num_classes,
                in_channels=in_channels,
            )
        flops = count_flops(model, (1, in_channels, resolution, resolution))
        counts.append((count_parameters(model), flops))
    base = counts[OPERATIONS.index("none")]
    per_edge = tuple(
        tuple(cells_per_stage * (c - b) // len(EDGES) for c, b in zip(count, base, strict=True))
        for count in counts
    )
    return base, per_edge


def nb201_costs(
    arch: Arch,
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    resolution: int = 32,
    in_channels: int = 3,
) -> dict[str, int]:
    """``{'params': ..., 'flops': ...}`` of the network for one image, as :func:`count_parameters`
    and :func:`count_flops` count them on the built network (cached per setting)."""
    if arch.space != "nb201":
        raise ValueError(f"architecture of space {arch.space!r} is not a NAS-Bench-201 cell")
    if resolution < 4:
        raise ValueError(f"resolution must be at least 4 (two reductions), got {resolution}")
    base, per_edge = _edge_costs(channels, cells_per_stage, num_classes, resolution, in_channels)
    _check_ops(tuple(arch.ops))
    params = base[0] + sum(per_edge[op][0] for op in arch.ops)
    flops = base[1] + sum(per_edge[op][1] for op in arch.ops)
    return {"params": params, "flops": flops}
