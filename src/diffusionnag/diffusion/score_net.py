"""A small transformer that predicts the noise in a perturbed architecture graph.

Tokens are the graph's nodes. Attention is masked by the search space's reachability mask, so a
node only sees nodes it is connected to through the DAG; the same mask is used in training,
guidance and sampling because the network owns it as a buffer built from the space.

Two options (off by default, where the shipped NB201 model was trained without them) help
spaces whose validity ties neighbouring nodes together, such as MobileNetV3, whose absent layers
must be a stage's trailing ones. With both off, a model trained there in exploratory runs
behaved as if every node were independent of the others and broke that rule often; with both on
it learns the rule (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffusionnag.spaces.base import SearchSpace

HEADS = ("noise", "categorical")


@dataclass(frozen=True)
class ScoreNetConfig:
    hidden: int = 64
    layers: int = 3
    heads: int = 4
    mlp_ratio: int = 2
    fourier_features: int = 16
    head: str = "noise"
    """``noise``: a linear layer estimates the noise (the paper's parametrisation).
    ``categorical``: each node's denoised row is a mixture of the zero row and the one-hot rows,
    weighted by their exact Gaussian likelihood times a prior the network predicts from the other
    nodes (see :func:`row_log_likelihoods`), so the network only has to learn how nodes inform
    each other. It assumes an SDE without drift (``ve``): samples are ``x0 + std * noise``."""
    messages: bool = False
    """Also pass messages along the adjacency's edges in every block. Attention sees every
    reachable node, which on a chain is all of them, and has to discover which one is the
    neighbour; messages from parents and children give it directly."""

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown score head {self.head!r}; known: {', '.join(HEADS)}")


def row_log_likelihoods(x: Tensor, std: Tensor) -> Tensor:
    """``[B, N, 1 + V]`` log-likelihood of each node's row being the zero row (first entry) or a
    one-hot row, given ``x = row + std * noise``, relative to the zero row.

    ``log N(x; e_k, std^2) - log N(x; 0, std^2) = (x_k - 1/2) / std^2``.
    """
    present = (x - 0.5) / std.pow(2)[:, None, None]  # [B, N, V]
    return torch.cat([torch.zeros_like(x[..., :1]), present], dim=-1)


def _softmax(logits: Tensor) -> Tensor:
    """Softmax over the last axis with logits floored at 30 below their maximum. The weights
    this changes are below 1e-13, far under float32's resolution beside the largest one, but
    computing them and their gradients gives denormal floats, which made a training step twice
    as slow on CPU."""
    shifted = logits - logits.detach().amax(-1, keepdim=True)
    return shifted.clamp_min(-30.0).softmax(-1)


class NoiseEmbedding(nn.Module):
    """Fourier features of ``log sigma`` followed by a small MLP."""

    frequencies: Tensor  # a buffer: moves with the module, saved in its state dict

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", torch.arange(1, features + 1).float() * math.pi / 4)
        self.mlp = nn.Sequential(
            nn.Linear(2 * features, hidden), nn.SiLU(), nn.Linear(hidden, hidden)
        )

    def forward(self, std: Tensor) -> Tensor:
        angles = std.log()[:, None] * self.frequencies  # [B, F]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=-1))  # [B, D]


class MaskedBlock(nn.Module):
    """Pre-norm transformer block whose attention is restricted by a fixed boolean mask."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: int, messages: bool = False) -> None:
        super().__init__()
        self.heads = heads
        self.norm_attn = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm_mlp = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, mlp_ratio * hidden), nn.GELU(), nn.Linear(mlp_ratio * hidden, hidden)
        )
        self.noise_shift = nn.Linear(hidden, hidden)
        if messages:
            self.norm_msg = nn.LayerNorm(hidden)
            self.msg = nn.Linear(2 * hidden, hidden)

    def forward(
        self, h: Tensor, noise: Tensor, mask: Tensor, neighbours: Tensor | None = None
    ) -> Tensor:
        """``neighbours``: ``[2, N, N]`` row-normalised parent and child matrices, with messages."""
        batch, nodes, hidden = h.shape
        h = h + self.noise_shift(noise)[:, None, :]  # [B, N, D]
        q, k, v = self.qkv(self.norm_attn(h)).chunk(3, dim=-1)
        split = (batch, nodes, self.heads, hidden // self.heads)
        q, k, v = (part.reshape(split).transpose(1, 2) for part in (q, k, v))  # [B, H, N, D/H]
        # With a handful of nodes, explicit attention beats the fused CPU kernels by far.
        logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # [B, H, N, N]
        attended = logits.masked_fill(~mask, float("-inf")).softmax(-1) @ v  # [B, H, N, D/H]
        h = h + self.proj(attended.transpose(1, 2).reshape(batch, nodes, hidden))
        if neighbours is not None:
            z = self.norm_msg(h)
            h = h + self.msg(torch.cat([neighbours[0] @ z, neighbours[1] @ z], dim=-1))
        return h + self.mlp(self.norm_mlp(h))


def _neighbours(space: SearchSpace) -> Tensor:
    """``[2, N, N]``: averaging over each node's parents, and over its children."""
    adjacency = space.adjacency()  # [N, N]
    parents = adjacency.T / adjacency.sum(0).clamp_min(1)[:, None]
    children = adjacency / adjacency.sum(1).clamp_min(1)[:, None]
    return torch.stack([parents, children])


class ScoreNetwork(nn.Module):
    """``(x [B, N, V], std [B]) -> [B, N, V]``, an estimate of ``-noise`` (see ``SDE.score``)."""

    def __init__(self, space: SearchSpace, config: ScoreNetConfig) -> None:
        super().__init__()
        if config.hidden % config.heads:
            raise ValueError(
                f"hidden size {config.hidden} is not divisible by {config.heads} heads"
            )
        vocab, nodes = len(space.vocab), space.num_nodes
        positions = space.positions()
        self.categorical = config.head == "categorical"
        # The categorical head also reads each row's likelihood-only posterior over its states.
        inputs, outputs = (2 * vocab + 1, vocab + 1) if self.categorical else (vocab, vocab)
        self.register_buffer("mask", space.attention_mask())
        self.register_buffer("positions", positions)
        self.register_buffer("neighbours", _neighbours(space) if config.messages else None)
        self.embed = nn.Linear(inputs, config.hidden)
        self.node_embedding = nn.Parameter(torch.zeros(nodes, config.hidden))
        self.position_embedding = nn.Embedding(int(positions.max()) + 1, config.hidden)
        self.noise_embedding = NoiseEmbedding(config.fourier_features, config.hidden)
        self.blocks = nn.ModuleList(
            MaskedBlock(config.hidden, config.heads, config.mlp_ratio, config.messages)
            for _ in range(config.layers)
        )
        self.norm_out = nn.LayerNorm(config.hidden)
        self.out = nn.Linear(config.hidden, outputs)
        nn.init.normal_(self.node_embedding, std=0.02)

    def forward(self, x: Tensor, std: Tensor) -> Tensor:
        # Dividing by the marginal's scale keeps inputs near unit variance at every noise level.
        features = x / (1 + std**2).sqrt()[:, None, None]  # [B, N, V]
        if self.categorical:
            evidence = row_log_likelihoods(x, std)  # [B, N, 1 + V]
            features = torch.cat([features, _softmax(evidence)], dim=-1)  # [B, N, 2V + 1]
        h = self.embed(features) + self.node_embedding + self.position_embedding(self.positions)
        noise = self.noise_embedding(std)  # [B, D]
        for block in self.blocks:
            h = block(h, noise, self.mask, self.neighbours)  # [B, N, D]
        out = self.out(self.norm_out(h))  # [B, N, V] or [B, N, 1 + V]
        if not self.categorical:
            return out
        denoised = _softmax(out + evidence)[..., 1:]  # [B, N, V]; the zero row adds nothing
        return (denoised - x) / std[:, None, None]
