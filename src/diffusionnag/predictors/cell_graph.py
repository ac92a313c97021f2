"""The cell graph encoder shared by the meta-predictor and the evaluations task encoder."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffusionnag.diffusion.score_net import NoiseEmbedding
from diffusionnag.predictors.objective import DirectedGraphConv
from diffusionnag.spaces.base import SearchSpace


class CellGraphEncoder(nn.Module):
    """``x [B, N, V]`` (+ noise level, + a per-cell condition) -> ``[B, 2D]`` pooled graph state.

    The directed graph convolution of the guidance predictors; a condition vector (the task) is
    added to every node before message passing, so which operations matter can depend on it.
    """

    def __init__(self, space: SearchSpace, hidden: int, layers: int) -> None:
        super().__init__()
        adjacency = space.adjacency()
        self.register_buffer("from_parents", adjacency.T / adjacency.sum(0).clamp_min(1)[:, None])
        self.register_buffer("from_children", adjacency / adjacency.sum(1).clamp_min(1)[:, None])
        self.embed = nn.Linear(len(space.vocab), hidden)
        self.node_embedding = nn.Parameter(torch.randn(space.num_nodes, hidden) * 0.02)
        self.noise_embedding = NoiseEmbedding(8, hidden)
        self.convs = nn.ModuleList(DirectedGraphConv(hidden) for _ in range(layers))

    def forward(self, x: Tensor, std: Tensor, condition: Tensor | None = None) -> Tensor:
        scaled = x / (1 + std**2).sqrt()[:, None, None]  # [B, N, V]
        h = self.embed(scaled) + self.node_embedding + self.noise_embedding(std)[:, None, :]
        if condition is not None:
            h = h + condition[:, None, :]
        for conv in self.convs:
            h = conv(h, self.from_parents, self.from_children)  # [B, N, D]
        return torch.cat([h.mean(1), h.amax(1)], dim=-1)  # [B, 2D]
