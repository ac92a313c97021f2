"""The benchmark's clean protocol (select by validation, report test) and its CLI options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from diffusionnag.cli import main
from diffusionnag.evaluators import nb201_valid
from diffusionnag.evaluators.nb201_table import NB201Table
from diffusionnag.evaluators.nb201_valid import package_key
from diffusionnag.harness.harness import run_benchmark
from diffusionnag.harness.protocols import (
    chosen_test_at_time,
    chosen_test_curve,
    chosen_test_summary,
    eval_points,
    random_chosen_test,
    time_points,
)
from diffusionnag.search.history import History, Trial
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()


def _history(values: list[float], tests: list[float], times: list[float], seed: int) -> History:
    archs, seen = [], set()
    for arch in SPACE.sample(40, np.random.default_rng(seed)):
        if SPACE.canonical_key(arch) not in seen:
            seen.add(SPACE.canonical_key(arch))
            archs.append(arch)
    trials = [
        Trial(i, archs[i], v, {"test_accuracy": t, "train_time": s})
        for i, (v, t, s) in enumerate(zip(values, tests, times, strict=True))
    ]
    return History(SPACE, trials)


def test_the_chosen_cell_is_the_earliest_best_by_validation() -> None:
    curve = chosen_test_curve([math.nan, 70, 60, 70, 80, 75], [1, 20, 30, 40, 50, 60])
    assert np.isnan(curve[0]) and curve[1:].tolist() == [20, 20, 20, 50, 50]
    times = [1, 2, 3, 4, 5, 6]  # trials end at 1, 3, 6, 10, 15, 21 seconds
    at = [chosen_test_at_time(curve, times, s) for s in (0.5, 1, 3, 9.9, 15, 21, 21.5)]
    assert at == [None, None, 20, 20, 50, 50, None]  # nothing usable yet; run ended


def test_checkpoints_and_the_summary_of_hand_built_runs() -> None:
    assert eval_points(200) == [25, 50, 100, 200] and eval_points(30) == [25, 30]
    assert time_points(200) == [25, 50, 100] and time_points(30) == [15] and time_points(1) == []
    runs = [
        _history([60, 70, 65, 90], [91.0, 92.0, 93.0, 94.0], [1, 1, 1, 1], seed=0),
        _history([80, 70, 80, 85], [90.0, 95.0, 96.0, 93.5], [2, 2, 2, 2], seed=1),
        _history([50, 55, 40, 45], [89.0, 88.0, 99.0, 97.0], [1, 1, 5, 5], seed=2),
    ]
    row = chosen_test_summary(runs, budget=4, times={"2": 2.5, "3": 7.5})
    assert row["runs"] == 3 and set(row["test_at_evals"]) == {"4"}
    at_four = row["test_at_evals"]["4"]
    assert at_four["per_run"] == [94.0, 93.5, 88.0]
    assert (at_four["median"], at_four["q25"], at_four["q75"]) == (93.5, 90.75, 93.75)
    early = row["test_at_time"]["2"]  # 2.5 s: two, one and two trials done
    assert early["per_run"] == [92.0, 90.0, 88.0] and early["median"] == 90.0
    late = row["test_at_time"]["3"]  # 7.5 s: the first run ended at 4 s, so no median
    assert late["per_run"] == [None, 90.0, 88.0] and late["median"] is None
    assert late["runs_with_value"] == 2


def test_random_yardstick_by_hand() -> None:
    """Cell A (test 90) has validation values 1 and 3, cell B (test 80) has 2: the pairs weigh
    1/4, 1/2, 1/4, so after n draws the chosen cell's test is 90 with probability
    1 - (3/4)^n + (1/4)^n."""
    a, b = SPACE.sample(2, np.random.default_rng(0))
    table = NB201Table([a, b], {d: [90.0, 80.0] for d in ("cifar10", "cifar100", "ImageNet16-120")})
    data = {package_key(a): {"val_acc": [1.0, 3.0]}, package_key(b): {"val_acc": [2.0]}}
    expected = [90 - 10 * (0.75**n - 0.25**n) for n in (1, 2, 3)]
    assert random_chosen_test(data, table, "cifar100", 3) == pytest.approx(expected, abs=1e-12)


def _benchmark(out: Path, table: Path, *extra: str) -> list[str]:
    return ["benchmark", "--protocol", "valid", "--strategies", "random", "local", "evolution",
            "--datasets", "cifar10", "--seeds", "2", "--first-seed", "5", "--budget", "12",
            "--table", str(table), "--out", str(out), "--workers", "1",
            "--option", "evolution:population_size=4", "--option", "evolution:sample_size=2",
            *extra]  # fmt: skip


def test_valid_protocol_end_to_end_and_resumed(nb201_table_path: Path, tmp_path: Path, capsys):
    assert main(_benchmark(tmp_path, nb201_table_path)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    settings = summary["settings"]
    assert (settings["protocol"], settings["seeds"], settings["datasets"]) == (
        "valid", [5, 6], ["cifar10-valid"]
    )  # fmt: skip
    assert settings["strategy_options"] == {"evolution": {"population_size": 4, "sample_size": 2}}
    block = summary["datasets"]["cifar10-valid"]
    table = NB201Table.from_csv(nb201_table_path)
    assert block["test_dataset"] == "cifar10"
    assert block["test_optimum"]["value"] == table.optimum("cifar10")[1]
    assert block["time_checkpoints"] == {"6": pytest.approx(6 * block["mean_train_seconds"])}
    assert 0.3 * 3600 < block["mean_train_seconds"] < 0.7 * 3600
    assert 80 < block["random_expectation"]["12"] < table.optimum("cifar10")[1]
    for name in ("random", "local", "evolution"):
        row = block["strategies"][name]
        assert set(row["test_at_evals"]) == {"12"} and set(row["test_at_time"]) == {"6"}
        for seed, chosen in zip((5, 6), row["test_at_evals"]["12"]["per_run"], strict=True):
            journal = tmp_path / "runs" / "cifar10-valid" / name / f"seed{seed}.jsonl"
            trials = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
            best = max(trials, key=lambda t: (t["value"], -t["index"]))
            arch = SPACE.from_string(best["arch"])
            assert chosen == best["metrics"]["test_accuracy"] == table.accuracy(arch, "cifar10")
    markdown = (tmp_path / "summary.md").read_text()
    assert "| test@12 | test@" in markdown and "| E[random] | - |" in markdown
    assert (tmp_path / "chosen_test_cifar10-valid.png").read_bytes().startswith(b"\x89PNG")

    journal = tmp_path / "runs" / "cifar10-valid" / "local" / "seed6.jsonl"
    journal.write_text("\n".join(journal.read_text().splitlines()[:-5]) + "\n")  # killed
    assert main(_benchmark(tmp_path, nb201_table_path, "--resume", "--quiet")) == 0
    again = json.loads((tmp_path / "summary.json").read_text())["datasets"]["cifar10-valid"]
    for name, row in block["strategies"].items():
        for key in ("test_at_evals", "test_at_time"):
            assert again["strategies"][name][key] == row[key]
    assert len(journal.read_text().splitlines()) == 13
    capsys.readouterr()
    assert main(_benchmark(tmp_path, nb201_table_path)) == 2
    assert "6 run journal(s) already exist" in capsys.readouterr().err


def _error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("diffusionnag: error: ")
    return err


def test_benchmark_option_errors_name_the_option(tmp_path: Path, capsys) -> None:
    table = tmp_path / "absent.csv"  # every error comes before the table is read
    err = _error(_benchmark(tmp_path, table, "--stop-at-optimum"), capsys)
    assert "--stop-at-optimum needs --protocol table" in err
    for bad, message in (
        ("evolution", "--option 'evolution' is not of the form STRATEGY:NAME=VALUE"),
        ("pool=a:b", "--option 'pool=a:b' is not of the form STRATEGY:NAME=VALUE"),
        ("evolution:", "--option 'evolution:' is not of the form STRATEGY:NAME=VALUE"),
        ("tpe:n_startup=3", "--option 'tpe:n_startup=3' names strategy 'tpe', which is not"),
    ):
        assert message in _error(_benchmark(tmp_path, table, "--option", bad), capsys)
    assert "population_size" in _error(
        _benchmark(tmp_path, table, "--option", "evolution:population_size=many"), capsys
    )
    assert "must be >= 0" in _error(_benchmark(tmp_path, table, "--first-seed", "-1"), capsys)
    assert "invalid choice: 'test'" in _error(
        ["benchmark", "--protocol", "test", "--out", str(tmp_path)], capsys
    )
    assert not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match="unknown protocol 'x'; valid: table, valid"):
        run_benchmark(["random"], [0], ["cifar10"], 5, table, tmp_path, protocol="x")
    with pytest.raises(ValueError, match="stop_at_optimum needs protocol 'table'"):
        run_benchmark(["random"], [0], ["cifar10"], 5, table, tmp_path, protocol="valid",
                      stop_at_optimum=True)  # fmt: skip


def test_valid_protocol_without_the_package_is_one_line(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr(nb201_valid.importlib.util, "find_spec", lambda name: None)
    nb201_valid.load_valid_table.cache_clear()
    try:
        err = _error(_benchmark(tmp_path, tmp_path / "absent.csv"), capsys)
    finally:
        nb201_valid.load_valid_table.cache_clear()
    assert "pip install 'diffusionnag[nb201-valid]'" in err
    assert not (tmp_path / "runs").exists()


def test_table_protocol_takes_first_seed_and_options(nb201_table_path: Path, tmp_path: Path):
    argv = ["benchmark", "--strategies", "random", "evolution", "--datasets", "cifar100",
            "--seeds", "2", "--first-seed", "3", "--budget", "6", "--table",
            str(nb201_table_path), "--out", str(tmp_path), "--workers", "1", "--quiet",
            "--option", "evolution:population_size=3",
            "--option", "evolution:sample_size=2"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["seeds"] == [3, 4] and summary["settings"]["protocol"] == "table"
    assert summary["settings"]["strategy_options"] == {
        "evolution": {"population_size": 3, "sample_size": 2}
    }
    assert set(summary["datasets"]["cifar100"]["strategies"]["random"]["best_so_far_median"]) == {
        "6"
    }
    header = json.loads(
        (tmp_path / "runs/cifar100/evolution/seed4.jsonl").read_text().split("\n")[0]
    )
    assert header["seed"] == 4 and header["options"]["population_size"] == 3
    assert (tmp_path / "best_so_far_cifar100.png").exists()
