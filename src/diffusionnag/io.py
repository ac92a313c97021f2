"""Files in and out: atomic writes, and readers that refuse what is not ours.

Every file the library writes goes through :func:`atomic_write` (temporary file, then rename,
normal permissions); every file a user hands in is read through a function here, which names
the file in its ``ValueError``. Weights load with ``torch.load(weights_only=True)`` only:
nothing a user gives us is unpickled.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


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
        message = " ".join(str(error).split("\n", 1)[0].split())
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


def describe_kind(value: Any) -> str:
    """A short description of what a loaded file held, for error messages."""
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(str, list(value)[:4]))}"
    return f"a {type(value).__name__}"


def read_json(path: Path) -> Any:
    """The JSON in ``path``; ``ValueError`` naming the file for bad bytes, JSON or I/O."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt: {error}") from None
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror or error}") from None
