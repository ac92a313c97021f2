"""NB201Table and TableEvaluator: the real shared table, a small fake one, and every error case."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_table

from diffusionnag.evaluators.base import Evaluator
from diffusionnag.evaluators.nb201_table import (
    ACCURACY_COLUMNS,
    DATASETS,
    NB201Table,
    TableEvaluator,
    resolve_dataset,
)
from diffusionnag.evaluators.shared_data import TABLE_ENV_VAR, default_table_path
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import NB201Space

SPACE = NB201Space()
README_OPTIMA = {"cifar10": 94.3733, "cifar100": 73.5133, "ImageNet16-120": 47.3111}
HEADER = (
    "CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,"
    "ImageNetTestAccuracy200Epochs,ArchitectureString,UniqueString"
)
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "table.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_shared_table_loads_every_cell_once(nb201_table) -> None:
    assert len(nb201_table) == 15_625
    assert len(set(nb201_table.archs)) == 15_625
    for dataset in DATASETS:
        values = nb201_table.accuracies(dataset)
        assert values.shape == (15_625,) and values.dtype == np.float64
        assert values.min() >= 0 and values.max() <= 100


@pytest.mark.parametrize("dataset", DATASETS)
def test_optima_match_the_readme(nb201_table, dataset: str) -> None:
    arch, value = nb201_table.optimum(dataset)
    assert value == pytest.approx(README_OPTIMA[dataset], abs=1e-3)
    assert nb201_table.accuracy(arch, dataset) == value
    assert nb201_table.percentile(dataset, 100) == value


def test_optima_are_reached_by_different_cells(nb201_table) -> None:
    assert len({nb201_table.optimum(dataset)[0] for dataset in DATASETS}) == 3


def test_first_row_matches_the_file(nb201_table, nb201_table_path: Path) -> None:
    with nb201_table_path.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    arch = nb201_table.archs[0]
    assert SPACE.to_string(arch) == first["ArchitectureString"]
    for dataset, column in ACCURACY_COLUMNS.items():
        assert nb201_table.accuracy(arch, dataset) == float(first[column])


def test_loading_the_shared_table_is_fast(nb201_table_path: Path) -> None:
    NB201Table.from_csv(nb201_table_path)  # warm the file cache and the imports
    start = time.process_time()
    NB201Table.from_csv(nb201_table_path)
    assert time.process_time() - start < 1.0  # ~0.3 s on an idle core; slack for shared CI


def test_query_names_dataset_split_and_epochs(nb201_table) -> None:
    arch = SPACE.from_string(CELL)
    for alias, dataset, split in [
        ("CIFAR10", "cifar10", "ori-test"),
        ("cifar100", "cifar100", "x-test"),
        ("imagenet16-120", "ImageNet16-120", "x-test"),
    ]:
        result = nb201_table.query(arch, dataset=alias)
        assert (result.dataset, result.split, result.epochs) == (dataset, split, 200)
        assert result.value == nb201_table.accuracy(arch, dataset) and not result.failed


def test_accuracies_are_read_only(nb201_small_table) -> None:
    values = nb201_small_table.accuracies("cifar10")
    with pytest.raises(ValueError):
        values[0] = 100.0


def test_small_table_agrees_with_its_file(nb201_small_table, nb201_small_table_path) -> None:
    with nb201_small_table_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(nb201_small_table) == len(rows) == 200
    column = ACCURACY_COLUMNS["cifar100"]
    expected = np.array([float(row[column]) for row in rows])
    np.testing.assert_array_equal(nb201_small_table.accuracies("cifar100"), expected)
    best = int(np.argmax(expected))
    assert nb201_small_table.optimum("cifar100") == (
        SPACE.from_string(rows[best]["ArchitectureString"]),
        expected[best],
    )
    assert nb201_small_table.percentile("cifar100", 50) == pytest.approx(np.median(expected))


def test_cell_not_in_the_table(nb201_small_table) -> None:
    missing = next(arch for arch in SPACE.enumerate() if arch not in nb201_small_table)
    with pytest.raises(ValueError, match=r"is not in the table .*\(200 cells\)") as info:
        nb201_small_table.query(missing, dataset="cifar10")
    assert SPACE.to_string(missing) in str(info.value)
    with pytest.raises(ValueError, match="is not in the table"):
        nb201_small_table.accuracy(Arch("mbv3", (1, 2)), "cifar10")


@pytest.mark.parametrize("name", ["imagenet", "cifar-10", "svhn", ""])
def test_unknown_dataset_lists_the_valid_ones(nb201_small_table, name: str) -> None:
    with pytest.raises(ValueError, match="cifar10, cifar100, ImageNet16-120"):
        nb201_small_table.accuracies(name)
    with pytest.raises(ValueError, match=f"unknown dataset '{name}'"):
        TableEvaluator(nb201_small_table, name)


def test_dataset_aliases_are_case_insensitive() -> None:
    assert resolve_dataset("IMAGENET16-120") == "ImageNet16-120"
    assert resolve_dataset("Cifar100") == "cifar100"


def test_percentile_rejects_q_outside_0_100(nb201_small_table) -> None:
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        nb201_small_table.percentile("cifar10", 101)


def test_missing_file_names_the_path_and_how_to_give_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"
    with pytest.raises(ValueError, match=f"not found at {path}: pass --table .*DIFFUSIONNAG_NB201"):
        NB201Table.from_csv(path)
    with pytest.raises(ValueError, match="is not a file"):
        NB201Table.from_csv(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty: no header"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00".decode("latin-1"), "not UTF-8"),
        (f"{HEADER}\n1,2,3,{CELL},k\n4,5,{CELL},k\n", "line 3: 4 fields, the header has 5"),
        (f"{HEADER}\n1,2,3,{CELL},k\n4,5,6,|bad~0|,k\n", "line 3: cell string .* 1 node groups"),
        (
            f"{HEADER}\n1,2,3,{CELL},k\n4,x,6,{CELL.replace('none', 'skip_connect')},k\n",
            "line 3: CIFAR100TestAccuracy200Epochs is 'x', not a finite number",
        ),
        (f"{HEADER}\n1,2,nan,{CELL},k\n", "line 2: ImageNetTestAccuracy200Epochs is 'nan'"),
        (f"{HEADER}\n1,2,3,{CELL},k\n\n4,5,6,{CELL},k\n", "line 4 repeats the cell of line 2"),
        (f'{HEADER}\n1,2,3,"{CELL},k\n', "line 2: unexpected end of data"),
    ],
)
def test_corrupt_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "table.csv"
    path.write_bytes(text.encode("latin-1" if "PNG" in text else "utf-8"))
    with pytest.raises(ValueError, match=message.replace("|", r"\|")) as info:
        NB201Table.from_csv(path)
    assert str(path) in str(info.value)


def test_missing_columns_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, f"CIFAR10TestAccuracy200Epochs,ArchitectureString\n1.0,{CELL}\n")
    with pytest.raises(ValueError) as info:
        NB201Table.from_csv(path)
    message = str(info.value)
    lacking = message.split("lacks column(s) ")[1].split(";")[0]
    assert lacking == "CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs"


def test_unique_string_column_is_optional(tmp_path: Path) -> None:
    columns = HEADER.rsplit(",", 1)[0]
    table = NB201Table.from_csv(_write(tmp_path, f"{columns}\n1.5,2.5,3.5,{CELL}\n"))
    assert table.unique_strings is None
    assert table.accuracy(SPACE.from_string(CELL), "ImageNet16-120") == 3.5


def test_constructor_validates_its_inputs() -> None:
    arch = SPACE.from_string(CELL)
    good = {dataset: [50.0] for dataset in DATASETS}
    with pytest.raises(ValueError, match="appears in rows 0 and 1"):
        NB201Table([arch, arch], {d: [1.0, 2.0] for d in DATASETS})
    with pytest.raises(ValueError, match="missing for dataset"):
        NB201Table([arch], {"cifar10": [1.0]})
    with pytest.raises(ValueError, match="not a NAS-Bench-201 cell"):
        NB201Table([Arch("nb201", (9,) * 6)], good)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(1,\)"):
        NB201Table([arch], {**good, "cifar10": [1.0, 2.0]})


def test_table_evaluator_answers_only_the_asked_cell(nb201_small_table) -> None:
    evaluator = TableEvaluator(nb201_small_table, "IMAGENET16-120")
    assert isinstance(evaluator, Evaluator)
    assert (evaluator.space_name, evaluator.dataset) == ("nb201", "ImageNet16-120")
    arch = nb201_small_table.archs[5]
    result = evaluator.evaluate(arch)
    assert result == nb201_small_table.query(arch, dataset="ImageNet16-120")
    assert result.metrics == {}  # nothing about other cells or datasets rides along
    public = [name for name in vars(evaluator) if not name.startswith("_")]
    assert public == ["dataset"]
    assert "cifar" not in repr(evaluator) and str(result.value) not in repr(evaluator)


def test_from_nats_bench_without_the_package_explains(tmp_path: Path) -> None:
    try:
        import nats_bench  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="pip install 'diffusionnag\\[nats\\]'"):
            NB201Table.from_nats_bench(tmp_path / "NATS-tss-v1_0-3ffb9-simple")
    else:
        pytest.skip("nats_bench is installed here")


def test_default_table_path_honours_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(TABLE_ENV_VAR, str(tmp_path / "mine.csv"))
    assert default_table_path() == tmp_path / "mine.csv"


def test_default_table_path_searches_upward(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(TABLE_ENV_VAR, raising=False)
    table = tmp_path / "shared" / "data" / "nasbench201" / "nats_tss_200ep_test_acc.csv"
    table.parent.mkdir(parents=True)
    table.write_text(HEADER + "\n")
    repo = tmp_path / "repo" / "src"
    repo.mkdir(parents=True)
    assert default_table_path(repo) == table
    monkeypatch.chdir(repo)
    assert default_table_path() == table


def test_default_table_path_without_a_table_points_beside_the_repo(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(TABLE_ENV_VAR, raising=False)
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("")
    expected = tmp_path / "shared" / "data" / "nasbench201" / "nats_tss_200ep_test_acc.csv"
    assert default_table_path(repo / "tests") == expected


def test_table_protocol_tells_tables_apart(tmp_path, nb201_small_table) -> None:
    """A journal header carries it, so a run cannot resume against another table."""
    other = NB201Table.from_csv(write_fake_table(tmp_path / "other.csv", 200, seed=5))
    first = TableEvaluator(nb201_small_table, "cifar10").protocol()
    assert first == TableEvaluator(nb201_small_table, "cifar10").protocol()
    assert first["table_sha256"] != TableEvaluator(other, "cifar10").protocol()["table_sha256"]
    assert (first["split"], first["epochs"], first["table_cells"]) == ("ori-test", 200, 200)
