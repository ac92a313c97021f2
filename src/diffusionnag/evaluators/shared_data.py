"""Where the shared third-party data lives, decided in one place.

Tests, benchmark scripts and the CLI all ask :func:`default_table_path` (the NAS-Bench-201 table)
or :func:`default_ofa_dir` (the once-for-all accuracy predictor and latency tables), so pointing
every one of them at another copy takes a single environment variable.
"""

from __future__ import annotations

import os
from pathlib import Path

TABLE_ENV_VAR = "DIFFUSIONNAG_NB201_TABLE"
TABLE_RELATIVE_PATH = Path("shared", "data", "nasbench201", "nats_tss_200ep_test_acc.csv")
"""The table's place below the folder that holds both the repository and ``shared/``."""

OFA_ENV_VAR = "DIFFUSIONNAG_OFA_DIR"
OFA_RELATIVE_PATH = Path("shared", "data", "ofa")
OFA_MARKER = "acc_predictor.pth"
"""The file whose presence tells a folder of once-for-all data from an unrelated one."""


def default_table_path(start: str | Path | None = None) -> Path:
    """The NB201 table: ``$DIFFUSIONNAG_NB201_TABLE``, else the nearest ``shared/`` copy.

    The search walks up from ``start`` (default: the working directory) and returns the first
    ``<folder>/shared/data/nasbench201/...`` that exists. When there is none, the path where the
    table is expected (``<repo root>/../shared/...``) is returned anyway so that callers can name
    it in their error message; nothing here checks that it exists.
    """
    return _nearest(TABLE_ENV_VAR, TABLE_RELATIVE_PATH, Path(), start)


def default_ofa_dir(start: str | Path | None = None) -> Path:
    """The once-for-all data folder: ``$DIFFUSIONNAG_OFA_DIR``, else the nearest
    ``<folder>/shared/data/ofa`` holding ``acc_predictor.pth``, searched as
    :func:`default_table_path` searches; the expected place when there is none."""
    return _nearest(OFA_ENV_VAR, OFA_RELATIVE_PATH, Path(OFA_MARKER), start)


def _nearest(env_var: str, relative: Path, marker: Path, start: str | Path | None) -> Path:
    """``$env_var``, else the first ``<folder>/relative`` above ``start`` in which ``marker`` is a
    file (``relative`` itself when ``marker`` is empty), else ``<repo root>/../relative``."""
    override = os.environ.get(env_var, "").strip()
    if override:
        return Path(override).expanduser()
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / relative
        if (candidate / marker).is_file():
            return candidate
    return _repo_root(here).parent / relative


def _repo_root(here: Path) -> Path:
    """The nearest folder with a ``pyproject.toml``, else ``here`` itself."""
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here
