"""Evaluating a NAS-Bench-201 cell by really training its network on an image dataset.

The answer names its protocol: ``value`` is validation accuracy after ``epochs`` epochs of SGD
with Nesterov momentum and a per-step cosine learning rate; the test accuracy rides along in
``metrics``. Shuffling uses a local ``torch.Generator`` and initialisation runs inside
``fork_rng``, so the same config gives the same result without touching the global RNG.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffusionnag.benchmarks.base import EvalResult, Evaluator
from diffusionnag.benchmarks.datasets import ImageDataset, Split
from diffusionnag.device import resolve_device
from diffusionnag.nn.nb201 import build_nb201_network, nb201_costs
from diffusionnag.spaces.base import Arch


@dataclass(frozen=True)
class TrainConfig:
    """Training protocol. The defaults (C=16, N=1, 5 epochs) suit the 8x8 digits: an epoch takes
    about 2.4 s on one busy CPU core; the benchmark's own network is ``cells_per_stage=5``.

    ``num_threads`` sets PyTorch's intra-op threads during the run (``None`` leaves PyTorch's
    setting). The default of 1 keeps results identical across machines, since CPU reductions
    depend on the thread count, and is the fast choice for small networks on a shared CPU: two
    threads on two busy cores made a digits epoch five times slower in our measurements.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    channels: int = 16
    cells_per_stage: int = 1
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "channels", "cells_per_stage"):
            if getattr(self, name) < 1:
                value = getattr(self, name)
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {value}")
        if self.lr <= 0 or self.momentum < 0 or self.weight_decay < 0:
            raise ValueError("TrainConfig needs lr > 0, momentum >= 0 and weight_decay >= 0")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"TrainConfig.num_threads must be at least 1, got {self.num_threads}")


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


def _accuracy(model: nn.Module, split: Split, device: torch.device, batch_size: int) -> float:
    """Top-1 accuracy in % with the network in eval mode (running BN statistics)."""
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(split), batch_size):
            images = split.images[start : start + batch_size].to(device)
            labels = split.labels[start : start + batch_size].to(device)
            correct += int((model(images).argmax(-1) == labels).sum())
    return 100.0 * correct / len(split)


class TrainingEvaluator(Evaluator):
    """Trains the NB201 network of each cell on ``data`` from scratch under ``config``."""

    space_name = "nb201"

    def __init__(
        self, data: ImageDataset, config: TrainConfig, progress: ProgressFn | None = None
    ) -> None:
        self.data = data
        self.dataset = data.name
        self.config = config
        self.progress = progress
        self.device = resolve_device(config.device)

    def evaluate(self, arch: Arch) -> EvalResult:
        cfg = self.config
        costs = nb201_costs(
            arch,
            channels=cfg.channels,
            cells_per_stage=cfg.cells_per_stage,
            num_classes=self.data.num_classes,
            resolution=self.data.resolution,
            in_channels=self.data.in_channels,
        )
        metrics: dict[str, float] = {k: float(v) for k, v in costs.items()}
        start = time.perf_counter()
        with _reproducible(cfg.num_threads):
            model = self._build(arch)
            finite = self._train(model)
            metrics["train_seconds"] = time.perf_counter() - start
            eval_batch = 4 * cfg.batch_size
            valid, test = (
                _accuracy(model, split, self.device, eval_batch) if finite else math.nan
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
            failed=not finite,
        )

    def _build(self, arch: Arch) -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the network is initialised on the CPU
            torch.manual_seed(self.config.seed)
            model = build_nb201_network(
                arch,
                channels=self.config.channels,
                cells_per_stage=self.config.cells_per_stage,
                num_classes=self.data.num_classes,
                in_channels=self.data.in_channels,
            )
        return model.to(self.device)

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
