"""Where the shipped leave-one-out meta-predictors rank each table's optimum (issue 11).

Over one cell per canonical class of the whole table (6,466), evaluated best first by:
the zero-shot meta-predictor (empty support set); the same re-conditioned on every evaluated
cell (the transfer loop without the generated pool); that loop plus a Gaussian-process residual
correction over Hamming distance (tried, not kept); the mean z-score of the two other tables;
each other table's own order.
Prints the evaluations until the optimum for each.

    .venv/bin/python benchmarks/transfer_rankings.py --table PATH [--meta-dir DIR] [--no-gp]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.nb201_table import DATASETS, NB201Table
from diffusionnag.evaluators.shared_data import default_table_path
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.defaults import ASSETS, SHIPPED_META
from diffusionnag.transfer.meta_train import load_meta_predictor


def evaluations_to_optimum(order: np.ndarray, accuracies: np.ndarray) -> int:
    return int(np.flatnonzero(accuracies[order] >= accuracies.max())[0]) + 1


def residual_correction(ops, seen, values, prior, length_scale, noise) -> np.ndarray:
    """Prior (standardised on the evaluated cells) + GP posterior mean of the residuals."""
    s = np.asarray(seen)
    y = (values - values.mean()) / (values.std() + 1e-9)
    reference = prior[s]
    scaled = (prior - reference.mean()) / (reference.std() + 1e-9)
    residual = y - scaled[s]
    k_ss = np.exp(-(ops[s][:, None] != ops[s][None]).sum(-1) / length_scale)
    k_xs = np.exp(-(ops[:, None] != ops[s][None]).sum(-1) / length_scale)
    return scaled + k_xs @ np.linalg.solve(k_ss + noise * np.eye(len(s)), residual)


def loop(predictor, archs, accuracies, ops, budget, gp=None) -> int | None:
    """The transfer loop over all classes; evaluations until the optimum (None: not in budget)."""
    seen: list[int] = []
    for step in range(budget):
        support = predictor.support([archs[i] for i in seen], accuracies[seen])
        prior = predictor.conditioned([support]).predict(archs)
        score = prior
        if gp is not None and len(seen) >= 2:
            score = residual_correction(ops, seen, accuracies[seen], prior, *gp)
        score = np.where(np.isin(np.arange(len(archs)), seen), -np.inf, score)
        seen.append(int(np.argmax(score)))
        if accuracies[seen[-1]] >= accuracies.max():
            return step + 1
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--meta-dir", type=Path, help="folder of meta-nb201-no-<dataset> models")
    parser.add_argument("--no-gp", action="store_true", help="skip the GP residual rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = NB201Table.from_csv(args.table or default_table_path())
    space = NB201Space()
    keys = [space.canonical_key(a) for a in table.archs]
    rows = np.sort(np.unique(keys, return_index=True)[1])  # one cell per class
    archs = [table.archs[i] for i in rows]
    ops = np.array([a.ops for a in archs])
    for target in DATASETS:
        accuracies = table.accuracies(target)[rows]
        folder = (args.meta_dir or ASSETS) / SHIPPED_META[f"nb201:{target}"]
        predictor = load_meta_predictor(folder, "cpu")
        zero_shot = predictor.conditioned([predictor.support([], [])]).predict(archs)
        others = [d for d in DATASETS if d != target]
        z = sum((table.accuracies(d)[rows] - table.accuracies(d)[rows].mean())
                / table.accuracies(d)[rows].std() for d in others)  # fmt: skip
        print(f"{target}: zero-shot {evaluations_to_optimum(np.argsort(-zero_shot), accuracies)}"
              f", mean z of {'+'.join(others)} {evaluations_to_optimum(np.argsort(-z), accuracies)}"
              f", re-conditioned loop {loop(predictor, archs, accuracies, ops, args.budget)}",
              flush=True)  # fmt: skip
        for other in others:
            order = np.argsort(-table.accuracies(other)[rows], kind="stable")
            print(f"  {other}'s order: {evaluations_to_optimum(order, accuracies)}", flush=True)
        for gp in () if args.no_gp else ((0.5, 0.1), (1.0, 0.1), (2.0, 0.1), (1.0, 0.5)):
            found = loop(predictor, archs, accuracies, ops, args.budget, gp)
            print(f"  + GP residuals (length {gp[0]}, noise {gp[1]}): {found}", flush=True)


if __name__ == "__main__":
    main()
