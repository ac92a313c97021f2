"""A transfer prior that can say "this target ranks like that source" (``prior="experts"``).

The experts are the meta-predictor's ranking and the accuracies of each source table it was
meta-trained on (never the target: the evaluator refuses to read its own dataset as a source).
Each is z-scored over the cells being ranked and weighted as in RGPE (ranking-weighted Gaussian
process ensembles, Feurer et al. 2018): over bootstrap resamples of the evaluated cells, the share
of resamples in which that expert misorders the fewest pairs. Before two evaluations the weights
are equal. So the first proposal is the fused zero-shot order, and as the support set grows the
prior leans on whichever expert agrees with it. Candidates are the generated pool plus the top
cells of each source, so copying a source's order is a ranking the prior can express.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from diffusionnag.evaluators.registry import Target
from diffusionnag.spaces.base import Arch, SearchSpace

BOOTSTRAPS = 50
"""Resamples of the evaluated cells per weighting; enough for weights steady to a few percent."""

SourceFn = Callable[[Arch], float]


def source_experts(target: Target, trained_on: Sequence[str]) -> dict[str, SourceFn]:
    """``{source dataset: its accuracy of a cell}`` for each NB201 table task in ``trained_on``
    that the target's evaluator can read as a source; empty when it reads none."""
    lookup = getattr(target.evaluator, "source_accuracy", None)
    if lookup is None:
        return {}
    datasets = [task.split(":", 1)[1] for task in trained_on if task.startswith("nb201:")]

    def expert(dataset: str) -> SourceFn:
        return lambda arch: lookup(arch, dataset)

    return {dataset: expert(dataset) for dataset in datasets}


def top_source_cells(space: SearchSpace, sources: dict[str, SourceFn], count: int) -> list[Arch]:
    """The ``count`` best cells of each source, one per computation (none where the space
    cannot be enumerated: sources are tables of an enumerable space)."""
    enumerate_space = getattr(space, "enumerate", None)
    if enumerate_space is None or not sources:
        return []
    cells = enumerate_space()
    chosen: dict[str, Arch] = {}
    for source in sources.values():
        scores = np.array([source(arch) for arch in cells])
        taken = 0
        for index in np.argsort(-scores, kind="stable"):
            key = space.canonical_key(cells[index])
            if key not in chosen:
                chosen[key] = cells[index]
            taken += 1 if chosen[key] == cells[index] else 0
            if taken == count:
                break
    return list(chosen.values())


def zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def misordered_share(scores: np.ndarray, values: np.ndarray) -> float:
    """Share of the pairs with different ``values`` that ``scores`` orders the other way."""
    diff_scores = scores[:, None] - scores[None, :]
    diff_values = values[:, None] - values[None, :]
    pairs = diff_values != 0
    if not pairs.any():
        return 0.0
    return float(np.mean((diff_scores * diff_values)[pairs] < 0))


def rgpe_weights(
    evaluated_scores: np.ndarray, values: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``[E]`` weights of ``evaluated_scores [E, n]`` (each expert's scores of the ``n``
    evaluated cells, observed ``values``): the share of bootstrap resamples in which each expert
    misorders the fewest pairs (ties share); equal below two evaluations."""
    experts, count = evaluated_scores.shape
    if count < 2:
        return np.full(experts, 1.0 / experts)
    wins = np.zeros(experts)
    for _ in range(BOOTSTRAPS):
        sample = rng.integers(count, size=count)
        losses = np.array(
            [misordered_share(scores[sample], values[sample]) for scores in evaluated_scores]
        )
        best = np.flatnonzero(np.isclose(losses, losses.min()))
        wins[best] += 1.0 / len(best)
    return wins / BOOTSTRAPS


def fused_scores(
    expert_scores: np.ndarray,
    evaluated: Sequence[int],
    values: Sequence[float],
    rng: np.random.Generator,
) -> np.ndarray:
    """``[cells]``: the experts' z-scored scores ``expert_scores [E, cells]`` weighted by how
    well each orders the ``evaluated`` cells (indices into cells) by their ``values``."""
    normalised = np.stack([zscore(scores) for scores in expert_scores])
    index = np.asarray(evaluated, dtype=int)
    weights = rgpe_weights(normalised[:, index], np.asarray(values, dtype=float), rng)
    return weights @ normalised
