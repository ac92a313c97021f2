"""What guidance and ranking need from a predictor, whichever kind it is."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from torch import Tensor

from diffusionnag.spaces.base import Arch


class Predictor(Protocol):
    """A noise-aware predictor of one objective: a differentiable value of noisy samples in
    standardised units (``mean`` and ``scale`` convert to the objective's own units), and clean
    predictions of finished architectures in those units."""

    @property
    def mean(self) -> float: ...

    @property
    def scale(self) -> float: ...

    def standardised(self, x: Tensor, t: Tensor) -> Tensor:
        """``[B]`` prediction at noisy ``x [B, N, V]`` and time ``t [B]``, differentiable in x."""
        ...

    def predict(self, archs: list[Arch]) -> np.ndarray:
        """``[B]`` clean predictions in the objective's own units."""
        ...
