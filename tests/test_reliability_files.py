"""Contradictory and hostile files end in one ``diffusionnag: error:`` line (issue 29).

Every JSON and JSONL file a user hands in (meta-datasets, references, journals, meta-predictor,
score-model and predictor configs, pairs files) is read by :mod:`diffusionnag.io`'s bounded
readers: nesting depth and number sizes are refused before Python's parser recurses or a number
overflows, and sizes are checked before any network is built. Each case names the file, the
line and the field the error line must mention.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_table

from diffusionnag.cli import main
from diffusionnag.diffusion.sde import build_sde
from diffusionnag.io import MAX_DEPTH, parse_json, read_json
from diffusionnag.predictors.data import load_pairs
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.search.journal import open_journal
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.meta_train import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import (
    MetaDataset,
    MetaTask,
    read_meta_dataset,
    read_meta_datasets,
)
from diffusionnag.transfer.reference import read_reference

SPACE = NB201Space()
CELLS = [SPACE.to_string(a) for a in SPACE.sample(4, np.random.default_rng(0))]
DEEP = "[" * 100_000 + "]" * 100_000
DIGITS_401 = "1" * 401  # as a float: OverflowError
DIGITS_5000 = "7" * 5000  # past Python's 4,300-digit limit for int("...")
TRANSFER = ["--benchmark", "nb201:cifar10", "--budget", "2", "--candidates", "4", "--steps",
            "2", "--device", "cpu", "--quiet"]  # fmt: skip


def _row(task: str, cell: str, accuracy: object) -> str:
    return json.dumps({"task": task, "cell": cell, "accuracy": accuracy})


def _meta_rows(*rows: str) -> str:
    header = json.dumps({"type": "header", "space": "nb201"})
    return "\n".join([header, *rows]) + "\n"


GOOD_ROWS = [_row("a", CELLS[0], 90.0), _row("a", CELLS[1], 80.0)]


def _with_protocol(row: str, epochs: int) -> str:
    return json.dumps(json.loads(row) | {"protocol": {"train": {"epochs": epochs, "lr": 0.1}}})


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full fake NB201 table and a tiny saved meta-predictor."""
    root = tmp_path_factory.mktemp("files")
    write_fake_table(root / "table.csv", len(SPACE.enumerate()), seed=1)
    tasks = [MetaTask(f"t{i}", SPACE.sample(8, np.random.default_rng(i)), np.arange(8.0))
             for i in range(2)]  # fmt: skip
    config = MetaPredictorConfig(hidden=8, layers=1, task_dim=8, steps=1, queries_per_task=4)
    sde = build_sde("ve")
    predictor = train_meta_predictor(SPACE, sde, MetaDataset("nb201", tasks), config, device="cpu")
    save_meta_predictor(predictor, root / "meta")
    return root


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffusionnag: error: "), err
    return lines[0]


META_DATASET_CASES = {
    "repeated-row": (
        _meta_rows(*GOOD_ROWS, GOOD_ROWS[0]),
        ["rows.jsonl line 4", f"cell {CELLS[0]} is already on line 2", "repeats it"],
    ),
    "two-accuracies": (
        _meta_rows(*GOOD_ROWS, _row("a", CELLS[0], 70.0)),
        ["rows.jsonl line 4", "task 'a'", "already on line 2", "gives 70, not 90"],
    ),
    "deep": (_meta_rows(*GOOD_ROWS, DEEP), ["rows.jsonl line 4", "nested more than 32 levels"]),
    "mixed-protocols": (
        _meta_rows(
            _with_protocol(GOOD_ROWS[0], 2),
            _with_protocol(GOOD_ROWS[1], 2),
            _with_protocol(_row("b", CELLS[0], 70.0), 40),
        ),
        ["rows.jsonl line 4", "differs from line 2's (epochs 40 vs 2)", "a meta-dataset per"],
    ),
    "protocol-on-some-rows": (
        _meta_rows(_with_protocol(GOOD_ROWS[0], 2), GOOD_ROWS[1]),
        ["rows.jsonl line 3", "differs from line 2's (epochs None vs 2, lr None vs 0.1)"],
    ),
    "accuracy-401-digits": (
        _meta_rows(
            GOOD_ROWS[0], f'{{"task": "a", "cell": "{CELLS[1]}", "accuracy": {DIGITS_401}}}'
        ),
        ["rows.jsonl line 3", "field 'accuracy'", "(401 chars) is out of range"],
    ),
    "int-5000-digits": (
        _meta_rows(*GOOD_ROWS, '{"spec": {"seed": ' + DIGITS_5000 + "}}"),
        ["rows.jsonl line 4", "field 'spec.seed'", "(5000 chars) is out of range"],
    ),
}


@pytest.mark.parametrize("case", sorted(META_DATASET_CASES))
def test_meta_train_refuses_a_contradictory_or_hostile_meta_dataset(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, fragments = META_DATASET_CASES[case]
    rows = tmp_path / "rows.jsonl"
    rows.write_text(text)
    argv = ["meta-train", "--meta-dataset", str(rows), "--out", str(tmp_path / "m"), "--quiet"]
    line = _cli_error(argv, capsys)
    assert str(rows) in line
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "m").exists()


def test_several_meta_datasets_train_as_one_under_one_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, other, again = (tmp_path / f"{n}.jsonl" for n in ("a", "b", "c", "d"))
    first.write_text(_meta_rows(*(_with_protocol(row, 2) for row in GOOD_ROWS)))
    b_rows = [_row("b", CELLS[2], 60.0), _row("b", CELLS[3], 50.0)]
    second.write_text(_meta_rows(*(_with_protocol(row, 2) for row in b_rows)))
    other.write_text(_meta_rows(*(_with_protocol(row, 40) for row in b_rows)))
    again.write_text(_meta_rows(*(_with_protocol(row, 2) for row in GOOD_ROWS)))
    merged = read_meta_datasets([first, second], SPACE)
    assert merged.task_names == ["a", "b"] and merged.source == f"{first} + {second}"
    assert merged.protocol == {"epochs": 2, "lr": 0.1}
    out = tmp_path / "m"
    argv = ["meta-train", "--meta-dataset", str(first), str(second), "--steps", "1",
            "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "meta-trained on 2 tasks (a, b)" in capsys.readouterr().out
    argv[2:4] = [str(first), str(other)]
    line = _cli_error([*argv[:-1], str(tmp_path / "m2")], capsys)
    assert f"{other}: its training protocol differs from {first}'s" in line
    argv[2:4] = [str(first), str(again)]
    line = _cli_error([*argv[:-1], str(tmp_path / "m3")], capsys)
    assert f"task 'a' is in {first} and in {again}: keep each task in one meta-dataset" in line


def test_a_csv_meta_dataset_refuses_a_cell_measured_twice(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text(f"task,cell,accuracy\na,{CELLS[0]},90\nb,{CELLS[0]},80\na,{CELLS[0]},70\n")
    with pytest.raises(ValueError) as error:
        read_meta_dataset(rows, SPACE)
    assert str(error.value).startswith(f"{rows} line 4: task 'a', cell {CELLS[0]} is already")
    assert "on line 2, and gives 70, not 90" in str(error.value)


def test_a_directory_given_as_meta_dataset_is_called_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["meta-train", "--meta-dataset", str(tmp_path), "--out", str(tmp_path / "m")]
    assert f"meta-dataset {tmp_path} is a directory, not a file" in _cli_error(argv, capsys)


def _edit_meta(folder: Path, edit: Callable[[dict], None]) -> None:
    header = json.loads((folder / CONFIG_FILE).read_text())
    edit(header)
    (folder / CONFIG_FILE).write_text(json.dumps(header))


def _set(section: str, field: str, value: object) -> Callable[[Path], None]:
    return lambda folder: _edit_meta(folder, lambda h: h[section].__setitem__(field, value))


def _config_text(text: str) -> Callable[[Path], None]:
    return lambda folder: (folder / CONFIG_FILE).write_text(text)


def _empty_weights(folder: Path) -> None:
    (folder / WEIGHTS_FILE).write_bytes(b"")


def _large_in_range(folder: Path) -> None:
    _edit_meta(folder, lambda h: h["config"].update(hidden=4096, layers=64, task_dim=4096))


META_PREDICTOR_CASES = {
    "hidden-1e9": (_set("config", "hidden", 10**9), "field 'config.hidden' must be in [1, 4096]"),
    "layers-float": (_set("config", "layers", 2.5), "field 'config.layers' must be an integer"),
    "tasks-int": (_set("meta", "tasks", 5), "field 'meta.tasks' must be a list of task names"),
    "tasks-ints": (_set("meta", "tasks", [1, 2]), "field 'meta.tasks' must be a list of task"),
    "in-range-but-larger-than-weights": (
        _large_in_range,
        "config describes (config.hidden=4096, layers=64, task_dim=4096) needs",
    ),
    "deep": (_config_text(DEEP), f"is corrupt: line 1: nested more than {MAX_DEPTH} levels"),
    "hidden-5000-digits": (
        _config_text('{"config": {"hidden": ' + DIGITS_5000 + "}}"),
        "is corrupt: line 1: field 'config.hidden'",
    ),
    "empty-weights": (_empty_weights, "meta_predictor.pt is empty (0 bytes)"),
}


@pytest.mark.parametrize("case", sorted(META_PREDICTOR_CASES))
def test_transfer_refuses_a_hostile_meta_predictor_before_building_it(
    case: str, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, fragment = META_PREDICTOR_CASES[case]
    folder = tmp_path / "meta"
    folder.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        (folder / name).write_bytes((work / "meta" / name).read_bytes())
    edit(folder)
    argv = ["transfer", *TRANSFER, "--table", str(work / "table.csv"), "--meta-predictor",
            str(folder), "--out", str(tmp_path / "run.json")]  # fmt: skip
    line = _cli_error(argv, capsys)
    assert str(folder) in line and fragment in line


def test_transfer_refuses_a_deep_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = tmp_path / "ref.jsonl"
    reference.write_text(DEEP + "\n")
    argv = ["transfer", "--benchmark", "task:digits/c0-1-2/n20/r8/s3", "--reference",
            str(reference), "--out", str(tmp_path / "run.json"), "--quiet"]  # fmt: skip
    line = _cli_error(argv, capsys)
    assert f"reference {reference} line 1: nested more than {MAX_DEPTH} levels" in line


@pytest.mark.parametrize("command", ["search", "transfer"])
def test_resume_refuses_a_deep_journal_line(
    command: str, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    common = ["--table", str(work / "table.csv"), "--out", str(out)]
    if command == "search":
        argv = ["search", "--strategy", "random", "--benchmark", "nb201:cifar10", "--budget", "2",
                "--quiet", *common]  # fmt: skip
    else:
        argv = ["transfer", *TRANSFER, "--meta-predictor", str(work / "meta"), *common]
    assert main(argv) == 0
    journal = out.with_suffix(".jsonl")
    journal.write_text(journal.read_text().splitlines()[0] + "\n" + DEEP + "\n")
    line = _cli_error([*argv, "--resume"], capsys)
    assert f"journal {journal} line 2: nested more than {MAX_DEPTH} levels" in line
    refusal = _cli_error(argv, capsys)  # the command line's words, not Python's
    assert "--resume to continue" in refusal and "resume=True" not in refusal


def _journal(path: Path, text: str) -> None:
    path.write_text(json.dumps({"type": "header"}) + "\n" + text + "\n")
    open_journal(path, {}, SPACE, resume=True)


def _pairs_jsonl(path: Path, text: str) -> None:
    path.write_text(json.dumps({"type": "header"}) + "\n" + text + "\n")
    load_pairs(path, SPACE)


def _reference(path: Path, text: str) -> None:
    path.write_text(json.dumps({"kind": "meta-dataset", "tasks": 1}) + "\n" + text + "\n")
    read_reference(path)


def _meta_dataset(path: Path, text: str) -> None:
    path.write_text(_meta_rows(text))
    read_meta_dataset(path, SPACE)


READERS = {"journal": _journal, "pairs-jsonl": _pairs_jsonl, "reference": _reference,
           "meta-dataset": _meta_dataset}  # fmt: skip
HOSTILE = {
    "deep": (DEEP, "nested more than"),
    "float-401-digits": ('{"accuracy": ' + DIGITS_401 + "}", "field 'accuracy'"),
    "int-5000-digits": ('{"a": [1, ' + DIGITS_5000 + "]}", "field 'a[1]'"),
    "float-overflow": ('{"x": {"value": 1e400}}', "field 'x.value'"),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_jsonl_reader_bounds_depth_and_numbers(reader: str, hostile: str, tmp_path: Path):
    text, fragment = HOSTILE[hostile]
    path = tmp_path / "file.jsonl"
    with pytest.raises(ValueError) as error:
        READERS[reader](path, text)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    assert "line 2" in message and fragment in message


def test_a_json_file_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "network": {\n    "hidden": ' + DIGITS_5000 + "\n  }\n}\n")
    with pytest.raises(ValueError, match=r"config\.json is corrupt: line 3: field 'network\.hid"):
        read_json(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "[[[[" }', {"a": "[[[["}),  # brackets inside strings do not nest
        ("[" * MAX_DEPTH + "]" * MAX_DEPTH, json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH)),
        ('{"seed": 123456789012345678901234567890}', {"seed": 123456789012345678901234567890}),
        ('{"x": -1.5e300}', {"x": -1.5e300}),
    ],
)
def test_the_bounds_leave_ordinary_json_alone(text: str, expected: object) -> None:
    assert parse_json(text) == expected


def test_nan_passes_the_reader_for_the_fields_that_check_finiteness() -> None:
    assert math.isnan(parse_json('{"value": NaN}')["value"])
