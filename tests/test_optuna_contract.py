"""Optuna's own sampler test suite (``optuna.testing.pytest_samplers``) run on DiffusionNAGSampler.

The suite's studies use parameters of their own (``x``, ``y``, ...), so it checks the sampler as
Optuna sees it: independent and relative sampling of any distribution (the random fallback),
``n_jobs=2``, ``PartialFixedSampler`` wrapping, nan objectives, and the ``ValueError`` a
single-objective sampler must raise in a multi-objective study. DiffusionNAG-BO optimises one
objective, so the single-objective case replaces ``MultiObjectiveSamplerTestCase``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from optuna.samplers import BaseSampler
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    RelativeSamplerTestCase,
    SingleOnlySamplerTestCase,
)
from strategy_options import FAST_OPTIONS

from diffusionnag.integrations.optuna import DiffusionNAGSampler


class TestDiffusionNAGSampler(
    BasicSamplerTestCase, RelativeSamplerTestCase, SingleOnlySamplerTestCase
):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: DiffusionNAGSampler("nb201", seed=0, **FAST_OPTIONS["diffusionnag-bo"])
