"""Cash at the counter as the flows answer it: transfer codes, the cash-out's timeouts and
minimums, its states, and the frozen rows (amounts in minor units of the row's currency)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledger.core import currency as iso4217

__all__ = [
    "CASH_IN_CODE",
    "CASH_OUT_CODE",
    "CASH_OUT_MINIMUM_MINOR",
    "CASH_OUT_TIMEOUT_MAX_S",
    "CASH_OUT_TIMEOUT_MIN_S",
    "CASH_OUT_TIMEOUT_S",
    "CASH_PAID_CODE",
    "CASH_RECEIVED_CODE",
    "CashIn",
    "CashOut",
    "CashOutMode",
    "CashOutState",
    "minimum_cash_out_minor",
]

CASH_IN_CODE = 701
"""Core transfer ``code``: the agent's float pays a villager's wallet (cash-in)."""
CASH_RECEIVED_CODE = 702
"""The agent's cash-on-hand grows by the cash a villager handed over."""
CASH_OUT_CODE = 703
"""The villager's wallet pays the agent's float (cash-out; its hold, post and void)."""
CASH_PAID_CODE = 704
"""The agent's cash-on-hand shrinks by the cash handed to a villager (its hold too)."""

CASH_OUT_TIMEOUT_S = 15 * 60
"""How long a requested cash-out waits for the agent's confirmation before it expires."""
CASH_OUT_TIMEOUT_MIN_S = 60
CASH_OUT_TIMEOUT_MAX_S = 24 * 3600

CASH_OUT_MINIMUM_MINOR: Mapping[str, int] = {"KES": 5_000, "UGX": 500, "TZS": 100_000}
"""The smallest cash-out per currency, minor units: KES 50.00, UGX 500, TZS 1,000.00.
Any other currency: one major unit (:func:`minimum_cash_out_minor`)."""


def minimum_cash_out_minor(currency: str) -> int:
    """The smallest cash-out in ``currency`` (minor units)."""
    return CASH_OUT_MINIMUM_MINOR.get(currency, 10 ** iso4217.minor_digits(currency))


class CashOutState(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class CashOutMode(StrEnum):
    TWO_PHASE = "two_phase"
    """Requested, held, then confirmed by the agent (or cancelled, or expired)."""
    ONE_SHOT = "one_shot"
    """Posted at once (an offline capture synced later)."""


@dataclass(frozen=True, slots=True)
class CashIn:
    """Cash a villager handed an agent for e-money (minor units of ``currency``)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    """The agent's phone that captured it offline, if it did."""
    currency: str
    amount_minor: int
    """Cash handed over, and e-money credited to the wallet."""
    fee_minor: int
    """Paid by the villager out of the wallet (0 unless the schedule charges one)."""
    commission_minor: int
    """What the agent earned (the platform's commission and the agent's share of the fee)."""
    fee_version: int | None
    """The ``cash_in`` schedule version that priced it (``None``: none in effect)."""
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CashOut:
    """E-money a villager turns into cash at an agent (minor units of ``currency``)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    device_id: uuid.UUID | None
    currency: str
    amount_minor: int
    """Cash the agent hands over."""
    fee_minor: int
    """Paid by the villager on top of the amount."""
    fee_version: int | None
    mode: CashOutMode
    state: CashOutState
    reason: str | None
    """Why it was cancelled."""
    created_at: datetime
    expires_at: datetime | None
    """When a requested cash-out expires (``None`` for a one-shot)."""
    resolved_at: datetime | None

    @property
    def total_minor(self) -> int:
        """What leaves the wallet: amount and fee."""
        return self.amount_minor + self.fee_minor
