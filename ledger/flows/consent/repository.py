"""The ``consent_codes`` and ``consent_failures`` tables: the only module that writes SQL
naming them. A consent row is a code's salted hash (never the digits) or a consent given
by PIN; a failure row is one wrong code a caller presented."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.errors import InvariantViolation
from ledger.core.tx import Row, Tx


class Purpose(StrEnum):
    WITHDRAWAL = "withdrawal"
    """A two-phase cash-out at one agent, exact amount."""
    PAYMENT = "payment"
    """A wallet payment of one order, exact amount."""
    OFFLINE_WITHDRAWAL = "offline_withdrawal"
    """A one-shot offline cash-out at one agent; holds its amount when made."""


class ConsentState(StrEnum):
    OPEN = "open"
    USED = "used"
    VOIDED = "voided"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class ConsentRow:
    """A ``consent_codes`` row: a code (``method`` ``code``) or a PIN consent (``pin``)."""

    id: uuid.UUID
    villager_id: uuid.UUID
    purpose: Purpose
    method: str
    amount_minor: int
    currency: str
    agent_id: uuid.UUID | None
    order_id: uuid.UUID | None
    code_salt: bytes | None
    code_hash: bytes | None
    state: ConsentState
    failures: int
    hold_id: uuid.UUID | None
    """An offline withdrawal code's core hold."""
    quote: str | None
    utc_day: int | None
    """The UTC day whose cash-out usage counted an offline withdrawal code's amount."""
    expires_at_us: int

    def due(self, now_us: int) -> bool:
        return now_us >= self.expires_at_us

    def matches(
        self, amount_minor: int, agent_id: uuid.UUID | None, order_id: uuid.UUID | None
    ) -> bool:
        return (self.amount_minor, self.agent_id, self.order_id) == (
            amount_minor,
            agent_id,
            order_id,
        )


_COLUMNS = (
    "id, villager_id, purpose, method, amount_minor, currency, agent_id, order_id,"
    " code_salt, code_hash, state, failures, hold_id, quote, utc_day, used_for,"
    " created_at_us, expires_at_us, resolved_at_us"
)


def _blob(value: object) -> bytes | None:
    """Bytes as stored (the SQLite store reads any 16-byte BLOB back as a UUID)."""
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return value.bytes
    if not isinstance(value, bytes | bytearray | memoryview):
        raise InvariantViolation(f"a consent code's salt or hash is a {type(value).__name__}")
    return bytes(value)


def _row(row: Row) -> ConsentRow:
    return ConsentRow(
        id=row[0],
        villager_id=row[1],
        purpose=Purpose(row[2]),
        method=row[3],
        amount_minor=row[4],
        currency=row[5],
        agent_id=row[6],
        order_id=row[7],
        code_salt=_blob(row[8]),
        code_hash=_blob(row[9]),
        state=ConsentState(row[10]),
        failures=row[11],
        hold_id=row[12],
        quote=row[13],
        utc_day=row[14],
        expires_at_us=row[17],
    )


def insert(tx: Tx, row: ConsentRow) -> None:
    """Store a new consent (``row.state`` open, no failures yet); created now."""
    tx.execute(
        f"INSERT INTO consent_codes ({_COLUMNS}) VALUES (:id, :villager, :purpose, :method,"
        " :amount, :currency, :agent, :order_id, :salt, :hash, 'open', 0, :hold, :quote,"
        " :day, NULL, :now, :expires, NULL)",
        {
            "id": row.id,
            "villager": row.villager_id,
            "purpose": row.purpose.value,
            "method": row.method,
            "amount": row.amount_minor,
            "currency": row.currency,
            "agent": row.agent_id,
            "order_id": row.order_id,
            "salt": row.code_salt,
            "hash": row.code_hash,
            "hold": row.hold_id,
            "quote": row.quote,
            "day": row.utc_day,
            "now": tx.now_us,
            "expires": row.expires_at_us,
        },
    )


def select(tx: Tx, consent_id: uuid.UUID, *, lock: bool) -> ConsentRow | None:
    """The consent (its row locked until commit with ``lock``), or ``None``."""
    row = tx.one(
        f"SELECT {_COLUMNS} FROM consent_codes WHERE id = :id{tx.for_update if lock else ''}",
        {"id": consent_id},
    )
    return None if row is None else _row(row)


def select_open(tx: Tx, villager_id: uuid.UUID, purpose: Purpose) -> list[ConsentRow]:
    """The villager's open consents of ``purpose``, oldest first."""
    rows = tx.execute(
        f"SELECT {_COLUMNS} FROM consent_codes WHERE villager_id = :v AND purpose = :p"
        " AND state = 'open' ORDER BY created_at_us, id",
        {"v": villager_id, "p": purpose.value},
    )
    return [_row(r) for r in rows]


def close(
    tx: Tx, consent_id: uuid.UUID, state: ConsentState, used_for: uuid.UUID | None = None
) -> None:
    """Resolve an open consent (used, voided or expired) now."""
    tx.execute(
        "UPDATE consent_codes SET state = :state, used_for = :used_for, resolved_at_us = :now"
        " WHERE id = :id AND state = 'open'",
        {"state": state.value, "used_for": used_for, "now": tx.now_us, "id": consent_id},
    )


def set_failures(tx: Tx, consent_id: uuid.UUID, failures: int) -> None:
    tx.execute(
        "UPDATE consent_codes SET failures = :n WHERE id = :id", {"n": failures, "id": consent_id}
    )


def due_villagers(tx: Tx, *, limit: int) -> list[tuple[uuid.UUID, Purpose]]:
    """At most ``limit`` (villager, purpose) pairs with an open consent past its time."""
    rows = tx.execute(
        "SELECT DISTINCT villager_id, purpose FROM consent_codes WHERE state = 'open'"
        " AND expires_at_us <= :now LIMIT :limit",
        {"now": tx.now_us, "limit": limit},
    )
    return [(row[0], Purpose(row[1])) for row in rows]


def count_failures_since(tx: Tx, *, caller_id: uuid.UUID, since_us: int) -> int:
    """The wrong codes ``caller_id`` presented after ``since_us``."""
    [(failed,)] = tx.execute(
        "SELECT count(*) FROM consent_failures WHERE caller_id = :c AND at_us > :since",
        {"c": caller_id, "since": since_us},
    )
    return int(failed)


def insert_failure(
    tx: Tx, *, caller_id: uuid.UUID, villager_id: uuid.UUID, purpose: Purpose
) -> None:
    """Record one wrong code a caller presented for a villager and purpose, now."""
    tx.execute(
        "INSERT INTO consent_failures (id, caller_id, villager_id, purpose, reason, at_us)"
        " VALUES (:id, :caller, :villager, :purpose, 'consent_invalid', :now)",
        {
            "id": uuid.uuid4(),
            "caller": caller_id,
            "villager": villager_id,
            "purpose": purpose.value,
            "now": tx.now_us,
        },
    )
