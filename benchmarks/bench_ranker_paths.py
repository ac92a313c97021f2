"""Experiment: DiffusionNAG-BO whose clean ranker sees NAS-Bench-201 *path* features.

BANANAS (White et al., 2021) found a path encoding better than one-hot cells for its MLP
ensemble. Here a cell's features are the counts of its live input-to-output paths by operation
sequence (a path through ``none`` carries nothing and is dropped): 4 + 16 + 64 = 84 counts for
the cell's four paths 0->3, 0->1->3, 0->2->3 and 0->1->2->3 (derived from its edges).
``--features onehot+path`` concatenates them with the one-hot cell. Only the ranker's features
change, for this process; everything else is ``bench_search_options.py`` (same arguments).
Usage:

    .venv/bin/python benchmarks/bench_ranker_paths.py --features path diffusionnag-bo \\
        --seeds 10 --datasets ImageNet16-120
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence

import bench_search_options
import torch

import diffusionnag.search.strategies.diffusionnag_bo as diffusionnag_bo
from diffusionnag.search.strategies.ensemble import features as one_hot_features
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.spaces.nb201 import CELL_NODES, EDGES, OPERATIONS

NONE = OPERATIONS.index("none")


def _edge_paths(node: int, target: int) -> list[tuple[int, ...]]:
    """Every path ``node -> ... -> target`` of the cell DAG, as edge indices into ``EDGES``."""
    if node == target:
        return [()]
    return [
        (k, *rest)
        for k, (src, dst) in enumerate(EDGES)
        if src == node
        for rest in _edge_paths(dst, target)
    ]


PATHS = tuple(_edge_paths(0, CELL_NODES - 1))
LIVE_OPS = tuple(op for op in range(len(OPERATIONS)) if op != NONE)
SEQUENCE_INDEX = {
    sequence: index
    for index, sequence in enumerate(
        sequence
        for length in sorted({len(path) for path in PATHS})
        for sequence in itertools.product(LIVE_OPS, repeat=length)
    )
}


def path_features(archs: Sequence[Arch]) -> torch.Tensor:
    """``[B, 84]`` counts of live paths by operation sequence."""
    counts = torch.zeros(len(archs), len(SEQUENCE_INDEX))
    for row, arch in enumerate(archs):
        for path in PATHS:
            sequence = tuple(arch.ops[edge] for edge in path)
            if NONE not in sequence:
                counts[row, SEQUENCE_INDEX[sequence]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--features", choices=("path", "onehot+path"), default="path")
    args, rest = parser.parse_known_args()

    def ranker_features(space: SearchSpace, archs: Sequence[Arch]) -> torch.Tensor:
        paths = path_features(archs)
        if args.features == "path":
            return paths
        return torch.cat([one_hot_features(space, archs), paths], 1)

    diffusionnag_bo.features = ranker_features
    sys.argv = [sys.argv[0], *rest]
    bench_search_options.main()


if __name__ == "__main__":
    main()
