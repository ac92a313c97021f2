"""Whether a finished run learnt anything: every evaluated cell at chance says the protocol, not
the cells, decided the scores.

A training run whose cells all score ``100 / classes`` ranks nothing (4 SGD steps on a small
folder did that without a word), so search and transfer report it in one line, with what to
change. "At chance" allows the noise of a small validation split: a score counts as chance up to
one binomial standard deviation of the chance rate above it (11 points for 3 classes and 18
validation images), and at least :data:`MIN_MARGIN` points.
"""

from __future__ import annotations

import math

from diffusionnag.evaluators.registry import Target
from diffusionnag.evaluators.train_config import steps_per_epoch
from diffusionnag.search.history import History
from diffusionnag.search.run import evaluator_protocol

MIN_MARGIN = 2.0
"""Points above chance still counted as chance on a large validation split."""
MORE_STEPS = 4
"""The suggested epochs are this many times the run's: a small step up would likely stay put."""


def chance_margin(classes: int, valid_size: int) -> float:
    """Points above ``100 / classes`` that a chance-level classifier reaches within one binomial
    standard deviation on ``valid_size`` validation images."""
    rate = 1.0 / classes
    return max(MIN_MARGIN, 100.0 * math.sqrt(rate * (1.0 - rate) / valid_size))


def chance_warning(history: History, target: Target) -> str | None:
    """One line saying that every evaluated cell scored at chance on a training target, what the
    protocol trained and what to change; ``None`` for a table, a run with no finished trial or
    one where some cell learnt."""
    data = target.train_data
    values = [trial.value for trial in history if trial.ok]
    if data is None or not values:
        return None
    chance = 100.0 / data.num_classes
    if max(values) > chance + chance_margin(data.num_classes, len(data.valid)):
        return None
    train = evaluator_protocol(target.evaluator).get("train", {})
    epochs, batch_size = train.get("epochs", 1), train.get("batch_size", len(data.train))
    steps = epochs * steps_per_epoch(len(data.train), batch_size)
    return (
        f"every evaluated cell scored at chance ({chance:.1f} %) on {target.spec}: the protocol "
        f"trained {steps} SGD steps ({epochs} epochs of {len(data.train)} training images); "
        f"pass --epochs {MORE_STEPS * epochs} (more steps) or add images"
    )
