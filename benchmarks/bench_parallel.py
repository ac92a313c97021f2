"""Wall time of one real-training search, batch q evaluated on 1 worker, 2 local workers and Ray.

Protocol: ``diffusionnag search`` with a cheap strategy (evolution, so the time is training),
``train:digits`` on NB201 cells, ``--batch-size 4``, the same seed for every configuration, one
torch thread per evaluation (``TrainConfig.num_threads=1`` and ``OMP_NUM_THREADS=1``). The Ray
run joins a local cluster this script starts with ``ray start --head --num-cpus 2`` on a fixed
port and stops with ``ray stop`` at the end. The trajectories (cells and values) must be
identical, or the script fails. Wall time includes process start, data loading and, for Ray,
connecting to the cluster and starting its workers. The load average (``/proc/loadavg``) before
and after each run is printed next to it, since a shared machine skews the ratio.

    python benchmarks/bench_parallel.py --budget 16 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CLI = "import sys; from diffusionnag.cli import main; sys.exit(main(sys.argv[1:]))"
ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
"""One torch thread per process; the cluster this script starts is local, without a token."""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_search(args: argparse.Namespace, name: str, extra: list[str]) -> dict:
    out = args.out / name / "run.json"
    shutil.rmtree(out.parent, ignore_errors=True)
    command = [
        sys.executable, "-c", CLI, "search", "--strategy", args.strategy,
        "--benchmark", "train:digits", "--space", "nb201", "--budget", str(args.budget),
        "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
        "--seed", str(args.seed), "--device", "cpu", "--quiet", "--out", str(out), *extra,
    ]  # fmt: skip
    before = load_average()
    start = time.perf_counter()
    subprocess.run(command, check=True, env=ENVIRONMENT, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    result = json.loads(out.read_text())
    print(f"{name}: {seconds:.1f} s wall", flush=True)
    trajectory = [(t["arch"], t["value"]) for t in result["trajectory"]]
    return {
        "name": name,
        "seconds": seconds,
        "eval_seconds": result["eval_seconds_total"],
        "trajectory": trajectory,
        "best": result["best"]["value"],
        "load": f"{before} -> {load_average()}",
        "command": " ".join(command[3:]),
    }


def ray_cluster(action: str, port: int) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    if action == "start":
        command = [
            ray, "start", "--head", "--num-cpus", "2", "--port", str(port),
            "--include-dashboard", "false", "--disable-usage-stats",
        ]  # fmt: skip
    else:
        command = [ray, "stop"]
    subprocess.run(command, check=True, env=ENVIRONMENT, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategy", default="evolution")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray-port", type=int, default=6390)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray configuration")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_parallel"))
    args = parser.parse_args()
    runs = [run_search(args, "workers1", ["--workers", "1"])]
    runs.append(run_search(args, "local2", ["--workers", "2"]))
    if not args.no_ray:
        ray_cluster("start", args.ray_port)
        try:
            address = ["--ray-address", f"127.0.0.1:{args.ray_port}"]
            runs.append(run_search(args, "ray2", ["--workers", "2", "--executor", "ray", *address]))
        finally:
            ray_cluster("stop", args.ray_port)
    for run in runs[1:]:
        assert run["trajectory"] == runs[0]["trajectory"], f"{run['name']} differs from 1 worker"
    print("| configuration | wall s | speed-up | sum of eval s | best | load avg before -> after |")
    print("|---|---|---|---|---|---|")
    for run in runs:
        speedup = runs[0]["seconds"] / run["seconds"]
        print(
            f"| {run['name']} | {run['seconds']:.1f} | {speedup:.2f}x | {run['eval_seconds']:.1f} "
            f"| {run['best']:.2f} | {run['load']} |"
        )
    print(f"\nidentical trajectories: {len(runs[0]['trajectory'])} cells")
    for run in runs:
        print(f"{run['name']}: diffusionnag {run['command']}")


if __name__ == "__main__":
    main()
