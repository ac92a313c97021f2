"""The search-space interface that diffusion, predictors and search strategies are written against.

An architecture is a value (:class:`Arch`): the name of its space and a tuple of integer choices,
one per operation node. Everything graph-shaped (node vocabulary, the fixed adjacency, how a
choice becomes a one-hot row) is owned by the space object, so no other module needs to know
which space it is working on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True, order=True)
class Arch:
    """A hashable architecture: ``ops[i]`` is the choice made at the space's i-th slot."""

    space: str
    ops: tuple[int, ...]


class SearchSpace(ABC):
    """A space of architectures as node-labelled DAGs with one fixed adjacency.

    Encoded architectures are ``[B, N, V]`` tensors with one-hot rows over ``vocab`` (a row may be
    all zero where the space allows an absent node). ``decode`` reads continuous samples on the
    same [0, 1] scale and returns ``None`` where the sample is not a valid architecture.
    """

    name: str
    vocab: tuple[str, ...]
    num_nodes: int

    @abstractmethod
    def adjacency(self) -> Tensor:
        """``[N, N]`` float matrix, ``A[i, j] = 1`` for an edge from node i to node j."""

    @abstractmethod
    def encode(self, archs: Sequence[Arch]) -> Tensor:
        """``[B, N, V]`` one-hot node types."""

    @abstractmethod
    def decode(self, x: Tensor) -> list[Arch | None]:
        """Architectures from ``[B, N, V]`` samples; ``None`` where a row breaks validity."""

    @abstractmethod
    def to_string(self, arch: Arch) -> str: ...

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """Parse ``text``; raise ``ValueError`` naming what is wrong with it."""

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator) -> list[Arch]:
        """``n`` architectures drawn uniformly (with replacement)."""

    @abstractmethod
    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one mutation away from ``arch``."""

    def canonical_key(self, arch: Arch) -> str:
        """A key shared by architectures that compute the same function.

        Spaces without a notion of isomorphism fall back to the string form.
        """
        return self.to_string(arch)

    def feasible(self, arch: Arch) -> bool:
        """Whether ``arch`` is within the search's cost budgets; a plain space has none."""
        return True

    def positions(self) -> Tensor:
        """``[N]`` integer position of each node for the score network's positional embedding."""
        return torch.arange(self.num_nodes)

    def attention_mask(self) -> Tensor:
        """``[N, N]`` bool: node i may attend to node j when one reaches the other in the DAG.

        Derived from :meth:`adjacency` only, so training, guidance and decoding share one mask.
        """
        reach = self.adjacency().bool() | torch.eye(self.num_nodes, dtype=torch.bool)
        for _ in range(self.num_nodes):
            reach = reach | ((reach.float() @ reach.float()) > 0)
        return reach | reach.T

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """One uniformly chosen neighbour of ``arch``."""
        options = self.neighbours(arch)
        return options[int(rng.integers(len(options)))]

    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` if it belongs to this space, else raise ``ValueError``."""
        if arch.space != self.name:
            raise ValueError(f"architecture of space {arch.space!r} given to space {self.name!r}")
        return self.from_string(self.to_string(arch))
