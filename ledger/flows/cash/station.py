"""The station's figures: what an agent's home screen shows beside its float.

- **cash on hand**: the agent's ``cash`` account, posted (cash taken at cash-ins less
  cash handed over at cash-outs); **promised** is what its open cash-outs still hold of it
  (the ``cash`` account's pending credits), so ``on hand - promised`` is what the agent
  can still pay out;
- **open cash-outs**: requested and not timed out, waiting for the agent's confirmation;
- **commission this month**: what the agent's ``commission`` account was credited in the
  current calendar month **in UTC** (from 00:00 UTC on the 1st, by the ledger's clock),
  gross: a payout of it (a debit) does not make it smaller.

Amounts in minor units of the agent's currency. A read: nothing is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import parties
from ledger.flows.agent_float.checks import check_id
from ledger.flows.cash.repository import CashOutRepository
from ledger.flows.parties import Kind, Role

__all__ = ["StationFigures", "month_start", "station_figures"]


@dataclass(frozen=True, slots=True)
class StationFigures:
    """One agent's station figures now (minor units of ``currency``)."""

    agent_id: uuid.UUID
    currency: str
    cash_on_hand_minor: int
    cash_promised_minor: int
    open_cash_outs: int
    commission_month: str
    """The month counted, ``YYYY-MM`` (UTC)."""
    commission_month_minor: int
    at: datetime


def month_start(at: datetime) -> datetime:
    """00:00 UTC on the first day of ``at``'s month in UTC."""
    utc = at.astimezone(UTC)
    return datetime(utc.year, utc.month, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Now:
    currency: str
    cash_on_hand_minor: int
    cash_promised_minor: int
    open_cash_outs: int
    commission_credits: int
    commission_account: uuid.UUID
    at: datetime


def _now_in(tx: Tx, agent_id: uuid.UUID) -> _Now:
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    cash, commission = tx.lookup_accounts(
        [agent.account(Role.CASH), agent.account(Role.COMMISSION)]
    )
    opened = CashOutRepository(tx).count_open(agent_id=agent.id, now_us=tx.now_us)
    return _Now(
        agent.currency,
        cash.debits_posted - cash.credits_posted,
        cash.credits_pending,
        opened,
        commission.credits_posted,
        commission.id,
        tx.now,
    )


def station_figures(led: Ledger, *, agent_id: uuid.UUID) -> StationFigures:
    """The agent's station figures; :class:`NotFound` ``agent_not_found``."""
    checked = check_id(agent_id, "agent_id")
    now = led.transact(lambda tx: _now_in(tx, checked))
    start = month_start(now.at)
    before = led.balance_at(now.commission_account, start - timedelta(microseconds=1))
    earlier = 0 if before is None else before.credits_posted
    return StationFigures(
        checked,
        now.currency,
        now.cash_on_hand_minor,
        now.cash_promised_minor,
        now.open_cash_outs,
        start.strftime("%Y-%m"),
        now.commission_credits - earlier,
        now.at,
    )
