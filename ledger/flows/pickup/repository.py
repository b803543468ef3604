"""All SQL of ``pickup_codes``: one row per code issued for an order, stored only as a
salted SHA-256 (``salt``, ``code_hash``); ``state`` moves ``open`` -> ``void`` | ``used``
once. Moments are UTC microseconds since 1970 (``*_us``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.tx import Tx

__all__ = [
    "NewPickupCode",
    "OpenPickupCode",
    "PickupCodeState",
    "add",
    "count_for_order",
    "find_open",
    "find_state",
    "record_wrong_try",
    "set_state",
    "void_open",
]


class PickupCodeState(StrEnum):
    OPEN = "open"
    """Issued and not yet used: the order's hand-over may show it."""
    VOID = "void"
    """Replaced by a newer code, or voided by too many wrong tries."""
    USED = "used"
    """All that was left of the order was handed over with it."""


@dataclass(frozen=True, slots=True)
class NewPickupCode:
    """A code to store (its digest only)."""

    id: uuid.UUID
    order_id: uuid.UUID
    villager_id: uuid.UUID
    salt: bytes
    code_hash: bytes
    """SHA-256 of salt, the order id's bytes and the code's digits."""
    expires_at_us: int | None
    """The order's auto-release time when it was issued (``None``: none)."""


@dataclass(frozen=True, slots=True)
class OpenPickupCode:
    """The order's open code as a check needs it."""

    id: uuid.UUID
    salt: bytes
    code_hash: bytes
    tries_wrong: int


def count_for_order(tx: Tx, order_id: uuid.UUID) -> int:
    """How many codes the order was given (open, void or used)."""
    row = tx.one("SELECT COUNT(*) FROM pickup_codes WHERE order_id = :o", {"o": order_id})
    return 0 if row is None else int(row[0])


def void_open(tx: Tx, order_id: uuid.UUID) -> None:
    """Void the order's open code, if it has one."""
    tx.execute(
        "UPDATE pickup_codes SET state = 'void', updated_at_us = :now"
        " WHERE order_id = :o AND state = 'open'",
        {"o": order_id, "now": tx.now_us},
    )


def add(tx: Tx, new: NewPickupCode) -> None:
    """Store ``new``, open, issued now."""
    tx.execute(
        "INSERT INTO pickup_codes (id, order_id, villager_id, salt, code_hash, state,"
        " tries_wrong, expires_at_us, created_at_us, updated_at_us) VALUES (:id, :o, :v,"
        " :salt, :hash, 'open', 0, :until, :now, :now)",
        {
            "id": new.id,
            "o": new.order_id,
            "v": new.villager_id,
            "salt": new.salt,
            "hash": new.code_hash,
            "until": new.expires_at_us,
            "now": tx.now_us,
        },
    )


def find_open(tx: Tx, order_id: uuid.UUID) -> OpenPickupCode | None:
    """The order's open code, locked for the transaction, if it has one."""
    row = tx.one(
        "SELECT id, salt, code_hash, tries_wrong FROM pickup_codes"
        f" WHERE order_id = :o AND state = 'open'{tx.for_update}",
        {"o": order_id},
    )
    if row is None:
        return None
    return OpenPickupCode(row[0], bytes(row[1]), bytes(row[2]), int(row[3]))


def record_wrong_try(
    tx: Tx, code_id: uuid.UUID, *, tries_wrong: int, state: PickupCodeState
) -> None:
    """Count a wrong try: the code's wrong tries become ``tries_wrong``, its state ``state``."""
    tx.execute(
        "UPDATE pickup_codes SET tries_wrong = :t, state = :s, updated_at_us = :now WHERE id = :id",
        {"t": tries_wrong, "s": state.value, "now": tx.now_us, "id": code_id},
    )


def find_state(tx: Tx, code_id: uuid.UUID, order_id: uuid.UUID) -> PickupCodeState | None:
    """The state of the order's code ``code_id``, locked for the transaction."""
    row = tx.one(
        f"SELECT state FROM pickup_codes WHERE id = :id AND order_id = :o{tx.for_update}",
        {"id": code_id, "o": order_id},
    )
    return None if row is None else PickupCodeState(row[0])


def set_state(tx: Tx, code_id: uuid.UUID, state: PickupCodeState) -> None:
    tx.execute(
        "UPDATE pickup_codes SET state = :s, updated_at_us = :now WHERE id = :id",
        {"s": state.value, "now": tx.now_us, "id": code_id},
    )
