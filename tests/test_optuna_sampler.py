"""DiffusionNAGSampler in Optuna studies: reproducible, never repeats a cell (threads, processes),
agrees with the DiffusionNAG-BO strategy it adapts, and leaves foreign parameters to random."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from strategy_options import FAST_OPTIONS

from diffusionnag.evaluators.base import EvalResult
from diffusionnag.integrations.optuna import (
    CLAIM_ATTR,
    DiffusionNAGSampler,
    arch_params,
    suggest_arch,
)
from diffusionnag.integrations.optuna_space import ABSENT
from diffusionnag.search.history import History
from diffusionnag.search.strategies.diffusionnag_bo import DiffusionNAGBO
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import MBV3Space
from diffusionnag.spaces.nb201 import NB201Space

REPO_ROOT = Path(__file__).resolve().parents[1]
# Six random cells, then the model: a test sees several refits in a few seconds.
OPTIONS = {**FAST_OPTIONS["diffusionnag-bo"], "num_init": 6}
WEIGHTS = np.array([0.0, 0.3, 0.7, 1.0, 0.2])
"""Made-up per-operation worth (none, skip, 1x1, 3x3, pool) of a synthetic objective."""

optuna.logging.set_verbosity(optuna.logging.WARNING)


def score(arch: Arch) -> float:
    """A deterministic objective with a unique best cell (all 3x3 convolutions)."""
    return float(WEIGHTS[list(arch.ops)].sum() + 0.01 * arch.ops[0])


def nb201_objective(trial: optuna.Trial) -> float:
    return score(suggest_arch(trial, "nb201"))


def run_study(seed: int, n_trials: int, n_jobs: int = 1, **options: object) -> optuna.Study:
    sampler = DiffusionNAGSampler("nb201", seed=seed, **{**OPTIONS, **options})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_objective, n_trials=n_trials, n_jobs=n_jobs)
    return study


def cells(study: optuna.Study) -> list[Arch]:
    params = arch_params("nb201")
    return [params.from_params(t.params) for t in study.trials]


def keys(study: optuna.Study) -> list[str]:
    return [NB201Space().canonical_key(a) for a in cells(study)]


def test_a_study_is_the_strategy_it_adapts_and_reproducible() -> None:
    space = NB201Space()
    strategy = DiffusionNAGBO(space, 3, **OPTIONS)
    history = History(space)
    for _ in range(10):
        (arch,) = strategy.ask(history, 1)
        history.record(arch, EvalResult(score(arch), dataset="synthetic", split="test"))
    first, again, other = run_study(3, 10), run_study(3, 10), run_study(4, 10)
    assert cells(first) == history.archs()
    assert cells(again) == cells(first)
    assert cells(other) != cells(first)


def test_minimising_the_negated_objective_proposes_the_same_cells() -> None:
    sampler = DiffusionNAGSampler("nb201", seed=3, **OPTIONS)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.optimize(lambda t: -nb201_objective(t), n_trials=10)
    assert cells(study) == cells(run_study(3, 10))


def test_no_canonical_key_is_proposed_twice_and_the_claim_matches_the_params() -> None:
    study = run_study(0, 30)
    assert len(set(keys(study))) == 30
    space = NB201Space()
    assert [t.system_attrs[CLAIM_ATTR] for t in study.trials] == [
        space.to_string(a) for a in cells(study)
    ]


def test_two_threads_share_a_study_without_duplicates() -> None:
    study = run_study(0, 16, n_jobs=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 16
    assert len(set(keys(study))) == 16


def test_a_cell_claimed_by_another_samplers_running_trial_is_not_handed_out() -> None:
    storage = optuna.storages.InMemoryStorage()
    studies = [
        optuna.create_study(
            storage=storage,
            study_name="shared",
            load_if_exists=True,
            sampler=DiffusionNAGSampler("nb201", seed=0, **OPTIONS),
        )
        for _ in range(2)
    ]
    running = [study.ask() for study in studies]  # same seed, same history: same first choice
    archs = [suggest_arch(trial, "nb201") for trial in running]
    space = NB201Space()
    assert space.canonical_key(archs[0]) != space.canonical_key(archs[1])


def test_a_cell_claimed_between_reading_and_claiming_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another process claims our cell just as we write our claim: we re-read and take another."""
    storage = optuna.storages.InMemoryStorage()
    sampler = DiffusionNAGSampler("nb201", seed=0, **OPTIONS)
    study = optuna.create_study(storage=storage, sampler=sampler)
    write = storage.set_trial_system_attr
    raced: list[str] = []

    def racing_write(trial_id: int, key: str, value: object) -> None:
        write(trial_id, key, value)
        if key == CLAIM_ATTR and not raced:
            raced.append(str(value))
            write(storage.create_new_trial(study._study_id), CLAIM_ATTR, value)

    monkeypatch.setattr(storage, "set_trial_system_attr", racing_write)
    arch = suggest_arch(study.ask(), "nb201")
    space = NB201Space()
    assert space.canonical_key(arch) != space.canonical_key(space.from_string(raced[0]))


def test_a_cell_enqueued_for_a_waiting_trial_is_not_handed_to_another() -> None:
    space = NB201Space()
    preview = optuna.create_study(sampler=DiffusionNAGSampler("nb201", seed=0, num_init=50))
    wanted = suggest_arch(preview.ask(), "nb201")  # what the sampler hands out first
    study = optuna.create_study(sampler=DiffusionNAGSampler("nb201", seed=0, num_init=50))
    study.enqueue_trial(arch_params("nb201").to_params(wanted))
    running = optuna.Trial(study, study._storage.create_new_trial(study._study_id))
    assert space.canonical_key(suggest_arch(running, "nb201")) != space.canonical_key(wanted)


def test_a_pickled_sampler_proposes_what_the_original_would() -> None:
    studies = []
    for sampler in (
        DiffusionNAGSampler("nb201", seed=5, num_init=50),
        pickle.loads(pickle.dumps(DiffusionNAGSampler("nb201", seed=5, num_init=50))),
    ):
        studies.append(optuna.create_study(sampler=sampler))
        studies[-1].optimize(nb201_objective, n_trials=5)
    assert cells(studies[0]) == cells(studies[1])


def open_storage(kind: str, path: str) -> optuna.storages.BaseStorage:
    """A storage several processes can share: a journal file or an SQLite database."""
    if kind == "journal":
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    engine = {"connect_args": {"timeout": 60}}  # wait for the other process' write lock
    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs=engine)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_two_processes_sharing_a_storage_never_evaluate_one_cell_twice(
    tmp_path: Path, kind: str
) -> None:
    path = str(tmp_path / "study.db")
    script = textwrap.dedent(
        f"""
        import sys
        import time
        import optuna
        sys.path.insert(0, "tests")
        from test_optuna_sampler import open_storage
        from diffusionnag.integrations.optuna import DiffusionNAGSampler, suggest_arch
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # The same seed in both processes: both want the same cell for every history.
        sampler = DiffusionNAGSampler("nb201", seed=0, num_init=100)
        storage = open_storage({kind!r}, {path!r})
        study = optuna.load_study(study_name="shared", storage=storage, sampler=sampler)
        def objective(trial):
            suggest_arch(trial, "nb201")
            time.sleep(0.01)
            return 0.0
        study.optimize(objective, n_trials=12)
        """
    )
    storage = open_storage(kind, path)
    optuna.create_study(storage=storage, study_name="shared")
    workers = [
        subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()
    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 24
    assert len(set(keys(study))) == 24


def test_parameters_outside_the_space_are_sampled_independently() -> None:
    sampler = DiffusionNAGSampler("nb201", seed=0, **OPTIONS)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        rate = trial.suggest_float("rate", 1e-4, 1e-1, log=True)
        # Same name as an architecture parameter, other choices: not ours, so random too.
        width = trial.suggest_categorical("edge_0_1", [16, 32])
        depth = trial.suggest_int("depth", 1, 3)
        return rate * width * depth

    study.optimize(objective, n_trials=12)
    rates = [t.params["rate"] for t in study.trials]
    assert all(1e-4 <= r <= 1e-1 for r in rates) and len(set(rates)) == 12
    assert {t.params["edge_0_1"] for t in study.trials} == {16, 32}
    assert {t.params["depth"] for t in study.trials} <= {1, 2, 3}
    assert not any(CLAIM_ATTR in t.system_attrs for t in study.trials)


def test_a_mixed_study_takes_the_cell_from_the_sampler_and_the_rest_at_random() -> None:
    sampler = DiffusionNAGSampler("nb201", seed=0, **OPTIONS)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return nb201_objective(trial) * trial.suggest_float("scale", 0.5, 1.0)

    study.optimize(objective, n_trials=12)
    space = NB201Space()
    claims = [space.from_string(t.system_attrs[CLAIM_ATTR]) for t in study.trials]
    assert claims == cells(study)
    assert len(set(keys(study))) == 12
    assert all(0.5 <= t.params["scale"] <= 1.0 for t in study.trials)


def test_nb201_parameters_are_the_six_edges_over_the_operation_names() -> None:
    params = arch_params(NB201Space())
    assert params.names == ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3")
    cell = NB201Space().from_string(
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    )
    assert params.to_params(cell)["edge_1_3"] == "nor_conv_1x1"
    assert params.from_params(params.to_params(cell)) == cell


def test_mbv3_parameters_round_trip_with_explicit_absent_slots() -> None:
    space = MBV3Space()
    params = arch_params("mbv3")
    assert len(params.names) == 20 and params.names[6] == "stage2_layer3"
    assert [ABSENT in labels for labels in params.labels[:4]] == [False, False, True, True]
    for arch in space.sample(50, np.random.default_rng(0)):
        assert params.from_params(params.to_params(arch)) == arch
    shallow = space.from_string("k3e4-k5e6/k7e3-k3e3/k3e3-k3e3/k5e6-k5e6/k7e4-k3e6")
    assert params.to_params(shallow)["stage1_layer3"] == ABSENT
    broken = {**params.to_params(shallow), "stage1_layer4": "k3_e3"}
    with pytest.raises(ValueError, match="stage 1"):
        params.from_params(broken)


def test_an_mbv3_study_gets_valid_distinct_subnets() -> None:
    space = MBV3Space()
    sampler = DiffusionNAGSampler(space, seed=0, num_init=50)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(sum(suggest_arch(t, space).ops)), n_trials=8)
    archs = [arch_params(space).from_params(t.params) for t in study.trials]
    assert len({space.to_string(a) for a in archs}) == 8


def test_bad_sampler_options_are_errors_naming_them() -> None:
    with pytest.raises(ValueError, match="unknown search space 'nb301'"):
        DiffusionNAGSampler("nb301")
    with pytest.raises(ValueError, match="batch_size"):
        DiffusionNAGSampler("nb201", batch_size=0)
    with pytest.raises(ValueError, match=r"epochz .*valid: num_init"):
        DiffusionNAGSampler("nb201", epochz=3)


@pytest.mark.parametrize("space", [5, None, 3.0, ["nb201"]])
def test_a_space_that_is_no_space_is_refused_naming_the_valid_ones(space: object) -> None:
    with pytest.raises(ValueError, match=r"one of the names nb201, mbv3 .*got "):
        DiffusionNAGSampler(space)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"one of the names nb201, mbv3"):
        suggest_arch(optuna.trial.FixedTrial({}), space)  # type: ignore[arg-type]


def _suggest_other_choices(trial: optuna.Trial) -> float:
    return float(trial.suggest_categorical("edge_1_2", [16, 32]))


@pytest.mark.parametrize("sampler", ["random", "diffusionnag"])
def test_parameters_already_in_the_study_with_other_choices_are_named(sampler: str) -> None:
    chosen = optuna.samplers.RandomSampler(seed=0)
    if sampler == "diffusionnag":
        chosen = DiffusionNAGSampler("nb201", seed=0, **OPTIONS)
    study = optuna.create_study(direction="maximize", sampler=chosen)
    study.optimize(_suggest_other_choices, n_trials=2)
    with pytest.raises(ValueError) as error:
        study.optimize(nb201_objective, n_trials=1)
    message = str(error.value)
    assert "parameter 'edge_1_2' is already in this study (trial 0)" in message
    assert "give your own parameter another name, or start a new study" in message
    assert [t.state for t in study.trials[2:]] == [optuna.trial.TrialState.FAIL]


@pytest.mark.parametrize(
    ("sampler_space", "objective_space"), [("nb201", "mbv3"), ("mbv3", "nb201")]
)
def test_a_sampler_and_an_objective_of_different_spaces_are_refused(
    sampler_space: str, objective_space: str
) -> None:
    sampler = DiffusionNAGSampler(sampler_space, seed=0, num_init=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.raises(ValueError) as error:
        study.optimize(lambda t: float(sum(suggest_arch(t, objective_space).ops)), n_trials=1)
    message = str(error.value)
    assert f"DiffusionNAGSampler is for {sampler_space!r}" in message
    assert f"DiffusionNAGSampler({objective_space!r})" in message
    assert f"suggest_arch(trial, {sampler_space!r})" in message
