"""The acquisition-optimiser ablation: DiffusionNAG-BO with its pool fixed to a baseline's source.

Registered as strategies (``bo-pool-random``, ``bo-pool-mutation``, ``bo-pool-mix``) so that one
``benchmark`` run compares them with ``diffusionnag-bo`` (whose default pool is ``diffusion``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from diffusionnag.search.base import Seed
from diffusionnag.search.strategies.diffusionnag_bo import DiffusionNAGBO
from diffusionnag.spaces.base import SearchSpace


class PoolAblation(DiffusionNAGBO):
    """DiffusionNAG-BO with its pool fixed to one of the baselines' sources (the ablation)."""

    fixed_pool: ClassVar[str]

    def __init__(self, space: SearchSpace, seed: Seed = 0, **options: Any) -> None:
        pool = options.pop("pool", self.fixed_pool)
        if pool != self.fixed_pool:
            raise ValueError(
                f"strategy {self.name!r} is DiffusionNAG-BO with pool={self.fixed_pool}; "
                f"for pool={pool} run diffusionnag-bo with --option pool={pool}"
            )
        super().__init__(space, seed, pool=pool, **options)

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return DiffusionNAGBO.option_names()

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {**super().option_defaults(), "pool": cls.fixed_pool}


class RandomPoolBO(PoolAblation):
    name = "bo-pool-random"
    fixed_pool = "random"


class MutationPoolBO(PoolAblation):
    name = "bo-pool-mutation"
    fixed_pool = "mutation"


class MixPoolBO(PoolAblation):
    name = "bo-pool-mix"
    fixed_pool = "mix"
