"""The agent's float, as the flows answer it and as its tables store it: transfer codes
and frozen rows (amounts in minor units of the row's currency)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "FLOAT_TRANSFER_CODE",
    "TOP_UP_CODE",
    "FloatSettings",
    "FloatStatus",
    "FloatTopUp",
    "FloatTransfer",
]

TOP_UP_CODE = 711
"""Core transfer ``code``: a provider's clearing account pays an agent's float."""
FLOAT_TRANSFER_CODE = 712
"""Core transfer ``code``: one agent's float pays another's."""


@dataclass(frozen=True, slots=True)
class FloatSettings:
    """An agent's stored float settings (a row of ``agent_float``)."""

    agent_id: uuid.UUID
    low_threshold_minor: int | None
    """Below this float available the agent should top up (``None``: no alarm)."""
    low_armed: bool
    """Whether the next fall below the threshold emits ``float.low``."""
    guarantee_cap_minor: int | None
    """The most the float's posted balance may hold (``None``: no cap)."""


@dataclass(frozen=True, slots=True)
class FloatStatus:
    """An agent's float now, and its settings (minor units of ``currency``)."""

    agent_id: uuid.UUID
    currency: str
    balance_minor: int
    """Credits posted less debits posted."""
    held_minor: int
    """Debits pending: held for devices' offline allowances and the like."""
    available_minor: int
    """What the agent can spend now: balance less held."""
    low_threshold_minor: int | None
    low_armed: bool
    """Whether the next fall below the threshold emits ``float.low``."""
    guarantee_cap_minor: int | None


@dataclass(frozen=True, slots=True)
class FloatTopUp:
    """Cash an agent deposited with a provider, turned into float (minor units)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    provider: str
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FloatTransfer:
    """Float one agent paid another (minor units)."""

    id: uuid.UUID
    from_agent_id: uuid.UUID
    to_agent_id: uuid.UUID
    currency: str
    amount_minor: int
    transfer_id: uuid.UUID
    created_at: datetime
