"""Issue 27 part 4: DiffusionNAG-BO against the baselines on ``ofa:imagenet`` under each budget.

Runs ``diffusionnag benchmark --benchmark ofa:imagenet,<budget> --space mbv3`` (the ordinary
harness: one journaled search per strategy and seed) for each budget and seed range, in the order
given (the tuning seeds 0-9 first, then the fresh 10-19), each into its own folder
``OUT/<budget folder>/seeds-<first>-<last>/``, with ``--resume``: rerunning the same command
continues where a killed one stopped, and finished runs are only read back. The reference each
run counts evaluations to is the budget's high-water mark, read from
``benchmarks/results/ofa-high-water/summary.json`` (best of its long evolution runs).

Every strategy asks ``--batch-size`` cells at a time (default 10, BANANAS' protocol) and searches
the space restricted to the budget, so none proposes a cell over budget; the evaluator would
record one as a failed trial costing an evaluation, and the report counts any.

``--report`` (also written after every finished benchmark) reads the journals alone and writes
``OUT/summary.md`` and ``summary.json``: per budget and seed range (0-9, 10-19 and all seeds
together), per strategy, the median best predicted top-1 after 50, 100 (and 200) evaluations,
and the median number of evaluations to within 0.1 point of the high-water mark. Usage:

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_ofa_bo.py \\
        --budget 100 --out benchmarks/results/ofa-bo
    .venv/bin/python benchmarks/bench_ofa_bo.py --report --out benchmarks/results/ofa-bo
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from diffusionnag.io import atomic_write_json, atomic_write_text

BUDGETS = {  # the high-water benchmark's name: (the ofa option, the output folder)
    "flops<=300M": ("max_flops=300e6", "flops-300M"),
    "flops<=450M": ("max_flops=450e6", "flops-450M"),
    "latency<=25ms": ("max_latency_ms=25", "latency-25ms"),
}
LIMITS = {"flops<=300M": ("flops", 300e6), "flops<=450M": ("flops", 450e6)}
LIMITS["latency<=25ms"] = ("latency_ms", 25.0)
NUM_INIT = 10
Run = tuple[np.ndarray, int, np.ndarray, float]
"""A run's best-so-far curve, failed trials, each cell's cost, strategy seconds in all."""
"""Every model-based strategy here starts with 10 random cells; "used" counts the cells after."""
STRATEGIES = ("random", "evolution", "local", "bananas", "tpe", "optuna-gp", "diffusionnag-bo")
STRATEGY_OPTIONS = {"optuna-gp": ["deterministic=true"]}  # the predictor has no noise
HIGH_WATER = Path("benchmarks/results/ofa-high-water/summary.json")
CHECKPOINTS = (50, 100, 200)
NEAR = 0.1
RANGES = (("0-9", range(0, 10)), ("10-19", range(10, 20)), ("0-19", range(0, 20)))


def high_water(path: Path = HIGH_WATER) -> dict[str, float]:
    """The best value per budget over the high-water benchmark's runs."""
    runs = json.loads(path.read_text(encoding="utf-8"))["runs"]
    marks: dict[str, float] = {}
    for run in runs:
        marks[run["budget"]] = max(marks.get(run["budget"], -math.inf), run["best"])
    return marks


def variant(bo_options: list[str]) -> str:
    """The folder (and row) name of DiffusionNAG-BO run with ``NAME=VALUE`` options."""
    return ",".join(sorted(bo_options))


def command(args: argparse.Namespace, budget: str, first: int, mark: float) -> list[str]:
    """The harness command of one budget and seed range: the strategies of ``--strategies``
    into ``<budget folder>/seeds-a-b``, or, with ``--bo-option``, DiffusionNAG-BO alone with
    those options into ``<budget folder>/variants/<options>/seeds-a-b``."""
    option, folder = BUDGETS[budget]
    out = args.out / folder
    strategies, options = list(args.strategies), []
    if args.bo_option:
        out = out / "variants" / variant(args.bo_option)
        strategies = ["diffusionnag-bo"]
        options = [f"--option=diffusionnag-bo:{pair}" for pair in args.bo_option]
    for strategy in strategies:
        options += [f"--option={strategy}:{pair}" for pair in STRATEGY_OPTIONS.get(strategy, [])]
    return [
        sys.executable, "-m", "diffusionnag", "benchmark",
        "--space", "mbv3", "--benchmark", f"ofa:imagenet,{option}",
        "--reference", repr(mark), "--strategies", *strategies, *options,
        "--seeds", str(args.seeds), "--first-seed", str(first),
        "--budget", str(args.budget), "--batch-size", str(args.batch_size),
        "--workers", str(args.workers),
        "--out", str(out / f"seeds-{first}-{first + args.seeds - 1}"), "--resume", "--quiet",
    ]  # fmt: skip


def groups(folder: Path) -> dict[str, tuple[Path, str]]:
    """Row name -> (folder of its seed ranges, strategy) of every run under a budget folder:
    each strategy of the main comparison, and DiffusionNAG-BO variants as ``bo[options]``."""
    found = {}
    for strategy in STRATEGIES:
        if any(folder.glob(f"seeds-*/runs/*/{strategy}")):
            found[strategy] = (folder, strategy)
    for path in sorted((folder / "variants").glob("*")):
        found[f"diffusionnag-bo[{path.name}]"] = (path, "diffusionnag-bo")
    return found


def curves(
    folder: Path, strategy: str, seeds: range, budget: int, cost: str = "flops"
) -> dict[int, Run]:
    """Best-so-far curves of the journals of ``seeds`` that hold at least ``budget`` trials;
    a failed trial (a cell over budget) counts as ``-inf``; how many there were; the ``cost``
    of each evaluated cell."""
    found = {}
    for journal in folder.glob(f"seeds-*/runs/*/{strategy}/seed*.jsonl"):
        seed = int(journal.stem.removeprefix("seed"))
        if seed not in seeds:
            continue
        lines = journal.read_text(encoding="utf-8").splitlines()
        trials = [json.loads(line) for line in lines[1:] if line.strip()]
        if len(trials) < budget:
            continue
        values = np.array([t["value"] if not t["failed"] else -np.inf for t in trials[:budget]])
        costs = np.array([t["metrics"][cost] for t in trials[:budget]])
        seconds = sum(t["strategy_seconds"] for t in trials[:budget])
        found[seed] = (np.maximum.accumulate(values), int(np.isinf(values).sum()), costs, seconds)
    return found


def row(runs: dict[int, Run], mark: float, budget: int, limit: float) -> dict[str, Any]:
    stack = np.array([run[0] for run in runs.values()])
    used = np.concatenate([run[2][NUM_INIT:] for run in runs.values()]) / limit
    reach = [
        float(np.flatnonzero(c >= mark - NEAR - 1e-9)[0] + 1) if (c >= mark - NEAR - 1e-9).any()
        else math.inf
        for c in stack
    ]  # fmt: skip
    median = float(np.median(reach))
    return {
        "runs": len(runs),
        "seeds": sorted(runs),
        "best_at": {str(c): float(np.median(stack[:, c - 1])) for c in CHECKPOINTS if c <= budget},
        "best_by_seed": {
            str(c): {str(seed): float(run[0][c - 1]) for seed, run in runs.items()}
            for c in CHECKPOINTS
            if c <= budget
        },
        "evals_to_within": None if math.isinf(median) else median,
        "reached": int(sum(not math.isinf(r) for r in reach)),
        "iqr_at_budget": [float(q) for q in np.percentile(stack[:, budget - 1], [25, 75])],
        "failed_trials": int(sum(run[1] for run in runs.values())),
        "strategy_seconds_per_run": float(np.median([run[3] for run in runs.values()])),
        "median_cost_used": float(np.median(used)),
    }


def report(args: argparse.Namespace) -> str:
    marks = high_water()
    blocks: dict[str, Any] = {}
    lines = [
        "# DiffusionNAG-BO on ofa:imagenet (issue 27 part 4)",
        "",
        f"Budget {args.budget} evaluations, batch size {args.batch_size} for every strategy. "
        "Value: OFA's predicted ImageNet top-1 (%). `best@n`: median over the seeds of the "
        f"best value after n evaluations; `to HW-{NEAR}`: median evaluations to within {NEAR} "
        "of the high-water mark (runs that never get there count as infinite), with how many "
        "runs got there. Only runs that finished the budget count. `failed`: trials over budget "
        "(each would cost an evaluation). `cost used`: median FLOPs (or latency) of the cells "
        f"evaluated after the first {NUM_INIT}, as a share of the limit. `s/run`: median "
        "strategy seconds of a run (asking, not evaluating; on a shared core).",
    ]
    for budget in BUDGETS:
        mark = marks[budget]
        for label, seeds in RANGES:
            rows = {}
            cost, limit = LIMITS[budget]
            for name, (folder, strategy) in groups(args.out / BUDGETS[budget][1]).items():
                runs = curves(folder, strategy, seeds, args.budget, cost)
                if runs:
                    rows[name] = row(runs, mark, args.budget, limit)
            if label == "0-19":  # only rows with runs in both ranges
                rows = {n: r for n, r in rows.items() if min(r["seeds"]) < 10 <= max(r["seeds"])}
            if not rows:
                continue
            blocks[f"{budget} seeds {label}"] = {"high_water": mark, "strategies": rows}
            lines += ["", f"## {budget}, seeds {label}: high-water mark {mark:.2f}", ""]
            lines += _table(rows, args.budget)
    lines += _verdict(blocks, args.budget)
    atomic_write_json(args.out / "summary.json", {"budget": args.budget, "blocks": blocks})
    atomic_write_text(args.out / "summary.md", "\n".join(lines) + "\n")
    return "\n".join(lines) + "\n"


def _verdict(blocks: dict[str, Any], budget: int) -> list[str]:
    """Per block and DiffusionNAG-BO row: its median best minus the best baseline's, at each
    checkpoint (positive: ahead of every baseline that ran), and the paired comparison with
    that baseline over the seeds both ran (every strategy's first 10 cells are the same random
    cells for a seed, so a seed is a pair): the median per-seed difference, the seeds where
    DiffusionNAG-BO is ahead, and the two-sided sign test's p (ties left out)."""
    points = [c for c in CHECKPOINTS if c <= budget]
    lines = [
        "",
        "## DiffusionNAG-BO minus the best baseline (median best, points)",
        "",
        "Each cell: the difference of the medians (vs the baseline with the best median), then "
        "paired by seed against that baseline: median per-seed difference, seeds ahead / "
        "seeds, sign-test p.",
        "",
        "| budget, seeds | row | baselines | " + " | ".join(f"@{c}" for c in points) + " |",
        "|---|---|---|" + "---|" * len(points),
    ]
    for name, block in blocks.items():
        rows = block["strategies"]
        baselines = [n for n in rows if not n.startswith("diffusionnag-bo")]
        for bo in (n for n in rows if n.startswith("diffusionnag-bo") and baselines):
            cells = []
            for c in points:
                best = max(baselines, key=lambda n: rows[n]["best_at"][str(c)])
                margin = rows[bo]["best_at"][str(c)] - rows[best]["best_at"][str(c)]
                cells.append(f"{margin:+.2f} (vs {best}); {_paired(rows[bo], rows[best], c)}")
            lines.append(f"| {name} | {bo} | {len(baselines)} | " + " | ".join(cells) + " |")
    return lines


def _paired(mine: dict[str, Any], theirs: dict[str, Any], checkpoint: int) -> str:
    """Median per-seed difference, seeds ahead / seeds, and the two-sided sign test's p."""
    a, b = mine["best_by_seed"][str(checkpoint)], theirs["best_by_seed"][str(checkpoint)]
    diffs = np.array([a[seed] - b[seed] for seed in a if seed in b])
    ahead, behind = int((diffs > 0).sum()), int((diffs < 0).sum())
    n = ahead + behind
    tail = sum(math.comb(n, k) for k in range(min(ahead, behind) + 1)) / 2**n if n else 1.0
    return f"{np.median(diffs):+.2f}, {ahead}/{len(diffs)}, p={min(1.0, 2 * tail):.2f}"


def _table(rows: dict[str, Any], budget: int) -> list[str]:
    points = [c for c in CHECKPOINTS if c <= budget]
    header = ["strategy", "runs", *(f"best@{c}" for c in points), f"to HW-{NEAR}", "failed"]
    header += [f"IQR@{budget}", "cost used", "s/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in rows.items():
        count = entry["evals_to_within"]
        reach = f"{'>' + str(budget) if count is None else f'{count:g}'} "
        reach += f"({entry['reached']}/{entry['runs']})"
        cells = [name, str(entry["runs"]), *(f"{entry['best_at'][str(c)]:.2f}" for c in points)]
        low, high = entry["iqr_at_budget"]
        cells += [reach, str(entry["failed_trials"]), f"{low:.2f}-{high:.2f}"]
        cells += [f"{entry['median_cost_used']:.1%}", f"{entry['strategy_seconds_per_run']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", nargs="+", choices=list(BUDGETS), default=list(BUDGETS))
    parser.add_argument("--first-seeds", nargs="+", type=int, default=[0, 10])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per range; default 10")
    parser.add_argument("--budget", type=int, default=100, help="evaluations per run")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument(
        "--bo-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="run DiffusionNAG-BO alone with these options, into variants/<options>/",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ofa-bo"))
    parser.add_argument("--report", action="store_true", help="only summarise the journals")
    args = parser.parse_args()
    if not args.report:
        marks = high_water()
        for budget in args.budgets:
            for first in args.first_seeds:
                cmd = command(args, budget, first, marks[budget])
                print("$", shlex.join(cmd), flush=True)
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                report(args)
    print(report(args))


if __name__ == "__main__":
    main()
