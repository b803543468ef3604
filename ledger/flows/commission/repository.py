"""The ``commission_payouts`` and ``commission_payout_lines`` tables: the only module that
writes SQL naming them. Agents' commission accounts are read through the published view
``party_account_roles``, their movements through ``posted_transfers`` (the core owns
``transfers``).

A payout's row is written when it is claimed and its totals once, when its lines are
written (same transaction); lines are never changed. Amounts are minor units of the
row's currency, moments UTC microseconds.
"""

from __future__ import annotations

import uuid
from typing import Any

from ledger.core.rows import RowMapper, moment, written_or_locked
from ledger.core.tx import Tx
from ledger.flows.commission.model import CommissionPayout, Destination, Earning, PayoutLine
from ledger.flows.parties import Kind, Role

_PAYOUT = RowMapper(
    CommissionPayout,
    "id, month, currency, destination, provider, lines_count, total_minor, made_by,"
    " created_at_us AS created_at",
    {"destination": Destination, "created_at": moment},
)
_LINE = RowMapper(
    PayoutLine,
    "id, payout_id, month, agent_id, currency, commission_account_id, destination_account_id,"
    " earned_minor, amount_minor, transfer_id, created_at_us AS created_at",
    {"created_at": moment},
)

# -- payouts ------------------------------------------------------------------------------


def read_payout(tx: Tx, payout_id: uuid.UUID) -> CommissionPayout | None:
    row = tx.one(
        f"SELECT {_PAYOUT.columns} FROM commission_payouts WHERE id = :id", {"id": payout_id}
    )
    return _PAYOUT.one(row)


def reread_payout(tx: Tx, payout_id: uuid.UUID) -> CommissionPayout:
    """A payout this transaction wrote."""
    return written_or_locked(read_payout(tx, payout_id), f"commission payout {payout_id}")


def claim_payout(
    tx: Tx,
    *,
    payout_id: uuid.UUID,
    month: str,
    currency: str,
    destination: Destination,
    provider: str | None,
    made_by: uuid.UUID | None,
) -> bool:
    """Write the payout's row (no lines yet); ``False`` when another transaction wrote it
    first (on PostgreSQL this waits for that one to commit)."""
    rows = tx.execute(
        "INSERT INTO commission_payouts (id, month, currency, destination, provider,"
        " lines_count, total_minor, made_by, created_at_us) VALUES (:id, :month, :c, :d, :p,"
        " 0, 0, :by, :now) ON CONFLICT DO NOTHING RETURNING id",
        {
            "id": payout_id,
            "month": month,
            "c": currency,
            "d": destination.value,
            "p": provider,
            "by": made_by,
            "now": tx.now_us,
        },
    )
    return bool(rows)


def set_totals(tx: Tx, payout_id: uuid.UUID, *, lines_count: int, total_minor: int) -> None:
    tx.execute(
        "UPDATE commission_payouts SET lines_count = :n, total_minor = :total WHERE id = :id",
        {"n": lines_count, "total": total_minor, "id": payout_id},
    )


def select_payouts(
    tx: Tx, *, currency: str | None, limit: int, starting_after: uuid.UUID | None
) -> list[CommissionPayout]:
    """At most ``limit`` payouts by month (then currency), of the currency given, after
    the payout ``starting_after`` (``[]`` when there is no such payout)."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if currency is not None:
        where.append("currency = :c")
        params["c"] = currency
    if starting_after is not None:
        cursor = tx.one(
            "SELECT month, currency FROM commission_payouts WHERE id = :id", {"id": starting_after}
        )
        if cursor is None:
            return []
        where.append("(month > :m OR (month = :m AND currency > :mc))")
        params.update(m=cursor[0], mc=cursor[1])
    rows = tx.execute(
        f"SELECT {_PAYOUT.columns} FROM commission_payouts WHERE {' AND '.join(where)}"
        " ORDER BY month, currency LIMIT :limit",
        params,
    )
    return _PAYOUT.all(rows)


# -- lines --------------------------------------------------------------------------------


def insert_line(tx: Tx, line: PayoutLine) -> None:
    tx.execute(
        f"INSERT INTO commission_payout_lines ({_LINE.stored_columns}) VALUES (:id, :payout,"
        " :month, :agent, :c, :commission, :destination, :earned, :amount, :transfer, :now)",
        {
            "id": line.id,
            "payout": line.payout_id,
            "month": line.month,
            "agent": line.agent_id,
            "c": line.currency,
            "commission": line.commission_account_id,
            "destination": line.destination_account_id,
            "earned": line.earned_minor,
            "amount": line.amount_minor,
            "transfer": line.transfer_id,
            "now": tx.now_us,
        },
    )


def select_lines(
    tx: Tx, *, payout_id: uuid.UUID, limit: int, after_agent: uuid.UUID | None
) -> list[PayoutLine]:
    """At most ``limit`` lines of the payout in agent id order, after ``after_agent``."""
    where = "payout_id = :p"
    params: dict[str, Any] = {"p": payout_id, "limit": limit}
    if after_agent is not None:
        where += " AND agent_id > :after"
        params["after"] = after_agent
    rows = tx.execute(
        f"SELECT {_LINE.columns} FROM commission_payout_lines WHERE {where}"
        " ORDER BY agent_id LIMIT :limit",
        params,
    )
    return _LINE.all(rows)


def lines_of_agent(tx: Tx, agent_id: uuid.UUID, *, limit: int) -> list[PayoutLine]:
    """The agent's paid months, newest first."""
    rows = tx.execute(
        f"SELECT {_LINE.columns} FROM commission_payout_lines WHERE agent_id = :a"
        " ORDER BY month DESC LIMIT :limit",
        {"a": agent_id, "limit": limit},
    )
    return _LINE.all(rows)


# -- what agents earned (the published views) ---------------------------------------------


def earnings(
    tx: Tx,
    *,
    currency: str,
    start_us: int,
    end_us: int,
    payout_code: int,
    agent_id: uuid.UUID | None = None,
) -> list[Earning]:
    """Each agent of the currency (or the one agent given), in id order: what its
    commission account was credited in ``start_us`` (inclusive) .. ``end_us`` (exclusive),
    and what was debited from it then by anything but a payout (code ``payout_code``)."""
    params: dict[str, Any] = {
        "kind": Kind.AGENT.value,
        "role": Role.COMMISSION.value,
        "c": currency,
        "start": start_us,
        "end": end_us,
        "code": payout_code,
    }
    one = ""
    if agent_id is not None:
        one = " AND r.party_id = :agent"
        params["agent"] = agent_id
    rows = tx.execute(
        "SELECT r.party_id, r.account_id,"
        " COALESCE((SELECT SUM(t.amount) FROM posted_transfers t"
        "  WHERE t.credit_account_id = r.account_id"
        "  AND t.created_at_us >= :start AND t.created_at_us < :end), 0),"
        " COALESCE((SELECT SUM(t.amount) FROM posted_transfers t"
        "  WHERE t.debit_account_id = r.account_id AND t.code <> :code"
        "  AND t.created_at_us >= :start AND t.created_at_us < :end), 0)"
        " FROM party_account_roles r"
        f" WHERE r.party_kind = :kind AND r.role = :role AND r.currency = :c{one}"
        " ORDER BY r.party_id",
        params,
    )
    return [Earning(row[0], row[1], int(row[2]), int(row[3])) for row in rows]
