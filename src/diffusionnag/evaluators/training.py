"""Evaluating an architecture by really training its network on an image dataset.

One training loop serves every space that has a network: the NAS-Bench-201 network of a cell
(``channels``, ``cells_per_stage``) or a once-for-all MobileNetV3 subnet (``width_mult``). The
answer names its protocol: ``value`` is validation accuracy after ``epochs`` epochs of SGD
with Nesterov momentum and a per-step cosine learning rate (MobileNetV3 subnets then get their
BN statistics recomputed, as once-for-all does); ``metrics`` holds the test accuracy and the
exact parameter and FLOP counts of the trained network. Shuffling uses a local
``torch.Generator`` and initialisation runs inside ``fork_rng``, so the same config gives the
same result without touching the global RNG.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusionnag.device import resolve_device
from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.image_data import ImageDataset, Split, upscale
from diffusionnag.evaluators.train_config import TrainConfig, steps_per_epoch
from diffusionnag.nn.mbv3 import MBV3Net, mbv3_costs
from diffusionnag.nn.nb201 import build_nb201_network, nb201_costs
from diffusionnag.spaces.base import Arch, SearchSpace


@dataclass(frozen=True)
class TrainProgress:
    """Reported after every optimisation step (``batch`` counts from 1 within ``epoch``)."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float


ProgressFn = Callable[[TrainProgress], None]


@contextmanager
def _reproducible(num_threads: int | None) -> Iterator[None]:
    """Deterministic cuDNN kernels and ``num_threads`` intra-op threads for the block only.

    Both are process-wide settings, so they are restored afterwards.
    """
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    cudnn = torch.backends.cudnn
    try:
        with cudnn.flags(
            enabled=True, benchmark=False, deterministic=True, allow_tf32=cudnn.allow_tf32
        ):
            yield
    finally:
        torch.set_num_threads(previous)


class _Numerics(nn.Module):
    """A network run the protocol's way: channels-last inputs, bfloat16 autocast, float32
    logits out. Only configs that ask for either get this wrapper, so the default protocol
    runs exactly as before they existed."""

    def __init__(self, network: nn.Module, cfg: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.network = network
        self.channels_last = cfg.channels_last
        self.bf16 = cfg.bf16
        self.device_type = device.type

    def forward(self, images: Tensor) -> Tensor:
        if self.channels_last:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.network(images).float()


def correct_predictions(
    model: nn.Module, split: Split, device: torch.device, batch_size: int
) -> Tensor:
    """``[len(split)]`` booleans on the CPU: whether the network in eval mode (running BN
    statistics) classifies each image right. Kept per image so that benchmarks can tell the
    noise of a finite evaluation set from the noise of training."""
    model.eval()
    outcomes = []
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            images = split.images[start : start + batch_size].to(device)
            labels = split.labels[start : start + batch_size].to(device)
            outcomes.append((model(images).argmax(-1) == labels).cpu())
    return torch.cat(outcomes) if outcomes else torch.zeros(0, dtype=torch.bool)


def _accuracy(model: nn.Module, split: Split, device: torch.device, batch_size: int) -> float:
    """Top-1 accuracy in % with the network in eval mode (running BN statistics)."""
    return 100.0 * int(correct_predictions(model, split, device, batch_size).sum()) / len(split)


def _recalibrate_bn(model: nn.Module, images: Tensor, batch_size: int) -> None:
    """Recompute every BN layer's running statistics with the final weights.

    Once-for-all does this for every subnet: after a short run the moving averages still carry
    the statistics of earlier weights, and a deep MobileNetV3 trained for one epoch on digits
    scored chance in eval mode (10 %) against 60 % after recalibration.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over all batches
    model.train()
    with torch.no_grad():
        for batch in images.split(batch_size):
            if len(batch) > 1:  # BN cannot normalise a lone sample at 1x1 resolution
                model(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum


@dataclass(frozen=True)
class _Network:
    """How a space's architectures become networks for a dataset, and what they cost."""

    build: Callable[[Arch, ImageDataset, TrainConfig], nn.Module]
    costs: Callable[[Arch, ImageDataset, TrainConfig], dict[str, int]]
    resolution: Callable[[ImageDataset, TrainConfig], int]
    """Image size the network trains at; smaller datasets are upscaled to it."""
    recalibrate_bn: bool = False
    """Whether BN statistics are recomputed after training (see :func:`_recalibrate_bn`)."""


def _nb201_network(arch: Arch, data: ImageDataset, cfg: TrainConfig) -> nn.Module:
    return build_nb201_network(
        arch,
        channels=cfg.channels,
        cells_per_stage=cfg.cells_per_stage,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
    )


def _nb201_costs(arch: Arch, data: ImageDataset, cfg: TrainConfig) -> dict[str, int]:
    return nb201_costs(
        arch,
        channels=cfg.channels,
        cells_per_stage=cfg.cells_per_stage,
        num_classes=data.num_classes,
        resolution=data.resolution,
        in_channels=data.in_channels,
    )


def _mbv3_network(arch: Arch, data: ImageDataset, cfg: TrainConfig) -> nn.Module:
    # Without dropout, training draws nothing from the global RNG (so a seed is the whole
    # story), and a few epochs do not need the regularisation.
    return MBV3Net(
        arch,
        width_mult=cfg.width_mult,
        num_classes=data.num_classes,
        dropout=0.0,
        in_channels=data.in_channels,
    )


def _mbv3_costs(arch: Arch, data: ImageDataset, cfg: TrainConfig) -> dict[str, int]:
    costs = mbv3_costs(arch, data.resolution, cfg.width_mult, data.num_classes, data.in_channels)
    return {"params": costs.params, "flops": costs.flops}


def _native_resolution(data: ImageDataset, _cfg: TrainConfig) -> int:
    return data.resolution


def _upscaled_resolution(data: ImageDataset, cfg: TrainConfig) -> int:
    return max(data.resolution, cfg.min_resolution)


# Named functions, not lambdas: an evaluator is pickled once to each pool worker.
NETWORKS: dict[str, _Network] = {
    "nb201": _Network(_nb201_network, _nb201_costs, _native_resolution),
    "mbv3": _Network(_mbv3_network, _mbv3_costs, _upscaled_resolution, recalibrate_bn=True),
}
"""Spaces whose architectures :class:`TrainingEvaluator` can train, by space name."""


class TrainingEvaluator(Evaluator):
    """Trains the network of each architecture of ``space`` on ``data`` from scratch.

    The space (or its name) picks the network from :data:`NETWORKS`; ``data`` is upscaled once
    here if that network needs larger images, and ``self.data`` is what it trains on.
    """

    value_name = "validation accuracy (%)"

    def __init__(
        self,
        data: ImageDataset,
        config: TrainConfig,
        progress: ProgressFn | None = None,
        *,
        space: SearchSpace | str = "nb201",
    ) -> None:
        name = space if isinstance(space, str) else space.name
        if name not in NETWORKS:
            raise ValueError(
                f"no network to train for space {name!r}; trainable: {', '.join(NETWORKS)}"
            )
        self.space_name = name
        self.network = NETWORKS[name]
        self.data = upscale(data, self.network.resolution(data, config))
        self.dataset = data.name
        self.config = config.for_train_size(len(self.data.train))
        self.progress = progress
        self.device = resolve_device(config.device)

    def protocol(self) -> dict[str, Any]:
        """Everything besides the architecture that fixes :meth:`evaluate`'s answer (recorded
        in search journals): the training settings, the device kind and the data split; with
        a least number of steps, the epochs it gave and the SGD steps they are."""
        data = self.data
        steps = {}
        if self.config.steps is not None:
            per_epoch = steps_per_epoch(len(data.train), self.config.batch_size)
            steps = {"sgd_steps": self.config.epochs * per_epoch}
        return {
            "train": self.config.settings(),
            **steps,
            "device": self.device.type,
            "data": {
                "name": data.name,
                "split_seed": data.split_seed,
                "sizes": [len(data.train), len(data.valid), len(data.test)],
                "resolution": data.resolution,
                "skipped_files": data.skipped_files,
            },
        }

    def evaluate(self, arch: Arch) -> EvalResult:
        cfg = self.config
        costs = self.network.costs(arch, self.data, cfg)
        metrics: dict[str, float] = {k: float(v) for k, v in costs.items()}
        eval_batch = 4 * cfg.batch_size
        start = time.perf_counter()
        model = self.train_network(arch)
        metrics["train_seconds"] = time.perf_counter() - start
        with _reproducible(cfg.num_threads):
            valid, test = (
                _accuracy(model, split, self.device, eval_batch) if model is not None else math.nan
                for split in (self.data.valid, self.data.test)
            )
        metrics["test_accuracy"] = test
        return EvalResult(
            value=valid,
            dataset=self.dataset,
            split="valid",
            epochs=cfg.epochs,
            metrics=metrics,
            cost_seconds=time.perf_counter() - start,
            failed=model is None,
        )

    def train_network(self, arch: Arch) -> nn.Module | None:
        """The network of ``arch`` trained with this protocol, BN statistics recomputed where
        the space's network needs it; ``None`` when training diverged."""
        with _reproducible(self.config.num_threads):
            model = self.build_network(arch)
            if not self._train(model):
                return None
            if self.network.recalibrate_bn:
                train_images = self.data.train.images.to(self.device)
                _recalibrate_bn(model, train_images, 4 * self.config.batch_size)
        return model

    def build_network(self, arch: Arch) -> nn.Module:
        """The freshly initialised network ``evaluate`` trains for ``arch``, on the device (in
        the protocol's memory format and precision where it sets them)."""
        cfg = self.config
        with torch.random.fork_rng(devices=[]):  # the network is initialised on the CPU
            torch.manual_seed(cfg.seed)
            model = self.network.build(arch, self.data, cfg).to(self.device)
        if not (cfg.channels_last or cfg.bf16):
            return model
        # what Module.to(memory_format=...) does, typed. ``to``, not ``contiguous``: a 1x1
        # kernel or a one-channel image has strides valid in both layouts, and ``contiguous``
        # would leave them as they are, so convolutions would fall back to the default layout
        # (a channels-last step then took 170 ms instead of 134)
        if cfg.channels_last:
            for param in model.parameters():
                if param.dim() == 4:
                    param.data = param.data.to(memory_format=torch.channels_last)
        return _Numerics(model, cfg, self.device)

    def _train(self, model: nn.Module) -> bool:
        """Train in place; ``False`` once a loss, or finally a weight, is NaN or infinite."""
        cfg = self.config
        train = self.data.train
        images, labels = train.images.to(self.device), train.labels.to(self.device)
        batches = math.ceil(len(train) / cfg.batch_size)
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.epochs * batches)
        generator = torch.Generator().manual_seed(cfg.seed)
        model.train()
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(len(train), generator=generator).to(self.device)
            for batch, index in enumerate(order.split(cfg.batch_size), start=1):
                if len(index) < 2:  # BN cannot normalise a lone sample at 1x1 resolution
                    continue
                loss = F.cross_entropy(model(images[index]), labels[index])
                value = loss.item()
                if not math.isfinite(value):
                    return False
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                if self.progress is not None:
                    self.progress(TrainProgress(epoch, cfg.epochs, batch, batches, value))
        return all(bool(torch.isfinite(p).all()) for p in model.parameters())
