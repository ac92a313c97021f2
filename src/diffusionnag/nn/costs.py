"""Parameter and multiply-accumulate counts of any built network, by forward hooks."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def count_parameters(model: nn.Module) -> int:
    """All parameters (trainable or not), BN affine weights included, as the benchmark counts."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of every Conv2d and Linear for one forward pass of ``input_shape``.

    Convention: a conv costs ``(C_in / groups) * kh * kw`` MACs per output element and a linear
    layer ``in_features`` per output element; biases, BN, activations and pooling are free. This
    is the number NAS-Bench-201 reports as "FLOPs" (220.1M for the all-3x3 cell on CIFAR-10).
    ``input_shape`` includes the batch dimension. The model runs in eval mode, so its BN
    statistics are untouched; a model on the ``meta`` device is counted without computing.
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear_hook))
    reference = next(model.parameters())
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape, device=reference.device, dtype=reference.dtype))
    finally:
        for module, training in modes:
            module.training = training
        for hook in hooks:
            hook.remove()
    return total
