"""The sender: one pass (:func:`send_due`) renders new outbox events into queued messages,
claims the queued messages that are due, POSTs each once outside any transaction and
writes the outcome, the shape of :mod:`webhooks.delivery`:

1. *Render*: the outbox is read in ``seq`` order from ``sms_cursor``; each event that
   makes an SMS (:mod:`sms.render`) becomes one ``sms_messages`` row per phone (unique
   per event and phone: a pass replayed after a crash queues nothing twice). The cursor
   moves only over a contiguous run of ``seq`` (a hole :attr:`~SmsSettings.gap_wait_s`
   old is a rolled-back transaction); events past a hole are rendered at once and met
   again harmlessly.
2. *Send*: when a gateway is set, due messages are claimed (leased for ``lease_s``,
   ``SKIP LOCKED`` on PostgreSQL), POSTed one at a time outside any transaction, and the
   outcome written with one ``sms_attempts`` row each: sent, queued again after an
   exponential, capped, jittered backoff, or failed (a permanent refusal, or the
   ``attempts_max``-th try). With no gateway nothing is sent, messages stay queued, and
   that is logged once per process.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime

from ledger import Ledger
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows import events
from ledger.flows.errors import FlowError
from ledger.limits import US_PER_S
from ledger.observability import LOGGER_NAME
from sms import gateway as gw
from sms import repository
from sms.render import render_in
from sms.repository import Attempt, Message, MessageState, NewMessage
from sms.settings import Gateway, SmsSettings

__all__ = ["ERROR_LENGTH_MAX", "backoff_s", "queue_new", "send_due"]

log = logging.getLogger(LOGGER_NAME)
ERROR_LENGTH_MAX = 500
_no_gateway_logged: list[bool] = []


def _rendered(tx: Tx, event: events.Event, settings: SmsSettings) -> NewMessage | None:
    """The event's message; None, logged, for an event it cannot be made of (a payload
    without a field it needs, an order or party gone): one such event must not stop
    every SMS behind it."""
    try:
        return render_in(tx, event, settings)
    except (FlowError, KeyError, TypeError, ValueError) as exc:
        log.error(
            "sms: event %s (%s) cannot be rendered, skipped: %s: %s",
            event.seq,
            event.type,
            type(exc).__name__,
            exc,
        )
        return None


def _queue_in(tx: Tx, *, now_us: int, settings: SmsSettings) -> int:
    cursor = repository.lock_cursor(tx)
    found = events.read_events(tx, after_seq=cursor, limit=settings.events_per_pass_max)
    watermark, held = cursor, False
    gap_old_us = now_us - int(settings.gap_wait_s * US_PER_S)
    made = 0
    for event in found:
        if not held and (event.seq == watermark + 1 or to_us(event.created_at) <= gap_old_us):
            watermark = event.seq
        else:
            held = True
        new = _rendered(tx, event, settings)
        if new is not None:
            made += repository.add_message(tx, new, now_us)
    if watermark != cursor:
        repository.move_cursor(tx, watermark, now_us)
    return made


def queue_new(led: Ledger, *, now_us: int, settings: SmsSettings) -> int:
    """Render new outbox events into queued messages; how many were queued."""
    return led.transact(lambda tx: _queue_in(tx, now_us=now_us, settings=settings))


def _claim_in(tx: Tx, now_us: int, settings: SmsSettings) -> list[Message]:
    until_us = now_us + int(settings.lease_s * US_PER_S)
    due = repository.lock_due(tx, now_us, settings.messages_per_pass_max)
    for message in due:
        repository.lease(tx, message.id, until_us=until_us, now_us=now_us)
    return due


def backoff_s(attempts: int, settings: SmsSettings, rand: Callable[[], float]) -> float:
    """The delay after ``attempts`` failed attempts (exponential, capped, jittered)."""
    nominal = min(settings.backoff_cap_s, settings.backoff_base_s * 2 ** (attempts - 1))
    return float(nominal * (1 + settings.jitter_ratio * (2 * rand() - 1)))


def _attempt_row(
    message: Message,
    answer: gw.Answer,
    *,
    at_us: int,
    duration_us: int,
    settings: SmsSettings,
    rand: Callable[[], float],
) -> Attempt:
    attempts = message.attempts + 1
    result = gw.outcome(answer)
    next_at_us: int | None = None
    if result.sent:
        state = MessageState.SENT
    elif not result.retry or attempts >= settings.attempts_max:
        state = MessageState.FAILED
    else:
        state = MessageState.QUEUED
        next_at_us = at_us + int(backoff_s(attempts, settings, rand) * US_PER_S)
    return Attempt(
        message_id=message.id,
        attempt=attempts,
        at_us=at_us,
        http_status=answer.http_status,
        recipient_status_code=answer.status_code,
        recipient_status=answer.status,
        gateway_message_id=answer.message_id,
        gateway_cost=answer.cost,
        error=None if result.error is None else result.error[:ERROR_LENGTH_MAX],
        duration_us=duration_us,
        state=state,
        next_attempt_at_us=next_at_us,
    )


def _attempt(
    led: Ledger,
    message: Message,
    *,
    gateway: Gateway,
    now: datetime,
    http_post: gw.HttpPost,
    settings: SmsSettings,
    rand: Callable[[], float],
) -> None:
    started = time.perf_counter()
    answer = gw.send(
        gateway, message.phone, message.text, http_post=http_post, timeout_s=settings.timeout_s
    )
    duration_us = int((time.perf_counter() - started) * US_PER_S)
    row = _attempt_row(
        message, answer, at_us=to_us(now), duration_us=duration_us, settings=settings, rand=rand
    )
    led.transact(lambda tx: repository.record_attempt(tx, row))
    log.info(
        "sms attempt",
        extra={
            "sms_id": str(message.id),
            "event_type": message.event_type,
            "attempt": row.attempt,
            "status": row.http_status,
            "recipient_status": row.recipient_status_code,
            "error": row.error,
            "state": row.state.value,
        },
    )


def _log_no_gateway_once() -> None:
    if not _no_gateway_logged:
        _no_gateway_logged.append(True)
        log.warning(
            "sms: no gateway set (VLEDGER_SMS_URL, VLEDGER_SMS_USERNAME, VLEDGER_SMS_API_KEY):"
            " nothing is sent, messages stay queued (vledger sms outbox)"
        )


def send_due(
    led: Ledger,
    *,
    now: datetime,
    gateway: Gateway | None,
    http_post: gw.HttpPost = gw.post_with_httpx,
    settings: SmsSettings | None = None,
    rand: Callable[[], float] = random.random,
) -> int:
    """One pass: queue new events' messages, then, with a gateway, attempt every message
    due at ``now`` once (at most ``messages_per_pass_max``); how many attempts were made."""
    settings = settings or SmsSettings()
    now_us = to_us(now)
    queue_new(led, now_us=now_us, settings=settings)
    if gateway is None:
        _log_no_gateway_once()
        return 0
    due = led.transact(lambda tx: _claim_in(tx, now_us, settings))
    for message in due:
        _attempt(
            led,
            message,
            gateway=gateway,
            now=now,
            http_post=http_post,
            settings=settings,
            rand=rand,
        )
    return len(due)
