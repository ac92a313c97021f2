"""Free baselines beside a transfer run on a validation table (``nb201-valid:<dataset>``).

A user who can train a few cells on a new dataset may instead train them in an order that costs
nothing: random, by parameter count, or copied from a dataset already benchmarked (the nearest
source). This module scores a transfer run and those orders the same way, on the table's real
200-epoch training runs:

* the truth of a cell is its mean validation accuracy over the table's training seeds; cells are
  counted once per computation (canonical key), as a search evaluates them, and a class's truth
  is the mean over its members;
* *evaluations to the best cell*: when the class with the highest truth is first evaluated (for
  a free order its position, computed past the budget because it costs nothing; for a search
  ``None`` when not within its budget);
* *chosen cell*: among the first ``budget`` evaluated, the one with the highest observed value
  (one training seed's validation accuracy, drawn by the evaluator as for the transfer run), and
  its rank among all classes by truth (1 = the best cell).

DiffusionNAG-BO from scratch runs against the same evaluator with the same budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np

from diffusionnag.evaluators.nb201_valid import (
    FILES,
    ValidationEvaluator,
    load_valid_table,
    package_key,
)
from diffusionnag.evaluators.registry import Target
from diffusionnag.search.history import History
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SEARCHED: dict[str, tuple[str, dict[str, Any]]] = {
    "zc-synflow": ("synflow order of 64 random cells", {"pool_size": 64}),
    "diffusionnag-bo": ("DiffusionNAG-BO from scratch", {}),
}
"""Baselines run as searches: registered strategy name -> (name in the comparison, options).
The zero-cost proxy ranks a seeded pool (``search.strategies.zero_cost``): synflow, the cheaper
proxy, on 64 cells keeps the main job within minutes on a loaded 2-core machine (about 0.1 to
0.3 s per cell)."""


@dataclass(frozen=True)
class Outcome:
    """How one method did within the budget; see the module's definitions."""

    method: str
    evaluations_to_best: int | None
    chosen_cell: str
    chosen_rank: int
    chosen_truth: float


class ValidationTruth:
    """Every NB201 computation class of ``dataset``'s validation table and its mean accuracy."""

    def __init__(self, dataset: str) -> None:
        self.space = NB201Space()
        self.dataset = dataset
        archs = self.space.enumerate()
        keys = [self.space.canonical_key(arch) for arch in archs]
        self.class_keys = sorted(set(keys))
        position = {key: index for index, key in enumerate(self.class_keys)}
        self.class_of = {arch: position[key] for arch, key in zip(archs, keys, strict=True)}
        representatives: dict[int, Arch] = {}
        for arch in archs:
            representatives.setdefault(self.class_of[arch], arch)
        self.representatives = [representatives[i] for i in range(len(self.class_keys))]
        self._members = np.array([self.class_of[arch] for arch in archs])
        self._archs = archs

    def class_means(self, dataset: str, metric: str = "val_acc") -> np.ndarray:
        """``metric`` of ``dataset``'s table (any of the package's datasets), averaged over each
        cell's seeds, then over each class's members: ``[classes]``."""
        table = load_valid_table(dataset)
        per_cell = np.array([np.mean(table[package_key(a)][metric]) for a in self._archs])
        sums = np.bincount(self._members, weights=per_cell, minlength=len(self.class_keys))
        return sums / np.bincount(self._members, minlength=len(self.class_keys))

    @cached_property
    def truth(self) -> np.ndarray:
        return self.class_means(self.dataset)

    @cached_property
    def best_class(self) -> int:
        return int(np.argmax(self.truth))

    def rank(self, class_index: int) -> int:
        """1 + the number of classes with a higher truth."""
        return 1 + int(np.sum(self.truth > self.truth[class_index]))

    def outcome(
        self, method: str, archs: Sequence[Arch], observed: Sequence[float], budget: int
    ) -> Outcome:
        """``method`` evaluated ``archs`` in this order and observed ``observed``."""
        classes = [self.class_of[arch] for arch in archs]
        hits = [i for i, c in enumerate(classes) if c == self.best_class]
        chosen = int(np.nanargmax(np.asarray(observed[:budget], dtype=float)))
        return Outcome(
            method,
            hits[0] + 1 if hits else None,
            self.space.to_string(archs[chosen]),
            self.rank(classes[chosen]),
            round(float(self.truth[classes[chosen]]), 4),
        )


def order_outcome(
    truth: ValidationTruth,
    method: str,
    scores: np.ndarray,
    evaluator: ValidationEvaluator,
    budget: int,
    rng: np.random.Generator,
) -> Outcome:
    """Classes evaluated by decreasing ``scores`` (ties in random order); the whole order counts
    for the best cell's position, the first ``budget`` for the chosen cell."""
    order = np.lexsort((rng.random(len(scores)), -scores))
    first = [truth.representatives[i] for i in order[:budget]]
    observed = [evaluator.evaluate(arch).value for arch in first]
    outcome = truth.outcome(method, first, observed, budget)
    position = int(np.flatnonzero(order == truth.best_class)[0]) + 1
    return Outcome(**{**asdict(outcome), "evaluations_to_best": position})


def free_baselines(
    dataset: str, seed: int, budget: int, *, searches: bool = True
) -> tuple[ValidationTruth, list[Outcome]]:
    """Random, parameter-count and each source table's order, and (``searches``) the synflow
    order and DiffusionNAG-BO from scratch, on ``nb201-valid:<dataset>``, evaluated as a
    transfer run with ``seed`` would be."""
    truth = ValidationTruth(dataset)
    evaluator = ValidationEvaluator(dataset, seed)
    rng = np.random.default_rng([seed, 7])
    count = len(truth.class_keys)
    orders = {
        "random order": rng.random(count),
        "parameter-count order": truth.class_means(dataset, "model_size"),
    }
    for source in FILES:
        if source != truth.dataset:
            orders[f"copy {source}'s order"] = truth.class_means(source)
    outcomes = [
        order_outcome(truth, name, scores, evaluator, budget, rng)
        for name, scores in orders.items()
    ]
    if searches:
        outcomes += [search_outcome(truth, evaluator, name, seed, budget) for name in SEARCHED]
    return truth, outcomes


def search_outcome(
    truth: ValidationTruth, evaluator: ValidationEvaluator, strategy: str, seed: int, budget: int
) -> Outcome:
    """The registered ``strategy`` run with ``budget`` evaluations against ``evaluator``."""
    label, options = SEARCHED[strategy]
    searcher = get_strategy(strategy, truth.space, seed, **options)
    history = run_search(searcher, evaluator, truth.space, budget, progress=False)
    return history_outcome(truth, label, history, budget)


def history_outcome(truth: ValidationTruth, method: str, history: History, budget: int) -> Outcome:
    return truth.outcome(method, history.archs(), list(history.values()), budget)


def comparison_table(outcomes: Sequence[Outcome], budget: int) -> str:
    """Plain text, one line per method: evaluations to the best cell, the chosen cell's rank."""
    header = ("evaluations to best", "chosen cell rank", "its mean valid")
    lines = [f"{'method':<38} {header[0]:>19} {header[1]:>16} {header[2]:>14}"]
    for outcome in outcomes:
        reached = outcome.evaluations_to_best
        reached_text = str(reached) if reached is not None else f"> {budget}"
        lines.append(
            f"{outcome.method:<38} {reached_text:>19} {outcome.chosen_rank:>16} "
            f"{outcome.chosen_truth:>14.2f}"
        )
    return "\n".join(lines)


def comparable_evaluator(target: Target) -> ValidationEvaluator:
    """The validation-table evaluator a comparison reads; ``ValueError`` for other targets."""
    evaluator = target.evaluator
    if not isinstance(evaluator, ValidationEvaluator):
        raise ValueError(
            "comparing with free baselines needs an nb201-valid:<dataset> target, "
            f"not {target.spec}"
        )
    return evaluator


def compare_run(
    target: Target, method: str, history: History, budget: int
) -> tuple[ValidationTruth, list[Outcome]]:
    """The run ``history`` of ``method`` first, then the free baselines, on the target's
    validation table with the target's evaluation seed; with the truth they were scored by."""
    evaluator = comparable_evaluator(target)
    truth, outcomes = free_baselines(evaluator.dataset, evaluator.seed, budget)
    return truth, [history_outcome(truth, method, history, budget), *outcomes]
