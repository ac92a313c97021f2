"""Do architectures differ by more than training noise under a reference's protocol?

Spread of the reference's random cells (one training seed each) against the seed-to-seed spread
of single cells: ``--cells`` cells of the reference, evenly spaced in its ranking by validation
accuracy, retrained with training seeds 1..``--seeds`` (seed 0 is the reference's own run) under
the reference's exact protocol. Prints both spreads, for validation and test accuracy.

    nice .venv/bin/python benchmarks/bench_protocol_noise.py \
        src/diffusionnag/assets/reference-digits/rows.jsonl --cells 5 --seeds 4
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.tasks import TaskSpec, load_task
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.spaces import get_space
from diffusionnag.transfer.reference import read_reference


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    reference = read_reference(args.reference)
    header = json.loads(args.reference.read_text().splitlines()[0])
    spec = TaskSpec.from_json(header["specs"][0])
    space = get_space(header["space"])
    settings = {k: v for k, v in reference.train.items() if k in TrainConfig.__dataclass_fields__}
    data = load_task(spec)
    ok = np.isfinite(reference.accuracies)
    order = np.flatnonzero(ok)[np.argsort(reference.accuracies[ok])]
    picks = order[np.linspace(0, len(order) - 1, args.cells).round().astype(int)]
    print(f"reference {args.reference}: {ok.sum()} of {len(ok)} cells trained without diverging")
    for name, values in (("valid", reference.accuracies), ("test", reference.test_accuracies)):
        q1, q3 = np.percentile(values[ok], [25, 75])
        print(f"  random cells, {name}: std {values[ok].std(ddof=1):.2f}, IQR {q1:.2f} to {q3:.2f}")
    stds = {"valid": [], "test": []}
    for index in picks:
        runs = [(reference.accuracies[index], reference.test_accuracies[index])]
        for seed in range(1, args.seeds + 1):
            config = TrainConfig(**{**settings, "seed": seed})
            result = TrainingEvaluator(data, config, space=space.name).evaluate(
                space.from_string(reference.cells[index])
            )
            runs.append((result.value, result.metrics["test_accuracy"]))
        valid, test = np.array(runs).T
        stds["valid"].append(valid.std(ddof=1))
        stds["test"].append(test.std(ddof=1))
        print(
            f"  cell {reference.cells[index]}: valid {np.round(valid, 2).tolist()}, "
            f"test {np.round(test, 2).tolist()}"
        )
    for name, values in stds.items():
        median = np.median(values)
        print(f"seed-to-seed std over {args.seeds + 1} seeds, {name}: median {median:.2f}")


if __name__ == "__main__":
    main()
