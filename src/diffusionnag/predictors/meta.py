"""The meta-predictor: a noise-aware accuracy predictor conditioned on a task embedding.

``MetaPredictor(x_t, std, task_embedding)`` predicts the task-standardised accuracy of the clean
architecture behind ``x_t``, for the task the embedding describes. It is trained under the score
model's SDE exactly as the guidance predictors are (``predictors.objective``), so its gradient
guides reverse diffusion; at the smallest noise level it is the clean ranking predictor, the
part the research code never released. The embedding comes from a registered task encoder
(``predictors.task_encoders``) that is trained jointly with the predictor.

:meth:`TrainedMetaPredictor.conditioned` fixes the task and returns an object with the same
``standardised`` / ``predict`` / ``mean`` / ``scale`` surface as a single-task predictor, so
guidance (``Objective``) and ranking (``generate_ranked``) use it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diffusionnag.config import LAYERS, POSITIVE, SEED, WIDTH, Bound, check_ranges, config_from_dict
from diffusionnag.diffusion.sde import SDE
from diffusionnag.predictors.cell_graph import CellGraphEncoder
from diffusionnag.predictors.extractor import check_extractor
from diffusionnag.predictors.task_encoders import TaskData, build_encoder, check_encoder
from diffusionnag.spaces import Arch, SearchSpace


@dataclass(frozen=True)
class MetaPredictorConfig:
    """Network and meta-training settings, saved with every meta-predictor."""

    encoder: str = "evaluations"
    extractor: str = "random"
    """Frozen image feature extractor of the ``images`` encoder: ``random`` (seeded) or
    ``fmnist`` (pretrained on Fashion-MNIST; ``predictors.extractor``)."""
    task_sizes: bool = False
    """The ``images`` encoder also reads the task's training images per class and number of
    classes: set pooling is blind to how large its sets are, and with a short training protocol
    the training-set size decides which cells win."""
    hidden: int = 64
    layers: int = 3
    task_dim: int = 64
    steps: int = 3000
    tasks_per_step: int = 4
    queries_per_task: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clean_fraction: float = 0.5
    """Share of query cells at the smallest noise level, so the clean ranking is sharp."""
    floor_quantile: float = 0.3
    """Accuracies below this quantile of their task are raised to it: guidance and ranking only
    need the good region right (``predictors.objective.ACCURACY_FLOOR_QUANTILE``)."""
    top_fraction: float = 0.1
    """Queries and support cells are drawn half from a task's top ``top_fraction`` and half
    uniformly: transfer ranks and evaluates the best cells, so the top must be ranked finely."""
    max_support: int = 10
    """Support sets of 0..max_support evaluated cells (``evaluations`` encoder)."""
    per_class: int = 20
    """Images per class in a task encoding (``images`` encoder)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name, check in (("encoder", check_encoder), ("extractor", check_extractor)):
            try:
                check(getattr(self, name))
            except ValueError as error:
                raise ValueError(f"field {name!r}: {error}") from None
        if self.extractor != "random" and self.encoder != "images":
            raise ValueError(
                f"field 'extractor' ({self.extractor!r}) is for the images encoder, "
                f"not {self.encoder!r}"
            )
        if self.task_sizes and self.encoder != "images":
            raise ValueError(f"field 'task_sizes' is for the images encoder, not {self.encoder!r}")
        check_ranges(self, META_BOUNDS)

    @classmethod
    def from_dict(cls, data: Any, where: str, prefix: str = "config.") -> MetaPredictorConfig:
        """Every field present (but those added later: :data:`ADDED_FIELDS`), of its type and in
        range; ``ValueError`` names ``where`` and the field (after ``prefix``)."""
        if isinstance(data, dict):
            added = {f.name: f.default for f in fields(cls) if f.name in ADDED_FIELDS}
            data = {**added, **data}
        return config_from_dict(cls, data, where, prefix)


META_BOUNDS = {
    "hidden": WIDTH,
    "layers": LAYERS,
    "task_dim": WIDTH,
    "steps": POSITIVE,
    "tasks_per_step": Bound(1, 1024),
    "queries_per_task": Bound(2, 4096),
    "lr": Bound(0, 1),
    "weight_decay": Bound(0, 1),
    "clean_fraction": Bound(0, 1),
    "floor_quantile": Bound(0, 0.99),
    "top_fraction": Bound(0, 1),
    "max_support": Bound(0, 1000),
    "per_class": Bound(2, 1000),
    "seed": SEED,
}
"""Upper bounds keep a hand-edited ``meta_predictor.json`` from asking for a network or a
training batch that cannot fit in memory."""
ADDED_FIELDS = ("extractor", "task_sizes")
"""Config fields newer than some saved meta-predictors: missing, they take their default (what
those predictors were built with)."""


class MetaPredictor(nn.Module):
    """``(x_t [B, N, V], std [B], task_embedding [D] or [B, D]) -> [B]`` standardised accuracy."""

    def __init__(
        self, space: SearchSpace, config: MetaPredictorConfig, *, pretrained: bool = False
    ) -> None:
        """``pretrained``: start a pretrained extractor from its shipped weights (a network
        about to be meta-trained); a saved network gets them from its own ``state_dict``."""
        super().__init__()
        hidden, dim = config.hidden, config.task_dim
        self.task_encoder = build_encoder(space, config, pretrained=pretrained)
        self.cells = CellGraphEncoder(space, hidden, config.layers)
        self.condition = nn.Linear(dim, hidden)
        self.modulate = nn.Linear(dim, 2 * hidden)
        self.head = nn.Sequential(
            nn.Linear(4 * hidden + dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def encode_task(self, task: TaskData) -> Tensor:
        return self.task_encoder(task)  # [D]

    def encode_tasks(self, tasks: list[TaskData]) -> Tensor:
        return self.task_encoder.encode_batch(tasks)  # [T, D]

    def forward(self, x: Tensor, std: Tensor, task_embedding: Tensor) -> Tensor:
        task = task_embedding.expand(x.shape[0], -1)  # [B, D]
        pooled = self.cells(x, std, self.condition(task))  # [B, 2H]
        # The product lets the task reweight cell features directly (which operations pay off
        # on it), an interaction the additive node condition would need many steps to learn.
        features = [pooled, pooled * self.modulate(task), task]
        return self.head(torch.cat(features, dim=-1)).squeeze(-1)  # [B]


@dataclass
class ConditionedPredictor:
    """The meta-predictor with its task fixed: the single-task predictor surface.

    ``embeddings [R, D]`` are R encodings of the same task (resampled images or support
    subsets); predictions are their mean, which steadies the ranking.
    """

    space: SearchSpace
    sde: SDE
    network: MetaPredictor
    embeddings: Tensor
    mean: float = 0.0
    scale: float = 1.0

    def standardised(self, x: Tensor, t: Tensor) -> Tensor:
        std = self.sde.std(t)
        outputs = [self.network(x, std, e) for e in self.embeddings]
        return torch.stack(outputs).mean(0)  # [B]

    @torch.no_grad()
    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Clean predictions (task-standardised accuracy: only the order is meaningful)."""
        device = self.embeddings.device
        x = self.space.encode(archs).to(device)
        t = torch.full((len(archs),), self.sde.t_min, device=device)
        return self.standardised(x, t).cpu().numpy()


@dataclass
class TrainedMetaPredictor:
    """A meta-trained predictor, its config, its SDE and what it was trained on (``meta``)."""

    space: SearchSpace
    sde: SDE
    network: MetaPredictor
    config: MetaPredictorConfig
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_on(self) -> list[str]:
        return list(self.meta.get("tasks", []))

    @torch.no_grad()
    def embed(self, tasks: list[TaskData]) -> Tensor:
        """``[R, D]`` embeddings, one per encoding of the task."""
        if not tasks:
            raise ValueError("need at least one task encoding")
        return self.network.encode_tasks(tasks)

    def conditioned(self, tasks: list[TaskData]) -> ConditionedPredictor:
        return ConditionedPredictor(self.space, self.sde, self.network, self.embed(tasks))

    def support(self, archs: list[Arch], values: np.ndarray | list[float]) -> TaskData:
        """A support set for the ``evaluations`` encoder (may be empty)."""
        device = next(self.network.parameters()).device
        cells = self.space.encode(archs) if archs else torch.zeros(0, 1, 1)
        return TaskData(
            support_cells=cells.to(device),
            support_values=torch.tensor(np.asarray(values, dtype=np.float32), device=device),
        )
