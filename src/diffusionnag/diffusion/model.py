"""Training the score model: a plain loop with EMA, atomic checkpoints and exact resume.

A checkpoint folder holds ``config.json`` (everything needed to rebuild the model and its
training set), ``model.pt`` (EMA weights, what sampling uses) and ``state.pt`` (weights,
EMA, optimiser and step, for resuming). Randomness of step k comes from a generator seeded by
``(seed, k)``, so a run resumed from step k continues exactly as if never interrupted.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
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
    config_from_dict,
)
from diffusionnag.device import resolve_device
from diffusionnag.diffusion.losses import dsm_loss
from diffusionnag.diffusion.sampling import ScoreFn
from diffusionnag.diffusion.score_net import ScoreNetConfig, ScoreNetwork
from diffusionnag.diffusion.sde import SDE, SDES, build_sde
from diffusionnag.io import (
    atomic_write,
    check_weights_fit,
    describe_kind,
    load_tensors,
    load_weights,
    read_json,
)
from diffusionnag.progress import phase
from diffusionnag.spaces import SPACES, Arch, SearchSpace, get_space

CONFIG_FILE, MODEL_FILE, STATE_FILE = "config.json", "model.pt", "state.pt"
STATE_KEYS = ("step", "network", "ema", "optimizer")


@dataclass(frozen=True)
class ScoreTrainConfig:
    space: str = "nb201"
    sde: str = "ve"
    sde_params: dict[str, float] = field(
        default_factory=lambda: {"sigma_min": 0.05, "sigma_max": 5.0}
    )
    network: ScoreNetConfig = field(default_factory=ScoreNetConfig)
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    ema_decay: float = 0.999
    seed: int = 0
    holdout_fraction: float = 0.0
    train_size: int = 100_000
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"field 'space' must be one of {', '.join(sorted(SPACES))}")
        if self.sde not in SDES:
            raise ValueError(f"field 'sde' must be one of {', '.join(sorted(SDES))}")
        check_ranges(self, TRAIN_BOUNDS)
        check_ranges(self.network, NETWORK_BOUNDS, prefix="network.")
        if self.network.hidden % self.network.heads:
            raise ValueError(
                f"field 'network.hidden' ({self.network.hidden}) is not divisible by "
                f"field 'network.heads' ({self.network.heads})"
            )
        build_sde(self.sde, **self.sde_params)  # unknown or out-of-range SDE parameters

    @classmethod
    def from_dict(cls, data: Any, where: str = "score-model config") -> ScoreTrainConfig:
        """The config in ``data`` (every field required and checked); errors name ``where``."""
        return config_from_dict(cls, data, where)


TRAIN_BOUNDS = {
    "steps": POSITIVE,
    "batch_size": POSITIVE,
    "lr": POSITIVE_REAL,
    "ema_decay": FRACTION,
    "seed": NON_NEGATIVE,
    "holdout_fraction": FRACTION,
    "train_size": POSITIVE,
    "checkpoint_every": POSITIVE,
}
NETWORK_BOUNDS = {
    "hidden": WIDTH,
    "layers": LAYERS,
    "heads": Bound(1, 64),
    "mlp_ratio": Bound(1, 16),
    "fourier_features": WIDTH,
}


SPACE_DEFAULTS: dict[str, dict[str, Any]] = {
    "mbv3": {"network": {"head": "categorical", "messages": True}, "steps": 9000},
}
"""Per-space overrides of the :class:`ScoreTrainConfig` defaults (which were tuned on NB201),
as measured in docs/benchmarks.md: on MobileNetV3, 3,000 steps left 1.0 to 2.2 % of sampled
cells invalid, 9,000 steps 0.2 to 1.1 % (0.2 to 0.3 % with the default sampler)."""


def default_train_config(space: str) -> ScoreTrainConfig:
    """The recommended score-model training settings for search space ``space``."""
    if space not in SPACES:
        raise ValueError(f"unknown search space {space!r}; known: {', '.join(sorted(SPACES))}")
    overrides = copy.deepcopy(SPACE_DEFAULTS.get(space, {}))
    data = asdict(ScoreTrainConfig(space=space))
    data["network"].update(overrides.pop("network", {}))
    return ScoreTrainConfig.from_dict({**data, **overrides})


@dataclass
class ScoreModel:
    """A trained score network with the space and SDE it belongs to."""

    space: SearchSpace
    sde: SDE
    network: ScoreNetwork
    config: ScoreTrainConfig

    def score_fn(self) -> ScoreFn:
        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.sde.score(self.network(x, self.sde.std(t)), t)

        return score


def training_architectures(space: SearchSpace, config: ScoreTrainConfig) -> list[Arch]:
    """The training set: the whole enumerable space (or ``train_size`` uniform draws) minus a
    seeded held-out fraction. Recomputed from the config, so checkpoints need not store it."""
    rng = np.random.default_rng(config.seed)
    enumerate_all = getattr(space, "enumerate", None)
    archs = enumerate_all() if enumerate_all else space.sample(config.train_size, rng)
    if config.holdout_fraction == 0:
        return list(archs)
    keep = rng.permutation(len(archs))[: round(len(archs) * (1 - config.holdout_fraction))]
    return [archs[i] for i in sorted(keep)]


def build_score_model(config: ScoreTrainConfig) -> ScoreModel:
    space = get_space(config.space)
    sde = build_sde(config.sde, **config.sde_params)
    if config.network.head == "categorical" and not _driftless(sde):
        raise ValueError(
            f"the categorical score head needs an SDE without drift (ve), got {config.sde!r}"
        )
    with torch.random.fork_rng(devices=[]):  # seeded by the config, global RNG untouched
        torch.manual_seed(config.seed)
        network = ScoreNetwork(space, config.network)
    return ScoreModel(space, sde, network, config)


def _driftless(sde: SDE) -> bool:
    """Whether noisy samples are ``x0 + std * noise``, the data's scale kept."""
    mean, _ = sde.marginal(torch.ones(1, 1), torch.ones(1))
    return bool(torch.allclose(mean, torch.ones(1, 1)))


def _save_checkpoint(out: Path, config: ScoreTrainConfig, state: dict[str, Any]) -> None:
    atomic_write(out / CONFIG_FILE, lambda p: p.write_text(json.dumps(asdict(config), indent=2)))
    atomic_write(out / STATE_FILE, lambda p: torch.save(state, p))
    atomic_write(out / MODEL_FILE, lambda p: torch.save(state["ema"], p))


def read_config(folder: Path) -> ScoreTrainConfig:
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ValueError(
            f"{folder} is not a score-model checkpoint folder: {CONFIG_FILE} is missing"
        )
    return ScoreTrainConfig.from_dict(read_json(path, "score-model config"), str(path))


def load_score_model(folder: Path | str, device: str = "auto") -> ScoreModel:
    """Rebuild a score model from its checkpoint folder (EMA weights)."""
    folder = Path(folder)
    dev = resolve_device(device)
    config = read_config(folder)
    sizes = f"network.hidden={config.network.hidden}, layers={config.network.layers}"
    check_weights_fit(
        lambda: ScoreNetwork(get_space(config.space), config.network), folder / MODEL_FILE, sizes
    )
    model = build_score_model(config)
    try:
        model.network.load_state_dict(load_weights(folder / MODEL_FILE))
    except RuntimeError as error:
        raise ValueError(
            f"weights in {folder / MODEL_FILE} do not fit its config: {error}"
        ) from None
    model.network.to(dev).eval()
    return model


def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for ema_p, p in zip(ema.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p, 1 - decay)


def train_score_model(
    config: ScoreTrainConfig,
    out: Path | str,
    *,
    device: str = "auto",
    resume: bool = True,
    progress: bool = True,
    stop_after: int | None = None,
) -> ScoreModel:
    """Train (or continue training) a score model into checkpoint folder ``out``.

    ``resume`` continues from ``out/state.pt`` when present and its config matches.
    ``stop_after`` ends the run early after that many steps (to test interruption).
    """
    out, dev = Path(out), resolve_device(device)
    model = build_score_model(config)
    network = model.network.to(dev)
    ema = copy.deepcopy(network).requires_grad_(False)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=0.0)
    start = _maybe_resume(out, config, network, ema, optimizer) if resume else 0
    data = model.space.encode(training_architectures(model.space, config)).to(dev)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    bar = phase(
        "train-score", config.steps, enabled=progress, initial=start, unit="step", milestones=True
    )
    for step in range(start, end):
        bar.update(1)
        loss = _train_step(model.sde, network, optimizer, data, config, step)
        _ema_update(ema, network, min(config.ema_decay, (1 + step) / (10 + step)))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == end:
            state = {
                "step": step + 1,
                "network": network.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
            }
            _save_checkpoint(out, config, state)
    bar.close()
    model.network = ema.eval()
    return model


def _train_step(
    sde: SDE,
    network: ScoreNetwork,
    optimizer: torch.optim.Optimizer,
    data: Tensor,
    config: ScoreTrainConfig,
    step: int,
) -> Tensor:
    """One AdamW step on a minibatch drawn from ``step``'s own generator (resumable)."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr * _lr_factor(step, config.steps)
    generator = torch.Generator(data.device).manual_seed(config.seed * 1_000_003 + step)
    index = torch.randint(len(data), (config.batch_size,), generator=generator, device=data.device)
    loss = dsm_loss(network, sde, data[index], generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(network.parameters(), 1.0)
    optimizer.step()
    return loss


def _lr_factor(step: int, total: int) -> float:
    """Linear warm-up over the first 10 % of steps (at most 200), then cosine decay to zero."""
    warmup = max(1, min(200, total // 10))
    # A plain float: a NumPy scalar would reach the optimiser state and break weights_only loads.
    return float(min(1.0, (step + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * step / total)))


def _maybe_resume(
    out: Path,
    config: ScoreTrainConfig,
    network: nn.Module,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> int:
    if not (out / STATE_FILE).exists():
        return 0
    saved = read_config(out)
    if saved != config:
        raise ValueError(
            f"{out} holds a checkpoint trained with different settings; use a new folder or "
            "the same settings to resume"
        )
    path = out / STATE_FILE
    state = load_tensors(path)
    if not isinstance(state, dict) or set(state) != set(STATE_KEYS):
        raise ValueError(
            f"{path} holds {describe_kind(state)}, not a training state ({', '.join(STATE_KEYS)})"
        )
    try:
        network.load_state_dict(state["network"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path} does not fit its config: {error}") from None
    if type(state["step"]) is not int or not 0 <= state["step"] <= config.steps:
        raise ValueError(f"{path}: step {state['step']!r} is not in [0, {config.steps}]")
    return state["step"]
