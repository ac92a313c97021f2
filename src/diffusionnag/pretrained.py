"""The default score models: shipped inside the package, else trained once per machine into the
user's cache directory.

A shipped model (``assets/score-<space>``: ``config.json`` and the EMA weights ``model.pt``) is
what ``diffusionnag train-score --space <space> --out DIR`` produces with the space's
recommended settings on CPU (seed 0; 3,000 steps for nb201, 9,000 for mbv3); copying
``DIR/config.json`` and ``DIR/model.pt`` there reproduces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from diffusionnag.diffusion.model import (
    ScoreModel,
    default_train_config,
    load_score_model,
    read_config,
    train_score_model,
)

CACHE_ENV_VAR = "DIFFUSIONNAG_CACHE"
SHIPPED = Path(__file__).parent / "assets"


_INSTALLED_ASSET = re.compile(r"^.*[/\\]diffusionnag[/\\]assets[/\\]")
SHIPPED_PREFIX = "<package>/assets/"


def portable(value: Any) -> Any:
    """``value`` (JSON data) with every path into a shipped asset written ``<package>/assets/
    NAME`` rather than the install's absolute path, so journals and results read the same on
    every machine (and resume against a journal written before, whatever its install path)."""
    if isinstance(value, str) and _INSTALLED_ASSET.match(value):
        return _INSTALLED_ASSET.sub(SHIPPED_PREFIX, value).replace("\\", "/")
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item) for item in value]
    return value


def cache_dir() -> Path:
    """``$DIFFUSIONNAG_CACHE``, else ``$XDG_CACHE_HOME``/diffusionnag or ~/.cache/diffusionnag."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diffusionnag"


def default_score_model(space: str = "nb201", *, progress: bool = False) -> ScoreModel:
    """The score model of ``space`` under its recommended config (``default_train_config``),
    shipped or trained into the cache on first use.

    The folder name carries a digest of the config, so a changed default trains a new model
    instead of loading a stale one; an interrupted first training resumes.
    """
    config = default_train_config(space)
    shipped = SHIPPED / f"score-{space}"
    if shipped.is_dir() and read_config(shipped) == config:
        return load_score_model(shipped, "cpu")
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_dir() / f"score-{space}-{digest}"
    return train_score_model(config, folder, device="cpu", resume=True, progress=progress)
