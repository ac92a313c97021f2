"""Architectures as Optuna parameters: one categorical parameter per op slot of a space.

A NAS-Bench-201 cell is six parameters, one per edge (``edge_0_1`` is the edge from cell node 0
to node 1), whose choices are the operation names. A MobileNetV3 subnet is twenty fixed slots
(``stage1_layer1`` .. ``stage5_layer4``); the last two slots of a stage, which a stage of depth 2
or 3 leaves out, also offer the explicit choice ``"absent"``. Fixed parameter sets keep every
trial of a study in one search space, which is what Optuna's samplers model best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from optuna.distributions import CategoricalDistribution

from diffusionnag.spaces import get_space
from diffusionnag.spaces import mbv3 as mbv3_space
from diffusionnag.spaces import nb201 as nb201_space
from diffusionnag.spaces.base import Arch, SearchSpace

ABSENT = "absent"


@dataclass(frozen=True)
class ArchParams:
    """The parameter names of a space and, per parameter, its choice labels and op values."""

    space: SearchSpace
    names: tuple[str, ...]
    labels: tuple[tuple[str, ...], ...]
    values: tuple[tuple[int, ...], ...]

    @property
    def distributions(self) -> dict[str, CategoricalDistribution]:
        return {
            name: CategoricalDistribution(labels)
            for name, labels in zip(self.names, self.labels, strict=True)
        }

    def to_params(self, arch: Arch) -> dict[str, str]:
        """``{name: label}`` of ``arch`` (validated against the space first)."""
        self.space.validate(arch)
        return {
            name: labels[values.index(op)]
            for name, labels, values, op in zip(
                self.names, self.labels, self.values, arch.ops, strict=True
            )
        }

    def from_params(self, params: Mapping[str, Any]) -> Arch:
        """The architecture of a full parameter set; ``ValueError`` if it is not one."""
        missing = [name for name in self.names if name not in params]
        if missing:
            raise ValueError(f"parameters {', '.join(missing)} of space {self.space.name} missing")
        ops = []
        for name, labels, values in zip(self.names, self.labels, self.values, strict=True):
            if params[name] not in labels:
                raise ValueError(
                    f"parameter {name}={params[name]!r} is not one of {', '.join(labels)}"
                )
            ops.append(values[labels.index(params[name])])
        return self.space.validate(Arch(self.space.name, tuple(ops)))


def arch_params(space: SearchSpace | str) -> ArchParams:
    """The parameters of ``space`` (an object or a registered name: nb201, mbv3)."""
    if isinstance(space, str):
        space = get_space(space)
    elif not isinstance(space, SearchSpace):
        raise ValueError(
            f"the search space must be a SearchSpace or one of the names nb201, mbv3 "
            f"(e.g. DiffusionNAGSampler('nb201')), got {space!r}"
        )
    if space.name == nb201_space.NB201Space.name:
        ops = nb201_space.OPERATIONS
        return ArchParams(
            space,
            tuple(f"edge_{src}_{dst}" for src, dst in nb201_space.EDGES),
            (ops,) * len(nb201_space.EDGES),
            (tuple(range(len(ops))),) * len(nb201_space.EDGES),
        )
    if space.name == mbv3_space.MBV3Space.name:
        return _mbv3_params(space)
    raise ValueError(f"no Optuna parameters for search space {space.name!r}; known: nb201, mbv3")


def _mbv3_params(space: SearchSpace) -> ArchParams:
    ops = mbv3_space.OPERATIONS
    names, labels, values = [], [], []
    for stage in range(mbv3_space.NUM_STAGES):
        for position in range(mbv3_space.SLOTS_PER_STAGE):
            names.append(f"stage{stage + 1}_layer{position + 1}")
            optional = position >= min(mbv3_space.DEPTHS)
            labels.append((*ops, ABSENT) if optional else ops)
            values.append(
                (*range(len(ops)), mbv3_space.SKIP) if optional else tuple(range(len(ops)))
            )
    return ArchParams(space, tuple(names), tuple(labels), tuple(values))


def suggest_arch(trial: Any, space: SearchSpace | str | ArchParams) -> Arch:
    """Suggest every parameter of ``space`` on an Optuna ``trial`` and return the architecture.

    ``ValueError`` when the suggested values are no architecture (a MobileNetV3 stage with an
    absent third layer but a present fourth, which only a sampler other than
    :class:`~diffusionnag.integrations.optuna.DiffusionNAGSampler` proposes); Optuna records
    the trial as failed. Before suggesting anything, ``ValueError`` naming the parameter and
    the fix when the study's ``DiffusionNAGSampler`` is for another space, or when the study
    already has one of the parameters with other choices (Optuna would fail deep inside).
    """
    params = space if isinstance(space, ArchParams) else arch_params(space)
    study = getattr(trial, "study", None)  # a FixedTrial has none
    if study is not None:
        _check_sampler_space(study, params)
        _check_study_distributions(study, params)
    values = {
        name: trial.suggest_categorical(name, labels)
        for name, labels in zip(params.names, params.labels, strict=True)
    }
    return params.from_params(values)


def _check_sampler_space(study: Any, params: ArchParams) -> None:
    """A DiffusionNAGSampler (it has ``arch_params``) proposes cells of its own space only."""
    sampler_params = getattr(study.sampler, "arch_params", None)
    if isinstance(sampler_params, ArchParams) and sampler_params.space.name != params.space.name:
        ours, theirs = params.space.name, sampler_params.space.name
        raise ValueError(
            f"suggest_arch(trial, {ours!r}) in a study whose DiffusionNAGSampler is for "
            f"{theirs!r}: parameter {params.names[0]!r} is not the sampler's, so every cell "
            f"would be random; create the sampler as DiffusionNAGSampler({ours!r}) or call "
            f"suggest_arch(trial, {theirs!r})"
        )


def _check_study_distributions(study: Any, params: ArchParams) -> None:
    """Optuna fixes a parameter's choices at its first suggestion, for the whole study."""
    ours = params.distributions
    for past in study.get_trials(deepcopy=False):
        for name, distribution in past.distributions.items():
            if name in ours and distribution != ours[name]:
                raise ValueError(
                    f"parameter {name!r} is already in this study (trial {past.number}) as "
                    f"{distribution}, but suggest_arch(trial, {params.space.name!r}) suggests it "
                    f"over {list(ours[name].choices)}; Optuna keeps a parameter's choices for the "
                    "whole study: give your own parameter another name, or start a new study"
                )
