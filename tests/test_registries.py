"""The registries are the only way in: a toy strategy, a toy evaluator and a toy task encoder,
each registered from here alone, run end to end through the CLI and the library; unknown names
list the known ones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from diffusionnag.cli import main
from diffusionnag.diffusion.sde import build_sde
from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.image_data import ImageDataset, Split
from diffusionnag.evaluators.registry import (
    EVALUATORS,
    BenchmarkSpec,
    Target,
    TargetSettings,
    build_target,
    register_evaluator,
)
from diffusionnag.predictors.meta import MetaPredictorConfig
from diffusionnag.predictors.task_encoders import (
    ENCODERS,
    EncoderSettings,
    KnownTask,
    TaskData,
    TaskEncoder,
    register_encoder,
)
from diffusionnag.search.base import SearchStrategy, Seed
from diffusionnag.search.history import History
from diffusionnag.search.strategies import STRATEGIES, get_strategy, register_strategy
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.spaces.nb201 import NB201Space
from diffusionnag.transfer.meta_train import (
    evaluate_on_tasks,
    save_meta_predictor,
    train_meta_predictor,
)
from diffusionnag.transfer.metadata import MetaDataset, MetaTask

SPACE = NB201Space()


@pytest.fixture(autouse=True)
def restore_registries() -> Iterator[None]:
    """What a test registers is gone after it."""
    saved = [(registry, dict(registry)) for registry in (STRATEGIES, EVALUATORS, ENCODERS)]
    yield
    for registry, contents in saved:
        registry.clear()
        registry.update(contents)  # type: ignore[attr-defined]


class LowestFirst(SearchStrategy):
    """Proposes unseen cells in the order of ``space.enumerate()``, skipping ``stride - 1``."""

    name = "lowest-first"

    def __init__(self, space: SearchSpace, seed: Seed = 0, *, stride: int = 1) -> None:
        super().__init__(space, seed)
        self.stride = stride
        self.target_name = ""

    def prepare(self, target: Target) -> None:
        self.target_name = target.name

    def propose(self, history: History, n: int, rng: np.random.Generator) -> list[Arch]:
        batch = self.new_batch(history, n)
        for arch in SPACE.enumerate()[:: self.stride]:
            batch.offer(arch)
        return batch.archs

    def result_sections(self) -> dict[str, object]:
        return {"lowest_first": {"target": self.target_name}}


class OpCountEvaluator(Evaluator):
    """Worth of a cell: how often its operations use operation ``favourite``."""

    space_name = "nb201"

    def __init__(self, favourite: int) -> None:
        self.dataset = f"ops-{favourite}"
        self.favourite = favourite

    def evaluate(self, arch: Arch) -> EvalResult:
        value = 10.0 * sum(op == self.favourite for op in arch.ops)
        return EvalResult(value, self.dataset, "made-up", metrics={"test_accuracy": value})


def _random_images(classes: int, per_class: int, seed: int) -> ImageDataset:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(per_class)
    split = Split(torch.randn(len(labels), 1, 4, 4, generator=generator), labels)
    names = tuple(str(c) for c in range(classes))
    return ImageDataset("random", split, split, split, classes, 1, 4, names)


def _op_count_target(spec: BenchmarkSpec, settings: TargetSettings, space: SearchSpace) -> Target:
    evaluator = OpCountEvaluator(int(spec.argument))
    return Target(spec, evaluator, str(spec), train_data=_random_images(3, 7, settings.seed))


class SizesEncoder(TaskEncoder):
    """A task known only by its training images per class (log), through a small MLP."""

    needs = frozenset({"sizes"})

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, dim), nn.Tanh(), nn.Linear(dim, dim))

    def input_of(self, task: KnownTask, rng: np.random.Generator) -> TaskData:
        assert task.class_images is not None
        per_class = float(np.mean([len(pool) for pool in task.class_images]))
        return TaskData(train_per_class=per_class)

    def forward(self, task: TaskData) -> Tensor:
        assert task.train_per_class is not None
        return self.mlp(torch.tensor([np.log(task.train_per_class)], dtype=torch.float32))


def _sizes_encoder(space: SearchSpace, settings: EncoderSettings, pretrained: bool) -> TaskEncoder:
    return SizesEncoder(settings.task_dim)


def test_a_registered_strategy_and_evaluator_run_a_search_end_to_end(tmp_path: Path) -> None:
    register_strategy("lowest-first", LowestFirst)
    register_evaluator("ops", _op_count_target, "ops:<operation index>")
    out = tmp_path / "run.json"
    argv = ["search", "--strategy", "lowest-first", "--option", "stride=7", "--benchmark",
            "ops:3", "--budget", "5", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    cells = [SPACE.from_string(t["arch"]) for t in result["trajectory"]]
    assert cells == SPACE.enumerate()[::7][:5]  # no isomorphic repeats among these
    assert [t["value"] for t in result["trajectory"]] == [
        10.0 * sum(op == 3 for op in cell.ops) for cell in cells
    ]
    assert result["lowest_first"] == {"target": "ops:3"}
    assert result["settings"]["options"] == {"stride": 7}
    assert result["settings"]["dataset"] == "ops-3"
    assert main([*argv, "--resume"]) == 0  # the journal resumes onto the same run
    assert json.loads(out.read_text())["trajectory"] == result["trajectory"]


def test_a_registered_task_encoder_meta_trains_and_transfers(tmp_path: Path) -> None:
    register_encoder("sizes", _sizes_encoder)
    register_evaluator("ops", _op_count_target, "ops:<operation index>")
    archs = SPACE.sample(60, np.random.default_rng(0))
    tasks = [
        MetaTask(
            f"ops-{op}",
            archs,
            np.array([sum(o == op for o in arch.ops) for arch in archs], dtype=float),
            images=list(_random_images(2, 3 + op, op).train.images.split(3 + op)),
        )
        for op in range(5)
    ]
    config = MetaPredictorConfig(
        encoder="sizes", hidden=16, layers=2, task_dim=8, steps=5, queries_per_task=16
    )
    sde = build_sde("ve", sigma_min=0.05, sigma_max=5.0)
    predictor = train_meta_predictor(SPACE, sde, MetaDataset("nb201", tasks), config, device="cpu")
    report = evaluate_on_tasks(predictor, MetaDataset("nb201", tasks[:1]))
    assert set(report["ops-0"]) == {"sizes"}  # one encoding, labelled by the encoder's name
    save_meta_predictor(predictor, tmp_path / "meta")
    out = tmp_path / "transfer.json"
    argv = ["transfer", "--benchmark", "ops:1", "--meta-predictor", str(tmp_path / "meta"),
            "--budget", "2", "--candidates", "4", "--round-samples", "40", "--steps", "3",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["num_evaluated"] == 2 and result["transfer"]["generation"]
    assert result["transfer"]["meta_predictor"] == str(tmp_path / "meta")
    assert result["transfer"]["trained_on"] == [task.name for task in tasks]


def test_an_encoder_refuses_a_target_without_what_it_reads(
    tmp_path: Path, nb201_small_table_path: Path, capsys
) -> None:
    register_encoder("sizes", _sizes_encoder)
    config = MetaPredictorConfig(encoder="sizes", hidden=16, layers=2, task_dim=8, steps=1)
    archs = SPACE.sample(10, np.random.default_rng(0))
    task = MetaTask("ops", archs, np.arange(10.0), images=[torch.zeros(2, 1, 4, 4)] * 2)
    sde = build_sde("ve", sigma_min=0.05, sigma_max=5.0)
    predictor = train_meta_predictor(SPACE, sde, MetaDataset("nb201", [task]), config, device="cpu")
    save_meta_predictor(predictor, tmp_path / "meta")
    argv = ["transfer", "--benchmark", "nb201:cifar10", "--table", str(nb201_small_table_path),
            "--meta-predictor", str(tmp_path / "meta"), "--out", str(tmp_path / "run.json"),
            "--quiet"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "reads the task's sizes, but target nb201:cifar10 has none" in error


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"use nb201:<dataset>, nb201-valid:<dataset>, train:"):
        BenchmarkSpec.parse("nope:x")
    register_evaluator("ops", _op_count_target, "ops:<operation index>")
    with pytest.raises(
        ValueError, match=r"task:<task name>, ofa:imagenet\[,max_flops=F,.*\] or ops:<operation"
    ):
        BenchmarkSpec.parse("nb201")  # a kind needs its argument
    with pytest.raises(ValueError, match="unknown benchmark kind 'nope'; known: nb201, nb201-val"):
        build_target(BenchmarkSpec("nope", "x"), TargetSettings(), SPACE)
    with pytest.raises(ValueError, match="unknown search strategy 'nope'; known: bananas, "):
        get_strategy("nope", SPACE)
    with pytest.raises(ValueError, match="unknown task encoder 'nope'; known: evaluations, images"):
        MetaPredictorConfig(encoder="nope")
    spec = BenchmarkSpec.parse("task:digits/c0-1/n5/r8/s0")
    assert (spec.kind, spec.argument) == ("task", "digits/c0-1/n5/r8/s0")
    assert str(spec) == "task:digits/c0-1/n5/r8/s0"


def test_transfer_strategies_are_registered_by_name() -> None:
    transfer = get_strategy("transfer", SPACE, 0, candidates=8)
    assert transfer.needs_target and get_strategy("transfer-bo", SPACE, 0).needs_target
    with pytest.raises(ValueError, match="reads its target task"):
        transfer.options()  # nothing is loaded until a target prepares it
