"""Settlement's nouns: the states, the rows of a window and of a payout, and the ids
derived from them (the same on every replay)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SETTLEMENT_NAMESPACE = uuid.UUID("3e9a6c1d-7b2f-4d58-a1c4-9f0e2b7d6a53")
"""Derives payout ids from the window and the storefront."""

PAYOUT_CODE = 901
"""Core transfer ``code`` of a payout's hold, its post and its void."""


class WindowState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    SETTLED = "settled"


class PayoutState(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Window:
    """A settlement window; amounts in minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    state: WindowState
    provider: str | None
    """The provider the window's payouts went through (set when it closes)."""
    payouts_count: int
    payouts_total_minor: int
    opened_at: datetime
    closed_at: datetime | None
    settled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Payout:
    """What a closed window pays one storefront; amounts in minor units of ``currency``."""

    id: uuid.UUID
    window_id: uuid.UUID
    storefront_id: uuid.UUID
    currency: str
    provider: str
    proceeds_account_id: uuid.UUID
    clearing_account_id: uuid.UUID
    proceeds_before_minor: int
    """The storefront's available proceeds when the window closed."""
    amount_minor: int
    """The payout (all of ``proceeds_before_minor``)."""
    state: PayoutState
    hold_transfer_id: uuid.UUID
    resolve_transfer_id: uuid.UUID | None
    """The post (paid) or the void (failed) of the hold."""
    provider_reference: str | None
    failure_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


def payout_id_of(window_id: uuid.UUID, storefront_id: uuid.UUID) -> uuid.UUID:
    """The id of a window's payout to a storefront (the same on every replay)."""
    return uuid.uuid5(SETTLEMENT_NAMESPACE, f"payout:{window_id}:{storefront_id}")


def leg_id(payout_id: uuid.UUID, name: str) -> uuid.UUID:
    """The id of a payout's core transfer ``name``: ``hold``, ``post`` or ``void``."""
    return uuid.uuid5(payout_id, f"settlement:{name}")
