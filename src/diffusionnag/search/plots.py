"""Best-so-far curves of several strategies on one dataset, as a PNG.

Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so no pyplot state or
global backend is touched (safe in worker processes and headless machines).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from diffusionnag.io import atomic_write


def plot_best_so_far(
    curves: Mapping[str, np.ndarray],
    optimum: float,
    path: str | Path,
    *,
    title: str,
    random_expectation: np.ndarray | None = None,
    reference_label: str = "table optimum",
    ylabel: str = "best accuracy so far (%)",
) -> Figure:
    """Median and interquartile band of ``[runs, budget]`` best-so-far curves per strategy,
    saved to ``path`` (the figure is returned).

    ``optimum`` is drawn as a dotted line labelled ``reference_label``: the table optimum for
    a table benchmark, the best value found for a run that trained its candidates.
    ``random_expectation``: optional ``[budget]`` expected best of random search, drawn dashed.
    The y-axis starts near the worst strategy's lower quartile after 10 cells, so the region
    where strategies differ is not squashed by the first few random evaluations.
    """
    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, runs in curves.items():
        steps = np.arange(1, runs.shape[1] + 1)
        low, mid, high = np.nanpercentile(runs, [25, 50, 75], axis=0)
        (line,) = axes.plot(steps, mid, label=name, linewidth=1.6)
        axes.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    if random_expectation is not None:
        steps = np.arange(1, len(random_expectation) + 1)
        axes.plot(steps, random_expectation, "k--", linewidth=1, label="E[random]")
    axes.axhline(optimum, color="grey", linestyle=":", linewidth=1, label=reference_label)
    axes.set_ylim(_lower_limit(curves, optimum), optimum + 0.25)
    axes.set_xlabel("evaluated cells")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    atomic_write(Path(path), lambda temp: figure.savefig(temp, format="png"))
    return figure


def _lower_limit(curves: Mapping[str, np.ndarray], optimum: float) -> float:
    quartiles = [
        np.nanpercentile(runs[:, min(9, runs.shape[1] - 1)], 25) for runs in curves.values()
    ]
    lowest = min(quartiles, default=optimum - 1.0)
    return float(min(lowest, optimum - 1.0) - 0.25)
