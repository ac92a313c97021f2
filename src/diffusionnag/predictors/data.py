"""Training pairs (architecture, value) for predictors: a user file, a table or a cost model."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from diffusionnag.io import parse_json, parse_jsonl, read_text
from diffusionnag.nn.space_costs import arch_costs
from diffusionnag.spaces import Arch, SearchSpace

COST_METRICS = ("params", "flops")


def load_pairs(path: Path | str, space: SearchSpace) -> tuple[list[Arch], np.ndarray]:
    """Read ``(cell, value)`` pairs from a JSON list / object, a search result or a CSV.

    JSON: ``[{"cell": "...", "value": 93.1}, ...]``, ``[["...", 93.1], ...]``,
    ``{"...": 93.1, ...}`` or the result file of a search run (``{"trajectory": [{"arch":
    "...", "value": 93.1}, ...], ...}``), whose failed trials (``value`` null) are skipped.
    JSONL: the journal of a search run (``run.jsonl``), read the same way as its result.
    CSV: a header row naming ``cell`` and ``value`` columns.
    """
    path = Path(path)
    text = read_text(path, "training data")
    suffix = path.suffix.lower()
    if suffix == ".json":
        rows = _json_rows(text, path, space)
    elif suffix == ".jsonl":
        rows = _run_rows(_journal_as_result(text, path), path, space)
    else:
        rows = _csv_rows(text, path)
    if len(rows) < 2:
        raise ValueError(f"{path} holds {len(rows)} pairs; at least 2 are needed")
    archs, values = [], []
    for where, cell, value in rows:
        try:
            archs.append(space.from_string(str(cell)))
        except ValueError as error:
            raise ValueError(f"{path} {where}: {error}") from None
        values.append(finite_number(value, f"{path} {where}"))
    return archs, np.asarray(values)


def _json_rows(text: str, path: Path, space: SearchSpace) -> list[tuple[str, object, object]]:
    try:
        data = parse_json(text)
    except ValueError as error:  # JSONDecodeError included
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if isinstance(data, dict) and "trajectory" in data:
        return _run_rows(data, path, space)
    if isinstance(data, dict):
        if not all(isinstance(v, int | float | str) for v in data.values()):
            raise ValueError(
                f"{path} holds a JSON object that is neither a search result (with a "
                "'trajectory' list) nor a mapping cell -> value"
            )
        return [(f"key {cell!r}", cell, value) for cell, value in data.items()]
    if not isinstance(data, list):
        raise ValueError(f"{path} must hold a JSON list of pairs or an object cell -> value")
    rows = []
    for i, item in enumerate(data):
        if isinstance(item, dict) and {"cell", "value"} <= item.keys():
            rows.append((f"item {i}", item["cell"], item["value"]))
        elif isinstance(item, list | tuple) and len(item) == 2:
            rows.append((f"item {i}", item[0], item[1]))
        else:
            raise ValueError(f"{path} item {i} is not a (cell, value) pair: {item!r}")
    return rows


def _journal_as_result(text: str, path: Path) -> dict:
    """A search journal (header line, then one trial per line) in the shape of its result
    file; a torn last line (a run still writing, or killed) is left out."""
    complete = text[: text.rfind("\n") + 1]  # the text after the last newline is empty or torn
    records = [record for _, record in parse_jsonl(complete, str(path))]
    if not records or not isinstance(records[0], dict) or records[0].get("type") != "header":
        raise ValueError(f"{path} is not a search journal: line 1 is not a header")
    return {"settings": records[0], "trajectory": records[1:]}


def _run_rows(result: dict, path: Path, space: SearchSpace) -> list[tuple[str, object, object]]:
    """The evaluated trials of a ``run_search`` result; failed ones have no value to learn."""
    settings = result.get("settings")
    run_space = settings.get("space") if isinstance(settings, dict) else None
    if run_space is not None and run_space != space.name:
        raise ValueError(f"{path} is a search in space {run_space!r}, not {space.name!r}")
    trajectory = result["trajectory"]
    if not isinstance(trajectory, list):
        raise ValueError(f"{path}: 'trajectory' must be a list of trials")
    rows = []
    for i, trial in enumerate(trajectory):
        if not (isinstance(trial, dict) and {"arch", "value"} <= trial.keys()):
            raise ValueError(f"{path} trajectory item {i} is not a trial with 'arch' and 'value'")
        if trial["value"] is not None:
            rows.append((f"trajectory item {i}", trial["arch"], trial["value"]))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[str, object, object]]:
    reader = csv.DictReader(text.splitlines())
    missing = {"cell", "value"} - set(reader.fieldnames or [])
    if missing:
        raise ValueError(
            f"{path} needs a header with columns cell,value; missing: {sorted(missing)}"
        )
    return [(f"line {n}", row["cell"], row["value"]) for n, row in enumerate(reader, start=2)]


def finite_number(value: object, where: str, what: str = "value") -> float:
    """``value`` as a finite float; ``ValueError`` naming ``where`` and ``what`` otherwise."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: {what} {value!r} is not a finite number")
    return number


def cost_pairs(
    space: SearchSpace, metric: str, num: int, rng: np.random.Generator
) -> tuple[list[Arch], np.ndarray]:
    """``num`` uniformly sampled architectures with their exact cost from the space's model."""
    if metric not in COST_METRICS:
        raise ValueError(f"unknown cost {metric!r}; known: {', '.join(COST_METRICS)}")
    archs = space.sample(num, rng)
    return archs, np.array([arch_costs(arch)[metric] for arch in archs])
