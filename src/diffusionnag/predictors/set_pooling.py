"""Set Transformer layers: self-attention without positions, then attention pooling with a
learned seed, so permuting a set permutes nothing downstream (the task encoders' sets)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SetAttentionBlock(nn.Module):
    """``[S, L, D] -> [S, L, D]``: self-attention over each set's L elements, then an MLP.
    ``pad [S, L]`` marks padding elements (sets of different sizes batched together)."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, key_padding_mask=pad, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class AttentionPool(nn.Module):
    """``[S, L, D] -> [S, D]``: one learned query attends over each set (Set Transformer PMA)."""

    def __init__(self, dim: int, heads: int = 4) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        query = self.seed.expand(x.shape[0], -1, -1)  # [S, 1, D]
        pooled = self.attention(query, x, x, key_padding_mask=pad, need_weights=False)[0]
        return self.out(pooled.squeeze(1))  # [S, D]


class SetPooling(nn.Module):
    """Set attention blocks followed by attention pooling: a permutation-invariant set summary."""

    def __init__(self, dim: int, blocks: int = 1, heads: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SetAttentionBlock(dim, heads) for _ in range(blocks))
        self.pool = AttentionPool(dim, heads)

    def forward(self, x: Tensor, pad: Tensor | None = None) -> Tensor:
        for block in self.blocks:
            x = block(x, pad)
        return self.pool(x, pad)  # [S, L, D] -> [S, D]
