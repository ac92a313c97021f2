"""Pretrain the ``fmnist`` images extractor and write its package asset.

Trains :class:`diffusionnag.predictors.extractor.ConvFeatures` with a linear head as a 10-class
classifier on the Fashion-MNIST *training split only* (``source_dataset("fashion-mnist").train``,
the split every task draws its training images from), each step at one of the task resolutions
(8, 12, 16 px). Seeded and on one thread, so the same command writes the same weights. Prints
the accuracy on the source's validation split (never trained on) at each resolution. Writes
``src/diffusionnag/assets/extractor-fmnist`` unless ``--out`` says otherwise:

    nice -n 10 .venv/bin/python benchmarks/train_extractor.py
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from diffusionnag.evaluators.tasks import SOURCE_SPLIT_SEED, source_dataset
from diffusionnag.predictors.extractor import (
    ASSET,
    PretrainConfig,
    accuracy,
    pretrain_extractor,
    resize,
    save_extractor,
)

COMMAND = "nice -n 10 .venv/bin/python benchmarks/train_extractor.py"


def main() -> None:
    defaults = PretrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=ASSET)
    args = parser.parse_args()
    config = PretrainConfig(steps=args.steps, seed=args.seed)
    source = source_dataset("fashion-mnist")
    start = time.perf_counter()
    extractor, head = pretrain_extractor(source.train.images, source.train.labels, config)
    seconds = time.perf_counter() - start
    valid = {
        str(r): round(
            accuracy(extractor, head, resize(source.valid.images, r), source.valid.labels), 4
        )
        for r in config.resolutions
    }
    info = {
        "data": f"fashion-mnist train split ({len(source.train.labels)} images, split seed "
        f"{SOURCE_SPLIT_SEED}); accuracy on its valid split ({len(source.valid.labels)} images)",
        "valid_accuracy": valid,
        "train_seconds": round(seconds, 1),
        "command": f"{COMMAND} --steps {args.steps} --seed {args.seed}",
    }
    save_extractor(extractor, config, info, args.out)
    digest = hashlib.sha256()
    for tensor in extractor.state_dict().values():
        digest.update(tensor.numpy().tobytes())
    print(
        f"valid accuracy by resolution {valid}; {seconds:.0f} s; wrote {args.out} "
        f"(weights sha256 {digest.hexdigest()[:16]})"
    )


if __name__ == "__main__":
    main()
