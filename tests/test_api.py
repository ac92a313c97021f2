"""The documented Python API: every name importable from ``diffusionnag``, docstring examples
that run."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

import diffusionnag

EXAMPLE_MODULES = [
    "diffusionnag",
    "diffusionnag.generate",
    "diffusionnag.nn.nb201",
    "diffusionnag.predictors.objective",
]


@pytest.mark.parametrize("name", [name for name in diffusionnag.__all__ if name != "__version__"])
def test_every_listed_name_resolves(name: str) -> None:
    if name in ("DiffusionNAGSampler", "suggest_arch"):
        pytest.importorskip("optuna")  # the optional extra
    assert getattr(diffusionnag, name) is not None


def test_generate_is_the_function_even_after_its_module_loads() -> None:
    importlib.import_module("diffusionnag.generate")
    assert callable(diffusionnag.generate) and diffusionnag.generate.__name__ == "generate"


def test_importing_the_package_loads_no_torch() -> None:
    code = "import sys, diffusionnag; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("module", EXAMPLE_MODULES)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
