"""The run journal: a JSONL file written as the search happens, and atomic result files.

Line 1 is a header with everything that defines the run's trajectory; every further line is
one trial, flushed and fsynced before the next evaluation starts, so a killed run loses at most
the evaluation in flight. A torn last line (the process died mid-write) is dropped on resume;
a journal whose only line is a torn header starts afresh.

Corruption is prevented, not detected afterwards: the process that opens a journal holds an
exclusive ``flock`` on it until it closes it (the kernel releases it when the process dies), so
a second writer is refused with the holder's PID, read from the sidecar ``NAME.lock``; and the
trial indices must run 0, 1, 2, ... both when appended and when read back. Where there is no
``flock`` (Windows), opening a journal is refused with one line saying so.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; journals are refused there (see _lock)
    fcntl = None  # type: ignore[assignment]

from diffusionnag.io import parse_json, parse_jsonl
from diffusionnag.pretrained import portable
from diffusionnag.search.history import Trial
from diffusionnag.spaces.base import SearchSpace

JOURNAL_FORMAT = 2
MAX_HEADER_BYTES = 1 << 20
"""A header line longer than this is not read for its epochs (a header is a few KB)."""


class Journal:
    """An open, locked journal; :meth:`append` writes the next trial line durably."""

    def __init__(self, path: Path, space: SearchSpace, handle: Any, next_index: int) -> None:
        self.path = path
        self.next_index = next_index
        self._space = space
        self._handle = handle

    def append(self, trial: Trial) -> None:
        self.append_record(trial.to_json(self._space))

    def append_record(self, record: Mapping[str, Any]) -> None:
        """A trial line with extra fields (a meta-dataset row); ``record["index"]`` must be
        the next index."""
        if record["index"] != self.next_index:
            raise ValueError(
                f"journal {self.path}: trial index {record['index']} appended, "
                f"expected {self.next_index}"
            )
        self._write({"type": "trial", **record})
        self.next_index += 1

    def close(self) -> None:
        if self._handle.closed:
            return
        lock_file = _lock_file(self.path)
        if _holder(lock_file) == os.getpid():
            lock_file.unlink(missing_ok=True)
        self._handle.close()  # releases the lock

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, allow_nan=False) + "\n"
        try:
            self._handle.write(line.encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise ValueError(f"cannot write journal {self.path}: {error.strerror}") from None


def open_journal(
    path: str | Path,
    header: Mapping[str, Any],
    space: SearchSpace,
    *,
    resume: bool,
    option_defaults: Mapping[str, Any] | None = None,
) -> tuple[Journal, list[Trial]]:
    """Lock the journal at ``path`` and return it with its trials.

    ``resume=False`` creates it (refusing an existing file). ``resume=True`` continues it (its
    header must equal ``header``) or creates it when absent or holding only a torn header.
    ``option_defaults``: the strategy's option defaults, which a header's ``options`` written
    before an option existed ran with (a new option's default is the behaviour before it).
    """
    path = Path(path)
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | (0 if resume else os.O_EXCL)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.fdopen(os.open(path, flags, 0o666), "a+b")
    except FileExistsError:
        raise ValueError(
            f"journal {path} already exists: add --resume to continue that run (resume=True "
            "from Python), or choose another output path"
        ) from None
    except OSError as error:
        raise ValueError(f"cannot open journal {path}: {error.strerror}") from None
    try:
        _lock(handle, path)
        journal = Journal(path, space, handle, 0)
        records = _read_records(path, handle)
        if not records:
            journal._write({"type": "header", **header})
            return journal, []
        _check_header(path, _with_defaults(records[0], header, option_defaults or {}), header)
        trials = _trials(path, records[1:], space)
        journal.next_index = len(trials)
        return journal, trials
    except BaseException:
        handle.close()
        raise


def _lock_file(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _holder(lock_file: Path) -> int | None:
    try:
        return int(lock_file.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def _lock(handle: Any, path: Path) -> None:
    """Take the journal's exclusive lock, or say which process holds it. Without ``flock``
    (Windows) a journal cannot be protected from a second writer, so it is refused."""
    if fcntl is None:
        raise ValueError(
            f"journal {path}: journals need POSIX file locks (fcntl), which {sys.platform} "
            "lacks; run on Linux or macOS (WSL on Windows)"
        )
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(_lock_file(path))
        who = f"process {holder}" if holder is not None else "another process"
        raise ValueError(
            f"journal {path} is being written by {who}; wait for that run to end "
            "(only one process may write a journal)"
        ) from None
    _lock_file(path).write_text(str(os.getpid()), encoding="ascii")


def _read_records(path: Path, handle: Any) -> list[dict[str, Any]]:
    """Complete lines as JSON objects; a torn final line is cut off the file."""
    handle.seek(0)
    data = handle.read()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        handle.truncate(len(complete))
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"journal {path} is not UTF-8 text: {error}") from None
    records = []
    for number, record in parse_jsonl(text, f"journal {path}"):
        if not isinstance(record, dict):
            raise ValueError(f"journal {path} line {number} is not a JSON object")
        records.append(record)
    if records and records[0].get("type") != "header":
        raise ValueError(f"journal {path} does not start with a header line")
    return records


def _trials(path: Path, records: list[dict[str, Any]], space: SearchSpace) -> list[Trial]:
    trials = []
    for index, record in enumerate(records):
        where = f"journal {path} line {index + 2}"
        if record.get("type") != "trial":
            raise ValueError(f"{where}: expected a trial record")
        if record.get("index") != index:
            raise ValueError(f"{where}: trial index {record.get('index')!r}, expected {index}")
        try:
            trials.append(Trial.from_json(record, space))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return trials


def _extends(name: str, found: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Whether ``name`` differs only as a budget raised on resume: the budget is counted by
    the loop and no strategy's proposals depend on it."""
    old, new = found.get(name), expected.get(name)
    return name == "budget" and isinstance(old, int) and isinstance(new, int) and new >= old


def _with_defaults(
    found: Mapping[str, Any], expected: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """``found`` with the options that ``expected`` records and ``found`` lacks taken from
    ``defaults``."""
    options, recorded = found.get("options"), expected.get("options", {})
    if not isinstance(options, dict):
        return dict(found)
    missing = {k: v for k, v in defaults.items() if k in recorded and k not in options}
    return {**found, "options": {**options, **portable(missing)}}


def _check_header(path: Path, found: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """Equal settings, but for a larger budget (it extends the run) and for where the package
    is installed (journals written before named shipped files by absolute path)."""
    expected = json.loads(json.dumps({"type": "header", **expected}))
    found = portable(dict(found))
    names = sorted(set(found) | set(expected))
    diffs = [
        f"{name}: journal {found.get(name)!r}, now {expected.get(name)!r}"
        for name in names
        if found.get(name) != expected.get(name) and not _extends(name, found, expected)
    ]
    if diffs:
        raise ValueError(
            f"cannot resume {path}: it was written with different settings ("
            + "; ".join(diffs)
            + "); rerun with the journal's settings or start a new journal"
        )


def journal_epochs(path: Path) -> int | None:
    """The fixed epochs the run in the journal at ``path`` trained with, or ``None`` (no
    journal, no training, or a least number of steps, which a default run gets again).

    A resumed run given no epochs keeps the length it started with: a journal written when
    ``train:`` defaulted to 4 epochs, or one started with ``--epochs``, resumes as it was.
    Anything unreadable is left to :func:`open_journal` to report.
    """
    try:
        with open(path, "rb") as handle:
            header = parse_json(handle.readline(MAX_HEADER_BYTES).decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    protocol = header.get("protocol") if isinstance(header, dict) else None
    train = protocol.get("train") if isinstance(protocol, dict) else None
    if not isinstance(train, dict) or "steps" in train:
        return None
    epochs = train.get("epochs")
    return epochs if type(epochs) is int and epochs >= 1 else None
