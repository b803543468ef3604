"""How a long job says how far it has come, without knowing who is watching.

A job takes a :class:`Progress` and calls :meth:`Progress.step` when it starts a phase
and :meth:`Progress.advance` as units of that phase are done. The edge decides what the
person sees (``vledger.progress``: a ``rich`` bar on a terminal, a line every few seconds
otherwise, nothing with ``--quiet``); the default, :data:`SILENT`, shows nothing.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["SILENT", "Progress", "Silent"]


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
