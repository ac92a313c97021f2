"""DiffusionNAG-BO as an Optuna sampler: guided diffusion proposes the architectures of a study.

The sampler is a thin adapter around
:class:`~diffusionnag.search.strategies.diffusionnag_bo.DiffusionNAGBO`.
When a trial first asks for an architecture parameter (see
:mod:`~diffusionnag.integrations.optuna_space` for the parameters of each space), the sampler
reads the study's trials from its storage, turns the finished ones into a
:class:`~diffusionnag.search.history.History` (in trial-number order; failed and pruned trials are
failed entries, so their cells are never proposed again) and hands out the next cell of a queue
that the strategy's ``ask`` refills whenever the history has grown. Every parameter of the cell
comes from that one draw; any other parameter is sampled independently by Optuna's
``RandomSampler``.

Cells are never repeated, even across processes that share an RDB or journal storage: the cell
handed to a trial is written to the trial's system attributes (:data:`CLAIM_ATTR`) at once, cells
claimed by running trials count as taken, and after writing its claim a trial re-reads the
storage and gives the cell up if another trial claims the same canonical key. Both contenders may
give it up, but since each writes before it reads, no two trials can both keep one.

With one worker a study is deterministic for a seed and proposes exactly the cells the
DiffusionNAG-BO strategy would (``batch_size=1``: the strategy is refit after every trial).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from diffusionnag.config import option_int
from diffusionnag.integrations.optuna_space import ArchParams, arch_params, suggest_arch
from diffusionnag.search.history import History, Trial
from diffusionnag.search.strategies import get_strategy
from diffusionnag.search.strategies.diffusionnag_bo import DiffusionNAGBO
from diffusionnag.spaces.base import Arch, SearchSpace

CLAIM_ATTR = "diffusionnag:cell"
"""System attribute holding the string form of the cell a trial was handed."""
_CLAIM_ROUNDS = 64
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)

__all__ = ["CLAIM_ATTR", "DiffusionNAGSampler", "arch_params", "suggest_arch"]


class DiffusionNAGSampler(BaseSampler):
    """Optuna sampler whose architectures come from DiffusionNAG-BO.

    ``space``: a search space or its name (``"nb201"``, ``"mbv3"``). ``seed``: makes a
    single-worker study reproducible (``None``: drawn at random). ``batch_size``: cells generated
    per refit; more than 1 lets parallel workers that start from the same history share one
    refit. ``options``: DiffusionNAG-BO's options (``num_init``, ``members``, ``fit_steps``,
    ``pool``, ``pool_size``, ``scale``, ``sampler``, ``steps``, ``acquisition``, ...).
    """

    def __init__(
        self,
        space: SearchSpace | str = "nb201",
        *,
        seed: int | None = None,
        batch_size: int = 1,
        **options: Any,
    ) -> None:
        self._batch_size = option_int("batch_size", batch_size)
        self._params: ArchParams = arch_params(space)
        self._distributions = self._params.distributions
        if seed is None:
            seed = int(np.random.default_rng().integers(2**32))
        self._strategy = get_strategy(DiffusionNAGBO.name, self._params.space, seed, **options)
        self._random = RandomSampler(seed=self._strategy.seed % 2**32)
        self._lock = threading.Lock()
        self._queue: list[Arch] = []
        self._queue_basis = -1
        self._cells: dict[int, Arch] = {}

    @property
    def arch_params(self) -> ArchParams:
        """The architecture parameters this sampler proposes (``suggest_arch`` checks them)."""
        return self._params

    def reseed_rng(self) -> None:
        """Reseed the independent sampler; the strategy's asks stay a function of the history."""
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The architecture parameters the study already uses with exactly our distributions."""
        if study._is_multi_objective():
            return {}
        agree: dict[str, bool] = {}
        for past in study._get_trials(deepcopy=False, use_cache=True):
            for name, distribution in past.distributions.items():
                if name in self._distributions:
                    same = distribution == self._distributions[name]
                    agree[name] = agree.get(name, True) and same
        return {name: self._distributions[name] for name, same in agree.items() if same}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        _check_single_objective(study)
        ours = [n for n, d in search_space.items() if self._distributions.get(n) == d]
        params: dict[str, Any] = {}
        if ours:
            cell = self._params.to_params(self._cell_for(study, trial))
            params = {name: cell[name] for name in ours}
        for name, distribution in search_space.items():
            if name not in params:
                params[name] = self._random.sample_independent(study, trial, name, distribution)
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        _check_single_objective(study)
        if self._distributions.get(param_name) == param_distribution:
            return self._params.to_params(self._cell_for(study, trial))[param_name]
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        with self._lock:
            self._cells.pop(trial._trial_id, None)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _cell_for(self, study: Study, trial: FrozenTrial) -> Arch:
        """The one cell of ``trial``: handed out once, then repeated for each of its parameters."""
        with self._lock:
            cell = self._cells.get(trial._trial_id)
            if cell is None:
                cell = self._claim(study, trial)
                self._cells[trial._trial_id] = cell
            return cell

    def _claim(self, study: Study, trial: FrozenTrial) -> Arch:
        space = self._params.space
        for _ in range(_CLAIM_ROUNDS):
            history, pending = self._read_study(study, trial.number)
            cell = self._next_cell(history, pending)
            study._storage.set_trial_system_attr(trial._trial_id, CLAIM_ATTR, space.to_string(cell))
            after, contested = self._read_study(study, trial.number)
            key = space.canonical_key(cell)
            if key not in contested and not after.has_key(key):
                return cell
        raise RuntimeError(
            f"no cell could be claimed in {_CLAIM_ROUNDS} rounds: other workers kept claiming "
            "the same cells"
        )

    def _next_cell(self, history: History, pending: set[str]) -> Arch:
        """The first queued cell that is new to the study; refill the queue when it is stale."""
        if self._queue_basis != len(history):
            self._queue, self._queue_basis = [], len(history)

        def fresh(arch: Arch) -> bool:
            return not history.is_seen(arch) and history.key(arch) not in pending

        self._queue = [arch for arch in self._queue if fresh(arch)]
        if not self._queue:
            asked = self._strategy.ask(history, self._batch_size + len(pending))
            self._queue = [arch for arch in asked if fresh(arch)]
        return self._queue.pop(0)

    def _read_study(self, study: Study, number: int) -> tuple[History, set[str]]:
        """Finished trials as a history, and the canonical keys of the others' unfinished cells."""
        space = self._params.space
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        history, pending = History(space), set()
        for trial in study.get_trials(deepcopy=False):
            cell = self._trial_cell(trial) if trial.number != number else None
            if cell is None:
                continue
            key = space.canonical_key(cell)
            if trial.state not in _FINISHED:
                pending.add(key)
            elif not history.has_key(key):
                history.append(_history_trial(len(history), cell, trial, sign))
        return history, pending

    def _trial_cell(self, trial: FrozenTrial) -> Arch | None:
        """The cell a trial evaluated (its parameters), was handed, or is enqueued with."""
        if all(trial.distributions.get(n) == d for n, d in self._distributions.items()):
            try:
                return self._params.from_params(trial.params)
            except ValueError:  # suggested by another sampler, and no architecture
                return None
        claim = trial.system_attrs.get(CLAIM_ATTR)
        if isinstance(claim, str):
            return self._params.space.from_string(claim)
        fixed = trial.system_attrs.get("fixed_params")
        if isinstance(fixed, dict):
            try:
                return self._params.from_params(fixed)
            except ValueError:
                return None
        return None


def _history_trial(index: int, cell: Arch, trial: FrozenTrial, sign: float) -> Trial:
    value = trial.value if trial.state == TrialState.COMPLETE else None
    if value is None or not math.isfinite(value):
        return Trial(index, cell, math.nan, failed=True)
    return Trial(index, cell, sign * value, failed=False)


def _check_single_objective(study: Study) -> None:
    if study._is_multi_objective():
        raise ValueError(
            f"DiffusionNAGSampler optimises one objective; this study has {len(study.directions)}"
        )
