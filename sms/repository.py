"""The SMS tables: the only module that writes SQL naming ``sms_cursor``,
``sms_contacts``, ``sms_messages`` or ``sms_attempts`` (migration 0025).

Moments are stored as UTC microseconds (``*_at_us``) and come back as aware datetimes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.errors import StorageError
from ledger.core.rows import RowMapper, moment, uuid_of
from ledger.core.tx import Tx

__all__ = [
    "CURSOR",
    "Attempt",
    "Contact",
    "Message",
    "MessageState",
    "NewMessage",
]

CURSOR = "outbox"
"""The ``sms_cursor`` row that says how far the outbox is rendered into messages."""


class MessageState(StrEnum):
    """``sms_messages.state``: queued until the gateway took it or it is given up."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a party that is not a villager principal (an agent) gets its SMS."""

    party_id: uuid.UUID
    phone: str
    language: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """An event rendered for one phone, to be queued."""

    event_id: uuid.UUID
    event_seq: int
    event_type: str
    party_id: uuid.UUID
    phone: str
    language: str
    text: str
    text_shown: str
    parts: int
    encoding: str


@dataclass(frozen=True, slots=True)
class Message:
    """One ``sms_messages`` row."""

    seq: int
    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    party_id: uuid.UUID
    phone: str
    language: str
    text: str
    text_shown: str
    parts: int
    encoding: str
    state: MessageState
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    gateway_message_id: str | None
    gateway_status_code: int | None
    gateway_status: str | None
    gateway_cost: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt wrote: its ``sms_attempts`` row and the message's new state."""

    message_id: uuid.UUID
    attempt: int
    """The attempt's number, 1 for the first: the message's ``attempts`` after it."""
    at_us: int
    http_status: int | None
    recipient_status_code: int | None
    recipient_status: str | None
    gateway_message_id: str | None
    gateway_cost: str | None
    error: str | None
    duration_us: int
    state: MessageState
    next_attempt_at_us: int | None


_MESSAGE = RowMapper(
    Message,
    "seq, id, event_id, event_type, party_id, phone, language, text, text_shown, parts,"
    " encoding, state, attempts, next_attempt_at_us AS next_attempt_at,"
    " last_attempt_at_us AS last_attempt_at, last_error, gateway_message_id,"
    " gateway_status_code, gateway_status, gateway_cost, created_at_us AS created_at",
    {
        "state": MessageState,
        "next_attempt_at": moment,
        "last_attempt_at": moment,
        "created_at": moment,
    },
)


# -- contacts --------------------------------------------------------------------------


def find_contact(tx: Tx, party_id: uuid.UUID) -> Contact | None:
    """The party's SMS contact, if an operator set one."""
    row = tx.one(
        "SELECT party_id, phone, language FROM sms_contacts WHERE party_id = :p", {"p": party_id}
    )
    return None if row is None else Contact(uuid_of(row[0]), str(row[1]), str(row[2]))


def set_contact(tx: Tx, contact: Contact) -> None:
    """Set (or replace) the party's SMS contact."""
    params = {
        "p": contact.party_id,
        "phone": contact.phone,
        "language": contact.language,
        "now": tx.now_us,
    }
    if tx.one("SELECT party_id FROM sms_contacts WHERE party_id = :p", params) is None:
        tx.execute(
            "INSERT INTO sms_contacts (party_id, phone, language, updated_at_us)"
            " VALUES (:p, :phone, :language, :now)",
            params,
        )
        return
    tx.execute(
        "UPDATE sms_contacts SET phone = :phone, language = :language, updated_at_us = :now"
        " WHERE party_id = :p",
        params,
    )


# -- messages --------------------------------------------------------------------------


def add_message(tx: Tx, new: NewMessage, now_us: int) -> bool:
    """Queue the message, due now; False if this event already has one for this phone."""
    if tx.one(
        "SELECT id FROM sms_messages WHERE event_id = :ev AND phone = :phone",
        {"ev": new.event_id, "phone": new.phone},
    ):
        return False
    params: dict[str, Any] = {
        "id": uuid.uuid4(),
        "ev": new.event_id,
        "seq": new.event_seq,
        "type": new.event_type,
        "party": new.party_id,
        "phone": new.phone,
        "language": new.language,
        "text": new.text,
        "shown": new.text_shown,
        "parts": new.parts,
        "encoding": new.encoding,
        "now": now_us,
    }
    tx.execute(
        "INSERT INTO sms_messages (id, event_id, event_seq, event_type, party_id, phone,"
        " language, text, text_shown, parts, encoding, state, attempts, next_attempt_at_us,"
        " created_at_us, updated_at_us) VALUES (:id, :ev, :seq, :type, :party, :phone,"
        " :language, :text, :shown, :parts, :encoding, 'queued', 0, :now, :now, :now)",
        params,
    )
    return True


def messages_after(
    tx: Tx, *, after_seq: int, state: MessageState | None, limit: int
) -> list[Message]:
    """At most ``limit`` messages after ``after_seq`` (of one state if given), oldest first."""
    where = "" if state is None else " AND state = :state"
    rows = tx.execute(
        f"SELECT {_MESSAGE.columns} FROM sms_messages WHERE seq > :after{where}"
        " ORDER BY seq LIMIT :limit",
        {"after": after_seq, "state": None if state is None else state.value, "limit": limit},
    )
    return _MESSAGE.all(rows)


def newest_messages(tx: Tx, *, state: MessageState | None, limit: int) -> list[Message]:
    """The newest ``limit`` messages (of one state if given), oldest of them first."""
    where = "" if state is None else " WHERE state = :state"
    rows = tx.execute(
        f"SELECT {_MESSAGE.columns} FROM sms_messages{where} ORDER BY seq DESC LIMIT :limit",
        {"state": None if state is None else state.value, "limit": limit},
    )
    return _MESSAGE.all(rows)[::-1]


def lock_due(tx: Tx, now_us: int, limit: int) -> list[Message]:
    """At most ``limit`` queued messages due at ``now_us``, the earliest first, locked
    (on PostgreSQL, skipping those another worker holds)."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = tx.execute(
        f"SELECT {_MESSAGE.columns} FROM sms_messages"
        " WHERE state = 'queued' AND next_attempt_at_us <= :now"
        f" ORDER BY next_attempt_at_us, seq LIMIT :limit{lock}",
        {"now": now_us, "limit": limit},
    )
    return _MESSAGE.all(rows)


def lease(tx: Tx, message_id: uuid.UUID, *, until_us: int, now_us: int) -> None:
    """Claim a message until ``until_us``: no other pass takes it before then."""
    tx.execute(
        "UPDATE sms_messages SET next_attempt_at_us = :until, updated_at_us = :now WHERE id = :id",
        {"until": until_us, "now": now_us, "id": message_id},
    )


def record_attempt(tx: Tx, attempt: Attempt) -> None:
    """Write an attempt and the message's new state; once it is sent or failed, its text
    becomes the shown one (a one-time code is kept no longer than it is needed)."""
    tx.execute(
        "INSERT INTO sms_attempts (message_id, attempt, at_us, http_status,"
        " recipient_status_code, recipient_status, error, duration_us) VALUES (:m, :n, :at,"
        " :http, :code, :status, :error, :duration)",
        {
            "m": attempt.message_id,
            "n": attempt.attempt,
            "at": attempt.at_us,
            "http": attempt.http_status,
            "code": attempt.recipient_status_code,
            "status": attempt.recipient_status,
            "error": attempt.error,
            "duration": attempt.duration_us,
        },
    )
    tx.execute(
        "UPDATE sms_messages SET state = :state, attempts = :n, next_attempt_at_us = :next,"
        " last_attempt_at_us = :at, last_error = :error, gateway_message_id = :gid,"
        " gateway_status_code = :code, gateway_status = :status, gateway_cost = :cost,"
        " text = CASE WHEN :done = 1 THEN text_shown ELSE text END,"
        " updated_at_us = :at WHERE id = :m",
        {
            "state": attempt.state.value,
            "n": attempt.attempt,
            "next": attempt.next_attempt_at_us,
            "at": attempt.at_us,
            "error": attempt.error,
            "gid": attempt.gateway_message_id,
            "code": attempt.recipient_status_code,
            "status": attempt.recipient_status,
            "cost": attempt.gateway_cost,
            "done": int(attempt.state is not MessageState.QUEUED),
            "m": attempt.message_id,
        },
    )


def attempts_of(
    tx: Tx, message_id: uuid.UUID
) -> list[tuple[int, int | None, int | None, str | None]]:
    """``(at_us, http_status, recipient_status_code, error)`` of every attempt, in order."""
    rows = tx.execute(
        "SELECT at_us, http_status, recipient_status_code, error FROM sms_attempts"
        " WHERE message_id = :m ORDER BY attempt",
        {"m": message_id},
    )
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows]


# -- the cursor ------------------------------------------------------------------------


def lock_cursor(tx: Tx) -> int:
    """The last outbox ``seq`` rendered, its row locked; :class:`StorageError` when the
    schema lacks the row (not migrated)."""
    row = tx.one(
        f"SELECT last_seq FROM sms_cursor WHERE name = :name{tx.for_update}", {"name": CURSOR}
    )
    if row is None:
        raise StorageError("sms_cursor has no outbox row: is the schema migrated?")
    return int(row[0])


def move_cursor(tx: Tx, last_seq: int, now_us: int) -> None:
    """The outbox is rendered up to ``last_seq``."""
    tx.execute(
        "UPDATE sms_cursor SET last_seq = :seq, updated_at_us = :now WHERE name = :name",
        {"seq": last_seq, "now": now_us, "name": CURSOR},
    )
