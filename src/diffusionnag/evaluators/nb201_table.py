"""NAS-Bench-201 answered by table look-up instead of training.

The numbers are NATS-Bench's ``get_more_info(i, dataset, hp='200')['test-accuracy']``: test
accuracy (%) after 200 epochs, averaged over the benchmark's training seeds. "Test" is not the
same split on every dataset, so each answer names it (:data:`TEST_SPLITS`): CIFAR-10 is trained on
train+valid and scored on the full test set (``ori-test``); CIFAR-100 and ImageNet16-120 are
scored on the ``x-test`` half of their test sets. The table has no validation accuracy.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import numpy as np

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.shared_data import TABLE_ENV_VAR
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.nb201 import EDGES, NB201Space

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
TEST_SPLITS = {"cifar10": "ori-test", "cifar100": "x-test", "ImageNet16-120": "x-test"}
EPOCHS = 200
ARCH_COLUMN = "ArchitectureString"
KEY_COLUMN = "UniqueString"
ACCURACY_COLUMNS = {
    "cifar10": "CIFAR10TestAccuracy200Epochs",
    "cifar100": "CIFAR100TestAccuracy200Epochs",
    "ImageNet16-120": "ImageNetTestAccuracy200Epochs",
}


def resolve_dataset(name: str) -> str:
    """The benchmark's spelling of ``name`` (matched case-insensitively)."""
    if isinstance(name, str):
        for known in DATASETS:
            if name.lower() == known.lower():
                return known
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)} (any letter case)")


class NB201Table:
    """Test accuracy of every cell in the table, for the three NAS-Bench-201 datasets.

    Rows keep the order of the source (benchmark index order for the shared CSV); ``archs`` and
    ``accuracies(dataset)`` are aligned with it. ``unique_strings`` holds the benchmark's
    ``UniqueString`` column when the source has one.
    """

    def __init__(
        self,
        archs: Sequence[Arch],
        accuracies: Mapping[str, Sequence[float] | np.ndarray],
        unique_strings: Sequence[str] | None = None,
        source: str = "<memory>",
    ) -> None:
        self.source = source
        self._archs = tuple(archs)
        self._index = _index_archs(self._archs)
        self._accuracies = _check_accuracies(accuracies, len(self._archs))
        if unique_strings is not None and len(unique_strings) != len(self._archs):
            raise ValueError(
                f"{len(unique_strings)} unique strings given for {len(self._archs)} cells"
            )
        self.unique_strings = None if unique_strings is None else tuple(unique_strings)

    @classmethod
    def from_csv(cls, path: str | Path) -> NB201Table:
        """Load a table with the columns described in ``shared/data/README.md``."""
        path = Path(path)
        header, rows = _read_csv(path)
        archs, values, keys = _parse_rows(path, header, rows)
        accuracies = {dataset: values[:, col] for col, dataset in enumerate(DATASETS)}
        return cls(archs, accuracies, keys, source=str(path))

    @classmethod
    def from_nats_bench(cls, path: str | Path) -> NB201Table:
        """Read the official NATS-Bench topology file (needs the optional ``nats_bench``)."""
        try:
            import nats_bench
        except ImportError as err:
            raise ValueError(
                "reading the official NATS-Bench file needs the nats_bench package: "
                "pip install 'diffusionnag[nats]'; or use NB201Table.from_csv"
            ) from err
        if not Path(path).exists():
            raise ValueError(f"NATS-Bench benchmark file not found: {path}")
        api = nats_bench.create(str(path), "tss", fast_mode=True, verbose=False)
        space = NB201Space()
        archs = [space.from_string(text) for text in api.meta_archs]
        accuracies = {
            dataset: [
                api.get_more_info(i, dataset, hp="200", is_random=False)["test-accuracy"]
                for i in range(len(archs))
            ]
            for dataset in DATASETS
        }
        return cls(archs, accuracies, source=str(path))

    @property
    def archs(self) -> list[Arch]:
        return list(self._archs)

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: object) -> bool:
        return arch in self._index

    def __repr__(self) -> str:
        return f"NB201Table({len(self)} cells from {self.source})"

    def index(self, arch: Arch) -> int:
        """Row of ``arch``; ``ValueError`` when the cell is not in the table."""
        row = self._index.get(arch)
        if row is None:
            shown = NB201Space().to_string(arch) if arch in _all_cells() else repr(arch)
            raise ValueError(f"cell {shown} is not in the table {self.source} ({len(self)} cells)")
        return row

    def query(self, arch: Arch, *, dataset: str) -> EvalResult:
        dataset = resolve_dataset(dataset)
        value = float(self._accuracies[dataset][self.index(arch)])
        return EvalResult(value=value, dataset=dataset, split=TEST_SPLITS[dataset], epochs=EPOCHS)

    def accuracy(self, arch: Arch, dataset: str) -> float:
        """Test accuracy (%) of ``arch``; see :data:`TEST_SPLITS` for which test split."""
        return float(self._accuracies[resolve_dataset(dataset)][self.index(arch)])

    def accuracies(self, dataset: str) -> np.ndarray:
        """Read-only ``[len(self)]`` float64 accuracies aligned with :attr:`archs`."""
        return self._accuracies[resolve_dataset(dataset)]

    def optimum(self, dataset: str) -> tuple[Arch, float]:
        """The best cell (first in row order on ties) and its accuracy."""
        values = self.accuracies(dataset)
        row = int(np.argmax(values))
        return self._archs[row], float(values[row])

    def percentile(self, dataset: str, q: float) -> float:
        """The ``q``-th percentile (0..100, linear interpolation) of the dataset's accuracies."""
        if not 0 <= q <= 100:
            raise ValueError(f"percentile q must lie in [0, 100], got {q}")
        return float(np.percentile(self.accuracies(dataset), q))


class TableEvaluator(Evaluator):
    """An :class:`Evaluator` for one dataset that only ever reveals the cell it is asked about."""

    space_name = NB201Space.name
    value_name = "test accuracy (%)"

    def __init__(self, table: NB201Table, dataset: str) -> None:
        self.dataset = resolve_dataset(dataset)
        self._table = table

    def optimum(self) -> float:
        """The table's best value on this dataset (a plot's reference line)."""
        return self._table.optimum(self.dataset)[1]

    def table_values(self) -> np.ndarray:
        """Every cell's value on this dataset (where a found cell stands among them)."""
        return self._table.accuracies(self.dataset)

    def evaluate(self, arch: Arch) -> EvalResult:
        return self._table.query(arch, dataset=self.dataset)

    def source_accuracy(self, arch: Arch, dataset: str) -> float:
        """``arch``'s accuracy on *another* dataset of the table: what a transfer prior may read
        of its sources; the evaluator's own dataset is refused."""
        source = resolve_dataset(dataset)
        if source == self.dataset:
            raise ValueError(f"{source!r} is the target, not a source")
        return self._table.accuracy(arch, source)

    def protocol(self) -> dict[str, object]:
        """What fixes the answers: the split, the epochs and a digest of the table's column, so
        a journal cannot be resumed against a different table."""
        values = np.ascontiguousarray(self._table.accuracies(self.dataset), dtype=np.float64)
        return {
            "split": TEST_SPLITS[self.dataset],
            "epochs": EPOCHS,
            "table_cells": len(self._table),
            "table_sha256": hashlib.sha256(values.tobytes()).hexdigest()[:16],
        }

    def __repr__(self) -> str:
        return f"TableEvaluator({self.dataset}, {len(self._table)} cells)"


@cache
def _all_cells() -> frozenset[Arch]:
    return frozenset(NB201Space().enumerate())


def _index_archs(archs: Sequence[Arch]) -> dict[Arch, int]:
    index = dict(zip(archs, range(len(archs)), strict=True))
    if not _all_cells().issuperset(index):
        row = next(row for row, arch in enumerate(archs) if arch not in _all_cells())
        raise ValueError(f"row {row}: {archs[row]!r} is not a NAS-Bench-201 cell")
    if len(index) != len(archs):
        row = next(row for row, arch in enumerate(archs) if index[arch] != row)
        raise ValueError(f"cell {archs[row]} appears in rows {row} and {index[archs[row]]}")
    return index


def _check_accuracies(
    accuracies: Mapping[str, Sequence[float] | np.ndarray], size: int
) -> dict[str, np.ndarray]:
    given = {resolve_dataset(name): values for name, values in accuracies.items()}
    missing = [dataset for dataset in DATASETS if dataset not in given]
    if missing:
        raise ValueError(f"accuracies missing for dataset(s): {', '.join(missing)}")
    checked = {}
    for dataset, values in given.items():
        array = np.array(values, dtype=np.float64)
        if array.shape != (size,):
            raise ValueError(f"{dataset}: accuracies of shape {array.shape}, expected ({size},)")
        if not np.isfinite(array).all():
            raise ValueError(f"{dataset}: accuracies contain NaN or infinity")
        array.flags.writeable = False
        checked[dataset] = array
    return checked


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, fields)`` rows; blank lines are skipped."""
    if not path.exists():
        raise ValueError(
            f"NB201 table not found at {path}: pass --table PATH (Python: the table's path) or "
            f"set {TABLE_ENV_VAR} to the NATS-Bench topology CSV"
        )
    if not path.is_file():
        raise ValueError(f"NB201 table path is not a file: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, strict=True)
            try:
                header = next(reader, None)
                rows = [(reader.line_num, row) for row in reader if row]
            except csv.Error as err:
                where = f"{path}, line {reader.line_num}"
                raise ValueError(f"corrupt NB201 table {where}: {err}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"corrupt NB201 table {path}: not UTF-8 CSV text ({err})") from err
    except OSError as err:
        raise ValueError(f"cannot read NB201 table {path}: {err}") from err
    if not header:
        raise ValueError(f"NB201 table {path} is empty: no header line")
    return header, rows


def _parse_rows(
    path: Path, header: list[str], rows: list[tuple[int, list[str]]]
) -> tuple[list[Arch], np.ndarray, list[str] | None]:
    column = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in (ARCH_COLUMN, *ACCURACY_COLUMNS.values()) if name not in column]
    if missing:
        raise ValueError(
            f"NB201 table {path} lacks column(s) {', '.join(missing)}; found: {', '.join(header)}"
        )
    for line, fields in rows:
        if len(fields) != len(header):
            raise ValueError(
                f"corrupt NB201 table {path}, line {line}: "
                f"{len(fields)} fields, the header has {len(header)}"
            )
    archs = _parse_archs(path, rows, column[ARCH_COLUMN])
    values = np.empty((len(rows), len(DATASETS)))
    for col, dataset in enumerate(DATASETS):
        values[:, col] = _parse_floats(path, rows, column[ACCURACY_COLUMNS[dataset]], header)
    key_col = column.get(KEY_COLUMN)
    keys = None if key_col is None else [fields[key_col] for _, fields in rows]
    return archs, values, keys


def _parse_archs(path: Path, rows: list[tuple[int, list[str]]], col: int) -> list[Arch]:
    parser = _GroupCachedParser()
    archs = []
    for line, fields in rows:
        try:
            archs.append(parser.parse(fields[col]))
        except ValueError as err:
            raise ValueError(f"corrupt NB201 table {path}, line {line}: {err}") from err
    if len(set(archs)) != len(archs):
        first: dict[Arch, int] = {}
        for (line, _), arch in zip(rows, archs, strict=True):
            if first.setdefault(arch, line) != line:
                raise ValueError(
                    f"NB201 table {path}: line {line} repeats the cell of line {first[arch]}"
                )
    return archs


def _parse_floats(
    path: Path, rows: list[tuple[int, list[str]]], col: int, header: list[str]
) -> np.ndarray:
    """Column ``col`` as floats: numpy's bulk conversion, or a per-line pass to name a bad cell."""
    texts = [fields[col] for _, fields in rows]
    try:
        values = np.array(texts, dtype=np.float64)
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    return np.array(
        [
            _finite(text, f"NB201 table {path}, line {line}: {header[col]}")
            for (line, _), text in zip(rows, texts, strict=True)
        ]
    )


def _finite(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"corrupt {where} is {text!r}, not a finite number")
    return value


class _GroupCachedParser:
    """Parses cell strings through :meth:`NB201Space.from_string`, one node group at a time.

    A table repeats each of its few hundred distinct node groups thousands of times, so caching
    per group makes loading fast while ``from_string`` stays the only parser (and the only
    author of error messages: anything unusual is handed to it whole).
    """

    def __init__(self) -> None:
        self._space = NB201Space()
        self._blank = self._space.to_string(Arch(NB201Space.name, (0,) * len(EDGES))).split("+")
        self._known: list[dict[str, tuple[int, ...]]] = [{} for _ in self._blank]

    def parse(self, text: str) -> Arch:
        groups = text.split("+") if isinstance(text, str) else []
        if len(groups) == len(self._blank):
            try:
                return self._join(groups)
            except KeyError:
                for k, group in enumerate(groups):
                    self._learn(k, group)
            if all(group in known for group, known in zip(groups, self._known, strict=True)):
                return self._join(groups)
        return self._space.from_string(text)

    def _join(self, groups: list[str]) -> Arch:
        ops: tuple[int, ...] = ()
        for group, known in zip(groups, self._known, strict=True):
            ops += known[group]
        return Arch(NB201Space.name, ops)

    def _learn(self, k: int, group: str) -> None:
        """Parse ``group`` as node ``k + 1``'s group of an otherwise all-``none`` cell."""
        context = [*self._blank]
        context[k] = group
        try:
            ops = self._space.from_string("+".join(context)).ops
        except ValueError:
            return
        slots = [i for i, (_, dst) in enumerate(EDGES) if dst == k + 1]
        self._known[k][group] = tuple(ops[i] for i in slots)
