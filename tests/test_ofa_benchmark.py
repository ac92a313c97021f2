"""``diffusionnag benchmark --benchmark ofa:...``: the harness on a registry target, end to end
through the CLI (journals, summary, resume, the same numbers for the same seeds), its
one-line errors, and ``transfer --space mbv3`` refusing the ``ofa:`` target in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_ofa_dir

from diffusionnag.cli import main
from diffusionnag.evaluators.shared_data import OFA_ENV_VAR
from diffusionnag.harness.runs import folder_name

SPEC = "ofa:imagenet,max_flops=300e6"
FOLDER = "ofa-imagenet-max_flops=300e6"


@pytest.fixture(scope="module")
def ofa_dir() -> Path:
    return shared_ofa_dir()


def benchmark_argv(ofa_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "benchmark", "--space", "mbv3", "--benchmark", SPEC, "--ofa-dir", str(ofa_dir),
        "--strategies", "random", "evolution", "--seeds", "2", "--budget", "6",
        "--option", "evolution:population_size=4", "--option", "evolution:sample_size=2",
        "--workers", "1", "--out", str(out), "--quiet", *extra,
    ]  # fmt: skip


def journal_values(out: Path) -> dict[str, list[tuple[str, float]]]:
    found = {}
    for journal in sorted((out / "runs" / FOLDER).glob("*/seed*.jsonl")):
        lines = journal.read_text().splitlines()[1:]
        trials = [json.loads(line) for line in lines]
        found[f"{journal.parent.name}/{journal.stem}"] = [(t["arch"], t["value"]) for t in trials]
    return found


def test_a_tiny_ofa_benchmark_runs_end_to_end(ofa_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench"
    given = ("--reference", "81.7", "--batch-size", "3")
    assert main(benchmark_argv(ofa_dir, out, *given)) == 0
    assert f"## {SPEC}: reference 81.7000 (given)" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    block = summary["benchmarks"][SPEC]
    assert summary["settings"]["batch_size"] == 3 and summary["settings"]["space"] == "mbv3"
    assert block["reference"] == {"value": 81.7, "source": "given"}
    for name in ("random", "evolution"):
        row = block["strategies"][name]
        assert row["runs"] == 2 and set(row["evals_to"]) == {"reference", "within_0.1"}
        assert 75.0 < row["best_so_far_median"]["6"] < 81.7
    values = journal_values(out)
    assert len(values) == 4 and all(len(trials) == 6 for trials in values.values())
    for journal in (out / "runs" / FOLDER).glob("*/seed*.jsonl"):
        header, *trials = [json.loads(line) for line in journal.read_text().splitlines()]
        assert header["protocol"]["limits"] == {"flops": 300e6} and header["space"] == "mbv3"
        assert all(not t["failed"] and t["metrics"]["flops"] <= 300e6 for t in trials)
    assert (out / f"best_so_far_{FOLDER}.png").is_file()
    # the same seeds give the same cells and values; a finished benchmark resumes by reading
    again = tmp_path / "again"
    assert main(benchmark_argv(ofa_dir, again, *given)) == 0
    assert journal_values(again) == values
    assert (
        main(benchmark_argv(ofa_dir, out, "--reference", "81.7", "--batch-size", "3", "--resume"))
        == 0
    )
    assert journal_values(out) == values


def test_without_a_reference_the_best_found_is_the_reference(ofa_dir, tmp_path) -> None:
    out = tmp_path / "bench"
    assert main(benchmark_argv(ofa_dir, out)) == 0
    block = json.loads((out / "summary.json").read_text())["benchmarks"][SPEC]
    assert block["reference"]["source"] == "best found by any run"
    assert block["reference"]["value"] == block["best_found"]["value"]
    reached = [
        block["strategies"][n]["evals_to"]["reference"]["reached"] for n in block["strategies"]
    ]
    assert sum(reached) >= 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--datasets", "cifar10"], "--datasets is for the NATS-Bench table"),
        (["--reference", "80", "81"], "--reference gives 2 value(s) for 1 --benchmark target"),
        (["--protocol", "valid"], "--protocol is for the NATS-Bench table"),
        (["--stop-at-optimum"], "--stop-at-optimum is for the NATS-Bench table"),
    ],
)
def test_wrong_benchmark_options_are_one_error_line(ofa_dir, tmp_path, capsys, extra, message):
    assert main(benchmark_argv(ofa_dir, tmp_path / "b", *extra)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffusionnag: error:") and message in lines[0]


def test_an_ofa_target_on_the_nb201_space_is_one_error_line(ofa_dir, tmp_path, capsys) -> None:
    argv = benchmark_argv(ofa_dir, tmp_path / "b")
    argv[argv.index("mbv3")] = "nb201"
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "pass --space mbv3" in lines[0]
    assert not (tmp_path / "b").exists()


def test_table_only_options_are_refused_without_benchmark(tmp_path, capsys) -> None:
    argv = ["benchmark", "--space", "mbv3", "--budget", "3", "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--space is for --benchmark targets" in err


def test_transfer_on_the_ofa_target_says_why_not_in_one_line(
    ofa_dir, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(OFA_ENV_VAR, str(ofa_dir))  # transfer reads the files from the variable
    argv = ["transfer", "--space", "mbv3", "--benchmark", SPEC, "--budget", "2",
            "--out", str(tmp_path / "t.json"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffusionnag: error: transfer does not run")
    assert "no meta-predictor ships for space 'mbv3'" in lines[0]
    assert "no images for a task encoder" in lines[0]


def test_folder_names_are_safe_and_keep_table_datasets() -> None:
    for name in ("cifar10", "cifar100", "ImageNet16-120"):
        assert folder_name(name) == name
    assert folder_name("ofa:imagenet,max_latency_ms=25") == "ofa-imagenet-max_latency_ms=25"
    assert folder_name("train:folder:/a b/c") == "train-folder-a-b-c"
