"""The signed record format of offline capture: what a phone signs, and how its bytes
are written, read back and verified (the format is in :mod:`ledger.flows.offline`'s
docstring). Pure: no database, no ledger."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.flows.errors import Refused
from ledger.limits import AMOUNT_MAX_MINOR as JSON_INT_MAX  # the largest amount_minor or seq

OFFLINE_NAMESPACE = uuid.UUID("8c2f4e0a-6b1d-4d6e-9f3a-1e7b5c9d2a40")
"""Derives a record's cash operation id and the allowance holds' ids."""

PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64

_FIELDS = frozenset(
    {
        "agent_id",
        "amount_minor",
        "captured_at",
        "currency",
        "device_id",
        "kind",
        "record_id",
        "seq",
        "villager_id",
    }
)
_FIELDS_V2 = _FIELDS | {"consent_code", "version"}
_FIELDS_V3 = _FIELDS | {"order_id", "pickup_code", "version"}

RECORD_VERSIONS = (1, 2, 3)
"""Version 1: the nine keys; version 2 adds ``consent_code`` and ``version``; version 3
(a hand-over only) adds ``order_id``, ``pickup_code`` and ``version``."""
PICKUP_CODE_DIGITS = 6
"""A villager's pickup code (:data:`ledger.flows.pickup.CODE_DIGITS`, checked by a test)."""


class RecordKind(StrEnum):
    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"
    HANDOVER = "handover"
    """Goods of an order handed over with the villager's pickup code (version 3)."""


@dataclass(frozen=True, slots=True)
class OfflineRecord:
    """One operation as the phone captured it (the fields it signs)."""

    record_id: uuid.UUID
    device_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    kind: RecordKind
    amount_minor: int
    """Minor units of ``currency``."""
    currency: str
    seq: int
    """The device's capture counter: 1, 2, 3 ..."""
    captured_at: datetime
    """When the phone captured it (UTC, whole milliseconds)."""
    consent_code: str | None = None
    """Version 2: the villager's offline withdrawal code for a cash-out (never logged)."""
    version: int = 1
    """The canonical form: 1 (nine keys), 2 (with ``consent_code``) or 3 (a hand-over)."""
    order_id: uuid.UUID | None = None
    """Version 3: the order whose goods were handed over."""
    pickup_code: str | None = None
    """Version 3: the pickup code the villager typed (never logged)."""


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A record and the device's Ed25519 signature over its canonical bytes."""

    record: OfflineRecord
    signature: bytes


def invalid(record_id: object, detail: str) -> Refused:
    return Refused("record_invalid", f"record {record_id}: {detail}")


def _json_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= JSON_INT_MAX


def time_text(at: datetime) -> str:
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:"
        f"{at.second:02d}.{at.microsecond // 1000:03d}Z"
    )


def canonical_bytes(record: OfflineRecord) -> bytes:
    """The bytes a device signs for ``record`` (the format is in the module docstring);
    :class:`Refused` ``record_invalid`` for a record that has none."""
    rid = record.record_id
    for name in ("record_id", "device_id", "agent_id", "villager_id"):
        if not isinstance(getattr(record, name), uuid.UUID):
            raise invalid(rid, f"{name} must be a UUID")
    if record.kind not in tuple(RecordKind):
        raise invalid(rid, "kind must be cash_in, cash_out or handover")
    if not _json_int(record.amount_minor):
        raise invalid(rid, f"amount_minor must be an integer 1..{JSON_INT_MAX}")
    if not _json_int(record.seq):
        raise invalid(rid, f"seq must be an integer 1..{JSON_INT_MAX}")
    currency = record.currency
    if not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
        and currency.isupper()
    ):
        raise invalid(rid, "currency must be three upper-case letters")
    at = record.captured_at
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise invalid(rid, "captured_at must be a timezone-aware datetime")
    at = at.astimezone(UTC)
    if at.microsecond % 1000:
        raise invalid(rid, "captured_at carries whole milliseconds only")
    fields: dict[str, Any] = {
        "agent_id": str(record.agent_id),
        "amount_minor": record.amount_minor,
        "captured_at": time_text(at),
        "currency": currency,
        "device_id": str(record.device_id),
        "kind": RecordKind(record.kind).value,
        "record_id": str(record.record_id),
        "seq": record.seq,
        "villager_id": str(record.villager_id),
    }
    fields.update(_versioned(record))
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digits(code: object, digits: int) -> bool:
    return isinstance(code, str) and len(code) == digits and code.isascii() and code.isdigit()


def _versioned(record: OfflineRecord) -> dict[str, Any]:
    """The keys a record's version adds (none for version 1)."""
    rid, code = record.record_id, record.consent_code
    if type(record.version) is not int or record.version not in RECORD_VERSIONS:
        raise invalid(rid, f"version must be one of {RECORD_VERSIONS}")
    handover = RecordKind(record.kind) is RecordKind.HANDOVER
    if handover != (record.version == 3):
        raise invalid(rid, "a handover is a version 3 record, and a version 3 record a handover")
    if record.version == 3:
        return _handover_keys(record)
    if record.order_id is not None or record.pickup_code is not None:
        raise invalid(rid, "only a handover carries order_id and pickup_code")
    if record.version == 1:
        if code is not None:
            raise invalid(rid, "a version 1 record carries no consent_code")
        return {}
    if code is not None and (
        RecordKind(record.kind) is not RecordKind.CASH_OUT
        or not isinstance(code, str)
        or not _digits(code, 6)
    ):
        raise invalid(rid, "consent_code is six digits, on a cash_out only")
    return {"consent_code": code, "version": record.version}


def _handover_keys(record: OfflineRecord) -> dict[str, Any]:
    """A hand-over's keys: the order, the villager's pickup code, no consent code."""
    rid = record.record_id
    if record.consent_code is not None:
        raise invalid(rid, "a handover carries a pickup_code, not a consent_code")
    if not isinstance(record.order_id, uuid.UUID):
        raise invalid(rid, "order_id must be a UUID")
    if not _digits(record.pickup_code, PICKUP_CODE_DIGITS):
        raise invalid(rid, f"pickup_code is {PICKUP_CODE_DIGITS} digits")
    return {"order_id": str(record.order_id), "pickup_code": record.pickup_code, "version": 3}


def record_from_canonical(payload: bytes) -> OfflineRecord:
    """The record whose canonical bytes are ``payload``; :class:`Refused`
    ``record_invalid`` unless ``payload`` is exactly canonical."""
    try:
        fields = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[..."
        raise invalid("?", "payload is not ASCII JSON") from None
    if not isinstance(fields, dict) or set(fields) not in (_FIELDS, _FIELDS_V2, _FIELDS_V3):
        raise invalid("?", f"payload must be an object with exactly {sorted(_FIELDS)}")
    rid = _id_text(fields["record_id"])
    named = ("record_id", "device_id", "agent_id", "villager_id", "order_id")
    # Refusals name the field, never the value sent (it may be markup or huge).
    try:
        ids = {name: uuid.UUID(fields[name]) for name in named if name in fields}
    except (TypeError, ValueError, AttributeError):
        raise invalid(rid, f"{', '.join(n for n in named if n in fields)} must be UUIDs") from None
    try:
        kind = RecordKind(fields["kind"])
    except (TypeError, ValueError):
        raise invalid(rid, f"kind must be one of {', '.join(RecordKind)}") from None
    text = fields["captured_at"]
    try:
        if not isinstance(text, str) or not text.endswith("Z"):
            raise ValueError("no Z")
        captured_at = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise invalid(rid, "captured_at must be YYYY-MM-DDTHH:MM:SS.sssZ") from None
    record = OfflineRecord(
        record_id=ids["record_id"],
        device_id=ids["device_id"],
        agent_id=ids["agent_id"],
        villager_id=ids["villager_id"],
        kind=kind,
        amount_minor=fields["amount_minor"],
        currency=fields["currency"],
        seq=fields["seq"],
        captured_at=captured_at,
        consent_code=fields.get("consent_code"),
        version=fields.get("version", 1),
        order_id=ids.get("order_id"),
        pickup_code=fields.get("pickup_code"),
    )
    if canonical_bytes(record) != payload:
        raise invalid(rid, "payload is not in canonical form")
    return record


def _id_text(value: object) -> str:
    """A record id to name in a refusal: the UUID, or ``?`` for anything else."""
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else "?"
    except ValueError:
        return "?"


def sign_record(private_key: Ed25519PrivateKey, record: OfflineRecord) -> SignedRecord:
    """What a phone does: sign ``record``'s canonical bytes (tests and the demo use it)."""
    return SignedRecord(record, private_key.sign(canonical_bytes(record)))


def verify_record(public_key: bytes, signed: SignedRecord) -> bool:
    """Whether ``signed.signature`` is the key's Ed25519 signature of the record's bytes."""
    signature = signed.signature
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, canonical_bytes(signed.record)
        )
    except InvalidSignature:
        return False
    return True


def cash_operation_id(record_id: uuid.UUID) -> uuid.UUID:
    """The id of the cash-in or cash-out a record becomes."""
    return uuid.uuid5(OFFLINE_NAMESPACE, f"record:{record_id}")


def handover_step_id(record_id: uuid.UUID) -> uuid.UUID:
    """The id of the order's delivery step a hand-over record becomes."""
    return uuid.uuid5(OFFLINE_NAMESPACE, f"handover:{record_id}")
