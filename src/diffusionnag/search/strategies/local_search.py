"""Local search, which White et al. (2021, "Local search is state of the art for neural
architecture search benchmarks") found a strong baseline on NAS-Bench-201.

Start from the best of ``num_init`` random cells; evaluate every neighbour of the current cell
(one op changed); move to the best neighbour if it beats the current cell, otherwise the current
cell is a local optimum and the search restarts from one random cell. Neighbours whose class was
already evaluated are not re-evaluated: their value is read from the history.

The walk is not stored: :func:`_walk` replays it over the history on every ask, so the strategy
is rebuilt from the history alone.
"""

from __future__ import annotations

import numpy as np

from diffusionnag.config import option_int
from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.history import History, Trial
from diffusionnag.spaces.base import Arch, SearchSpace


class LocalSearch(SearchStrategy):
    """Best-improvement hill climbing over ``space.neighbours`` with random restarts."""

    name = "local"

    def __init__(self, space: SearchSpace, seed: Seed = 0, *, num_init: int = 10) -> None:
        super().__init__(space, seed)
        self.num_init = option_int("num_init", num_init)

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        center, remaining = self._walk(history)
        if center is not None:
            neighbours = self.space.neighbours(center.arch)
            for index in rng.permutation(len(neighbours)):
                if self.key(neighbours[index]) in remaining:
                    batch.offer(neighbours[index])
        self.fill_random(batch, rng)
        return batch.archs

    def _walk(self, history: History) -> tuple[Trial | None, set[str]]:
        """The current cell and the keys of its unevaluated neighbours after replaying ``history``.

        ``None`` means a random cell comes next: during the initial phase, or after a local
        optimum (the next trial becomes the new current cell).
        """
        if len(history) < self.num_init:
            return None, set()
        seen = {self.key(t.arch) for t in history.trials[: self.num_init]}
        center = history.prefix(self.num_init).best
        remaining = self._unseen_neighbours(center, seen)
        for trial in history.trials[self.num_init :]:
            seen.add(self.key(trial.arch))
            if center is None:
                center = trial
                remaining = self._unseen_neighbours(center, seen)
            else:
                remaining.discard(self.key(trial.arch))
            while center is not None and not remaining:
                center = self._step(center, history)
                remaining = self._unseen_neighbours(center, seen)
        return center, remaining

    def _unseen_neighbours(self, center: Trial | None, seen: set[str]) -> set[str]:
        if center is None:
            return set()
        return {self.key(a) for a in self.space.neighbours(center.arch)} - seen

    def _step(self, center: Trial, history: History) -> Trial | None:
        """The best neighbour if it improves on ``center`` (all neighbours evaluated), else None."""
        own = self.key(center.arch)
        keys = {self.key(a) for a in self.space.neighbours(center.arch)} - {own}
        trials = [history.trial_for_key(key) for key in keys]
        candidates = [t for t in trials if t is not None and t.ok]
        if not candidates:
            return None
        best = max(candidates, key=lambda t: (t.value, -t.index))
        floor = center.value if center.ok else -np.inf
        return best if best.value > floor else None
