"""Search through an optuna sampler: TPE here, the Gaussian process in :mod:`.optuna_gp`.

One categorical optuna parameter per op slot of the space. The optuna study is rebuilt from the
history on every ask, with a sampler seeded from the ask's generator, so the strategy is a function
of (seed, history) like every other. optuna is an optional dependency, imported only here.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from diffusionnag.config import NON_NEGATIVE, option_int
from diffusionnag.search.base import Batch, ModelBasedStrategy, Seed
from diffusionnag.search.history import History
from diffusionnag.spaces.base import Arch, SearchSpace


def slot_choices(space: SearchSpace) -> list[tuple[int, ...]]:
    """The values each op slot can take: ``space.slot_choices()`` if the space defines it, else
    read off ``space.enumerate()``; ``ValueError`` for a space with neither."""
    own = getattr(space, "slot_choices", None)
    if own is not None:
        return [tuple(choices) for choices in own()]
    enumerate_space = getattr(space, "enumerate", None)
    if enumerate_space is None:
        raise ValueError(
            f"the tpe strategy needs a space with slot_choices() or enumerate(); "
            f"space {space.name!r} has neither"
        )
    archs = enumerate_space()
    return [tuple(sorted({a.ops[slot] for a in archs})) for slot in range(len(archs[0].ops))]


def import_optuna(strategy: str = "tpe") -> Any:
    try:
        import optuna
    except ImportError as err:
        raise ValueError(
            f"the {strategy} strategy needs optuna: pip install 'diffusionnag[optuna]'"
        ) from err
    return optuna


class OptunaSearch(ModelBasedStrategy):
    """An optuna sampler's proposals, with dedup by canonical key; subclasses build the sampler.

    When the sampler proposes a cell whose class was already evaluated, the study is told that
    class's known value and asked again; a cell already in the batch stays a running trial (TPE's
    constant liar counts it as bad; the GP conditions on it as pending). A cell over the space's
    budgets is a failed trial, never evaluated. After ``max_retries`` such proposals per cell the
    rest of the batch is filled with random unseen cells.
    """

    def __init__(
        self, space: SearchSpace, seed: Seed = 0, *, num_init: int = 10, max_retries: int = 20
    ) -> None:
        super().__init__(space, seed)
        self.num_init = option_int("num_init", num_init)
        self.max_retries = option_int("max_retries", max_retries, NON_NEGATIVE)
        optuna = import_optuna(self.name)
        self._distributions = {
            f"slot{i}": optuna.distributions.CategoricalDistribution(choices)
            for i, choices in enumerate(slot_choices(space))
        }

    @abstractmethod
    def sampler(self, seed: int) -> Any:
        """The optuna sampler of one ask, seeded with ``seed``."""

    def propose_model(self, history: History, batch: Batch, rng: np.random.Generator) -> None:
        with _quiet(import_optuna()):
            study = self._study(history, int(rng.integers(2**32)))
            retries = 0
            while not batch.full and retries <= self.max_retries * batch.size:
                trial = study.ask(self._distributions)
                arch = Arch(
                    self.space.name, tuple(trial.params[name] for name in self._distributions)
                )
                if self._accept(study, trial, arch, batch, history):
                    continue
                retries += 1

    def _accept(self, study: Any, trial: Any, arch: Arch, batch: Batch, history: History) -> bool:
        """Add a proposal to the batch, or tell the study what is already known about it."""
        failed = import_optuna().trial.TrialState.FAIL
        try:
            self.space.validate(arch)
        except ValueError:
            study.tell(trial, state=failed)
            return False
        if not self.space.feasible(arch):  # over the budgets: never evaluated, a failure to TPE
            study.tell(trial, state=failed)
            return False
        if batch.offer(arch):
            return True
        known = history.trial_for_key(self.key(arch))
        if known is not None:
            if known.ok:
                study.tell(trial, known.value)
            else:
                study.tell(trial, state=failed)
        return False

    def _study(self, history: History, seed: int) -> Any:
        optuna = import_optuna()
        study = optuna.create_study(direction="maximize", sampler=self.sampler(seed))
        study.add_trials([self._frozen(t.arch, t.value if t.ok else None) for t in history])
        return study

    def _frozen(self, arch: Arch, value: float | None) -> Any:
        optuna = import_optuna()
        state = optuna.trial.TrialState
        return optuna.trial.create_trial(
            params={name: arch.ops[i] for i, name in enumerate(self._distributions)},
            distributions=self._distributions,
            value=value,
            state=state.COMPLETE if value is not None else state.FAIL,
        )


class TPESearch(OptunaSearch):
    """optuna TPE: multivariate, with the constant liar for batches."""

    name = "tpe"

    def __init__(
        self,
        space: SearchSpace,
        seed: Seed = 0,
        *,
        num_init: int = 10,
        max_retries: int = 20,
        n_ei_candidates: int = 24,
        multivariate: bool = True,
    ) -> None:
        super().__init__(space, seed, num_init=num_init, max_retries=max_retries)
        self.n_ei_candidates = option_int("n_ei_candidates", n_ei_candidates)
        self.multivariate = bool(multivariate)

    def sampler(self, seed: int) -> Any:
        return import_optuna().samplers.TPESampler(
            seed=seed,
            n_startup_trials=self.num_init,
            n_ei_candidates=self.n_ei_candidates,
            multivariate=self.multivariate,
            constant_liar=True,
        )


@contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Silence optuna's per-trial log lines and experimental-feature warnings for one ask."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
