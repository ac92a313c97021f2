"""Which images extractor ranks held-out tasks better: the seeded random one or the trained one.

Meta-trains ``images`` meta-predictors on the shipped Fashion-MNIST meta-dataset with each
extractor (``random``: frozen seeded random convolutions; ``fmnist``: the shipped extractor
pretrained on the Fashion-MNIST training split, ``diffusionnag.predictors.extractor``), and the
unconditioned ablation (``none``: one learned vector for every task), for several meta-training
seeds; ``random-sizes`` and ``fmnist-sizes`` are the two extractors in an encoder that also
reads the task's size (``task_sizes``, as the shipped ``meta-nb201-fmnist-images``). Every
variant holds out the same tasks as that shipped meta-predictor (every 11th task of the file,
named in its ``meta.held_out``) and is scored by Spearman over each held-out task's cells (one
encoding of ``per_class`` images per class, encoding seed = the meta-training seed, as
``diffusionnag meta-train`` does).

Each trained folder is saved under ``OUT/<variant>-s<seed>/`` with its held-out scores and wall
time in ``meta``; a folder already there is read, not retrained, so a killed run resumes.

    nice -n 10 .venv/bin/python benchmarks/bench_extractor.py --out runs/meta/extractor
    nice -n 10 .venv/bin/python benchmarks/bench_extractor.py --variants random-sizes \
        fmnist-sizes --out runs/meta/extractor
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

from diffusionnag.diffusion.model import build_score_model, default_train_config
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.spaces import get_space
from diffusionnag.transfer.meta_train import (
    CONFIG_FILE,
    evaluate_on_tasks,
    load_meta_predictor,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import read_meta_dataset

ASSETS = Path(__file__).resolve().parents[1] / "src" / "diffusionnag" / "assets"
VARIANTS = {
    "random": {"encoder": "images", "extractor": "random"},
    "fmnist": {"encoder": "images", "extractor": "fmnist"},
    "none": {"encoder": "none"},
    "random-sizes": {"encoder": "images", "extractor": "random", "task_sizes": True},
    "fmnist-sizes": {"encoder": "images", "extractor": "fmnist", "task_sizes": True},
}


def held_out_names(folder: Path) -> list[str]:
    """The held-out task names of a shipped meta-predictor, in its order."""
    header = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    return list(header["meta"]["held_out"])


def run_variant(variant: str, seed: int, args, dataset, holdout: list[str]) -> dict:
    """Held-out scores of one variant and seed: read from its folder, else meta-trained now
    (``dataset()`` reads the meta-dataset, with images, the first time it is needed)."""
    folder = args.out / f"{variant}-s{seed}"
    if (folder / CONFIG_FILE).is_file():
        return load_meta_predictor(folder, device="cpu").meta
    space = get_space("nb201")
    sde = build_score_model(default_train_config("nb201")).sde
    train, held_out = dataset().split(holdout)
    config = MetaPredictorConfig(**VARIANTS[variant], steps=args.steps, seed=seed)
    start = time.perf_counter()
    predictor = train_meta_predictor(space, sde, train, config, device="cpu")
    seconds = time.perf_counter() - start
    predictor.meta["held_out"] = evaluate_on_tasks(predictor, held_out, seed=seed)
    predictor.meta["seconds"] = round(seconds, 1)
    save_meta_predictor(predictor, folder)
    return predictor.meta


def spearmans(meta: dict, holdout: list[str]) -> list[float]:
    """Spearman per held-out task, in ``holdout`` order (one score per task: one encoding)."""
    return [next(iter(meta["held_out"][name].values()))["spearman"] for name in holdout]


def report(results: dict[tuple[str, int], dict], holdout: list[str]) -> None:
    """Per variant and seed; per variant over seeds; per task, the mean over seeds."""
    variants = [v for v in VARIANTS if any(key[0] == v for key in results)]
    scores = {key: spearmans(meta, holdout) for key, meta in results.items()}
    print("| variant | seed | held-out Spearman per task | median | mean | meta-train s |")
    print("|---|---|---|---|---|---|")
    for key in sorted(scores, key=lambda k: (variants.index(k[0]), k[1])):
        values, seconds = scores[key], results[key].get("seconds", float("nan"))
        listed = ", ".join(f"{v:.2f}" for v in values)
        print(
            f"| {key[0]} | {key[1]} | {listed} | {np.median(values):.3f} | "
            f"{np.mean(values):.3f} | {seconds:.0f} |"
        )
    print()
    print("| variant | per-seed medians | median of them | all task x seed scores: median, mean |")
    print("|---|---|---|---|")
    by_variant = {v: [scores[k] for k in sorted(scores) if k[0] == v] for v in variants}
    for variant, runs in by_variant.items():
        medians = [float(np.median(run)) for run in runs]
        pooled = np.concatenate(runs)
        print(
            f"| {variant} | {', '.join(f'{m:.3f}' for m in medians)} | "
            f"{np.median(medians):.3f} | {np.median(pooled):.3f}, {np.mean(pooled):.3f} |"
        )
    print()
    print("| held-out task | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    means = {v: np.mean(runs, axis=0) for v, runs in by_variant.items()}
    for index, name in enumerate(holdout):
        print(f"| {name} | " + " | ".join(f"{means[v][index]:.2f}" for v in variants) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=["random", "fmnist", "none"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--meta-dataset", type=Path, default=ASSETS / "meta-fmnist" / "rows.jsonl")
    parser.add_argument(
        "--holdout-from",
        type=Path,
        default=ASSETS / "meta-nb201-fmnist-images",
        help="meta-predictor folder whose meta.held_out names the held-out tasks",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/meta/extractor"))
    args = parser.parse_args()
    holdout = held_out_names(args.holdout_from)
    dataset = functools.cache(
        lambda: read_meta_dataset(args.meta_dataset, get_space("nb201"), images=True)
    )
    results = {}
    for seed in args.seeds:  # seed by seed: a partial run still compares every variant
        for variant in args.variants:
            results[variant, seed] = run_variant(variant, seed, args, dataset, holdout)
            print(f"done {variant}-s{seed}", flush=True)
    report(results, holdout)


if __name__ == "__main__":
    main()
