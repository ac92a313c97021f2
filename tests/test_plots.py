"""Each plot kind on fixed data: every point inside the axes, whole-cell ticks, the optimum only
when known, the band explained, and the placement histogram with its marks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffusionnag.search.plots import plot_best_so_far, plot_placement

RNG = np.random.default_rng(0)
EVALUATED = np.array([100.2, 40.0, 71.5, 90.0, 93.2])  # a first cell far below the rest
SINGLE = np.maximum.accumulate(EVALUATED)[None, :]
SEVERAL = np.maximum.accumulate(RNG.uniform(60, 95, size=(7, 12)), axis=1)


def _inside(figure, values: np.ndarray) -> bool:
    low, high = figure.axes[0].get_ylim()
    finite = values[np.isfinite(values)]
    return bool(((finite > low) & (finite < high)).all())


def _labels(figure) -> list[str]:
    return figure.axes[0].get_legend_handles_labels()[1]


def test_a_single_run_shows_every_evaluated_cell_and_no_invented_optimum(tmp_path: Path) -> None:
    figure = plot_best_so_far(
        {"random": SINGLE}, None, tmp_path / "run.png", title="t", evaluated={"random": EVALUATED}
    )
    assert _inside(figure, EVALUATED)
    assert not any("optimum" in label for label in _labels(figure))
    assert (tmp_path / "run.png").stat().st_size > 0


def test_x_ticks_are_whole_cells(tmp_path: Path) -> None:
    figure = plot_best_so_far({"random": SINGLE}, None, tmp_path / "run.png", title="t")
    figure.canvas.draw()
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) and np.allclose(ticks, np.round(ticks))


def test_curves_are_steps(tmp_path: Path) -> None:
    figure = plot_best_so_far({"random": SINGLE}, None, tmp_path / "run.png", title="t")
    line = figure.axes[0].get_lines()[0]
    assert line.get_drawstyle() == "steps-post"


def test_the_optimum_is_drawn_when_known_and_held_by_the_axes(tmp_path: Path) -> None:
    figure = plot_best_so_far({"bo": SEVERAL}, 99.0, tmp_path / "bench.png", title="t")
    assert any(label.startswith("table optimum") for label in _labels(figure))
    assert _inside(figure, np.append(SEVERAL.ravel(), 99.0))


def test_the_band_says_what_it_is(tmp_path: Path) -> None:
    figure = plot_best_so_far({"bo": SEVERAL}, None, tmp_path / "bench.png", title="t")
    assert "bo: 25th-75th percentile of 7 runs" in _labels(figure)


def test_placement_histogram_marks_the_chosen_cell_and_the_picks(tmp_path: Path) -> None:
    reference = np.append(RNG.uniform(10, 96, size=99), np.nan)  # one diverged training
    marks = {"chosen cell": 97.0, "random search": 50.0}
    figure = plot_placement(reference, marks, tmp_path / "ref.png", title="t")
    axes = figure.axes[0]
    assert sum(patch.get_height() for patch in axes.patches) == 99
    labels = _labels(figure)
    assert labels[1] == "chosen cell: 97.00 (beats 99 of 100)"
    assert labels[2].startswith("random search: 50.00")
    low, high = axes.get_xlim()
    assert low < np.nanmin(reference) and high > 97.0
