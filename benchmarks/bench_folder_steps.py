"""How many SGD steps a small image folder needs before its cells score above chance.

Writes a 3-class folder of 30 PNGs per class (stripes of one orientation per class: vertical,
horizontal, diagonal; random period, phase and colour under Gaussian pixel noise), loads it as
``train:folder:`` does (32 px, 54 training / 18 validation images, so one SGD step an epoch),
and trains the same random NB201 cells (C=16, N=1, the ``TrainConfig`` defaults) for each step
count, printing validation accuracy per cell and seconds per cell. This chose
``DEFAULT_TRAIN_STEPS`` (``evaluators/registry.py``).

    python benchmarks/bench_folder_steps.py --steps 16 32 64 128 256 --cells 3 --noise 50
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from diffusionnag.evaluators.datasets import load_dataset
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.spaces.nb201 import NB201Space


def write_folder(root: Path, amplitude: float, noise: float, per_class: int = 30) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    for label, direction in enumerate((xx, yy, xx + yy)):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            stripes = np.sin(2 * np.pi * direction / rng.uniform(5, 9) + rng.uniform(0, 2 * np.pi))
            pixels = rng.uniform(60, 190, 3) + amplitude * stripes[..., None]
            pixels = pixels + rng.normal(0, noise, (32, 32, 3))
            image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            image.save(folder / f"{index:03d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--cells", type=int, default=3)
    parser.add_argument("--amplitude", type=float, default=20.0, help="stripe contrast")
    parser.add_argument("--noise", type=float, default=50.0, help="pixel noise std")
    args = parser.parse_args()
    space = NB201Space()
    cells = space.sample(args.cells, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "stripes", args.amplitude, args.noise)
        data = load_dataset(f"folder:{folder}", seed=0)
    print(f"train/valid/test {len(data.train)}/{len(data.valid)}/{len(data.test)} images")
    for steps in args.steps:
        evaluator = TrainingEvaluator(data, TrainConfig(epochs=1, steps=steps, device="cpu"))
        start = time.perf_counter()
        values = [evaluator.evaluate(cell).value for cell in cells]
        seconds = (time.perf_counter() - start) / len(cells)
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{steps:4d} steps: {shown} (mean {np.mean(values):.1f}) {seconds:.1f} s/cell")


if __name__ == "__main__":
    main()
