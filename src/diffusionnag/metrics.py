"""Generation metrics as the DiffusionNAG paper defines them.

* validity: valid samples / generated samples;
* uniqueness: distinct valid architectures / valid samples (``uniqueness`` compares cell
  strings, ``uniqueness_canonical`` compares the space's canonical keys, so cells the key
  identifies as one computation, e.g. NB201 cells sharing a ``UniqueString``, count once);
* novelty: distinct valid architectures absent from the training set / distinct valid ones.

With no valid sample there is nothing unique or novel, so those ratios are reported as 0.0
rather than as an undefined 0/0.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from numbers import Integral

import numpy as np
from scipy import stats

from diffusionnag.spaces.base import Arch, SearchSpace


def generation_metrics(
    space: SearchSpace,
    archs: Sequence[Arch | None],
    train_archs: Collection[Arch] | None = None,
) -> dict[str, float]:
    """``validity``, ``uniqueness``, ``uniqueness_canonical`` and, given a training set,
    ``novelty`` of decoded samples (``None`` marks an invalid sample)."""
    if len(archs) == 0:
        raise ValueError("no generated architectures to score: archs is empty")
    valid = [arch for arch in archs if arch is not None]
    for arch in valid:
        if arch.space != space.name:
            raise ValueError(f"architecture of space {arch.space!r} scored in space {space.name!r}")
    distinct = set(valid)
    result = {
        "validity": len(valid) / len(archs),
        "uniqueness": _ratio(len(distinct), len(valid)),
        "uniqueness_canonical": _ratio(len({space.canonical_key(a) for a in valid}), len(valid)),
    }
    if train_archs is not None:
        novel = distinct.difference(train_archs)
        result["novelty"] = _ratio(len(novel), len(distinct))
    return result


def expected_uniqueness_uniform(num_draws: int, space_size: int) -> float:
    """E[distinct] / n for n uniform draws with replacement from M items.

    E[distinct] = M (1 - (1 - 1/M)^n); the baseline that a generator's uniqueness should beat
    (about 0.969 for 1,000 draws from the 15,625 NB201 cells).
    """
    if not isinstance(num_draws, Integral) or num_draws < 1:
        raise ValueError(f"num_draws must be a positive integer, got {num_draws!r}")
    if not isinstance(space_size, Integral) or space_size < 1:
        raise ValueError(f"space_size must be a positive integer, got {space_size!r}")
    # expm1/log1p keep (1 - 1/M)^n accurate when M is large and n small.
    hit = -math.expm1(num_draws * math.log1p(-1 / space_size)) if space_size > 1 else 1.0
    return space_size * hit / num_draws


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def rank_correlations(
    predicted: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Kendall's tau-b and Spearman's rho (ties sharing their mean rank) between predictions
    and true values, from scipy. A constant sequence has no order to agree with: tau is then
    0.0 and rho NaN, as this function reported before it used scipy."""
    p, a = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    if p.shape != a.shape or p.size < 2:
        raise ValueError("rank correlation needs two equally long sequences of >= 2 values")
    constant = np.ptp(p) == 0 or np.ptp(a) == 0
    if constant:
        return {"kendall_tau": 0.0, "spearman": math.nan}
    tau = float(stats.kendalltau(p, a).statistic)
    return {"kendall_tau": tau, "spearman": float(stats.spearmanr(p, a).statistic)}
