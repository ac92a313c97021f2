"""Free baselines: evaluate a seeded pool of cells in descending order of a score needing no
evaluation at all, a zero-cost proxy (NASWOT, synflow) or the parameter count.

These are what a user could run instead of a search (issue "NB201 transfer ahead of every free
baseline"), so the pool and its order are fixed by the seed alone: the history only says which
cells are taken. When every pool cell is taken, the strategy continues with random cells.

Measured on one thread of this project's 2-core machine while other jobs shared it (load average
about 5.5): the first ask of ``zc-naswot`` (64 cells, 64 images each) took 70 s, 1.1 s per cell;
synflow took 0.26 s per cell, so ``zc-synflow`` defaults to 256 cells (about 67 s; a quiet core
does 0.09 s per cell). The parameter count is nearly free, so ``params`` ranks the whole space
(15,625 NAS-Bench-201 cells, one per class kept: 0.7 s).
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from torch import Tensor

from diffusionnag.config import Bound, option_int
from diffusionnag.evaluators.tasks import TaskSpec, load_task
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.nn.zero_cost import NB201_RESOLUTION, proxy_score, random_inputs
from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.history import History
from diffusionnag.spaces.base import Arch, SearchSpace

_POOL_STREAM = 2**32 + 0x2C0
"""Mixed into the seed for the pool draw: beyond any history length, so that no ask's generator
(``rng_for``: the seed and the history length) is the pool's."""
_SAMPLE_ROUNDS = 16


class ScoreOrder(SearchStrategy):
    """Proposes the pool in descending :meth:`scores`, ties in the pool's seeded random order."""

    pool_size: int

    def __init__(self, space: SearchSpace, seed: Seed, pool_size: int) -> None:
        super().__init__(space, seed)
        self.pool_size = option_int("pool_size", pool_size)
        self._ranked: list[Arch] | None = None

    @abstractmethod
    def scores(self, archs: list[Arch]) -> list[float]:
        """Higher is proposed earlier; ``-inf`` and NaN go last."""

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        for arch in self.ranked():
            if batch.full:
                break
            batch.offer(arch)
        self.fill_random(batch, rng)
        return batch.archs

    def ranked(self) -> list[Arch]:
        """The pool, best score first; computed once (it depends on the seed alone)."""
        if self._ranked is None:
            pool = self.pool()
            values = np.nan_to_num(np.asarray(self.scores(pool), dtype=float), nan=-np.inf)
            order = np.argsort(-values, kind="stable")  # stable: ties keep the seeded order
            self._ranked = [pool[i] for i in order]
        return self._ranked

    def pool(self) -> list[Arch]:
        """Up to ``pool_size`` cells of distinct classes, drawn uniformly over cells by seed."""
        rng = np.random.default_rng([self.seed, _POOL_STREAM])
        enumerate_space = getattr(self.space, "enumerate", None)
        if enumerate_space is not None:
            cells = enumerate_space()
            candidates = [cells[i] for i in rng.permutation(len(cells))]
            return self._distinct(candidates)
        candidates = self.space.sample(_SAMPLE_ROUNDS * self.pool_size, rng)
        return self._distinct(candidates)

    def _distinct(self, candidates: list[Arch]) -> list[Arch]:
        pool: dict[str, Arch] = {}
        for arch in candidates:
            pool.setdefault(self.key(arch), arch)
            if len(pool) == self.pool_size:
                break
        return list(pool.values())


class ParameterOrder(ScoreOrder):
    """Largest network first (``arch_costs``), the "bigger is better" baseline."""

    name = "params"

    def __init__(self, space: SearchSpace, seed: Seed = 0, *, pool_size: int = 15625) -> None:
        super().__init__(space, seed, pool_size)

    def scores(self, archs: list[Arch]) -> list[float]:
        return [arch_costs(arch)["params"] for arch in archs]


class ZeroCostOrder(ScoreOrder):
    """A zero-cost proxy of NAS-Bench-201's own C=16, N=5 network, initialised from the
    strategy's seed.

    Without ``task`` the network sees 32 px RGB standard-normal images drawn from the seed and has
    10 outputs. With ``task`` (a task name, ``SOURCE/cCLASSES/nPER_CLASS/rRESOLUTION/sSEED``) it
    sees that task's own training images, in a seeded order, at the task's resolution and
    channels, and has one output per class: the proxy computed on the target's images.
    """

    proxy: str

    def __init__(self, space: SearchSpace, seed: Seed, pool_size: int, task: str) -> None:
        if space.name != "nb201":
            raise ValueError(
                f"strategy {self.name!r} scores NAS-Bench-201 networks; space {space.name!r} "
                "is not supported (known: nb201)"
            )
        super().__init__(space, seed, pool_size)
        self.task = str(task)
        self._task = TaskSpec.from_name(self.task) if self.task else None

    def scores(self, archs: list[Arch]) -> list[float]:
        inputs = self.proxy_inputs()
        classes = 10 if self._task is None else len(self._task.classes)
        return [
            proxy_score(self.proxy, arch, seed=self.seed, inputs=inputs, num_classes=classes)
            for arch in archs
        ]

    def proxy_inputs(self) -> Tensor:
        """``images_per_score()`` images: the task's training images in a seeded order (all of
        them when it has fewer), else standard-normal ``[B, 3, 32, 32]`` drawn from the seed."""
        generator = torch.Generator().manual_seed(self.seed)
        if self._task is None:
            shape = (self.images_per_score(), 3, NB201_RESOLUTION, NB201_RESOLUTION)
            return random_inputs(shape, generator)
        images = load_task(self._task).train.images
        order = torch.randperm(len(images), generator=generator)[: self.images_per_score()]
        return images[order]

    def images_per_score(self) -> int:
        return 1


class NaswotOrder(ZeroCostOrder):
    name = "zc-naswot"
    proxy = "naswot"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        pool_size: int = 64,
        batch_size: int = 64,
        task: str = "",
    ) -> None:
        super().__init__(space, seed, pool_size, task)
        self.batch_size = option_int("batch_size", batch_size, Bound(2))

    def images_per_score(self) -> int:
        """The kernel is ``[batch_size, batch_size]`` (Mellor et al. used 128 on NB201)."""
        return self.batch_size


class SynflowOrder(ZeroCostOrder):
    """Synflow reads only the input's shape (it feeds ones), so one image is enough."""

    name = "zc-synflow"
    proxy = "synflow"

    def __init__(
        self, space: SearchSpace, seed: Seed = 0, *, pool_size: int = 256, task: str = ""
    ) -> None:
        super().__init__(space, seed, pool_size, task)
