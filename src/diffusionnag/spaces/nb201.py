"""NAS-Bench-201 cells as operation-on-node DAGs.

A cell has four feature maps (cell nodes 0..3) and an operation on each of the six edges
``j -> i`` (j < i). As in the DiffusionNAG paper each edge becomes a graph node, giving 8 nodes:
``input``, the six operations in cell-string order, ``output``. The adjacency of that graph is
derived from the cell's edges, never written out by hand.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from functools import cache

import numpy as np
import torch
from torch import Tensor

from diffusionnag.spaces.base import Arch, SearchSpace

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CELL_NODES = 4
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for i in range(1, CELL_NODES) for j in range(i))
"""``(from, to)`` cell-node pairs in cell-string order: (0,1), (0,2), (1,2), (0,3), (1,3), (2,3)."""

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")


class NB201Space(SearchSpace):
    """The 15,625 NAS-Bench-201 cells; ``Arch.ops[k]`` indexes :data:`OPERATIONS` for edge k."""

    name = "nb201"
    vocab = ("input", "output", *OPERATIONS)
    num_nodes = len(EDGES) + 2

    def adjacency(self) -> Tensor:
        return _adjacency().clone()

    def encode(self, archs: Sequence[Arch]) -> Tensor:
        index = torch.empty(len(archs), self.num_nodes, dtype=torch.long)
        index[:, 0] = 0
        index[:, -1] = 1
        for row, arch in enumerate(archs):
            if arch.space != self.name or len(arch.ops) != len(EDGES):
                raise ValueError(f"not an nb201 architecture: {arch}")
            index[row, 1:-1] = torch.tensor(arch.ops) + 2
        return torch.nn.functional.one_hot(index, len(self.vocab)).float()

    def decode(self, x: Tensor) -> list[Arch | None]:
        hot = x.detach().cpu() > 0.5  # [B, N, V]
        single = hot.sum(-1) == 1  # [B, N]
        kind = hot.float().argmax(-1)  # [B, N]
        ok = single.all(-1) & (kind[:, 0] == 0) & (kind[:, -1] == 1) & (kind[:, 1:-1] >= 2).all(-1)
        return [
            Arch(self.name, tuple((kind[b, 1:-1] - 2).tolist())) if ok[b] else None
            for b in range(x.shape[0])
        ]

    def to_string(self, arch: Arch) -> str:
        groups: list[list[str]] = [[] for _ in range(CELL_NODES - 1)]
        for (src, dst), op in zip(EDGES, arch.ops, strict=True):
            groups[dst - 1].append(f"{OPERATIONS[op]}~{src}")
        return "+".join("|" + "|".join(group) + "|" for group in groups)

    def from_string(self, text: str) -> Arch:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty NAS-Bench-201 cell string")
        groups = text.strip().split("+")
        if len(groups) != CELL_NODES - 1:
            raise ValueError(
                f"cell string {text!r} has {len(groups)} node groups separated by '+', expected 3"
            )
        ops: list[int] = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise ValueError(f"node group {group!r} in {text!r} must start and end with '|'")
            tokens = group[1:-1].split("|")
            if len(tokens) != node:
                raise ValueError(
                    f"node group {group!r} in {text!r} has {len(tokens)} edges, expected {node}"
                )
            for src, token in enumerate(tokens):
                match = _TOKEN.match(token)
                if match is None:
                    raise ValueError(f"edge {token!r} in {text!r} is not of the form op~index")
                op, index = match.group(1), int(match.group(2))
                if op not in OPERATIONS:
                    raise ValueError(
                        f"unknown operation {op!r} in {text!r}; known: {', '.join(OPERATIONS)}"
                    )
                if index != src:
                    raise ValueError(
                        f"edge {token!r} in {text!r} must come from node {src}, not {index}"
                    )
                ops.append(OPERATIONS.index(op))
        return Arch(self.name, tuple(ops))

    def canonical_key(self, arch: Arch) -> str:
        return _computation(arch.ops)

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        draws = rng.integers(len(OPERATIONS), size=(n, len(EDGES)))
        return [Arch(self.name, tuple(int(v) for v in row)) for row in draws]

    def neighbours(self, arch: Arch) -> list[Arch]:
        result = []
        for slot, current in enumerate(arch.ops):
            for op in range(len(OPERATIONS)):
                if op != current:
                    result.append(Arch(self.name, (*arch.ops[:slot], op, *arch.ops[slot + 1 :])))
        return result

    def enumerate(self) -> list[Arch]:
        """All 15,625 cells."""
        combos = itertools.product(range(len(OPERATIONS)), repeat=len(EDGES))
        return [Arch(self.name, combo) for combo in combos]


@cache
def _adjacency() -> Tensor:
    """Operation node k (edge ``src -> dst``) feeds every operation node leaving ``dst``."""
    size = len(EDGES) + 2
    adj = torch.zeros(size, size)
    for k, (src, dst) in enumerate(EDGES, start=1):
        if src == 0:
            adj[0, k] = 1
        if dst == CELL_NODES - 1:
            adj[k, size - 1] = 1
        for m, (next_src, _) in enumerate(EDGES, start=1):
            if next_src == dst:
                adj[k, m] = 1
    return adj


def _computation(ops: Sequence[int]) -> str:
    """The cell's output as an expression over the input, in the form of NATS-Bench's key.

    A zero (``#``) stays a zero through any operation, terms are sorted per node, and a skip
    connection passes its source expression through unchanged. This matches the benchmark's
    ``UniqueString`` character for character, so it partitions cells into the same 6,466 classes.
    """
    expr = ["0"] + [""] * (CELL_NODES - 1)
    for node in range(1, CELL_NODES):
        terms = []
        for (src, dst), op in zip(EDGES, ops, strict=True):
            if dst != node:
                continue
            name = OPERATIONS[op]
            if name == "none" or expr[src] == "#":
                terms.append("#")
            elif name == "skip_connect":
                terms.append(expr[src])
            else:
                terms.append(f"({expr[src]})@{name}")
        expr[node] = "+".join(sorted(terms))
    return expr[-1]
