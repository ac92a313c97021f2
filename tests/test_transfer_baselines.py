"""Transfer beside the free baselines on a validation table; meta-predictors that saw the target
are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_table

from diffusionnag.cli import main
from diffusionnag.evaluators.base import EvalResult
from diffusionnag.evaluators.nb201_valid import load_valid_table, package_key
from diffusionnag.search.history import History
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer import baselines
from diffusionnag.transfer.baselines import ValidationTruth, free_baselines, history_outcome
from diffusionnag.transfer.metadata import valid_meta_dataset

BUDGET = 5


@pytest.fixture(scope="module")
def truth() -> ValidationTruth:
    return ValidationTruth("cifar100")


@pytest.fixture(scope="module")
def full_fake_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 cell with made-up accuracies."""
    path = tmp_path_factory.mktemp("full") / "table.csv"
    return write_fake_table(path, len(NB201Space().enumerate()), seed=1)


@pytest.fixture(scope="module")
def cifar100_meta(full_fake_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meta") / "meta"
    argv = ["meta-train", "--table", str(full_fake_table), "--table-tasks", "cifar100",
            "--steps", "5", "--out", str(out), "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_truth_counts_each_computation_once(truth: ValidationTruth) -> None:
    assert len(truth.class_keys) == len(truth.truth) < 15625
    assert truth.rank(truth.best_class) == 1
    assert truth.rank(int(np.argmin(truth.truth))) == len(truth.class_keys)


def test_a_run_that_evaluates_the_best_cell_first_scores_one(truth: ValidationTruth) -> None:
    best = truth.representatives[truth.best_class]
    worst = truth.representatives[int(np.argmin(truth.truth))]
    history = History(truth.space)
    history.record(worst, EvalResult(1.0, "cifar100", "valid"))
    history.record(best, EvalResult(2.0, "cifar100", "valid"))
    outcome = history_outcome(truth, "run", history, BUDGET)
    assert outcome.evaluations_to_best == 2 and outcome.chosen_rank == 1
    missed = history_outcome(truth, "run", history.prefix(1), BUDGET)
    assert missed.evaluations_to_best is None and missed.chosen_rank == len(truth.class_keys)


def test_free_baselines_are_seeded_and_copying_a_source_is_its_order(
    truth: ValidationTruth,
) -> None:
    _, first = free_baselines("cifar100", 0, BUDGET, searches=False)
    _, again = free_baselines("cifar100", 0, BUDGET, searches=False)
    _, other = free_baselines("cifar100", 1, BUDGET, searches=False)
    assert first == again and first != other
    copied = {o.method: o for o in first}["copy cifar10-valid's order"]
    source = truth.class_means("cifar10-valid")
    assert copied.evaluations_to_best == 1 + int(np.sum(source > source[truth.best_class]))


def test_transfer_compares_with_baselines_on_a_validation_table(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = {**baselines.SEARCHED, "zc-synflow": ("synflow order", {"pool_size": 2})}
    monkeypatch.setattr(baselines, "SEARCHED", small)
    out = tmp_path / "run.json"
    argv = ["transfer", "--benchmark", "nb201-valid:cifar100", "--budget", "2", "--candidates",
            "4", "--steps", "5", "--round-samples", "50", "--compare-baselines", "--out",
            str(out), "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    methods = [row["method"] for row in json.loads(out.read_text())["baselines"]]
    assert methods[0] == "transfer" and "parameter-count order" in methods
    assert (
        "DiffusionNAG-BO from scratch" in methods
        and "synflow order" in methods
        and printed[-1].startswith("DiffusionNAG-BO")
    )
    # every method's pick marked among all cells, scored by the same truth
    assert (tmp_path / "run_reference.png").is_file()
    assert any(line.startswith("placement among the reference cells -> ") for line in printed)


def test_comparison_needs_a_validation_table(full_fake_table: Path, tmp_path: Path, capsys) -> None:
    argv = ["transfer", "--benchmark", "nb201:cifar10", "--table", str(full_fake_table),
            "--compare-baselines", "--out", str(tmp_path / "run.json"), "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    assert "needs an nb201-valid:<dataset> target" in capsys.readouterr().err


@pytest.mark.parametrize("benchmark", ["nb201:cifar100", "nb201-valid:cifar100"])
def test_a_meta_predictor_that_saw_the_target_table_is_refused(
    benchmark: str, cifar100_meta: Path, full_fake_table: Path, tmp_path: Path, capsys
) -> None:
    argv = ["transfer", "--benchmark", benchmark, "--table", str(full_fake_table),
            "--meta-predictor", str(cifar100_meta), "--out", str(tmp_path / "run.json"),
            "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "was meta-trained on nb201:cifar100" in err


def test_validation_tables_are_one_task_per_training_seed() -> None:
    dataset = valid_meta_dataset(["cifar100"])
    assert dataset.task_names == [f"nb201-valid:cifar100/seed{k}" for k in range(3)]
    assert [len(task.archs) for task in dataset.tasks] == [15625, 15625, 8169]
    table = load_valid_table("cifar100")
    for task in dataset.tasks:
        seed = int(task.name[-1])
        index = [0, 4000, len(task.archs) - 1]
        expected = [table[package_key(task.archs[i])]["val_acc"][seed] for i in index]
        assert task.values[index].tolist() == expected


def test_a_meta_predictor_that_saw_one_seed_of_the_target_is_refused(
    full_fake_table: Path, tmp_path: Path, capsys
) -> None:
    meta = tmp_path / "meta"
    argv = ["meta-train", "--table", str(full_fake_table), "--table-tasks", "cifar10",
            "--valid-tasks", "cifar100", "--steps", "3", "--out", str(meta), "--device", "cpu",
            "--quiet"]  # fmt: skip
    assert main(argv) == 0
    trained_on = json.loads((meta / "meta_predictor.json").read_text())["meta"]["tasks"]
    assert trained_on[0] == "nb201:cifar10" and len(trained_on) == 4
    capsys.readouterr()
    argv = ["transfer", "--benchmark", "nb201:cifar100", "--table", str(full_fake_table),
            "--meta-predictor", str(meta), "--out", str(tmp_path / "run.json"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "meta-trained on nb201-valid:cifar100/seed0, " in err
    assert main(["meta-train", "--out", str(tmp_path / "none")]) == 2
    assert "give --meta-dataset, or --table-tasks and/or --valid-tasks" in capsys.readouterr().err
