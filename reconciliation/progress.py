"""How a long job says how far it has come, without knowing who is watching.

A job takes a :class:`Progress` and calls :meth:`Progress.step` when it starts a phase
and :meth:`Progress.advance` as units of that phase are done. The edge decides what the
person sees (``vledger.progress``: a ``rich`` bar on a terminal, a line every few seconds
otherwise, nothing with ``--quiet``); the default, :data:`SILENT`, shows nothing.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SILENT", "Progress", "Silent", "Timed"]


class Progress(Protocol):
    def step(self, description: str) -> None:
        """A new phase begins (``"sealing blocks"``); its count starts at zero."""

    def advance(self, done: int, total: int | None = None) -> None:
        """``done`` units of the current phase are finished, of ``total`` when known."""


class Silent:
    """A progress that shows nothing."""

    def step(self, description: str) -> None:
        del description

    def advance(self, done: int, total: int | None = None) -> None:
        del done, total


SILENT: Progress = Silent()


class Timed:
    """A progress that passes everything on to ``shown`` and keeps the wall time of each
    step, in seconds rounded to 0.01 (for a run's summary: ``{"staging lines": 1.25}``)."""

    def __init__(self, shown: Progress, first: str) -> None:
        self._shown = shown
        self._current, self._since = first, time.monotonic()
        self.seconds: dict[str, float] = {}
        shown.step(first)

    def step(self, description: str) -> None:
        now = time.monotonic()
        self.seconds[self._current] = round(now - self._since, 2)
        self._current, self._since = description, now
        self._shown.step(description)

    def advance(self, done: int, total: int | None = None) -> None:
        self._shown.advance(done, total)

    def close(self) -> None:
        """The last step is over: its time is kept (nothing more is shown)."""
        self.seconds[self._current] = round(time.monotonic() - self._since, 2)
