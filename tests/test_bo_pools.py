"""DiffusionNAG-BO's candidate pools (the acquisition-optimiser ablation) and its flat-cost fit."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from strategy_options import FAST_OPTIONS

from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.metrics import rank_correlations
from diffusionnag.predictors import noise_aware
from diffusionnag.predictors.noise_aware import train_noise_aware_ensemble
from diffusionnag.predictors.objective import PredictorConfig
from diffusionnag.search.history import History
from diffusionnag.search.strategies import get_strategy
from diffusionnag.search.strategies.diffusionnag_bo import (
    CleanRanking,
    DiffusionNAGBO,
    NoiseAwareRanking,
)
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()
OPTIONS = FAST_OPTIONS["diffusionnag-bo"]


def table_history(table: NB201Table, size: int, seed: int = 0) -> History:
    history = History(SPACE)
    rng = np.random.default_rng(seed)
    while len(history) < size:
        arch = SPACE.sample(1, rng)[0]
        if not history.is_seen(arch):
            history.record(arch, table.query(arch, dataset="cifar10"))
    return history


def edits_to_parents(arch: Arch, parents: list[Arch]) -> int:
    return min(sum(a != b for a, b in zip(arch.ops, p.ops, strict=True)) for p in parents)


def pool_of(pool: str, history: History) -> tuple[DiffusionNAGBO, list[Arch]]:
    strategy = get_strategy("diffusionnag-bo", SPACE, 0, **{**OPTIONS, "pool": pool})
    assert isinstance(strategy, DiffusionNAGBO)
    rng = np.random.default_rng(1)
    return strategy, strategy.candidate_pool(strategy.fit_surrogate(history, rng), history, rng)


@pytest.mark.parametrize("pool", ["random", "mutation", "mix", "diffusion", "hybrid"])
def test_every_pool_holds_distinct_unseen_cells(pool: str, nb201_table: NB201Table) -> None:
    history = table_history(nb201_table, 30)
    strategy, cells = pool_of(pool, history)
    keys = {SPACE.canonical_key(a) for a in cells}
    assert len(keys) == len(cells) and not keys & history.seen_keys
    parents = [t.arch for t in history.top(strategy.num_parents)]
    if pool == "diffusion":
        assert 0 < len(cells) <= strategy.pool_size  # invalid samples are dropped
        return
    if pool == "hybrid":  # every mutant is in the pool, added or already generated
        near = sum(edits_to_parents(a, parents) <= strategy.max_edits for a in cells)
        assert strategy.pool_size // 2 <= near < len(cells) <= strategy.pool_size
        return
    assert len(cells) == strategy.pool_size
    mutants = {"random": 0, "mutation": len(cells), "mix": strategy.pool_size // 2}[pool]
    assert all(1 <= edits_to_parents(a, parents) <= strategy.max_edits for a in cells[:mutants])
    # A uniform cell is within 2 edits of one of 10 parents with probability below 0.17.
    assert sum(edits_to_parents(a, parents) <= 2 for a in cells[mutants:]) < 0.3 * len(cells)


def test_pool_option_is_validated_and_in_the_journal_options() -> None:
    with pytest.raises(
        ValueError, match="option pool='best' is not valid; choose one of diffusion"
    ):
        get_strategy("diffusionnag-bo", SPACE, pool="best")
    assert get_strategy("diffusionnag-bo", SPACE).options()["pool"] == "diffusion"
    ablation = get_strategy("bo-pool-mix", SPACE, 0, **OPTIONS)
    assert ablation.options() == {
        **get_strategy("diffusionnag-bo", SPACE, 0, **OPTIONS).options(),
        "pool": "mix",
    }
    assert get_strategy("bo-pool-random", SPACE, pool="random").options()["pool"] == "random"
    with pytest.raises(ValueError, match="'bo-pool-random' is DiffusionNAG-BO with pool=random"):
        get_strategy("bo-pool-random", SPACE, pool="mutation")
    with pytest.raises(
        ValueError,
        match=r"option\(s\) epochs for search strategy .bo-pool-mutation.; valid: num_init",
    ):
        get_strategy("bo-pool-mutation", SPACE, epochs=5)


def test_ablation_matches_diffusionnag_bo_with_the_same_pool(nb201_table: NB201Table) -> None:
    history = table_history(nb201_table, 25)
    by_name = get_strategy("bo-pool-mutation", SPACE, 3, **OPTIONS)
    by_option = get_strategy("diffusionnag-bo", SPACE, 3, **{**OPTIONS, "pool": "mutation"})
    assert by_name.ask(history, 3) == by_option.ask(history, 3)
    other = get_strategy("bo-pool-random", SPACE, 3, **OPTIONS)
    assert other.ask(history, 3) != by_option.ask(history, 3)


def test_fit_takes_fit_steps_minibatch_steps_at_any_history(
    nb201_table: NB201Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    members_call = noise_aware._members_call

    def counting(*args: object) -> torch.Tensor:
        calls.append(1)
        return members_call(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(noise_aware, "_members_call", counting)
    strategy = get_strategy("diffusionnag-bo", SPACE, 0, members=2, fit_steps=7)
    assert isinstance(strategy, DiffusionNAGBO)
    for size in (20, 200):
        calls.clear()
        trials = list(table_history(nb201_table, size))
        archs, values = [t.arch for t in trials], np.array([t.value for t in trials])
        strategy.fit_noise_aware_ensemble(archs, values, np.random.default_rng(0))
        assert len(calls) == 7, f"history {size}"


def test_train_noise_aware_ensemble_steps_continue_the_passes_of_epochs(
    nb201_table: NB201Table,
) -> None:
    """``steps`` equal to the epochs' step count is the same fit; fewer is another one."""
    history = table_history(nb201_table, 40)
    archs, values = history.archs(), history.values()
    sde = get_strategy("diffusionnag-bo", SPACE).score_model_for_space().sde  # type: ignore[attr-defined]
    config = PredictorConfig(hidden=8, layers=1, epochs=3, batch_size=16, seed=2)

    def fit(steps: int | None) -> np.ndarray:
        ensemble = train_noise_aware_ensemble(
            SPACE, sde, archs, values, config, members=2, device="cpu", steps=steps
        )
        return ensemble.member_predictions(archs[:10])

    by_epochs = fit(None)
    np.testing.assert_array_equal(fit(9), by_epochs)  # 3 epochs x 3 batches of 16 of 40
    assert not np.array_equal(fit(8), by_epochs)
    with pytest.raises(ValueError, match="at least one step, got 0"):
        fit(0)


def test_optimistic_guide_adds_the_members_spread(nb201_table: NB201Table) -> None:
    history = table_history(nb201_table, 20)
    strategy = get_strategy(
        "diffusionnag-bo", SPACE, 0, **{**OPTIONS, "guide": "ucb", "kappa": 2.0}
    )
    assert isinstance(strategy, DiffusionNAGBO)
    surrogate = strategy.fit_surrogate(history, np.random.default_rng(0))
    (objective_,) = surrogate.guidance
    x = SPACE.encode(SPACE.sample(16, np.random.default_rng(3)))
    t = torch.full((16,), 0.5)
    members = objective_.predictor.noise_aware.member_outputs(x, t)
    expected = members.mean(0) + 2.0 * members.std(0, unbiased=False)
    assert torch.allclose(objective_.predictor.standardised(x, t), expected)
    assert (members.std(0) > 0).all()
    with pytest.raises(ValueError, match="option guide='best' is not valid"):
        get_strategy("diffusionnag-bo", SPACE, guide="best")
    with pytest.raises(ValueError, match="option kappa must be a finite number >= 0"):
        get_strategy("diffusionnag-bo", SPACE, kappa=-1.0)


def test_clean_ranker_ranks_by_an_ensemble_fitted_on_clean_cells(nb201_table: NB201Table) -> None:
    history = table_history(nb201_table, 40)
    archs, values = [t.arch for t in history], np.array([t.value for t in history])
    held_out = [t for t in table_history(nb201_table, 60, seed=7) if not history.is_seen(t.arch)]
    unseen = [t.arch for t in held_out]
    surrogate = get_strategy("diffusionnag-bo", SPACE, 0, **OPTIONS).fit_surrogate(
        history, np.random.default_rng(1)
    )
    assert isinstance(surrogate.ranking, CleanRanking)
    mean, std = surrogate.mean_std(unseen)
    assert mean.shape == std.shape == (len(unseen),) and bool((std > 0).all())
    # It follows the evaluated cells closely (what the acquisition exploits) and still ranks
    # cells it never saw.
    assert rank_correlations(surrogate.mean_std(archs)[0].numpy(), values)["spearman"] > 0.98
    true = np.array([t.value for t in held_out])
    assert rank_correlations(mean.numpy(), true)["spearman"] > 0.5
    noise_aware = get_strategy("diffusionnag-bo", SPACE, 0, **OPTIONS, ranker="noise-aware")
    plain = noise_aware.fit_surrogate(history, np.random.default_rng(1))
    assert isinstance(plain.ranking, NoiseAwareRanking)
    expected = torch.tensor(plain.ranking.noise_aware.member_predictions(unseen)).mean(0)
    torch.testing.assert_close(plain.mean_std(unseen)[0], expected)
    with pytest.raises(ValueError, match="ranker"):
        get_strategy("diffusionnag-bo", SPACE, 0, ranker="gp")


def test_surrogate_networks_follow_their_options(nb201_table: NB201Table) -> None:
    """Width, depth and training length of both surrogates are options (so journals record
    them); their defaults are what the strategy fitted before they were options."""
    history = table_history(nb201_table, 20)
    options = {**OPTIONS, "ranker": "noise-aware", "hidden": 8, "layers": 1, "clean_epochs": 3}
    strategy = get_strategy("diffusionnag-bo", SPACE, 0, **options)
    assert isinstance(strategy, DiffusionNAGBO)
    surrogate = strategy.fit_surrogate(history, np.random.default_rng(0))
    assert isinstance(surrogate.ranking, NoiseAwareRanking)
    widths = {tuple(p.shape[-2:]) for p in surrogate.ranking.noise_aware.params.values()}
    assert (8, 8) in widths and not any(32 in shape for shape in widths)
    clean = get_strategy("diffusionnag-bo", SPACE, 0, **{**options, "ranker": "clean"})
    ranking = clean.fit_surrogate(history, np.random.default_rng(0)).ranking
    assert isinstance(ranking, CleanRanking)
    assert [w.shape[-1] for w in ranking.ensemble.network.weights] == [8, 1]
    defaults = get_strategy("diffusionnag-bo", SPACE).options()
    assert {k: defaults[k] for k in ("hidden", "layers", "fit_batch_size", "clean_epochs")} == {
        "hidden": 32,
        "layers": 2,
        "fit_batch_size": 64,
        "clean_epochs": 100,
    }
    for option, value, message in [
        ("hidden", 0, "option hidden must be an int in [1, 4096], got 0"),
        ("fit_lr", 0.0, "option fit_lr must be a finite number > 0, got 0.0"),
        ("cost_cells", 1, "option cost_cells must be an int >= 2, got 1"),
        ("clean_lr", float("nan"), "option clean_lr must be a finite number > 0, got nan"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            get_strategy("diffusionnag-bo", SPACE, **{option: value})
