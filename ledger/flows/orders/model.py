"""The order's values: its states, the stored row and the order callers see, the delivery
methods' terms, and the codes and limits of the flow. No I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ledger.core.store import from_us
from ledger.core.values import Transfer
from ledger.limits import US_PER_S

ORDER_NAMESPACE = uuid.UUID("8c4f2a1e-5b7d-4e6a-9f3c-1d2e3f4a5b6c")
"""Derives the create step's id from the order id, and sweeper step ids."""

PAYMENT_CODE = 601
"""Core transfer ``code``: the payer's money into escrow."""
CASH_RECEIVED_CODE = 602
"""The agent's cash-on-hand grows by cash a villager paid an order with."""
RELEASE_CODE = 603
"""Escrow to the seller's proceeds."""
REFUND_CODE = 604
"""Escrow back to the payer (wallet, or the agent's float for a cash payer)."""
CASH_RETURNED_CODE = 605
"""The agent's cash-on-hand shrinks by cash handed back to a villager."""
REVERSAL_CODE = 606
"""A release leg given back to escrow by a refund after release."""

PARTIAL_DELIVERIES_MAX = 50
"""Partial deliveries per order (bounds the batch a refund after release reverses)."""
EXTENSIONS_MAX = 5
"""Explicit extensions of one order's auto-release timer."""
EXTENSION_DAYS_MAX = 30
"""Days one extension may add."""
AUTO_RELEASE_DAYS_MAX = 60
REFUND_WINDOW_DAYS_MAX = 90
"""A refund window may be 0 days (no refund after release) up to this."""
DISPATCH_DEADLINE_HOURS_MAX = 720
"""30 days: the longest a paid order may wait for dispatch (at least 1 hour)."""
REFERENCE_DIGITS = 6
"""The hex digits of an order's reference (:func:`order_reference`): the first ones of its id."""

HOUR_US = 3_600 * US_PER_S
DAY_US = 24 * HOUR_US

DISPATCH_EXPIRED = "dispatch_expired"
"""The ``reason`` of an ``order.cancelled`` event the sweeper wrote for a paid order not
dispatched by its deadline."""

DELIVERY_METHODS: tuple[str, ...] = ("courier", "pickup_point", "agent_delivery")
"""The delivery methods (the API's names); their figures are rows of ``delivery_methods``,
seeded by migration 0017 (courier 7 / 14 days / 72 h, pickup_point 5 / 14 / 72 h,
agent_delivery 3 / 7 / 48 h) and changed by :func:`set_delivery_method`."""


def order_reference(order_id: uuid.UUID | str) -> str:
    """The short reference a villager reads (USSD screens, SMS) and types to reach her
    order: the order id's first :data:`REFERENCE_DIGITS` hex digits, upper case
    (``3FA2C9``). A ``str`` must be an order id (``ValueError`` otherwise)."""
    return uuid.UUID(str(order_id)).hex[:REFERENCE_DIGITS].upper()


@dataclass(frozen=True, slots=True)
class DeliveryMethod:
    """How long an order of this delivery method waits (a row of ``delivery_methods``)."""

    name: str
    auto_release_days: int
    """Days from dispatch until an undisputed order releases by itself (1..60)."""
    refund_window_days: int
    """Days after its (last) release during which an order can still be refunded (0..90)."""
    dispatch_deadline_hours: int
    """Hours from payment by which a paid order must be dispatched, else the sweeper
    cancels and refunds it (1..720)."""


class State(StrEnum):
    CREATED = "created"
    PAID = "paid"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    RELEASED = "released"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"
    REFUNDED = "refunded"


HOLDING = frozenset({State.PAID, State.DISPATCHED, State.DELIVERED})
"""The states in which an order holds money in escrow and may be refunded or disputed."""


class Source(StrEnum):
    """Where the money of a paid order came from."""

    WALLET = "wallet"
    CASH = "cash"


class Decision(StrEnum):
    """How a dispute ends."""

    REFUND = "refund"
    """For the villager: what is left in escrow goes back to the payer."""
    RELEASE = "release"
    """For the storefront: what is left in escrow is released."""
    RESUME = "resume"
    """Withdrawn: the order goes back to where it was, its timer runs again."""


class Step(StrEnum):
    """The kinds of step an order's history (``order_steps``) records."""

    CREATE = "create"
    PAY = "pay"
    DISPATCH = "dispatch"
    DELIVER = "deliver"
    RELEASE = "release"
    AUTO_RELEASE = "auto_release"
    DISPUTE = "dispute"
    RESOLVE = "resolve"
    EXTEND = "extend"
    CANCEL = "cancel"
    REFUND = "refund"


class Group(StrEnum):
    """What a leg of an order's transfer batch is for (kept in the step's history)."""

    PAYMENT = "payment"
    RELEASE = "release"
    REFUND = "refund"
    REVERSAL = "reversal"


@dataclass(frozen=True, slots=True)
class Leg:
    """One transfer of an order's batch, and what it is for."""

    group: Group
    transfer: Transfer


@dataclass(frozen=True, slots=True)
class ReleasedLeg:
    """A release leg an earlier step made (read back from the history), to reverse."""

    transfer_id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Order:
    """An order and its money, in minor units of ``currency``."""

    id: uuid.UUID
    storefront_id: uuid.UUID
    villager_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    currency: str
    amount_minor: int
    delivery_method: str
    state: State
    payment_source: Source | None
    paid_minor: int
    """Paid into escrow (0 or the order's amount)."""
    released_minor: int
    """Released from escrow to the seller and the fee legs, net of reversals."""
    refunded_minor: int
    """Refunded from escrow to the payer (reversed releases included)."""
    reversed_minor: int
    """Released money a refund after release brought back into escrow."""
    deliveries: int
    """Partial deliveries so far."""
    extensions: int
    disputed_from: State | None
    auto_release_at: datetime | None
    """When the order releases by itself (``None``: no timer running)."""
    timer_remaining_us: int | None
    """While disputed: what the paused timer had left, in microseconds."""
    refund_until: datetime | None
    """After a release: the end of the window for a refund after release."""
    created_at: datetime
    updated_at: datetime
    dispatched_at: datetime | None
    released_at: datetime | None
    dispatch_deadline_at: datetime | None = None
    """Paid: the moment by which it must be dispatched (inclusive); past it, still paid,
    the sweeper cancels and refunds it. ``None`` for an order paid before the deadlines
    existed."""

    @property
    def escrow_minor(self) -> int:
        """What the order holds in the storefront's escrow now."""
        return self.paid_minor - self.released_minor - self.refunded_minor


def _time(value_us: int | None) -> datetime | None:
    return None if value_us is None else from_us(value_us)


@dataclass(frozen=True, slots=True)
class OrderRow:
    """A row of ``orders`` as stored: moments in UTC microseconds, amounts in minor units
    of ``currency``. Frozen: an operation makes a changed copy
    (:func:`dataclasses.replace`) and the repository saves it."""

    id: uuid.UUID
    storefront_id: uuid.UUID
    villager_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    currency: str
    amount_minor: int
    delivery_method: str
    state: State
    payment_source: Source | None
    payment_transfer_id: uuid.UUID | None
    """The payment's first leg: what a refund names as the transfer it reverses."""
    paid_minor: int
    released_minor: int
    refunded_minor: int
    reversed_minor: int
    deliveries: int
    extensions: int
    disputed_from: State | None
    auto_release_at_us: int | None
    timer_remaining_us: int | None
    refund_until_us: int | None
    created_at_us: int
    updated_at_us: int
    dispatched_at_us: int | None
    released_at_us: int | None
    dispatch_deadline_at_us: int | None

    @property
    def escrow_minor(self) -> int:
        """What the order holds in the storefront's escrow now."""
        return self.paid_minor - self.released_minor - self.refunded_minor

    def order(self) -> Order:
        """The order as callers see it."""
        return Order(
            id=self.id,
            storefront_id=self.storefront_id,
            villager_id=self.villager_id,
            agent_id=self.agent_id,
            currency=self.currency,
            amount_minor=self.amount_minor,
            delivery_method=self.delivery_method,
            state=self.state,
            payment_source=self.payment_source,
            paid_minor=self.paid_minor,
            released_minor=self.released_minor,
            refunded_minor=self.refunded_minor,
            reversed_minor=self.reversed_minor,
            deliveries=self.deliveries,
            extensions=self.extensions,
            disputed_from=self.disputed_from,
            auto_release_at=_time(self.auto_release_at_us),
            timer_remaining_us=self.timer_remaining_us,
            refund_until=_time(self.refund_until_us),
            created_at=from_us(self.created_at_us),
            updated_at=from_us(self.updated_at_us),
            dispatched_at=_time(self.dispatched_at_us),
            released_at=_time(self.released_at_us),
            dispatch_deadline_at=_time(self.dispatch_deadline_at_us),
        )


def new_order_row(
    *,
    order_id: uuid.UUID,
    storefront_id: uuid.UUID,
    villager_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
    currency: str,
    amount_minor: int,
    delivery_method: str,
    now_us: int,
) -> OrderRow:
    """A created order: nothing paid, no timer."""
    return OrderRow(
        id=order_id,
        storefront_id=storefront_id,
        villager_id=villager_id,
        agent_id=agent_id,
        currency=currency,
        amount_minor=amount_minor,
        delivery_method=delivery_method,
        state=State.CREATED,
        payment_source=None,
        payment_transfer_id=None,
        paid_minor=0,
        released_minor=0,
        refunded_minor=0,
        reversed_minor=0,
        deliveries=0,
        extensions=0,
        disputed_from=None,
        auto_release_at_us=None,
        timer_remaining_us=None,
        refund_until_us=None,
        created_at_us=now_us,
        updated_at_us=now_us,
        dispatched_at_us=None,
        released_at_us=None,
        dispatch_deadline_at_us=None,
    )
