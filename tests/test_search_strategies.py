"""Contract tests for every registered search strategy, plus each strategy's own behaviour."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from strategy_options import FAST_OPTIONS

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.search.base import SearchStrategy
from diffusionnag.search.history import History
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy, standalone_strategies
from diffusionnag.search.strategies.acquisition import (
    acquisition_scores,
    expected_improvement,
    independent_thompson,
    mean_std,
    top_indices,
    upper_confidence_bound,
)
from diffusionnag.search.strategies.ensemble import features, fit_mlp_ensemble
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

BUDGET = 30


class CountingEvaluator(Evaluator):
    """A table evaluator that records every architecture it is asked about."""

    def __init__(self, table: NB201Table, dataset: str = "cifar10") -> None:
        self._inner = TableEvaluator(table, dataset)
        self.space_name = self._inner.space_name
        self.dataset = self._inner.dataset
        self.calls: list[Arch] = []

    def evaluate(self, arch: Arch) -> EvalResult:
        self.calls.append(arch)
        return self._inner.evaluate(arch)


def make(name: str, seed: int = 0) -> SearchStrategy:
    return get_strategy(name, NB201Space(), seed, **FAST_OPTIONS.get(name, {}))


def run(name: str, table: NB201Table, seed: int = 0, batch_size: int = 1) -> History:
    evaluator = CountingEvaluator(table)
    history = run_search(
        make(name, seed), evaluator, NB201Space(), BUDGET, batch_size=batch_size, progress=False
    )
    assert evaluator.calls == history.archs()
    return history


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("name", standalone_strategies())
def test_contract_budget_no_repeats_and_determinism(
    name: str, batch_size: int, nb201_table: NB201Table
) -> None:
    space = NB201Space()
    first = run(name, nb201_table, seed=0, batch_size=batch_size)
    keys = [space.canonical_key(a) for a in first.archs()]
    assert len(first) == BUDGET
    assert len(set(keys)) == BUDGET, "a canonical class was evaluated twice"
    assert [t.index for t in first] == list(range(BUDGET))
    again = run(name, nb201_table, seed=0, batch_size=batch_size)
    assert again.archs() == first.archs()
    np.testing.assert_array_equal(again.values(), first.values())
    other = run(name, nb201_table, seed=1, batch_size=batch_size)
    assert other.archs() != first.archs()


@pytest.mark.parametrize("name", standalone_strategies())
def test_ask_sees_only_space_and_history(name: str, nb201_table: NB201Table) -> None:
    """A hand-made history (with isomorphic duplicates in the space) is all ask needs."""
    space = NB201Space()
    strategy = make(name)
    assert not any(isinstance(v, Evaluator) for v in vars(strategy).values())
    history = History(space)
    accuracy = dict(zip(nb201_table.archs, nb201_table.accuracies("cifar10"), strict=True))
    for arch in space.sample(60, np.random.default_rng(5)):
        if not history.is_seen(arch):
            history.record(arch, EvalResult(accuracy[arch], "cifar10", "ori-test"))
    batch = strategy.ask(history, 7)
    keys = {space.canonical_key(a) for a in batch}
    assert len(batch) == 7 and len(keys) == 7
    assert not keys & history.seen_keys
    assert strategy.ask(history, 7) == batch, "ask must be a function of (seed, history, n)"


def test_registry_errors_list_names_and_options() -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="unknown search strategy 'nope'; known: bananas, "):
        get_strategy("nope", space)
    with pytest.raises(ValueError, match="valid: population_size, sample_size"):
        get_strategy("evolution", space, population=3)
    with pytest.raises(ValueError, match="sample_size=30 exceeds population_size=20"):
        get_strategy("evolution", space, sample_size=30)
    with pytest.raises(ValueError, match="acquisition='pi' is not valid; choose one of its, ei"):
        get_strategy("bananas", space, acquisition="pi")
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        get_strategy("random", space, -1)
    with pytest.raises(ValueError, match="n >= 1"):
        get_strategy("random", space).ask(History(space), 0)


def test_generator_seed_is_drawn_once() -> None:
    space = NB201Space()
    a = get_strategy("random", space, np.random.default_rng(3))
    b = get_strategy("random", space, np.random.default_rng(3))
    assert a.seed == b.seed and a.options() == {}
    assert get_strategy("evolution", space).options() == {"population_size": 20, "sample_size": 5}


def _hamming(a: Arch, b: Arch) -> int:
    return sum(x != y for x, y in zip(a.ops, b.ops, strict=True))


def test_evolution_children_mutate_the_population(nb201_table: NB201Table) -> None:
    history = run("evolution", nb201_table)
    strategy = make("evolution")
    population = history.archs()[-strategy.population_size :]
    for child in strategy.ask(history, 4):
        assert min(_hamming(child, member) for member in population) == 1


def test_local_search_walks_neighbours_of_the_best_start(nb201_table: NB201Table) -> None:
    history = run("local", nb201_table)
    start = history.prefix(10).best
    assert start is not None
    walked = history.archs()[10:20]
    assert all(_hamming(arch, start.arch) == 1 for arch in walked)


def test_bananas_candidates_stay_near_the_best(nb201_table: NB201Table) -> None:
    history = run("bananas", nb201_table)
    strategy = make("bananas")
    parents = [t.arch for t in history.top(strategy.num_parents)]
    pool = strategy.candidate_pool(
        history, strategy.new_batch(history, 1), np.random.default_rng(0)
    )
    assert len(pool) == strategy.num_candidates
    assert all(1 <= min(_hamming(c, p) for p in parents) <= strategy.max_edits for c in pool)


@pytest.mark.parametrize("acquisition", ["ei", "ucb"])
def test_bananas_acquisitions_run(acquisition: str, nb201_table: NB201Table) -> None:
    history = run("random", nb201_table)
    strategy = get_strategy("bananas", NB201Space(), 0, acquisition=acquisition, epochs=5)
    assert len(strategy.ask(history, 2)) == 2


@pytest.mark.parametrize("name", ["tpe", "optuna-gp"])
def test_optuna_strategies_without_optuna_name_the_extra(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ValueError, match=rf"the {name} strategy needs optuna: pip install"):
        get_strategy(name, NB201Space())


def test_expected_improvement_closed_form() -> None:
    mean = torch.tensor([1.0, 0.0, 3.0])
    std = torch.tensor([1.0, 0.0, 1e-12])
    ei = expected_improvement(mean, std, best=1.0)
    # At mean == best: std * pdf(0); with no spread: max(mean - best, 0).
    torch.testing.assert_close(ei, torch.tensor([0.3989423, 0.0, 2.0]))
    ucb = upper_confidence_bound(mean, torch.tensor([1.0, 2.0, 0.0]), kappa=2.0)
    torch.testing.assert_close(ucb, torch.tensor([3.0, 4.0, 3.0]))


def test_thompson_and_ranking_are_seeded() -> None:
    mean, std = mean_std(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    torch.testing.assert_close(std, torch.tensor([1.0, 0.0, 1.0]))
    draws = [independent_thompson(mean, std, torch.Generator().manual_seed(4)) for _ in range(2)]
    torch.testing.assert_close(draws[0], draws[1])
    assert draws[0][1] == 2.0
    assert top_indices(torch.tensor([0.5, 2.0, 2.0, 1.0]), 3) == [1, 2, 3]
    with pytest.raises(ValueError, match="unknown acquisition 'pi'; choose one of its, ei, ucb"):
        acquisition_scores("pi", mean, std, best=0.0, generator=torch.Generator())


def test_ensemble_learns_the_table_and_is_seeded(nb201_table: NB201Table) -> None:
    space = NB201Space()
    archs = nb201_table.archs
    values = torch.tensor(nb201_table.accuracies("cifar10"))
    order = np.random.default_rng(0).permutation(len(archs))
    train, test = order[:150], order[150:1150]
    x_train = features(space, [archs[i] for i in train])
    x_test = features(space, [archs[i] for i in test])
    fits = [
        fit_mlp_ensemble(
            x_train, values[train], generator=torch.Generator().manual_seed(0), epochs=60
        )
        for _ in range(2)
    ]
    mean, std = fits[0].mean_std(x_test)
    torch.testing.assert_close(mean, fits[1].mean_std(x_test)[0])
    assert mean.shape == std.shape == (1000,) and (std > 0).all()
    spearman = np.corrcoef(_ranks(mean.numpy()), _ranks(values[test].numpy()))[0, 1]
    assert spearman > 0.75


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(np.float64)
