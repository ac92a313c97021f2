"""The once-for-all (OFA) files behind :mod:`diffusionnag.evaluators.ofa`, read safely.

Both describe the supernet ``ofa_mbv3_d234_e346_k357_w1.2`` (Cai et al., ICLR 2020) and are
third-party data found through :func:`~diffusionnag.evaluators.shared_data.default_ofa_dir`:

- ``acc_predictor.pth``: OFA's accuracy predictor, an MLP over a 128-value encoding of the
  subnet and its input resolution (:func:`predictor_features`), returning ImageNet top-1 as a
  fraction; loaded with ``torch.load(weights_only=True)`` only;
- ``note10_lookup_table_{R}.yaml``: per-layer latency (ms) on a Samsung Note10 at resolution R;
  a subnet's latency is the sum over its layers (:func:`latency_keys`), as OFA's tutorial sums it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from diffusionnag.io import load_weights
from diffusionnag.nn.mbv3 import block_specs, conv_out_size, head_widths
from diffusionnag.spaces.base import Arch
from diffusionnag.spaces.mbv3 import EXPANDS, KERNELS, NUM_SLOTS, SKIP

WIDTH_MULT = 1.2
"""Width multiplier of the supernet the predictor and the tables were made for."""
PREDICTOR_RESOLUTIONS = tuple(range(112, 225, 16))
"""Input resolutions the predictor encodes (one-hot), 112 to 224 px in steps of 16."""
HIDDEN = 400
NUM_CLASSES = 1000
FEATURES = 2 * NUM_SLOTS * len(KERNELS) + len(PREDICTOR_RESOLUTIONS)
MAX_TABLE_BYTES = 1 << 20
"""A latency table is about 15 KB; anything far larger is not one, and is refused unread."""


def predictor_features(archs: Sequence[Arch], resolution: int) -> Tensor:
    """``[B, 128]`` OFA encoding: per slot a kernel one-hot (60), per slot an expand one-hot
    (60), then the resolution one-hot (8); absent slots are zero in both blocks."""
    if resolution not in PREDICTOR_RESOLUTIONS:
        raise ValueError(
            f"resolution {resolution} is not one the OFA accuracy predictor knows; choose one of "
            f"{', '.join(map(str, PREDICTOR_RESOLUTIONS))}"
        )
    kernel_block = NUM_SLOTS * len(KERNELS)
    ops = np.array([arch.ops for arch in archs], dtype=np.int64).reshape(len(archs), NUM_SLOTS)
    rows, slots = np.nonzero(ops != SKIP)
    kernel_index, expand_index = np.divmod(ops[rows, slots], len(EXPANDS))
    x = np.zeros((len(archs), FEATURES), dtype=np.float32)
    x[rows, slots * len(KERNELS) + kernel_index] = 1.0
    x[rows, kernel_block + slots * len(EXPANDS) + expand_index] = 1.0
    x[:, 2 * kernel_block + PREDICTOR_RESOLUTIONS.index(resolution)] = 1.0
    return torch.from_numpy(x)  # [B, 128]


class OFAAccuracyPredictor(nn.Module):
    """OFA's MLP ``128 -> 400 -> 400 -> 400 -> 1`` with ReLUs: predicted top-1 (a fraction)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(FEATURES, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            nn.Linear(HIDDEN, 1),
        )  # fmt: skip

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features).squeeze(-1)  # [B]

    @classmethod
    def from_file(cls, path: Path) -> OFAAccuracyPredictor:
        """The published weights (a plain state dict with keys ``0.*``, ``2.*``, ``4.*``,
        ``6.*``); ``ValueError`` naming ``path`` for anything else."""
        weights = load_weights(path)
        model = cls()
        expected = {name: tuple(t.shape) for name, t in model.layers.state_dict().items()}
        found = {name: tuple(t.shape) for name, t in weights.items()}
        if found != expected:
            raise ValueError(
                f"{path} is not OFA's accuracy predictor: expected tensors "
                f"{_shapes(expected)}, found {_shapes(found)}"
            )
        model.layers.load_state_dict(weights)
        return model.eval()


def _shapes(shapes: Mapping[str, tuple[int, ...]]) -> str:
    shown = [f"{name} {list(shape)}" for name, shape in list(shapes.items())[:8]]
    return ", ".join(shown) + (", ..." if len(shapes) > 8 else "") if shown else "none"


def latency_keys(arch: Arch, resolution: int) -> list[str]:
    """The latency-table key of every layer ``arch``'s w1.2 subnet runs, in order: stem
    ``Conv``, each ``expanded_conv`` (the first, expand-1 block included), ``Conv_1``,
    ``AvgPool2D``, ``Conv_2``, ``Logits``."""
    specs = block_specs(arch, WIDTH_MULT)
    size = conv_out_size(resolution, 2)
    keys = [f"Conv-input:{resolution}x{resolution}x3-output:{size}x{size}x{specs[0].in_channels}"]
    for spec in specs:
        out = conv_out_size(size, spec.stride)
        keys.append(
            f"expanded_conv-input:{size}x{size}x{spec.in_channels}"
            f"-output:{out}x{out}x{spec.out_channels}-expand:{spec.mid_channels}"
            f"-kernel:{spec.kernel}-stride:{spec.stride}-idskip:{int(spec.residual)}"
            f"-se:{int(spec.se)}-hs:{int(spec.act == 'h_swish')}"
        )
        size = out
    expand_width, mix_width = head_widths(WIDTH_MULT)
    last = specs[-1].out_channels
    return [
        *keys,
        f"Conv_1-input:{size}x{size}x{last}-output:{size}x{size}x{expand_width}",
        f"AvgPool2D-input:{size}x{size}x{expand_width}-output:1x1x{expand_width}",
        f"Conv_2-input:1x1x{expand_width}-output:1x1x{mix_width}",
        f"Logits-input:1x1x{mix_width}-output:{NUM_CLASSES}",
    ]


class LatencyTable:
    """Mean latency (ms) of each layer shape at one resolution, from one Note10 table."""

    def __init__(self, means: Mapping[str, float], resolution: int, source: str) -> None:
        self.means = dict(means)
        self.resolution = resolution
        self.source = source

    @classmethod
    def from_yaml(cls, path: Path, resolution: int) -> LatencyTable:
        """Read ``path`` (at most :data:`MAX_TABLE_BYTES`, ``yaml.safe_load``): a mapping from
        layer key to ``{count, mean, std}``; ``ValueError`` naming the file otherwise."""
        data = yaml_mapping(path)
        means = {}
        for key, entry in data.items():
            mean = entry.get("mean") if isinstance(entry, dict) else None
            if isinstance(mean, bool) or not isinstance(mean, int | float) or not mean >= 0:
                raise ValueError(
                    f"corrupt latency table {path}: entry {key!r} has no non-negative 'mean'"
                )
            means[str(key)] = float(mean)
        return cls(means, resolution, str(path))

    def latency_ms(self, arch: Arch) -> float:
        """Sum of the means of ``arch``'s layers; ``ValueError`` for a layer the table lacks."""
        total = 0.0
        for key in latency_keys(arch, self.resolution):
            if key not in self.means:
                raise ValueError(f"latency table {self.source} has no entry for layer {key}")
            total += self.means[key]
        return total


def yaml_mapping(path: Path) -> dict:
    """The YAML mapping in ``path``, read through the safe loader from a bounded file."""
    try:
        size = path.stat().st_size
        if size > MAX_TABLE_BYTES:
            raise ValueError(
                f"{path} is {size} bytes, more than a latency table's limit of {MAX_TABLE_BYTES}"
            )
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"latency table {path} is missing") from None
    except OSError as error:
        raise ValueError(f"cannot read latency table {path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        reason = " ".join(str(error).split())
        raise ValueError(f"corrupt latency table {path}: {reason}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path} does not hold a latency table (a mapping of layer -> mean)")
    return data
