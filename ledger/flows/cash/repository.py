"""All SQL of the cash tables: ``cash_ins`` (one row per cash-in, never updated) and
``cash_outs`` (one row per cash-out; a two-phase one's state, reason and resolution time
change once). Moments are stored as UTC microseconds since 1970 (``*_us``); ``utc_day``
is the day the villager's limits counted the amount in; ``quote`` is the JSON of the
:class:`ledger.flows.fees.Quote` that priced a cash-out (``NULL``: no schedule)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from typing import Any

from ledger.core.rows import RowMapper, moment, written_or_locked
from ledger.core.store import to_us
from ledger.core.tx import Row, Tx
from ledger.flows import fees
from ledger.flows.cash.model import CashIn, CashOut, CashOutMode, CashOutState

__all__ = ["CashInRepository", "CashOutRepository", "NewCashOut", "StoredCashOut"]


def _page_sql(
    tx: Tx,
    table: str,
    columns: str,
    *,
    agent_id: uuid.UUID,
    after: uuid.UUID | None,
    limit: int,
    state: CashOutState | None = None,
) -> list[Row]:
    """An agent's rows of ``table`` (of one state, if given), oldest first, after the
    cursor ``after`` (a row of that agent; another answers ``[]``), at most ``limit``."""
    where = "agent_id = :agent"
    params: dict[str, Any] = {"agent": agent_id, "limit": limit}
    if state is not None:
        where += " AND state = :state"
        params["state"] = CashOutState(state).value
    if after is not None:
        cursor = tx.one(
            f"SELECT created_at_us FROM {table} WHERE id = :id AND agent_id = :agent",
            {"id": after, "agent": agent_id},
        )
        if cursor is None:
            return []
        where += " AND (created_at_us > :at OR (created_at_us = :at AND id > :after))"
        params.update(at=cursor[0], after=after)
    return tx.execute(
        f"SELECT {columns} FROM {table} WHERE {where} ORDER BY created_at_us, id LIMIT :limit",
        params,
    )


# -- cash_ins -----------------------------------------------------------------------------

_CASH_IN = RowMapper(
    CashIn,
    "id, agent_id, villager_id, device_id, currency, amount_minor, fee_minor,"
    " commission_minor, fee_version, created_at_us AS created_at",
    {"created_at": moment},
)


class CashInRepository:
    """The ``cash_ins`` rows, inside one transaction."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def find(self, cash_in_id: uuid.UUID) -> CashIn | None:
        row = self._tx.one(
            f"SELECT {_CASH_IN.columns} FROM cash_ins WHERE id = :id", {"id": cash_in_id}
        )
        return _CASH_IN.one(row)

    def add(self, done: CashIn, *, utc_day: int) -> None:
        self._tx.execute(
            f"INSERT INTO cash_ins ({_CASH_IN.stored_columns}, utc_day) VALUES (:id, :agent,"
            " :villager, :device, :currency, :amount, :fee, :commission, :version, :at, :day)",
            {
                "id": done.id,
                "agent": done.agent_id,
                "villager": done.villager_id,
                "device": done.device_id,
                "currency": done.currency,
                "amount": done.amount_minor,
                "fee": done.fee_minor,
                "commission": done.commission_minor,
                "version": done.fee_version,
                "at": to_us(done.created_at),
                "day": utc_day,
            },
        )

    def page(self, *, agent_id: uuid.UUID, after: uuid.UUID | None, limit: int) -> list[CashIn]:
        rows = _page_sql(
            self._tx, "cash_ins", _CASH_IN.columns, agent_id=agent_id, after=after, limit=limit
        )
        return _CASH_IN.all(rows)


# -- cash_outs ----------------------------------------------------------------------------

_CASH_OUT = RowMapper(
    CashOut,
    "id, agent_id, villager_id, device_id, currency, amount_minor, fee_minor, fee_version,"
    " mode, state, reason, created_at_us AS created_at, expires_at_us AS expires_at,"
    " resolved_at_us AS resolved_at",
    {
        "mode": CashOutMode,
        "state": CashOutState,
        "created_at": moment,
        "expires_at": moment,
        "resolved_at": moment,
    },
)
_STORED_CASH_OUT_COLUMNS = f"{_CASH_OUT.columns}, expires_at_us, utc_day, quote"
"""A :class:`StoredCashOut`: the cash-out's columns, then what only the flow reads."""


@dataclass(frozen=True, slots=True)
class StoredCashOut:
    """A ``cash_outs`` row: the cash-out and what only the flow needs of it."""

    cash_out: CashOut
    expires_at_us: int | None
    """When a requested cash-out's holds time out, as the core counts them."""
    utc_day: int
    """The UTC day (days since 1970) whose cash-out usage counted the amount."""
    quote: fees.Quote | None
    """The fee quoted at request time (``None``: no schedule was in effect)."""


@dataclass(frozen=True, slots=True)
class NewCashOut:
    """What a new ``cash_outs`` row says; the repository adds the moments."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    currency: str
    amount_minor: int
    quote: fees.Quote | None
    mode: CashOutMode
    state: CashOutState
    utc_day: int
    expires_at_us: int | None


def _stored_cash_out(row: Row) -> StoredCashOut:
    width = _CASH_OUT.width
    expires_at_us, utc_day, quote = row[width:]
    return StoredCashOut(
        _CASH_OUT(row[:width]),
        expires_at_us,
        utc_day,
        None if quote is None else fees.Quote(**json.loads(quote)),
    )


class CashOutRepository:
    """The ``cash_outs`` rows, inside one transaction."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx

    def find(self, cash_out_id: uuid.UUID, *, lock: bool) -> StoredCashOut | None:
        """The row (locked for the transaction with ``lock``), if there is one."""
        tx = self._tx
        row = tx.one(
            f"SELECT {_STORED_CASH_OUT_COLUMNS} FROM cash_outs"
            f" WHERE id = :id{tx.for_update if lock else ''}",
            {"id": cash_out_id},
        )
        return None if row is None else _stored_cash_out(row)

    def _reread(self, cash_out_id: uuid.UUID) -> StoredCashOut:
        return written_or_locked(self.find(cash_out_id, lock=False), f"cash-out {cash_out_id}")

    def add(self, new: NewCashOut) -> StoredCashOut:
        """Insert ``new``, created now (resolved now too unless it is requested)."""
        now_us = self._tx.now_us
        quote = new.quote
        self._tx.execute(
            f"INSERT INTO cash_outs ({_CASH_OUT.stored_columns}, utc_day, quote) VALUES"
            " (:id, :agent, :villager, :device, :currency, :amount, :fee, :version, :mode,"
            " :state, NULL, :now, :expires, :resolved, :day, :quote)",
            {
                "id": new.id,
                "agent": new.agent_id,
                "villager": new.villager_id,
                "device": new.device_id,
                "currency": new.currency,
                "amount": new.amount_minor,
                "fee": 0 if quote is None else quote.fee_minor,
                "version": None if quote is None else quote.version,
                "mode": new.mode.value,
                "state": new.state.value,
                "now": now_us,
                "expires": new.expires_at_us,
                "resolved": None if new.state is CashOutState.REQUESTED else now_us,
                "day": new.utc_day,
                "quote": None if quote is None else json.dumps(dataclasses.asdict(quote)),
            },
        )
        return self._reread(new.id)

    def resolve(
        self, cash_out_id: uuid.UUID, state: CashOutState, reason: str | None = None
    ) -> StoredCashOut:
        """Set a locked row's final ``state`` (and ``reason``), resolved now."""
        self._tx.execute(
            "UPDATE cash_outs SET state = :state, reason = :reason, resolved_at_us = :now"
            " WHERE id = :id",
            {"state": state.value, "reason": reason, "now": self._tx.now_us, "id": cash_out_id},
        )
        return self._reread(cash_out_id)

    def due_ids(self, *, now_us: int, limit: int) -> list[uuid.UUID]:
        """Requested cash-outs whose timeout has passed at ``now_us``, soonest first."""
        rows = self._tx.execute(
            "SELECT id FROM cash_outs WHERE state = 'requested' AND expires_at_us <= :now"
            " ORDER BY expires_at_us, id LIMIT :limit",
            {"now": now_us, "limit": limit},
        )
        return [row[0] for row in rows]

    def count_open(self, *, agent_id: uuid.UUID, now_us: int) -> int:
        """How many of the agent's cash-outs wait for its confirmation at ``now_us``
        (requested and not timed out; a timed-out one the sweep has not reached is not)."""
        row = self._tx.one(
            "SELECT COUNT(*) FROM cash_outs WHERE agent_id = :agent AND state = 'requested'"
            " AND expires_at_us > :now",
            {"agent": agent_id, "now": now_us},
        )
        return 0 if row is None else int(row[0])

    def page(
        self,
        *,
        agent_id: uuid.UUID,
        state: CashOutState | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> list[CashOut]:
        rows = _page_sql(
            self._tx,
            "cash_outs",
            _CASH_OUT.columns,
            agent_id=agent_id,
            after=after,
            limit=limit,
            state=state,
        )
        return _CASH_OUT.all(rows)
