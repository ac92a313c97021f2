"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

import numpy as np

from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History
from diffusionnag.spaces.base import Arch


class RandomSearch(SearchStrategy):
    """Uniform draws over cells, skipping any cell whose class was already evaluated."""

    name = "random"

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        self.fill_random(batch, rng)
        return batch.archs
