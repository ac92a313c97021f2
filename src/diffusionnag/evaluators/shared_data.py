"""Where the shared NAS-Bench-201 table lives, decided in one place.

Tests, benchmark scripts and the CLI all ask :func:`default_table_path`, so pointing every one of
them at another copy of the table takes a single environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

TABLE_ENV_VAR = "DIFFUSIONNAG_NB201_TABLE"
TABLE_RELATIVE_PATH = Path("shared", "data", "nasbench201", "nats_tss_200ep_test_acc.csv")
"""The table's place below the folder that holds both the repository and ``shared/``."""


def default_table_path(start: str | Path | None = None) -> Path:
    """The NB201 table: ``$DIFFUSIONNAG_NB201_TABLE``, else the nearest ``shared/`` copy.

    The search walks up from ``start`` (default: the working directory) and returns the first
    ``<folder>/shared/data/nasbench201/...`` that exists. When there is none, the path where the
    table is expected (``<repo root>/../shared/...``) is returned anyway so that callers can name
    it in their error message; nothing here checks that it exists.
    """
    override = os.environ.get(TABLE_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / TABLE_RELATIVE_PATH
        if candidate.is_file():
            return candidate
    return _repo_root(here).parent / TABLE_RELATIVE_PATH


def _repo_root(here: Path) -> Path:
    """The nearest folder with a ``pyproject.toml``, else ``here`` itself."""
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here
