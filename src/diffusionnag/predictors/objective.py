"""Noise-aware predictors of an architecture's objective (accuracy, parameters, FLOPs, ...).

The network reads a *perturbed* encoding ``x_t`` and its noise level, so its gradient with respect
to ``x_t`` is meaningful at every step of the reverse diffusion. The same network at the smallest
noise level is the clean predictor that ranks finished architectures.

Encoder: a directed graph convolution over the space's adjacency. Each layer mixes a node's own
state with the mean of its predecessors' (forward pass of the computation) and successors'
(backward pass) states, as in the DiffusionNAG / MetaD2A predictors: an operation's worth depends
on what feeds it and what it feeds. Learned per-node embeddings tell apart nodes that hold the
same operation at different places of the cell.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diffusionnag.config import (
    FRACTION,
    LAYERS,
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_REAL,
    WIDTH,
    Bound,
    check_ranges,
    check_type,
    config_from_dict,
)
from diffusionnag.device import resolve_device
from diffusionnag.diffusion.score_net import NoiseEmbedding
from diffusionnag.diffusion.sde import SDE, sde_from_dict, sde_to_dict
from diffusionnag.io import atomic_write, check_weights_fit, load_weights, read_json
from diffusionnag.progress import log_line, phase
from diffusionnag.spaces import Arch, SearchSpace, get_space

ACCURACY_FLOOR_QUANTILE = 0.3
"""Floor for maximised accuracy targets. Guidance and ranking only need the good region right;
without a floor the long tail of broken cells (10 % accuracy on NB201) dominates the squared
error and the predictor ranks the top of the table worse (seen in exploratory runs on CIFAR-10
with 100 training cells; not a recorded benchmark)."""


@dataclass(frozen=True)
class PredictorConfig:
    hidden: int = 64
    layers: int = 3
    epochs: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    clean_fraction: float = 0.5
    """Share of training examples at the smallest noise level, so the clean ranking is sharp."""
    floor_quantile: float = 0.0
    """Targets below this quantile of the training values are raised to it (see
    :data:`ACCURACY_FLOOR_QUANTILE`); 0 keeps them as they are, as costs and minimised
    objectives need."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, PREDICTOR_BOUNDS)


PREDICTOR_BOUNDS = {
    "hidden": WIDTH,
    "layers": LAYERS,
    "batch_size": POSITIVE,
    "epochs": NON_NEGATIVE,  # 0: the untrained network, a baseline
    "lr": POSITIVE_REAL,
    "weight_decay": NON_NEGATIVE,
    "clean_fraction": Bound(0, 1),
    "floor_quantile": FRACTION,
    "seed": NON_NEGATIVE,
}


class DirectedGraphConv(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_loop = nn.Linear(hidden, hidden)
        self.forward_msg = nn.Linear(hidden, hidden, bias=False)
        self.backward_msg = nn.Linear(hidden, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, h: Tensor, from_parents: Tensor, from_children: Tensor) -> Tensor:
        mixed = (
            self.self_loop(h)
            + from_parents @ self.forward_msg(h)
            + from_children @ self.backward_msg(h)
        )  # [B, N, D]
        return h + torch.relu(self.norm(mixed))


class ObjectivePredictor(nn.Module):
    """``(x_t [B, N, V], std [B]) -> [B]`` standardised objective of the clean architecture."""

    from_parents: Tensor  # buffers: the space's adjacency normalised by in- and out-degree
    from_children: Tensor

    def __init__(self, space: SearchSpace, hidden: int = 64, layers: int = 3) -> None:
        super().__init__()
        adjacency = space.adjacency()
        in_degree = adjacency.sum(0).clamp_min(1)
        out_degree = adjacency.sum(1).clamp_min(1)
        self.register_buffer("from_parents", adjacency.T / in_degree[:, None])
        self.register_buffer("from_children", adjacency / out_degree[:, None])
        self.embed = nn.Linear(len(space.vocab), hidden)
        self.node_embedding = nn.Parameter(torch.randn(space.num_nodes, hidden) * 0.02)
        self.noise_embedding = NoiseEmbedding(8, hidden)
        self.convs = nn.ModuleList(DirectedGraphConv(hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor, std: Tensor) -> Tensor:
        scaled = x / (1 + std**2).sqrt()[:, None, None]  # [B, N, V]
        h = self.embed(scaled) + self.node_embedding + self.noise_embedding(std)[:, None, :]
        for conv in self.convs:
            h = conv(h, self.from_parents, self.from_children)  # [B, N, D]
        pooled = torch.cat([h.mean(1), h.amax(1)], dim=-1)  # [B, 2D]
        return self.head(pooled).squeeze(-1)  # [B]


@dataclass
class TrainedPredictor:
    """A fitted predictor with the target standardisation and the SDE it was trained under."""

    space: SearchSpace
    sde: SDE
    network: ObjectivePredictor
    mean: float
    scale: float
    meta: dict[str, Any]

    def standardised(self, x: Tensor, t: Tensor) -> Tensor:
        """Differentiable prediction at noisy ``x`` and time ``t`` (standardised units)."""
        return self.network(x, self.sde.std(t))

    @torch.no_grad()
    def predict(self, archs: list[Arch]) -> np.ndarray:
        """Clean predictions in the objective's own units."""
        device = self.network.from_parents.device
        x = self.space.encode(archs).to(device)
        t = torch.full((len(archs),), self.sde.t_min, device=device)
        return self.standardised(x, t).cpu().numpy() * self.scale + self.mean


def train_predictor(
    space: SearchSpace,
    sde: SDE,
    archs: list[Arch],
    values: np.ndarray | list[float],
    config: PredictorConfig = PredictorConfig(),
    *,
    device: str = "auto",
    meta: dict[str, Any] | None = None,
    progress: bool = False,
) -> TrainedPredictor:
    """Fit on architectures perturbed by ``sde`` at random times (``t`` drawn per example);
    ``progress``: a bar over epochs (a line at the end off a terminal).

    >>> from diffusionnag import PredictorConfig, default_score_model, train_predictor
    >>> model = default_score_model()
    >>> cells = model.space.sample(16, np.random.default_rng(0))
    >>> accuracy = [float(sum(cell.ops)) for cell in cells]  # any value per cell
    >>> config = PredictorConfig(epochs=2)
    >>> predictor = train_predictor(model.space, model.sde, cells, accuracy, config)
    >>> predictor.predict(cells[:2]).shape
    (2,)
    """
    dev = resolve_device(device)
    x0, y, mean, scale = training_data(space, archs, values, config, dev)
    torch_seed = torch.Generator().manual_seed(config.seed)
    network = init_network(space, config, torch_seed).to(dev)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator(dev).manual_seed(config.seed)
    with phase("train-predictor", config.epochs, enabled=progress, unit="epoch") as bar:
        for _ in range(config.epochs):
            order = torch.randperm(len(archs), generator=generator, device=dev)
            for batch in order.split(config.batch_size):
                loss = _noisy_regression_loss(network, sde, x0[batch], y[batch], config, generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            bar.update(1)
        log_line(bar, f"train-predictor: {config.epochs} epochs done")
    network.eval()
    return TrainedPredictor(space, sde, network, mean, scale, dict(meta or {}))


def training_data(
    space: SearchSpace,
    archs: list[Arch],
    values: np.ndarray | list[float],
    config: PredictorConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor, float, float]:
    """Encoded cells, standardised (floored) targets, and the standardisation's mean and scale."""
    targets = np.asarray(values, dtype=np.float64)
    if len(archs) != len(targets) or len(archs) < 2:
        raise ValueError("need at least two architectures, each with one value")
    if not np.isfinite(targets).all():
        raise ValueError("training values must be finite numbers")
    if not 0.0 <= config.floor_quantile < 1.0:
        raise ValueError(f"floor quantile must be in [0, 1), got {config.floor_quantile}")
    targets = np.maximum(targets, np.quantile(targets, config.floor_quantile))
    mean, scale = float(targets.mean()), float(targets.std()) or 1.0
    y = torch.tensor((targets - mean) / scale, dtype=torch.float32, device=device)
    return space.encode(archs).to(device), y, mean, scale


def init_network(
    space: SearchSpace, config: PredictorConfig, generator: torch.Generator
) -> ObjectivePredictor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=generator)))
        return ObjectivePredictor(space, config.hidden, config.layers)


def _noisy_regression_loss(
    network: ObjectivePredictor,
    sde: SDE,
    x0: Tensor,
    y: Tensor,
    config: PredictorConfig,
    generator: torch.Generator,
) -> Tensor:
    t, noise = noise_draws(sde, x0.shape, config, generator)
    prediction = network(sde.perturb(x0, t, noise), sde.std(t))
    return (prediction - y).pow(2).mean()


def noise_draws(
    sde: SDE, shape: tuple[int, ...], config: PredictorConfig, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Times ``shape[:-2]`` (a ``clean_fraction`` share at ``t_min``) and noise ``shape``."""
    device = generator.device
    batch = shape[:-2]
    t = torch.rand(batch, generator=generator, device=device) * (1 - sde.t_min) + sde.t_min
    clean = torch.rand(batch, generator=generator, device=device) < config.clean_fraction
    t = torch.where(clean, torch.full_like(t, sde.t_min), t)
    return t, torch.randn(shape, generator=generator, device=device)


def save_predictor(
    predictor: TrainedPredictor, folder: Path | str, config: PredictorConfig
) -> None:
    folder = Path(folder)
    header = {
        "space": predictor.space.name,
        "sde": sde_to_dict(predictor.sde),
        "config": asdict(config),
        "mean": predictor.mean,
        "scale": predictor.scale,
        "meta": predictor.meta,
    }
    atomic_write(folder / "predictor.json", lambda p: p.write_text(json.dumps(header, indent=2)))
    atomic_write(folder / "predictor.pt", lambda p: torch.save(predictor.network.state_dict(), p))


def load_predictor(folder: Path | str, device: str = "auto") -> TrainedPredictor:
    """The predictor saved in ``folder``; every header field is checked, errors name the file."""
    folder = Path(folder)
    path = folder / "predictor.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not a predictor folder: predictor.json is missing")
    dev = resolve_device(device)
    header = read_json(path, "predictor config")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: expected a JSON object")
    missing = [key for key in _HEADER_TYPES if key not in header]
    if missing:
        raise ValueError(f"{path} lacks field(s) {', '.join(missing)}")
    for key, kind in _HEADER_TYPES.items():
        check_type(f"{path}: field {key!r}", header[key], kind)
    if not header["scale"] > 0:
        raise ValueError(f"{path}: field 'scale' must be > 0, got {header['scale']!r}")
    try:
        space = get_space(header["space"])
        sde = sde_from_dict(header["sde"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: field 'space' or 'sde' is invalid: {error}") from None
    config = config_from_dict(PredictorConfig, header["config"], str(path), "config.")
    sizes = f"config.hidden={config.hidden}, layers={config.layers}"
    check_weights_fit(
        lambda: ObjectivePredictor(space, config.hidden, config.layers),
        folder / "predictor.pt",
        sizes,
    )
    network = ObjectivePredictor(space, config.hidden, config.layers)
    try:
        network.load_state_dict(load_weights(folder / "predictor.pt"))
    except RuntimeError as error:
        raise ValueError(
            f"weights in {folder / 'predictor.pt'} do not fit its config: {error}"
        ) from None
    network.to(dev).eval()
    meta = header["meta"]
    return TrainedPredictor(space, sde, network, header["mean"], header["scale"], meta)


_HEADER_TYPES: dict[str, Any] = {
    "space": str,
    "sde": dict[str, Any],
    "config": dict[str, Any],
    "mean": float,
    "scale": float,
    "meta": dict[str, Any],
}
