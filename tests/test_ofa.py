"""The ``ofa:imagenet`` evaluator on the shared once-for-all files: exact costs at width 1.2,
latency summed from the Note10 table, the predictor's measured outputs, budgets, bad files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import shared_ofa_dir

from diffusionnag.evaluators.ofa import (
    LATENCY_FILE,
    LATENCY_RESOLUTIONS,
    PREDICTOR_FILE,
    OFAEvaluator,
    load_ofa_evaluator,
    ofa_evaluator,
)
from diffusionnag.evaluators.ofa_data import MAX_TABLE_BYTES
from diffusionnag.evaluators.shared_data import OFA_ENV_VAR, default_ofa_dir
from diffusionnag.nn.mbv3 import mbv3_costs
from diffusionnag.search.run import search_trials
from diffusionnag.search.strategies import get_strategy
from diffusionnag.spaces.mbv3 import MBV3Space

SPACE = MBV3Space()
LARGEST = SPACE.from_string("/".join(["-".join(["k7e6"] * 4)] * 5))
SMALLEST = SPACE.from_string("/".join(["-".join(["k3e3"] * 2)] * 5))
STRATEGY_OPTIONS = {
    "random": {},
    "evolution": {"population_size": 6, "sample_size": 3},
    "local": {"num_init": 4},
    "bananas": {"num_init": 12},
    "tpe": {"num_init": 8},
    "optuna-gp": {"num_init": 12, "deterministic": True},
}


@pytest.fixture(scope="module")
def ofa_dir() -> Path:
    return shared_ofa_dir()


@pytest.fixture(scope="module")
def evaluator(ofa_dir: Path) -> OFAEvaluator:
    return load_ofa_evaluator(ofa_dir)


def test_sampled_and_evolved_cells_have_the_exact_costs_at_width_1_2(evaluator) -> None:
    sampled = SPACE.sample(40, np.random.default_rng(0))
    strategy = get_strategy("evolution", SPACE, 0, population_size=10, sample_size=3)
    evolved = [t.arch for t in search_trials(strategy, evaluator, SPACE, 40, [])][10:]
    for arch in [*sampled, *evolved, LARGEST, SMALLEST]:
        metrics = evaluator.evaluate(arch).metrics
        exact = mbv3_costs(arch, 224, 1.2)
        assert (metrics["flops"], metrics["params"]) == (exact.flops, exact.params)


def stage_keys(first: tuple, rest: tuple, depth: int, kernel: int, se: int, hs: int) -> list[str]:
    """Keys of one stage written out: ``first``/``rest`` are (input, output, expand) of its
    strided first layer and of the identity-skip layers after it."""
    layer = "expanded_conv-input:{}-output:{}-expand:{}-kernel:{}-stride:{}-idskip:{}-se:{}-hs:{}"
    stride = 1 if first[0].split("x")[0] == first[1].split("x")[0] else 2
    keys = [layer.format(*first, kernel, stride, 0, se, hs)]
    return keys + [layer.format(*rest, kernel, 1, 1, se, hs)] * (depth - 1)


def hand_made_keys(kernel: int, depth: int, expands: list[tuple[int, int]]) -> list[str]:
    """The layers of a uniform subnet at 224 px: stem, first block, five stages, head."""
    sizes = ["112x112x24", "56x56x32", "28x28x48", "14x14x96", "14x14x136", "7x7x192"]
    keys = [
        "Conv-input:224x224x3-output:112x112x24",
        "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1"
        "-idskip:1-se:0-hs:0",
    ]
    flags = [(0, 0), (1, 0), (0, 1), (1, 1), (1, 1)]  # se, h-swish per stage
    for stage, ((first, rest), (se, hs)) in enumerate(zip(expands, flags, strict=True)):
        inp, out = sizes[stage], sizes[stage + 1]
        keys += stage_keys((inp, out, first), (out, out, rest), depth, kernel, se, hs)
    head = [
        "Conv_1-input:7x7x192-output:7x7x1152",
        "AvgPool2D-input:7x7x1152-output:1x1x1152",
        "Conv_2-input:1x1x1152-output:1x1x1536",
        "Logits-input:1x1x1536-output:1000",
    ]
    return [*keys, *head]


def test_latency_of_largest_and_smallest_is_the_hand_made_table_sum(ofa_dir, evaluator) -> None:
    table = yaml.safe_load((ofa_dir / "note10_lookup_table_224.yaml").read_text())
    # expand = input width x ratio: 24, 32, 48, 96, 136 into the stages, 32 ... 192 within
    largest = hand_made_keys(7, 4, [(144, 192), (192, 288), (288, 576), (576, 816), (816, 1152)])
    smallest = hand_made_keys(3, 2, [(72, 96), (96, 144), (144, 288), (288, 408), (408, 576)])
    for arch, keys in [(LARGEST, largest), (SMALLEST, smallest)]:
        expected = sum(table[key]["mean"] for key in keys)
        assert math.isclose(evaluator.evaluate(arch).metrics["latency_ms"], expected, rel_tol=1e-12)


def test_every_latency_table_covers_the_subnets_and_smaller_inputs_run_faster(ofa_dir) -> None:
    latencies = [
        load_ofa_evaluator(ofa_dir, resolution=r).evaluate(LARGEST).metrics["latency_ms"]
        for r in LATENCY_RESOLUTIONS
    ]
    assert latencies == sorted(latencies)
    assert "latency_ms" not in load_ofa_evaluator(ofa_dir, resolution=144).costs(LARGEST)


def test_predictions_match_the_readme_measurements(ofa_dir, evaluator) -> None:
    largest, smallest = evaluator.predict([LARGEST, SMALLEST])
    assert largest == pytest.approx(83.59, abs=0.005)
    assert smallest == pytest.approx(77.74, abs=0.005)
    at_112 = load_ofa_evaluator(ofa_dir, resolution=112).predict([SMALLEST])[0]
    assert at_112 == pytest.approx(76.28, abs=0.005)
    random = evaluator.predict(SPACE.sample(2000, np.random.default_rng(0)))
    assert random.min() > 77.5 and random.max() < 84.5  # README: 78.08 to 83.34 over 20,000
    assert np.median(random) == pytest.approx(81.26, abs=0.1)
    result = evaluator.evaluate(LARGEST)
    assert (result.value, result.dataset, result.failed) == (largest, "imagenet", False)


def test_over_budget_cells_fail_and_strategies_stay_within_budget(ofa_dir) -> None:
    evaluator = ofa_evaluator("imagenet,max_flops=450e6,max_latency_ms=45", ofa_dir)
    over = evaluator.evaluate(LARGEST)
    assert over.failed and math.isnan(over.value) and over.metrics["over_budget"] == 1.0
    space = evaluator.search_space()
    for name, options in STRATEGY_OPTIONS.items():
        strategy = get_strategy(name, space, 0, **options)
        history = search_trials(strategy, evaluator, space, 14, [])
        assert all(t.ok and t.metrics["flops"] <= 450e6 for t in history), name
        assert all(t.metrics["latency_ms"] <= 45 for t in history), name


def test_diffusionnag_bo_is_guided_by_each_budget(ofa_dir) -> None:
    evaluator = ofa_evaluator("imagenet,max_flops=450e6,max_latency_ms=45", ofa_dir)
    space = evaluator.search_space()
    options = {"num_init": 12, "pool_size": 20, "fit_steps": 5, "members": 2}
    options |= {"cost_cells": 64, "cost_epochs": 2, "budget_floor": 0.9}
    strategy = get_strategy("diffusionnag-bo", space, 0, **options)
    budgets = strategy.budget_guidance()
    limits = [(b.metric, b.limit, b.floor) for b in budgets]
    assert limits == [("flops", 450e6, 405e6), ("latency_ms", 45.0, 40.5)]
    history = search_trials(strategy, evaluator, space, 14, [])
    assert all(t.ok and evaluator.within_limits(t.metrics) for t in history)


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("cifar10", "unknown ofa dataset"),
        ("imagenet,width=2", "unknown ofa option 'width'"),
        ("imagenet,max_flops=lots", "is not a number"),
        ("imagenet,resolution=100", "resolution 100 is not one"),
        ("imagenet,resolution=128,max_latency_ms=20", "needs a Note10 latency table"),
        ("imagenet,max_flops=-1", "must be a positive number"),
    ],
)
def test_wrong_arguments_name_the_option(ofa_dir, argument: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ofa_evaluator(argument, ofa_dir)


def folder_with(tmp_path: Path, ofa_dir: Path, name: str, content: bytes) -> Path:
    """A data folder linking the real files, with ``name`` replaced by ``content``."""
    for real in ofa_dir.iterdir():
        (tmp_path / real.name).symlink_to(real)
    (tmp_path / name).unlink(missing_ok=True)
    (tmp_path / name).write_bytes(content)
    return tmp_path / name


def wrong_state_dict() -> bytes:
    buffer = io.BytesIO()
    torch.save({"0.weight": torch.zeros(3, 3)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (PREDICTOR_FILE, b"not a checkpoint", "corrupt or not a checkpoint"),
        (PREDICTOR_FILE, wrong_state_dict(), "is not OFA's accuracy predictor"),
        (LATENCY_FILE.format(resolution=224), b"a: [unclosed", "corrupt latency table"),
        (LATENCY_FILE.format(resolution=224), b"Conv: {mean: -1}", "no non-negative 'mean'"),
        (LATENCY_FILE.format(resolution=224), b"#" * (MAX_TABLE_BYTES + 1), "more than"),
    ],
)
def test_a_wrong_file_is_one_error_line_naming_it(tmp_path, ofa_dir, name, content, message):
    path = folder_with(tmp_path, ofa_dir, name, content)
    with pytest.raises(ValueError, match=message) as error:
        load_ofa_evaluator(tmp_path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_missing_files_name_the_folder_and_the_variable(tmp_path) -> None:
    with pytest.raises(ValueError, match=f"{PREDICTOR_FILE}.*{OFA_ENV_VAR}"):
        load_ofa_evaluator(tmp_path)


def test_default_ofa_dir_honours_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(OFA_ENV_VAR, str(tmp_path))
    assert default_ofa_dir() == tmp_path
    monkeypatch.delenv(OFA_ENV_VAR)
    found = tmp_path / "shared" / "data" / "ofa"
    found.mkdir(parents=True)
    (found / PREDICTOR_FILE).write_bytes(b"")
    assert default_ofa_dir(tmp_path / "repo" / "src") == found


def test_missing_data_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(OFA_ENV_VAR, str(tmp_path / "absent"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="once-for-all data not found"):
        shared_ofa_dir()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        shared_ofa_dir()
