"""Where one NB201 training step's time goes on this CPU (issue "Image transfer on labels that
mean something", part 2: "measure where a row's time goes").

Builds the NB201 network of one cell that holds every operation (3x3 and 1x1 convolutions, 3x3
average pooling, a skip) at C=16 for grey images, times ``--steps`` SGD steps (batch 64, random
inputs, one torch thread, CPU process time) and lists the operators by self CPU time over three
profiled steps. Then it times the 3x3 average pooling as the network computes it (padding left
out of the count, as NAS-Bench-201 does) beside the same average written as a depthwise
convolution divided by the count of real pixels under each window, forward and backward on one
cell-sized input. Usage:

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_train_step.py \\
        --cells-per-stage 5 --resolution 16

``--compare-formats`` instead times a step of the network ``TrainingEvaluator`` builds under
each of its numerics settings (float32 or bfloat16 autocast, default or channels-last memory).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from diffusionnag.evaluators.image_data import ImageDataset, Split
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.nn.nb201 import build_nb201_network
from diffusionnag.spaces import get_space

CELL = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|"
    "+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
)


def cpu_ms(fn: Callable[[], None], repeats: int) -> float:
    """Mean CPU milliseconds of ``fn`` after three warm-up calls."""
    for _ in range(3):
        fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def profile_step(cells_per_stage: int, resolution: int, steps: int) -> None:
    arch = get_space("nb201").from_string(CELL)
    net = build_nb201_network(arch, channels=16, cells_per_stage=cells_per_stage, in_channels=1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    images = torch.randn(64, 1, resolution, resolution)
    labels = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(0))

    def step() -> None:
        opt.zero_grad()
        F.cross_entropy(net(images), labels).backward()
        opt.step()

    print(f"N={cells_per_stage}, {resolution} px: {cpu_ms(step, steps):.0f} CPU ms per step")
    with torch.profiler.profile() as prof:
        for _ in range(3):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def compare_pooling(resolution: int, repeats: int) -> None:
    x = torch.randn(64, 16, resolution, resolution, requires_grad=True)
    ones = torch.ones(1, 1, resolution, resolution)
    count = F.conv2d(ones, torch.ones(1, 1, 3, 3), padding=1)  # real pixels under each window
    kernel = torch.ones(16, 1, 3, 3)

    def excluding_padding() -> None:
        F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).sum().backward()

    def depthwise() -> None:
        (F.conv2d(x, kernel, padding=1, groups=16) / count).sum().backward()

    with torch.no_grad():
        pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        gap = (pooled - F.conv2d(x, kernel, padding=1, groups=16) / count).abs().max().item()
    print(
        f"3x3 average pooling, [64, 16, {resolution}, {resolution}], forward + backward: "
        f"avg_pool2d {cpu_ms(excluding_padding, repeats):.2f} ms, depthwise convolution "
        f"{cpu_ms(depthwise, repeats):.2f} ms (largest difference {gap:.1e})"
    )


def compare_formats(cells_per_stage: int, resolution: int, steps: int) -> None:
    """CPU ms per step of the evaluator's network for each numerics setting."""
    split = Split(torch.randn(64, 1, resolution, resolution), torch.randint(0, 10, (64,)))
    data = ImageDataset("random", split, split, split, 10, 1, resolution, tuple("0123456789"))
    arch = get_space("nb201").from_string(CELL)
    for channels_last, bf16 in ((False, False), (True, False), (False, True), (True, True)):
        config = TrainConfig(
            cells_per_stage=cells_per_stage, channels_last=channels_last, bf16=bf16, device="cpu"
        )
        net = TrainingEvaluator(data, config).build_network(arch)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)

        def step(net=net, opt=opt) -> None:
            opt.zero_grad()
            F.cross_entropy(net(split.images), split.labels).backward()
            opt.step()

        memory = "channels-last" if channels_last else "default"
        name = f"{'bfloat16' if bf16 else 'float32'}, {memory}"
        ms = cpu_ms(step, steps)
        print(f"N={cells_per_stage}, {resolution} px, {name}: {ms:.0f} CPU ms per step")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells-per-stage", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compare-formats", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.compare_formats:
        compare_formats(args.cells_per_stage, args.resolution, args.steps)
        return
    profile_step(args.cells_per_stage, args.resolution, args.steps)
    compare_pooling(args.resolution, 50)


if __name__ == "__main__":
    main()
