"""Image feature extractors of the ``images`` task encoder: ``[n, c, H, W] -> [n, 2F]``.

Registered by name in :data:`EXTRACTOR_NAMES`:

- ``random``: frozen, seeded random convolutions; nothing to ship or download.
- ``fmnist``: the same shape with learned weights: pretrained by us as a 10-class classifier on
  the Fashion-MNIST training split (the split every Fashion-MNIST task draws its training
  images from) at 8, 12 and 16 px. The weights ship in ``assets/extractor-fmnist``; reproduce
  them with ``benchmarks/train_extractor.py`` (:func:`pretrain_extractor`).

Both average the channels (grey and colour images share one extractor), standardise each image,
apply two 3x3 convolutions with ReLU and pool globally (mean and max), so any resolution works.
An extractor's weights are part of its meta-predictor's ``state_dict``: a saved meta-predictor
never reads the asset; only a new network about to be meta-trained starts from it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusionnag.device import single_thread
from diffusionnag.io import atomic_write, load_weights, read_json

EXTRACTOR_NAMES = ("fmnist", "random")
ASSET = Path(__file__).resolve().parents[1] / "assets" / "extractor-fmnist"
CONFIG_FILE = "extractor.json"
WEIGHTS_FILE = "extractor.pt"


def check_extractor(name: Any) -> str:
    if name not in EXTRACTOR_NAMES:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(EXTRACTOR_NAMES)}")
    return name


def _standardise(images: Tensor) -> Tensor:
    """Grey ``[n, 1, H, W]``, each image to zero mean and unit std: only its pattern counts."""
    h = images.mean(1, keepdim=True)
    return (h - h.mean((2, 3), keepdim=True)) / h.std((2, 3), keepdim=True).clamp_min(1e-6)


def _pool(h: Tensor) -> Tensor:
    return torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=-1)  # [n, 2F]


class RandomConvFeatures(nn.Module):
    """Frozen seeded random convolutions: enough of an image's statistics to tell datasets
    apart, with no weights to ship."""

    def __init__(self, features: int = 64, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        widths = (1, features // 2, features)
        self.kernels = nn.ParameterList(
            nn.Parameter(
                torch.randn(out, inp, 3, 3, generator=generator) / (3 * inp**0.5),
                requires_grad=False,
            )
            for inp, out in itertools.pairwise(widths)
        )

    def forward(self, images: Tensor) -> Tensor:
        h = _standardise(images)  # [n, 1, H, W]
        for kernel in self.kernels:
            h = torch.relu(F.conv2d(h, kernel, padding=1))
        return _pool(h)  # [n, 2F]


class ConvFeatures(nn.Module):
    """The random extractor's shape with learned weights and biases (the ``fmnist`` extractor)."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        widths = (1, features // 2, features)
        self.convs = nn.ModuleList(
            nn.Conv2d(inp, out, 3, padding=1) for inp, out in itertools.pairwise(widths)
        )

    def forward(self, images: Tensor) -> Tensor:
        h = _standardise(images)  # [n, 1, H, W]
        for conv in self.convs:
            h = torch.relu(conv(h))
        return _pool(h)  # [n, 2F]


def build_extractor(name: str, features: int = 64, seed: int = 0) -> nn.Module:
    """A frozen extractor; ``fmnist`` is built untrained: see :func:`load_pretrained`."""
    check_extractor(name)
    module = RandomConvFeatures(features, seed) if name == "random" else ConvFeatures(features)
    return module.requires_grad_(False)


@dataclass(frozen=True)
class PretrainConfig:
    """How the ``fmnist`` extractor is pretrained, saved in its asset's JSON."""

    features: int = 64
    resolutions: tuple[int, ...] = (8, 12, 16)
    steps: int = 1500
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolutions", tuple(self.resolutions))
        for name in ("features", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"extractor config {name} must be an int >= 2, got {value!r}")
        if not self.resolutions or not all(
            type(r) is int and 4 <= r <= 64 for r in self.resolutions
        ):
            raise ValueError(f"extractor resolutions must be 4 to 64 px, got {self.resolutions}")
        if not 0 < self.lr < 1 or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError("extractor config needs 0 < lr < 1 and an int seed >= 0")


def resize(images: Tensor, resolution: int) -> Tensor:
    """Bilinear with antialiasing, as tasks are resized (``benchmarks.tasks``)."""
    size = (resolution, resolution)
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


def pretrain_extractor(
    images: Tensor, labels: Tensor, config: PretrainConfig
) -> tuple[ConvFeatures, nn.Linear]:
    """A :class:`ConvFeatures` trained with a linear head to classify ``images [n, c, H, W]``;
    each step draws one resolution of ``config.resolutions`` and a batch. Seeded, one thread."""
    classes = int(labels.max()) + 1
    rng = np.random.default_rng(config.seed)
    with single_thread(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        extractor, head = ConvFeatures(config.features), nn.Linear(2 * config.features, classes)
        resized = {r: resize(images, r) for r in config.resolutions}
        parameters = [*extractor.parameters(), *head.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=config.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
        for _ in range(config.steps):
            resolution = config.resolutions[rng.integers(len(config.resolutions))]
            batch = torch.from_numpy(rng.integers(len(labels), size=config.batch_size))
            logits = head(extractor(resized[resolution][batch]))
            loss = F.cross_entropy(logits, labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return extractor.eval(), head.eval()


@torch.no_grad()
def accuracy(extractor: nn.Module, head: nn.Module, images: Tensor, labels: Tensor) -> float:
    with single_thread():
        predicted = torch.cat([head(extractor(b)).argmax(1) for b in images.split(1000)])
    return float((predicted == labels).float().mean())


def save_extractor(
    extractor: ConvFeatures, config: PretrainConfig, info: dict[str, Any], folder: Path
) -> None:
    """``extractor.json`` (``config``, ``info``: data, accuracies, command) and the weights."""
    header = {"name": "fmnist", "config": asdict(config), "info": info}
    text = json.dumps(header, indent=2) + "\n"
    atomic_write(folder / CONFIG_FILE, lambda p: p.write_text(text, encoding="utf-8"))
    state = extractor.state_dict()
    atomic_write(folder / WEIGHTS_FILE, lambda p: torch.save(state, p))


def read_extractor(folder: Path = ASSET) -> tuple[PretrainConfig, dict[str, Tensor]]:
    """An extractor asset's config and weights; any problem is a ``ValueError`` naming the file."""
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ValueError(f"extractor asset {path} is missing")
    header = read_json(path)
    try:
        config = PretrainConfig(**header["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    return config, load_weights(folder / WEIGHTS_FILE)


def load_pretrained(extractor: nn.Module, folder: Path = ASSET) -> None:
    """Copy the asset's weights into a :class:`ConvFeatures` of the same width."""
    config, state = read_extractor(folder)
    if not isinstance(extractor, ConvFeatures) or config.features != extractor_width(extractor):
        raise ValueError(f"{folder} holds a {config.features}-feature extractor, not this one")
    try:
        extractor.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).split("\n")[0]
        raise ValueError(f"weights in {folder / WEIGHTS_FILE} do not fit: {first}") from None


def extractor_width(extractor: ConvFeatures) -> int:
    last = extractor.convs[-1]
    assert isinstance(last, nn.Conv2d)
    return last.out_channels
