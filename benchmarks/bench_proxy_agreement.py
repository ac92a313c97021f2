"""The cheapest short protocol that ranks cells as the final protocol does (issue "Image transfer
on labels that mean something", part 2).

The final protocol is part 1's candidate (``bench_protocol_scale.py``): NB201 network C=16,
N=1, trained 20 epochs with SGD and a cosine schedule, and at least 1,580 SGD steps of 64
images (20 epochs of the 5,000-image task) on smaller tasks; its label is the mean test
accuracy of two runs (seeds 0 and 1) on the task's whole test split (1,000 images per class),
as NAS-Bench-201's tables average three. One run's label qualified on neither of the first two
tasks (IQR 2.9 and 2.5 times a run's seed noise, on 30 and 6 cells); two runs' labels have
1/sqrt(2) of that noise, and every cell's two runs measure the noise on 30 cells, not 6.
The 10-epoch rows already trained (seeds 0 and 1) stay, named ``final`` (E10), as a baseline
in the report; 10 epochs ranked cells unlike 20 on part 1's task (slow learners catch up).
Six tasks at 500 training images per class and 28 px, each the same 30 random cells
(``space.sample(30, default_rng(0))``, as part 1):

- the 10 classes as they are (part 1's own task and rows), rotated, blurred and noisy
  (``evaluators/task_transforms.py``);
- the four tops (T-shirt, pullover, coat, shirt), the classes Fashion-MNIST confuses most;
- five classes inverted.

A task *qualifies* when its 30 labels' IQR is at least 3 times a label's seed noise: a run's,
pooled over the 30 cells' two runs, over sqrt(2).

Each candidate proxy trains the same cells with seed 0 for a fraction of the final's steps
(cosine schedule over its own length), optionally on fewer images or at a lower resolution,
in bfloat16 with channels-last memory (2.3x cheaper a step than float32 here,
``profile_train_step.py --compare-formats``), and is scored by its accuracy on 200 validation
images per class; a search would rank by that. ``s790`` is 10 epochs in bfloat16.

The final rows of the five new tasks train in float32 with channels-last memory (1.4x cheaper a
step), which changes only the order of the convolutions' sums; on part 1's task its first cells
are trained at 10 epochs that way and in bfloat16 too (seeds 0 and 1), and the report sets
each change beside a change of seed.
Per task, the report gives Spearman and Kendall between a proxy's validation accuracies and the
final protocol's test accuracies, beside the free baseline (parameter count), and the proxy's
CPU seconds per cell (training and its validation pass). The proxy chosen is the cheapest whose
median Spearman over the qualifying tasks is at least 0.8.

Plan order: task by task, every proxy, then the final rows (cell by cell, both seeds), so the
first tasks finish early; proxies come first because their rows stand whatever part 1 settles
as final (its E vs 2E test is still running). The first two tasks end with two proxies'
seed-1 runs (``PROXY_SEED_CHECK``). Rows land in
``benchmarks/results/proxy-agreement/<task>.jsonl`` (flushed and fsynced); a rerun skips rows
already there, and ``--shard K/M`` splits the plan over processes, each writing its own
journal; ``--tasks 1 3`` runs only those tasks (never two processes on one task's plan with
different ``--tasks``/``--shard``):

    for k in 0 1; do OMP_NUM_THREADS=1 PYTHONPATH=src nohup nice -n 15 .venv/bin/python \\
        benchmarks/bench_proxy_agreement.py --shard $k/2 \\
        >> benchmarks/results/proxy-agreement/run.log 2>&1 & done
    PYTHONPATH=src .venv/bin/python benchmarks/bench_proxy_agreement.py --report
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from protocol_rows import Shard, append_row, plan_rows, random_cells, train_cell  # beside this
from proxy_agreement_report import write_report

from diffusionnag.evaluators.tasks import TaskSpec
from diffusionnag.evaluators.train_config import TrainConfig

RESULTS = Path(__file__).parent / "results" / "proxy-agreement"
PART1_RESULTS = Path(__file__).parent / "results" / "protocol-scale"
PART1_SCALE = "fashion-mnist-C16-N1-r28-n500-e1000"
CELLS = 30
CELL_DRAW_SEED = 0
LAYOUT_CHECK_CELLS = 3
BF16_CHECK_CELLS = 8
FINAL_SEEDS = (0, 1)
FINAL_EPOCHS = 20
FINAL_STEPS = 1580  # 20 epochs of 5,000 images in batches of 64 (78 full and one of 8 each)
PROXY_EVAL_PER_CLASS = 200
ALL = tuple(range(10))


def _task(classes: tuple[int, ...], transform: str = "none") -> TaskSpec:
    return TaskSpec("fashion-mnist", classes, 500, 28, 0, 1000, transform)


TASKS = (
    _task(ALL),
    _task(ALL, "rotate"),
    _task(ALL, "blur"),
    _task(ALL, "noise"),
    _task((0, 2, 4, 6)),
    _task((0, 1, 2, 3, 4), "invert"),
)


@dataclass(frozen=True)
class Protocol:
    """How a row was trained: ``steps`` SGD steps (at least ``epochs`` epochs) on the task cut
    to ``per_class`` images at ``resolution`` px, scored on ``eval_per_class`` per class."""

    name: str
    steps: int
    epochs: int = 1
    per_class: int | None = None  # None: the task's own
    resolution: int | None = None
    eval_per_class: int = PROXY_EVAL_PER_CLASS
    channels_last: bool = True
    bf16: bool = True

    def spec(self, task: TaskSpec) -> TaskSpec:
        return dataclasses.replace(
            task,
            per_class=self.per_class or task.per_class,
            resolution=self.resolution or task.resolution,
            eval_per_class=self.eval_per_class,
        )

    def config(self, seed: int) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            steps=self.steps,
            channels=16,
            cells_per_stage=1,
            seed=seed,
            device="cpu",
            num_threads=1,
            channels_last=self.channels_last,
            bf16=self.bf16,
        )


FINAL = Protocol("final-e20", FINAL_STEPS, FINAL_EPOCHS, eval_per_class=1000, bf16=False)
"""Float32, channels-last: part 1's protocol, a third cheaper (see ``FINAL_LAYOUT_CHECK``)."""
E10 = Protocol("final", 790, 10, eval_per_class=1000, bf16=False)
"""The earlier candidate, 10 epochs; its rows (seeds 0 and 1) keep the name they were written
under."""
FINAL_LAYOUT_CHECK = dataclasses.replace(E10, name="final-channels-last")
FINAL_BF16_CHECK = dataclasses.replace(E10, name="final-bf16", bf16=True)
"""10 epochs in bfloat16 (a step 1.6x cheaper than float32 channels-last): on part 1's task its
first cells are trained so, seeds 0 and 1, to see whether bfloat16 moves a result more than a
change of seed (and in which direction)."""
NUMERICS_CHECKS = ((FINAL_LAYOUT_CHECK, LAYOUT_CHECK_CELLS), (FINAL_BF16_CHECK, BF16_CHECK_CELLS))
_PROXY_SHAPES = (  # name, steps, least epochs, images per class, resolution (None: the task's)
    ("s79", 79, 1, None, None),  # 1 epoch of the 10-class task
    ("s158", 158, 1, None, None),
    ("r16-s158", 158, 1, None, 16),
    ("n100-s158", 158, 1, 100, None),
    ("s316", 316, 1, None, None),
    ("s790", 790, 10, None, None),  # E10's length in bfloat16: last, the dearest
)
PROXIES = tuple(
    Protocol(f"{name}-v1000", steps, epochs, per_class, resolution, eval_per_class=1000)
    for name, steps, epochs, per_class, resolution in _PROXY_SHAPES
)
"""Scored on 1,000 validation images per class: at 20 epochs the cells' IQR on the plain task
is 0.72 points, and two networks' accuracies on 2,000 images differ by about 0.5 points from
the images alone (they disagree on about 6 % of them), which swamped the earlier proxies
(``EARLIER_PROXIES``: s790 ranked cells at Spearman 0.83 by its 2,000 validation images and
0.58 by its 2,000 test images)."""
EARLIER_PROXIES = tuple(Protocol(*shape) for shape in _PROXY_SHAPES)
"""Scored on 200 validation images per class; their rows stay in the report, no longer run."""
PROXY_SEED_CHECK = (PROXIES[1], PROXIES[4])
"""Trained with seed 1 too, on the first two tasks (``PROXY_SEED_TASKS``): how much of a proxy's
disagreement with the final label is its own seed noise, which averaging two runs would halve,
and how much is what a short run measures (how fast a cell learns)."""
PROXY_SEED_TASKS = 2


@dataclass(frozen=True)
class Run:
    protocol: Protocol
    cell_index: int
    seed: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.protocol.name, self.cell_index, self.seed)


def task_stem(task: TaskSpec) -> str:
    return task.name.replace("/", "_")


def planned_runs(task: TaskSpec) -> list[Run]:
    """Proxies, final rows, then (the first two tasks) ``PROXY_SEED_CHECK``. Part 1's task takes
    its final rows from part 1's journals (float32, default memory layout); there, its first
    cells are also trained channels-last and in bfloat16 (``NUMERICS_CHECKS``), to show whether
    either changes results more than a seed does."""
    final = [Run(FINAL, i, s) for i in range(CELLS) for s in FINAL_SEEDS]
    proxies = [Run(p, i, 0) for p in PROXIES for i in range(CELLS)]
    seed_check = [
        Run(p, i, 1)
        for p in (PROXY_SEED_CHECK if task in TASKS[:PROXY_SEED_TASKS] else ())
        for i in range(CELLS)
    ]
    if task == TASKS[0]:
        checks = [
            Run(protocol, i, s)
            for protocol, cells in NUMERICS_CHECKS
            for i in range(cells)
            for s in FINAL_SEEDS
        ]
        return checks + proxies + seed_check
    # proxies first: their rows stand whatever part 1 settles as final, the final rows do not
    return proxies + final + seed_check


def task_rows(task: TaskSpec) -> list[dict]:
    """The task's rows; on part 1's task its E=10 and E=20 rows (the same training: 790 and
    1,580 steps are 10 and 20 epochs there) serve as ``final`` and ``final-e20``."""
    rows = plan_rows(RESULTS, task_stem(task), ("protocol", "cell_index", "seed"))
    if task == TASKS[0]:
        part1 = plan_rows(PART1_RESULTS, PART1_SCALE, ("cell_index", "seed", "epochs"))
        names = {E10.epochs: E10.name, FINAL.epochs: FINAL.name}
        rows += [{**r, "protocol": names[r["epochs"]]} for r in part1 if r["epochs"] in names]
    return rows


def run_plan(shard: Shard, tasks: list[int]) -> None:
    cells = random_cells(CELLS, CELL_DRAW_SEED)
    position = 0
    for task in (TASKS[i] for i in tasks):
        done = {(r["protocol"], r["cell_index"], r["seed"]) for r in task_rows(task)}
        path = shard.journal(RESULTS, task_stem(task))
        for run in planned_runs(task):
            position += 1
            if run.key in done or not shard.takes(position):
                continue
            spec, config = run.protocol.spec(task), run.protocol.config(run.seed)
            fields = {"protocol": run.protocol.name, "cell_index": run.cell_index}
            row = {**fields, "seed": run.seed, **train_cell(spec, config, cells[run.cell_index])}
            append_row(path, row)
            print(
                f"{row['finished_utc']} {task.name} {run.protocol.name} cell {run.cell_index:2d} "
                f"seed {run.seed}: valid {row['valid']:.2f} test {row['test']:.2f} "
                f"({row['train_cpu_seconds']:.0f} s train CPU)",
                flush=True,
            )


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", action="store_true", help="write summary.md/json and stop")
    Shard.add_option(parser)
    parser.add_argument(
        "--tasks",
        type=int,
        nargs="+",
        choices=range(len(TASKS)),
        default=list(range(len(TASKS))),
        help="indices of the tasks to run (default: all, in order); one process per task",
    )
    args = parser.parse_args()
    if args.report:
        rows = {task.name: task_rows(task) for task in TASKS}
        checks = [check.name for check, _ in NUMERICS_CHECKS]
        write_report(rows, RESULTS, PROXIES + EARLIER_PROXIES, FINAL.name, E10.name, checks)
        return
    run_plan(args.shard, args.tasks)


if __name__ == "__main__":
    main()
