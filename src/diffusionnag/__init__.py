"""DiffusionNAG: neural architecture generation by guided score-based diffusion.

The names a user needs, importable from here (loaded on first use, so ``import diffusionnag``
and the command line stay fast):

* a shipped model: :func:`default_score_model`, :func:`load_score_model`;
* generation: :func:`generate`, :class:`SamplerConfig`;
* guidance: :func:`train_predictor`, :class:`PredictorConfig`, :func:`guided`,
  :class:`Objective`, :func:`combined_log_prob`, :func:`sigma_scaled`,
  :func:`generate_ranked`;
* search: :class:`SearchJob`, :func:`run_job`, :func:`run_search`, :func:`get_strategy`,
  :class:`Evaluator`, :class:`EvalResult`, :class:`BenchmarkSpec`, :class:`NB201Table`;
* transfer: :class:`TransferJob`, :func:`run_transfer`;
* Optuna (extra ``optuna``): :class:`DiffusionNAGSampler`, :func:`suggest_arch`;
* spaces and networks: :func:`get_space`, :class:`Arch`, :func:`build_nb201_network`.

>>> import diffusionnag as dn
>>> model = dn.default_score_model()  # NB201, ships with the package
>>> cells = dn.generate(model, 8, dn.SamplerConfig("em", 10), seed=0).valid
>>> network = dn.build_nb201_network(cells[0], channels=8, cells_per_stage=1)
>>> type(network).__name__
'NB201Network'
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "default_score_model": "diffusionnag.pretrained",
    "load_score_model": "diffusionnag.diffusion.model",
    "ScoreModel": "diffusionnag.diffusion.model",
    "SamplerConfig": "diffusionnag.generate",
    "guided": "diffusionnag.guidance",
    "Objective": "diffusionnag.guidance",
    "Budget": "diffusionnag.guidance",
    "combined_log_prob": "diffusionnag.guidance",
    "sigma_scaled": "diffusionnag.guidance",
    "generate_ranked": "diffusionnag.guidance",
    "train_predictor": "diffusionnag.predictors.objective",
    "PredictorConfig": "diffusionnag.predictors.objective",
    "SearchJob": "diffusionnag.search.job",
    "run_job": "diffusionnag.search.job",
    "run_search": "diffusionnag.search.run",
    "get_strategy": "diffusionnag.search.strategies",
    "Evaluator": "diffusionnag.evaluators.base",
    "EvalResult": "diffusionnag.evaluators.base",
    "BenchmarkSpec": "diffusionnag.evaluators.registry",
    "NB201Table": "diffusionnag.evaluators.nb201_table",
    "TrainConfig": "diffusionnag.evaluators.train_config",
    "TransferJob": "diffusionnag.transfer.pipeline",
    "run_transfer": "diffusionnag.transfer.pipeline",
    "DiffusionNAGSampler": "diffusionnag.integrations.optuna",
    "suggest_arch": "diffusionnag.integrations.optuna_space",
    "get_space": "diffusionnag.spaces",
    "Arch": "diffusionnag.spaces.base",
    "build_nb201_network": "diffusionnag.nn.nb201",
}

__all__ = ["__version__", "generate", *_EXPORTS]


class _Package(types.ModuleType):
    """``diffusionnag.generate`` is both a submodule and the function users call; importing the
    submodule would rebind the package's attribute to the module, so the function is a
    property and that rebinding is ignored (``from diffusionnag.generate import ...`` reads
    ``sys.modules`` and still finds the module)."""

    @property
    def generate(self) -> Any:
        return importlib.import_module("diffusionnag.generate").generate

    @generate.setter
    def generate(self, module: Any) -> None:
        """The import system binds the submodule here; the public name stays the function."""


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'diffusionnag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
