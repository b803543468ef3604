"""The webhooks' tables: the only module that writes SQL naming ``webhook_endpoints``,
``webhook_deliveries``, ``webhook_attempts`` or ``webhook_cursor``.

It reads the outbox through the published view ``outbox_events`` (migration 0021) and
principals' roles through ``principal_roles`` (0022), never their tables. Moments are
stored as UTC microseconds (``*_at_us``) and come back as aware datetimes, except where a
row keeps the stored microseconds under a name ending in ``_us``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.errors import StorageError
from ledger.core.rows import RowMapper, from_json, moment
from ledger.core.tx import Tx
from ledger.flows.events import Event

__all__ = [
    "CURSOR",
    "Attempt",
    "Delivery",
    "DeliveryState",
    "DueDelivery",
    "Endpoint",
    "EndpointState",
]

CURSOR = "outbox"
"""The ``webhook_cursor`` row that says how far the outbox is fanned out."""


class EndpointState(StrEnum):
    """``webhook_endpoints.state``: a disabled endpoint receives nothing."""

    ENABLED = "enabled"
    DISABLED = "disabled"


class DeliveryState(StrEnum):
    """``webhook_deliveries.state``: pending until it succeeds or is given up."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A registered endpoint, without its secrets."""

    id: uuid.UUID
    principal_id: uuid.UUID
    url: str
    event_types: tuple[str, ...]
    description: str | None
    state: EndpointState
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one endpoint."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A pending delivery whose time has come, with its endpoint and its event."""

    delivery_id: uuid.UUID
    attempts: int
    endpoint_id: uuid.UUID
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at_us: int | None
    endpoint_state: EndpointState
    event_id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    event_created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt wrote: its ``webhook_attempts`` row and the delivery's new state."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    attempt: int
    """The attempt's number, 1 for the first: the delivery's ``attempts`` after it."""
    at_us: int
    status_code: int | None
    error: str | None
    duration_us: int
    state: DeliveryState
    next_attempt_at_us: int | None
    gone: bool
    """The target answered 410 Gone: the endpoint is disabled."""


# -- endpoints -------------------------------------------------------------------------


def _names(value: str) -> tuple[str, ...]:
    return tuple(from_json(value))


_ENDPOINT = RowMapper(
    Endpoint,
    "id, principal_id, url, event_types, description, state, disabled_reason,"
    " previous_secret_expires_at_us AS previous_secret_expires_at,"
    " created_at_us AS created_at, updated_at_us AS updated_at",
    {
        "event_types": _names,
        "state": EndpointState,
        "previous_secret_expires_at": moment,
        "created_at": moment,
        "updated_at": moment,
    },
)


def _mine(principal_id: uuid.UUID | None) -> tuple[str, dict[str, Any]]:
    """A WHERE fragment limiting endpoints to a principal's (None: everyone's)."""
    if principal_id is None:
        return "", {}
    return " AND principal_id = :principal_id", {"principal_id": principal_id}


def count_endpoints(tx: Tx, principal_id: uuid.UUID) -> int:
    """How many endpoints the principal has registered (enabled or not)."""
    [(count,)] = tx.execute(
        "SELECT COUNT(*) FROM webhook_endpoints WHERE principal_id = :p", {"p": principal_id}
    )
    return int(count)


def insert_endpoint(
    tx: Tx,
    *,
    endpoint_id: uuid.UUID,
    principal_id: uuid.UUID,
    url: str,
    event_types: tuple[str, ...],
    description: str | None,
    secret: str,
) -> None:
    """A new enabled endpoint."""
    tx.execute(
        "INSERT INTO webhook_endpoints (id, principal_id, url, event_types, description,"
        " secret, state, created_at_us, updated_at_us) VALUES (:id, :principal_id, :url,"
        " :types, :description, :secret, 'enabled', :now, :now)",
        {
            "id": endpoint_id,
            "principal_id": principal_id,
            "url": url,
            "types": json.dumps(list(event_types)),
            "description": description,
            "secret": secret,
            "now": tx.now_us,
        },
    )


def find_endpoint(
    tx: Tx, endpoint_id: uuid.UUID, principal_id: uuid.UUID | None
) -> Endpoint | None:
    """The endpoint, if it is the principal's (``principal_id`` None: anyone's)."""
    where, params = _mine(principal_id)
    row = tx.one(
        f"SELECT {_ENDPOINT.columns} FROM webhook_endpoints WHERE id = :id{where}",
        {"id": endpoint_id, **params},
    )
    return _ENDPOINT.one(row)


def endpoint_seq(tx: Tx, endpoint_id: uuid.UUID, principal_id: uuid.UUID | None) -> int | None:
    """Where the endpoint stands in the list (its ``seq``), if it is the principal's."""
    where, params = _mine(principal_id)
    row = tx.one(
        f"SELECT seq FROM webhook_endpoints WHERE id = :after{where}",
        {"after": endpoint_id, **params},
    )
    return None if row is None else int(row[0])


def endpoints_after(
    tx: Tx, *, after_seq: int, principal_id: uuid.UUID | None, limit: int
) -> list[Endpoint]:
    """At most ``limit`` of the principal's endpoints (None: everyone's) after
    ``after_seq``, oldest first."""
    where, params = _mine(principal_id)
    rows = tx.execute(
        f"SELECT {_ENDPOINT.columns} FROM webhook_endpoints WHERE seq > :after_seq{where}"
        " ORDER BY seq LIMIT :limit",
        {"after_seq": after_seq, "limit": limit, **params},
    )
    return _ENDPOINT.all(rows)


def lock_secret(tx: Tx, endpoint_id: uuid.UUID, principal_id: uuid.UUID) -> str | None:
    """The current secret of the principal's endpoint, its row locked; None if not its."""
    row = tx.one(
        f"SELECT secret FROM webhook_endpoints WHERE id = :id AND principal_id = :p{tx.for_update}",
        {"id": endpoint_id, "p": principal_id},
    )
    return None if row is None else str(row[0])


def set_secret(
    tx: Tx,
    endpoint_id: uuid.UUID,
    *,
    secret: str,
    previous: str | None,
    previous_expires_at_us: int | None,
) -> None:
    """Sign with ``secret`` from now on, and with ``previous`` too until it expires."""
    tx.execute(
        "UPDATE webhook_endpoints SET secret = :secret, previous_secret = :previous,"
        " previous_secret_expires_at_us = :expires, updated_at_us = :now WHERE id = :id",
        {
            "secret": secret,
            "previous": previous,
            "expires": previous_expires_at_us,
            "now": tx.now_us,
            "id": endpoint_id,
        },
    )


def set_state(
    tx: Tx,
    endpoint_id: uuid.UUID,
    principal_id: uuid.UUID,
    *,
    state: EndpointState,
    reason: str | None,
) -> None:
    """Enable or disable the principal's endpoint (nothing if it is not the principal's)."""
    tx.execute(
        "UPDATE webhook_endpoints SET state = :state, disabled_reason = :reason,"
        " updated_at_us = :now WHERE id = :id AND principal_id = :p",
        {
            "state": state.value,
            "reason": reason,
            "now": tx.now_us,
            "id": endpoint_id,
            "p": principal_id,
        },
    )


def audience(tx: Tx, party_id: uuid.UUID | None, broadcast_role: str) -> list[Endpoint]:
    """The enabled endpoints an event of ``party_id`` goes to: its principal's, or, for an
    event of no party, those of every principal in ``broadcast_role``."""
    params: dict[str, object]
    if party_id is not None:
        where, params = "principal_id = :p", {"p": party_id}
    else:
        where = "principal_id IN (SELECT principal_id FROM principal_roles WHERE role = :role)"
        params = {"role": broadcast_role}
    rows = tx.execute(
        f"SELECT {_ENDPOINT.columns} FROM webhook_endpoints"
        f" WHERE {where} AND state = 'enabled' ORDER BY seq",
        params,
    )
    return _ENDPOINT.all(rows)


# -- deliveries ------------------------------------------------------------------------

_DELIVERY = RowMapper(
    Delivery,
    "id, endpoint_id, event_id, event_type, state, attempts,"
    " next_attempt_at_us AS next_attempt_at, last_attempt_at_us AS last_attempt_at,"
    " last_status_code, last_error, created_at_us AS created_at",
    {
        "state": DeliveryState,
        "next_attempt_at": moment,
        "last_attempt_at": moment,
        "created_at": moment,
    },
)


def delivery_seq(tx: Tx, delivery_id: uuid.UUID, endpoint_id: uuid.UUID) -> int | None:
    """Where the endpoint's delivery stands in its list (its ``seq``); None if not its."""
    row = tx.one(
        "SELECT seq FROM webhook_deliveries WHERE id = :after AND endpoint_id = :e",
        {"after": delivery_id, "e": endpoint_id},
    )
    return None if row is None else int(row[0])


def deliveries_after(
    tx: Tx, endpoint_id: uuid.UUID, *, after_seq: int, limit: int
) -> list[Delivery]:
    """At most ``limit`` of the endpoint's deliveries after ``after_seq``, oldest first."""
    rows = tx.execute(
        f"SELECT {_DELIVERY.columns} FROM webhook_deliveries WHERE endpoint_id = :e"
        " AND seq > :after_seq ORDER BY seq LIMIT :limit",
        {"e": endpoint_id, "after_seq": after_seq, "limit": limit},
    )
    return _DELIVERY.all(rows)


def add_delivery(tx: Tx, endpoint_id: uuid.UUID, event: Event, now_us: int) -> bool:
    """A pending delivery of the event to the endpoint, due now; False if it has one."""
    if tx.one(
        "SELECT id FROM webhook_deliveries WHERE endpoint_id = :e AND event_id = :ev",
        {"e": endpoint_id, "ev": event.id},
    ):
        return False
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
    return True


_DUE = RowMapper(
    DueDelivery,
    "d.id AS delivery_id, d.attempts, e.id AS endpoint_id, e.url, e.secret,"
    " e.previous_secret, e.previous_secret_expires_at_us, e.state AS endpoint_state,"
    " ev.id AS event_id, ev.type AS event_type, ev.payload,"
    " ev.created_at_us AS event_created_at",
    {"endpoint_state": EndpointState, "payload": from_json, "event_created_at": moment},
)


def lock_due(tx: Tx, now_us: int, limit: int) -> list[DueDelivery]:
    """At most ``limit`` pending deliveries due at ``now_us``, the earliest first, locked
    (on PostgreSQL, skipping those another worker holds)."""
    lock = " FOR UPDATE OF d SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = tx.execute(
        f"SELECT {_DUE.columns} FROM webhook_deliveries d"
        " JOIN webhook_endpoints e ON e.id = d.endpoint_id"
        " JOIN outbox_events ev ON ev.id = d.event_id"
        " WHERE d.state = 'pending' AND d.next_attempt_at_us <= :now"
        f" ORDER BY d.next_attempt_at_us, d.seq LIMIT :limit{lock}",
        {"now": now_us, "limit": limit},
    )
    return _DUE.all(rows)


def fail_unsent(tx: Tx, delivery_id: uuid.UUID, now_us: int) -> None:
    """Give up a delivery whose endpoint is disabled, without sending it."""
    tx.execute(
        "UPDATE webhook_deliveries SET state = 'failed', next_attempt_at_us = NULL,"
        " last_error = 'endpoint disabled', updated_at_us = :now WHERE id = :id",
        {"now": now_us, "id": delivery_id},
    )


def lease(tx: Tx, delivery_id: uuid.UUID, *, until_us: int, now_us: int) -> None:
    """Claim a delivery until ``until_us``: no other pass takes it before then."""
    tx.execute(
        "UPDATE webhook_deliveries SET next_attempt_at_us = :until,"
        " updated_at_us = :now WHERE id = :id",
        {"until": until_us, "now": now_us, "id": delivery_id},
    )


def record_attempt(tx: Tx, attempt: Attempt) -> None:
    """Write an attempt, the delivery's new state and, after a 410, the endpoint's."""
    tx.execute(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at_us, status_code, error,"
        " duration_us) VALUES (:d, :n, :at, :status, :error, :duration)",
        {
            "d": attempt.delivery_id,
            "n": attempt.attempt,
            "at": attempt.at_us,
            "status": attempt.status_code,
            "error": attempt.error,
            "duration": attempt.duration_us,
        },
    )
    tx.execute(
        "UPDATE webhook_deliveries SET state = :state, attempts = :n,"
        " next_attempt_at_us = :next, last_attempt_at_us = :at, last_status_code = :status,"
        " last_error = :error, updated_at_us = :at WHERE id = :d",
        {
            "state": attempt.state.value,
            "n": attempt.attempt,
            "next": attempt.next_attempt_at_us,
            "at": attempt.at_us,
            "status": attempt.status_code,
            "error": attempt.error,
            "d": attempt.delivery_id,
        },
    )
    if attempt.gone:
        tx.execute(
            "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = :reason,"
            " updated_at_us = :at WHERE id = :e",
            {
                "reason": "the target answered 410 Gone",
                "at": attempt.at_us,
                "e": attempt.endpoint_id,
            },
        )


# -- the cursor ------------------------------------------------------------------------


def lock_cursor(tx: Tx) -> int:
    """The last outbox ``seq`` fanned out, its row locked; :class:`StorageError` when the
    schema lacks the row (not migrated)."""
    row = tx.one(
        f"SELECT last_seq FROM webhook_cursor WHERE name = :name{tx.for_update}",
        {"name": CURSOR},
    )
    if row is None:
        raise StorageError("webhook_cursor has no outbox row: is the schema migrated?")
    return int(row[0])


def move_cursor(tx: Tx, last_seq: int, now_us: int) -> None:
    """The outbox is fanned out up to ``last_seq``."""
    tx.execute(
        "UPDATE webhook_cursor SET last_seq = :seq, updated_at_us = :now WHERE name = :name",
        {"seq": last_seq, "now": now_us, "name": CURSOR},
    )
