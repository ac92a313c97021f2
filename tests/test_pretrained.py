"""The score model shipped inside the package loads offline and generates valid cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.pretrained import SHIPPED, cache_dir, default_score_model
from diffusionnag.training import ScoreTrainConfig, read_config


def test_shipped_nb201_model_is_the_default_config() -> None:
    assert read_config(SHIPPED / "score-nb201") == ScoreTrainConfig(space="nb201")


def test_shipped_nb201_model_generates_valid_unique_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFFUSIONNAG_CACHE", str(tmp_path))  # nothing may be trained or cached
    model = default_score_model()
    result = generate(model, 200, SamplerConfig("em", 50), seed=0)
    assert len(result.valid) >= 198
    assert len(set(result.valid)) >= 180
    assert not any(cache_dir().iterdir())


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIFFUSIONNAG_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DIFFUSIONNAG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "diffusionnag"
