"""The default score model, trained once per machine into the user's cache directory."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from diffusionnag.training import ScoreModel, ScoreTrainConfig, train_score_model

CACHE_ENV_VAR = "DIFFUSIONNAG_CACHE"


def cache_dir() -> Path:
    """``$DIFFUSIONNAG_CACHE``, else ``$XDG_CACHE_HOME``/diffusionnag or ~/.cache/diffusionnag."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "diffusionnag"


def default_score_model(space: str = "nb201", *, progress: bool = False) -> ScoreModel:
    """The default-config score model of ``space``, trained into the cache on first use.

    The folder name carries a digest of the config, so a changed default trains a new model
    instead of loading a stale one; an interrupted first training resumes.
    """
    config = ScoreTrainConfig(space=space)
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    folder = cache_dir() / f"score-{space}-{digest}"
    model = train_score_model(config, folder, device="cpu", resume=True, progress=progress)
    return model
