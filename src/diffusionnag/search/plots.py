"""Plots of search and transfer runs, as PNGs that tell the truth.

Best-so-far curves are steps (the best only changes when a cell is evaluated), the x-axis
counts whole evaluated cells, every evaluated point lies inside the axes, and the optimum is
drawn only where it is known (a table). :func:`plot_placement` shows where a chosen cell falls
among reference cells. Drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas,
so no pyplot state or global backend is touched (safe in worker processes and headless
machines).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from diffusionnag.io import atomic_write


def plot_best_so_far(
    curves: Mapping[str, np.ndarray],
    optimum: float | None,
    path: str | Path,
    *,
    title: str,
    random_expectation: np.ndarray | None = None,
    reference_label: str = "table optimum",
    ylabel: str = "best accuracy so far (%)",
    evaluated: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """Best-so-far curves of ``[runs, budget]`` arrays per strategy, saved to ``path`` (the
    figure is returned): with several runs the median as a step line and the band between the
    25th and 75th percentile over runs (the legend says so); with one run, its steps.

    ``optimum`` (``None`` where unknown) is drawn dotted, labelled ``reference_label``.
    ``random_expectation``: optional ``[budget]`` expected best of random search, dashed.
    ``evaluated``: per strategy, the value of every evaluated cell in order, drawn as dots.
    The y-axis holds every plotted value, the first cells included.
    """
    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown: list[np.ndarray] = []
    for name, runs in curves.items():
        shown.append(_draw_runs(axes, name, runs))
        if evaluated is not None and name in evaluated:
            values = np.asarray(evaluated[name], dtype=float)
            cells = np.arange(1, len(values) + 1)
            axes.plot(cells, values, ".", color="grey", label="evaluated cells")
            shown.append(values)
    if random_expectation is not None:
        steps = np.arange(1, len(random_expectation) + 1)
        axes.step(steps, random_expectation, "k--", where="post", linewidth=1, label="E[random]")
        shown.append(random_expectation)
    if optimum is not None:
        label = f"{reference_label} ({optimum:.2f})"
        axes.axhline(optimum, color="grey", linestyle=":", linewidth=1, label=label)
        shown.append(np.array([optimum]))
    axes.set_ylim(*_limits(shown))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("evaluated cells")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    _save(figure, path)
    return figure


def _draw_runs(axes, name: str, runs: np.ndarray) -> np.ndarray:
    """One strategy's steps (median and percentile band over several runs); the values the
    y-axis must hold."""
    steps = np.arange(1, runs.shape[1] + 1)
    if runs.shape[0] == 1:
        axes.step(steps, runs[0], where="post", label=f"{name}: best so far", linewidth=1.6)
        return runs[0]
    low, mid, high = np.nanpercentile(runs, [25, 50, 75], axis=0)
    (line,) = axes.step(steps, mid, where="post", linewidth=1.6, label=f"{name} (median)")
    band = f"{name}: 25th-75th percentile of {runs.shape[0]} runs"
    axes.fill_between(
        steps, low, high, step="post", color=line.get_color(), alpha=0.2, linewidth=0, label=band
    )
    return runs.ravel()  # the axes hold every run, not only the band


def _limits(shown: list[np.ndarray]) -> tuple[float, float]:
    """From the lowest to the highest finite value shown, with a margin of 4 % of the span."""
    values = np.concatenate([np.ravel(v) for v in shown]) if shown else np.array([])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    low, high = float(values.min()), float(values.max())
    margin = max(0.04 * (high - low), 0.25)
    return low - margin, high + margin


def plot_placement(
    reference: np.ndarray,
    marks: Mapping[str, float],
    path: str | Path,
    *,
    title: str,
    xlabel: str = "test accuracy (%)",
    reference_label: str = "reference cells",
) -> Figure:
    """A histogram of the ``reference`` cells' values (NaN, a diverged training, left out) with
    a vertical line per entry of ``marks`` (the chosen cell first, then e.g. baselines' picks),
    each labelled with how many reference cells it beats."""
    values = np.asarray(reference, dtype=float)
    finite = values[np.isfinite(values)]
    figure = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.hist(
        finite, bins=min(40, max(5, finite.size // 3)), color="#9db4d0", label=reference_label
    )
    colours = [
        "#d62728",
        "#2ca02c",
        "#ff7f0e",
        "#9467bd",
        "#8c564b",
        "#17becf",
        "#e377c2",
        "#7f7f7f",
    ]
    for number, (name, value) in enumerate(marks.items()):
        beaten = int((finite < value).sum())
        axes.axvline(
            value,
            color=colours[number % len(colours)],
            linewidth=2.0 if number == 0 else 1.4,
            linestyle="-" if number == 0 else "--",
            label=f"{name}: {value:.2f} (beats {beaten} of {values.size})",
        )
    span = np.concatenate([finite, np.asarray(list(marks.values()), dtype=float)])
    low, high = _limits([span])
    axes.set_xlim(low, high)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel("reference cells")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize="small")
    _save(figure, path)
    return figure


def _save(figure: Figure, path: str | Path) -> None:
    figure.tight_layout()
    atomic_write(Path(path), lambda temp: figure.savefig(temp, format="png"))
