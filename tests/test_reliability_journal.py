"""Journals that cannot be corrupted, outputs with normal permissions, and the executors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import write_fake_table

from diffusionnag.cli import main
from diffusionnag.evaluators.datasets import load_digits
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.evaluators.training import TrainingEvaluator
from diffusionnag.execution import InProcessExecutor, LocalPoolExecutor
from diffusionnag.harness.harness import run_benchmark
from diffusionnag.io import atomic_write
from diffusionnag.predictors.data import load_pairs
from diffusionnag.pretrained import SHIPPED
from diffusionnag.search.history import History
from diffusionnag.search.job import plot_history
from diffusionnag.search.journal import open_journal
from diffusionnag.search.run import run_header, run_search
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 cell with made-up accuracies."""
    return write_fake_table(tmp_path_factory.mktemp("table") / "table.csv", 15625, seed=0)


@pytest.fixture(scope="module")
def table(table_path: Path) -> NB201Table:
    return NB201Table.from_csv(table_path)


def _header(table: NB201Table, budget: int = 5) -> dict:
    strategy = get_strategy("random", SPACE, 0)
    return run_header(strategy, TableEvaluator(table, "cifar10"), SPACE, budget, 1)


def _search(table: NB201Table, journal: Path, budget: int = 5, **kwargs) -> History:
    strategy = get_strategy("random", SPACE, 0)
    evaluator = TableEvaluator(table, "cifar10")
    return run_search(
        strategy, evaluator, SPACE, budget, journal_path=journal, progress=False, **kwargs
    )


def test_second_writer_is_refused_with_the_holders_pid(table: NB201Table, tmp_path: Path):
    path = tmp_path / "run.jsonl"
    journal, _ = open_journal(path, _header(table), SPACE, resume=False)
    with journal:
        assert (tmp_path / "run.jsonl.lock").read_text() == str(os.getpid())
        with pytest.raises(
            ValueError, match=rf"run.jsonl is being written by process {os.getpid()}"
        ):
            open_journal(path, _header(table), SPACE, resume=True)
    assert not (tmp_path / "run.jsonl.lock").exists()  # released and tidied on close
    again, trials = open_journal(path, _header(table), SPACE, resume=True)
    again.close()
    assert trials == []


def test_append_must_be_the_next_index(table: NB201Table, tmp_path: Path) -> None:
    history = _search(table, tmp_path / "first.jsonl", budget=3)
    journal, _ = open_journal(tmp_path / "run.jsonl", _header(table), SPACE, resume=False)
    with journal:
        journal.append(history[0])
        with pytest.raises(ValueError, match="trial index 2 appended, expected 1"):
            journal.append(history[2])
    lines = (tmp_path / "run.jsonl").read_text().splitlines()
    assert [json.loads(line).get("index") for line in lines] == [None, 0]


def test_torn_header_starts_afresh(table: NB201Table, tmp_path: Path) -> None:
    whole = _search(table, tmp_path / "whole.jsonl")
    journal = tmp_path / "run.jsonl"
    journal.write_text(json.dumps({"type": "header", **_header(table)})[:25])  # killed mid-line
    resumed = _search(table, journal, resume=True)
    assert resumed.archs() == whole.archs()
    lines, whole_lines = (
        journal.read_text().splitlines(),
        (tmp_path / "whole.jsonl").read_text().splitlines(),
    )
    assert len(lines) == len(whole_lines) == 6 and lines[0] == whole_lines[0]


def test_header_records_the_training_protocol(table: NB201Table, tmp_path: Path) -> None:
    data = load_digits(seed=3)
    strategy = get_strategy("random", SPACE, 0)
    one = TrainingEvaluator(data, TrainConfig(epochs=1, device="cpu"))
    header = run_header(strategy, one, SPACE, 4, 1)
    protocol = header["protocol"]
    assert protocol["train"]["epochs"] == 1 and protocol["train"]["cells_per_stage"] == 1
    assert protocol["data"] == {
        "name": "digits",
        "split_seed": 3,
        "sizes": [len(data.train), len(data.valid), len(data.test)],
        "resolution": 8,
        "skipped_files": 0,
    }
    assert protocol["device"] == "cpu" and header["version"]
    path = tmp_path / "run.jsonl"
    open_journal(path, header, SPACE, resume=False)[0].close()
    three = TrainingEvaluator(data, TrainConfig(epochs=3, device="cpu"))
    with pytest.raises(ValueError, match=r"different settings \(protocol: journal"):
        open_journal(path, run_header(strategy, three, SPACE, 4, 1), SPACE, resume=True)


def test_stale_temporaries_are_removed_and_others_kept(tmp_path: Path) -> None:
    stale = tmp_path / ".run.json.k2j_x9a0.tmp"  # mkstemp's 8 characters: a killed write
    other = tmp_path / ".run.json.old.abcdefgh.tmp"  # a temporary of run.json.old
    stale.write_text("half")
    other.write_text("half")
    atomic_write(tmp_path / "run.json", lambda path: path.write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "run.json"]


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_respect_the_umask(
    table: NB201Table, table_path: Path, tmp_path: Path, umask: int
) -> None:
    previous = os.umask(umask)
    try:
        history = _search(table, tmp_path / "run.jsonl")
        plot_history(history, tmp_path / "run.png", "random on nb201:cifar10")
        run_benchmark(
            ["random"], [0], ["cifar10"], 3, table_path, tmp_path / "bench", progress=False
        )
    finally:
        os.umask(previous)
    names = ["run.jsonl", "run.result.json", "run.png"]
    names += [f"bench/{name}" for name in ("summary.json", "summary.md", "best_so_far_cifar10.png")]
    names += [f"bench/runs/cifar10/random/seed0.{kind}" for kind in ("jsonl", "result.json")]
    for name in names:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_search_plot_does_not_claim_a_table_optimum(table: NB201Table, tmp_path: Path) -> None:
    figure = plot_history(_search(table, tmp_path / "run.jsonl"), tmp_path / "run.png", "r on x")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "evaluated cells" in labels and "table optimum" not in labels


def test_load_pairs_reads_a_journal_like_its_result(table: NB201Table, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    history = _search(table, journal)
    with journal.open("a") as handle:
        handle.write('{"type": "trial", "ind')  # a run still writing: torn last line
    from_journal = load_pairs(journal, SPACE)
    from_result = load_pairs(tmp_path / "run.result.json", SPACE)
    assert from_journal[0] == from_result[0] == history.archs()
    assert from_journal[1].tolist() == from_result[1].tolist() == history.values().tolist()


@pytest.mark.parametrize("checkpoint", [None, "nb201"])
def test_generate_uses_the_shipped_model_by_name(tmp_path: Path, checkpoint: str | None):
    out = tmp_path / "gen.json"
    name = ["--checkpoint", checkpoint] if checkpoint else []
    argv = ["generate", *name, "--out", str(out), "--num", "2", "--steps", "2", "--quiet"]
    assert main([*argv, "--device", "cpu"]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["checkpoint"] == str((SHIPPED / "score-nb201").resolve())
    assert len(report["cells"]) == 2


def _report(channel, values: list[int]) -> int:
    for value in values:
        channel.put(("value", value))
    if not values:
        raise ValueError("nothing to report")
    return sum(values)


@pytest.mark.parametrize("make", [InProcessExecutor, lambda: LocalPoolExecutor(2)])
def test_executors_deliver_messages_results_and_errors(make) -> None:
    executor = make()
    received: list[tuple[str, int]] = []
    try:
        channel = executor.channel(received.append)
        jobs = [executor.submit(_report, channel, list(range(k, k + 3))) for k in (0, 10)]
        failing = executor.submit(_report, channel, [])
        assert sorted(f.result() for f in executor.as_completed(jobs)) == [3, 33]
        with pytest.raises(ValueError, match="nothing to report"):
            failing.result()
        for _ in range(100):
            channel.drain(timeout=0.05)
            if len(received) == 6:
                break
    finally:
        executor.shutdown()
    values = [value for _, value in received]
    assert sorted(values) == [0, 1, 2, 10, 11, 12]
    assert [v for v in values if v < 10] == [0, 1, 2]  # in order per job
