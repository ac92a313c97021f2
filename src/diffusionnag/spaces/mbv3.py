"""The once-for-all MobileNetV3 space as 20 layer slots (5 stages x 4 slots).

Each present layer is an inverted-residual block with a kernel size in {3, 5, 7} and an expand
ratio in {3, 4, 6}: nine operations, ``vocab[i]`` for ``i = 3 * kernel_index + expand_index``.
Each stage keeps its first 2, 3 or 4 slots (its depth); absent slots are always the trailing
ones, as in once-for-all, where a stage of depth d runs its first d blocks.

Encoding, as in the DiffusionNAG paper: a ``[20, 9]`` one-hot node-type matrix in which an absent
slot is an all-zero row (there is no explicit "skip" column). In :class:`Arch`, ``ops[i]`` is the
operation index of slot ``i = 4 * stage + position`` and :data:`SKIP` (-1) marks an absent slot.

The graph is a chain over all 20 slots, absent ones included: the adjacency is one fixed matrix
for the whole space, so training, guidance and decoding share a single attention mask, and an
absent slot passes its input through unchanged, which is what a skipped block does.

String form: stages separated by ``/``, layers within a stage by ``-``, absent slots omitted, e.g.
``k3e4-k5e6/k7e3-k3e3-k5e4/k3e3-k3e3/k5e6-k5e6-k5e6-k5e6/k7e4-k3e6``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffusionnag.spaces.base import Arch, SearchSpace

KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
NUM_STAGES = 5
SLOTS_PER_STAGE = max(DEPTHS)
NUM_SLOTS = NUM_STAGES * SLOTS_PER_STAGE
SKIP = -1
"""``Arch.ops`` value of an absent slot (an all-zero row in the encoding)."""
OPERATIONS = tuple(f"k{k}_e{e}" for k in KERNELS for e in EXPANDS)

_TOKEN = re.compile(r"^k(\d+)e(\d+)$")


def op_index(kernel: int, expand: int) -> int:
    """Vocabulary index of the layer with this kernel size and expand ratio."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel size {kernel}; choose one of {KERNELS}")
    if expand not in EXPANDS:
        raise ValueError(f"unknown expand ratio {expand}; choose one of {EXPANDS}")
    return KERNELS.index(kernel) * len(EXPANDS) + EXPANDS.index(expand)


def op_kernel_expand(op: int) -> tuple[int, int]:
    """``(kernel, expand)`` of vocabulary index ``op``."""
    return KERNELS[op // len(EXPANDS)], EXPANDS[op % len(EXPANDS)]


def stage_depths(arch: Arch) -> tuple[int, ...]:
    """Number of present layers in each of the five stages."""
    _check(arch)
    return tuple(
        sum(op != SKIP for op in arch.ops[s * SLOTS_PER_STAGE : (s + 1) * SLOTS_PER_STAGE])
        for s in range(NUM_STAGES)
    )


def stage_layers(arch: Arch) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Per stage, the ``(kernel, expand)`` of each present layer in order."""
    _check(arch)
    return tuple(
        tuple(
            op_kernel_expand(op)
            for op in arch.ops[s * SLOTS_PER_STAGE : (s + 1) * SLOTS_PER_STAGE]
            if op != SKIP
        )
        for s in range(NUM_STAGES)
    )


def num_archs() -> int:
    """Exact size of the space: ``(9^2 + 9^3 + 9^4)^5``, about 2.18e19."""
    return sum(len(OPERATIONS) ** d for d in DEPTHS) ** NUM_STAGES


class MBV3Space(SearchSpace):
    """Once-for-all MobileNetV3 layers; ``Arch.ops[i]`` indexes :data:`OPERATIONS`, or is -1."""

    name = "mbv3"
    vocab = OPERATIONS
    num_nodes = NUM_SLOTS

    def adjacency(self) -> Tensor:
        return _adjacency().clone()

    def slot_choices(self) -> list[tuple[int, ...]]:
        """Values each slot can take on its own (for per-slot samplers such as TPE): the first
        two slots of a stage are always present, the last two may be absent (:data:`SKIP`)."""
        ops = tuple(range(len(OPERATIONS)))
        optional = (SKIP, *ops)
        return [
            ops if slot % SLOTS_PER_STAGE < min(DEPTHS) else optional for slot in range(NUM_SLOTS)
        ]

    def positions(self) -> Tensor:
        """Position of each slot within its stage (0..3), as the paper's positional embedding."""
        return torch.arange(self.num_nodes) % SLOTS_PER_STAGE

    def encode(self, archs: Sequence[Arch]) -> Tensor:
        x = torch.zeros(len(archs), self.num_nodes, len(self.vocab))
        for row, arch in enumerate(archs):
            _check(arch)
            for slot, op in enumerate(arch.ops):
                if op != SKIP:
                    x[row, slot, op] = 1.0
        return x  # [B, N, V]

    def decode(self, x: Tensor) -> list[Arch | None]:
        hot = x.detach().cpu() > 0.5  # [B, N, V]
        count = hot.sum(-1)  # [B, N]
        absent = (count == 0).view(-1, NUM_STAGES, SLOTS_PER_STAGE)  # [B, S, 4]
        # The first two slots of a stage are always present; a third slot may only be absent
        # together with the fourth, so the absent slots are exactly the trailing ones.
        broken = absent[..., 0] | absent[..., 1] | (absent[..., 2] & ~absent[..., 3])
        ok = (count <= 1).all(-1) & ~broken.any(-1)  # [B]
        ops = torch.where(count == 0, SKIP, hot.float().argmax(-1))  # [B, N]
        return [
            Arch(self.name, tuple(ops[b].tolist())) if ok[b] else None for b in range(x.shape[0])
        ]

    def to_string(self, arch: Arch) -> str:
        stages = stage_layers(arch)
        return "/".join("-".join(f"k{k}e{e}" for k, e in layers) for layers in stages)

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty MobileNetV3 architecture string")
        stages = text.strip().split("/")
        if len(stages) != NUM_STAGES:
            raise ValueError(
                f"architecture string {text!r} has {len(stages)} stages separated by '/', "
                f"expected {NUM_STAGES}"
            )
        ops: list[int] = []
        for number, stage in enumerate(stages, start=1):
            tokens = stage.split("-")
            if len(tokens) not in DEPTHS:
                raise ValueError(
                    f"stage {number} ({stage!r}) of {text!r} has {len(tokens)} layers; "
                    f"depth must be one of {DEPTHS}"
                )
            ops.extend(_parse_layer(token, text) for token in tokens)
            ops.extend([SKIP] * (SLOTS_PER_STAGE - len(tokens)))
        return Arch(self.name, tuple(ops))

    def from_ofa_config(self, config: Mapping[str, Any]) -> Arch:
        """Architecture from once-for-all's ``{'ks': [20], 'e': [20], 'd': [5]}`` dict.

        As in once-for-all, the ``ks``/``e`` entries of layers beyond a stage's depth are ignored.
        """
        missing = {"ks", "e", "d"} - set(config)
        if missing:
            raise ValueError(f"once-for-all config lacks keys {sorted(missing)}; needs ks, e, d")
        kernels, expands, depths = list(config["ks"]), list(config["e"]), list(config["d"])
        if len(kernels) != NUM_SLOTS or len(expands) != NUM_SLOTS or len(depths) != NUM_STAGES:
            raise ValueError(
                f"once-for-all config needs {NUM_SLOTS} 'ks', {NUM_SLOTS} 'e' and {NUM_STAGES} "
                f"'d' values, got {len(kernels)}, {len(expands)} and {len(depths)}"
            )
        ops: list[int] = []
        for stage, depth in enumerate(depths):
            if depth not in DEPTHS:
                raise ValueError(f"depth {depth} of stage {stage + 1}; choose one of {DEPTHS}")
            for position in range(SLOTS_PER_STAGE):
                slot = stage * SLOTS_PER_STAGE + position
                present = position < depth
                ops.append(op_index(int(kernels[slot]), int(expands[slot])) if present else SKIP)
        return Arch(self.name, tuple(ops))

    def to_ofa_config(self, arch: Arch) -> dict[str, list[int]]:
        """Once-for-all dict; absent slots get ks 3 and e 3, values once-for-all ignores."""
        depths = stage_depths(arch)
        kernels, expands = [], []
        for op in arch.ops:
            kernel, expand = op_kernel_expand(op) if op != SKIP else (KERNELS[0], EXPANDS[0])
            kernels.append(kernel)
            expands.append(expand)
        return {"ks": kernels, "e": expands, "d": list(depths)}

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        depths = rng.integers(min(DEPTHS), max(DEPTHS) + 1, size=(n, NUM_STAGES))
        draws = rng.integers(len(OPERATIONS), size=(n, NUM_STAGES, SLOTS_PER_STAGE))
        position = np.arange(SLOTS_PER_STAGE)
        ops = np.where(position[None, None, :] < depths[:, :, None], draws, SKIP)
        return [Arch(self.name, tuple(int(v) for v in row.ravel())) for row in ops]

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Change one layer's operation, drop a stage's last layer, or append one (any op)."""
        depths = stage_depths(arch)
        ops = arch.ops
        result: list[Arch] = []
        for slot, current in enumerate(ops):
            if current != SKIP:
                result.extend(
                    _replace(arch, slot, op) for op in range(len(OPERATIONS)) if op != current
                )
        for stage, depth in enumerate(depths):
            last = stage * SLOTS_PER_STAGE + depth - 1
            if depth > min(DEPTHS):
                result.append(_replace(arch, last, SKIP))
            if depth < max(DEPTHS):
                result.extend(_replace(arch, last + 1, op) for op in range(len(OPERATIONS)))
        return result

    def num_archs(self) -> int:
        return num_archs()


def _replace(arch: Arch, slot: int, op: int) -> Arch:
    return Arch(arch.space, (*arch.ops[:slot], op, *arch.ops[slot + 1 :]))


def _parse_layer(token: str, text: str) -> int:
    match = _TOKEN.match(token)
    if match is None:
        raise ValueError(f"layer {token!r} in {text!r} is not of the form k<kernel>e<expand>")
    kernel, expand = int(match.group(1)), int(match.group(2))
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel size {kernel} in {text!r}; choose one of {KERNELS}")
    if expand not in EXPANDS:
        raise ValueError(f"unknown expand ratio {expand} in {text!r}; choose one of {EXPANDS}")
    return op_index(kernel, expand)


def _check(arch: Arch) -> None:
    """``ValueError`` unless ``arch`` is a well-formed mbv3 architecture."""
    if arch.space != MBV3Space.name:
        raise ValueError(f"architecture of space {arch.space!r} given to space 'mbv3'")
    if len(arch.ops) != NUM_SLOTS:
        raise ValueError(f"mbv3 architecture needs {NUM_SLOTS} slots, got {len(arch.ops)}")
    if any(not (op == SKIP or 0 <= op < len(OPERATIONS)) for op in arch.ops):
        raise ValueError(f"mbv3 ops must be -1 or 0..{len(OPERATIONS) - 1}, got {arch.ops}")
    for stage in range(NUM_STAGES):
        present = [op != SKIP for op in arch.ops[stage * SLOTS_PER_STAGE :][:SLOTS_PER_STAGE]]
        depth = sum(present)
        if depth not in DEPTHS or present != sorted(present, reverse=True):
            raise ValueError(
                f"stage {stage + 1} of {arch.ops} must keep its first 2, 3 or 4 slots, "
                f"got presence {present}"
            )


@cache
def _adjacency() -> Tensor:
    """A chain through all 20 slots, absent slots included (they act as identities)."""
    adj = torch.zeros(NUM_SLOTS, NUM_SLOTS)
    index = torch.arange(NUM_SLOTS - 1)
    adj[index, index + 1] = 1.0
    return adj
