"""Webhooks: the flows' outbox delivered to its parties, signed per Standard Webhooks.

Endpoints
    A storefront or an agent registers URLs for event types (``order.paid``, ``order.*``,
    ``*``) and gets a ``whsec_`` secret (32 random bytes, base64), shown only then and on
    rotation. An endpoint receives the events of its principal's party (the party id is
    the principal id) that happened after it was created; an event of no party
    (``checkpoint.sealed``, from the sealer) goes to every storefront's endpoints that
    subscribe to it. Targets must be public:
    private, loopback, link-local, reserved and multicast addresses are refused, when the
    endpoint is created and again before every attempt, unless a network is listed in
    :attr:`WebhookSettings.target_networks_allowed` (tests allow loopback).

Delivery (:func:`deliver_due`, one pass; the worker runs it every second)
    1. *Fan-out*: the outbox (``events``) is read in ``seq`` order from a cursor; each
       event becomes one delivery row per matching endpoint (unique per endpoint and
       event). The cursor only moves over a contiguous run of ``seq``: a hole left by a
       transaction still in flight (PostgreSQL hands out ``seq`` before commit) holds it
       back until the hole is :attr:`~WebhookSettings.gap_wait_s` old (a rolled-back
       transaction); events past a hole are fanned out at once and met again harmlessly.
    2. *Attempts*: due deliveries are claimed (leased for ``lease_s``, ``SKIP LOCKED`` on
       PostgreSQL, so two workers never send one delivery at once), POSTed outside any
       transaction, and the outcome written with one ``webhook_attempts`` row each.

    The request: ``POST`` with ``Content-Type: application/json``, body
    ``{"type": ..., "timestamp": <event time>, "data": <event payload>}`` (the same bytes
    on every attempt), and the headers ``webhook-id`` (the event id: the same on every
    attempt and for every endpoint, so a receiver dedupes by it), ``webhook-timestamp``
    (the attempt's Unix seconds) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
    "{id}.{timestamp}.{body}">``, one per valid secret, space-separated (two while a
    secret rotates). Receivers verify with any Standard Webhooks library.

    Outcomes: 2xx succeeded; 410 Gone disables the endpoint (its pending deliveries fail
    without being sent); anything else (another status, a redirect, a timeout, a refused
    target) is retried after ``min(cap, base * 2**(n-1))`` seconds, +-``jitter_ratio``,
    n the attempts so far. With the defaults (30 s base, 12 h cap, 16 attempts) the
    last attempt comes about 2.7 days after the first; then the delivery is ``failed``,
    visible in ``/v1/webhook-endpoints/{id}/deliveries``. At least once: a crash between
    the POST and the write sends the delivery again when its lease ends.

Rotation
    :func:`rotate_secret` makes a new secret; the previous one keeps signing beside it for
    a grace period (default one day, 0..7 days), so receivers can switch over without
    dropping a delivery. A second rotation within the grace period ends the first one's.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from api.observability import LOGGER_NAME
from ledger import Ledger, open_ledger
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows import events

log = logging.getLogger(LOGGER_NAME)

US_PER_S = 1_000_000
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
SECRET_BYTES = 32
ERROR_LENGTH_MAX = 500
CURSOR = "outbox"

HttpPost = Callable[[str, bytes, Mapping[str, str], float], int]
"""``(url, body, headers, timeout_s) -> HTTP status``; raises ``OSError`` or
``httpx.HTTPError`` when no answer came."""


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """The worker's limits and knobs, each named with its unit."""

    worker_enabled: bool = True
    """Run the delivery worker inside the API process (``vledger serve``)."""
    poll_interval_s: float = 1.0
    attempts_max: int = 16
    """Attempts per delivery before it is ``failed`` (about 3 days with the backoff)."""
    backoff_base_s: float = 30.0
    backoff_cap_s: float = 12 * 3600.0
    jitter_ratio: float = 0.2
    """Each delay is scaled by a random factor in ``1 +- jitter_ratio``."""
    timeout_s: float = 10.0
    """One POST's timeout."""
    lease_s: float = 60.0
    """A claimed delivery is not claimed again for this long (longer than ``timeout_s``)."""
    deliveries_per_pass_max: int = 100
    events_per_pass_max: int = 500
    gap_wait_s: float = 60.0
    """A hole in the outbox's ``seq`` this old is a rolled-back transaction, not one in
    flight: the cursor moves past it."""
    endpoints_per_principal_max: int = 20
    target_networks_allowed: tuple[str, ...] = ()
    """Non-public networks that targets may be on anyway (tests: ``127.0.0.0/8``)."""
    event_types: frozenset[str] = field(
        default_factory=lambda: frozenset(
            value
            for name, value in vars(events).items()
            if name.isupper() and isinstance(value, str) and "." in value
        )
    )
    """The event types the outbox knows (``ledger.flows.events``)."""


class EndpointRefused(ValueError):
    """An endpoint that may not be registered: its URL or its event types."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    principal_id: uuid.UUID
    url: str
    event_types: tuple[str, ...]
    description: str | None
    state: str
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime


# -- targets and secrets ---------------------------------------------------------------


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def check_target(
    url: str,
    allowed: Sequence[str] = (),
    *,
    resolve: Callable[[str, int], list[str]] = _resolve,
) -> None:
    """Refuse (:class:`EndpointRefused` ``target_refused``) a URL that is not http(s), has
    credentials, or resolves to a non-public address outside ``allowed`` networks."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EndpointRefused("target_refused", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRefused("target_refused", "the URL is http(s)://host/...")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("target_refused", "the URL may not carry credentials")
    if parts.fragment:
        raise EndpointRefused("target_refused", "the URL may not carry a fragment")
    try:
        addresses = resolve(parts.hostname, port)
    except (OSError, UnicodeError) as exc:
        raise EndpointRefused(
            "target_refused", f"{parts.hostname} does not resolve: {exc}"
        ) from None
    networks = [ipaddress.ip_network(n) for n in allowed]
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if any(address in n for n in networks):
            continue
        if not address.is_global or address.is_multicast:
            raise EndpointRefused(
                "target_refused", f"{parts.hostname} is {address}: not a public address"
            )


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signature_header(secrets_: Sequence[str], msg_id: str, at: datetime, body: bytes) -> str:
    """``webhook-signature``: ``v1,<base64>`` per secret, space-separated."""
    text = body.decode("utf-8")
    return " ".join(Webhook(s).sign(msg_id, at, text) for s in secrets_)


def _check_types(types: Sequence[str], known: frozenset[str]) -> tuple[str, ...]:
    for t in types:
        if t == "*":
            continue
        if t.endswith(".*"):
            if not any(k.startswith(t[:-1]) for k in known):
                raise EndpointRefused("validation_failed", f"no event type matches {t!r}")
        elif t not in known:
            raise EndpointRefused("validation_failed", f"unknown event type {t!r}")
    return tuple(dict.fromkeys(types))


def matches(types: Sequence[str], event_type: str) -> bool:
    return any(
        t in ("*", event_type) or (t.endswith(".*") and event_type.startswith(t[:-1]))
        for t in types
    )


# -- endpoints -------------------------------------------------------------------------

_ENDPOINT_COLUMNS = (
    "id, principal_id, url, event_types, description, state, disabled_reason,"
    " previous_secret_expires_at_us, created_at_us, updated_at_us"
)


def _endpoint(row: Row) -> Endpoint:
    return Endpoint(
        id=row[0],
        principal_id=row[1],
        url=row[2],
        event_types=tuple(json.loads(row[3])),
        description=row[4],
        state=row[5],
        disabled_reason=row[6],
        previous_secret_expires_at=None if row[7] is None else from_us(row[7]),
        created_at=from_us(row[8]),
        updated_at=from_us(row[9]),
    )


def _mine(principal_id: uuid.UUID | None) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment limiting endpoints to a principal's (None: everyone's)."""
    if principal_id is None:
        return "", {}
    return " AND principal_id = :principal_id", {"principal_id": principal_id}


def create_endpoint(
    led: Ledger,
    *,
    principal_id: uuid.UUID,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    settings: WebhookSettings,
) -> tuple[Endpoint, str]:
    """Register an endpoint of the principal; it and its secret (shown only now)."""
    types = _check_types(event_types, settings.event_types)
    check_target(url, settings.target_networks_allowed)
    secret = new_secret()
    endpoint_id = uuid.uuid4()

    def work(tx: Tx) -> Endpoint:
        [(count,)] = tx.execute(
            "SELECT COUNT(*) FROM webhook_endpoints WHERE principal_id = :p", {"p": principal_id}
        )
        if count >= settings.endpoints_per_principal_max:
            raise EndpointRefused(
                "validation_failed",
                f"at most {settings.endpoints_per_principal_max} endpoints per principal",
            )
        tx.execute(
            "INSERT INTO webhook_endpoints (id, principal_id, url, event_types, description,"
            " secret, state, created_at_us, updated_at_us) VALUES (:id, :principal_id, :url,"
            " :types, :description, :secret, 'enabled', :now, :now)",
            {
                "id": endpoint_id,
                "principal_id": principal_id,
                "url": url,
                "types": json.dumps(list(types)),
                "description": description,
                "secret": secret,
                "now": tx.now_us,
            },
        )
        row = tx.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id", {"id": endpoint_id}
        )
        assert row is not None  # just written
        return _endpoint(row)

    return led.transact(work), secret


def get_endpoint(
    led: Ledger, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID | None
) -> Endpoint | None:
    """The endpoint, if it is the principal's (``principal_id`` None: anyone's)."""
    where, params = _mine(principal_id)
    row = led.transact(
        lambda tx: tx.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id{where}",
            {"id": endpoint_id, **params},
        )
    )
    return None if row is None else _endpoint(row)


def list_endpoints(
    led: Ledger, *, principal_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> tuple[list[Endpoint], bool] | None:
    """A page of endpoints, oldest first; None for a cursor naming none of the list."""
    where, params = _mine(principal_id)

    def work(tx: Tx) -> tuple[list[Endpoint], bool] | None:
        after_seq = 0
        if after is not None:
            row = tx.one(
                f"SELECT seq FROM webhook_endpoints WHERE id = :after{where}",
                {"after": after, **params},
            )
            if row is None:
                return None
            after_seq = int(row[0])
        rows = tx.execute(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE seq > :after_seq{where}"
            " ORDER BY seq LIMIT :limit",
            {"after_seq": after_seq, "limit": limit + 1, **params},
        )
        return [_endpoint(r) for r in rows[:limit]], len(rows) > limit

    return led.transact(work)


def rotate_secret(
    led: Ledger, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID, grace_s: int
) -> tuple[Endpoint, str] | None:
    """A new secret for the principal's endpoint; the current one keeps signing beside it
    for ``grace_s`` (0: not at all). None when the endpoint is not the principal's."""
    secret = new_secret()

    def work(tx: Tx) -> Endpoint | None:
        row = tx.one(
            f"SELECT secret FROM webhook_endpoints WHERE id = :id AND principal_id = :p"
            f"{tx.for_update}",
            {"id": endpoint_id, "p": principal_id},
        )
        if row is None:
            return None
        previous, expires = (row[0], tx.now_us + grace_s * US_PER_S) if grace_s else (None, None)
        tx.execute(
            "UPDATE webhook_endpoints SET secret = :secret, previous_secret = :previous,"
            " previous_secret_expires_at_us = :expires, updated_at_us = :now WHERE id = :id",
            {
                "secret": secret,
                "previous": previous,
                "expires": expires,
                "now": tx.now_us,
                "id": endpoint_id,
            },
        )
        found = tx.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id",
            {"id": endpoint_id},
        )
        assert found is not None  # just updated
        return _endpoint(found)

    endpoint = led.transact(work)
    return None if endpoint is None else (endpoint, secret)


def set_enabled(
    led: Ledger, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID, enabled: bool
) -> Endpoint | None:
    """Enable (after a 410, say) or disable the principal's endpoint; None if not its."""

    def work(tx: Tx) -> Endpoint | None:
        tx.execute(
            "UPDATE webhook_endpoints SET state = :state, disabled_reason = :reason,"
            " updated_at_us = :now WHERE id = :id AND principal_id = :p",
            {
                "state": "enabled" if enabled else "disabled",
                "reason": None if enabled else "disabled by its owner",
                "now": tx.now_us,
                "id": endpoint_id,
                "p": principal_id,
            },
        )
        row = tx.one(
            f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = :id AND"
            " principal_id = :p",
            {"id": endpoint_id, "p": principal_id},
        )
        return None if row is None else _endpoint(row)

    return led.transact(work)


_DELIVERY_COLUMNS = (
    "id, endpoint_id, event_id, event_type, state, attempts, next_attempt_at_us,"
    " last_attempt_at_us, last_status_code, last_error, created_at_us"
)


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row[0],
        endpoint_id=row[1],
        event_id=row[2],
        event_type=row[3],
        state=row[4],
        attempts=row[5],
        next_attempt_at=None if row[6] is None else from_us(row[6]),
        last_attempt_at=None if row[7] is None else from_us(row[7]),
        last_status_code=row[8],
        last_error=row[9],
        created_at=from_us(row[10]),
    )


def list_deliveries(
    led: Ledger,
    *,
    endpoint_id: uuid.UUID,
    principal_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[list[Delivery], bool] | None:
    """A page of an endpoint's deliveries, oldest first; None when the endpoint is not
    the principal's or the cursor names none of its deliveries."""
    where, params = _mine(principal_id)

    def work(tx: Tx) -> tuple[list[Delivery], bool] | None:
        if (
            tx.one(
                f"SELECT id FROM webhook_endpoints WHERE id = :id{where}",
                {"id": endpoint_id, **params},
            )
            is None
        ):
            return None
        after_seq = 0
        if after is not None:
            row = tx.one(
                "SELECT seq FROM webhook_deliveries WHERE id = :after AND endpoint_id = :e",
                {"after": after, "e": endpoint_id},
            )
            if row is None:
                return None
            after_seq = int(row[0])
        rows = tx.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = :e"
            " AND seq > :after_seq ORDER BY seq LIMIT :limit",
            {"e": endpoint_id, "after_seq": after_seq, "limit": limit + 1},
        )
        return [_delivery(r) for r in rows[:limit]], len(rows) > limit

    return led.transact(work)


# -- fan-out ---------------------------------------------------------------------------


def fan_out(led: Ledger, *, now_us: int, settings: WebhookSettings) -> int:
    """Turn new outbox events into deliveries (see the module); how many were made."""

    def work(tx: Tx) -> int:
        row = tx.one(
            f"SELECT last_seq FROM webhook_cursor WHERE name = :name{tx.for_update}",
            {"name": CURSOR},
        )
        if row is None:
            raise RuntimeError("webhook_cursor has no outbox row: is the schema migrated?")
        cursor = int(row[0])
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
                endpoints[event.party_id] = _audience(tx, event.party_id)
            for endpoint in endpoints[event.party_id]:
                if endpoint.created_at > event.created_at or not matches(
                    endpoint.event_types, event.type
                ):
                    continue
                made += _add_delivery(tx, endpoint.id, event, now_us)
        if watermark != cursor:
            tx.execute(
                "UPDATE webhook_cursor SET last_seq = :seq, updated_at_us = :now"
                " WHERE name = :name",
                {"seq": watermark, "now": now_us, "name": CURSOR},
            )
        return made

    return led.transact(work)


BROADCAST_ROLE = "storefront"
"""Whose endpoints receive the events of no party (``checkpoint.sealed``)."""


def _audience(tx: Tx, party_id: uuid.UUID | None) -> list[Endpoint]:
    """The enabled endpoints an event of ``party_id`` goes to: its principal's, or, for an
    event of no party, every storefront's."""
    params: dict[str, object]
    if party_id is not None:
        where, params = "principal_id = :p", {"p": party_id}
    else:
        where = "principal_id IN (SELECT id FROM principals WHERE role = :role)"
        params = {"role": BROADCAST_ROLE}
    rows = tx.execute(
        f"SELECT {_ENDPOINT_COLUMNS} FROM webhook_endpoints"
        f" WHERE {where} AND state = 'enabled' ORDER BY seq",
        params,
    )
    return [_endpoint(r) for r in rows]


def _add_delivery(tx: Tx, endpoint_id: uuid.UUID, event: events.Event, now_us: int) -> int:
    if tx.one(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = :e AND event_id = :ev",
        {"e": endpoint_id, "ev": event.id},
    ):
        return 0
    tx.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_seq, event_type,"
        " state, attempts, next_attempt_at_us, created_at_us, updated_at_us) VALUES (:id, :e,"
        " :ev, :seq, :type, 'pending', 0, :now, :now, :now)",
        {
            "id": uuid.uuid4(),
            "e": endpoint_id,
            "ev": event.id,
            "seq": event.seq,
            "type": event.type,
            "now": now_us,
        },
    )
    return 1


# -- attempts --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Job:
    delivery_id: uuid.UUID
    attempts: int
    endpoint_id: uuid.UUID
    url: str
    secrets: tuple[str, ...]
    event_id: uuid.UUID
    body: bytes


def message_body(event_type: str, created_at: datetime, payload: Mapping[str, Any]) -> bytes:
    """The JSON a delivery POSTs: the same bytes on every attempt."""
    text = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": text, "data": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def _claim(led: Ledger, now_us: int, settings: WebhookSettings) -> list[_Job]:
    def work(tx: Tx) -> list[_Job]:
        lock = " FOR UPDATE OF d SKIP LOCKED" if tx.dialect == "postgresql" else ""
        rows = tx.execute(
            "SELECT d.id, d.attempts, e.id, e.url, e.secret, e.previous_secret,"
            " e.previous_secret_expires_at_us, e.state, ev.id, ev.type, ev.payload,"
            " ev.created_at_us FROM webhook_deliveries d"
            " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
            " JOIN events ev ON ev.id = d.event_id"
            " WHERE d.state = 'pending' AND d.next_attempt_at_us <= :now"
            f" ORDER BY d.next_attempt_at_us, d.seq LIMIT :limit{lock}",
            {"now": now_us, "limit": settings.deliveries_per_pass_max},
        )
        jobs: list[_Job] = []
        lease_until = now_us + int(settings.lease_s * US_PER_S)
        for row in rows:
            if row[7] != "enabled":
                tx.execute(
                    "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at_us = NULL,"
                    " last_error = 'endpoint disabled', updated_at_us = :now WHERE id = :id",
                    {"now": now_us, "id": row[0]},
                )
                continue
            tx.execute(
                "UPDATE webhook_deliveries SET next_attempt_at_us = :until,"
                " updated_at_us = :now WHERE id = :id",
                {"until": lease_until, "now": now_us, "id": row[0]},
            )
            keys = [row[4]]
            if row[5] is not None and row[6] > now_us:
                keys.append(row[5])
            body = message_body(row[9], from_us(row[11]), json.loads(row[10]))
            jobs.append(_Job(row[0], row[1], row[2], row[3], tuple(keys), row[8], body))
        return jobs

    return led.transact(work)


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


def _attempt(
    led: Ledger,
    job: _Job,
    *,
    now: datetime,
    http_post: HttpPost,
    settings: WebhookSettings,
    rand: Callable[[], float],
) -> None:
    msg_id = str(job.event_id)
    status: int | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        check_target(job.url, settings.target_networks_allowed)
        headers = {
            "content-type": "application/json",
            "user-agent": "vledger-webhooks/1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(job.secrets, msg_id, now, job.body),
        }
        status = http_post(job.url, job.body, headers, settings.timeout_s)
    except EndpointRefused as exc:
        error = f"target refused: {exc.detail}"
    except (OSError, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    duration_us = int((time.perf_counter() - started) * US_PER_S)
    now_us = to_us(now)
    attempts = job.attempts + 1
    ok = status is not None and 200 <= status < 300
    gone = status == 410
    if ok:
        state, next_at = "succeeded", None
    elif gone or attempts >= settings.attempts_max:
        state, next_at = "failed", None
    else:
        state, next_at = "pending", now_us + int(backoff_s(attempts, settings, rand) * US_PER_S)
    if error is None and not ok:
        error = f"HTTP {status}"
    error = None if error is None else error[:ERROR_LENGTH_MAX]

    def work(tx: Tx) -> None:
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, at_us, status_code, error,"
            " duration_us) VALUES (:d, :n, :at, :status, :error, :duration)",
            {
                "d": job.delivery_id,
                "n": attempts,
                "at": now_us,
                "status": status,
                "error": error,
                "duration": duration_us,
            },
        )
        tx.execute(
            "UPDATE webhook_deliveries SET state = :state, attempts = :n,"
            " next_attempt_at_us = :next, last_attempt_at_us = :at, last_status_code = :status,"
            " last_error = :error, updated_at_us = :at WHERE id = :d",
            {
                "state": state,
                "n": attempts,
                "next": next_at,
                "at": now_us,
                "status": status,
                "error": error,
                "d": job.delivery_id,
            },
        )
        if gone:
            tx.execute(
                "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = :reason,"
                " updated_at_us = :at WHERE id = :e",
                {"reason": "the target answered 410 Gone", "at": now_us, "e": job.endpoint_id},
            )

    led.transact(work)
    log.info(
        "webhook attempt",
        extra={
            "delivery_id": str(job.delivery_id),
            "endpoint_id": str(job.endpoint_id),
            "webhook_id": msg_id,
            "attempt": attempts,
            "status": status,
            "error": error,
            "state": state,
            "duration_ms": round(duration_us / 1000, 2),
        },
    )


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
    jobs = _claim(led, now_us, settings)
    for job in jobs:
        _attempt(led, job, now=now, http_post=http_post, settings=settings, rand=rand)
    return len(jobs)


# -- the worker ------------------------------------------------------------------------


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
