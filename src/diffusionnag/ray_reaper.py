"""Ends the local Ray instance a driver started when the driver dies without shutting it down.

Ray's GCS and raylet die with their driver, even under ``kill -9``, but its dashboard and
runtime-env agents notice only 30 to 60 s later. :class:`~diffusionnag.execution_ray.RayExecutor`
starts this watcher, in a session of its own (a Ctrl-C to the driver's terminal does not reach
it), reading a pipe from the driver. While the pipe is open and the driver is its parent, it
notes, twice a second, every process below the driver whose command line mentions Ray; once the
pipe closes or the driver is gone (exited or killed) it kills those still alive and exits. A
process is known by its pid and start time, so a pid the system has reused is never hit. Linux
only: it reads ``/proc``.

Run as ``python ray_reaper.py DRIVER_PID`` (the file, so it needs no import path); standard
library only, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from pathlib import Path

POLL_S = 0.5
PROC = Path("/proc")


def process_table() -> dict[int, tuple[int, str]]:
    """``{pid: (parent pid, start time)}`` of every live, non-zombie process."""
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields is not None and fields[0] != "Z":
                table[int(entry.name)] = (int(fields[1]), fields[19])
    return table


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from the state field on (the command name may hold spaces)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def ray_processes_below(driver: int) -> dict[int, str]:
    """``{pid: start time}`` of the processes below ``driver`` whose command line mentions Ray
    (its servers, agents and workers; the driver's other children are left alone)."""
    table = process_table()
    below: set[int] = set()
    frontier = {driver}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - below
        below |= frontier
    below.discard(os.getpid())
    return {pid: table[pid][1] for pid in below if _mentions_ray(pid)}


def _mentions_ray(pid: int) -> bool:
    try:
        return b"ray" in (PROC / str(pid) / "cmdline").read_bytes().lower()
    except OSError:
        return False


def kill_if_unchanged(processes: dict[int, str]) -> None:
    """SIGKILL each process that still has its pid and start time."""
    for pid, started in processes.items():
        fields = stat_fields(pid)
        if fields is not None and fields[19] == started:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # it ended meanwhile
                continue


def watch(driver: int, pipe: int) -> None:
    """Note the driver's Ray processes until ``pipe`` reaches its end or the driver is gone,
    then kill them. The parent check covers a pipe kept open by a process the driver forked."""
    watched: dict[int, str] = {}
    while os.getppid() == driver:
        ready, _, _ = select.select([pipe], [], [], POLL_S)
        if ready and not os.read(pipe, 4096):
            break
        watched.update(ray_processes_below(driver))
    kill_if_unchanged(watched)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.fileno())
