"""A ``search --executor ray`` killed with ``kill -9`` leaves no Ray process behind (issue 29).

Ray's GCS and raylet die with their driver, but its dashboard and runtime-env agents used to
linger 30 to 60 s; :mod:`diffusionnag.ray_reaper` ends them. Each loop starts a real search in
a subprocess (its own local Ray), kills it mid-run and checks that every Ray process it had is
gone within 10 s, and that ``--quiet`` kept Ray's start-up lines off stderr. One loop by
default (about 30 s); ``DIFFUSIONNAG_RAY_KILL_LOOPS=10`` repeats it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_fake_table

from diffusionnag.ray_reaper import kill_if_unchanged, ray_processes_below, stat_fields

if os.environ.get("CI") != "true":
    pytest.importorskip("ray")

LOOPS = int(os.environ.get("DIFFUSIONNAG_RAY_KILL_LOOPS", "1"))
CLI = "import sys; from diffusionnag.cli import main; sys.exit(main(sys.argv[1:]))"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def table_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_table(tmp_path_factory.mktemp("table") / "table.csv", 15625, seed=0)


def _journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _alive(processes: dict[int, str]) -> dict[int, str]:
    """Those of ``processes`` that still run (same pid and start time, not a zombie)."""
    alive = {}
    for pid, started in processes.items():
        fields = stat_fields(pid)
        if fields is not None and fields[19] == started and fields[0] != "Z":
            alive[pid] = started
    return alive


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"


def _start_search(table: Path, out: Path) -> subprocess.Popen:
    argv = ["search", "--strategy", "random", "--benchmark", "nb201:cifar10", "--table",
            str(table), "--budget", "6000", "--executor", "ray", "--workers", "2", "--out",
            str(out), "--quiet"]  # fmt: skip
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the reaper reads /proc")
@pytest.mark.parametrize("loop", range(LOOPS))
def test_a_killed_ray_search_leaves_no_ray_process_within_10_s(
    loop: int, table_path: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    driver = _start_search(table_path, out)
    ours: dict[int, str] = {}
    try:
        deadline = time.monotonic() + 180
        while _journal_lines(out.with_suffix(".jsonl")) < 4 and time.monotonic() < deadline:
            assert driver.poll() is None, driver.communicate()[1].decode()
            time.sleep(0.2)
        ours = ray_processes_below(driver.pid)
        commands = [_command(pid) for pid in ours]
        assert any("raylet" in c for c in commands), commands
        assert any("DashboardAgent" in c or "RuntimeEnvAgent" in c for c in commands), commands
        os.kill(driver.pid, signal.SIGKILL)
        _, err = driver.communicate(timeout=30)
        killed_at = time.monotonic()
        while _alive(ours) and time.monotonic() < killed_at + 10:
            time.sleep(0.2)
        left = _alive(ours)
        assert not left, [_command(pid) for pid in left]
        assert err == b"", err.decode()  # --quiet: not even Ray's start-up lines
    finally:
        driver.kill()
        driver.wait()
        kill_if_unchanged(_alive(ours))  # a failed run must not leave Ray to the next test
