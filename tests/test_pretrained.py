"""The score models shipped inside the package load offline and generate valid cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffusionnag.diffusion.model import default_train_config, read_config
from diffusionnag.generate import SamplerConfig, generate
from diffusionnag.pretrained import SHIPPED, cache_dir, default_score_model


@pytest.mark.parametrize("space", ["nb201", "mbv3"])
def test_shipped_model_is_the_recommended_config(space: str) -> None:
    assert read_config(SHIPPED / f"score-{space}") == default_train_config(space)


# 15,625 NB201 cells repeat at uniform-sampling rates; 2e19 MobileNetV3 subnets should not.
@pytest.mark.parametrize(("space", "unique_share"), [("nb201", 0.9), ("mbv3", 1.0)])
def test_shipped_model_generates_valid_unique_cells(
    space: str, unique_share: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIFFUSIONNAG_CACHE", str(tmp_path))  # nothing may be trained or cached
    model = default_score_model(space)
    result = generate(model, 200, SamplerConfig("em", 50), seed=0)
    assert len(result.valid) >= 197
    assert len(set(result.valid)) >= unique_share * len(result.valid)
    assert not any(cache_dir().iterdir())


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIFFUSIONNAG_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("DIFFUSIONNAG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "diffusionnag"
