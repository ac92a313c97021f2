"""Progress for people: one line per phase, bars on a terminal, plain lines in a log.

On a terminal (both stdout and stderr are ttys) each phase is a tqdm bar on stderr and a nested
bar (a candidate's training) is cleared when it closes. Anywhere else (a pipe, a file, CI) no
bar and no escape sequence is written: a phase prints one plain line per finished unit (a cell,
a generation round) on stdout, so a log reads top to bottom.

Whether progress is shown at all is the caller's ``progress`` flag; :func:`reporting` makes it
visible to code deeper in the call (generation inside a strategy's ``ask``) without threading
a flag through every signature.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
_REPORTING: ContextVar[bool] = ContextVar("diffusionnag_progress", default=False)


def interactive() -> bool:
    """Whether bars may be drawn: both output streams are terminals."""
    return sys.stdout.isatty() and sys.stderr.isatty()


@contextlib.contextmanager
def reporting(enabled: bool) -> Iterator[None]:
    """Within this block, :func:`reporting_enabled` answers ``enabled``."""
    token = _REPORTING.set(enabled)
    try:
        yield
    finally:
        _REPORTING.reset(token)


def reporting_enabled() -> bool:
    return _REPORTING.get()


class LinePhase:
    """A phase's progress as plain lines, with tqdm's interface so that callers treat both
    kinds alike: with ``milestones`` a line each time another tenth of ``total`` is done,
    else silent (the caller prints its own lines with :func:`log_line`)."""

    def __init__(
        self, desc: str = "", total: int | None = None, initial: int = 0, milestones: bool = False
    ) -> None:
        self.desc, self.total, self.n = desc, total, initial
        self._milestones = milestones and bool(total)

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        total = self.total or 1
        if self._milestones and (10 * before) // total != (10 * self.n) // total:
            print(f"{self.desc}: {self.n}/{self.total}", flush=True)

    def set_postfix_str(self, text: str) -> None:
        """Bar decoration, as :meth:`set_postfix`."""

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix(self, **_: Any) -> None:
        """Postfixes are bar decoration; a log line says what it has to say itself."""

    def reset(self, total: int | None = None) -> None:
        self.n, self.total = 0, total

    def close(self) -> None:
        """Nothing is left on screen to clear."""

    def __enter__(self) -> LinePhase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def phase(
    desc: str,
    total: int | None = None,
    *,
    enabled: bool = True,
    initial: int = 0,
    unit: str = "it",
    nested: bool = False,
    milestones: bool = False,
) -> Any:
    """A tqdm bar on a terminal (``nested``: cleared when closed), else a :class:`LinePhase`
    (``milestones``: a line per tenth done); with ``enabled=False`` a disabled bar that prints
    nothing."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if not interactive():
        return LinePhase(desc, total, initial, milestones)
    position = 1 if nested else None
    return tqdm(
        total=total, initial=initial, desc=desc, unit=unit, leave=not nested, position=position
    )


def log_line(bar: Any, text: str) -> None:
    """A plain progress line where ``bar`` is a :class:`LinePhase` (on a terminal the bar
    itself says it)."""
    if isinstance(bar, LinePhase):
        print(text, flush=True)


def iterate(items: Sequence[T], desc: str, *, enabled: bool, unit: str = "it") -> Iterator[T]:
    """``items`` with a phase over them (a line per tenth done off a terminal)."""
    with phase(desc, len(items), enabled=enabled, unit=unit, milestones=True) as bar:
        for item in items:
            yield item
            bar.update(1)
