"""BANANAS (White et al., 2021): Bayesian optimisation with an ensemble of neural predictors.

Each ask after the random start: train an
:class:`~diffusionnag.search.strategies.ensemble.MLPEnsemble` on the history (``space.encode``
flattened, not BANANAS' path encoding, see :mod:`diffusionnag.search.strategies.ensemble`),
build a candidate pool by mutating the best cells so far (1 to ``max_edits`` random edits each),
score the pool with an acquisition function (independent Thompson sampling by default, as in
the paper) and propose the top ``n``.
"""

from __future__ import annotations

import numpy as np
import torch

from diffusionnag.config import POSITIVE_REAL, Bound, option_choice, option_int, option_real
from diffusionnag.search.base import (
    Batch,
    ModelBasedStrategy,
    Seed,
)
from diffusionnag.search.history import History
from diffusionnag.search.strategies.acquisition import ACQUISITIONS, acquisition_scores, top_indices
from diffusionnag.search.strategies.ensemble import features, fit_mlp_ensemble
from diffusionnag.spaces.base import Arch, SearchSpace


class Bananas(ModelBasedStrategy):
    """Ensemble-of-MLPs BO over a mutation pool of the top cells."""

    name = "bananas"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        num_init: int = 10,
        num_candidates: int = 100,
        num_parents: int = 10,
        max_edits: int = 2,
        acquisition: str = "its",
        members: int = 5,
        hidden: int = 32,
        layers: int = 2,
        epochs: int = 100,
        lr: float = 0.01,
    ) -> None:
        super().__init__(space, seed)
        self.num_init = option_int("num_init", num_init, Bound(2))
        self.num_candidates = option_int("num_candidates", num_candidates)
        self.num_parents = option_int("num_parents", num_parents)
        self.max_edits = option_int("max_edits", max_edits)
        self.acquisition = option_choice("acquisition", acquisition, ACQUISITIONS)
        self.members = option_int("members", members)
        self.hidden = option_int("hidden", hidden)
        self.layers = option_int("layers", layers)
        self.epochs = option_int("epochs", epochs)
        self.lr = option_real("lr", lr, POSITIVE_REAL)

    def propose_model(self, history: History, batch: Batch, rng: np.random.Generator) -> None:
        pool = self.candidate_pool(history, batch, rng)
        if not pool:
            return
        generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
        trials = [t for t in history if t.ok]
        ensemble = fit_mlp_ensemble(
            features(self.space, [t.arch for t in trials]),
            torch.tensor([t.value for t in trials]),
            generator=generator,
            members=self.members,
            hidden=self.hidden,
            layers=self.layers,
            epochs=self.epochs,
            lr=self.lr,
        )
        mean, std = ensemble.mean_std(features(self.space, pool))
        best = max(t.value for t in trials)
        scores = acquisition_scores(self.acquisition, mean, std, best=best, generator=generator)
        for index in top_indices(scores, batch.missing):
            batch.offer(pool[index])

    def candidate_pool(
        self, history: History, batch: Batch, rng: np.random.Generator
    ) -> list[Arch]:
        """Up to ``num_candidates`` distinct unseen cells near the ``num_parents`` best cells."""
        parents = [t.arch for t in history.top(self.num_parents)]
        pool = Batch(self, history, self.num_candidates)
        for arch in batch.archs:
            pool.offer(arch)
        self.fill_mutations(pool, parents, rng, self.max_edits)
        return pool.archs[len(batch.archs) :]
