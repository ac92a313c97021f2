"""MobileNetV3 subnet costs as a constant plus one term per present layer slot.

In the once-for-all space a layer's shape depends only on its slot and its own kernel and expand
ratio: every stage keeps at least two layers, so each slot's input width and feature-map size
are fixed, and so is the head. Parameters, FLOPs and summed per-layer latency are therefore
additive over slots. Tabulating them once (from the exact cost functions, by differences) makes a
cost a 20-term sum, fast enough to reject-sample cells under a tight budget; :func:`slot_costs`
checks the tables against the exact functions before returning them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import (
    DEPTHS,
    NUM_SLOTS,
    NUM_STAGES,
    OPERATIONS,
    SKIP,
    SLOTS_PER_STAGE,
    MBV3Space,
)

CostFunction = Callable[[Arch], Mapping[str, float]]
_CHECKS = 64
"""Random cells on which the tables must reproduce the exact costs."""


class SlotCosts:
    """``cost(arch)[name] = base[name] + sum of table[name][slot, op] over present slots``."""

    def __init__(self, base: Mapping[str, float], tables: Mapping[str, np.ndarray]) -> None:
        self.base = dict(base)
        self.tables = {name: table.tolist() for name, table in tables.items()}  # [20][9]

    def __call__(self, arch: Arch) -> dict[str, float]:
        present = [(slot, op) for slot, op in enumerate(arch.ops) if op != SKIP]
        return {
            name: self.base[name] + sum(table[slot][op] for slot, op in present)
            for name, table in self.tables.items()
        }


def slot_costs(exact: CostFunction) -> SlotCosts:
    """Tables of ``exact`` (a function of valid mbv3 cells) by differences from a reference
    cell (every stage two layers of operation 0); ``RuntimeError`` if they do not reproduce it."""
    reference = [op for _ in range(NUM_STAGES) for op in (0, 0, SKIP, SKIP)]
    base = dict(exact(_arch(reference)))
    tables = {name: np.zeros((NUM_SLOTS, len(OPERATIONS))) for name in base}
    for slot in range(NUM_SLOTS):
        before = list(reference)
        if slot % SLOTS_PER_STAGE == min(DEPTHS) + 1:  # the fourth slot needs the third present
            before[slot - 1] = 0
        start = exact(_arch(before))
        for op in range(len(OPERATIONS)):
            after = exact(_arch([*before[:slot], op, *before[slot + 1 :]]))
            for name in base:
                tables[name][slot, op] = after[name] - start[name]
    costs = SlotCosts(base, tables)
    _check(costs, exact)
    return costs


def _arch(ops: list[int]) -> Arch:
    return Arch(MBV3Space.name, tuple(ops))


def _check(costs: SlotCosts, exact: CostFunction) -> None:
    """Our derivation is wrong (not the user's input) if a random cell's costs differ."""
    for arch in MBV3Space().sample(_CHECKS, np.random.default_rng(0)):
        tabulated, truth = costs(arch), exact(arch)
        for name, value in truth.items():
            if not math.isclose(tabulated[name], value, rel_tol=1e-9):
                raise RuntimeError(
                    f"{name} is not additive over slots: {tabulated[name]} tabulated, "
                    f"{value} exact for {MBV3Space().to_string(arch)}"
                )
