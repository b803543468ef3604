"""All SQL of the float's tables: ``agent_float`` (settings, one row per agent, never
deleted), ``float_topups`` and ``float_transfers`` (one row per operation, never
updated). Moments are stored as UTC microseconds since 1970 (``*_us``)."""

from __future__ import annotations

import uuid

from ledger.core.rows import RowMapper, moment
from ledger.core.store import to_us
from ledger.core.tx import Row, Tx
from ledger.flows.agent_float.model import FloatSettings, FloatTopUp, FloatTransfer

__all__ = [
    "find_float_transfer",
    "find_settings",
    "find_top_up",
    "insert_float_transfer",
    "insert_top_up",
    "lock_settings",
    "select_low",
    "update_armed",
    "update_guarantee_cap",
    "update_threshold",
]

# -- agent_float --------------------------------------------------------------------------


def _settings(agent_id: uuid.UUID, row: Row) -> FloatSettings:
    return FloatSettings(agent_id, row[0], bool(row[1]), row[2])


def find_settings(tx: Tx, agent_id: uuid.UUID, *, lock: bool = False) -> FloatSettings | None:
    """The agent's settings (locked for the transaction with ``lock``), if it has any."""
    row = tx.one(
        "SELECT low_threshold_minor, low_armed, guarantee_cap_minor FROM agent_float"
        f" WHERE agent_id = :a{tx.for_update if lock else ''}",
        {"a": agent_id},
    )
    return None if row is None else _settings(agent_id, row)


def lock_settings(tx: Tx, agent_id: uuid.UUID) -> FloatSettings:
    """The agent's settings, locked; a first row (no threshold, no cap) if it had none."""
    tx.execute(
        "INSERT INTO agent_float (agent_id, low_threshold_minor, low_armed,"
        " guarantee_cap_minor, updated_at_us) VALUES (:a, NULL, :armed, NULL, :now)"
        " ON CONFLICT (agent_id) DO NOTHING",
        {"a": agent_id, "armed": False, "now": tx.now_us},
    )
    found = find_settings(tx, agent_id, lock=True)
    assert found is not None  # inserted above; settings rows are never deleted
    return found


def update_threshold(
    tx: Tx, agent_id: uuid.UUID, *, threshold_minor: int | None, armed: bool
) -> None:
    tx.execute(
        "UPDATE agent_float SET low_threshold_minor = :t, low_armed = :armed,"
        " updated_at_us = :now WHERE agent_id = :a",
        {"t": threshold_minor, "armed": armed, "now": tx.now_us, "a": agent_id},
    )


def update_guarantee_cap(tx: Tx, agent_id: uuid.UUID, *, cap_minor: int | None) -> None:
    tx.execute(
        "UPDATE agent_float SET guarantee_cap_minor = :cap, updated_at_us = :now"
        " WHERE agent_id = :a",
        {"cap": cap_minor, "now": tx.now_us, "a": agent_id},
    )


def update_armed(tx: Tx, agent_id: uuid.UUID, *, armed: bool) -> None:
    tx.execute(
        "UPDATE agent_float SET low_armed = :armed, updated_at_us = :now WHERE agent_id = :a",
        {"armed": armed, "now": tx.now_us, "a": agent_id},
    )


def select_low(tx: Tx, *, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
    """Agents whose low-float alarm rang and has not re-armed (a threshold is set and the
    float available was below it when last checked), in id order after ``after``."""
    where = "" if after is None else " AND agent_id > :after"
    rows = tx.execute(
        "SELECT agent_id FROM agent_float WHERE low_threshold_minor IS NOT NULL"
        f" AND low_armed = :armed{where} ORDER BY agent_id LIMIT :limit",
        {"armed": False, "after": after, "limit": limit},
    )
    return [row[0] for row in rows]


# -- float_topups -------------------------------------------------------------------------

_TOP_UP = RowMapper(
    FloatTopUp,
    "id, agent_id, provider, currency, amount_minor, transfer_id, created_at_us AS created_at",
    {"created_at": moment},
)


def find_top_up(tx: Tx, topup_id: uuid.UUID) -> FloatTopUp | None:
    row = tx.one(f"SELECT {_TOP_UP.columns} FROM float_topups WHERE id = :id", {"id": topup_id})
    return _TOP_UP.one(row)


def insert_top_up(tx: Tx, top_up: FloatTopUp) -> None:
    tx.execute(
        f"INSERT INTO float_topups ({_TOP_UP.stored_columns}) VALUES"
        " (:id, :agent, :provider, :currency, :amount, :transfer, :at)",
        {
            "id": top_up.id,
            "agent": top_up.agent_id,
            "provider": top_up.provider,
            "currency": top_up.currency,
            "amount": top_up.amount_minor,
            "transfer": top_up.transfer_id,
            "at": to_us(top_up.created_at),
        },
    )


# -- float_transfers ----------------------------------------------------------------------

_TRANSFER = RowMapper(
    FloatTransfer,
    "id, from_agent_id, to_agent_id, currency, amount_minor, transfer_id,"
    " created_at_us AS created_at",
    {"created_at": moment},
)


def find_float_transfer(tx: Tx, transfer_id: uuid.UUID) -> FloatTransfer | None:
    row = tx.one(
        f"SELECT {_TRANSFER.columns} FROM float_transfers WHERE id = :id", {"id": transfer_id}
    )
    return _TRANSFER.one(row)


def insert_float_transfer(tx: Tx, moved: FloatTransfer) -> None:
    tx.execute(
        f"INSERT INTO float_transfers ({_TRANSFER.stored_columns}) VALUES"
        " (:id, :payer, :payee, :currency, :amount, :transfer, :at)",
        {
            "id": moved.id,
            "payer": moved.from_agent_id,
            "payee": moved.to_agent_id,
            "currency": moved.currency,
            "amount": moved.amount_minor,
            "transfer": moved.transfer_id,
            "at": to_us(moved.created_at),
        },
    )
