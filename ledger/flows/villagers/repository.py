"""The ``villagers`` and ``villager_activation_codes`` tables: the only module that writes
SQL naming them. A villager row holds the PIN's argon2id hash (never the PIN); a code row
holds the activation code's hash (never the digits). Times are UTC microseconds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ledger.core.rows import RowMapper
from ledger.core.tx import Tx


@dataclass(frozen=True, slots=True)
class VillagerRow:
    """A ``villagers`` row: what makes a villager party a principal."""

    party_id: uuid.UUID
    agent_id: uuid.UUID
    """The agent that registered it."""
    phone: str
    """E.164, unique."""
    language: str
    state: str
    pin_tries_failed: int
    unlocked_at_us: int | None
    debit_hold_until_us: int | None
    """End of a SIM-swap hold (it may lie in the past)."""
    created_at_us: int
    updated_at_us: int
    pin_hash: str | None
    registration_sha256: str
    """The digest of the registration request (a replay must match it)."""


@dataclass(frozen=True, slots=True)
class CodeRow:
    """An open ``villager_activation_codes`` row."""

    id: uuid.UUID
    code_hash: str
    tries_failed: int
    expires_at_us: int


_VILLAGER = RowMapper(
    VillagerRow,
    "party_id, agent_id, phone, language, state, pin_tries_failed, unlocked_at_us,"
    " debit_hold_until_us, created_at_us, updated_at_us, pin_hash, registration_sha256",
    {
        "pin_tries_failed": int,
        "unlocked_at_us": int,
        "debit_hold_until_us": int,
        "created_at_us": int,
        "updated_at_us": int,
    },
)


def select_by_id(tx: Tx, villager_id: uuid.UUID, *, lock: bool) -> VillagerRow | None:
    """The villager's row (locked until commit with ``lock``), or ``None``."""
    row = tx.one(
        f"SELECT {_VILLAGER.columns} FROM villagers"
        f" WHERE party_id = :id{tx.for_update if lock else ''}",
        {"id": villager_id},
    )
    return _VILLAGER.one(row)


def select_by_phone(tx: Tx, phone: str, *, lock: bool) -> VillagerRow | None:
    """The row of the villager of ``phone`` (E.164; locked with ``lock``), or ``None``."""
    row = tx.one(
        f"SELECT {_VILLAGER.columns} FROM villagers"
        f" WHERE phone = :phone{tx.for_update if lock else ''}",
        {"phone": phone},
    )
    return _VILLAGER.one(row)


def phone_taken(tx: Tx, phone: str) -> bool:
    return tx.one("SELECT 1 FROM villagers WHERE phone = :p", {"p": phone}) is not None


def insert(
    tx: Tx,
    *,
    villager_id: uuid.UUID,
    agent_id: uuid.UUID,
    phone: str,
    language: str,
    registration_sha256: str,
) -> None:
    """A new villager, ``pending_activation``, without a PIN."""
    tx.execute(
        "INSERT INTO villagers (party_id, agent_id, phone, language, state, pin_hash,"
        " pin_tries_failed, registration_sha256, created_at_us, updated_at_us)"
        " VALUES (:id, :agent, :phone, :language, 'pending_activation', NULL, 0,"
        " :digest, :now, :now)",
        {
            "id": villager_id,
            "agent": agent_id,
            "phone": phone,
            "language": language,
            "digest": registration_sha256,
            "now": tx.now_us,
        },
    )


def set_pin(tx: Tx, villager_id: uuid.UUID, *, pin_hash: str | None, state: str) -> None:
    """A PIN hash and a state, the wrong tries back to 0."""
    tx.execute(
        "UPDATE villagers SET pin_hash = :hash, state = :state, pin_tries_failed = 0,"
        " updated_at_us = :now WHERE party_id = :id",
        {"hash": pin_hash, "state": state, "now": tx.now_us, "id": villager_id},
    )


def set_pin_tries(tx: Tx, villager_id: uuid.UUID, *, tries_failed: int, state: str) -> None:
    tx.execute(
        "UPDATE villagers SET pin_tries_failed = :tries, state = :state, updated_at_us = :now"
        " WHERE party_id = :id",
        {"tries": tries_failed, "state": state, "now": tx.now_us, "id": villager_id},
    )


def set_language(tx: Tx, villager_id: uuid.UUID, *, language: str) -> None:
    tx.execute(
        "UPDATE villagers SET language = :language, updated_at_us = :now WHERE party_id = :id",
        {"language": language, "now": tx.now_us, "id": villager_id},
    )


def restart_activation(
    tx: Tx, villager_id: uuid.UUID, *, debit_hold_until_us: int | None, unlocked: bool
) -> None:
    """Drop the PIN and go back to ``pending_activation`` (an unlock, which also records
    when, or a reset)."""
    unlocked_sql = " unlocked_at_us = :now," if unlocked else ""
    tx.execute(
        "UPDATE villagers SET state = 'pending_activation', pin_hash = NULL,"
        f" pin_tries_failed = 0,{unlocked_sql} debit_hold_until_us = :hold,"
        " updated_at_us = :now WHERE party_id = :id",
        {"now": tx.now_us, "hold": debit_hold_until_us, "id": villager_id},
    )


def set_phone(tx: Tx, villager_id: uuid.UUID, *, phone: str, debit_hold_until_us: int) -> None:
    tx.execute(
        "UPDATE villagers SET phone = :phone, debit_hold_until_us = :hold,"
        " updated_at_us = :now WHERE party_id = :id",
        {"phone": phone, "hold": debit_hold_until_us, "now": tx.now_us, "id": villager_id},
    )


def debit_hold_until_us(tx: Tx, villager_id: uuid.UUID) -> int | None:
    """The end of the villager's SIM-swap hold as stored (past or future), or ``None``."""
    row = tx.one(
        "SELECT debit_hold_until_us FROM villagers WHERE party_id = :id", {"id": villager_id}
    )
    return None if row is None or row[0] is None else int(row[0])


# -- activation codes -------------------------------------------------------------------


def void_open_codes(tx: Tx, villager_id: uuid.UUID) -> None:
    tx.execute(
        "UPDATE villager_activation_codes SET state = 'void', resolved_at_us = :now"
        " WHERE villager_id = :v AND state = 'open'",
        {"v": villager_id, "now": tx.now_us},
    )


def insert_code(
    tx: Tx, villager_id: uuid.UUID, *, code_hash: str, reason: str, expires_at_us: int
) -> None:
    tx.execute(
        "INSERT INTO villager_activation_codes (id, villager_id, code_hash, reason, state,"
        " tries_failed, created_at_us, expires_at_us)"
        " VALUES (:id, :v, :hash, :reason, 'open', 0, :now, :expires)",
        {
            "id": uuid.uuid4(),
            "v": villager_id,
            "hash": code_hash,
            "reason": reason,
            "now": tx.now_us,
            "expires": expires_at_us,
        },
    )


def select_open_code(tx: Tx, villager_id: uuid.UUID) -> CodeRow | None:
    """The villager's open code, locked until commit, or ``None``."""
    row = tx.one(
        "SELECT id, code_hash, tries_failed, expires_at_us FROM villager_activation_codes"
        f" WHERE villager_id = :v AND state = 'open'{tx.for_update}",
        {"v": villager_id},
    )
    return None if row is None else CodeRow(row[0], row[1], int(row[2]), int(row[3]))


def resolve_code(tx: Tx, code_id: uuid.UUID, *, state: str, tries_failed: int) -> None:
    """Record the code's wrong tries; a state other than ``open`` resolves it now."""
    params: dict[str, Any] = {
        "state": state,
        "tries": tries_failed,
        "resolved": None if state == "open" else tx.now_us,
        "id": code_id,
    }
    tx.execute(
        "UPDATE villager_activation_codes SET state = :state, tries_failed = :tries,"
        " resolved_at_us = :resolved WHERE id = :id",
        params,
    )
