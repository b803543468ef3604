"""The ``devices`` and ``offline_records`` tables: the only module that writes SQL naming
them.

A device row is written when the phone is registered and updated as its allowance is
held again, its records are stored and it is revoked; ``holds_made`` counts the
allowance holds made for it (their ids derive from that count). A record row is written
once, when a sync stores it (applied or exception), with its canonical bytes and
signature. Amounts are minor units, moments UTC microseconds. A hand-over record's row
names its order (``order_id``); its amount, currency and villager are the order's as the
phone saw them, and its ``cash_operation_id`` is the order's delivery step it became.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.errors import InvariantViolation
from ledger.core.rows import RowMapper, blob, moment, written_or_locked
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows.offline.records import RecordKind, SignedRecord, canonical_bytes


class DeviceState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class RecordState(StrEnum):
    APPLIED = "applied"
    EXCEPTION = "exception"


@dataclass(frozen=True, slots=True)
class Device:
    """An agent's phone, its key and its offline allowance."""

    id: uuid.UUID
    agent_id: uuid.UUID
    public_key: bytes
    state: DeviceState
    allowance_registered_minor: int
    """Minor units: the allowance asked for at registration."""
    allowance_minor: int
    """Minor units still held for the device's offline cash-ins."""
    allowance_hold_id: uuid.UUID | None
    """The core hold (float -> offline_allowance) that reserves ``allowance_minor``."""
    last_seq: int
    """The highest record ``seq`` stored for the device (0 before its first sync)."""
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SyncedRecord:
    """A record as stored by a sync, with its outcome."""

    record_id: uuid.UUID
    device_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    seq: int
    kind: RecordKind
    amount_minor: int
    """Minor units of ``currency``."""
    currency: str
    state: RecordState
    reason: str | None
    """Why an ``exception`` did not apply (a refusal code); ``None`` when applied."""
    cash_operation_id: uuid.UUID | None
    """The cash-in or cash-out an ``applied`` record became (a hand-over: the order's
    delivery step)."""
    captured_at: datetime
    synced_at: datetime
    order_id: uuid.UUID | None = None
    """A hand-over's order (``None`` for a cash record)."""


_DEVICE = RowMapper(
    Device,
    "id, agent_id, public_key, state, allowance_registered_minor, allowance_minor,"
    " allowance_hold_id, last_seq, created_at_us AS created_at, updated_at_us AS updated_at",
    {"public_key": blob, "state": DeviceState, "created_at": moment, "updated_at": moment},
)
_RECORD = RowMapper(
    SyncedRecord,
    "id AS record_id, device_id, agent_id, villager_id, seq, kind, amount_minor, currency,"
    " state, reason, cash_operation_id, captured_at_us AS captured_at,"
    " synced_at_us AS synced_at, order_id",
    {"kind": RecordKind, "state": RecordState, "captured_at": moment, "synced_at": moment},
)


# -- devices ----------------------------------------------------------------------------


def read_device(tx: Tx, device_id: uuid.UUID, *, lock: bool) -> Device | None:
    """The device, locked ``FOR UPDATE`` when ``lock``; ``None`` when there is none."""
    row = tx.one(
        f"SELECT {_DEVICE.columns} FROM devices WHERE id = :id{tx.for_update if lock else ''}",
        {"id": device_id},
    )
    return _DEVICE.one(row)


def reread_device(tx: Tx, device_id: uuid.UUID) -> Device:
    """A device this transaction wrote or locked."""
    return written_or_locked(read_device(tx, device_id, lock=False), f"device {device_id}")


def key_in_use(tx: Tx, public_key: bytes) -> bool:
    """Whether some device is registered with this public key."""
    return tx.one("SELECT id FROM devices WHERE public_key = :key", {"key": public_key}) is not None


def insert_device(
    tx: Tx,
    *,
    device_id: uuid.UUID,
    agent_id: uuid.UUID,
    public_key: bytes,
    allowance_registered_minor: int,
) -> None:
    """An active device holding nothing yet (the allowance is held next)."""
    tx.execute(
        f"INSERT INTO devices ({_DEVICE.stored_columns}, holds_made) VALUES (:id, :agent,"
        " :key, 'active', :allowance, 0, NULL, 0, :now, :now, 0)",
        {
            "id": device_id,
            "agent": agent_id,
            "key": public_key,
            "allowance": allowance_registered_minor,
            "now": tx.now_us,
        },
    )


def count_hold(tx: Tx, device_id: uuid.UUID) -> int:
    """Count one more allowance hold made for the (locked) device; its number: 1, 2 ..."""
    row = tx.one("SELECT holds_made FROM devices WHERE id = :id", {"id": device_id})
    if row is None:
        raise InvariantViolation(f"device {device_id} vanished inside its transaction")
    number = int(row[0]) + 1
    tx.execute("UPDATE devices SET holds_made = :n WHERE id = :id", {"n": number, "id": device_id})
    return number


def set_held(
    tx: Tx, device_id: uuid.UUID, *, allowance_minor: int, hold_id: uuid.UUID | None
) -> None:
    """The device's allowance is now ``allowance_minor``, reserved by ``hold_id``."""
    tx.execute(
        "UPDATE devices SET allowance_minor = :amount, allowance_hold_id = :hold,"
        " updated_at_us = :now WHERE id = :id",
        {"amount": allowance_minor, "hold": hold_id, "now": tx.now_us, "id": device_id},
    )


def mark_revoked(tx: Tx, device_id: uuid.UUID) -> None:
    """Revoked, holding nothing."""
    tx.execute(
        "UPDATE devices SET state = 'revoked', allowance_minor = 0, allowance_hold_id = NULL,"
        " updated_at_us = :now WHERE id = :id",
        {"now": tx.now_us, "id": device_id},
    )


# -- records ----------------------------------------------------------------------------


def read_record(tx: Tx, record_id: uuid.UUID) -> tuple[SyncedRecord, bytes] | None:
    """A stored record and the canonical bytes it was stored with."""
    row = tx.one(
        f"SELECT {_RECORD.columns}, payload FROM offline_records WHERE id = :id",
        {"id": record_id},
    )
    return None if row is None else (_RECORD(row[:-1]), bytes(row[-1]))


def insert_record(
    tx: Tx,
    *,
    device: Device,
    signed: SignedRecord,
    state: RecordState,
    reason: str | None,
    operation_id: uuid.UUID | None,
) -> None:
    """Store a record's outcome, and its ``seq`` as the device's last."""
    record = signed.record
    tx.execute(
        f"INSERT INTO offline_records ({_RECORD.stored_columns}, payload, signature) VALUES"
        " (:id, :device, :agent, :villager, :seq, :kind, :amount, :currency, :state,"
        " :reason, :operation, :captured, :now, :order, :payload, :signature)",
        {
            "id": record.record_id,
            "device": device.id,
            "agent": device.agent_id,
            "villager": record.villager_id,
            "seq": record.seq,
            "kind": RecordKind(record.kind).value,
            "amount": record.amount_minor,
            "currency": record.currency,
            "state": str(state),
            "reason": reason,
            "operation": operation_id,
            "captured": to_us(record.captured_at),
            "now": tx.now_us,
            "order": record.order_id,
            "payload": canonical_bytes(record),
            "signature": signed.signature,
        },
    )
    tx.execute(
        "UPDATE devices SET last_seq = :seq, updated_at_us = :now WHERE id = :id",
        {"seq": record.seq, "now": tx.now_us, "id": device.id},
    )


def select_exceptions(
    tx: Tx, *, agent_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> list[SyncedRecord]:
    """At most ``limit`` exceptions (of one agent, if given) in the order they were synced
    (then by device and ``seq``), after the exception ``after`` (``[]`` when there is no
    such exception)."""
    where = "state = 'exception'"
    params: dict[str, Any] = {"limit": limit, "agent": agent_id}
    if agent_id is not None:
        where += " AND agent_id = :agent"
    if after is not None:
        cursor = tx.one(
            f"SELECT synced_at_us, device_id, seq FROM offline_records WHERE id = :id AND {where}",
            {"id": after, "agent": agent_id},
        )
        if cursor is None:
            return []
        where += " AND (synced_at_us, device_id, seq) > (:at, :device, :seq)"
        params.update(at=cursor[0], device=cursor[1], seq=cursor[2])
    rows = tx.execute(
        f"SELECT {_RECORD.columns} FROM offline_records WHERE {where}"
        " ORDER BY synced_at_us, device_id, seq LIMIT :limit",
        params,
    )
    return _RECORD.all(rows)
