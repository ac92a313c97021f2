"""Shared fixtures: the real NB201 table (found through the package's one helper) and a small fake.

The fake table is written to a temporary folder by a seeded fixture instead of living under
``tests/data/``: 200 made-up rows are cheaper to regenerate than to keep in sync with the column
layout, and a reader can see exactly how they were made.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusionnag.evaluators.nb201_table import (
    ACCURACY_COLUMNS,
    ARCH_COLUMN,
    DATASETS,
    KEY_COLUMN,
    NB201Table,
)
from diffusionnag.evaluators.shared_data import (
    OFA_ENV_VAR,
    OFA_MARKER,
    TABLE_ENV_VAR,
    default_ofa_dir,
    default_table_path,
)
from diffusionnag.spaces.nb201 import NB201Space

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_TABLE_ROWS = 200


def shared_table_path() -> Path:
    """The shared NB201 CSV; skips the calling test when it is absent, fails instead on CI."""
    path = default_table_path(REPO_ROOT)
    if not path.is_file():
        missing_shared_data(
            f"shared NB201 table not found at {path} (set {TABLE_ENV_VAR} to its path)"
        )
    return path


def shared_ofa_dir() -> Path:
    """The shared once-for-all folder; skips the calling test when absent, fails on CI."""
    folder = default_ofa_dir(REPO_ROOT)
    if not (folder / OFA_MARKER).is_file():
        missing_shared_data(
            f"once-for-all data not found in {folder} (set {OFA_ENV_VAR} to the folder)"
        )
    return folder


def missing_shared_data(message: str) -> None:
    """Skip locally, but fail under ``CI=true``, where a skipped data test would pass unseen."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def nb201_table_path() -> Path:
    return shared_table_path()


@pytest.fixture(scope="session")
def nb201_table() -> NB201Table:
    return NB201Table.from_csv(shared_table_path())


def write_fake_table(path: Path, rows: int, seed: int) -> Path:
    """A CSV with the shared table's columns: ``rows`` distinct cells, made-up accuracies."""
    space = NB201Space()
    rng = np.random.default_rng(seed)
    cells = space.enumerate()
    chosen = rng.choice(len(cells), size=rows, replace=False)
    accuracies = np.round(rng.uniform(10.0, 95.0, size=(rows, len(DATASETS))), 4)
    header = [*(ACCURACY_COLUMNS[d] for d in DATASETS), ARCH_COLUMN, KEY_COLUMN]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row, index in enumerate(chosen):
            arch = cells[int(index)]
            values = [repr(float(v)) for v in accuracies[row]]
            writer.writerow([*values, space.to_string(arch), space.canonical_key(arch)])
    return path


@pytest.fixture(scope="session")
def nb201_small_table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("nb201_small")
    return write_fake_table(folder / "nb201_small.csv", SMALL_TABLE_ROWS, seed=0)


@pytest.fixture(scope="session")
def nb201_small_table(nb201_small_table_path: Path) -> NB201Table:
    return NB201Table.from_csv(nb201_small_table_path)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run several times faster on one thread than two on a shared 2-core machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
