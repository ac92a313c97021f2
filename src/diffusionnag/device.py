"""The one place that chooses where tensors live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; ``ValueError`` for an unknown or unavailable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = name.removeprefix("cuda:")
    if name not in DEVICE_CHOICES and not (name.startswith("cuda:") and index.isdigit()):
        raise ValueError(
            f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} or cuda:N"
        )
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if index.isdigit() and int(index) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ValueError(f"device {name!r} requested but this machine has {count} CUDA device(s)")
    return torch.device(name)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run tiny-network work on one intra-op thread, then restore the previous setting.

    Matrices of a few hundred rows gain nothing from threads, and on a busy machine the thread
    synchronisation made training ~15x slower (measured on a loaded 2-core host).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def one_thread_unless_told() -> None:
    """One intra-op thread for the process unless ``OMP_NUM_THREADS`` asks for more: every
    network here is small, and on a busy machine a second thread only spin-waits (the main job
    took 27.6 s with one thread, 154.8 s with two, other jobs sharing the two cores). Real
    training sets its own count (``TrainConfig.num_threads``)."""
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
