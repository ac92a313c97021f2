"""Search strategies by registered name: ``get_strategy(name, space, seed, **options)``.

An entry is a class, or ``"module:Class"`` resolved on first use by :func:`strategy_class`. The
transfer strategies are entries of the second form: they live in ``diffusionnag.transfer``,
which imports ``search`` (the loop, DiffusionNAG-BO), so importing them here would be a cycle;
as strings their names are still known to the CLI and to error messages without that import.
"""

from __future__ import annotations

import importlib
from typing import Any

from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.strategies.bananas import Bananas
from diffusionnag.search.strategies.diffusionnag_bo import DiffusionNAGBO
from diffusionnag.search.strategies.evolution import RegularizedEvolution
from diffusionnag.search.strategies.local_search import LocalSearch
from diffusionnag.search.strategies.optuna_gp import OptunaGPSearch
from diffusionnag.search.strategies.pool_ablation import MixPoolBO, MutationPoolBO, RandomPoolBO
from diffusionnag.search.strategies.random_search import RandomSearch
from diffusionnag.search.strategies.tpe import TPESearch
from diffusionnag.search.strategies.zero_cost import NaswotOrder, ParameterOrder, SynflowOrder
from diffusionnag.spaces.base import SearchSpace

StrategyEntry = type[SearchStrategy] | str

STRATEGIES: dict[str, StrategyEntry] = {
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "local": LocalSearch,
    "bananas": Bananas,
    "tpe": TPESearch,
    "optuna-gp": OptunaGPSearch,
    "diffusionnag-bo": DiffusionNAGBO,
    "bo-pool-random": RandomPoolBO,
    "bo-pool-mutation": MutationPoolBO,
    "bo-pool-mix": MixPoolBO,
    "params": ParameterOrder,
    "zc-naswot": NaswotOrder,
    "zc-synflow": SynflowOrder,
    "transfer": "diffusionnag.transfer.strategy:TransferStrategy",
    "transfer-bo": "diffusionnag.transfer.bo:TransferBO",
}


def register_strategy(name: str, entry: StrategyEntry) -> None:
    """Make ``name`` a strategy: a :class:`SearchStrategy` subclass or ``"module:Class"``."""
    STRATEGIES[name] = entry


def strategy_class(name: str) -> type[SearchStrategy]:
    """The class registered as ``name``; ``ValueError`` lists the known names."""
    if name not in STRATEGIES:
        raise ValueError(
            f"unknown search strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}"
        )
    entry = STRATEGIES[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = STRATEGIES[name] = getattr(importlib.import_module(module), attribute)
    return entry


def standalone_strategies() -> list[str]:
    """The names of strategies that need no target task (what runs on a bare evaluator)."""
    return sorted(name for name in STRATEGIES if not strategy_class(name).needs_target)


def get_strategy(name: str, space: SearchSpace, seed: Seed = 0, **options: Any) -> SearchStrategy:
    """The strategy registered as ``name``; ``ValueError`` lists known names or valid options."""
    cls = strategy_class(name)
    unknown = sorted(set(options) - set(cls.option_names()))
    if unknown:
        valid = ", ".join(cls.option_names()) or "(none)"
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for search strategy {name!r}; valid: {valid}"
        )
    return cls(space, seed, **options)


__all__ = [
    "STRATEGIES",
    "get_strategy",
    "register_strategy",
    "standalone_strategies",
    "strategy_class",
]
