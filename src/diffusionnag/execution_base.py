"""What every executor shares: the job-to-parent message channel and the lost-worker error.

Its own module so that :mod:`diffusionnag.execution` (which picks an executor) and
:mod:`diffusionnag.execution_ray` (one executor) both import it and neither imports the other at
import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Handler = Callable[[Any], None]


class WorkerLost(RuntimeError):
    """The process running a job died (killed, out of memory) before it answered."""


class Channel(Protocol):
    """Messages from jobs to the parent, in order per job."""

    def put(self, message: Any) -> None: ...

    def drain(self, timeout: float) -> None:
        """Hand every waiting message to the parent's handler (waiting up to ``timeout``)."""
