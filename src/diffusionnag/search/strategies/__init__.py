"""Search strategies by registered name: ``get_strategy(name, space, seed, **options)``."""

from __future__ import annotations

from typing import Any

from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.strategies.bananas import Bananas
from diffusionnag.search.strategies.diffusionnag_bo import (
    DiffusionNAGBO,
    MixPoolBO,
    MutationPoolBO,
    RandomPoolBO,
)
from diffusionnag.search.strategies.evolution import RegularizedEvolution
from diffusionnag.search.strategies.local_search import LocalSearch
from diffusionnag.search.strategies.random_search import RandomSearch
from diffusionnag.search.strategies.tpe import TPESearch
from diffusionnag.search.strategies.zero_cost import NaswotOrder, ParameterOrder, SynflowOrder
from diffusionnag.spaces.base import SearchSpace

STRATEGIES: dict[str, type[SearchStrategy]] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "local": LocalSearch,
    "bananas": Bananas,
    "tpe": TPESearch,
    "diffusionnag-bo": DiffusionNAGBO,
    "bo-pool-random": RandomPoolBO,
    "bo-pool-mutation": MutationPoolBO,
    "bo-pool-mix": MixPoolBO,
    "params": ParameterOrder,
    "zc-naswot": NaswotOrder,
    "zc-synflow": SynflowOrder,
}


def get_strategy(name: str, space: SearchSpace, seed: Seed = 0, **options: Any) -> SearchStrategy:
    """The strategy registered as ``name``; ``ValueError`` lists known names or valid options."""
    if name not in STRATEGIES:
        raise ValueError(
            f"unknown search strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    cls = STRATEGIES[name]
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        valid = ", ".join(cls.option_names()) or "(none)"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for search strategy {name!r}; valid: {valid}"
        )
    return cls(space, seed, **options)


__all__ = ["STRATEGIES", "get_strategy"]
