"""``ofa:imagenet``: once-for-all MobileNetV3 subnets answered by OFA's published predictor.

An answer is the predicted ImageNet top-1 (%) of the w1.2 subnet with weights inherited from the
supernet (no fine-tuning), at one input resolution, next to its exact parameters and FLOPs
(multiply-accumulates, :func:`~diffusionnag.nn.mbv3.mbv3_costs` at width 1.2) and its Note10
latency summed from OFA's per-layer table. What the number stands for: OFA's predictor was fitted
on the accuracy of 16K sampled subnets on 10K images held out from ImageNet's training set (Cai
et al., 2020, Sec. 3.4), so it is a proxy for that, not for the ImageNet validation accuracy; no
figure for its agreement with measured accuracy is documented with the files or measured here
(docs/benchmarks.md, "what the predicted top-1 stands for").

Resolution is an option of the evaluator (default 224), not part of the search space: the space's
encoding and the shipped score model have no resolution node, so a searched cell would not say at
which size it runs. Latency needs a table at that resolution (160 to 224 in steps of 16).

Budgets (``max_flops``, ``max_latency_ms``, ``max_params``) are one rule for every strategy: a
cell over any of them is recorded as a failed trial (``metrics["over_budget"] = 1``, no
prediction made) and costs one evaluation. :meth:`OFAEvaluator.search_space` gives strategies the
space restricted to the budgets, so the built-in strategies sample, mutate and offer only cells
within them and never pay that cost.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from diffusionnag.evaluators.base import EvalResult, Evaluator
from diffusionnag.evaluators.ofa_costs import slot_costs
from diffusionnag.evaluators.ofa_data import (
    WIDTH_MULT,
    LatencyTable,
    OFAAccuracyPredictor,
    predictor_features,
)
from diffusionnag.evaluators.shared_data import OFA_ENV_VAR, default_ofa_dir
from diffusionnag.nn.mbv3 import mbv3_costs
from diffusionnag.spaces.base import Arch, SearchSpace
from diffusionnag.spaces.constrained import ConstrainedSpace
from diffusionnag.spaces.mbv3 import MBV3Space, stage_depths

DATASETS = ("imagenet",)
SPLIT = "ofa-predicted"
"""OFA's predictor's target: top-1 on 10K held-out ImageNet training images, inherited weights."""
DEFAULT_RESOLUTION = 224
PREDICTOR_FILE = "acc_predictor.pth"
LATENCY_FILE = "note10_lookup_table_{resolution}.yaml"
LATENCY_RESOLUTIONS = (160, 176, 192, 208, 224)
COSTS = ("params", "flops", "latency_ms")
USAGE = (
    "ofa:imagenet[,resolution=R][,max_flops=F][,max_latency_ms=L][,max_params=P]: once-for-all "
    "MobileNetV3 w1.2 subnets, predicted ImageNet top-1 (%) by OFA's accuracy predictor, "
    f"exact FLOPs/params, Note10 latency; files from --ofa-dir or ${OFA_ENV_VAR}"
)


class OFAEvaluator(Evaluator):
    """Predicted top-1 (%) of a w1.2 subnet at ``resolution``; costs in ``metrics``."""

    space_name = MBV3Space.name
    dataset = DATASETS[0]
    value_name = "predicted ImageNet top-1 (%)"

    def __init__(
        self,
        predictor: OFAAccuracyPredictor,
        latency: LatencyTable | None,
        *,
        resolution: int = DEFAULT_RESOLUTION,
        limits: Mapping[str, float] | None = None,
        digest: str = "",
    ) -> None:
        predictor_features([], resolution)  # refuses a resolution the predictor does not know
        self.resolution = resolution
        self.limits = check_limits(dict(limits or {}), latency is not None, resolution)
        self._predictor = predictor
        self._latency = latency
        self._digest = digest
        self._slot_costs = slot_costs(self.exact_costs)

    def exact_costs(self, arch: Arch) -> dict[str, float]:
        """Params and FLOPs (:func:`mbv3_costs` at width 1.2 and this resolution) and, where a
        table exists for the resolution, the summed Note10 latency (ms)."""
        exact = mbv3_costs(arch, self.resolution, WIDTH_MULT)
        costs = {"params": float(exact.params), "flops": float(exact.flops)}
        if self._latency is not None:
            costs["latency_ms"] = self._latency.latency_ms(arch)
        return costs

    def costs(self, arch: Arch) -> dict[str, float]:
        """:meth:`exact_costs` from per-slot tables: the same numbers, over 10x faster."""
        stage_depths(arch)  # ValueError for a cell that is not of this space
        return self._slot_costs(arch)

    def within_limits(self, costs: Mapping[str, float]) -> bool:
        return all(costs[name] <= limit for name, limit in self.limits.items())

    def predict(self, archs: Sequence[Arch]) -> np.ndarray:
        """``[B]`` predicted top-1 (%), whatever the budgets."""
        with torch.no_grad():
            fraction = self._predictor(predictor_features(archs, self.resolution))
        return 100.0 * fraction.double().numpy()

    def evaluate(self, arch: Arch) -> EvalResult:
        costs = self.costs(arch)
        if not self.within_limits(costs):
            return EvalResult(
                value=math.nan, dataset=self.dataset, split=SPLIT,
                metrics={**costs, "over_budget": 1.0}, failed=True,
            )  # fmt: skip
        value = float(self.predict([arch])[0])
        return EvalResult(value=value, dataset=self.dataset, split=SPLIT, metrics=costs)

    def search_space(self) -> SearchSpace:
        """The space strategies should search: mbv3, restricted to the budgets if any."""
        if not self.limits:
            return MBV3Space()
        # The unchecked tables: the restricted space only asks about cells of the space, many
        # times per step (every neighbour a mutation considers), so the check would dominate.
        return ConstrainedSpace(MBV3Space(), self._slot_costs, self.limits)

    def protocol(self) -> dict[str, object]:
        """What fixes the answers: supernet, resolution, budgets and a digest of the files."""
        return {
            "supernet": "ofa_mbv3_d234_e346_k357_w1.2",
            "split": SPLIT,
            "resolution": self.resolution,
            "width_mult": WIDTH_MULT,
            "latency_device": "note10" if self._latency is not None else "",
            "limits": dict(self.limits),
            "over_budget": "failed trial, costs one evaluation",
            "files_sha256": self._digest,
        }

    def __repr__(self) -> str:
        return f"OFAEvaluator(imagenet, {self.resolution}px, limits={self.limits})"


def check_limits(limits: dict[str, float], has_latency: bool, resolution: int) -> dict[str, float]:
    """Budgets by cost name; ``ValueError`` naming the option for a wrong one."""
    for name, limit in limits.items():
        if name not in COSTS:
            raise ValueError(f"unknown budget {name!r}; known: {', '.join(COSTS)}")
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise ValueError(f"option max_{name} must be a positive number, got {limit!r}")
        if name == "latency_ms" and not has_latency:
            raise ValueError(
                f"option max_latency_ms needs a Note10 latency table, which exists for "
                f"resolutions {', '.join(map(str, LATENCY_RESOLUTIONS))}, not {resolution}"
            )
    return {name: float(limit) for name, limit in limits.items()}


def load_ofa_evaluator(
    ofa_dir: str | Path | None = None,
    *,
    resolution: int = DEFAULT_RESOLUTION,
    limits: Mapping[str, float] | None = None,
) -> OFAEvaluator:
    """The evaluator on the files in ``ofa_dir`` (default :func:`default_ofa_dir`)."""
    folder = Path(ofa_dir) if ofa_dir is not None else default_ofa_dir()
    predictor_path = folder / PREDICTOR_FILE
    if not predictor_path.is_file():
        raise ValueError(
            f"OFA accuracy predictor not found: {predictor_path} (point --ofa-dir or "
            f"${OFA_ENV_VAR} at the folder holding {PREDICTOR_FILE} and the Note10 tables)"
        )
    paths = [predictor_path]
    latency = None
    if resolution in LATENCY_RESOLUTIONS:
        paths.append(folder / LATENCY_FILE.format(resolution=resolution))
        latency = LatencyTable.from_yaml(paths[-1], resolution)
    predictor = OFAAccuracyPredictor.from_file(predictor_path)
    return OFAEvaluator(
        predictor, latency, resolution=resolution, limits=limits, digest=files_digest(paths)
    )


def files_digest(paths: Sequence[Path]) -> str:
    """A short digest of the files' bytes, so a journal is not resumed against other files."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def ofa_evaluator(argument: str, ofa_dir: str | Path | None = None) -> OFAEvaluator:
    """The evaluator the ``ofa`` benchmark kind builds from ``imagenet[,key=value...]``."""
    dataset, *settings = [part.strip() for part in argument.split(",")]
    if dataset.lower() not in DATASETS:
        raise ValueError(f"unknown ofa dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    options = parse_options(settings)
    resolution = int(options.pop("resolution", DEFAULT_RESOLUTION))
    limits = {name.removeprefix("max_"): value for name, value in options.items()}
    return load_ofa_evaluator(ofa_dir, resolution=resolution, limits=limits)


def parse_options(settings: Sequence[str]) -> dict[str, float]:
    """``key=number`` settings of an ``ofa:`` argument; ``ValueError`` naming a wrong one."""
    known = ("resolution", *(f"max_{name}" for name in COSTS))
    options = {}
    for setting in settings:
        key, _, text = setting.partition("=")
        if key not in known:
            raise ValueError(f"unknown ofa option {key!r}; valid: {', '.join(known)}")
        try:
            options[key] = float(text)
        except ValueError:
            raise ValueError(f"ofa option {key}={text!r} is not a number") from None
        if key == "resolution" and not options[key].is_integer():
            raise ValueError(f"ofa option resolution={text} is not a whole number of pixels")
    return options
