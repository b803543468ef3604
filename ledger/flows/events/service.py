"""The events flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.events`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import uuid
from typing import Any

from ledger.core.errors import MalformedRequest
from ledger.core.tx import Tx
from ledger.flows.events import repository
from ledger.flows.events.repository import Event
from ledger.limits import LIST_PAGE_SIZE_MAX as EVENTS_PAGE_MAX

ORDER_PAID = "order.paid"
ORDER_DISPATCHED = "order.dispatched"
ORDER_DELIVERED = "order.delivered"
ORDER_RELEASED = "order.released"
ORDER_DISPUTED = "order.disputed"
ORDER_CANCELLED = "order.cancelled"
ORDER_REFUNDED = "order.refunded"
ORDER_EXTENDED = "order.extended"
ORDER_DISPUTE_RESOLVED = "order.dispute_resolved"
ORDER_DISPATCH_EXPIRY_REFUSED = "order.dispatch_expiry_refused"
"""The sweeper could not cancel and refund an order past its dispatch deadline (once per
order and refusal code; the order stays paid and due)."""
WALLET_RECEIPT = "wallet.receipt"
"""A movement of a villager's wallet, addressed to the villager (:mod:`ledger.flows.wallets`)."""
CASHIN_COMPLETED = "cashin.completed"
CASHOUT_RESERVED = "cashout.reserved"
CASHOUT_COMPLETED = "cashout.completed"
CASHOUT_CANCELLED = "cashout.cancelled"
FLOAT_TOPPED_UP = "float.topped_up"
FLOAT_TRANSFERRED = "float.transferred"
FLOAT_LOW = "float.low"
PAYOUT_CREATED = "payout.created"
PAYOUT_CONFIRMED = "payout.confirmed"
PAYOUT_FAILED = "payout.failed"
SUSPENSE_PARKED = "suspense.parked"
SUSPENSE_REASSIGNED = "suspense.reassigned"
OFFLINE_SYNCED = "offline.synced"
OFFLINE_EXCEPTION = "offline.exception"
CASHOUT_EXPIRED = "cashout.expired"
KYC_TIER_CHANGED = "kyc.tier_changed"
KYC_TIER_LIMITS_CHANGED = "kyc.tier_limits_changed"
"""A tier's limits in a currency were added or changed (before and after, minor units)."""
FLOAT_GUARANTEE_CAP_CHANGED = "float.guarantee_cap_changed"
"""An operator set or removed an agent's guarantee cap (before and after, minor units)."""
WINDOW_OPENED = "window.opened"
WINDOW_CLOSED = "window.closed"
WINDOW_SETTLED = "window.settled"
COMMISSION_PAID = "commission.paid"
"""A month's commission paid to one agent (:mod:`ledger.flows.commission`)."""
COMMISSION_PAYOUT_MADE = "commission_payout.made"
"""A month's commission payout in one currency, with its count and total."""
SUSPENSE_RETURNED = "suspense.returned"
CHECKPOINT_SEALED = "checkpoint.sealed"
VILLAGER_REGISTERED = "villager.registered"
VILLAGER_ACTIVATION_CODE = "villager.activation_code"
VILLAGER_ACTIVATION_FAILED = "villager.activation_failed"
VILLAGER_ACTIVATED = "villager.activated"
VILLAGER_PIN_VERIFIED = "villager.pin_verified"
VILLAGER_PIN_FAILED = "villager.pin_failed"
VILLAGER_PIN_LOCKED = "villager.pin_locked"
VILLAGER_PIN_CHANGED = "villager.pin_changed"
VILLAGER_UNLOCKED = "villager.unlocked"
VILLAGER_RESET = "villager.reset"
VILLAGER_PHONE_CHANGED = "villager.phone_changed"


def emit(
    tx: Tx,
    event_type: str,
    payload: dict[str, Any],
    *,
    party_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Write one event into the outbox of ``tx``; its id."""
    event_id = uuid.uuid4()
    repository.insert(
        tx,
        event_id=event_id,
        event_type=event_type,
        payload=payload,
        party_id=party_id,
        subject_id=subject_id,
    )
    return event_id


def read_events(
    tx: Tx,
    *,
    after_seq: int = 0,
    limit: int = 100,
    party_id: uuid.UUID | None = None,
    subject_id: uuid.UUID | None = None,
) -> list[Event]:
    """Events after ``after_seq`` in order, optionally of one party or subject;
    :class:`~ledger.core.errors.MalformedRequest` (a ``ValueError``) for a ``limit``
    outside 1..:data:`EVENTS_PAGE_MAX`."""
    if not 1 <= limit <= EVENTS_PAGE_MAX:
        raise MalformedRequest(f"limit must be 1..{EVENTS_PAGE_MAX}")
    return repository.select_after(
        tx, after_seq=after_seq, limit=limit, party_id=party_id, subject_id=subject_id
    )
