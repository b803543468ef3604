"""What a person sees of a long command's :class:`reconciliation.progress.Progress`.

On a terminal, a ``rich`` bar on stderr that disappears when the command ends; on a pipe
or a log, one line on stderr at most every :data:`LINE_EVERY_S` seconds (the first after
that long, so a quick command prints nothing; a phase that reports no count still gets a
line every :data:`LINE_EVERY_S` seconds, and a command that printed any ends with a
``done`` line); with ``--quiet``, nothing. Standard output stays the command's result.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from reconciliation.progress import SILENT, Progress

__all__ = ["LINE_EVERY_S", "LineProgress", "shown"]

LINE_EVERY_S = 2.0
"""The shortest time between two progress lines when stderr is not a terminal (and the
time before the first)."""


class LineProgress:
    """Periodic one-line progress: ``vledger seal: sealing blocks 1,200/5,000 (4 s)``.

    Thread-safe: :meth:`tick` is called from a timer thread while the command works."""

    def __init__(self, label: str, stream: TextIO, every_s: float | None = None) -> None:
        self._label, self._stream = label, stream
        self._every_s = LINE_EVERY_S if every_s is None else every_s
        self._started = self._last = time.monotonic()
        self._description = "working"
        self._done: int | None = None
        self._total: int | None = None
        self._lock = threading.Lock()
        self.lines = 0
        """How many lines were printed."""

    @property
    def every_s(self) -> float:
        return self._every_s

    def step(self, description: str) -> None:
        with self._lock:
            self._description, self._done, self._total = description, None, None
            self._due()

    def advance(self, done: int, total: int | None = None) -> None:
        with self._lock:
            self._done, self._total = done, total
            self._due()

    def tick(self) -> None:
        """A line if none was printed for :attr:`every_s` (a long phase without counts)."""
        with self._lock:
            self._due()

    def finish(self) -> None:
        """The closing line, when any line was printed (else the command was quick)."""
        with self._lock:
            if self.lines:
                self._description, self._done, self._total = "done", None, None
                self._line()

    def _due(self) -> None:
        if time.monotonic() - self._last >= self._every_s:
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        self._last = now
        done, total = self._done, self._total
        count = "" if done is None else f" {done:,}" + ("" if total is None else f"/{total:,}")
        elapsed = int(now - self._started)
        print(f"{self._label}: {self._description}{count} ({elapsed} s)", file=self._stream)
        self._stream.flush()
        self.lines += 1


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
def _lines(label: str, out: TextIO) -> Iterator[Progress]:
    progress = LineProgress(label, out)
    stop = threading.Event()

    def ticking() -> None:
        while not stop.wait(progress.every_s):
            progress.tick()

    ticker = threading.Thread(target=ticking, name="vledger-progress", daemon=True)
    if progress.every_s > 0:
        ticker.start()
    try:
        yield progress
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
    progress.finish()  # not after an error: the error's line is the last word


@contextmanager
def shown(
    label: str,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    terminal: bool | None = None,
) -> Iterator[Progress]:
    """The progress a command named ``label`` reports to, for the ``with`` block's length.

    ``terminal`` forces the bar (True) or the lines (False); by default the bar is shown
    when ``stream`` (stderr) is a terminal."""
    out = sys.stderr if stream is None else stream
    if quiet:
        yield SILENT
        return
    if not (out.isatty() if terminal is None else terminal):
        with _lines(label, out) as lines:
            yield lines
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar

    columns = (
        SpinnerColumn(),
        TextColumn(f"{label}: {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    console = Console(file=out, force_terminal=True if terminal else None)
    with Bar(*columns, console=console, transient=True) as bar:
        yield _BarProgress(bar)
