"""A search space restricted to the architectures within cost budgets (``cost <= limit``).

Strategies search the restricted space like any other: :meth:`ConstrainedSpace.sample` draws
uniformly among the feasible architectures (rejection sampling), :meth:`neighbours` and
:meth:`mutate` move only to feasible ones, and :meth:`feasible` lets a strategy's batch refuse a
generated or model-proposed cell over budget (see ``search.base.Batch.offer``). Everything else
(encoding, strings, canonical keys, the graph) is the wrapped space's, so the score model of the
unrestricted space serves it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from diffusionnag.spaces.base import Arch, SearchSpace

CostModel = Callable[[Arch], Mapping[str, float]]
_SAMPLE_ROUNDS = 100
_DRAWS_PER_ROUND = 1024
"""About 10^5 draws in all: enough for budgets that 1 cell in ~10^4 meets (FLOPs <= 300M at width
1.2 and 224 px: 1 in 60; Note10 latency <= 25 ms: 1 in 1,500)."""


class ConstrainedSpace(SearchSpace):
    """``space`` restricted to the architectures whose ``costs(arch)[name] <= limits[name]``."""

    def __init__(self, space: SearchSpace, costs: CostModel, limits: Mapping[str, float]) -> None:
        self.inner = space
        self.name = space.name
        self.vocab = space.vocab
        self.num_nodes = space.num_nodes
        self._costs = costs
        self.limits = dict(limits)

    def __getattr__(self, name: str) -> Any:
        """Space-specific extras (``to_ofa_config``, ``num_archs``, ...) are the wrapped
        space's; ``enumerate`` lists only the feasible architectures."""
        if name.startswith("_") or name == "inner":
            raise AttributeError(name)
        value = getattr(self.inner, name)
        if name == "enumerate":
            return lambda: [arch for arch in value() if self.feasible(arch)]
        return value

    def feasible(self, arch: Arch) -> bool:
        costs = self._costs(arch)
        return all(costs[name] <= limit for name, limit in self.limits.items())

    def costs(self, arch: Arch) -> dict[str, float]:
        """The costs the budgets are checked against (those of the evaluator that set them)."""
        return dict(self._costs(arch))

    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` feasible architectures, uniformly among them (with replacement)."""
        found: list[Arch] = []
        for _ in range(_SAMPLE_ROUNDS):
            if len(found) >= n:
                return found[:n]
            draws = self.inner.sample(max(_DRAWS_PER_ROUND, 4 * n), rng)
            found += [arch for arch in draws if self.feasible(arch)]
        if len(found) >= n:
            return found[:n]
        raise ValueError(
            f"found {len(found)} of {n} architectures of space {self.name!r} within the budgets "
            f"{self.limits} in {_SAMPLE_ROUNDS} rounds of random draws; the budgets are too tight"
        )

    def neighbours(self, arch: Arch) -> list[Arch]:
        return [other for other in self.inner.neighbours(arch) if self.feasible(other)]

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A uniformly chosen feasible neighbour (the first feasible one in a random order, so
        only as many costs are computed as needed); a random feasible cell if there is none."""
        options = self.inner.neighbours(arch)
        for index in rng.permutation(len(options)):
            if self.feasible(options[index]):
                return options[index]
        return self.sample(1, rng)[0]

    def adjacency(self) -> Tensor:
        return self.inner.adjacency()

    def positions(self) -> Tensor:
        return self.inner.positions()

    def encode(self, archs: Sequence[Arch]) -> Tensor:
        return self.inner.encode(archs)

    def decode(self, x: Tensor) -> list[Arch | None]:
        """The wrapped space's decoding: a valid cell over budget is still a cell (strategies
        filter it with :meth:`feasible`)."""
        return self.inner.decode(x)

    def to_string(self, arch: Arch) -> str:
        return self.inner.to_string(arch)

    def from_string(self, text: str) -> Arch:
        return self.inner.from_string(text)

    def canonical_key(self, arch: Arch) -> str:
        return self.inner.canonical_key(arch)

    def __repr__(self) -> str:
        return f"ConstrainedSpace({self.name}, {self.limits})"
