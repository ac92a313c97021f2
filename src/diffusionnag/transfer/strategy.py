"""Transfer as a search strategy: generated cells ranked by the task-conditioned meta-predictor.

The first ask encodes the target task (its images, or an empty support set when the task is a
table), generates with guidance by the conditioned meta-predictor at a decreasing scale until
``candidates`` unique valid cells are found (``generate_ranked``), and keeps that pool. Every
ask ranks the pool's unevaluated cells with the clean meta-predictor conditioned on what is
known so far (cells evaluated before the run, ``support``, and those of the run become the
support set of an encoder that reads one),
averaged over ``encodings`` resampled task encodings, and proposes the best. Being a
:class:`SearchStrategy`, it is journaled, resumed and budgeted by ``run_search`` like any search.

By name (``get_strategy("transfer", ...)``) its options say where the meta-predictor and score
model are (empty: the shipped ones for the target and the space) and which pairs file holds the
cells evaluated before the run; :meth:`TransferStrategy.prepare` loads them and takes the
target's images. :meth:`TransferStrategy.use` gives them directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from diffusionnag.config import option_choice, option_int, option_real
from diffusionnag.diffusion.model import ScoreModel, load_score_model
from diffusionnag.evaluators.registry import Target
from diffusionnag.generate import SAMPLER_NAMES, SamplerConfig
from diffusionnag.guidance import Objective, generate_ranked
from diffusionnag.predictors.data import load_pairs
from diffusionnag.predictors.meta import ConditionedPredictor, TrainedMetaPredictor
from diffusionnag.predictors.task_encoders import KnownTask, TaskData
from diffusionnag.pretrained import default_score_model
from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.history import History
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.transfer.defaults import check_never_saw, default_meta_predictor, labels_note
from diffusionnag.transfer.experts import (
    SourceFn,
    fused_scores,
    source_experts,
    top_source_cells,
)
from diffusionnag.transfer.meta_train import load_meta_predictor

PRIORS = ("meta", "experts")
"""``meta``: rank by the meta-predictor alone; ``experts``: fuse it with the source tables it was
trained on, weighted by agreement with the evaluated cells (``transfer.experts``)."""

SUBSET_SHARE = 0.8
"""Resampled support encodings drop a fifth of the support set: rankings that hinge on one
evaluated cell are averaged away."""


class TransferStrategy(SearchStrategy):
    """Guided generation + ranking by a meta-predictor conditioned on the target task."""

    name = "transfer"
    needs_target = True

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        meta_predictor: str = "",
        score_model: str = "",
        support: str = "",
        candidates: int = 100,
        scale: float = 10.0,
        sampler: str = "em",
        steps: int = 50,
        round_samples: int = 1000,
        encodings: int = 5,
        prior: str = "meta",
    ) -> None:
        super().__init__(space, seed)
        self.meta_predictor, self.score_model, self.support = meta_predictor, score_model, support
        archs, values = load_pairs(support, space) if support else ([], np.zeros(0))
        self.known = (list(archs), [float(v) for v in values])
        self.candidates = option_int("candidates", candidates)
        self.scale = option_real("scale", scale)
        self.sampler = option_choice("sampler", sampler, SAMPLER_NAMES)
        self.steps = option_int("steps", steps)
        self.round_samples = option_int("round_samples", round_samples)
        self.encodings = option_int("encodings", encodings)
        self.prior = option_choice("prior", prior, PRIORS)
        self._sources: dict[str, SourceFn] = {}
        self._predictor: TrainedMetaPredictor | None = None
        self._model: ScoreModel | None = None
        self.task = KnownTask()
        self._pool: list[Arch] | None = None
        self.generation_rounds: list[dict] = []
        self.labels = ""
        """What the meta-predictor's labels mean, where the target measures another number
        (reported with the result; empty: nothing to say)."""

    def prepare(self, target: Target) -> None:
        """Load the meta-predictor and score model the options name (or the shipped ones) and
        take what the target task knows."""
        given = self.meta_predictor
        folder = Path(given) if given else default_meta_predictor(target)
        predictor = load_meta_predictor(folder, "cpu")
        check_never_saw(target, predictor.trained_on, folder)
        if self.score_model:
            model = load_score_model(Path(self.score_model), "cpu")
        else:
            model = default_score_model(self.space.name)
        self.meta_predictor = str(folder)
        self.labels = labels_note(folder, target) or ""
        self.use(predictor, model, target.class_images, f"target {target.spec}")
        if self.prior == "experts":
            self._sources = source_experts(target, predictor.trained_on)
            if not self._sources:
                raise ValueError(
                    f"prior 'experts' reads the source tables the meta-predictor was trained on "
                    f"through a table target (nb201:, nb201-valid:); {target.spec} has none"
                )

    def use(
        self,
        predictor: TrainedMetaPredictor,
        model: ScoreModel,
        class_images: Sequence[Tensor] | None,
        task_name: str = "the target",
    ) -> None:
        """Rank with ``predictor``, generate with ``model``, for a task with ``class_images``
        (``None``: a table); ``ValueError`` if the predictor cannot read this task."""
        for name, part in (("meta-predictor", predictor), ("score model", model)):
            if part.space.name != self.space.name:
                raise ValueError(
                    f"{name} is for space {part.space.name!r}, not {self.space.name!r}"
                )
        self._predictor, self._model = predictor, model
        self.task = KnownTask(task_name, class_images)
        predictor.network.task_encoder.check(self._with_support(predictor.support([], [])))

    @property
    def predictor(self) -> TrainedMetaPredictor:
        if self._predictor is None:
            raise ValueError(
                f"strategy {self.name!r} reads its target task: run it where a target is built "
                "(search or transfer with --benchmark), which prepares it"
            )
        return self._predictor

    @property
    def model(self) -> ScoreModel:
        assert self._model is not None, "set together with the predictor"
        return self._model

    def options(self) -> dict[str, Any]:
        """:meth:`with_known` options; the score model only when not the shipped one, as
        journals written before it was an option hold no such key."""
        options = self.with_known(super().options())
        for name, default in (("score_model", ""), ("prior", "meta")):
            if options[name] == default:
                del options[name]
        return options

    def with_known(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` as journals hold them: the support set by its pairs, not its file (the
        pairs fix the trajectory), and what the meta-predictor was trained on."""
        known = [[self.space.to_string(a), v] for a, v in zip(*self.known, strict=True)]
        kept = {name: value for name, value in options.items() if name != "support"}
        return {**kept, "trained_on": self.predictor.trained_on, "support": known}

    def result_sections(self) -> dict[str, Any]:
        return {"transfer": self.transfer_report(self.name)}

    def transfer_report(self, strategy: str) -> dict[str, Any]:
        """The result's ``transfer`` section for a run of ``strategy``."""
        return {
            "strategy": strategy,
            "meta_predictor": self.meta_predictor,
            "trained_on": self.predictor.trained_on,
            **({"labels": self.labels} if self.labels else {}),
            "candidates": len(self.pool()) if self.generated else None,
            "generation": self.generation_rounds,
        }

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        pool = self.pool()
        ranker = self.ranker(history, rng)
        unseen = [arch for arch in pool if not history.is_seen(arch)]
        batch = self.new_batch(history, n)
        if unseen:
            predicted = self._scores(unseen, ranker, history, rng)
            for index in np.argsort(-predicted, kind="stable"):
                if batch.full:
                    break
                batch.offer(unseen[index])
        self.fill_random(batch, rng)
        return batch.archs

    def _scores(
        self,
        unseen: list[Arch],
        ranker: ConditionedPredictor,
        history: History,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The meta-predictor's scores of ``unseen``, or (``prior="experts"``) its fusion with
        the source tables' accuracies weighted by agreement with the evaluated cells."""
        if self.prior == "meta":
            return ranker.predict(unseen)
        trials = [t for t in history if t.ok]
        cells = [*(t.arch for t in trials), *unseen]
        experts = [ranker.predict(cells)]
        experts += [np.array([source(arch) for arch in cells]) for source in self._sources.values()]
        values = [t.value for t in trials]
        fused = fused_scores(np.stack(experts), range(len(trials)), values, rng)
        return fused[len(trials) :]

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
                self.model,
                [Objective(guide)],
                self.candidates,
                scale=self.scale,
                sampler=SamplerConfig(self.sampler, self.steps),
                batch=self.round_samples,
                seed=self.seed,
            )
            sources = top_source_cells(self.space, self._sources, self.candidates)
            self._pool, self.generation_rounds = [*ranked.archs, *sources], ranked.rounds
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
        """Task encodings to average over: the support set and resampled subsets of it for an
        encoder that reads one, ``encodings`` resampled images for one that reads images only,
        else the one encoding there is."""
        predictor = self.predictor
        encoder = predictor.network.task_encoder
        if "support" in encoder.needs:
            subsets = [(archs, values)]
            if len(archs) >= 3:
                size = max(2, math.ceil(SUBSET_SHARE * len(archs)))
                for _ in range(self.encodings - 1):
                    keep = np.sort(rng.choice(len(archs), size, replace=False))
                    subsets.append(([archs[i] for i in keep], [values[i] for i in keep]))
            known = [self._with_support(predictor.support(*subset)) for subset in subsets]
        else:
            known = [self.task] * (self.encodings if encoder.needs else 1)
        return [encoder.task_data(task, rng) for task in known]

    def _with_support(self, support: TaskData) -> KnownTask:
        return KnownTask(
            self.task.name, self.task.class_images, support.support_cells, support.support_values
        )
