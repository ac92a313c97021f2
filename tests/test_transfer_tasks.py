"""Transfer to tasks cut from image datasets (issue 12): task names, reference distributions,
``transfer --benchmark task:...`` placing its chosen cell, and MobileNetV3 end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusionnag.cli import main
from diffusionnag.evaluators.tasks import TaskSpec
from diffusionnag.evaluators.train_config import TrainConfig
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.predictors.task_encoders import ImagesEncoder, TaskData, image_encoding
from diffusionnag.transfer.reference import read_reference, shipped_reference

TASK = "digits/c0-1-2/n20/r8/s3"
TINY = ["--epochs", "1", "--device", "cpu", "--no-progress"]


def test_task_names_parse_back_to_their_spec() -> None:
    spec = TaskSpec("idx:/data/my/mnist", (4, 0, 2), per_class=30, resolution=12, seed=9)
    assert TaskSpec.from_name(spec.name) == spec
    assert TaskSpec.from_name(spec.name, eval_per_class=7).eval_per_class == 7
    for bad in ("digits/c0-1/n5/r8", "digits/c0--1/n5/r8/s0", "digits/cx/n5/r8/s0"):
        with pytest.raises(ValueError, match="is not a task name: SOURCE/cCLASSES/nPER_CLASS"):
            TaskSpec.from_name(bad)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "digits.jsonl"
    argv = ["meta-dataset", "reference", "--task", TASK, "--cells", "6", "--eval-per-class",
            "10", "--out", str(out), *TINY]  # fmt: skip
    assert main(argv) == 0
    return out


def test_a_reference_is_one_task_of_distinct_random_cells(reference: Path) -> None:
    header = json.loads(reference.read_text().splitlines()[0])
    assert header["tasks"] == 1 and header["sampler"] is None
    assert header["specs"] == [TaskSpec.from_name(TASK, 10).to_json()]
    loaded = read_reference(reference)
    assert loaded.task == TASK and len(set(loaded.cells)) == 6
    assert loaded.place(101.0).describe().startswith("better than 6 of 6 random cells")
    assert loaded.place(-1.0).beaten == 0
    loaded.check_protocol(TASK, TrainConfig(epochs=1, seed=5))  # the seed may differ
    with pytest.raises(ValueError, match=r"trained with epochs=1, this run with epochs=4"):
        loaded.check_protocol(TASK, TrainConfig(epochs=4))
    with pytest.raises(ValueError, match=r"is for task digits/c0-1-2/n20/r8/s3, not other"):
        loaded.check_protocol("other", TrainConfig(epochs=1))


def test_placing_counts_the_cells_beaten_and_a_diverged_cell_as_beaten(reference: Path) -> None:
    loaded = dataclasses.replace(
        read_reference(reference),
        test_accuracies=np.array([10.0, 50.0, np.nan, 70.0, 90.0, 30.0]),
    )
    placed = loaded.place(60.0)
    assert (placed.beaten, placed.total, placed.best) == (4, 6, 90.0)
    assert placed.percentile == pytest.approx(66.667, abs=1e-3)
    assert placed.describe() == (
        "better than 4 of 6 random cells trained the same way (percentile 67; the best of "
        "them: 90.00 %)"
    )


def test_the_shipped_digits_reference_reads_under_the_meta_dataset_protocol() -> None:
    path = shipped_reference("digits/c0-1-2-3-4-5-6-7-8-9/n50/r8/s0")
    loaded = read_reference(path)
    assert len(loaded.cells) == 100 and np.isfinite(loaded.test_accuracies).sum() >= 90
    loaded.check_protocol(loaded.task, TrainConfig(epochs=2))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", "line 1 is not JSON"),
        ('{"task": "a"}\n{"task": "a"}\n', "no meta-dataset header on line 1"),
        ('{"kind": "meta-dataset", "tasks": 2}\n{}\n{}\n', "a reference is one task"),
    ],
)
def test_a_bad_reference_is_one_error_line(
    content: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ref.jsonl"
    path.write_text(content)
    argv = ["transfer", "--benchmark", f"task:{TASK}", "--reference", str(path), "--out",
            str(tmp_path / "run.json"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("diffusionnag: error: ")
    assert f"reference {path}" in error and message in error


@pytest.fixture(scope="module")
def images_meta(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny images meta-predictors, one per space, meta-trained on tiny built meta-datasets."""
    folders = {}
    for space in ("nb201", "mbv3"):
        root = tmp_path_factory.mktemp(f"meta-{space}")
        rows = root / "rows.jsonl"
        argv = ["meta-dataset", "build", "--source", "digits", "--tasks", "2",
                "--cells-per-task", "2", "--resolutions", "8", "--classes", "2", "3",
                "--per-class", "10", "15", "--eval-per-class", "5", "--space", space,
                "--out", str(rows), *TINY]  # fmt: skip
        assert main(argv) == 0
        argv = ["meta-train", "--space", space, "--meta-dataset", str(rows), "--encoder",
                "images", "--steps", "3", "--out", str(root / "meta"), "--device", "cpu",
                "--quiet"]  # fmt: skip
        assert main(argv) == 0
        folders[space] = root / "meta"
    return folders


def test_transfer_to_a_task_places_the_chosen_cell_in_the_reference(
    images_meta: dict[str, Path], reference: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run.json"
    argv = ["transfer", "--benchmark", f"task:{TASK}", "--meta-predictor",
            str(images_meta["nb201"]), "--reference", str(reference), "--budget", "2",
            "--candidates", "4", "--round-samples", "40", "--steps", "3", "--epochs", "1",
            "--out", str(out), "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    placed = result["reference"]
    assert placed["total"] == 6 and 0 <= placed["beaten"] <= 6
    chosen_test = result["best"]["metrics"]["test_accuracy"]  # chosen by validation accuracy
    assert placed["beaten"] == read_reference(reference).place(chosen_test).beaten
    assert f"random cells trained the same way (percentile {placed['percentile']:.0f}" in printed


def test_a_final_protocol_retrains_the_chosen_cell_and_places_it(
    images_meta: dict[str, Path], reference: Path, tmp_path: Path, capsys
) -> None:
    final_reference = tmp_path / "final.jsonl"
    argv = ["meta-dataset", "reference", "--task", TASK, "--cells", "5", "--eval-per-class",
            "10", "--out", str(final_reference), *TINY[2:], "--epochs", "3"]  # fmt: skip
    assert main(argv) == 0
    out = tmp_path / "run.json"
    argv = ["transfer", "--benchmark", f"task:{TASK}", "--meta-predictor",
            str(images_meta["nb201"]), "--budget", "2", "--candidates", "4", "--round-samples",
            "40", "--steps", "3", "--epochs", "1", "--final-epochs", "3", "--out", str(out),
            "--quiet"]  # fmt: skip
    capsys.readouterr()
    # the candidates' reference is not the final protocol's
    assert main([*argv, "--reference", str(reference)]) == 2
    assert "trained with epochs=1, this run with epochs=3" in capsys.readouterr().err
    assert main([*argv, "--reference", str(final_reference)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    final = result["final"]
    assert final["cell"] == result["best"]["arch"]
    assert final["protocol"]["train"]["epochs"] == 3
    assert final["seconds"] > 0 and 0.0 <= final["test_accuracy"] <= 100.0
    placed = read_reference(final_reference).place(final["test_accuracy"])
    assert result["reference"]["beaten"] == placed.beaten and result["reference"]["total"] == 5
    assert (
        f"final protocol (3 epochs): the chosen cell scored {final['valid_accuracy']:.2f} % "
        f"validation, {final['test_accuracy']:.2f} % test"
    ) in printed


def test_a_final_protocol_needs_a_training_target(tmp_path: Path, capsys) -> None:
    argv = ["transfer", "--benchmark", "nb201:cifar10", "--final-epochs", "3", "--out",
            str(tmp_path / "run.json"), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "a final training protocol needs a training target (train:, task:)" in error


def test_mobilenet_v3_builds_meta_trains_and_transfers(
    images_meta: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    argv = ["transfer", "--space", "mbv3", "--benchmark", f"task:{TASK}", "--meta-predictor",
            str(images_meta["mbv3"]), "--budget", "1", "--candidates", "2", "--round-samples",
            "20", "--steps", "3", "--epochs", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["num_evaluated"] == 1 and "reference" not in result


def test_task_sizes_let_the_images_encoder_see_what_pooling_cannot() -> None:
    torch.manual_seed(0)
    encoder = ImagesEncoder(16, features=8, sizes=True).eval()
    images = torch.randn(3, 5, 1, 8, 8)
    with torch.no_grad():
        small = encoder(TaskData(images=images, train_per_class=20.0))
        large = encoder(TaskData(images=images, train_per_class=200.0))
        blind = ImagesEncoder(16, features=8).eval()
        assert torch.equal(
            blind(TaskData(images=images, train_per_class=20.0)),
            blind(TaskData(images=images, train_per_class=200.0)),
        )
    assert not torch.allclose(small, large)
    with pytest.raises(ValueError, match="also reads the task's training images per class"):
        encoder(TaskData(images=images))


def test_task_sizes_config_is_checked_and_old_configs_load_without_it() -> None:
    with pytest.raises(ValueError, match="field 'task_sizes' is for the images encoder"):
        MetaPredictorConfig(task_sizes=True)
    images = dataclasses.asdict(MetaPredictorConfig(encoder="images"))
    with pytest.raises(ValueError, match=r"field 'config\.task_sizes' must be true"):
        MetaPredictorConfig.from_dict({**images, "task_sizes": 1}, "c.json")
    old = {k: v for k, v in dataclasses.asdict(MetaPredictorConfig()).items() if k != "task_sizes"}
    assert MetaPredictorConfig.from_dict(old, "old.json").task_sizes is False


def test_an_image_encoding_carries_the_task_training_set_size() -> None:
    pools = [torch.zeros(30, 1, 8, 8), torch.zeros(50, 1, 8, 8)]
    encoding = image_encoding(pools, 5, np.random.default_rng(0))
    assert encoding.images.shape == (2, 5, 1, 8, 8) and encoding.train_per_class == 40.0
