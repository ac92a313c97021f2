"""Noise-aware predictors: they learn, rank unseen cells, repeat by seed, and save/load exactly;
training pairs load from the documented file formats or fail naming the file and the problem."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau, spearmanr

from diffusionnag.diffusion.sde import VESDE
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.predictors.data import COST_METRICS, cost_pairs, load_pairs
from diffusionnag.predictors.noise_aware import NoiseAwareEnsemble, train_noise_aware_ensemble
from diffusionnag.predictors.objective import (
    PredictorConfig,
    TrainedPredictor,
    load_predictor,
    save_predictor,
    train_predictor,
)
from diffusionnag.spaces import Arch
from diffusionnag.spaces.nb201 import OPERATIONS, NB201Space

SPACE = NB201Space()
SDE = VESDE()
# No floor: these tests check plain regression; the floor has its own test.
TINY = PredictorConfig(hidden=16, layers=1, epochs=20, floor_quantile=0.0)
CONV3 = OPERATIONS.index("nor_conv_3x3")
NUM_TRAIN = 200


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """Tiny networks run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def conv3_count(archs: list[Arch]) -> np.ndarray:
    """An easy target with a known ranking: how many edges hold a 3x3 convolution."""
    return np.array([arch.ops.count(CONV3) for arch in archs], dtype=float)


@pytest.fixture(scope="module")
def cells() -> tuple[list[Arch], np.ndarray]:
    archs = SPACE.sample(300, np.random.default_rng(0))
    return archs, conv3_count(archs)


@pytest.fixture(scope="module")
def fitted(cells: tuple[list[Arch], np.ndarray]) -> TrainedPredictor:
    archs, values = cells
    return train_predictor(
        SPACE, SDE, archs[:NUM_TRAIN], values[:NUM_TRAIN], TINY, device="cpu", meta={"tag": "t"}
    )


def _mse(predictor: TrainedPredictor, archs: list[Arch], values: np.ndarray) -> float:
    return float(np.mean((predictor.predict(archs) - values) ** 2))


def test_training_reduces_the_regression_loss(
    cells: tuple[list[Arch], np.ndarray], fitted: TrainedPredictor
) -> None:
    archs, values = cells[0][:NUM_TRAIN], cells[1][:NUM_TRAIN]
    # Zero epochs: the same seeded initial network, with the same target standardisation.
    untrained = train_predictor(
        SPACE, SDE, archs, values, dataclasses.replace(TINY, epochs=0), device="cpu"
    )
    before, after = _mse(untrained, archs, values), _mse(fitted, archs, values)
    assert before > 0.5 * values.var()  # an untrained network is no better than the mean
    assert after < 0.1 * before


def test_same_seed_gives_identical_predictions(cells: tuple[list[Arch], np.ndarray]) -> None:
    archs, values = cells[0][:64], cells[1][:64]
    config = dataclasses.replace(TINY, epochs=3)
    rng_state = torch.random.get_rng_state()
    first = train_predictor(SPACE, SDE, archs, values, config, device="cpu").predict(archs)
    second = train_predictor(SPACE, SDE, archs, values, config, device="cpu").predict(archs)
    other = dataclasses.replace(config, seed=1)
    reseeded = train_predictor(SPACE, SDE, archs, values, other, device="cpu").predict(archs)
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # global RNG left alone
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, reseeded)


def test_ranks_held_out_cells(
    cells: tuple[list[Arch], np.ndarray], fitted: TrainedPredictor
) -> None:
    archs, values = cells[0][NUM_TRAIN:], cells[1][NUM_TRAIN:]
    predicted = fitted.predict(archs)
    assert spearmanr(predicted, values).statistic > 0.9
    assert kendalltau(predicted, values).statistic > 0.8


def test_predictions_are_in_the_target_units(
    cells: tuple[list[Arch], np.ndarray], fitted: TrainedPredictor
) -> None:
    archs, values = cells[0][:NUM_TRAIN], cells[1][:NUM_TRAIN]
    assert fitted.mean == pytest.approx(values.mean())
    assert fitted.scale == pytest.approx(values.std())
    assert fitted.predict(archs).mean() == pytest.approx(values.mean(), abs=0.2 * values.std())
    # An affine change of units leaves the standardised targets, hence the network, unchanged.
    shifted = train_predictor(SPACE, SDE, archs, 1000 + 50 * values, TINY, device="cpu")
    held_out = cells[0][NUM_TRAIN:]
    np.testing.assert_allclose(
        shifted.predict(held_out), 1000 + 50 * fitted.predict(held_out), rtol=1e-4
    )


def test_floor_raises_low_targets_to_the_quantile(cells: tuple[list[Arch], np.ndarray]) -> None:
    archs, values = cells[0][:64], cells[1][:64]
    config = dataclasses.replace(TINY, epochs=3, floor_quantile=0.3)
    floored = np.maximum(values, np.quantile(values, 0.3))
    assert (floored != values).any()
    with_floor = train_predictor(SPACE, SDE, archs, values, config, device="cpu")
    no_floor = dataclasses.replace(config, floor_quantile=0.0)
    prefloored = train_predictor(SPACE, SDE, archs, floored, no_floor, device="cpu")
    assert with_floor.mean == pytest.approx(floored.mean())
    np.testing.assert_array_equal(with_floor.predict(archs), prefloored.predict(archs))
    with pytest.raises(ValueError, match=r"field .floor_quantile. must be in \[0, 1\), got 1.0"):
        train_predictor(SPACE, SDE, archs, values, dataclasses.replace(TINY, floor_quantile=1.0))


@pytest.fixture(scope="module")
def ensemble(cells: tuple[list[Arch], np.ndarray]) -> NoiseAwareEnsemble:
    archs, values = cells
    return train_noise_aware_ensemble(
        SPACE, SDE, archs[:NUM_TRAIN], values[:NUM_TRAIN], TINY, members=3, device="cpu"
    )


def test_ensemble_members_are_independent_predictors(
    cells: tuple[list[Arch], np.ndarray], ensemble: NoiseAwareEnsemble
) -> None:
    archs, values = cells[0][NUM_TRAIN:], cells[1][NUM_TRAIN:]
    members = ensemble.member_predictions(archs)
    assert members.shape == (3, len(archs))
    assert np.abs(members[0] - members[1]).max() > 1e-3  # their own initialisation and batches
    for member in members:
        assert spearmanr(member, values).statistic > 0.85
    np.testing.assert_allclose(ensemble.predict(archs), members.mean(0), rtol=1e-6)
    # The vmapped call is each member's own network with its slice of the stacked weights.
    x = SPACE.encode(archs[:5]) * 0.7 + 0.1
    t = torch.full((5,), 0.4)
    for m in range(3):
        network = copy.deepcopy(ensemble.template)
        network.load_state_dict(
            {k: v[m] for k, v in {**ensemble.params, **ensemble.buffers}.items()}
        )
        torch.testing.assert_close(
            ensemble.member_outputs(x, t)[m], network(x, SDE.std(t)), rtol=1e-5, atol=1e-6
        )


def test_ensemble_is_deterministic_by_seed_and_guides(
    cells: tuple[list[Arch], np.ndarray], ensemble: NoiseAwareEnsemble
) -> None:
    archs, values = cells[0][:NUM_TRAIN], cells[1][:NUM_TRAIN]
    again = train_noise_aware_ensemble(SPACE, SDE, archs, values, TINY, members=3, device="cpu")
    np.testing.assert_array_equal(
        again.member_predictions(cells[0][NUM_TRAIN:]),
        ensemble.member_predictions(cells[0][NUM_TRAIN:]),
    )
    x = SPACE.encode(archs[:4]).requires_grad_(True)
    (grad,) = torch.autograd.grad(ensemble.standardised(x, torch.full((4,), 0.3)).sum(), x)
    assert grad.shape == x.shape and grad.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one member, got 0"):
        train_noise_aware_ensemble(SPACE, SDE, archs, values, TINY, members=0, device="cpu")


def test_train_predictor_rejects_bad_values(cells: tuple[list[Arch], np.ndarray]) -> None:
    archs = cells[0][:4]
    with pytest.raises(ValueError, match="at least two architectures, each with one value"):
        train_predictor(SPACE, SDE, archs, [1.0, 2.0], TINY, device="cpu")
    with pytest.raises(ValueError, match="at least two"):
        train_predictor(SPACE, SDE, archs[:1], [1.0], TINY, device="cpu")
    with pytest.raises(ValueError, match="finite"):
        train_predictor(SPACE, SDE, archs, [1.0, float("nan"), 2.0, 3.0], TINY, device="cpu")


def test_save_load_round_trip(
    cells: tuple[list[Arch], np.ndarray], fitted: TrainedPredictor, tmp_path: Path
) -> None:
    folder = tmp_path / "predictor"
    save_predictor(fitted, folder, TINY)
    assert sorted(p.name for p in folder.iterdir()) == ["predictor.json", "predictor.pt"]
    loaded = load_predictor(folder, device="cpu")
    np.testing.assert_array_equal(loaded.predict(cells[0]), fitted.predict(cells[0]))
    assert (loaded.mean, loaded.scale, loaded.meta) == (fitted.mean, fitted.scale, {"tag": "t"})
    assert loaded.sde == SDE and loaded.space.name == "nb201"
    assert not loaded.network.training


@pytest.fixture
def saved(fitted: TrainedPredictor, tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    save_predictor(fitted, folder, TINY)
    return folder


def test_load_errors_name_the_file(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not a predictor folder: predictor\.json is missing"):
        load_predictor(tmp_path / "nowhere", device="cpu")
    weights = saved / "predictor.pt"
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"predictor\.pt is corrupt or not a checkpoint"):
        load_predictor(saved, device="cpu")
    weights.unlink()
    with pytest.raises(ValueError, match=r"predictor\.pt is missing"):
        load_predictor(saved, device="cpu")
    (saved / "predictor.json").write_text("{ truncated")
    with pytest.raises(ValueError, match=r"predictor\.json is corrupt"):
        load_predictor(saved, device="cpu")


def test_weights_that_do_not_fit_the_config_are_named(saved: Path) -> None:
    header_path = saved / "predictor.json"
    header = json.loads(header_path.read_text())
    header["config"]["hidden"] = 32
    header_path.write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"predictor\.pt do not fit its config"):
        load_predictor(saved, device="cpu")


def test_header_without_mean_is_reported_as_corrupt(saved: Path) -> None:
    header_path = saved / "predictor.json"
    header = json.loads(header_path.read_text())
    del header["mean"]
    header_path.write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"predictor\.json lacks field\(s\) mean"):
        load_predictor(saved, device="cpu")


# ---- training pairs from files ----------------------------------------------------------------

PAIRS = [
    (SPACE.to_string(a), v)
    for a, v in [(Arch("nb201", (3,) * 6), 93.5), (Arch("nb201", (0, 1, 2, 3, 4, 0)), 41.25)]
]


def _run_result(pairs: list[tuple[str, float | None]]) -> dict:
    """What ``run_search`` writes, trimmed to what ``load_pairs`` reads; None marks a failure."""
    trajectory = [
        {"index": i, "arch": cell, "value": value, "failed": value is None}
        for i, (cell, value) in enumerate(pairs)
    ]
    return {"settings": {"space": "nb201"}, "num_evaluated": len(pairs), "trajectory": trajectory}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("list.json", json.dumps([{"cell": c, "value": v} for c, v in PAIRS])),
        ("pairs.json", json.dumps([[c, v] for c, v in PAIRS])),
        ("mapping.json", json.dumps(dict(PAIRS))),
        ("run.json", json.dumps(_run_result([PAIRS[0], (PAIRS[1][0], None), PAIRS[1]]))),
        ("pairs.csv", "value,cell\n" + "".join(f"{v},{c}\n" for c, v in PAIRS)),
    ],
)
def test_load_pairs_reads_every_format(tmp_path: Path, name: str, text: str) -> None:
    archs, values = load_pairs(_write(tmp_path, name, text), SPACE)
    assert archs == [SPACE.from_string(c) for c, _ in PAIRS]
    np.testing.assert_array_equal(values, [v for _, v in PAIRS])
    assert values.dtype == np.float64


GOOD, OTHER = PAIRS[0][0], PAIRS[1][0]
BAD_CELL = GOOD.replace("nor_conv_3x3~0", "conv_9x9~0", 1)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "cell.json",
            json.dumps([[GOOD, 1.0], [BAD_CELL, 2.0]]),
            r"cell\.json item 1: unknown operation 'conv_9x9'.*known: none, skip_connect",
        ),
        (
            "cell.csv",
            f"cell,value\n{GOOD},1\n{BAD_CELL},2\n",
            r"cell\.csv line 3: unknown operation 'conv_9x9'",
        ),
        (
            "text.json",
            json.dumps({GOOD: 1.0, OTHER: "high"}),
            r"key .*: value 'high' is not a number",
        ),
        (
            "text.csv",
            f"cell,value\n{GOOD},1\n{OTHER},high\n",
            r"line 3: value 'high' is not a number",
        ),
        ("nan.csv", f"cell,value\n{GOOD},nan\n{OTHER},2\n", r"line 2: value 'nan' is not a finite"),
        ("nan.json", f'[["{GOOD}", NaN], ["{OTHER}", 1]]', r"item 0: value nan is not a finite"),
        (
            "cols.csv",
            f"arch,accuracy\n{GOOD},1\n{OTHER},2\n",
            r"columns cell,value; missing: \['cell'",
        ),
        ("one.json", json.dumps([[GOOD, 1.0]]), r"one\.json holds 1 pairs; at least 2"),
        ("shape.json", json.dumps([[GOOD, 1.0, 2.0]]), r"item 0 is not a \(cell, value\) pair"),
        ("scalar.json", "3", r"must hold a JSON list of pairs or an object"),
        (
            "other.json",
            json.dumps({"settings": {}, "trials": []}),
            r"other\.json holds a JSON object that is neither a search result .* nor a mapping",
        ),
        (
            "failed.json",
            json.dumps(_run_result([PAIRS[0], (PAIRS[1][0], None)])),
            r"failed\.json holds 1 pairs; at least 2",
        ),
        ("steps.json", json.dumps({"trajectory": 3}), r"'trajectory' must be a list of trials"),
        (
            "trial.json",
            json.dumps({"trajectory": [{"cell": GOOD, "value": 1.0}]}),
            r"trajectory item 0 is not a trial with 'arch' and 'value'",
        ),
        (
            "space.json",
            json.dumps({**_run_result(PAIRS), "settings": {"space": "mbv3"}}),
            r"space\.json is a search in space 'mbv3', not 'nb201'",
        ),
        ("broken.json", "[[", r"broken\.json is not valid JSON"),
    ],
)
def test_load_pairs_errors_name_the_place(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_pairs(_write(tmp_path, name, text), SPACE)


def test_load_pairs_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"training data file .*absent\.json does not exist"):
        load_pairs(tmp_path / "absent.json", SPACE)


def test_cost_pairs_are_the_space_costs() -> None:
    for metric in COST_METRICS:
        archs, values = cost_pairs(SPACE, metric, 5, np.random.default_rng(3))
        assert archs == SPACE.sample(5, np.random.default_rng(3))
        assert values.tolist() == [arch_costs(a)[metric] for a in archs]
        assert (values > 0).all()
    with pytest.raises(ValueError, match="unknown cost 'latency'; known: params, flops"):
        cost_pairs(SPACE, "latency", 5, np.random.default_rng(0))
