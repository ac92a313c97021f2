"""Search spaces by registered name."""

from __future__ import annotations

from collections.abc import Callable

from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.spaces.mbv3 import MBV3Space
from diffusionnag.spaces.nb201 import NB201Space

SPACES: dict[str, Callable[[], SearchSpace]] = {"nb201": NB201Space, "mbv3": MBV3Space}


def get_space(name: str) -> SearchSpace:
    """The search space registered as ``name``; ``ValueError`` lists the known names."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}")
    return SPACES[name]()


__all__ = ["SPACES", "Arch", "SearchSpace", "get_space"]
