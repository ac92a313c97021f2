"""Transfer-BO: DiffusionNAG-BO whose surrogate starts from the task-conditioned meta-predictor.

Before ``num_init`` evaluations the proposals are the transfer strategy's (generated cells
ranked by the meta-predictor conditioned on the target and on what is evaluated so far): the
prior alone. From then on every ask is DiffusionNAG-BO's with a prior mean: the prior's clean
predictions are mapped to the target's units by a least-squares line through the evaluated
cells (slope clamped at zero, so a prior that ranks the target backwards falls back to a
constant), and the ensemble is fitted to what that line leaves unexplained. Generation is
guided by line + residual ensemble, the pool also holds the prior's unevaluated candidates,
and the acquisition ranks ``line + ensemble mean`` with the ensemble's spread. As trials
arrive the residual ensemble takes over wherever the prior is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from diffusionnag.diffusion.model import ScoreModel
from diffusionnag.evaluators.registry import Target
from diffusionnag.guidance import Budget, Objective
from diffusionnag.predictors.meta import ConditionedPredictor
from diffusionnag.predictors.objective import ACCURACY_FLOOR_QUANTILE
from diffusionnag.search.base import Batch, Seed
from diffusionnag.search.history import History
from diffusionnag.search.strategies.diffusionnag_bo import DiffusionNAGBO, Surrogate
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.transfer.strategy import TransferStrategy


@dataclass(frozen=True, kw_only=True)
class PriorSurrogate(Surrogate):
    """``slope * prior + intercept`` plus the ranking of the residuals (its ``guidance``
    already holds both terms)."""

    prior: ConditionedPredictor
    slope: float
    intercept: float

    def mean_std(self, archs: list[Arch]) -> tuple[Tensor, Tensor]:
        mean, std = super().mean_std(archs)
        line = self.slope * self.prior.predict(archs) + self.intercept
        return mean + torch.tensor(line, dtype=mean.dtype), std


class TransferBO(DiffusionNAGBO):
    """DiffusionNAG-BO warm-started by a meta-predictor's prior (see the module docstring).

    ``meta_predictor``, ``support`` and ``prior`` are the transfer strategy's
    (:class:`TransferStrategy`), which also generates with DiffusionNAG-BO's ``score_model``:
    ``prior="experts"`` makes the first ``num_init`` proposals the experts prior's and adds the
    source tables' top cells to the pool; the prior mean stays the meta-predictor's.
    """

    name = "transfer-bo"
    needs_target = True

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        meta_predictor: str = "",
        support: str = "",
        num_init: int = 5,
        candidates: int = 100,
        round_samples: int = 1000,
        encodings: int = 5,
        prior: str = "meta",
        **options: Any,
    ) -> None:
        super().__init__(space, seed, num_init=num_init, **options)
        self.transfer = TransferStrategy(
            space,
            seed,
            meta_predictor=meta_predictor,
            score_model=self.score_model,
            support=support,
            candidates=candidates,
            round_samples=round_samples,
            encodings=encodings,
            prior=prior,
        )
        self.meta_predictor, self.support, self.prior = meta_predictor, support, prior
        self.candidates, self.round_samples, self.encodings = candidates, round_samples, encodings

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        own = ("meta_predictor", "support", "candidates", "round_samples", "encodings", "prior")
        return (*DiffusionNAGBO.option_names(), *own)

    def prepare(self, target: Target) -> None:
        self.transfer.prepare(target)
        self.meta_predictor = self.transfer.meta_predictor

    def options(self) -> dict[str, Any]:
        return self.transfer.with_known(super().options())

    def result_sections(self) -> dict[str, Any]:
        return {"transfer": self.transfer.transfer_report(self.name)}

    def score_model_for_space(self) -> ScoreModel:
        return self.transfer.model

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        if len(history) < self.num_init or not any(t.ok for t in history):
            return self.transfer.propose(history, n, rng)
        return super().propose(history, n, rng)

    def fit_surrogate(self, history: History, rng: np.random.Generator) -> Surrogate:
        trials = [t for t in history if t.ok]
        archs = [t.arch for t in trials]
        values = np.array([t.value for t in trials])
        values = np.maximum(values, np.quantile(values, ACCURACY_FLOOR_QUANTILE))
        prior = self.transfer.ranker(history, rng)
        predicted = prior.predict(archs)
        slope, intercept = _line(predicted, values)
        residuals = values - (slope * predicted + intercept)
        ensemble = self.fit_noise_aware_ensemble(archs, residuals, rng, floor_quantile=0.0)
        spread = float(values.std()) or 1.0
        guidance: list[Objective | Budget] = [
            Objective(prior, weight=slope / spread),
            Objective(ensemble, weight=ensemble.scale / spread),
        ]
        ranking = self.fit_ranking(archs, residuals, rng, ensemble)
        return PriorSurrogate(guidance, ranking, prior=prior, slope=slope, intercept=intercept)

    def candidate_pool(
        self, surrogate: Surrogate, history: History, rng: np.random.Generator
    ) -> list[Arch]:
        generated, prior = super().candidate_pool(surrogate, history, rng), self.transfer.pool()
        pool = Batch(self, history, len(generated) + len(prior))
        for arch in (*generated, *prior):
            pool.offer(arch)
        return pool.archs


def _line(prior: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares ``values ~ slope * prior + intercept`` with ``slope >= 0``."""
    centred = prior - prior.mean()
    denominator = float(centred @ centred)
    slope = float(centred @ (values - values.mean())) / denominator if denominator > 0 else 0.0
    slope = max(slope, 0.0)
    return slope, float(values.mean() - slope * prior.mean())
