"""Where does architecture matter? Spread of random NB201 cells against seed noise, by scale.

Issue "Image transfer on labels that mean something", part 1. For each *setting* (source,
cells per stage N, resolution, training images per class, epochs E; C=16, the 10-class task
``c0-...-9``, task seed 0), the same 30 random cells (``space.sample(30, default_rng(0))``,
kept as drawn, degenerate ones included) are trained with seed 0 for E and for 2E epochs
(each its own cosine schedule), and the first three cells also with seeds 1-3 at E (four
seeds each, 9 degrees of freedom) for the seed noise. A setting separates cells when the
interquartile range of the 30 cells' test accuracy at E is at least 3 times the pooled
seed-to-seed standard deviation, and E is long enough ("final") when the Spearman correlation
of the cells' test accuracies at E and 2E is at least 0.9. Noise caps that correlation: two
runs of the same protocol agree to about var(cells) / (var(cells) + var(seed)), so 0.9 needs a
cell std of 3 seed stds, an IQR ratio of about 4, whatever E is.

Splits: a cell trains on the task's training images; ``valid`` (drawn from Fashion-MNIST's
training set, disjoint from them) is what a search would select on; ``test`` (Fashion-MNIST's
test set) is what is reported. Both hold 200 images per class (2,000 each), twice the
meta-dataset's 100: a finite evaluation set adds binomial noise (about 0.9 points at 2,000
images and 82 %) to every number, and more images cost only forward passes at a row's end.

Cost is CPU time of the one thread (``CpuClock``): the runs are at nice 19 on a 2-core
machine shared with other jobs, where wall time mostly measures those jobs. ``--pilot``
times one epoch per scale first (``pilot.jsonl``; table in ``summary.md``): training CPU
seconds per epoch at 1,000 images were 1-2.4 (N=1), 2.1 (N=3), 3.3 (N=5) at 16 px and 2.8,
6.0, 9.7 at 28 px; at 5,000 images 12.1 (N=1) and 45.3 (N=5) at 28 px, so cost is about
linear in images. Evaluating 4,000 images cost 1-5 s at 16 px, 4-16 s at 28 px. A setting
costs 30 x (E + 2E) + 9 x E = 99 E cell-epochs plus 69 evaluations.

The grid. The earlier N=1, 16 px, 100/class, 30-epoch protocol (480 steps of 64) did not
separate cells (80.3-82.7 %, seed noise about 1 point). Steps matter more than anything at
this size: one N=5, 28 px cell scored 59 % test after 10 epochs (160 steps), far from
converged, so E=10 at 1,000 images cannot be final for deep networks, and every setting
keeps at least 480 steps. The first setting changes only the depth from the earlier
negative result, which is also the cheapest way to 480 steps at N=5; the rest follow in
order of the question they answer (CPU hours from the pilot):

1. N=5, 16 px, 100/class, E=30: does the benchmark's depth make cells differ (about 2.8 h)?
2. N=3, 16 px, 100/class, E=30: is less depth enough (about 1.8 h)?
3. N=5, 28 px, 100/class, E=30: does resolution add spread (about 8 h)?
4. N=5, 28 px, 500/class, E=10: more images at 800 steps (about 13 h).
5. N=1, 28 px, 500/class, E=10: the shallow net with the most images (about 3.4 h).
6. The same, evaluated on 1,000 images per class (the whole test split; ``-e1000``): the
   models are identical to 5's (the task draws its training images first), and each row keeps
   every test image's outcome, so the report can tell how much of the seed noise is the finite
   evaluation set (``protocol_eval_noise.py``). Two seeds of a cell that disagree on a share d
   of the images differ by sqrt(d / 2n) on n images even if their networks are equally good:
   at 2,000 images and d = 9 % that alone is 0.47 points, as much as setting 5's seed std.
7. The same at 16 px, about half the cost a step: whether the cheaper resolution still
   separates the cells.
8. Setting 6 with a cell's label the mean of two training seeds (``-m2``; NAS-Bench-201's
   tables average three): the seed noise of a label falls by sqrt(2), and so does the noise
   that caps Spearman(E, 2E). It adds seed-1 runs of every cell at E and 2E to setting 6's.
9. Setting 8 at E=20: its E rows are setting 8's 2E rows. At two seeds, E=10 ranked cells
   unlike E=20 (slow learners, cells whose paths are mostly pooling, caught up), so E=20 is
   the next candidate: its spread against its own seed noise, and whether E=40 ranks alike
   (60 rows at E=40, about 10 CPU hours in float32).

The journal ``fashion-mnist-C16-N5-r28-n100.jsonl`` keeps the one E=10 row of the first
grid, which started at N=5, 28 px, E=10 and was stopped after that row.

A scale (all but E) has one journal, so a later E=20 setting reuses E=10's 2E rows. Rows
land one JSON line per (cell, seed, epochs), flushed and fsynced, in
``benchmarks/results/protocol-scale/<scale>.jsonl``; a rerun skips rows already there, so
the same command resumes (``--pilot`` skips its done rows too):

    OMP_NUM_THREADS=1 PYTHONPATH=src nohup nice -n 19 .venv/bin/python \
        benchmarks/bench_protocol_scale.py >> benchmarks/results/protocol-scale/run.log 2>&1 &
    PYTHONPATH=src .venv/bin/python benchmarks/bench_protocol_scale.py --report

``--shard K/M`` runs every M-th planned run from the K-th into its own journal
(``<scale>.shard-K-of-M.jsonl``), so M processes share one setting without sharing a file:

    for k in 0 1; do OMP_NUM_THREADS=1 PYTHONPATH=src nohup nice -n 15 .venv/bin/python \
        benchmarks/bench_protocol_scale.py --settings fashion-mnist-C16-N1-r28-n500-e1000-E10 \
        --shard $k/2 >> benchmarks/results/protocol-scale/run-e1000.log 2>&1 & done

Part 2 (not built here): at the final setting, candidate proxies (fewer epochs, fewer
images, lower resolution, a shorter schedule) on >= 6 tasks x the same 30 cells, scored by
Spearman/Kendall against that setting's E-epoch test accuracies. Evaluation is a large share
of a short proxy's cost (4,000 forward passes), so a proxy should score on valid only; and
several small networks could train at once as one batched process where a thread is idle.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch
from protocol_rows import Shard, append_row, random_cells, read_rows, train_cell  # beside this
from protocol_scale_report import scale_rows, write_report

from diffusionnag.evaluators.tasks import TaskSpec
from diffusionnag.evaluators.train_config import TrainConfig

RESULTS = Path(__file__).parent / "results" / "protocol-scale"
CLASSES = tuple(range(10))
EVAL_PER_CLASS = 200
TASK_SEED = 0
CELL_DRAW_SEED = 0
RANDOM_CELLS = 30
NOISE_CELLS = 3  # the first cells of the draw: random, so not chosen by how they score
NOISE_SEEDS = (1, 2, 3)  # plus the seed-0 run every cell gets


@dataclass(frozen=True)
class Setting:
    """One protocol: a scale (network, images, resolution; its journal) and E epochs."""

    source: str
    cells_per_stage: int
    resolution: int
    per_class: int
    epochs: int
    channels: int = 16
    eval_per_class: int = EVAL_PER_CLASS
    label_seeds: int = 1
    """A cell's label is the mean test accuracy of this many training seeds (0, 1, ...), as
    NAS-Bench-201's tables average three: its seed noise is a run's over sqrt(label_seeds)."""

    @property
    def scale(self) -> str:
        """Everything but the epochs: settings of one scale share a journal, so E=20 reuses
        the 2E rows of E=10."""
        evaluation = "" if self.eval_per_class == EVAL_PER_CLASS else f"-e{self.eval_per_class}"
        return (
            f"{self.source}-C{self.channels}-N{self.cells_per_stage}-r{self.resolution}"
            f"-n{self.per_class}{evaluation}"
        )

    @property
    def name(self) -> str:
        mean = "" if self.label_seeds == 1 else f"-m{self.label_seeds}"
        return f"{self.scale}-E{self.epochs}{mean}"

    def task(self) -> TaskSpec:
        return TaskSpec(
            self.source, CLASSES, self.per_class, self.resolution, TASK_SEED, self.eval_per_class
        )

    def config(self, epochs: int, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
            seed=seed,
            device="cpu",
            num_threads=1,
        )


GRID = (
    Setting("fashion-mnist", 5, 16, 100, 30),
    Setting("fashion-mnist", 3, 16, 100, 30),
    Setting("fashion-mnist", 5, 28, 100, 30),
    Setting("fashion-mnist", 5, 28, 500, 10),
    Setting("fashion-mnist", 1, 28, 500, 10),
    Setting("fashion-mnist", 1, 28, 500, 10, eval_per_class=1000),
    Setting("fashion-mnist", 1, 16, 500, 10, eval_per_class=1000),
    Setting("fashion-mnist", 1, 28, 500, 10, eval_per_class=1000, label_seeds=2),
    Setting("fashion-mnist", 1, 28, 500, 20, eval_per_class=1000, label_seeds=2),
)


@dataclass(frozen=True)
class Run:
    cell_index: int
    seed: int
    epochs: int

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.cell_index, self.seed, self.epochs)


def planned_runs(setting: Setting) -> list[Run]:
    """The noise cells with all their seeds first (seed noise is the least known number, and
    a session that ends early still reports it), then the other cells at E (the spread; seed
    by seed), then all cells at 2E (whether E was long enough; cell by cell, so that a partial
    run has whole labels)."""
    seeds = range(setting.label_seeds)
    # with two or more seeds a label, every cell's seeds give the noise: no extra seeds
    extra = NOISE_SEEDS if setting.label_seeds == 1 else ()
    noise = [Run(i, s, setting.epochs) for i in range(NOISE_CELLS) for s in (0, *extra)]
    spread = [
        Run(i, s, setting.epochs)
        for s in seeds
        for i in range(RANDOM_CELLS)
        if Run(i, s, setting.epochs) not in noise
    ]
    longer = [Run(i, s, 2 * setting.epochs) for i in range(RANDOM_CELLS) for s in seeds]
    return noise + spread + longer


def train_row(setting: Setting, run: Run, cell: str) -> dict:
    row = train_cell(setting.task(), setting.config(run.epochs, run.seed), cell)
    run_fields = {"cell_index": run.cell_index, "seed": run.seed, "epochs": run.epochs}
    return {"setting": setting.name, "scale": setting.scale, **run_fields, **row}


def run_setting(setting: Setting, shard: Shard) -> None:
    path = shard.journal(RESULTS, setting.scale)
    done = {(r["cell_index"], r["seed"], r["epochs"]) for r in scale_rows(RESULTS, setting.scale)}
    cells = random_cells(RANDOM_CELLS, CELL_DRAW_SEED)
    for position, run in enumerate(planned_runs(setting)):
        if run.key in done or not shard.takes(position):
            continue
        row = train_row(setting, run, cells[run.cell_index])
        append_row(path, row)
        print(
            f"{row['finished_utc']} {setting.name} cell {run.cell_index:2d} seed {run.seed} "
            f"E{run.epochs}: test {row['test']:.2f} valid {row['valid']:.2f} "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )


PILOT_SCALES = [(n, r, 100, 2) for r in (16, 28) for n in (1, 3, 5)] + [
    (n, 28, 500, 1) for n in (1, 5)
]
"""(N, resolution, per class, cells): every depth and size at 100 per class; 500 per class
only at 28 px, to check that cost grows linearly in images (the pilot runs at nice 19 too)."""


def run_pilot() -> None:
    """CPU seconds per cell for one epoch (training and evaluation apart) at each pilot scale,
    on the first random cells."""
    path = RESULTS / "pilot.jsonl"
    done = {(r["setting"], r["cell_index"]) for r in read_rows(path)}
    for n, resolution, per_class, cells in PILOT_SCALES:
        setting = Setting("fashion-mnist", n, resolution, per_class, epochs=1)
        for index, cell in enumerate(random_cells(RANDOM_CELLS, CELL_DRAW_SEED)[:cells]):
            if (setting.name, index) in done:
                continue
            row = train_row(setting, Run(index, 0, 1), cell)
            append_row(path, row)
            print(
                f"pilot {setting.name} cell {index}: {row['train_cpu_seconds']} s train, "
                f"{row['eval_cpu_seconds']} s evaluation (CPU)",
                flush=True,
            )


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pilot", action="store_true", help="time one epoch per scale, then run")
    parser.add_argument("--report", action="store_true", help="write summary.md/json and stop")
    parser.add_argument("--settings", nargs="*", help="setting names to run (default: GRID)")
    Shard.add_option(parser)
    args = parser.parse_args()
    if args.report:
        write_report(GRID, RESULTS)
        return
    if args.pilot:
        run_pilot()
    for setting in GRID:
        if args.settings and setting.name not in args.settings:
            continue
        run_setting(setting, args.shard)


if __name__ == "__main__":
    main()
