"""Where independent jobs run: in this process, in a pool of local worker processes, or on Ray
(:mod:`diffusionnag.execution_ray`, the optional ``ray`` extra).

An :class:`Executor` runs functions and hands back futures; it never writes files for them.
Jobs report progress through a :class:`Channel` the parent drains, so the parent alone writes
journals. Pool workers watch a pipe whose only write end the parent holds: when the parent dies
(even by ``kill -9``) the pipe closes and every worker exits at once, so none can outlive it.
A job whose worker died raises :class:`WorkerLost`; :func:`in_order` resubmits such a job a
bounded number of times.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from typing import Any, Protocol

import torch

from diffusionnag.execution_base import Channel, Handler, WorkerLost

EXECUTORS = ("local", "ray")
"""Names of the executors ``--executor`` accepts (``local``: this process or a local pool)."""


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], /, *args: Any) -> futures.Future: ...

    def as_completed(self, pending: Iterable[futures.Future]) -> Iterator[futures.Future]: ...

    def channel(self, handler: Handler) -> Channel:
        """A channel whose messages reach ``handler`` in the parent."""

    def shutdown(self, wait: bool = True) -> None: ...


class _DirectChannel:
    """In-process: a message is handled the moment it is put."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def put(self, message: Any) -> None:
        self._handler(message)

    def drain(self, timeout: float) -> None:
        """Nothing waits: :meth:`put` already handled everything."""


class InProcessExecutor:
    """Runs each job when it is submitted, in this process (for one worker, and for tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> futures.Future:
        future: futures.Future = futures.Future()
        try:
            future.set_result(fn(*args))
        except Exception as error:  # delivered through the future, as a pool would
            future.set_exception(error)
        return future

    def as_completed(self, pending: Iterable[futures.Future]) -> Iterator[futures.Future]:
        return futures.as_completed(list(pending))

    def channel(self, handler: Handler) -> Channel:
        return _DirectChannel(handler)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing runs in the background."""


class _QueueChannel:
    """Across processes: workers put onto the pool's queue, the parent drains it.

    A multiprocessing queue reaches a worker only when the worker starts, so a channel sent
    with a job pickles to a reference to the queue its worker was given.
    """

    def __init__(self, messages: Callable[[], Any], handler: Handler | None) -> None:
        self._messages = messages  # the pool's current queue (a new one after a worker died)
        self._handler = handler

    def __reduce__(self) -> tuple[Callable[[], _QueueChannel], tuple[()]]:
        return _worker_channel, ()

    def put(self, message: Any) -> None:
        self._messages().put(message)

    def drain(self, timeout: float) -> None:
        assert self._handler is not None, "only the parent drains a channel"
        wait = timeout
        while True:
            try:
                messages = self._messages()
                message = messages.get(timeout=wait) if wait > 0 else messages.get_nowait()
            except queue.Empty:
                return
            self._handler(message)
            wait = 0.0


class LocalPoolExecutor:
    """``workers`` fresh processes (fork server where available, else spawn) that share no
    threads or CUDA state with the parent, with one intra-op torch thread each (tiny networks
    on few cores otherwise fight over threads), and that exit when the parent dies.

    ``preload``: modules the fork server imports once, so workers do not pay for them each.
    ``setup(*setup_args)`` runs once in each worker (e.g. to receive a large read-only table
    once per worker instead of once per job). A calling script needs the
    ``if __name__ == "__main__":`` guard.
    """

    def __init__(
        self,
        workers: int,
        *,
        preload: tuple[str, ...] = (),
        setup: Callable[..., None] | None = None,
        setup_args: tuple[Any, ...] = (),
    ) -> None:
        self._context = _clean_context(preload)
        self._watch, self._lifeline = self._context.Pipe(duplex=False)
        self._messages = self._context.Queue()
        self._make_pool = lambda: futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self._watch, self._messages, setup, setup_args),
        )
        self._workers = workers
        self._pool = self._make_pool()
        self._broken = False
        self._warm_up()

    def _warm_up(self) -> None:
        """Start every worker now (the pool would start them one per submit), so their imports
        and ``setup`` overlap the caller's own start-up and first ask."""
        for _ in range(self._workers):
            self._pool.submit(_ready)

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> futures.Future:
        """A future that raises :class:`WorkerLost` if a worker of the pool dies before it is
        done (the standard pool then fails every job in flight); the next submit starts a
        fresh pool, so lost jobs can be resubmitted."""
        if self._broken:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._restart()
        try:
            inner = self._pool.submit(fn, *args)
        except BrokenProcessPool:
            self._restart()
            inner = self._pool.submit(fn, *args)
        outer: futures.Future = futures.Future()
        pool = self._pool
        inner.add_done_callback(lambda done: self._relay(done, outer, pool))
        return outer

    def _restart(self) -> None:
        """A fresh pool and queue: a worker killed while writing may have left the old queue's
        lock taken (the parent drained what reached it before resubmitting)."""
        self._messages = self._context.Queue()
        self._pool, self._broken = self._make_pool(), False
        self._warm_up()

    def _relay(self, inner: futures.Future, outer: futures.Future, pool: Any) -> None:
        if inner.cancelled():
            outer.cancel()
            return
        error = inner.exception()
        if isinstance(error, BrokenProcessPool):
            self._broken = self._broken or pool is self._pool  # not a pool already replaced
            outer.set_exception(WorkerLost(f"a local worker process died ({error})"))
        elif error is not None:
            outer.set_exception(error)
        else:
            outer.set_result(inner.result())

    def as_completed(self, pending: Iterable[futures.Future]) -> Iterator[futures.Future]:
        return futures.as_completed(list(pending))

    def channel(self, handler: Handler) -> Channel:
        """The pool's one channel (every job's messages reach ``handler``)."""
        return _QueueChannel(lambda: self._messages, handler)

    def shutdown(self, wait: bool = True) -> None:
        """``wait=False`` (after an error) ends the workers now, whatever they are doing."""
        if not wait:
            self._lifeline.close()
        self._pool.shutdown(wait=wait, cancel_futures=True)
        self._lifeline.close()
        self._watch.close()
        self._messages.close()


def make_executor(
    kind: str,
    workers: int,
    *,
    preload: tuple[str, ...] = (),
    setup: Callable[..., None] | None = None,
    setup_args: tuple[Any, ...] = (),
    address: str | None = None,
    gpus_per_task: float = 0.0,
) -> Executor:
    """The executor ``--executor kind --workers N`` names: ``local`` is this process for one
    worker (``setup`` then runs here) and a :class:`LocalPoolExecutor` for more; ``ray`` is a
    :class:`~diffusionnag.execution_ray.RayExecutor` (``address``, else ``RAY_ADDRESS``, else
    a local Ray started with ``workers`` CPUs; ``gpus_per_task`` GPUs per job)."""
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if kind == "ray":
        from diffusionnag.execution_ray import RayExecutor  # the optional ray extra

        return RayExecutor(
            workers, address=address, setup=setup, setup_args=setup_args,
            gpus_per_task=gpus_per_task,
        )  # fmt: skip
    if workers == 1:
        if setup is not None:
            setup(*setup_args)
        return InProcessExecutor()
    return LocalPoolExecutor(workers, preload=preload, setup=setup, setup_args=setup_args)


def in_order(
    executor: Executor,
    fn: Callable[..., Any],
    jobs: Sequence[tuple[Any, ...]],
    *,
    retries: int = 2,
    submit_order: Sequence[int] | None = None,
) -> Iterator[tuple[Any, int]]:
    """Run ``fn(*job)`` for every job at once; yield ``(result, attempts)`` in job order, each
    as soon as it and all before it are done. A job whose worker died is resubmitted up to
    ``retries`` times; after that its result is the :class:`WorkerLost` itself, so a caller can
    record the failure instead of losing the jobs that did finish. Other errors raise.

    ``submit_order`` (a permutation of the job numbers) is the order jobs reach the workers,
    e.g. longest first so that a short job, not a long one, ends a batch; results keep job order.
    """
    order = list(range(len(jobs))) if submit_order is None else list(submit_order)
    if sorted(order) != list(range(len(jobs))):
        raise ValueError(f"submit order {order} is not a permutation of {len(jobs)} jobs")
    attempts = [1] * len(jobs)
    pending = {executor.submit(fn, *jobs[number]): number for number in order}
    finished: dict[int, Any] = {}
    try:
        for number in range(len(jobs)):
            while number not in finished:
                future = next(iter(executor.as_completed(pending)))
                done = pending.pop(future)
                try:
                    finished[done] = future.result()
                except WorkerLost as error:
                    if attempts[done] > retries:
                        finished[done] = error
                    else:
                        attempts[done] += 1
                        pending[executor.submit(fn, *jobs[done])] = done
            yield finished.pop(number), attempts[number]
    finally:
        for future in pending:
            future.cancel()


def _clean_context(preload: tuple[str, ...]) -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__, *preload])
        return context
    return multiprocessing.get_context("spawn")


_WORKER_QUEUE: list[Any] = []
"""The queue of the pool this worker belongs to."""


def _worker_channel() -> _QueueChannel:
    return _QueueChannel(lambda: _WORKER_QUEUE[0], None)


def _init_worker(
    watch: Connection,
    messages: Any,
    setup: Callable[..., None] | None,
    setup_args: tuple[Any, ...],
) -> None:
    """Exit this worker as soon as the parent's end of ``watch`` closes. (With a fork server
    the operating-system parent is the server, not the process that made the pool, so
    ``PR_SET_PDEATHSIG`` would watch the wrong process; the pipe needs no polling either.)"""
    threading.Thread(target=_exit_with_parent, args=(watch,), daemon=True).start()
    _WORKER_QUEUE[:] = [messages]
    torch.set_num_threads(1)
    if setup is not None:
        setup(*setup_args)


def _ready() -> None:
    """The job a worker runs first, to be started before any real job exists."""


def _exit_with_parent(watch: Connection) -> None:
    with contextlib.suppress(EOFError, OSError):
        watch.recv()  # the parent never sends: this returns only at end of file
    os._exit(1)
