"""The sender: one pass (:func:`deliver_due`) fans new outbox events out into deliveries,
claims the deliveries that are due, POSTs each once outside any transaction and writes
the outcome (see :mod:`webhooks` for the rules: the cursor, leases, backoff, 410)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import httpx

from ledger import Ledger
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows import events
from ledger.limits import REASON_LENGTH_MAX as ERROR_LENGTH_MAX
from ledger.limits import US_PER_S
from ledger.observability import LOGGER_NAME
from webhooks import repository
from webhooks.repository import Attempt, DeliveryState, DueDelivery, Endpoint, EndpointState
from webhooks.settings import WebhookSettings
from webhooks.signing import message_body, signature_header
from webhooks.targets import EndpointRefused, check_target, matches

__all__ = [
    "BROADCAST_ROLE",
    "ERROR_LENGTH_MAX",
    "LOGGER_NAME",
    "HttpPost",
    "backoff_s",
    "deliver_due",
    "fan_out",
    "post_with_httpx",
]

log = logging.getLogger(LOGGER_NAME)
"""The service's logger (:data:`ledger.observability.LOGGER_NAME`, re-exported here): the
worker runs inside ``vledger serve`` and its lines go out with the API's JSON lines."""

HttpPost = Callable[[str, bytes, Mapping[str, str], float], int]
"""``(url, body, headers, timeout_s) -> HTTP status``; raises ``OSError`` or
``httpx.HTTPError`` when no answer came."""

BROADCAST_ROLE = "storefront"
"""Whose endpoints receive the events of no party (``checkpoint.sealed``)."""


# -- fan-out ---------------------------------------------------------------------------


def _fan_out_in(tx: Tx, *, now_us: int, settings: WebhookSettings) -> int:
    cursor = repository.lock_cursor(tx)
    found = events.read_events(tx, after_seq=cursor, limit=settings.events_per_pass_max)
    watermark, held = cursor, False
    gap_old_us = now_us - int(settings.gap_wait_s * US_PER_S)
    made = 0
    endpoints: dict[uuid.UUID | None, list[Endpoint]] = {}
    for event in found:
        if not held and (event.seq == watermark + 1 or to_us(event.created_at) <= gap_old_us):
            watermark = event.seq
        else:
            held = True
        if event.party_id not in endpoints:
            endpoints[event.party_id] = repository.audience(tx, event.party_id, BROADCAST_ROLE)
        for endpoint in endpoints[event.party_id]:
            if endpoint.created_at > event.created_at or not matches(
                endpoint.event_types, event.type
            ):
                continue
            made += repository.add_delivery(tx, endpoint.id, event, now_us)
    if watermark != cursor:
        repository.move_cursor(tx, watermark, now_us)
    return made


def fan_out(led: Ledger, *, now_us: int, settings: WebhookSettings) -> int:
    """Turn new outbox events into deliveries (see :mod:`webhooks`); how many were made."""
    return led.transact(lambda tx: _fan_out_in(tx, now_us=now_us, settings=settings))


# -- claims ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: uuid.UUID
    attempts: int
    endpoint_id: uuid.UUID
    url: str
    secrets: tuple[str, ...]
    event_id: uuid.UUID
    body: bytes


def _job(due: DueDelivery, now_us: int) -> _Job:
    """What to send: the secrets valid at ``now_us`` and the event's body."""
    keys = [due.secret]
    expires_us = due.previous_secret_expires_at_us
    if due.previous_secret is not None and expires_us is not None and expires_us > now_us:
        keys.append(due.previous_secret)
    body = message_body(due.event_type, due.event_created_at, due.payload)
    return _Job(
        due.delivery_id, due.attempts, due.endpoint_id, due.url, tuple(keys), due.event_id, body
    )


def _claim_in(tx: Tx, now_us: int, settings: WebhookSettings) -> list[_Job]:
    """Lease the due deliveries of enabled endpoints; fail those of disabled ones."""
    jobs: list[_Job] = []
    lease_until_us = now_us + int(settings.lease_s * US_PER_S)
    for due in repository.lock_due(tx, now_us, settings.deliveries_per_pass_max):
        if due.endpoint_state != EndpointState.ENABLED:
            repository.fail_unsent(tx, due.delivery_id, now_us)
            continue
        repository.lease(tx, due.delivery_id, until_us=lease_until_us, now_us=now_us)
        jobs.append(_job(due, now_us))
    return jobs


# -- attempts --------------------------------------------------------------------------


def backoff_s(attempts: int, settings: WebhookSettings, rand: Callable[[], float]) -> float:
    """The delay after ``attempts`` failed attempts (exponential, capped, jittered)."""
    nominal = min(settings.backoff_cap_s, settings.backoff_base_s * 2 ** (attempts - 1))
    return float(nominal * (1 + settings.jitter_ratio * (2 * rand() - 1)))


def post_with_httpx(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """The default transport: one POST, no redirects followed; the status code."""
    response = httpx.post(
        url, content=body, headers=dict(headers), timeout=timeout_s, follow_redirects=False
    )
    return response.status_code


def _post(
    job: _Job, *, now: datetime, http_post: HttpPost, settings: WebhookSettings
) -> tuple[int | None, str | None]:
    """One signed POST of the job: ``(status, None)``, or ``(None, why)`` when the target
    was refused or no answer came."""
    msg_id = str(job.event_id)
    try:
        check_target(job.url, settings.target_networks_allowed)
        headers = {
            "content-type": "application/json",
            "user-agent": "vledger-webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(job.secrets, msg_id, now, job.body),
        }
        return http_post(job.url, job.body, headers, settings.timeout_s), None
    except EndpointRefused as exc:
        return None, f"target refused: {exc.detail}"
    except (OSError, httpx.HTTPError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def _outcome(
    job: _Job,
    status: int | None,
    error: str | None,
    *,
    at_us: int,
    duration_us: int,
    settings: WebhookSettings,
    rand: Callable[[], float],
) -> Attempt:
    """The attempt's row and the delivery's next state: 2xx succeeded; 410 or the last
    attempt failed; anything else pending again after the backoff."""
    attempts = job.attempts + 1
    ok = status is not None and 200 <= status < 300
    gone = status == 410
    next_at_us: int | None = None
    if ok:
        state = DeliveryState.SUCCEEDED
    elif gone or attempts >= settings.attempts_max:
        state = DeliveryState.FAILED
    else:
        state = DeliveryState.PENDING
        next_at_us = at_us + int(backoff_s(attempts, settings, rand) * US_PER_S)
    if error is None and not ok:
        error = f"HTTP {status}"
    return Attempt(
        delivery_id=job.delivery_id,
        endpoint_id=job.endpoint_id,
        attempt=attempts,
        at_us=at_us,
        status_code=status,
        error=None if error is None else error[:ERROR_LENGTH_MAX],
        duration_us=duration_us,
        state=state,
        next_attempt_at_us=next_at_us,
        gone=gone,
    )


def _log(job: _Job, attempt: Attempt) -> None:
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": str(job.delivery_id),
            "endpoint_id": str(job.endpoint_id),
            "webhook_id": str(job.event_id),
            "attempt": attempt.attempt,
            "status": attempt.status_code,
            "error": attempt.error,
            "state": attempt.state.value,
            "duration_ms": round(attempt.duration_us / 1000, 2),
        },
    )


def _attempt(
    led: Ledger,
    job: _Job,
    *,
    now: datetime,
    http_post: HttpPost,
    settings: WebhookSettings,
    rand: Callable[[], float],
) -> None:
    """POST the job once, outside any transaction, then write what came of it."""
    started = time.perf_counter()
    status, error = _post(job, now=now, http_post=http_post, settings=settings)
    duration_us = int((time.perf_counter() - started) * US_PER_S)
    attempt = _outcome(
        job,
        status,
        error,
        at_us=to_us(now),
        duration_us=duration_us,
        settings=settings,
        rand=rand,
    )
    led.transact(lambda tx: repository.record_attempt(tx, attempt))
    _log(job, attempt)


def deliver_due(
    led: Ledger,
    *,
    now: datetime,
    http_post: HttpPost = post_with_httpx,
    settings: WebhookSettings | None = None,
    rand: Callable[[], float] = random.random,
) -> int:
    """One pass: fan new events out, then attempt every delivery due at ``now`` once
    (at most ``deliveries_per_pass_max``); how many attempts were made."""
    settings = settings or WebhookSettings()
    now_us = to_us(now)
    fan_out(led, now_us=now_us, settings=settings)
    jobs = led.transact(lambda tx: _claim_in(tx, now_us, settings))
    for job in jobs:
        _attempt(led, job, now=now, http_post=http_post, settings=settings, rand=rand)
    return len(jobs)
