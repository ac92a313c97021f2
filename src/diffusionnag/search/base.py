"""The ask/tell interface every search strategy implements.

A strategy sees the space and the :class:`~diffusionnag.search.history.History`, never the
evaluator: the runner evaluates, records and counts the budget. ``ask`` is a function of
``(seed, history, n)``: the random numbers for an ask come from a generator derived from the
strategy's seed and the history length, and any state a strategy keeps (a population, a trained
model) must be rebuildable from the history. That is what lets an interrupted run resume onto
exactly the trajectory it would have followed.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from diffusionnag.evaluators.registry import Target
from diffusionnag.search.history import History, Trial
from diffusionnag.spaces.base import Arch, SearchSpace

Seed = int | np.random.Generator

_MAX_KEY_MEMO = 1 << 16
_RANDOM_ROUNDS = 64
_MUTATION_TRIES_PER_CELL = 10


def as_seed(seed: Seed) -> int:
    """A non-negative int seed; a Generator contributes one draw (so it is advanced once)."""
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(2**63))
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or np.random.Generator, got {seed!r}")
    return int(seed)


class SearchStrategy(ABC):
    """Proposes unevaluated cells from the history; subclasses implement :meth:`propose`.

    Options are keyword-only ``__init__`` parameters stored under the same attribute names, so
    :meth:`options` can report them for journals without each strategy repeating itself.
    """

    name: ClassVar[str]
    needs_target: ClassVar[bool] = False
    """Whether :meth:`prepare` must be given the target before the first ask (a strategy that
    reads the target task); runners without a :class:`Target` (the table harness) refuse it."""

    def __init__(self, space: SearchSpace, seed: Seed = 0) -> None:
        self.space = space
        self.seed = as_seed(seed)
        self._key_memo: dict[Arch, str] = {}

    def ask(self, history: History, n: int = 1) -> list[Arch]:
        """``n`` distinct cells whose canonical keys are new to ``history`` and to each other."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ask needs n >= 1 architectures, got {n!r}")
        if history.space.name != self.space.name:
            raise ValueError(
                f"history of space {history.space.name!r} given to a strategy "
                f"on space {self.space.name!r}"
            )
        archs = self.propose(history, n, self.rng_for(history))
        self._check_proposal(history, archs, n)
        return archs

    @abstractmethod
    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        """The batch for :meth:`ask`; draw every random number from ``rng``."""

    def tell(self, history: History, trial: Trial) -> None:  # noqa: B027 (optional hook)
        """Notification that ``trial`` was appended to ``history`` (also replayed on resume).

        Only for caches: anything ``ask`` relies on must be rebuildable from the history.
        """

    def prepare(self, target: Target) -> None:  # noqa: B027 (optional hook)
        """Receive what the target task knows (its images, its table), once, before the run's
        journal header is written and before the first ask."""

    def result_sections(self) -> dict[str, Any]:
        """Sections the strategy adds to the run's result JSON, read once the run is over."""
        return {}

    def rng_for(self, history: History) -> np.random.Generator:
        """The generator for an ask here: a function of the seed and the history length only."""
        return np.random.default_rng([self.seed, len(history)])

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Each option's default (every option has one), the most derived class's where a
        subclass passes the others on through ``**options``."""
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            init = klass.__dict__.get("__init__")
            if init is not None:
                params = inspect.signature(init).parameters.values()
                kept = (p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
                defaults.update((p.name, p.default) for p in kept)
        return {name: defaults[name] for name in cls.option_names()}

    def options(self) -> dict[str, Any]:
        """The strategy's options as given to ``__init__`` (for journals and summaries)."""
        return {name: getattr(self, name) for name in self.option_names()}

    def key(self, arch: Arch) -> str:
        """``space.canonical_key``, memoised because strategies ask for the same cells often."""
        key = self._key_memo.get(arch)
        if key is None:
            if len(self._key_memo) >= _MAX_KEY_MEMO:
                self._key_memo.clear()
            key = self._key_memo[arch] = self.space.canonical_key(arch)
        return key

    def new_batch(self, history: History, n: int) -> Batch:
        return Batch(self, history, n)

    def fill_random(self, batch: Batch, rng: np.random.Generator) -> None:
        """Complete ``batch`` with uniformly drawn cells of unseen classes.

        Rejection sampling over cells (so a class is drawn with probability proportional to its
        size, as plain random search would); when that keeps failing in a nearly exhausted space,
        fall back to enumerating the space if it can be enumerated.
        """
        for _ in range(_RANDOM_ROUNDS):
            if batch.full:
                return
            for arch in self.space.sample(4 * batch.missing, rng):
                batch.offer(arch)
        enumerate_space = getattr(self.space, "enumerate", None)
        if not batch.full and enumerate_space is not None:
            unseen = [a for a in enumerate_space() if not batch.taken(a)]
            for index in rng.permutation(len(unseen)):
                batch.offer(unseen[index])
        if not batch.full:
            raise RuntimeError(
                f"found only {len(batch.archs)} of {batch.size} unseen architectures in space "
                f"{self.space.name!r}; the space is (nearly) exhausted"
            )

    def fill_mutations(
        self, batch: Batch, parents: list[Arch], rng: np.random.Generator, max_edits: int
    ) -> None:
        """Offer ``batch`` mutants of ``parents`` until it is full or a bounded number of tries
        is spent: each a random parent with 1 to ``max_edits`` random edits (``space.mutate``).

        The candidate pool of BANANAS and of DiffusionNAG-BO's mutation ablations.
        """
        for _ in range(_MUTATION_TRIES_PER_CELL * batch.size):
            if batch.full:
                return
            child = parents[int(rng.integers(len(parents)))]
            for _ in range(int(rng.integers(1, max_edits + 1))):
                child = self.space.mutate(child, rng)
            batch.offer(child)

    def _check_proposal(self, history: History, archs: list[Arch], n: int) -> None:
        """Strategies are ours, so a broken contract is a bug, not a user error."""
        keys = [self.key(a) for a in archs]
        if len(archs) != n or len(set(keys)) != n or any(history.has_key(k) for k in keys):
            raise RuntimeError(
                f"strategy {self.name!r} broke the ask contract: {len(archs)} cells for n={n}, "
                f"{len(set(keys))} distinct keys, "
                f"{sum(history.has_key(k) for k in keys)} already evaluated"
            )


class Batch:
    """Collects up to ``size`` cells whose canonical keys are new to the history and the batch."""

    def __init__(self, strategy: SearchStrategy, history: History, size: int) -> None:
        self._strategy = strategy
        self._history = history
        self.size = size
        self.archs: list[Arch] = []
        self._keys: set[str] = set()

    @property
    def full(self) -> bool:
        return len(self.archs) >= self.size

    @property
    def missing(self) -> int:
        return self.size - len(self.archs)

    def taken(self, arch: Arch) -> bool:
        key = self._strategy.key(arch)
        return key in self._keys or self._history.has_key(key)

    def offer(self, arch: Arch) -> bool:
        """Add ``arch`` unless the batch is full, its class is taken or it is over the space's
        budgets (the one place every strategy's proposals pass); say whether it was added."""
        if self.full or self.taken(arch) or not self._strategy.space.feasible(arch):
            return False
        self._keys.add(self._strategy.key(arch))
        self.archs.append(arch)
        return True


class ModelBasedStrategy(SearchStrategy):
    """A strategy that proposes random cells until the history holds ``num_init`` trials.

    Subclasses keep ``num_init`` as a keyword-only option and implement :meth:`propose_model`.
    """

    num_init: int

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        if len(history) >= self.num_init and any(t.ok for t in history):
            self.propose_model(history, batch, rng)
        self.fill_random(batch, rng)
        return batch.archs

    @abstractmethod
    def propose_model(self, history: History, batch: Batch, rng: np.random.Generator) -> None:
        """Fill ``batch`` (fully or partly; the rest is filled randomly) from a model."""
