"""All SQL of ``enrollment_codes``: one row per one-time enrollment code, the code stored
only as its SHA-256 (``code_hash``) beside a lookup prefix; ``state`` moves ``open`` ->
``used`` | ``void`` once. Moments are UTC microseconds since 1970 (``*_us``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.tx import Tx

__all__ = [
    "CodeState",
    "EnrollmentRow",
    "NewCode",
    "find_by_lookup",
    "insert",
    "mark_used",
    "record_wrong_try",
    "void_open_of",
]

CANDIDATES_MAX = 20
"""The most rows one lookup prefix reads (20 bits of prefix: collisions are rare)."""


class CodeState(StrEnum):
    OPEN = "open"
    """Issued, not used, not void: redeemable until it expires."""
    USED = "used"
    """Redeemed once: a key was registered with it."""
    VOID = "void"
    """Five wrong tries, or replaced by a newer code for the same principal."""


@dataclass(frozen=True, slots=True)
class NewCode:
    id: uuid.UUID
    principal_id: uuid.UUID
    role: str
    lookup: str
    code_hash: str
    """Hex SHA-256 of the normalised code."""
    issued_by: uuid.UUID | None
    expires_at_us: int


@dataclass(frozen=True, slots=True)
class EnrollmentRow:
    id: uuid.UUID
    principal_id: uuid.UUID
    role: str
    code_hash: str
    state: CodeState
    tries_wrong: int
    expires_at_us: int
    key_id: str | None
    public_key: str | None
    """Base64 of the raw Ed25519 public key registered with the code (used only)."""
    device_id: uuid.UUID | None


def insert(tx: Tx, new: NewCode) -> None:
    tx.execute(
        "INSERT INTO enrollment_codes (id, principal_id, role, lookup, code_hash, state,"
        " tries_wrong, issued_by, expires_at_us, created_at_us, updated_at_us)"
        " VALUES (:id, :principal_id, :role, :lookup, :code_hash, 'open', 0, :issued_by,"
        " :expires, :now, :now)",
        {
            "id": new.id,
            "principal_id": new.principal_id,
            "role": new.role,
            "lookup": new.lookup,
            "code_hash": new.code_hash,
            "issued_by": new.issued_by,
            "expires": new.expires_at_us,
            "now": tx.now_us,
        },
    )


def void_open_of(tx: Tx, principal_id: uuid.UUID) -> int:
    """Void the principal's open codes; how many there were."""
    rows = tx.execute(
        f"SELECT id FROM enrollment_codes WHERE principal_id = :p AND state = 'open'"
        f"{tx.for_update}",
        {"p": principal_id},
    )
    tx.execute(
        "UPDATE enrollment_codes SET state = 'void', updated_at_us = :now"
        " WHERE principal_id = :p AND state = 'open'",
        {"p": principal_id, "now": tx.now_us},
    )
    return len(rows)


def find_by_lookup(tx: Tx, lookup: str) -> list[EnrollmentRow]:
    """The codes with this lookup prefix, newest first, locked until the transaction ends."""
    rows = tx.execute(
        "SELECT id, principal_id, role, code_hash, state, tries_wrong, expires_at_us,"
        " key_id, public_key, device_id FROM enrollment_codes WHERE lookup = :lookup"
        f" ORDER BY created_at_us DESC LIMIT {CANDIDATES_MAX}{tx.for_update}",
        {"lookup": lookup},
    )
    return [
        EnrollmentRow(
            id=r[0],
            principal_id=r[1],
            role=r[2],
            code_hash=r[3],
            state=CodeState(r[4]),
            tries_wrong=r[5],
            expires_at_us=r[6],
            key_id=r[7],
            public_key=r[8],
            device_id=r[9],
        )
        for r in rows
    ]


def record_wrong_try(tx: Tx, code_id: uuid.UUID, *, tries_wrong: int, state: CodeState) -> None:
    tx.execute(
        "UPDATE enrollment_codes SET tries_wrong = :tries, state = :state, updated_at_us = :now"
        " WHERE id = :id AND state = 'open'",
        {"id": code_id, "tries": tries_wrong, "state": state.value, "now": tx.now_us},
    )


def mark_used(
    tx: Tx,
    code_id: uuid.UUID,
    *,
    key_id: str,
    public_key: str,
    device_id: uuid.UUID | None,
) -> None:
    tx.execute(
        "UPDATE enrollment_codes SET state = 'used', key_id = :key_id, public_key = :pk,"
        " device_id = :device_id, updated_at_us = :now WHERE id = :id AND state = 'open'",
        {
            "id": code_id,
            "key_id": key_id,
            "pk": public_key,
            "device_id": device_id,
            "now": tx.now_us,
        },
    )
