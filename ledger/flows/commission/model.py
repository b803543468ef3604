"""Commission payouts' nouns: the month (UTC), the destination, the rows of a payout and
of its lines, and the ids derived from them (the same on every replay)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from ledger.flows.errors import Refused

COMMISSION_NAMESPACE = uuid.UUID("c7a1e0d4-2b6f-4e38-9d15-5a8f3c2e7b90")
"""Derives payout, line and transfer ids from the month, the currency and the agent."""

COMMISSION_PAYOUT_CODE = 921
"""Core transfer ``code`` of a commission payout (the agent's commission account to its
float or to a provider's clearing account)."""

PAID_MONTHS_SHOWN = 24
"""An agent's commission read shows at most this many paid months, newest first."""

MONTH_PATTERN = re.compile(r"(\d{4})-(\d{2})")
YEAR_MIN, YEAR_MAX = 2000, 9998


class Destination(StrEnum):
    """Where a payout moves each agent's commission."""

    FLOAT = "float"
    """The agent's own float account (e-money it can spend at once)."""
    PROVIDER = "provider"
    """The platform's clearing account at a provider, which pays the agent outside."""


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in UTC: from its first day 00:00 UTC (inclusive) to the next
    month's first day 00:00 UTC (exclusive)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: object) -> Month:
        """``YYYY-MM``; else :class:`Refused` ``month_invalid``."""
        found = MONTH_PATTERN.fullmatch(text) if isinstance(text, str) else None
        if found is None or not 1 <= int(found[2]) <= 12:
            raise Refused("month_invalid", "a month is YYYY-MM, e.g. 2026-11")
        if not YEAR_MIN <= int(found[1]) <= YEAR_MAX:
            raise Refused("month_invalid", f"a month's year is {YEAR_MIN}..{YEAR_MAX}")
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, moment: datetime) -> Month:
        """The UTC month ``moment`` falls in."""
        utc = moment.astimezone(UTC)
        return cls(utc.year, utc.month)

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the month."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CommissionPayout:
    """One month's commission payout in one currency; amounts in its minor units."""

    id: uuid.UUID
    month: str
    """``YYYY-MM``, UTC."""
    currency: str
    destination: Destination
    provider: str | None
    """The provider whose clearing account was credited (``destination`` provider)."""
    lines_count: int
    total_minor: int
    made_by: uuid.UUID | None
    """The operator principal who asked for it (``None``: the command line)."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """What one payout paid one agent (minor units of ``currency``)."""

    id: uuid.UUID
    payout_id: uuid.UUID
    month: str
    agent_id: uuid.UUID
    currency: str
    commission_account_id: uuid.UUID
    destination_account_id: uuid.UUID
    earned_minor: int
    """Commission credited in the month, less what was taken back in it (not payouts)."""
    amount_minor: int
    """What was paid: ``earned_minor``, or less when the account held less."""
    transfer_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Earning:
    """An agent's commission movements in a period (minor units)."""

    agent_id: uuid.UUID
    commission_account_id: uuid.UUID
    credited_minor: int
    taken_back_minor: int
    """Debits of the commission account in the period that are not payouts."""

    @property
    def earned_minor(self) -> int:
        return self.credited_minor - self.taken_back_minor


@dataclass(frozen=True, slots=True)
class AgentCommission:
    """What an agent sees of its commission (minor units of ``currency``)."""

    agent_id: uuid.UUID
    currency: str
    month: str
    """The current month (UTC)."""
    earned_this_month_minor: int
    unpaid_minor: int
    """The commission account's available balance: earned and not yet paid out."""
    paid: tuple[PayoutLine, ...]
    """Paid months, newest first, at most :data:`PAID_MONTHS_SHOWN`."""


def payout_id_of(month: str, currency: str) -> uuid.UUID:
    """The id of a month's payout in a currency: one per (month, currency)."""
    return uuid.uuid5(COMMISSION_NAMESPACE, f"commission-payout:{month}:{currency}")


def line_id_of(payout_id: uuid.UUID, agent_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(COMMISSION_NAMESPACE, f"commission-line:{payout_id}:{agent_id}")


def transfer_id_of(line_id: uuid.UUID) -> uuid.UUID:
    """The core transfer of a line: the same on every replay, so nothing moves twice."""
    return uuid.uuid5(line_id, "commission:pay")
