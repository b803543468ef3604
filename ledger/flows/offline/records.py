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

RECORD_VERSIONS = (1, 2)
"""Version 1: the nine keys; version 2 adds ``consent_code`` and ``version``."""


class RecordKind(StrEnum):
    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"


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
    """The canonical form: 1 (nine keys) or 2 (with ``consent_code``)."""


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
        raise invalid(rid, "kind must be cash_in or cash_out")
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


def _versioned(record: OfflineRecord) -> dict[str, Any]:
    """The keys a record's version adds (none for version 1)."""
    rid, code = record.record_id, record.consent_code
    if type(record.version) is not int or record.version not in RECORD_VERSIONS:
        raise invalid(rid, f"version must be one of {RECORD_VERSIONS}")
    if record.version == 1:
        if code is not None:
            raise invalid(rid, "a version 1 record carries no consent_code")
        return {}
    if code is not None and (
        RecordKind(record.kind) is not RecordKind.CASH_OUT
        or not isinstance(code, str)
        or not (len(code) == 6 and code.isascii() and code.isdigit())
    ):
        raise invalid(rid, "consent_code is six digits, on a cash_out only")
    return {"consent_code": code, "version": record.version}


def record_from_canonical(payload: bytes) -> OfflineRecord:
    """The record whose canonical bytes are ``payload``; :class:`Refused`
    ``record_invalid`` unless ``payload`` is exactly canonical."""
    try:
        fields = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[..."
        raise invalid("?", "payload is not ASCII JSON") from None
    if not isinstance(fields, dict) or set(fields) not in (_FIELDS, _FIELDS_V2):
        raise invalid("?", f"payload must be an object with exactly {sorted(_FIELDS)}")
    rid = fields["record_id"]
    try:
        ids = {
            name: uuid.UUID(fields[name])
            for name in ("record_id", "device_id", "agent_id", "villager_id")
        }
        kind = RecordKind(fields["kind"])
        text = fields["captured_at"]
        if not isinstance(text, str) or not text.endswith("Z"):
            raise ValueError("captured_at must end in Z")
        captured_at = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except (TypeError, ValueError, AttributeError) as exc:
        raise invalid(rid, str(exc)) from None
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
    )
    if canonical_bytes(record) != payload:
        raise invalid(rid, "payload is not in canonical form")
    return record


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
