"""The delivery worker: :func:`~webhooks.delivery.deliver_due` in a background thread,
inside ``vledger serve`` (:class:`Worker`) or on its own (``vledger worker``,
:func:`run_worker`)."""

from __future__ import annotations

import logging
import threading

from ledger import Ledger, open_ledger
from ledger.observability import LOGGER_NAME
from ledger.periodic import Periodic
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
        self._periodic = Periodic(
            "vledger-webhooks", settings.poll_interval_s, self._pass, busy=bool
        )

    def start(self) -> Worker:
        self._periodic.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        self._periodic.stop(self.settings.timeout_s + 5 if timeout_s is None else timeout_s)

    def _pass(self) -> bool:
        """One pass; True when it came back full (the next runs at once)."""
        done = deliver_due(
            self.led, now=self.led.now(), http_post=self.http_post, settings=self.settings
        )
        return done >= self.settings.deliveries_per_pass_max


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
