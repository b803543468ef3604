"""The SMS worker: :func:`~sms.delivery.send_due` in a background thread, inside
``vledger serve`` (:class:`SmsWorker`) or ``vledger worker`` (:func:`run_sms_worker`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from ledger import Ledger, open_ledger
from ledger.observability import LOGGER_NAME
from ledger.periodic import Periodic
from sms.delivery import send_due
from sms.gateway import HttpPost, post_with_httpx
from sms.settings import Gateway, SmsSettings, gateway_from_env

__all__ = ["SmsWorker", "run_sms_worker", "start_sms_worker"]

log = logging.getLogger(LOGGER_NAME)


class SmsWorker:
    """:func:`send_due` in a background thread, every ``poll_interval_s`` (at once again
    while passes come back full), until :meth:`stop`."""

    def __init__(
        self,
        led: Ledger,
        settings: SmsSettings,
        *,
        gateway: Gateway | None,
        http_post: HttpPost = post_with_httpx,
    ) -> None:
        self.led = led
        self.settings = settings
        self.gateway = gateway
        self.http_post = http_post
        self._periodic = Periodic("vledger-sms", settings.poll_interval_s, self._pass, busy=bool)

    def start(self) -> SmsWorker:
        self._periodic.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        self._periodic.stop(self.settings.timeout_s + 5 if timeout_s is None else timeout_s)

    def _pass(self) -> bool:
        """One pass; True when it came back full (the next runs at once)."""
        done = send_due(
            self.led,
            now=self.led.now(),
            gateway=self.gateway,
            http_post=self.http_post,
            settings=self.settings,
        )
        return done >= self.settings.messages_per_pass_max


def start_sms_worker(
    led: Ledger, environ: Mapping[str, str] | None = None, *, http_post: HttpPost = post_with_httpx
) -> SmsWorker | None:
    """``vledger serve``: an :class:`SmsWorker` on ``led`` with the environment's gateway
    and zone, started; None (no thread) when the environment names no gateway: then
    ``vledger worker`` queues the messages and says once that nothing is sent."""
    gateway = gateway_from_env(environ)
    if gateway is None:
        return None
    settings = SmsSettings.from_env(environ)
    return SmsWorker(led, settings, gateway=gateway, http_post=http_post).start()


def run_sms_worker(
    database_url: str,
    *,
    settings: SmsSettings | None = None,
    gateway: Gateway | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Send SMS until ``stop`` is set (or interrupted); the gateway from the environment
    when none is given."""
    stop = stop or threading.Event()
    with open_ledger(database_url) as led:
        worker = SmsWorker(
            led, settings or SmsSettings.from_env(), gateway=gateway or gateway_from_env()
        ).start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            log.info("sms worker interrupted: stopping")
        finally:
            worker.stop()
