"""An architecture's exact costs by its space, for callers that hold only an :class:`Arch`.

The costs come from the networks built here, and the networks are built from the spaces' cells,
so this function lives with the networks: ``spaces`` never imports ``nn``.
"""

from __future__ import annotations

from diffusionnag.nn.mbv3 import mbv3_costs
from diffusionnag.nn.nb201 import nb201_costs
from diffusionnag.spaces.base import Arch

COST_SPACES = ("mbv3", "nb201")


def arch_costs(arch: Arch) -> dict[str, float]:
    """Parameters and FLOPs (multiply-accumulates) of the architecture's network: NAS-Bench-201
    on CIFAR-10 settings (C=16, N=5, 32 px), MobileNetV3 subnets on ImageNet at 224 px."""
    if arch.space == "nb201":
        return {key: float(value) for key, value in nb201_costs(arch).items()}
    if arch.space == "mbv3":
        costs = mbv3_costs(arch)
        return {"params": float(costs.params), "flops": float(costs.flops)}
    raise ValueError(
        f"search space {arch.space!r} has no cost model; known: {', '.join(COST_SPACES)}"
    )
