"""One pass of background work in a daemon thread, again and again until stopped.

The service's sweeper, sealer and reconciler (``api.background``), the webhook sender
(``webhooks.worker``) and the SMS sender (``sms.worker``) are each a :class:`Periodic`:
one pass at once, then one every ``interval_s``; a pass whose result says it was
``busy`` (it did as much as one pass may, so more is waiting) is followed by the next at
once. A pass that raises is logged and the next one tries again: every pass is safe to
repeat (its state is in the database), and a background thread never takes the service
down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ledger.observability import LOGGER_NAME

__all__ = ["STOP_WAIT_S", "Periodic"]

log = logging.getLogger(LOGGER_NAME)

STOP_WAIT_S = 30.0
"""How long :meth:`Periodic.stop` waits, by default, for the pass in progress."""


def _never_busy(_result: object) -> bool:
    return False


class Periodic:
    """``work()`` in a daemon thread named ``name``: once at start, then every
    ``interval_s``, at once again while ``busy(result)`` says so."""

    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], object],
        *,
        busy: Callable[[object], bool] = _never_busy,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"{name}: interval_s must be positive, not {interval_s}")
        self.name = name
        self.interval_s = interval_s
        self.work = work
        self.busy = busy
        self.passes = 0
        """Passes finished, failed ones included."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def ask_to_stop(self) -> None:
        """Stop after the pass in progress (without waiting for it)."""
        self._stop.set()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Stop, waiting up to ``timeout_s`` for the pass in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = self.busy(self.work())
            except Exception:  # a dead thread does nothing silently: log, try next time
                log.exception("background pass failed", extra={"background": self.name})
            self.passes += 1
            if not busy:
                self._stop.wait(self.interval_s)
