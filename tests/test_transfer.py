"""Task encoders, the meta-predictor and the transfer pipeline (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_fake_table
from PIL import Image

from diffusionnag.cli import main
from diffusionnag.diffusion.sde import build_sde
from diffusionnag.evaluators.datasets import load_digits, load_image_folder
from diffusionnag.evaluators.registry import BenchmarkSpec, TargetSettings, build_target
from diffusionnag.predictors.meta import MetaPredictor, MetaPredictorConfig
from diffusionnag.predictors.task_encoders import TaskData, sample_class_images
from diffusionnag.spaces import get_space
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.bo import _line
from diffusionnag.transfer.defaults import (
    ASSETS,
    SHIPPED_ALL_TABLES,
    SHIPPED_IMAGES,
    SHIPPED_META,
    default_meta_predictor,
)
from diffusionnag.transfer.meta_train import (
    evaluate_on_tasks,
    load_meta_predictor,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import MetaDataset, MetaTask, read_meta_dataset

SPACE = NB201Space()
SDE = build_sde("ve", sigma_min=0.05, sigma_max=5.0)
SMALL = {"hidden": 16, "layers": 2, "task_dim": 16}


def _network(encoder: str) -> MetaPredictor:
    torch.manual_seed(0)
    return MetaPredictor(SPACE, MetaPredictorConfig(encoder=encoder, **SMALL)).eval()


def test_evaluations_encoder_is_invariant_to_support_order() -> None:
    network = _network("evaluations")
    cells = SPACE.encode(SPACE.sample(7, np.random.default_rng(0)))
    values = torch.tensor([91.0, 85.5, 70.2, 93.1, 88.8, 60.0, 92.4])
    order = torch.tensor([3, 0, 6, 1, 5, 2, 4])
    with torch.no_grad():
        first = network.encode_task(TaskData(support_cells=cells, support_values=values))
        permuted = network.encode_task(
            TaskData(support_cells=cells[order], support_values=values[order])
        )
        other = network.encode_task(TaskData(support_cells=cells, support_values=values.flip(0)))
    torch.testing.assert_close(first, permuted, atol=1e-5, rtol=1e-5)
    assert (first - other).abs().max() > 1e-3  # the accuracies matter, not only the cells


def test_evaluations_encoder_ignores_accuracy_level() -> None:
    """Support accuracies are standardised within the set: a task's absolute level (CIFAR-10
    at 94 %, ImageNet16-120 at 47 %) must not decide the embedding, only the order."""
    network = _network("evaluations")
    cells = SPACE.encode(SPACE.sample(5, np.random.default_rng(1)))
    values = torch.tensor([40.0, 45.0, 30.0, 47.0, 20.0])
    with torch.no_grad():
        low = network.encode_task(TaskData(support_cells=cells, support_values=values))
        high = network.encode_task(TaskData(support_cells=cells, support_values=2 * values + 3))
    torch.testing.assert_close(low, high, atol=1e-5, rtol=1e-5)


def test_images_encoder_is_invariant_to_image_and_class_order() -> None:
    network = _network("images")
    images = torch.randn(4, 6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    within = torch.stack([task[torch.randperm(6)] for task in images])
    shuffled = within[torch.tensor([2, 0, 3, 1])]
    with torch.no_grad():
        first = network.encode_task(TaskData(images=images))
        second = network.encode_task(TaskData(images=shuffled))
        fewer = network.encode_task(TaskData(images=images[:3]))
    torch.testing.assert_close(first, second, atol=1e-5, rtol=1e-5)
    assert first.shape == fewer.shape == (SMALL["task_dim"],)


def test_a_task_with_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        _network("images").encode_task(TaskData(images=torch.randn(1, 4, 1, 8, 8)))
    archs = SPACE.sample(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="images of 1 class"):
        MetaTask("one", archs, np.array([1.0, 2.0]), images=[torch.randn(3, 1, 8, 8)])


def _image_folder(root: Path) -> Path:
    """Three classes of 12 PNG images each: dark, bright and striped."""
    rng = np.random.default_rng(0)
    patterns = {
        "dark": lambda: rng.integers(0, 60, (16, 16)),
        "bright": lambda: rng.integers(190, 256, (16, 16)),
        "striped": lambda: np.tile([0, 255], (16, 8)) + rng.integers(0, 20, (16, 16)),
    }
    for name, pattern in patterns.items():
        (root / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(pattern(), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_images_encoder_works_on_an_image_folder(tmp_path: Path) -> None:
    data = load_image_folder(_image_folder(tmp_path / "images"), resolution=16)
    pools = [data.train.images[data.train.labels == c] for c in range(data.num_classes)]
    images = sample_class_images(pools, 20, np.random.default_rng(0))  # fewer: with replacement
    assert images.shape == (3, 20, data.in_channels, 16, 16)
    with torch.no_grad():
        embedding = _network("images").encode_task(TaskData(images=images))
    assert embedding.shape == (SMALL["task_dim"],) and torch.isfinite(embedding).all()


def test_images_encoder_tells_real_tasks_apart() -> None:
    """Digit class subsets, 20 images per class, from the real digits dataset."""
    data = load_digits(seed=0)
    train = data.train
    pools = [train.images[train.labels == c] for c in range(10)]
    rng = np.random.default_rng(0)
    network = _network("images")
    with torch.no_grad():
        embed = [
            network.encode_task(TaskData(images=sample_class_images(pools[a:b], 20, rng)))
            for a, b in ((0, 5), (0, 5), (5, 10))
        ]
    assert all(torch.isfinite(e).all() for e in embed)
    same, different = (embed[0] - embed[1]).norm(), (embed[0] - embed[2]).norm()
    assert same < different


def _fake_tasks(num: int, seed: int, flip: bool = False) -> list[MetaTask]:
    """Accuracies linear in each edge's operation, task weights near a shared base; with
    ``flip``, half the tasks prefer the opposite operations (tasks disagree)."""
    rng = np.random.default_rng(seed)
    archs = SPACE.sample(400, np.random.default_rng(99))
    onehot = SPACE.encode(archs)[:, 1:-1, 2:].flatten(1).numpy()  # [n, 6 * 5]
    base = np.random.default_rng(7).normal(size=onehot.shape[1])
    tasks = []
    for i in range(num):
        sign = -1.0 if flip and i % 2 else 1.0
        weights = sign * base + 0.2 * rng.normal(size=base.shape)
        values = 70 + 3 * onehot @ weights + 0.1 * rng.normal(size=len(archs))
        tasks.append(MetaTask(f"fake{i}", archs, values))
    return tasks


def _meta_train(tasks: list[MetaTask], steps: int, **config) -> object:
    cfg = MetaPredictorConfig(steps=steps, queries_per_task=32, **{**SMALL, **config})
    return train_meta_predictor(SPACE, SDE, MetaDataset("nb201", tasks), cfg, device="cpu")


def test_meta_predictor_ranks_a_held_out_task_above_chance() -> None:
    tasks = _fake_tasks(5, seed=0)
    predictor = _meta_train(tasks[:4], steps=150)
    report = evaluate_on_tasks(predictor, MetaDataset("nb201", tasks[4:]), support_sizes=(0,))
    assert report["fake4"]["support 0"]["spearman"] > 0.3  # chance: 0 +- 0.05 on 400 cells


def test_support_set_conditions_the_ranking() -> None:
    """Tasks of two opposite families: without support the held-out task's family is unknown
    and the ranking is near chance; ten evaluated cells tell the family."""
    tasks = _fake_tasks(9, seed=1, flip=True)
    predictor = _meta_train(tasks[:8], steps=800, max_support=10, lr=3e-3)
    held_out = MetaDataset("nb201", tasks[8:])  # task 8: the first family
    report = evaluate_on_tasks(predictor, held_out, support_sizes=(0, 10))["fake8"]
    assert abs(report["support 0"]["spearman"]) < 0.5
    assert report["support 10"]["spearman"] > 0.6


def test_unconditioned_meta_predictor_ignores_the_task_but_learns_the_pooled_ranking() -> None:
    tasks = _fake_tasks(5, seed=0)
    predictor = _meta_train(tasks[:4], steps=150, encoder="none")
    archs = tasks[4].archs[:50]
    support = predictor.support(archs[:3], [90.0, 80.0, 70.0])
    np.testing.assert_array_equal(
        predictor.conditioned([support]).predict(archs),
        predictor.conditioned([TaskData()]).predict(archs),
    )
    report = evaluate_on_tasks(predictor, MetaDataset("nb201", tasks[4:]))
    assert set(report["fake4"]) == {"none"}
    assert report["fake4"]["none"]["spearman"] > 0.3  # the tasks share a base: pooling helps


def test_meta_predictor_round_trips_and_refuses_corrupt_folders(tmp_path: Path) -> None:
    predictor = _meta_train(_fake_tasks(2, seed=2), steps=2)
    save_meta_predictor(predictor, tmp_path / "meta")
    loaded = load_meta_predictor(tmp_path / "meta", "cpu")
    archs = SPACE.sample(5, np.random.default_rng(3))
    support = [predictor.support(archs[:2], [90.0, 80.0])]
    expected = predictor.conditioned(support).predict(archs)
    np.testing.assert_allclose(loaded.conditioned(support).predict(archs), expected, rtol=1e-6)
    assert loaded.trained_on == ["fake0", "fake1"]
    config = tmp_path / "meta" / "meta_predictor.json"
    header = json.loads(config.read_text())
    header["config"]["hidden"] = -4
    config.write_text(json.dumps(header))
    with pytest.raises(
        ValueError,
        match=r"meta_predictor.json: field 'config.hidden' must be in \[1, 4096\], got -4",
    ):
        load_meta_predictor(tmp_path / "meta")


def test_meta_dataset_reader_names_file_and_line(tmp_path: Path) -> None:
    good = tmp_path / "rows.jsonl"
    cells = [SPACE.to_string(a) for a in SPACE.sample(2, np.random.default_rng(0))]
    good.write_text(
        json.dumps({"type": "header", "space": "nb201"})
        + "\n"
        + "\n".join(
            json.dumps({"task": "a", "cell": c, "accuracy": v})
            for c, v in zip(cells, (1, 2), strict=True)
        )
        + "\n"
    )
    assert read_meta_dataset(good, SPACE).task_names == ["a"]
    other = tmp_path / "mbv3.jsonl"
    other.write_text(json.dumps({"task": "a", "cell": "ks3_e3", "accuracy": 1.0}) + "\n")
    with pytest.raises(ValueError, match=r"mbv3.jsonl line 1: .*meta-dataset for space 'nb201'"):
        read_meta_dataset(other, SPACE)


@pytest.fixture(scope="module")
def full_fake_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every NB201 cell with made-up accuracies: generated cells are always in the table."""
    path = tmp_path_factory.mktemp("full") / "table.csv"
    return write_fake_table(path, len(SPACE.enumerate()), seed=1)


@pytest.fixture(scope="module")
def meta_folder(full_fake_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("meta") / "meta"
    argv = ["meta-train", "--table", str(full_fake_table), "--table-tasks", "cifar100",
            "ImageNet16-120", "--holdout", "nb201:ImageNet16-120", "--steps", "20", "--out",
            str(out), "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    return out


TRANSFER = ["--benchmark", "nb201:cifar10", "--budget", "3", "--candidates", "8", "--steps", "5",
            "--quiet"]  # fmt: skip


def test_transfer_end_to_end_on_a_fake_table(
    full_fake_table: Path, meta_folder: Path, tmp_path: Path, capsys
) -> None:
    header = json.loads((meta_folder / "meta_predictor.json").read_text())
    assert header["meta"]["tasks"] == ["nb201:cifar100"]
    assert set(header["meta"]["held_out"]["nb201:ImageNet16-120"]) == {"support 0", "support 10"}
    out = tmp_path / "run.json"
    argv = ["transfer", *TRANSFER, "--table", str(full_fake_table), "--meta-predictor",
            str(meta_folder), "--out", str(out)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["num_evaluated"] == 3
    assert result["transfer"]["trained_on"] == ["nb201:cifar100"]
    assert result["transfer"]["candidates"] == 8
    assert "chosen cell:" in printed and "trained on nb201:cifar100" in printed
    first = [t["arch"] for t in result["trajectory"]]
    assert main([*argv, "--resume"]) == 0  # a finished run reads back to the same result
    assert [t["arch"] for t in json.loads(out.read_text())["trajectory"]] == first


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--meta-predictor", "{empty}"], "is not a meta-predictor folder"),
        (["--meta-predictor", "{corrupt}"], "meta_predictor.json is corrupt"),
        (["--budget", "0"], "--budget"),
        (["--support", "{no_pairs}"], "holds 0 pairs"),
    ],
)
def test_transfer_bad_input_is_one_line(
    extra: list[str], message: str, full_fake_table: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "meta_predictor.json").write_text("{not json")
    (tmp_path / "no_pairs.json").write_text("[]")
    folders = {name: tmp_path / name for name in ("empty", "corrupt")}
    extra = [e.format(**folders, no_pairs=tmp_path / "no_pairs.json") for e in extra]
    argv = ["transfer", *TRANSFER, "--table", str(full_fake_table), "--out",
            str(tmp_path / "run.json"), *extra]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffusionnag: error:")
    assert message in lines[0]


def test_meta_train_refuses_a_meta_dataset_of_another_space(tmp_path: Path, capsys) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("task,cell,accuracy,space\na,x,1.0,mbv3\n")
    capsys.readouterr()
    assert main(["meta-train", "--meta-dataset", str(rows), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is for search space 'mbv3', not 'nb201'" in err


def test_transfer_to_a_real_training_target(meta_folder: Path, tmp_path: Path) -> None:
    """Digits has no table: every proposed cell is trained, and the support set grows."""
    out = tmp_path / "digits.json"
    argv = ["transfer", "--benchmark", "train:digits", "--meta-predictor", str(meta_folder),
            "--budget", "2", "--candidates", "4", "--steps", "5", "--epochs", "1", "--device",
            "cpu", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    trajectory = json.loads(out.read_text())["trajectory"]
    assert len(trajectory) == 2
    assert all(0 <= t["value"] <= 100 and "test_accuracy" in t["metrics"] for t in trajectory)


def _default_meta_predictor(benchmark: str, space: str, table: Path | None = None) -> Path:
    target = build_target(BenchmarkSpec.parse(benchmark), TargetSettings(table), get_space(space))
    return default_meta_predictor(target)


def test_shipped_meta_predictors_never_saw_their_target(full_fake_table: Path) -> None:
    for target, name in SHIPPED_META.items():
        assert _default_meta_predictor(target.lower(), "nb201", full_fake_table) == ASSETS / name
        predictor = load_meta_predictor(ASSETS / name, "cpu")
        assert target not in predictor.trained_on and len(predictor.trained_on) == 2
        assert predictor.space.name == "nb201" and predictor.config.encoder == "evaluations"
    everything = load_meta_predictor(ASSETS / SHIPPED_ALL_TABLES, "cpu")
    assert sorted(everything.trained_on) == sorted(SHIPPED_META)
    images = load_meta_predictor(_default_meta_predictor("task:digits/c0-1/n5/r8/s0", "nb201"))
    assert images.config.encoder == "images" and len(images.trained_on) == 100
    # a user's images are read too, where a table meta-predictor would read none
    assert _default_meta_predictor("train:digits", "nb201") == ASSETS / SHIPPED_IMAGES
    assert all(task.startswith("fashion-mnist/") for task in images.trained_on)
    with pytest.raises(ValueError, match="no meta-predictor ships for space 'mbv3'"):
        _default_meta_predictor("train:digits", "mbv3")


def test_transfer_bo_starts_from_the_transfer_ranking_then_refines(
    full_fake_table: Path, meta_folder: Path, tmp_path: Path, capsys
) -> None:
    """Its first ``num_init`` (5) cells are exactly the transfer strategy's; the rest come from
    the BO loop (distinct, new), and a finished run reads back unchanged."""
    common = ["--benchmark", "nb201:cifar10", "--candidates", "8", "--round-samples", "50",
              "--table", str(full_fake_table), "--meta-predictor", str(meta_folder),
              "--quiet"]  # fmt: skip
    plain, bo = tmp_path / "transfer.json", tmp_path / "bo.json"
    assert main(["transfer", *common, "--budget", "5", "--out", str(plain)]) == 0
    argv = ["transfer", *common, "--strategy", "transfer-bo", "--budget", "8", "--out", str(bo)]
    assert main(argv) == 0
    result = json.loads(bo.read_text())
    cells = [t["arch"] for t in result["trajectory"]]
    assert result["transfer"]["strategy"] == "transfer-bo"
    assert result["settings"]["strategy"] == "transfer-bo"
    assert cells[:5] == [t["arch"] for t in json.loads(plain.read_text())["trajectory"]]
    assert len({SPACE.canonical_key(SPACE.from_string(c)) for c in cells}) == 8
    assert main([*argv, "--resume"]) == 0
    assert [t["arch"] for t in json.loads(bo.read_text())["trajectory"]] == cells
    capsys.readouterr()
    assert main([*argv, "--resume", "--scale", "3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "diffusionnag: error: --scale only apply to --strategy transfer"
    )


def test_transfer_bo_prior_line_clamps_a_backward_prior() -> None:
    prior = np.array([0.0, 1.0, 2.0, 3.0])
    assert _line(prior, 2 * prior + 1) == pytest.approx((2.0, 1.0))
    assert _line(prior, -prior + 5) == pytest.approx((0.0, 3.5))  # the values' mean
    assert _line(np.ones(4), prior) == pytest.approx((0.0, 1.5))
