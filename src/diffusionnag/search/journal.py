"""The run journal: a JSONL file written as the search happens, and atomic result files.

Line 1 is a header with the run's settings; every further line is one trial, flushed and
fsynced before the next evaluation starts, so a killed run loses at most the evaluation in
flight. A torn last line (the process died mid-write) is dropped on resume.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from diffusionnag.search.history import Trial
from diffusionnag.spaces.base import SearchSpace

JOURNAL_FORMAT = 1


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


class Journal:
    """An open journal; :meth:`append` writes one trial line durably."""

    def __init__(self, path: Path, space: SearchSpace) -> None:
        self.path = path
        self._space = space
        self._handle = path.open("a", encoding="utf-8")

    def append(self, trial: Trial) -> None:
        self._write({"type": "trial", **trial.to_json(self._space)})

    def close(self) -> None:
        self._handle.close()

    def _write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(record, allow_nan=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())


def create_journal(path: str | Path, header: Mapping[str, Any], space: SearchSpace) -> Journal:
    """Start a new journal at ``path``; refuses to overwrite an existing one."""
    path = Path(path)
    if path.exists():
        raise ValueError(
            f"journal {path} already exists; pass resume=True to continue it, "
            "or choose another path"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    journal = Journal(path, space)
    journal._write({"type": "header", **header})
    return journal


def resume_journal(
    path: str | Path, header: Mapping[str, Any], space: SearchSpace
) -> tuple[Journal, list[Trial]]:
    """Open ``path`` for appending and return its trials; the header must equal ``header``."""
    path = Path(path)
    records = _read_records(path)
    if not records or records[0].get("type") != "header":
        raise ValueError(f"journal {path} does not start with a header line")
    _check_header(path, records[0], header)
    trials = []
    for number, record in enumerate(records[1:], start=2):
        if record.get("type") != "trial":
            raise ValueError(f"journal {path}, line {number}: expected a trial record")
        trials.append(Trial.from_json(record, space))
    return Journal(path, space), trials


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Complete lines as JSON objects; a torn final line is cut off the file."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    records = []
    for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"journal {path}, line {number} is not JSON: {err}") from err
        if not isinstance(record, dict):
            raise ValueError(f"journal {path}, line {number} is not a JSON object")
        records.append(record)
    return records


def _check_header(path: Path, found: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    expected = json.loads(json.dumps({"type": "header", **expected}))
    names = sorted(set(found) | set(expected))
    diffs = [
        f"{name}: journal {found.get(name)!r}, now {expected.get(name)!r}"
        for name in names
        if found.get(name) != expected.get(name)
    ]
    if diffs:
        raise ValueError(
            f"cannot resume {path}: it was written with different settings ("
            + "; ".join(diffs)
            + "); rerun with the journal's settings or start a new journal"
        )
