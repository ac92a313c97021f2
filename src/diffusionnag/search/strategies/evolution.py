"""Regularised evolution (Real et al., 2019, "Regularized evolution for image classifier
architecture search").

The population is the ``population_size`` most recent trials of the history: evaluating a child
adds it at the young end and ages the oldest member out, exactly as in the paper's queue, and the
population is rebuilt from the history order alone. Until the history holds a full population the
strategy proposes random cells.
"""

from __future__ import annotations

import numpy as np

from diffusionnag.config import Bound, option_int
from diffusionnag.search.base import Batch, SearchStrategy, Seed
from diffusionnag.search.history import History, Trial
from diffusionnag.spaces.base import Arch, SearchSpace

_MUTATION_TRIES = 50


class RegularizedEvolution(SearchStrategy):
    """Tournament of ``sample_size`` from the population; the winner's mutation is the child.

    A child whose class was already evaluated (or is already in the batch) is redrawn from a new
    tournament; after repeated failures the slot is filled with a random unseen cell.
    """

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        population_size: int = 20,
        sample_size: int = 5,
    ) -> None:
        super().__init__(space, seed)
        self.population_size = option_int("population_size", population_size, Bound(2))
        self.sample_size = option_int("sample_size", sample_size)
        if self.sample_size > self.population_size:
            raise ValueError(
                f"option sample_size={sample_size} exceeds population_size={population_size}"
            )

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        if len(history) >= self.population_size:
            population = history.trials[-self.population_size :]
            while not batch.full and self._add_child(population, batch, rng):
                pass
        self.fill_random(batch, rng)
        return batch.archs

    def _add_child(
        self, population: tuple[Trial, ...], batch: Batch, rng: np.random.Generator
    ) -> bool:
        for _ in range(_MUTATION_TRIES):
            picks = rng.choice(len(population), size=self.sample_size, replace=False)
            parent = max((population[i] for i in picks), key=_fitness)
            if batch.offer(self.space.mutate(parent.arch, rng)):
                return True
        return False


def _fitness(trial: Trial) -> tuple[float, int]:
    """Failed trials lose every tournament; ties go to the younger member, as in a queue."""
    return (trial.value if trial.ok else -np.inf, trial.index)
