"""Zero-cost proxies: scores of an untrained network that rank architectures without training.

- :func:`naswot` (Mellor et al., 2021, "Neural architecture search without training"): the
  log-determinant of the kernel of binary ReLU activation codes over a batch. Inputs that a
  network separates into distinct linear regions give a well-conditioned kernel.
- :func:`synflow` (Tanaka et al., 2020, "Pruning neural networks without any data by
  iteratively conserving synaptic flow"; used for NAS by Abdelfattah et al., 2021, "Zero-cost
  proxies for lightweight NAS"): the summed ``|theta * dR/dtheta|`` of the linearised network on
  an all-ones input, where ``R`` is the sum of the outputs. It needs no data, only a shape.

Both take a network the project already builds (:func:`seeded_nb201_network` gives NAS-Bench-201's
own C=16, N=5 network) and leave it as it was. :func:`proxy_score` ties them to a cell and a seed:
the seed fixes the initialisation and the random inputs, so the same seed gives the same score.
Data-dependent proxies take ``inputs`` so a task's own images can replace the random batch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from diffusionnag.nn.nb201 import build_nb201_network
from diffusionnag.spaces.base import Arch

PROXIES = ("naswot", "synflow")
NB201_RESOLUTION = 32
"""CIFAR's size, at which the table's C=16, N=5 networks were trained."""
NASWOT_BATCH = 64
"""Images per NASWOT kernel (``[B, B]``); Mellor et al. used 128, half of it halves CPU time."""


def naswot(network: nn.Module, inputs: Tensor) -> float:
    """``log|det K|`` with ``K[i, j]`` the number of ReLU units on which inputs i and j agree.

    Hooks read the input of every ``nn.ReLU`` (its sign pattern is the unit's code). The network
    runs in training mode as initialised, so BN normalises with the batch's statistics, as in the
    paper's code; the BN running statistics are restored afterwards. A network whose codes cannot
    tell two inputs apart has a singular kernel and scores ``-inf``.
    """
    if inputs.dim() < 2 or len(inputs) < 2:
        raise ValueError(
            f"naswot needs a batch of at least 2 inputs, got shape {tuple(inputs.shape)}"
        )
    kernel = _AgreementKernel(len(inputs))
    hooks = [
        m.register_forward_hook(kernel.add) for m in network.modules() if isinstance(m, nn.ReLU)
    ]
    saved = _buffers(network)
    try:
        with torch.no_grad(), _training_mode(network, training=True):
            network(inputs)
    finally:
        for hook in hooks:
            hook.remove()
        _restore_buffers(network, saved)
    sign, logdet = torch.linalg.slogdet(kernel.total)
    return float(logdet) if sign > 0 else float("-inf")


class _AgreementKernel:
    """Sums each hooked ReLU's ``[B, B]`` agreement counts into :attr:`total`.

    A cell node feeds several edges, so several ReLUs see the same tensor: its counts are
    computed once and added once per ReLU, which is what the paper's per-ReLU sum asks for.
    """

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.total = torch.zeros(batch, batch, dtype=torch.float64)
        self._seen: dict[int, tuple[Tensor, Tensor]] = {}  # id -> (tensor kept alive, counts)

    def add(self, _module: nn.Module, args: tuple[Tensor, ...], _output: Tensor) -> None:
        seen = self._seen.get(id(args[0]))
        counts = seen[1] if seen is not None and seen[0] is args[0] else self._counts(args[0])
        self._seen[id(args[0])] = (args[0], counts)
        self.total.add_(counts)

    def _counts(self, activations: Tensor) -> Tensor:
        # Agreements = units - Hamming distance = c c^T + (1 - c)(1 - c)^T, expanded so that
        # one matmul does; float32 counts 0/1 products exactly up to 2^24 units per layer.
        codes = (activations.detach().reshape(self.batch, -1) > 0).float()  # [B, units]
        active = codes.sum(dim=1, dtype=torch.float64)  # [B]
        both = (codes @ codes.T).double()  # [B, B]
        return 2.0 * both - active[:, None] - active[None, :] + codes.shape[1]


def synflow(network: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Synaptic flow of the weights of every ``Conv2d`` and ``Linear`` layer.

    Computed on a float64 copy, so ``network`` is untouched: in the copy every parameter is
    replaced by its absolute value (the linearisation) and every BatchNorm layer by the identity,
    as the zero-cost literature does (Abdelfattah et al.'s code scores synflow on a copy built
    without BN): BN would renormalise each layer's output, so the flow would no longer multiply
    through the layers' weights, which is what the proxy measures. ``input_shape`` includes the
    batch size.
    """
    linear = _linearised_copy(network)
    inputs = torch.ones(input_shape, dtype=torch.float64)
    linear.zero_grad(set_to_none=True)
    linear(inputs).sum().backward()
    total = 0.0
    with torch.no_grad():
        for module in linear.modules():
            if isinstance(module, nn.Conv2d | nn.Linear) and module.weight.grad is not None:
                total += float((module.weight * module.weight.grad).abs().sum())
    return total


def seeded_nb201_network(
    arch: Arch, seed: int, *, num_classes: int = 10, in_channels: int = 3
) -> nn.Module:
    """NAS-Bench-201's C=16, N=5 network of ``arch``, initialised from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):  # PyTorch's initialisers draw from the global RNG
        torch.manual_seed(seed)
        return build_nb201_network(arch, num_classes=num_classes, in_channels=in_channels)


def random_inputs(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Standard-normal images: what normalised images look like to an untrained network."""
    return torch.randn(shape, generator=generator)


def proxy_score(
    proxy: str, arch: Arch, *, seed: int, inputs: Tensor | None = None, num_classes: int = 10
) -> float:
    """``proxy`` of the NAS-Bench-201 network of ``arch``, initialised from ``seed``.

    ``inputs`` (``[B, C, H, W]``) are the images naswot codes; by default a batch of
    :data:`NASWOT_BATCH` random 32 px RGB images drawn from ``seed``. The network takes their
    channels; synflow uses only their size.
    """
    if proxy not in PROXIES:
        raise ValueError(f"unknown zero-cost proxy {proxy!r}; known: {', '.join(PROXIES)}")
    if inputs is None:
        shape = (NASWOT_BATCH, 3, NB201_RESOLUTION, NB201_RESOLUTION)
        inputs = random_inputs(shape, torch.Generator().manual_seed(seed))
    network = seeded_nb201_network(arch, seed, num_classes=num_classes, in_channels=inputs.shape[1])
    if proxy == "naswot":
        return naswot(network, inputs)
    return synflow(network, (1, *inputs.shape[1:]))


def _linearised_copy(network: nn.Module) -> nn.Module:
    linear = copy.deepcopy(network).double()
    _replace_batch_norms(linear)
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.abs_()
    return linear.eval()


def _replace_batch_norms(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _replace_batch_norms(child)


@contextmanager
def _training_mode(network: nn.Module, training: bool) -> Iterator[None]:
    """Sets every module's training flag for a block and restores each one afterwards."""
    saved = [(module, module.training) for module in network.modules()]
    network.train(training)
    try:
        yield
    finally:
        for module, was_training in saved:
            module.training = was_training


def _buffers(network: nn.Module) -> dict[str, Tensor]:
    return {name: buffer.clone() for name, buffer in network.named_buffers()}


def _restore_buffers(network: nn.Module, saved: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for name, buffer in network.named_buffers():
            buffer.copy_(saved[name])
