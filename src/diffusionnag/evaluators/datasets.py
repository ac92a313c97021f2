"""Image-classification datasets as in-memory tensors, read from local files only (no download).

Every dataset comes back as train/valid/test splits of normalised ``[n, C, H, W]`` float images
and ``[n]`` integer labels. Splits that the source does not fix are drawn by a seeded stratified
split, so the same seed gives the same split on every run and machine. Normalisation uses the
per-channel mean and std of the training split, so no statistic leaks from valid or test.

MNIST-format folders (``idx:PATH``, read by :mod:`diffusionnag.evaluators.idx`) and
Fashion-MNIST (``fashion-mnist``, where the Debian package ``dataset-fashion-mnist`` installs
it) keep their test split; valid is drawn from their training split.

CIFAR's python batches are pickles, read by :class:`CifarUnpickler`, which builds only the
dicts, lists, bytes and numpy arrays the format holds: a file whose pickle names any other
callable (a hostile ``__reduce__``) is refused before anything runs.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffusionnag.evaluators.idx import read_idx_folder
from diffusionnag.evaluators.image_data import (
    ImageDataset,
    make_dataset,
    stratified_split,
)

DATASETS = ("digits", "folder:PATH", "fashion-mnist", "idx:PATH", "cifar10", "cifar100")
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the Debian/Ubuntu package ``dataset-fashion-mnist`` installs the IDX files."""
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_digits(*, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits: 8x8, one channel, split 60/20/20 by class."""
    # scikit-learn takes about a second to import: only a run that loads digits pays it
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [n, 1, 8, 8]
    labels = np.asarray(bunch.target, dtype=np.int64)
    indices = stratified_split(labels, SPLIT_FRACTIONS, np.random.default_rng(seed))
    classes = [str(c) for c in range(10)]
    return make_dataset(
        "digits", images, torch.from_numpy(labels), indices, classes, split_seed=seed
    )


def _decode(path: Path, resolution: int) -> np.ndarray | None:
    """``[H, W, 3]`` uint8 pixels, or ``None`` when the file is not a readable image."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except (OSError, EOFError, ValueError, SyntaxError, struct.error, Image.DecompressionBombError):
        return None


def _class_files(root: Path) -> dict[str, list[Path]]:
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist or is not a directory")
    found = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if files:
            found[folder.name] = files
    if not found:
        raise ValueError(
            f"image folder {str(root)!r} has no class subfolders with image files "
            f"({', '.join(IMAGE_EXTENSIONS)}); expected ROOT/<class>/<image> as for ImageFolder"
        )
    return found


def load_image_folder(root: Path | str, *, resolution: int = 32, seed: int = 0) -> ImageDataset:
    """Images in ImageFolder layout (``root/<class>/<file>``), resized to ``resolution``, RGB.

    Files that fail to decode are skipped and counted in ``skipped_files``; a class with no
    decodable image is dropped. At least two classes must remain.
    """
    if resolution < 4:
        raise ValueError(f"resolution must be at least 4, got {resolution}")
    root = Path(root).expanduser()
    pixels: list[np.ndarray] = []
    labels: list[int] = []
    classes: list[str] = []
    skipped = 0
    for name, files in _class_files(root).items():
        decoded = [_decode(path, resolution) for path in files]
        kept = [d for d in decoded if d is not None]
        skipped += len(decoded) - len(kept)
        if kept:
            pixels.extend(kept)
            labels.extend([len(classes)] * len(kept))
            classes.append(name)
    if not pixels:
        raise ValueError(f"none of the {skipped} image files under {str(root)!r} could be decoded")
    if len(classes) < 2:
        raise ValueError(
            f"image folder {str(root)!r} has a single class ({classes[0]!r}) with decodable "
            "images; classification needs at least two class subfolders"
        )
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float() / 255.0
    label_array = np.asarray(labels, dtype=np.int64)
    indices = stratified_split(label_array, SPLIT_FRACTIONS, np.random.default_rng(seed))
    return make_dataset(
        f"folder:{root}",
        images,
        torch.from_numpy(label_array),
        indices,
        classes,
        skipped,
        split_seed=seed,
    )


_CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": ("cifar-100-python", ["train"], ["test"]),
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's python batches are made of: numpy arrays (as numpy 1 and 2
    pickle them), bytes (as Python 3 pickles them at protocol 2), dicts, lists and numbers."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def __init__(self, handle: BinaryIO, path: Path) -> None:
        super().__init__(handle, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise ValueError(
                f"{self.path} is not a CIFAR python batch: it asks to build {module}.{name}, "
                "which the format never holds (refused, nothing was run)"
            )
        return super().find_class(module, name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``[n, 3, 32, 32]`` uint8 images and ``[n]`` labels of one batch file."""
    try:
        with open(path, "rb") as handle:
            batch = CifarUnpickler(handle, path).load()
    except OSError as error:
        raise ValueError(f"cannot read CIFAR batch {path}: {error.strerror}") from None
    except ValueError:
        raise
    except Exception as error:  # a truncated or garbled pickle fails in many ways
        raise ValueError(f"CIFAR batch {path} is corrupt: {error!r}") from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise ValueError(f"CIFAR batch {path} is not a dict with a b'data' entry")
    labels = batch.get(b"labels", batch.get(b"fine_labels"))
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"CIFAR batch {path}: b'data' is not a [n, 3072] uint8 array")
    if data.shape[1] != 3 * 32 * 32 or not isinstance(labels, list):
        raise ValueError(f"CIFAR batch {path}: expected [n, 3072] pixels and a list of labels")
    if len(labels) != len(data) or not all(type(label) is int for label in labels):
        raise ValueError(f"CIFAR batch {path}: {len(data)} images but labels do not match")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _read_cifar_batches(folder: Path, names: list[str]) -> tuple[Tensor, np.ndarray]:
    images, labels = zip(*(read_cifar_batch(folder / name) for name in names), strict=True)
    pixels = torch.from_numpy(np.concatenate(images)).float().div_(255.0)
    return pixels, np.concatenate(labels)


def load_cifar(
    name: str, root: Path | str, *, valid_fraction: float = 0.2, seed: int = 0
) -> ImageDataset:
    """CIFAR-10/100 from the python release under ``root``; valid is drawn from the train set.

    ``root`` is the folder holding ``cifar-10-batches-py`` / ``cifar-100-python`` or that folder
    itself. Test is the official test set.
    """
    if name not in _CIFAR:
        raise ValueError(f"unknown CIFAR variant {name!r}; choose one of {', '.join(_CIFAR)}")
    subdir, train_files, test_files = _CIFAR[name]
    root = Path(root).expanduser()
    folder = root if root.name == subdir else root / subdir
    missing = [f for f in train_files + test_files if not (folder / f).is_file()]
    if missing:
        raise ValueError(
            f"{name} not found: {str(folder)!r} lacks {', '.join(missing)}; put the python "
            f"version of the dataset (folder {subdir}) there, nothing is downloaded"
        )
    train_images, train_labels = _read_cifar_batches(folder, train_files)
    test_images, test_labels = _read_cifar_batches(folder, test_files)
    fractions = (1.0 - valid_fraction, valid_fraction)
    train_idx, valid_idx = stratified_split(train_labels, fractions, np.random.default_rng(seed))
    images = torch.cat([train_images, test_images])
    labels = torch.from_numpy(np.concatenate([train_labels, test_labels]))
    test_idx = np.arange(len(train_labels), len(labels))
    num_classes = 10 if name == "cifar10" else 100
    classes = [str(c) for c in range(num_classes)]
    indices = [train_idx, valid_idx, test_idx]
    return make_dataset(name, images, labels, indices, classes, split_seed=seed)


def load_idx(
    root: Path | str,
    *,
    name: str | None = None,
    classes: Sequence[str] | None = None,
    valid_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """An MNIST-format folder (``train-images-idx3-ubyte[.gz]`` and the three other files).

    Test is the folder's test set; valid is a seeded stratified draw from its training set.
    """
    root = Path(root).expanduser()
    train_pixels, train_labels, test_pixels, test_labels = read_idx_folder(root)
    count = int(train_labels.max()) + 1
    if classes is not None and len(classes) != count:
        raise ValueError(f"IDX folder {root} has {count} classes, expected {len(classes)}")
    fractions = (1.0 - valid_fraction, valid_fraction)
    train_idx, valid_idx = stratified_split(train_labels, fractions, np.random.default_rng(seed))
    pixels = np.concatenate([train_pixels, test_pixels])
    images = torch.from_numpy(pixels).unsqueeze(1).float().div_(255.0)  # [n, 1, H, W]
    labels = torch.from_numpy(np.concatenate([train_labels, test_labels]))
    test_idx = np.arange(len(train_labels), len(labels))
    names = classes if classes is not None else [str(c) for c in range(count)]
    indices = [train_idx, valid_idx, test_idx]
    return make_dataset(name or f"idx:{root}", images, labels, indices, names, split_seed=seed)


def load_fashion_mnist(*, seed: int = 0) -> ImageDataset:
    """Fashion-MNIST (60,000 + 10,000 28x28 images) where ``dataset-fashion-mnist`` puts it."""
    if not FASHION_MNIST_DIR.is_dir():
        raise ValueError(
            f"Fashion-MNIST not found at {FASHION_MNIST_DIR}; install it with "
            "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass idx:PATH for a "
            "folder holding its IDX files; nothing is downloaded"
        )
    return load_idx(
        FASHION_MNIST_DIR, name="fashion-mnist", classes=FASHION_MNIST_CLASSES, seed=seed
    )


def load_dataset(
    spec: str, root: Path | str | None = None, *, resolution: int = 32, seed: int = 0
) -> ImageDataset:
    """The dataset named by ``spec``: ``digits``, ``fashion-mnist``, ``idx:PATH`` (an MNIST-format
    folder), ``folder:PATH``, ``cifar10`` or ``cifar100``.

    ``root`` is the directory holding the CIFAR folders; ``resolution`` applies to image
    folders (digits is 8x8 and CIFAR 32x32 as released); ``seed`` fixes the splits.
    """
    if spec == "digits":
        return load_digits(seed=seed)
    if spec == "fashion-mnist":
        return load_fashion_mnist(seed=seed)
    if spec.startswith("idx:"):
        if not spec.removeprefix("idx:"):
            raise ValueError("dataset spec 'idx:' needs a path, e.g. idx:/data/mnist")
        return load_idx(spec.removeprefix("idx:"), seed=seed)
    if spec.startswith("folder:"):
        path = spec.removeprefix("folder:")
        if not path:
            raise ValueError("dataset spec 'folder:' needs a path, e.g. folder:/data/my_images")
        return load_image_folder(path, resolution=resolution, seed=seed)
    if spec in _CIFAR:
        if root is None:
            raise ValueError(f"dataset {spec!r} needs a root directory holding its files")
        return load_cifar(spec, root, seed=seed)
    raise ValueError(f"unknown dataset {spec!r}; valid: {', '.join(DATASETS)}")
