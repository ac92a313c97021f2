"""Files in and out: atomic writes, and readers that refuse what is not ours.

Every file the library writes goes through :func:`atomic_write` (temporary file, then rename,
normal permissions); every file a user hands in is read through a function here, which names
the file in its ``ValueError``. Weights load with ``torch.load(weights_only=True)`` only:
nothing a user gives us is unpickled.

JSON and JSONL (meta-datasets, references, journals, configs, pairs files) are read by
:func:`read_json` and :func:`read_jsonl` only, which bound what a hostile file can cost before
Python's parser sees it: the file's size, the nesting depth (the parser recurses once per
level) and the digits of a number (a 401-digit accuracy overflows a float; past 4,300 digits
``int()`` refuses with no file or line). :func:`check_weights_fit` bounds what a config can
make us allocate by the size of the weights file it comes with.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write through ``write(tmp)`` then rename, so a reader never sees a half-written file.

    The file gets the permissions any new file gets (0666 less the umask), not mkstemp's 0600.
    Temporary files of ``path`` left by a killed earlier write are removed first. An
    ``OSError`` (disk full, permissions) becomes a ``ValueError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as error:
        raise ValueError(f"cannot write {path}: {error.strerror or error}") from None


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.XXXXXXXX.tmp`` files that :func:`atomic_write` of ``path`` left behind
    when killed (mkstemp's 8 random characters, so other names' temporaries never match)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp")
    for stale in path.parent.iterdir():
        if pattern.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(Path(path), lambda temp: temp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def load_tensors(path: Path) -> Any:
    """What ``torch.save`` wrote to ``path``, through the safe loader only (tensors, plain
    containers and numbers; nothing that could run code)."""
    if path.is_file() and path.stat().st_size == 0:
        raise ValueError(f"checkpoint file {path} is empty (0 bytes): it was not written out")
    try:
        with warnings.catch_warnings():  # torch's multi-line advice must not reach the user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"checkpoint file {path} is missing") from None
    except Exception as error:  # torch raises several unrelated types for a corrupt file
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        if isinstance(error, pickle.UnpicklingError) and refused:
            raise ValueError(
                f"{path} is not a weights file written by diffusionnag "
                f"(it holds a {refused.group(1)} object)"
            ) from None
        message = " ".join(str(error).split("\n", 1)[0].split()) or type(error).__name__
        raise ValueError(
            f"checkpoint file {path} is corrupt or not a checkpoint: {message}"
        ) from None


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A ``state_dict`` file: names mapped to tensors, else ``ValueError`` naming ``path``."""
    weights = load_tensors(path)
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise ValueError(
            f"{path} holds {describe_kind(weights)}, not the network weights (a dict of tensors)"
        )
    return weights


def check_weights_fit(build: Callable[[], torch.nn.Module], path: Path, sizes: str) -> None:
    """Refuse a config whose network (``build()``) needs more bytes than the weights file
    ``path`` holds, before any memory is allocated: the network's parameters are created on
    the ``meta`` device, which records shapes only. ``sizes`` names the config fields that set
    its size.
    """
    if not path.is_file():
        return  # load_tensors names the missing file
    with _ParametersOnMeta():
        network = build()
    needed = sum(t.numel() * t.element_size() for t in network.state_dict().values())
    held = path.stat().st_size
    if needed > held + WEIGHTS_SLACK:
        raise ValueError(
            f"{path} holds {held} bytes, but the network its config describes ({sizes}) needs "
            f"{needed}: the config was edited or belongs to other weights"
        )


WEIGHTS_SLACK = 2**24
"""Bytes a network may exceed its weights file by and still be built: small enough to be
harmless, and it leaves a small broken file to the loader, which says more precisely what is
wrong with it (a bare tensor, missing keys, wrong shapes)."""


class _ParametersOnMeta(TorchFunctionMode):
    """Sends ``torch.empty`` (how ``nn.Linear``, ``nn.Embedding`` and ``nn.LayerNorm`` create
    their parameters) to the ``meta`` device; the small tensors that networks compute from
    their space (masks, positions) stay real, so their ``.item()`` and mixing still work."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.empty:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


def describe_kind(value: Any) -> str:
    """A short description of what a loaded file held, for error messages."""
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(str, list(value)[:4]))}"
    return f"a {type(value).__name__}"


MAX_JSON_BYTES = 256 * 2**20
"""The largest JSON file (or JSONL line) read: far above any meta-dataset or config we write."""
MAX_DEPTH = 32
"""The deepest nesting of lists and objects accepted; ours nest at most 5 deep, and Python's
parser recurses once per level (100,000 levels end in a ``RecursionError``)."""
MAX_INT_DIGITS = 30
"""The longest integer accepted: every count, size and seed we write has fewer digits, and a
longer one can only end in an ``OverflowError`` (as a float) or a huge allocation."""
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class _Huge:
    """Stands in for a number out of range while parsing, so the error can name its field."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        shown = (
            self.text if len(self.text) <= 20 else f"{self.text[:12]}... ({len(self.text)} chars)"
        )
        return f"the number {shown} is out of range"


def parse_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """JSON ``text`` with its nesting depth and number sizes bounded before they can hurt.

    ``ValueError`` with the reason (and the line within ``text``, the field path of a number
    too large); callers add the file. ``NaN`` and ``Infinity`` pass: the fields that need a
    finite number check it themselves.
    """
    deepest = _deepest_nesting(text, max_depth)
    if deepest is not None:
        line = text.count("\n", 0, deepest) + 1
        raise ValueError(f"line {line}: nested more than {max_depth} levels deep")
    huge: list[_Huge] = []

    def bounded_int(number: str) -> int | _Huge:
        if len(number.lstrip("-")) <= MAX_INT_DIGITS:
            return int(number)
        huge.append(_Huge(number))
        return huge[-1]

    def finite_float(number: str) -> float | _Huge:
        value = float(number)
        if math.isfinite(value):
            return value
        huge.append(_Huge(number))
        return huge[-1]

    value = json.loads(text, parse_int=bounded_int, parse_float=finite_float)
    if huge:
        field = _field_of(value, huge[0])
        line = text.count("\n", 0, text.find(huge[0].text)) + 1
        raise ValueError(f"line {line}: field {field!r}: {huge[0]}")
    return value


def _deepest_nesting(text: str, max_depth: int) -> int | None:
    """The offset where ``text`` first nests deeper than ``max_depth``, else ``None``; strings
    are skipped, so brackets inside them do not count."""
    if text.count("[") + text.count("{") <= max_depth:
        return None  # cannot nest deeper than it has brackets: the common case, at no cost
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return match.start()
        elif token in "]}":
            depth -= 1
    return None


def _field_of(value: Any, target: object, path: str = "") -> str | None:
    """The dotted path (list items as ``[i]``) to ``target`` inside ``value``."""
    if value is target:
        return path or "(top level)"
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        step = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
        found = _field_of(item, target, step)
        if found is not None:
            return found
    return None


def read_text(path: Path | str, what: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of ``path`` (a ``what``: "meta-dataset", "journal"); ``ValueError``
    naming the file when it is missing, a directory, too large, not UTF-8 or unreadable."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory, not a file")
    if not path.exists():
        raise ValueError(f"{what} file {path} does not exist")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error.strerror or error}") from None
    if len(data) > max_bytes:
        raise ValueError(f"{what} {path} is larger than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not UTF-8 text: {error.reason}") from None


def read_json(path: Path | str, what: str = "file", *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON in ``path`` (see :func:`parse_json`); ``ValueError`` naming the file."""
    text = read_text(path, what, max_bytes)
    try:
        return parse_json(text)
    except ValueError as error:  # JSONDecodeError included
        raise ValueError(f"{path} is corrupt: {error}") from None


def read_jsonl(
    path: Path | str, what: str = "file", *, max_bytes: int = MAX_JSON_BYTES
) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of the JSONL file ``path``; every
    refusal names the file and the line."""
    return parse_jsonl(read_text(path, what, max_bytes), f"{what} {path}")


def parse_jsonl(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of ``text`` (the file ``where``)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, _parse_json_line(line, f"{where} line {number}")


def _parse_json_line(line: str, where: str) -> Any:
    """One JSONL line; ``ValueError`` starting with ``where`` (the file and line)."""
    try:
        return parse_json(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not JSON: {error}") from None
    except ValueError as error:
        raise ValueError(f"{where}: {str(error).removeprefix('line 1: ')}") from None
