"""The Ray executor (optional extra ``ray``): one Ray task per job, on a local or remote cluster.

Each job is a task asking for one CPU (and ``gpus_per_task`` GPUs, for CUDA evaluators), with
Ray's own retries off, so a worker killed mid-job surfaces as :class:`WorkerLost` and the
caller's bounded retry (:func:`~diffusionnag.execution.in_order`) counts attempts. Large
read-only inputs (an evaluator, the NB201 table) are put into the object store once
(``ray.put``); each worker process runs ``setup`` on them the first time it meets them. The
driver's exit ends its tasks, so a dead parent leaves no job running; a local Ray the executor
starts itself is watched by :mod:`diffusionnag.ray_reaper`, so even a driver killed with
``kill -9`` leaves no Ray agent behind (Ray's own agents would linger 30 to 60 s). Ray's
start-up lines (a token-authentication notice, "Started a local Ray instance") are not shown:
they tell a diffusionnag user nothing to act on.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any

import torch

from diffusionnag.execution_base import Channel, Handler, WorkerLost

INSTALL_HINT = "--executor ray needs Ray: pip install 'diffusionnag[ray]'"
_SETUP_DONE: set[str] = set()
"""Object ids of the setup inputs this worker process has already run ``setup`` on."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return ray


def check_address(address: str) -> None:
    """Refuse a ``host:port`` (or ``ray://host:port``) nobody listens on, at once: Ray would
    keep retrying the connection for a minute."""
    if address == "auto" or address.startswith("local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--ray-address {address!r} is not auto or HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {error}") from None


class RayExecutor:
    """Jobs as Ray tasks. Joins the Ray already initialised in this process, else connects to
    ``address`` (or ``RAY_ADDRESS``), else starts a local Ray with ``workers`` CPUs; it shuts
    down only a connection it opened itself."""

    def __init__(
        self,
        workers: int,
        *,
        address: str | None = None,
        setup: Callable[..., None] | None = None,
        setup_args: tuple[Any, ...] = (),
        gpus_per_task: float = 0.0,
    ) -> None:
        ray = _import_ray()
        self._ray = ray
        self._owns = not ray.is_initialized()
        self._reaper: subprocess.Popen | None = None
        if self._owns:
            address = address or os.environ.get("RAY_ADDRESS") or None
            if address is None:
                self._reaper = _start_reaper()
            try:
                _connect(ray, address, workers)
            except BaseException:
                self.shutdown()  # no reaper left waiting for a Ray that never started
                raise
        self._task = ray.remote(_run_task).options(
            num_cpus=1, num_gpus=gpus_per_task, max_retries=0
        )
        self._setup = None if setup is None else (setup, [ray.put(setup_args)])

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> futures.Future:
        outer: futures.Future = futures.Future()
        inner = self._task.remote(self._setup, fn, *args).future()
        inner.add_done_callback(lambda done: self._relay(done, outer))
        return outer

    def _relay(self, inner: futures.Future, outer: futures.Future) -> None:
        if inner.cancelled():
            outer.cancel()
            return
        error = inner.exception()
        lost = (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.NodeDiedError)
        if isinstance(error, lost):
            outer.set_exception(WorkerLost(f"a Ray worker died ({type(error).__name__})"))
        elif isinstance(error, self._ray.exceptions.RayTaskError):
            outer.set_exception(error.as_instanceof_cause())  # the job's own exception type
        elif error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())

    def as_completed(self, pending: Iterable[futures.Future]) -> Iterator[futures.Future]:
        return futures.as_completed(list(pending))

    def channel(self, handler: Handler) -> Channel:
        from ray.util.queue import Queue

        return _RayChannel(Queue(actor_options={"num_cpus": 0}), handler)

    def shutdown(self, wait: bool = True) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.close()  # the reaper ends whatever ray.shutdown left behind
            self._reaper.wait()
            self._reaper = None


def _start_reaper() -> subprocess.Popen | None:
    """The watcher that kills this process's local Ray once this process is gone (Linux)."""
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        return None
    script = os.path.join(os.path.dirname(__file__), "ray_reaper.py")  # runs without imports
    return subprocess.Popen(
        [sys.executable, script, str(os.getpid())],
        stdin=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C meant for the driver must not end the reaper first
    )


def _connect(ray: Any, address: str | None, workers: int) -> None:
    if address is not None:
        check_address(address)
    try:
        if address is None:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except ConnectionError as error:
        raise ValueError(f"cannot reach the Ray cluster at {address}: {error}") from None


def _run_task(
    setup: tuple[Callable[..., None], list[Any]] | None, fn: Callable[..., Any], *args: Any
) -> Any:
    """One job in a Ray worker: one intra-op torch thread, ``setup`` once per worker process."""
    import ray

    torch.set_num_threads(1)
    if setup is not None:
        function, (reference,) = setup  # in a list, so Ray does not fetch it for every task
        if reference.hex() not in _SETUP_DONE:
            function(*ray.get(reference))
            _SETUP_DONE.add(reference.hex())
    return fn(*args)


class _RayChannel:
    """Messages through a Ray queue actor; a copy sent with a job only puts."""

    def __init__(self, messages: Any, handler: Handler | None) -> None:
        self._queue = messages
        self._handler = handler

    def __reduce__(self) -> tuple[type[_RayChannel], tuple[Any, None]]:
        return _RayChannel, (self._queue, None)

    def put(self, message: Any) -> None:
        self._queue.put(message)

    def drain(self, timeout: float) -> None:
        from ray.util.queue import Empty

        assert self._handler is not None, "only the parent drains a channel"
        try:
            self._handler(
                self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            )
        except Empty:
            return
        while not self._queue.empty():
            self._handler(self._queue.get_nowait())
