"""An ensemble of small MLPs that predicts an architecture's value, with its spread as uncertainty.

The members are trained together as one batched network (weights ``[M, in, out]``): the loss is
a sum over members and Adam's updates are per-parameter, so each member trains exactly as it would
alone, but M members cost one set of matrix multiplies. Members differ only in their random
initialisation, as in BANANAS (White et al., 2021).

Inputs are ``space.encode(archs)`` flattened, ``[B, N*V]``: for NAS-Bench-201 the one-hot op of
every node of the fixed DAG, which is equivalent to BANANAS' adjacency-one-hot encoding there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from diffusionnag.device import single_thread
from diffusionnag.spaces.base import Arch, SearchSpace


def features(space: SearchSpace, archs: Sequence[Arch]) -> Tensor:
    """``[B, N*V]`` float inputs for the ensemble."""
    return space.encode(archs).flatten(1)


class BatchedMLP(nn.Module):
    """``members`` independent MLPs ``in -> hidden (x layers) -> 1`` evaluated in one pass."""

    def __init__(
        self, members: int, inputs: int, hidden: int, layers: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        sizes = [inputs] + [hidden] * layers + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = fan_in**-0.5
            weight = (torch.rand(members, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            bias = (torch.rand(members, 1, fan_out, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(bias))

    def forward(self, x: Tensor) -> Tensor:
        h = x.unsqueeze(0).expand(self.weights[0].shape[0], -1, -1)  # [M, B, D]
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, h, weight)  # [M, B, out]
            if k < len(self.weights) - 1:
                h = torch.relu(h)
        return h.squeeze(-1)  # [M, B]


class MLPEnsemble:
    """A trained :class:`BatchedMLP` plus the target scaling it was trained under."""

    def __init__(self, network: BatchedMLP, y_mean: float, y_std: float) -> None:
        self.network = network
        self.y_mean = y_mean
        self.y_std = y_std

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """``[M, B]`` predictions in the units of the training targets."""
        with single_thread():
            return self.network(x.float()) * self.y_std + self.y_mean

    def mean_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B]`` ensemble mean and std."""
        predictions = self.predict(x)
        return predictions.mean(0), predictions.std(0, unbiased=False)


def fit_mlp_ensemble(
    x: Tensor,
    y: Tensor,
    *,
    generator: torch.Generator,
    members: int = 5,
    hidden: int = 32,
    layers: int = 2,
    epochs: int = 100,
    lr: float = 0.01,
) -> MLPEnsemble:
    """Train ``members`` MLPs on ``x [B, D]`` -> ``y [B]`` (full batch, ``epochs`` Adam steps).

    Targets are standardised and fitted with an L1 loss, as BANANAS does: accuracy tables have a
    long tail of broken cells, and a squared loss would spend the small network on that tail
    instead of on ranking the good cells.
    """
    if x.dim() != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"need x [B, D] and y [B], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 training points, got {x.shape[0]}")
    with single_thread():
        return _fit(x.float(), y.float(), generator, members, hidden, layers, epochs, lr)


def _fit(
    x: Tensor,
    y: Tensor,
    generator: torch.Generator,
    members: int,
    hidden: int,
    layers: int,
    epochs: int,
    lr: float,
) -> MLPEnsemble:
    y_mean, y_std = float(y.mean()), max(float(y.std()), 1e-6)
    target = ((y - y_mean) / y_std).unsqueeze(0)  # [1, B]
    network = BatchedMLP(members, x.shape[1], hidden, layers, generator)
    optimiser = torch.optim.Adam(network.parameters(), lr=lr)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = (network(x) - target).abs().mean(1).sum()
        loss.backward()
        optimiser.step()
    network.eval()
    return MLPEnsemble(network, y_mean, y_std)
