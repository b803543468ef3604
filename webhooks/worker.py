"""The delivery worker: :func:`~webhooks.delivery.deliver_due` in a background thread,
inside ``vledger serve`` (:class:`Worker`) or on its own (``vledger worker``,
:func:`run_worker`)."""

from __future__ import annotations

import logging
import threading

from ledger import Ledger, open_ledger
from ledger.observability import LOGGER_NAME
from webhooks.delivery import HttpPost, deliver_due, post_with_httpx
from webhooks.settings import WebhookSettings

__all__ = ["Worker", "run_worker"]

log = logging.getLogger(LOGGER_NAME)


class Worker:
    """:func:`deliver_due` in a background thread, every ``poll_interval_s`` (at once
    again while passes come back full), until :meth:`stop`."""

    def __init__(
        self,
        led: Ledger,
        settings: WebhookSettings,
        *,
        http_post: HttpPost = post_with_httpx,
    ) -> None:
        self.led = led
        self.settings = settings
        self.http_post = http_post
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vledger-webhooks", daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.settings.timeout_s + 5 if timeout_s is None else timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                done = deliver_due(
                    self.led, now=self.led.now(), http_post=self.http_post, settings=self.settings
                )
                busy = done >= self.settings.deliveries_per_pass_max
            except Exception:  # a worker that dies silently delivers nothing: log, go on
                log.exception("webhook pass failed")
            if not busy:
                self._stop.wait(self.settings.poll_interval_s)


def run_worker(
    database_url: str,
    *,
    settings: WebhookSettings | None = None,
    stop: threading.Event | None = None,
) -> None:
    """``vledger worker``: deliver webhooks until ``stop`` is set (or interrupted)."""
    stop = stop or threading.Event()
    with open_ledger(database_url) as led:
        worker = Worker(led, settings or WebhookSettings()).start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            log.info("webhook worker interrupted: stopping")
        finally:
            worker.stop()
