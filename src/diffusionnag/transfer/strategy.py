"""Transfer as a search strategy: generated cells ranked by the task-conditioned meta-predictor.

The first ask encodes the target task (its images, or an empty support set when the task is a
table), generates with guidance by the conditioned meta-predictor at a decreasing scale until
``candidates`` unique valid cells are found (``generate_ranked``), and keeps that pool. Every
ask ranks the pool's unevaluated cells with the clean meta-predictor conditioned on what is
known so far (cells evaluated before the run, ``support``, and those of the run become the
support set of an ``evaluations`` encoder),
averaged over ``encodings`` resampled task encodings, and proposes the best. Being a
:class:`SearchStrategy`, it is journaled, resumed and budgeted by ``run_search`` like any search.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import Tensor

from diffusionnag.diffusion.model import ScoreModel
from diffusionnag.generate import SAMPLER_NAMES, SamplerConfig
from diffusionnag.guidance import Objective, generate_ranked
from diffusionnag.predictors.meta import ConditionedPredictor, TrainedMetaPredictor
from diffusionnag.predictors.task_encoders import TaskData
from diffusionnag.search.base import SearchStrategy, Seed, check_choice, check_positive
from diffusionnag.search.history import History
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.transfer.meta_train import image_encoding

SUBSET_SHARE = 0.8
"""Resampled support encodings drop a fifth of the support set: rankings that hinge on one
evaluated cell are averaged away."""


class TransferStrategy(SearchStrategy):
    """Guided generation + ranking by a meta-predictor conditioned on the target task."""

    name = "transfer"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        predictor: TrainedMetaPredictor | None = None,
        score_model: ScoreModel | None = None,
        task_images: list[Tensor] | None = None,
        support: tuple[list[Arch], list[float]] = ([], []),
        *,
        meta_predictor: str = "",
        candidates: int = 100,
        scale: float = 10.0,
        sampler: str = "em",
        steps: int = 50,
        round_samples: int = 1000,
        encodings: int = 5,
    ) -> None:
        super().__init__(space, seed)
        if predictor is None or score_model is None:
            raise ValueError("transfer needs a meta-predictor and a score model")
        for name, part in (("meta-predictor", predictor), ("score model", score_model)):
            if part.space.name != space.name:
                raise ValueError(f"{name} is for space {part.space.name!r}, not {space.name!r}")
        if predictor.config.encoder == "images" and task_images is None:
            raise ValueError(
                "the meta-predictor encodes tasks by their images, but this target has none "
                "(a table); use a meta-predictor with the evaluations encoder"
            )
        self.predictor, self.score_model, self.task_images = predictor, score_model, task_images
        self.known = support
        self.meta_predictor = meta_predictor
        self.candidates = check_positive("candidates", candidates)
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale >= 0):
            raise ValueError(f"option scale must be a finite number >= 0, got {scale!r}")
        self.scale = float(scale)
        self.sampler = check_choice("sampler", sampler, SAMPLER_NAMES)
        self.steps = check_positive("steps", steps)
        self.round_samples = check_positive("round_samples", round_samples)
        self.encodings = check_positive("encodings", encodings)
        self._pool: list[Arch] | None = None
        self.generation_rounds: list[dict] = []

    def options(self) -> dict[str, Any]:
        known = [[self.space.to_string(a), v] for a, v in zip(*self.known, strict=True)]
        return {**super().options(), "trained_on": self.predictor.trained_on, "support": known}

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        pool = self.pool()
        ranker = self.ranker(history, rng)
        unseen = [arch for arch in pool if not history.is_seen(arch)]
        batch = self.new_batch(history, n)
        if unseen:
            predicted = ranker.predict(unseen)
            for index in np.argsort(-predicted, kind="stable"):
                if batch.full:
                    break
                batch.offer(unseen[index])
        self.fill_random(batch, rng)
        return batch.archs

    @property
    def generated(self) -> bool:
        """Whether this process generated the pool (a resumed, finished run never asks)."""
        return self._pool is not None

    def pool(self) -> list[Arch]:
        """The generated candidates (computed once: a function of the seed and the target)."""
        if self._pool is None:
            rng = np.random.default_rng([self.seed, 1])
            guide = self.predictor.conditioned(self._encodings(*self.known, rng))
            ranked = generate_ranked(
                self.score_model,
                [Objective(guide)],
                self.candidates,
                scale=self.scale,
                sampler=SamplerConfig(self.sampler, self.steps),
                batch=self.round_samples,
                seed=self.seed,
            )
            self._pool, self.generation_rounds = ranked.archs, ranked.rounds
        return self._pool

    def ranker(self, history: History, rng: np.random.Generator) -> ConditionedPredictor:
        """The meta-predictor conditioned on the target and on the history's evaluations."""
        trials = [t for t in history if t.ok]
        archs = [*self.known[0], *(t.arch for t in trials)]
        values = [*self.known[1], *(t.value for t in trials)]
        return self.predictor.conditioned(self._encodings(archs, values, rng))

    def _encodings(
        self, archs: list[Arch], values: list[float], rng: np.random.Generator
    ) -> list[TaskData]:
        if self.predictor.config.encoder == "none":
            return [TaskData()]
        if self.task_images is not None:
            per_class = self.predictor.config.per_class
            return [image_encoding(self.task_images, per_class, rng) for _ in range(self.encodings)]
        encodings = [self.predictor.support(archs, values)]
        if len(archs) >= 3:
            size = max(2, math.ceil(SUBSET_SHARE * len(archs)))
            for _ in range(self.encodings - 1):
                keep = np.sort(rng.choice(len(archs), size, replace=False))
                subset = [archs[i] for i in keep], [values[i] for i in keep]
                encodings.append(self.predictor.support(*subset))
        return encodings
