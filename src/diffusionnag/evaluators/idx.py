"""The MNIST IDX format (MNIST, Fashion-MNIST, EMNIST, ...): arrays with a typed, sized header.

A file is two zero bytes, a type code, the number of dimensions, one big-endian ``uint32`` per
dimension, then the values, big-endian. Files may be gzipped (told apart by their first bytes,
not their names). Every check that fails names the file in a one-line ``ValueError``.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""The four files of an IDX image dataset, each also accepted with a ``.gz`` suffix."""
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file (gzipped or not)."""
    try:
        data = path.read_bytes()
        if data[:2] == GZIP_MAGIC:
            data = gzip.decompress(data)
    except OSError as error:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"cannot read IDX file {path}: {error.strerror or error}") from None
    except (EOFError, zlib.error) as error:
        raise ValueError(f"IDX file {path} is a corrupt gzip stream: {error}") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES:
        raise ValueError(f"IDX file {path} is corrupt: bad magic number {data[:4].hex()!r}")
    ndim = data[3]
    body = 4 + 4 * ndim
    if ndim == 0 or len(data) < body:
        raise ValueError(f"IDX file {path} is corrupt: header of {ndim} dimensions is truncated")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - body != expected:
        raise ValueError(
            f"IDX file {path} is corrupt: shape {shape} needs {expected} bytes of data, "
            f"found {len(data) - body}"
        )
    return np.frombuffer(data, dtype, offset=body).reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"IDX folder {root} lacks {stem} (or {stem}.gz)")


def _images_and_labels(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(root, IDX_FILES[f"{split}_images"])
    labels_path = _find(root, IDX_FILES[f"{split}_labels"])
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        raise ValueError(
            f"IDX file {images_path} holds {images.dtype} {images.shape}, not square uint8 "
            "images [n, H, W]"
        )
    if labels.ndim != 1 or len(labels) != len(images) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"IDX file {labels_path} holds {labels.dtype} {labels.shape}, not {len(images)} "
            f"integer labels for {images_path.name}"
        )
    return images, labels.astype(np.int64)


def read_idx_folder(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``[n, H, W]`` uint8 training images, their ``[n]`` labels, then the same for test.

    Labels must be ``0..K-1`` with every class present in the training files.
    """
    if not root.is_dir():
        raise ValueError(f"IDX folder {root} does not exist or is not a directory")
    train_images, train_labels = _images_and_labels(root, "train")
    test_images, test_labels = _images_and_labels(root, "test")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"IDX folder {root}: training images are {train_images.shape[1:]}, "
            f"test images {test_images.shape[1:]}"
        )
    classes = int(train_labels.max(initial=-1)) + 1
    valid = train_labels.min(initial=0) >= 0 and classes >= 2
    if not valid or (np.bincount(train_labels, minlength=classes) == 0).any():
        raise ValueError(
            f"IDX folder {root}: training labels must be 0..K-1 (K >= 2) with every class "
            f"present, found {sorted(set(train_labels.tolist()))[:12]}"
        )
    if len(test_labels) and not (test_labels.min() >= 0 and test_labels.max() < classes):
        raise ValueError(
            f"IDX folder {root}: test labels outside the training classes 0..{classes - 1}"
        )
    return train_images, train_labels, test_images, test_labels
