"""What a person sees of a long command's :class:`reconciliation.progress.Progress`.

On a terminal, a ``rich`` bar on stderr that disappears when the command ends; on a pipe
or a log, one line on stderr at most every :data:`LINE_EVERY_S` seconds (and at each new
phase); with ``--quiet``, nothing. Standard output stays the command's result.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from reconciliation.progress import SILENT, Progress

__all__ = ["LINE_EVERY_S", "LineProgress", "shown"]

LINE_EVERY_S = 2.0
"""The shortest time between two progress lines when stderr is not a terminal."""


class LineProgress:
    """Periodic one-line progress: ``vledger seal: sealing blocks 1,200/5,000 (4 s)``."""

    def __init__(self, label: str, stream: TextIO, every_s: float = LINE_EVERY_S) -> None:
        self._label, self._stream, self._every_s = label, stream, every_s
        self._started = self._last = time.monotonic()
        self._description = "working"

    def step(self, description: str) -> None:
        self._description = description
        self._line(None, None)

    def advance(self, done: int, total: int | None = None) -> None:
        if time.monotonic() - self._last >= self._every_s:
            self._line(done, total)

    def _line(self, done: int | None, total: int | None) -> None:
        now = time.monotonic()
        self._last = now
        count = "" if done is None else f" {done:,}" + ("" if total is None else f"/{total:,}")
        elapsed = int(now - self._started)
        print(f"{self._label}: {self._description}{count} ({elapsed} s)", file=self._stream)
        self._stream.flush()


class _BarProgress:
    """A ``rich`` progress bar for one command: a task per phase."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._task: Any = None

    def step(self, description: str) -> None:
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        self._task = self._bar.add_task(description, total=None)

    def advance(self, done: int, total: int | None = None) -> None:
        if self._task is None:
            self.step("working")
        self._bar.update(self._task, completed=done, total=total)


@contextmanager
def shown(label: str, *, quiet: bool = False, stream: TextIO | None = None) -> Iterator[Progress]:
    """The progress a command named ``label`` reports to, for the ``with`` block's length."""
    out = sys.stderr if stream is None else stream
    if quiet:
        yield SILENT
        return
    if not out.isatty():
        yield LineProgress(label, out)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"{label}: {{task.description}}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=Console(file=out), transient=True) as bar:
        yield _BarProgress(bar)
