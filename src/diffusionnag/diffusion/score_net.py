"""A small transformer that predicts the noise in a perturbed architecture graph.

Tokens are the graph's nodes. Attention is masked by the search space's reachability mask, so a
node only sees nodes it is connected to through the DAG; the same mask is used in training,
guidance and sampling because the network owns it as a buffer built from the space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from diffusionnag.spaces.base import SearchSpace


@dataclass(frozen=True)
class ScoreNetConfig:
    hidden: int = 64
    layers: int = 3
    heads: int = 4
    mlp_ratio: int = 2
    fourier_features: int = 16


class NoiseEmbedding(nn.Module):
    """Fourier features of ``log sigma`` followed by a small MLP."""

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

    def __init__(self, hidden: int, heads: int, mlp_ratio: int) -> None:
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

    def forward(self, h: Tensor, noise: Tensor, mask: Tensor) -> Tensor:
        batch, nodes, hidden = h.shape
        h = h + self.noise_shift(noise)[:, None, :]  # [B, N, D]
        q, k, v = self.qkv(self.norm_attn(h)).chunk(3, dim=-1)
        split = (batch, nodes, self.heads, hidden // self.heads)
        q, k, v = (part.reshape(split).transpose(1, 2) for part in (q, k, v))  # [B, H, N, D/H]
        # With a handful of nodes, explicit attention beats the fused CPU kernels by far.
        logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # [B, H, N, N]
        attended = logits.masked_fill(~mask, float("-inf")).softmax(-1) @ v  # [B, H, N, D/H]
        h = h + self.proj(attended.transpose(1, 2).reshape(batch, nodes, hidden))
        return h + self.mlp(self.norm_mlp(h))


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
        self.register_buffer("mask", space.attention_mask())
        self.register_buffer("positions", positions)
        self.embed = nn.Linear(vocab, config.hidden)
        self.node_embedding = nn.Parameter(torch.zeros(nodes, config.hidden))
        self.position_embedding = nn.Embedding(int(positions.max()) + 1, config.hidden)
        self.noise_embedding = NoiseEmbedding(config.fourier_features, config.hidden)
        self.blocks = nn.ModuleList(
            MaskedBlock(config.hidden, config.heads, config.mlp_ratio) for _ in range(config.layers)
        )
        self.norm_out = nn.LayerNorm(config.hidden)
        self.out = nn.Linear(config.hidden, vocab)
        nn.init.normal_(self.node_embedding, std=0.02)

    def forward(self, x: Tensor, std: Tensor) -> Tensor:
        # Dividing by the marginal's scale keeps inputs near unit variance at every noise level.
        scaled = x / (1 + std**2).sqrt()[:, None, None]  # [B, N, V]
        h = self.embed(scaled) + self.node_embedding + self.position_embedding(self.positions)
        noise = self.noise_embedding(std)  # [B, D]
        for block in self.blocks:
            h = block(h, noise, self.mask)  # [B, N, D]
        return self.out(self.norm_out(h))  # [B, N, V]
