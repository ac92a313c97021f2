"""The run loop: budget, journal, resume, failed evaluations, history serialisation."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from strategy_options import FAST_OPTIONS

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.nb201_table import NB201Table, TableEvaluator
from diffusionnag.search.history import History
from diffusionnag.search.run import run_search
from diffusionnag.search.strategies import get_strategy, standalone_strategies, strategy_class
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space


class Killed(RuntimeError):
    """Stands in for the process dying during an evaluation."""


class ScriptedEvaluator(Evaluator):
    """Table look-ups that can die after ``die_after`` evaluations or check the journal first."""

    def __init__(self, table: NB201Table, die_after: int | None = None) -> None:
        self._inner = TableEvaluator(table, "cifar10")
        self.space_name = self._inner.space_name
        self.dataset = self._inner.dataset
        self.die_after = die_after
        self.calls = 0
        self.journal_lines: list[int] = []
        self.journal: Path | None = None

    def evaluate(self, arch: Arch) -> EvalResult:
        if self.journal is not None:
            self.journal_lines.append(len(self.journal.read_text().splitlines()))
        if self.die_after is not None and self.calls >= self.die_after:
            raise Killed(f"killed after {self.calls} evaluations")
        self.calls += 1
        return self._inner.evaluate(arch)


def search(table: NB201Table, name: str, budget: int, **kwargs: object) -> History:
    strategy = get_strategy(name, NB201Space(), kwargs.pop("seed", 0), **FAST_OPTIONS.get(name, {}))
    evaluator = kwargs.pop("evaluator", None) or ScriptedEvaluator(table)
    return run_search(strategy, evaluator, NB201Space(), budget, progress=False, **kwargs)


def test_journal_line_written_before_next_evaluation(nb201_table: NB201Table, tmp_path: Path):
    journal = tmp_path / "run.jsonl"
    evaluator = ScriptedEvaluator(nb201_table)
    evaluator.journal = journal
    history = search(nb201_table, "random", 6, evaluator=evaluator, journal_path=journal)
    assert evaluator.journal_lines == [1, 2, 3, 4, 5, 6]  # header + every earlier trial
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["strategy"] == "random"
    assert lines[0]["dataset"] == "cifar10" and lines[0]["budget"] == 6
    assert [line["value"] for line in lines[1:]] == history.values().tolist()
    result = json.loads((tmp_path / "run.result.json").read_text())
    assert result["num_evaluated"] == 6 and len(result["trajectory"]) == 6
    assert result["best"]["value"] == history.best.value
    assert result["trajectory"][-1]["best_so_far"] == history.best.value


@pytest.mark.parametrize("name", standalone_strategies())
def test_killed_run_resumes_onto_the_same_trajectory(
    name: str, nb201_table: NB201Table, tmp_path: Path
) -> None:
    budget, batch, kill = 20, 3, 14  # dies inside a batch, after the model-based phase began
    whole = search(nb201_table, name, budget, batch_size=batch)
    journal = tmp_path / "run.jsonl"
    with pytest.raises(Killed):
        search(
            nb201_table,
            name,
            budget,
            batch_size=batch,
            journal_path=journal,
            evaluator=ScriptedEvaluator(nb201_table, die_after=kill),
        )
    assert len(journal.read_text().splitlines()) == 1 + kill
    resumed = search(nb201_table, name, budget, batch_size=batch, journal_path=journal, resume=True)
    assert resumed.archs() == whole.archs()
    np.testing.assert_array_equal(resumed.values(), whole.values())
    replayed = [json.loads(line) for line in journal.read_text().splitlines()[1:]]
    assert [r["index"] for r in replayed] == list(range(budget))


def test_torn_last_line_is_dropped_on_resume(nb201_table: NB201Table, tmp_path: Path) -> None:
    whole = search(nb201_table, "evolution", 30)
    journal = tmp_path / "run.jsonl"
    search(nb201_table, "evolution", 30, journal_path=journal)
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:23]) + lines[23][:17])  # died while writing trial 22
    resumed = search(nb201_table, "evolution", 30, journal_path=journal, resume=True)
    assert resumed.archs() == whole.archs()
    assert len(journal.read_text().splitlines()) == 31


def test_resume_refuses_other_settings(nb201_table: NB201Table, tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    search(nb201_table, "random", 5, journal_path=journal)
    with pytest.raises(ValueError, match=r"different settings \(seed: journal 0, now 1\)"):
        search(nb201_table, "random", 5, seed=1, journal_path=journal, resume=True)
    with pytest.raises(ValueError, match="budget: journal 5, now 4"):
        search(nb201_table, "random", 4, journal_path=journal, resume=True)
    with pytest.raises(ValueError, match="already exists: add --resume to continue"):
        search(nb201_table, "random", 5, journal_path=journal)
    with pytest.raises(ValueError, match="needs a journal_path"):
        search(nb201_table, "random", 5, resume=True)
    finished = search(nb201_table, "random", 5, journal_path=journal, resume=True)
    assert len(finished) == 5


def test_journal_from_before_an_option_existed_resumes_at_its_default(
    nb201_table: NB201Table, tmp_path: Path
) -> None:
    """A header lacking an option (written before it existed) ran with the option's default."""
    journal = tmp_path / "run.jsonl"
    whole = search(nb201_table, "evolution", 6)
    search(nb201_table, "evolution", 4, journal_path=journal)
    header, *trials = journal.read_text().splitlines()
    older = json.loads(header)
    del older["options"]["sample_size"]
    journal.write_text("\n".join([json.dumps(older), *trials]) + "\n")
    resumed = search(nb201_table, "evolution", 6, journal_path=journal, resume=True)
    assert resumed.archs() == whole.archs()
    journal.write_text("\n".join([json.dumps(older), *trials]) + "\n")
    other = get_strategy("evolution", NB201Space(), 0, sample_size=3)
    with pytest.raises(ValueError, match=r"options: journal .*'sample_size': 5.*'sample_size': 3"):
        run_search(
            other,
            ScriptedEvaluator(nb201_table),
            NB201Space(),
            6,
            journal_path=journal,
            resume=True,
            progress=False,
        )


def test_resume_with_a_larger_budget_extends_the_run(
    nb201_table: NB201Table, tmp_path: Path
) -> None:
    journal = tmp_path / "run.jsonl"
    first = search(nb201_table, "evolution", 4, journal_path=journal)
    extended = search(nb201_table, "evolution", 7, journal_path=journal, resume=True)
    straight = search(nb201_table, "evolution", 7, journal_path=tmp_path / "straight.jsonl")
    assert extended.archs()[:4] == first.archs()
    assert extended.archs() == straight.archs()


def test_journals_are_refused_in_one_line_without_file_locks(
    nb201_table: NB201Table, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffusionnag.search import journal

    monkeypatch.setattr(journal, "fcntl", None)  # as on Windows
    with pytest.raises(ValueError, match="journals need POSIX file locks"):
        search(nb201_table, "random", 2, journal_path=tmp_path / "run.jsonl")


def test_journals_name_shipped_files_without_the_install_path(tmp_path: Path) -> None:
    from diffusionnag.pretrained import SHIPPED, portable

    header = {"options": {"meta_predictor": str(SHIPPED / "meta-fmnist"), "scale": 10}}
    assert portable(header) == {
        "options": {"meta_predictor": "<package>/assets/meta-fmnist", "scale": 10}
    }
    elsewhere = "/opt/venv/lib/python3.12/site-packages/diffusionnag/assets/meta-fmnist"
    assert portable(elsewhere) == "<package>/assets/meta-fmnist"


def test_budget_is_exact_with_uneven_batches(nb201_table: NB201Table) -> None:
    evaluator = ScriptedEvaluator(nb201_table)
    history = search(nb201_table, "random", 10, batch_size=4, evaluator=evaluator)
    assert len(history) == evaluator.calls == 10
    with pytest.raises(ValueError, match="budget must be an int >= 1"):
        search(nb201_table, "random", 0)


class FlakyEvaluator(Evaluator):
    """Every third cell fails, as a diverged training run would."""

    space_name = "nb201"
    dataset = "cifar10"

    def __init__(self) -> None:
        self.calls = itertools.count()

    def evaluate(self, arch: Arch) -> EvalResult:
        failed = next(self.calls) % 3 == 0
        value = math.nan if failed else float(sum(arch.ops))
        return EvalResult(value, "cifar10", "ori-test", metrics={"params": 1.5}, failed=failed)


def test_failed_trials_count_and_round_trip(tmp_path: Path) -> None:
    space = NB201Space()
    journal = tmp_path / "run.jsonl"
    strategy = get_strategy("evolution", space, 0, population_size=4, sample_size=2)
    history = run_search(
        strategy, FlakyEvaluator(), space, 12, journal_path=journal, progress=False
    )
    assert len(history) == 12 and sum(t.failed for t in history) == 4
    assert history.best.value == np.nanmax(history.values())
    assert math.isnan(history.best_so_far()[0])
    restored = History.from_json(json.loads(json.dumps(history.to_json())), space)
    assert restored.archs() == history.archs()
    np.testing.assert_array_equal(restored.values(), history.values())
    assert restored[1].metrics == {"params": 1.5}


def test_history_rejects_equivalent_cells() -> None:
    space = NB201Space()
    history = History(space)
    # Edge 0->1 feeds only dead ends when every edge leaving node 1 is 'none': both cells compute
    # the same function, so they share one canonical key.
    a = space.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    b = space.from_string("|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    history.record(a, EvalResult(50.0, "cifar10", "ori-test"))
    assert history.is_seen(b)
    with pytest.raises(ValueError, match="repeats the canonical key of trial 0"):
        history.record(b, EvalResult(51.0, "cifar10", "ori-test"))


def test_option_defaults_are_what_a_strategy_built_without_options_records() -> None:
    for name in standalone_strategies():
        built = get_strategy(name, NB201Space(), 0)
        assert strategy_class(name).option_defaults() == built.options(), name
    transfer_bo = strategy_class("transfer-bo").option_defaults()
    assert transfer_bo["num_init"] == 5 and transfer_bo["hidden"] == 32  # its own, then inherited
    assert set(transfer_bo) == set(strategy_class("transfer-bo").option_names())
