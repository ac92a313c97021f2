"""Gaussian-process Bayesian optimisation through optuna's ``GPSampler``.

The GP baseline of the BO comparisons (issue "MobileNetV3 on ImageNet"): the same study built from
the history on every ask as the TPE strategy, one categorical parameter per op slot (optuna's GP
has a kernel for categorical parameters), and the cells already in a batch passed on as running
trials, which the GP treats as pending points when it maximises its acquisition.
"""

from __future__ import annotations

from typing import Any

from diffusionnag.search.base import Seed
from diffusionnag.search.strategies.tpe import OptunaSearch, import_optuna
from diffusionnag.spaces.base import SearchSpace


class OptunaGPSearch(OptunaSearch):
    """optuna's GP sampler; ``deterministic`` says the evaluator has no noise (a surrogate)."""

    name = "optuna-gp"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        num_init: int = 10,
        max_retries: int = 20,
        deterministic: bool = False,
    ) -> None:
        super().__init__(space, seed, num_init=num_init, max_retries=max_retries)
        self.deterministic = bool(deterministic)

    def sampler(self, seed: int) -> Any:
        return import_optuna(self.name).samplers.GPSampler(
            seed=seed,
            n_startup_trials=self.num_init,
            deterministic_objective=self.deterministic,
        )
