"""Order escrow: a storefront order is paid into the storefront's escrow and released to
the seller when the goods arrive, or refunded to whoever paid.

States and the operations that move between them:

==================================  ==================================================
from                                operation -> to
==================================  ==================================================
created                             pay -> paid; cancel -> cancelled
paid                                dispatch -> dispatched; cancel -> cancelled;
                                    refund (all) -> refunded; dispute -> disputed
dispatched                          deliver (all) -> delivered; deliver (a part: that
                                    part is released) -> dispatched; release (the
                                    villager confirms early) or the timer -> released;
                                    refund (all) -> refunded; dispute -> disputed
delivered                           release or the timer -> released; refund (all) ->
                                    refunded; dispute -> disputed
disputed                            resolve: refund -> refunded, release -> released,
                                    resume -> the state it came from, timer resumed
released                            refund after release, within the window -> refunded
==================================  ==================================================

A partial refund keeps the state; a refund of all that is left in escrow of an order
that released a part before ends ``released`` (the released part stays refundable).

Money (one linked batch per operation, all or nothing):

- **pay** from the villager's wallet: wallet -> storefront escrow, only with the
  villager's consent (:mod:`ledger.flows.consent`: the pay code the villager made for
  this order and amount, or the PIN: :func:`pay_order_by_pin`); without it
  ``consent_required`` and nothing is held. **Pay in cash** at the
  agent: the agent's float -> escrow, and the agent's cash-on-hand grows (agent ``cash``
  debit / ``cash_control`` credit) by the cash the villager handed over.
- **hand-over** at a station (``pickup_point``, ``agent_delivery``): dispatch sends the
  villager a pickup code, and the delivery step needs it (:mod:`ledger.flows.pickup`).
- **release** (of all that is left in escrow, or of a delivered part): escrow -> seller
  proceeds, and out of the same escrow the fee legs of :func:`ledger.flows.fees.quote`
  for product ``order`` priced on the released amount (platform fee income, tax, rounding,
  and the agent's commission when an agent assisted; without one, the agent's share is
  platform income, as :func:`~ledger.flows.fees.fee_transfers` rules). So the seller gets
  ``released - fee`` and the legs add up to the amount released exactly. A release whose
  fee would exceed it is refused (``fee_exceeds_release``).
- **refund** out of escrow back to the payer (each refund transfer names the payment it
  reverses): to the wallet; or, for a cash payer, to the agent's float while the agent's
  cash-on-hand shrinks (``cash_control`` debit / ``cash`` credit): the agent hands the cash
  back and is made whole in float, so a refund needs the agent to hold the cash
  (``agent_cash_short`` otherwise).
- **refund after release** (``after_release=True``, until ``refund_until``: the refund
  window of the delivery method after the last release) reverses every leg of every
  release of the order back into escrow (each reversal names the leg it reverses: the
  seller's proceeds, fee income, tax, rounding and the agent's commission all give back
  what they got), then refunds the payer in full as above. If one of those accounts no
  longer holds it (the proceeds were paid out, the agent spent the commission), the whole
  refund is refused and nothing moves (``proceeds_short``, ``agent_commission_short`` ...).

Timers live in the database in UTC microseconds, their lengths in the ``delivery_methods``
table (one row per method, :func:`delivery_method_in`; an operator changes them with
:func:`set_delivery_method`): ``pay`` sets ``dispatch_deadline_at = now + H hours`` (a
dispatch after it is refused ``dispatch_deadline_passed``); ``dispatch`` sets
``auto_release_at = now + N days``; ``extend_auto_release`` pushes it; a dispute pauses it
(the time left is kept) and a dispute withdrawn resumes it. :func:`sweep_orders`, each order
in its own transaction, cancels and refunds every paid order not dispatched by its deadline
(``order.cancelled`` with ``reason`` ``dispatch_expired``; a dispute does not stop that
clock: a paid order whose dispute is withdrawn after its deadline is cancelled by the next
sweep), and releases every dispatched or delivered order whose timer has passed.

Refunds into a wallet are credits like any other: the villager's KYC maximum balance
holds (:mod:`ledger.flows.wallets`). A refund, cancellation or dispute refund that would
take the wallet above it is refused with ``limit_exceeded_balance`` and nothing moves:
the order stays as it was (paid, dispatched, delivered, disputed or released) and stays
refundable: the same request succeeds once the wallet has room (the villager spent or
cashed out, or an operator moved them up a tier). The API answers the refusal as 422
``limit_exceeded_balance``. The sweeper meeting such a refusal notes it
(``order.dispatch_expiry_refused``, once per order and code) and goes on with the next
order. Every movement of a wallet writes a ``wallet.receipt`` event to the villager.

Every operation locks the order row first (``FOR UPDATE`` on PostgreSQL), so two racing
operations on one order run one after the other and the second sees the first's state;
the escrow account's limit flag (never below zero) is the database's second guard.
Every operation is idempotent by a client step id (the create by the order id): a replay
with the same request answers the order as that step left it and changes nothing; the
same id with another request is a :class:`~ledger.flows.errors.Conflict`.

Amounts are integer minor units of the storefront's currency; events (``order.*``) go to
the outbox in the same transaction with ``party_id`` = the storefront.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import agent_float, events, fees, parties, pickup, wallets
from ledger.flows import consent as consent_flow
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role

__all__ = [
    "AMOUNT_MAX_MINOR",
    "AUTO_RELEASE_DAYS_MAX",
    "DELIVERY_METHODS",
    "DISPATCH_DEADLINE_HOURS_MAX",
    "DISPATCH_EXPIRED",
    "EXTENSIONS_MAX",
    "EXTENSION_DAYS_MAX",
    "ORDERS_PAGE_MAX",
    "PARTIAL_DELIVERIES_MAX",
    "REFUND_WINDOW_DAYS_MAX",
    "SWEEP_RETRY_INTERVAL_US",
    "Decision",
    "DeliveryMethod",
    "Order",
    "Source",
    "State",
    "cancel_order",
    "cancel_order_in",
    "create_order",
    "create_order_in",
    "deliver_order",
    "delivery_method_in",
    "deliver_order_in",
    "dispatch_order",
    "dispatch_order_in",
    "dispute_order",
    "dispute_order_in",
    "extend_auto_release",
    "extend_auto_release_in",
    "get_delivery_methods",
    "get_order",
    "get_order_in",
    "list_orders",
    "pay_order",
    "pay_order_by_pin",
    "pay_order_in",
    "refund_order",
    "refund_order_in",
    "release_order",
    "release_order_in",
    "resolve_dispute",
    "resolve_dispute_in",
    "set_delivery_method",
    "sweep_orders",
]

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

AMOUNT_MAX_MINOR = 2**53 - 1
"""An order's amount, like every JSON amount, fits a double exactly."""
ORDERS_PAGE_MAX = 1000
PARTIAL_DELIVERIES_MAX = 50
"""Partial deliveries per order (bounds the batch a refund after release reverses)."""
EXTENSIONS_MAX = 5
"""Explicit extensions of one order's auto-release timer."""
EXTENSION_DAYS_MAX = 30
"""Days one extension may add."""
REASON_LENGTH_MAX = 500
SWEEP_LIMIT_MAX = 10_000

DAY_US = 86_400 * 1_000_000


HOUR_US = 3_600 * 1_000_000
AUTO_RELEASE_DAYS_MAX = 60
REFUND_WINDOW_DAYS_MAX = 90
"""A refund window may be 0 days (no refund after release) up to this."""
DISPATCH_DEADLINE_HOURS_MAX = 720
"""30 days: the longest a paid order may wait for dispatch (at least 1 hour)."""


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


DELIVERY_METHODS: tuple[str, ...] = ("courier", "pickup_point", "agent_delivery")
"""The delivery methods (the API's names); their figures are rows of ``delivery_methods``,
seeded by migration 0017 (courier 7 / 14 days / 72 h, pickup_point 5 / 14 / 72 h,
agent_delivery 3 / 7 / 48 h) and changed by :func:`set_delivery_method`."""

_METHOD_COLUMNS = "name, auto_release_days, refund_window_days, dispatch_deadline_hours"


def delivery_method_in(tx: Tx, name: object) -> DeliveryMethod:
    """The terms of delivery method ``name`` as they are now; :class:`Refused`
    ``delivery_method_invalid`` for a name that is none."""
    row = (
        tx.one(f"SELECT {_METHOD_COLUMNS} FROM delivery_methods WHERE name = :n", {"n": name})
        if isinstance(name, str)
        else None
    )
    if row is None:
        raise Refused(
            "delivery_method_invalid", f"a delivery method is one of {sorted(DELIVERY_METHODS)}"
        )
    return DeliveryMethod(*row)


def get_delivery_methods(led: Ledger) -> list[DeliveryMethod]:
    """Every delivery method's terms, by name."""
    rows = led.transact(
        lambda tx: tx.execute(f"SELECT {_METHOD_COLUMNS} FROM delivery_methods ORDER BY name")
    )
    return [DeliveryMethod(*row) for row in rows]


def _check_term(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Refused("delivery_terms_invalid", f"{name} must be an integer in {low}..{high}")
    return value


def set_delivery_method(
    led: Ledger,
    *,
    name: str,
    auto_release_days: int,
    refund_window_days: int,
    dispatch_deadline_hours: int,
) -> DeliveryMethod:
    """Change a delivery method's terms (an operator's act). They apply to what happens
    from now on: a dispatch starts the new auto-release timer, a release the new refund
    window, a payment the new dispatch deadline; timers already running keep theirs."""
    values = {
        "auto": _check_term(auto_release_days, "auto_release_days", 1, AUTO_RELEASE_DAYS_MAX),
        "window": _check_term(refund_window_days, "refund_window_days", 0, REFUND_WINDOW_DAYS_MAX),
        "deadline": _check_term(
            dispatch_deadline_hours, "dispatch_deadline_hours", 1, DISPATCH_DEADLINE_HOURS_MAX
        ),
    }

    def work(tx: Tx) -> DeliveryMethod:
        delivery_method_in(tx, name)  # only a known method is changed
        tx.execute(
            "UPDATE delivery_methods SET auto_release_days = :auto, refund_window_days = :window,"
            " dispatch_deadline_hours = :deadline, updated_at_us = :now WHERE name = :name",
            {**values, "now": tx.now_us, "name": name},
        )
        return delivery_method_in(tx, name)

    return led.transact(work)


class State(StrEnum):
    CREATED = "created"
    PAID = "paid"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    RELEASED = "released"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"
    REFUNDED = "refunded"


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


class _Step(StrEnum):
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


# -- the row ------------------------------------------------------------------------------

_COLUMNS = (
    "id",
    "storefront_id",
    "villager_id",
    "agent_id",
    "currency",
    "amount_minor",
    "delivery_method",
    "state",
    "payment_source",
    "payment_transfer_id",
    "paid_minor",
    "released_minor",
    "refunded_minor",
    "reversed_minor",
    "deliveries",
    "extensions",
    "disputed_from",
    "auto_release_at_us",
    "timer_remaining_us",
    "refund_until_us",
    "created_at_us",
    "updated_at_us",
    "dispatched_at_us",
    "released_at_us",
    "dispatch_deadline_at_us",
)
_UUID_COLUMNS = frozenset({"id", "storefront_id", "villager_id", "agent_id", "payment_transfer_id"})
_FIXED = frozenset(
    {"id", "storefront_id", "villager_id", "currency", "amount_minor", "delivery_method"}
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM orders"

Rec = dict[str, Any]
"""An order row by column name, as the flow reads and updates it."""


def _rec(row: Row) -> Rec:
    return dict(zip(_COLUMNS, row, strict=True))


def _time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def _order(rec: Rec) -> Order:
    return Order(
        id=rec["id"],
        storefront_id=rec["storefront_id"],
        villager_id=rec["villager_id"],
        agent_id=rec["agent_id"],
        currency=rec["currency"],
        amount_minor=rec["amount_minor"],
        delivery_method=rec["delivery_method"],
        state=State(rec["state"]),
        payment_source=None if rec["payment_source"] is None else Source(rec["payment_source"]),
        paid_minor=rec["paid_minor"],
        released_minor=rec["released_minor"],
        refunded_minor=rec["refunded_minor"],
        reversed_minor=rec["reversed_minor"],
        deliveries=rec["deliveries"],
        extensions=rec["extensions"],
        disputed_from=None if rec["disputed_from"] is None else State(rec["disputed_from"]),
        auto_release_at=_time(rec["auto_release_at_us"]),
        timer_remaining_us=rec["timer_remaining_us"],
        refund_until=_time(rec["refund_until_us"]),
        created_at=from_us(rec["created_at_us"]),
        updated_at=from_us(rec["updated_at_us"]),
        dispatched_at=_time(rec["dispatched_at_us"]),
        released_at=_time(rec["released_at_us"]),
        dispatch_deadline_at=_time(rec["dispatch_deadline_at_us"]),
    )


def _snapshot(rec: Rec) -> str:
    return json.dumps(
        {k: (str(v) if k in _UUID_COLUMNS and v is not None else v) for k, v in rec.items()},
        sort_keys=True,
        separators=(",", ":"),
    )


def _from_snapshot(text: str) -> Order:
    raw = json.loads(text)
    return _order(
        {
            # .get: a step recorded before a column existed answers it as None
            k: (uuid.UUID(raw[k]) if k in _UUID_COLUMNS and raw[k] is not None else raw.get(k))
            for k in _COLUMNS
        }
    )


def _read(tx: Tx, order_id: uuid.UUID, *, lock: bool) -> Rec | None:
    row = tx.one(f"{_SELECT} WHERE id = :id{tx.for_update if lock else ''}", {"id": order_id})
    return None if row is None else _rec(row)


def _save(tx: Tx, rec: Rec) -> None:
    changing = [c for c in _COLUMNS if c not in _FIXED]
    tx.execute(
        f"UPDATE orders SET {', '.join(f'{c} = :{c}' for c in changing)} WHERE id = :id",
        {c: rec[c] for c in (*changing, "id")},
    )


# -- checks -------------------------------------------------------------------------------


def _check_id(value: object, name: str) -> uuid.UUID:
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID")
    return value


def _check_amount(value: object, name: str = "amount_minor") -> int:
    if type(value) is not int or not 1 <= value <= AMOUNT_MAX_MINOR:
        raise Refused("amount_invalid", f"{name} must be an integer in 1..{AMOUNT_MAX_MINOR}")
    return value


def _wrong_state(code: str, rec: Rec, wanted: str) -> Refused:
    return Refused(code, f"order {rec['id']} is {rec['state']}; {wanted}")


# -- steps: idempotency, the lock, the history ----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Leg:
    group: str
    """``payment``, ``release``, ``refund`` or ``reversal``."""
    transfer: Transfer


def _request_text(kind: _Step, order_id: uuid.UUID, params: Mapping[str, Any]) -> str:
    body = {"kind": kind.value, "order_id": str(order_id)}
    body.update({k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in params.items()})
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def _replay(tx: Tx, step_id: uuid.UUID, request: str) -> Order | None:
    row = tx.one("SELECT request, result FROM order_steps WHERE id = :id", {"id": step_id})
    if row is None:
        return None
    if row[0] != request:
        raise Conflict("step_id_reused", f"step {step_id} was used for another request")
    return _from_snapshot(row[1])


def _record(
    tx: Tx, step_id: uuid.UUID, kind: _Step, rec: Rec, request: str, legs: list[_Leg]
) -> None:
    legs_text = json.dumps(
        [
            [
                leg.group,
                str(leg.transfer.id),
                str(leg.transfer.debit_account_id),
                str(leg.transfer.credit_account_id),
                leg.transfer.amount,
            ]
            for leg in legs
        ],
        separators=(",", ":"),
    )
    tx.execute(
        "INSERT INTO order_steps (id, order_id, kind, request, legs, result, created_at_us)"
        " VALUES (:id, :order_id, :kind, :request, :legs, :result, :now)",
        {
            "id": step_id,
            "order_id": rec["id"],
            "kind": kind.value,
            "request": request,
            "legs": legs_text,
            "result": _snapshot(rec),
            "now": tx.now_us,
        },
    )


Apply = Callable[[Tx, Rec], list[_Leg]]


def _run(
    tx: Tx,
    *,
    kind: _Step,
    step_id: object,
    order_id: object,
    params: Mapping[str, Any],
    apply: Apply,
) -> Order:
    """Lock the order, answer a replay from history, else apply the step and record it."""
    step_id = _check_id(step_id, "step_id")
    order_id = _check_id(order_id, "order_id")
    rec = _read(tx, order_id, lock=True)
    request = _request_text(kind, order_id, params)
    replayed = _replay(tx, step_id, request)
    if replayed is not None:
        return replayed
    if rec is None:
        raise NotFound("order_not_found", f"no order {order_id}")
    legs = apply(tx, rec)
    rec["updated_at_us"] = tx.now_us
    _save(tx, rec)
    _record(tx, step_id, kind, rec, request, legs)
    return _order(rec)


def _emit(tx: Tx, event_type: str, rec: Rec, **extra: Any) -> None:
    payload: dict[str, Any] = {
        "order_id": str(rec["id"]),
        "storefront_id": str(rec["storefront_id"]),
        "state": rec["state"],
        "currency": rec["currency"],
        "amount_minor": rec["amount_minor"],
        "paid_minor": rec["paid_minor"],
        "released_minor": rec["released_minor"],
        "refunded_minor": rec["refunded_minor"],
    }
    payload.update(extra)
    events.emit(tx, event_type, payload, party_id=rec["storefront_id"], subject_id=rec["id"])


# -- money --------------------------------------------------------------------------------


def _leg_id(step_id: uuid.UUID, name: str) -> uuid.UUID:
    return uuid.uuid5(step_id, f"order:{name}")


def _submit(tx: Tx, legs: list[_Leg], short: Mapping[uuid.UUID, str]) -> list[_Leg]:
    """Create the legs as one linked batch; a refusal names the account that was short.
    A wallet the batch credits must stay within its KYC maximum (``limit_exceeded_balance``,
    everything rolls back) and every wallet it touches gets its receipts
    (:func:`ledger.flows.wallets.after_transfers_in`)."""
    if not legs:
        return legs
    batch = [
        dataclasses.replace(leg.transfer, flags=leg.transfer.flags | TransferFlags.LINKED)
        if i < len(legs) - 1
        else leg.transfer
        for i, leg in enumerate(legs)
    ]
    results = tx.create_transfers(batch)
    failed = [r for r in results if r.status is not Status.CREATED]
    if not failed:
        # the reference: the order its legs name (metadata ``order_id``)
        wallets.after_transfers_in(tx, batch, results)
        return legs
    cause = next((r for r in failed if r.status is not Status.LINKED_EVENT_FAILED), failed[0])
    transfer = batch[cause.index]
    if cause.status is Status.EXCEEDS_CREDITS and transfer.debit_account_id is not None:
        code = short.get(transfer.debit_account_id, "funds_short")
        raise Refused(code, f"{transfer.metadata} refused: {cause.status}")
    if cause.status is Status.EXCEEDS_DEBITS and transfer.credit_account_id is not None:
        code = short.get(transfer.credit_account_id, "funds_short")
        raise Refused(code, f"{transfer.metadata} refused: {cause.status}")
    raise InvariantViolation(f"order transfer {transfer.id} refused: {cause.status}")


def _transfer(
    step_id: uuid.UUID,
    name: str,
    rec: Rec,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    code: int,
    reverses_id: uuid.UUID | None = None,
) -> Transfer:
    return Transfer(
        id=_leg_id(step_id, name),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        currency=rec["currency"],
        code=code,
        reverses_id=reverses_id,
        metadata={"order_id": str(rec["id"]), "leg": name},
    )


def _escrow(rec: Rec) -> uuid.UUID:
    return parties.account_id(rec["storefront_id"], Role.ESCROW)


def _shortages(rec: Rec) -> dict[uuid.UUID, str]:
    """Which refusal code to answer when an account of this order is short."""
    short = {
        _escrow(rec): "escrow_short",
        parties.account_id(rec["storefront_id"], Role.PROCEEDS): "proceeds_short",
    }
    if rec["villager_id"] is not None:
        short[parties.account_id(rec["villager_id"], Role.WALLET)] = "wallet_short"
    if rec["agent_id"] is not None:
        agent = rec["agent_id"]
        short[parties.account_id(agent, Role.FLOAT)] = "float_short"
        short[parties.account_id(agent, Role.CASH)] = "agent_cash_short"
        short[parties.account_id(agent, Role.CASH_CONTROL)] = "agent_cash_short"
        short[parties.account_id(agent, Role.COMMISSION)] = "agent_commission_short"
    platform = parties.platform_id(rec["currency"])
    short[parties.account_id(platform, Role.FEE_INCOME)] = "fee_income_short"
    short[parties.account_id(platform, Role.TAX_PAYABLE)] = "tax_payable_short"
    short[parties.account_id(platform, Role.COMMISSION_EXPENSE)] = "commission_expense_short"
    return short


def _release(tx: Tx, rec: Rec, step_id: uuid.UUID, amount: int) -> list[_Leg]:
    """Release ``amount`` of the order's escrow: seller proceeds and the fee legs."""
    quote = fees.quote(tx, product="order", currency=rec["currency"], amount_minor=amount)
    if quote.fee_minor > amount:
        raise Refused(
            "fee_exceeds_release", f"a fee of {quote.fee_minor} exceeds the {amount} released"
        )
    escrow = _escrow(rec)
    proceeds = parties.account_id(rec["storefront_id"], Role.PROCEEDS)
    seller = amount - quote.fee_minor
    legs: list[_Leg] = []
    if seller > 0:
        legs.append(
            _Leg(
                "release",
                _transfer(step_id, "seller", rec, escrow, proceeds, seller, RELEASE_CODE),
            )
        )
    legs += [
        _Leg("release", t)
        for t in fees.fee_transfers(
            tx,
            quote,
            payer_account=escrow,
            agent_id=rec["agent_id"],
            currency=rec["currency"],
            id_base=_leg_id(step_id, "fees"),
        )
    ]
    _submit(tx, legs, _shortages(rec))
    rec["released_minor"] += amount
    rec["released_at_us"] = tx.now_us
    method = delivery_method_in(tx, rec["delivery_method"])
    rec["refund_until_us"] = tx.now_us + method.refund_window_days * DAY_US
    return legs


def _release_event(tx: Tx, rec: Rec, amount: int, legs: list[_Leg]) -> None:
    escrow = _escrow(rec)
    proceeds = parties.account_id(rec["storefront_id"], Role.PROCEEDS)
    seller = sum(
        leg.transfer.amount or 0 for leg in legs if leg.transfer.credit_account_id == proceeds
    )
    fee = sum(
        leg.transfer.amount or 0
        for leg in legs
        if leg.transfer.debit_account_id == escrow and leg.transfer.credit_account_id != proceeds
    )
    _emit(
        tx,
        events.ORDER_RELEASED,
        rec,
        released_now_minor=amount,
        seller_minor=seller,
        fee_minor=fee,
    )


def _refund_legs(rec: Rec, step_id: uuid.UUID, amount: int) -> list[_Leg]:
    """Escrow back to the payer: the wallet, or through the agent for cash."""
    escrow = _escrow(rec)
    paid_with = rec["payment_transfer_id"]
    if rec["payment_source"] == Source.WALLET:
        wallet = parties.account_id(rec["villager_id"], Role.WALLET)
        return [
            _Leg(
                "refund",
                _transfer(step_id, "refund", rec, escrow, wallet, amount, REFUND_CODE, paid_with),
            )
        ]
    agent = rec["agent_id"]
    return [
        _Leg(
            "refund",
            _transfer(
                step_id,
                "refund",
                rec,
                escrow,
                parties.account_id(agent, Role.FLOAT),
                amount,
                REFUND_CODE,
                paid_with,
            ),
        ),
        _Leg(
            "refund",
            _transfer(
                step_id,
                "cash_returned",
                rec,
                parties.account_id(agent, Role.CASH_CONTROL),
                parties.account_id(agent, Role.CASH),
                amount,
                CASH_RETURNED_CODE,
            ),
        ),
    ]


def _refund_from_escrow(tx: Tx, rec: Rec, step_id: uuid.UUID, amount: int) -> list[_Leg]:
    legs = _submit(tx, _refund_legs(rec, step_id, amount), _shortages(rec))
    rec["refunded_minor"] += amount
    if rec["payment_source"] == Source.CASH:
        agent_float.check_float_low(tx, rec["agent_id"])  # float back: re-arm the alarm
    return legs


def _release_legs_of(
    tx: Tx, order_id: uuid.UUID
) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]]:
    """Every release leg of the order so far: (transfer id, debit, credit, amount)."""
    found: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, int]] = []
    for (text,) in tx.execute(
        "SELECT legs FROM order_steps WHERE order_id = :id ORDER BY created_at_us, id",
        {"id": order_id},
    ):
        for group, leg_id, debit, credit, amount in json.loads(text):
            if group == "release":
                found.append((uuid.UUID(leg_id), uuid.UUID(debit), uuid.UUID(credit), amount))
    return found


# -- creating -----------------------------------------------------------------------------


def create_order(
    led: Ledger,
    *,
    order_id: uuid.UUID,
    storefront_id: uuid.UUID,
    currency: str,
    amount_minor: int,
    delivery_method: str,
    villager_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
) -> Order:
    """Record a storefront's order (no money moves yet); idempotent by ``order_id``."""
    return led.transact(
        lambda tx: create_order_in(
            tx,
            order_id=order_id,
            storefront_id=storefront_id,
            currency=currency,
            amount_minor=amount_minor,
            delivery_method=delivery_method,
            villager_id=villager_id,
            agent_id=agent_id,
        )
    )


def create_order_in(
    tx: Tx,
    *,
    order_id: uuid.UUID,
    storefront_id: uuid.UUID,
    currency: str,
    amount_minor: int,
    delivery_method: str,
    villager_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
) -> Order:
    """:func:`create_order` inside a transaction someone else opened."""
    order_id = _check_id(order_id, "order_id")
    _check_id(storefront_id, "storefront_id")
    for value, name in ((villager_id, "villager_id"), (agent_id, "agent_id")):
        if value is not None:
            _check_id(value, name)
    request = _request_text(
        _Step.CREATE,
        order_id,
        {
            "storefront_id": storefront_id,
            "currency": currency,
            "amount_minor": amount_minor,
            "delivery_method": delivery_method,
            "villager_id": villager_id,
            "agent_id": agent_id,
        },
    )
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"create:{order_id}")
    try:
        replayed = _replay(tx, step_id, request)
    except Conflict:
        raise Conflict("order_exists_different", f"order {order_id} exists, not as asked") from None
    if replayed is not None:
        return replayed
    _check_amount(amount_minor)
    delivery_method_in(tx, delivery_method)
    storefront = parties.get_party(tx, storefront_id, Kind.STOREFRONT)
    if storefront.currency != currency:
        raise Refused("currency_mismatch", f"the storefront takes {storefront.currency}")
    for party_id, kind in ((villager_id, Kind.VILLAGER), (agent_id, Kind.AGENT)):
        if party_id is not None and parties.get_party(tx, party_id, kind).currency != currency:
            raise Refused("currency_mismatch", f"{kind} {party_id} holds another currency")
    rec: Rec = dict.fromkeys(_COLUMNS)
    rec.update(
        id=order_id,
        storefront_id=storefront_id,
        villager_id=villager_id,
        agent_id=agent_id,
        currency=currency,
        amount_minor=amount_minor,
        delivery_method=delivery_method,
        state=State.CREATED.value,
        paid_minor=0,
        released_minor=0,
        refunded_minor=0,
        reversed_minor=0,
        deliveries=0,
        extensions=0,
        created_at_us=tx.now_us,
        updated_at_us=tx.now_us,
    )
    tx.execute(
        f"INSERT INTO orders ({', '.join(_COLUMNS)})"
        f" VALUES ({', '.join(f':{c}' for c in _COLUMNS)})",
        rec,
    )
    _record(tx, step_id, _Step.CREATE, rec, request, [])
    return _order(rec)


# -- paying -------------------------------------------------------------------------------


def pay_order(
    led: Ledger,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    source: Source,
    agent_id: uuid.UUID | None = None,
    consent_code: str | None = None,
    caller_id: uuid.UUID | None = None,
) -> Order:
    """Pay the order in full into the storefront's escrow, from the villager's wallet or
    in cash at the agent (``agent_id``, or the order's agent).

    A wallet payment needs the villager's consent: ``consent_code``, the pay code the
    villager made for this order and its exact amount, presented by ``caller_id`` (the
    storefront or agent sending the request; default: ``agent_id``, else the order's
    storefront). It is checked first in a transaction of its own (a wrong code is counted
    even though the payment is refused: ``consent_invalid``), then used once inside the
    payment's. Without it: ``consent_required``, and nothing is held. The villager paying
    with the PIN is :func:`pay_order_by_pin`. A cash payment needs no wallet consent."""
    if source == Source.WALLET and consent_code is not None:  # a bad source: pay_order_in
        given = _pay_code_consent(led, step_id, order_id, consent_code, caller_id or agent_id)
    else:
        given = None
    return led.transact(
        lambda tx: pay_order_in(
            tx,
            step_id=step_id,
            order_id=order_id,
            source=source,
            agent_id=agent_id,
            consent=given,
        )
    )


def pay_order_by_pin(
    led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID, villager_id: uuid.UUID, pin: str
) -> Order:
    """The villager pays the order from the wallet with the PIN (the USSD menu's "pay an
    order"): the PIN is checked in its own transaction (a wrong one is counted and moves
    nothing: ``pin_invalid``), then the payment runs as :func:`pay_order` with that
    consent. An order of another villager: ``consent_invalid``."""
    rec = _payable(led, step_id, order_id)
    given = None
    if rec is not None:
        given = consent_flow.by_pin(
            led,
            villager_id=villager_id,
            pin=pin,
            purpose=consent_flow.Purpose.PAYMENT,
            amount_minor=rec["amount_minor"],
            order_id=rec["id"],
        )
    return led.transact(
        lambda tx: pay_order_in(
            tx, step_id=step_id, order_id=order_id, source=Source.WALLET, consent=given
        )
    )


def _payable(led: Ledger, step_id: object, order_id: object) -> Rec | None:
    """The order, when a consent for paying it can matter: not for a replayed step, an
    order that is gone, not payable or names no villager (the payment step answers those)."""
    step_id, order_id = _check_id(step_id, "step_id"), _check_id(order_id, "order_id")

    def read(tx: Tx) -> Rec | None:
        rec = _read(tx, order_id, lock=False)
        if _step_recorded(tx, step_id) or rec is None:
            return None
        if rec["state"] != State.CREATED or rec["villager_id"] is None:
            return None
        return rec

    return led.transact(read)


def _pay_code_consent(
    led: Ledger,
    step_id: object,
    order_id: object,
    code: str,
    caller_id: uuid.UUID | None,
) -> consent_flow.Consent | None:
    rec = _payable(led, step_id, order_id)
    if rec is None:
        return None
    return consent_flow.check_code(
        led,
        caller_id=caller_id or rec["storefront_id"],
        villager_id=rec["villager_id"],
        code=code,
        purpose=consent_flow.Purpose.PAYMENT,
        amount_minor=rec["amount_minor"],
        order_id=rec["id"],
    )


def _wallet_legs(
    tx: Tx, rec: Rec, step_id: uuid.UUID, consent: consent_flow.Consent | None
) -> list[_Leg]:
    """The villager's wallet pays the order, with the villager's consent (used once)."""
    if rec["villager_id"] is None:
        raise Refused("villager_required", "a wallet payment needs the order's villager")
    amount: int = rec["amount_minor"]
    consent_flow.require_in(
        tx,
        consent,
        villager_id=rec["villager_id"],
        purpose=consent_flow.Purpose.PAYMENT,
        amount_minor=amount,
        order_id=rec["id"],
    )
    wallet = parties.account_id(rec["villager_id"], Role.WALLET)
    return [
        _Leg(
            "payment",
            _transfer(step_id, "payment", rec, wallet, _escrow(rec), amount, PAYMENT_CODE),
        )
    ]


def pay_order_in(
    tx: Tx,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    source: Source,
    agent_id: uuid.UUID | None = None,
    consent: consent_flow.Consent | None = None,
) -> Order:
    """:func:`pay_order` inside a transaction someone else opened; a wallet payment takes
    the villager's ``consent`` (:mod:`ledger.flows.consent`, purpose ``payment``, this
    order, its amount), which it uses."""
    try:
        source = Source(source)
    except ValueError:
        raise Refused("payment_source_invalid", "a payment source is wallet or cash") from None
    if agent_id is not None:
        _check_id(agent_id, "agent_id")

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] != State.CREATED:
            raise _wrong_state("order_not_payable", rec, "only a created order is paid")
        if agent_id is not None and rec["agent_id"] not in (None, agent_id):
            raise Refused("agent_mismatch", f"order {rec['id']} names another agent")
        if agent_id is not None and rec["agent_id"] is None:
            agent = parties.get_party(tx, agent_id, Kind.AGENT)
            if agent.currency != rec["currency"]:
                raise Refused("currency_mismatch", f"agent {agent_id} holds another currency")
            rec["agent_id"] = agent_id
        sid: uuid.UUID = step_id
        amount: int = rec["amount_minor"]
        escrow = _escrow(rec)
        if source is Source.WALLET:
            legs = _wallet_legs(tx, rec, sid, consent)
        else:
            if rec["agent_id"] is None:
                raise Refused("agent_required", "a cash payment is taken by an agent")
            agent = rec["agent_id"]
            legs = [
                _Leg(
                    "payment",
                    _transfer(
                        sid,
                        "payment",
                        rec,
                        parties.account_id(agent, Role.FLOAT),
                        escrow,
                        amount,
                        PAYMENT_CODE,
                    ),
                ),
                _Leg(
                    "payment",
                    _transfer(
                        sid,
                        "cash_received",
                        rec,
                        parties.account_id(agent, Role.CASH),
                        parties.account_id(agent, Role.CASH_CONTROL),
                        amount,
                        CASH_RECEIVED_CODE,
                    ),
                ),
            ]
        _submit(tx, legs, _shortages(rec))
        rec.update(
            state=State.PAID.value,
            payment_source=source.value,
            payment_transfer_id=legs[0].transfer.id,
            paid_minor=amount,
            dispatch_deadline_at_us=_dispatch_deadline_us(tx, rec),
        )
        _emit(tx, events.ORDER_PAID, rec, payment_source=source.value)
        if source is Source.CASH:
            agent_float.check_float_low(tx, rec["agent_id"])
        return legs

    return _run(
        tx,
        kind=_Step.PAY,
        step_id=step_id,
        order_id=order_id,
        params={"source": source.value, "agent_id": agent_id},
        apply=apply,
    )


# -- dispatch, delivery, release ------------------------------------------------------------


def dispatch_order(led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """The storefront sent the goods: the auto-release timer starts (N days, N by the
    order's delivery method). An order handed over at a station
    (:data:`ledger.flows.pickup.HANDOVER_METHODS`) that names a villager gets a pickup code,
    sent to the villager; dispatching such an order again (a new step id) sends a new code
    and voids the old one, the timer untouched (see :mod:`ledger.flows.pickup`). A paid
    order past its dispatch deadline (the sweeper has not cancelled it yet) is refused
    ``dispatch_deadline_passed``; at the deadline itself it is still in time."""
    return led.transact(lambda tx: dispatch_order_in(tx, step_id=step_id, order_id=order_id))


def _issue_pickup_code(tx: Tx, rec: Rec) -> None:
    pickup.issue_in(
        tx,
        order_id=rec["id"],
        villager_id=rec["villager_id"],
        storefront_id=rec["storefront_id"],
        valid_until_us=rec["auto_release_at_us"],
    )


def dispatch_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """:func:`dispatch_order` inside a transaction someone else opened."""

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        handover = pickup.needed(rec["delivery_method"], rec["villager_id"])
        if rec["state"] == State.DISPATCHED and handover:
            _issue_pickup_code(tx, rec)  # the storefront re-sends the villager's code
            return []
        if rec["state"] != State.PAID:
            raise _wrong_state("order_not_dispatchable", rec, "only a paid order is dispatched")
        _check_dispatch_in_time(tx, rec)
        days = delivery_method_in(tx, rec["delivery_method"]).auto_release_days
        rec.update(
            state=State.DISPATCHED.value,
            dispatched_at_us=tx.now_us,
            auto_release_at_us=tx.now_us + days * DAY_US,
        )
        _emit(tx, events.ORDER_DISPATCHED, rec, auto_release_at=_iso(rec["auto_release_at_us"]))
        if handover:
            _issue_pickup_code(tx, rec)
        return []

    return _run(tx, kind=_Step.DISPATCH, step_id=step_id, order_id=order_id, params={}, apply=apply)


def _check_dispatch_in_time(tx: Tx, rec: Rec) -> None:
    """A paid order is dispatched up to its deadline inclusive; a microsecond later the
    sweeper's to cancel and refund it: :class:`Refused` ``dispatch_deadline_passed`` (a
    state refusal, 409 in the API), nothing written. An order paid before the deadlines
    existed has none and is dispatched at any time."""
    due_us: int | None = rec["dispatch_deadline_at_us"]
    if due_us is not None and tx.now_us > due_us:
        raise Refused(
            "dispatch_deadline_passed",
            f"order {rec['id']} was to be dispatched by {_iso(due_us)}; the sweeper cancels"
            " and refunds it",
        )


def _iso(moment_us: int | None) -> str | None:
    return None if moment_us is None else from_us(moment_us).isoformat()


def deliver_order(
    led: Ledger,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_minor: int | None = None,
    pickup_code: str | None = None,
) -> Order:
    """Goods arrived. All of them (``amount_minor`` ``None`` or all that is left in
    escrow): the order is ``delivered`` and waits for :func:`release_order` (or its
    timer). A part: that part is released now, in this transaction, and the order stays
    ``dispatched`` (timer running) for the rest.

    An order handed over at a station needs the villager's ``pickup_code``: without it
    Refused ``pickup_code_required``; a wrong one ``pickup_code_invalid``, the wrong try
    counted in a transaction of its own first (see :mod:`ledger.flows.pickup`)."""
    proof = _pickup_proof(led, step_id, order_id, pickup_code)
    return led.transact(
        lambda tx: deliver_order_in(
            tx, step_id=step_id, order_id=order_id, amount_minor=amount_minor, pickup_proof=proof
        )
    )


def _step_recorded(tx: Tx, step_id: object) -> bool:
    return tx.one("SELECT 1 FROM order_steps WHERE id = :id", {"id": step_id}) is not None


def _pickup_proof(
    led: Ledger, step_id: object, order_id: object, code: str | None
) -> pickup.PickupProof | None:
    """Check a pickup code before the delivery's transaction, when it can matter: not for
    a replayed step, an order that is not dispatched or one handed over without a code
    (the delivery step answers those)."""
    if code is None:
        return None
    step_id, order_id = _check_id(step_id, "step_id"), _check_id(order_id, "order_id")

    def needs_code(tx: Tx) -> bool:
        rec = _read(tx, order_id, lock=False)
        return (
            not _step_recorded(tx, step_id)
            and rec is not None
            and rec["state"] == State.DISPATCHED
            and pickup.needed(rec["delivery_method"], rec["villager_id"])
        )

    if not led.transact(needs_code):
        return None
    return pickup.check(led, order_id=order_id, code=code)


def deliver_order_in(
    tx: Tx,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_minor: int | None = None,
    pickup_proof: pickup.PickupProof | None = None,
) -> Order:
    """:func:`deliver_order` inside a transaction someone else opened; ``pickup_proof``
    from :func:`ledger.flows.pickup.check` when the order is handed over at a station."""
    if amount_minor is not None:
        _check_amount(amount_minor)

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] != State.DISPATCHED:
            raise _wrong_state("order_not_deliverable", rec, "only a dispatched order is delivered")
        left = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
        if pickup.needed(rec["delivery_method"], rec["villager_id"]):
            final = amount_minor is None or amount_minor == left
            pickup.require_in(tx, pickup_proof, order_id=rec["id"], final=final)
        if amount_minor is None or amount_minor == left:
            rec["state"] = State.DELIVERED.value
            _emit(tx, events.ORDER_DELIVERED, rec, delivered_minor=left, partial=False)
            return []
        if amount_minor > left:
            raise Refused("amount_exceeds_escrow", f"only {left} of order {rec['id']} is left")
        if rec["deliveries"] >= PARTIAL_DELIVERIES_MAX:
            raise Refused(
                "partial_deliveries_exceeded",
                f"at most {PARTIAL_DELIVERIES_MAX} partial deliveries",
            )
        legs = _release(tx, rec, step_id, amount_minor)
        rec["deliveries"] += 1
        _emit(tx, events.ORDER_DELIVERED, rec, delivered_minor=amount_minor, partial=True)
        _release_event(tx, rec, amount_minor, legs)
        return legs

    return _run(
        tx,
        kind=_Step.DELIVER,
        step_id=step_id,
        order_id=order_id,
        params={"amount_minor": amount_minor},
        apply=apply,
    )


def _release_rest(tx: Tx, rec: Rec, step_id: uuid.UUID) -> list[_Leg]:
    left: int = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
    legs = _release(tx, rec, step_id, left) if left > 0 else []
    rec.update(
        state=State.RELEASED.value,
        auto_release_at_us=None,
        timer_remaining_us=None,
        disputed_from=None,
    )
    if rec["refund_until_us"] is None:  # nothing left and nothing released before: no window
        rec["refund_until_us"] = tx.now_us
    _release_event(tx, rec, left, legs)
    return legs


def release_order(led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """Release all the order has left in escrow to the seller, the agent and the platform
    (a dispatched order: the villager confirms early; a delivered one: as agreed)."""
    return led.transact(lambda tx: release_order_in(tx, step_id=step_id, order_id=order_id))


def release_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """:func:`release_order` inside a transaction someone else opened. An order handed
    over at a station is not released early while dispatched: the villager's confirmation
    there is the delivery with her pickup code (``pickup_code_required``), then release."""

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] not in (State.DISPATCHED, State.DELIVERED):
            raise _wrong_state(
                "order_not_releasable", rec, "only a dispatched or delivered order is released"
            )
        if rec["state"] == State.DISPATCHED and pickup.needed(
            rec["delivery_method"], rec["villager_id"]
        ):
            raise Refused(
                "pickup_code_required",
                f"order {rec['id']} is delivered with the villager's pickup code first",
            )
        return _release_rest(tx, rec, step_id)

    return _run(tx, kind=_Step.RELEASE, step_id=step_id, order_id=order_id, params={}, apply=apply)


# -- disputes and timers ------------------------------------------------------------------


def dispute_order(led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID, reason: str) -> Order:
    """The villager disputes a paid, dispatched or delivered order: the auto-release timer
    pauses (what it had left is kept) until :func:`resolve_dispute`."""
    return led.transact(
        lambda tx: dispute_order_in(tx, step_id=step_id, order_id=order_id, reason=reason)
    )


def dispute_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, reason: str) -> Order:
    """:func:`dispute_order` inside a transaction someone else opened."""
    if not isinstance(reason, str) or not 1 <= len(reason) <= REASON_LENGTH_MAX:
        raise Refused("reason_invalid", f"a reason is 1-{REASON_LENGTH_MAX} characters")

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] not in (State.PAID, State.DISPATCHED, State.DELIVERED):
            raise _wrong_state(
                "order_not_disputable",
                rec,
                "only a paid, dispatched or delivered order is disputed",
            )
        at = rec["auto_release_at_us"]
        rec.update(
            disputed_from=rec["state"],
            state=State.DISPUTED.value,
            auto_release_at_us=None,
            timer_remaining_us=None if at is None else max(0, at - tx.now_us),
        )
        _emit(tx, events.ORDER_DISPUTED, rec, reason=reason)
        return []

    return _run(
        tx,
        kind=_Step.DISPUTE,
        step_id=step_id,
        order_id=order_id,
        params={"reason": reason},
        apply=apply,
    )


def resolve_dispute(
    led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID, decision: Decision
) -> Order:
    """End a dispute: ``refund`` (for the villager: what is left in escrow goes back),
    ``release`` (for the storefront: it is released now), or ``resume`` (withdrawn: the
    order goes back to its state and its timer runs again with the time it had left)."""
    return led.transact(
        lambda tx: resolve_dispute_in(tx, step_id=step_id, order_id=order_id, decision=decision)
    )


def resolve_dispute_in(
    tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, decision: Decision
) -> Order:
    """:func:`resolve_dispute` inside a transaction someone else opened."""
    try:
        decision = Decision(decision)
    except ValueError:
        raise Refused("decision_invalid", "a decision is refund, release or resume") from None

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] != State.DISPUTED:
            raise _wrong_state("order_not_disputed", rec, "only a disputed order is resolved")
        if decision is Decision.RESUME:
            remaining = rec["timer_remaining_us"]
            rec.update(
                state=rec["disputed_from"],
                disputed_from=None,
                timer_remaining_us=None,
                auto_release_at_us=None if remaining is None else tx.now_us + remaining,
            )
            _emit(tx, events.ORDER_DISPUTE_RESOLVED, rec, decision=decision.value)
            return []
        if decision is Decision.RELEASE:
            legs = _release_rest(tx, rec, step_id)
            _emit(tx, events.ORDER_DISPUTE_RESOLVED, rec, decision=decision.value)
            return legs
        left: int = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
        legs = _refund_from_escrow(tx, rec, step_id, left) if left > 0 else []
        rec.update(
            state=State.RELEASED.value if rec["released_minor"] > 0 else State.REFUNDED.value,
            disputed_from=None,
            timer_remaining_us=None,
        )
        _emit(tx, events.ORDER_DISPUTE_RESOLVED, rec, decision=decision.value)
        _emit(tx, events.ORDER_REFUNDED, rec, refunded_now_minor=left, after_release=False)
        return legs

    return _run(
        tx,
        kind=_Step.RESOLVE,
        step_id=step_id,
        order_id=order_id,
        params={"decision": decision.value},
        apply=apply,
    )


def extend_auto_release(
    led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID, days: int
) -> Order:
    """Push the order's auto-release timer ``days`` later (1..30; at most 5 times); a
    paused timer (disputed order) gets the days added to what it has left."""
    return led.transact(
        lambda tx: extend_auto_release_in(tx, step_id=step_id, order_id=order_id, days=days)
    )


def extend_auto_release_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, days: int) -> Order:
    """:func:`extend_auto_release` inside a transaction someone else opened."""
    if type(days) is not int or not 1 <= days <= EXTENSION_DAYS_MAX:
        raise Refused("extension_invalid", f"an extension is 1..{EXTENSION_DAYS_MAX} days")

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["auto_release_at_us"] is not None:
            rec["auto_release_at_us"] += days * DAY_US
        elif rec["timer_remaining_us"] is not None:
            rec["timer_remaining_us"] += days * DAY_US
        else:
            raise _wrong_state(
                "order_timer_not_running", rec, "only a dispatched order has a timer"
            )
        if rec["extensions"] >= EXTENSIONS_MAX:
            raise Refused("extensions_exceeded", f"at most {EXTENSIONS_MAX} extensions per order")
        rec["extensions"] += 1
        _emit(
            tx,
            events.ORDER_EXTENDED,
            rec,
            days=days,
            auto_release_at=_iso(rec["auto_release_at_us"]),
            timer_remaining_us=rec["timer_remaining_us"],
        )
        return []

    return _run(
        tx,
        kind=_Step.EXTEND,
        step_id=step_id,
        order_id=order_id,
        params={"days": days},
        apply=apply,
    )


# -- cancel and refund ----------------------------------------------------------------------


def cancel_order(led: Ledger, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """Cancel an order before dispatch; a paid one is refunded in full to its payer."""
    return led.transact(lambda tx: cancel_order_in(tx, step_id=step_id, order_id=order_id))


def cancel_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """:func:`cancel_order` inside a transaction someone else opened."""

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] not in (State.CREATED, State.PAID):
            raise _wrong_state(
                "order_not_cancellable", rec, "only an order not yet dispatched is cancelled"
            )
        left: int = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
        legs = _refund_from_escrow(tx, rec, step_id, left) if left > 0 else []
        rec["state"] = State.CANCELLED.value
        _emit(tx, events.ORDER_CANCELLED, rec, refunded_now_minor=left)
        return legs

    return _run(tx, kind=_Step.CANCEL, step_id=step_id, order_id=order_id, params={}, apply=apply)


def refund_order(
    led: Ledger,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_minor: int | None = None,
    after_release: bool = False,
) -> Order:
    """Refund the payer.

    Before release (a paid, dispatched or delivered order): ``amount_minor`` of what is
    left in escrow (``None``: all of it) goes back; when nothing is left the order is
    ``refunded`` (or ``released``, if part of it was released before).

    After release (``after_release=True``; a released order, until its ``refund_until``):
    every release leg of the order is reversed into escrow and the payer gets back all
    that was released (``amount_minor`` ``None`` or exactly that); the order is
    ``refunded``. Without ``after_release`` a released order answers ``order_released``,
    so that a refund racing a release never reverses it by surprise."""
    return led.transact(
        lambda tx: refund_order_in(
            tx,
            step_id=step_id,
            order_id=order_id,
            amount_minor=amount_minor,
            after_release=after_release,
        )
    )


def refund_order_in(
    tx: Tx,
    *,
    step_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_minor: int | None = None,
    after_release: bool = False,
) -> Order:
    """:func:`refund_order` inside a transaction someone else opened."""
    if amount_minor is not None:
        _check_amount(amount_minor)
    if not isinstance(after_release, bool):
        raise MalformedRequest("after_release must be a bool")

    def before(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] == State.RELEASED:
            raise _wrong_state(
                "order_released", rec, "a refund after release says after_release=True"
            )
        if rec["state"] == State.DISPUTED:
            raise _wrong_state("order_disputed", rec, "a disputed order is resolved")
        if rec["state"] not in (State.PAID, State.DISPATCHED, State.DELIVERED):
            raise _wrong_state("order_not_refundable", rec, "the order holds nothing in escrow")
        left: int = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
        amount = left if amount_minor is None else amount_minor
        if amount > left:
            raise Refused("amount_exceeds_escrow", f"only {left} of order {rec['id']} is left")
        legs = _refund_from_escrow(tx, rec, step_id, amount)
        if amount == left:
            rec.update(
                state=State.RELEASED.value if rec["released_minor"] > 0 else State.REFUNDED.value,
                auto_release_at_us=None,
            )
        _emit(tx, events.ORDER_REFUNDED, rec, refunded_now_minor=amount, after_release=False)
        return legs

    def after(tx: Tx, rec: Rec) -> list[_Leg]:
        if rec["state"] != State.RELEASED:
            raise _wrong_state(
                "order_not_released", rec, "a refund after release needs a released order"
            )
        if tx.now_us > rec["refund_until_us"]:
            raise Refused(
                "refund_window_closed",
                f"order {rec['id']} could be refunded until {_iso(rec['refund_until_us'])}",
            )
        released: int = rec["released_minor"]
        if released == 0 or (amount_minor is not None and amount_minor != released):
            raise Refused(
                "amount_invalid", f"a refund after release returns all {released} released"
            )
        sid: uuid.UUID = step_id
        reversals = [
            _Leg(
                "reversal",
                Transfer(
                    id=_leg_id(sid, f"reversal:{leg_id}"),
                    debit_account_id=credit,
                    credit_account_id=debit,
                    amount=amount,
                    currency=rec["currency"],
                    code=REVERSAL_CODE,
                    reverses_id=leg_id,
                    metadata={"order_id": str(rec["id"]), "leg": "reversal"},
                ),
            )
            for leg_id, debit, credit, amount in _release_legs_of(tx, rec["id"])
        ]
        legs = _submit(tx, reversals + _refund_legs(rec, sid, released), _shortages(rec))
        rec.update(
            state=State.REFUNDED.value,
            released_minor=0,
            reversed_minor=rec["reversed_minor"] + released,
            refunded_minor=rec["refunded_minor"] + released,
        )
        _emit(tx, events.ORDER_REFUNDED, rec, refunded_now_minor=released, after_release=True)
        return legs

    return _run(
        tx,
        kind=_Step.REFUND,
        step_id=step_id,
        order_id=order_id,
        params={"amount_minor": amount_minor, "after_release": after_release},
        apply=after if after_release else before,
    )


# -- the sweeper --------------------------------------------------------------------------


def _auto_release_in(tx: Tx, order_id: uuid.UUID, now_us: int) -> bool:
    rec = _read(tx, order_id, lock=True)
    if (
        rec is None
        or rec["state"] not in (State.DISPATCHED, State.DELIVERED)
        or rec["auto_release_at_us"] is None
        or rec["auto_release_at_us"] > now_us
    ):
        return False  # a dispute, a release or an extension came first
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"auto-release:{order_id}:{rec['auto_release_at_us']}")

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        return _release_rest(tx, rec, step_id)

    _run(
        tx,
        kind=_Step.AUTO_RELEASE,
        step_id=step_id,
        order_id=order_id,
        params={"due_at_us": rec["auto_release_at_us"]},
        apply=apply,
    )
    return True


def _dispatch_deadline_us(tx: Tx, rec: Rec) -> int:
    """When an order paid now must be dispatched by: its method's deadline from now."""
    hours = delivery_method_in(tx, rec["delivery_method"]).dispatch_deadline_hours
    return tx.now_us + hours * HOUR_US


DISPATCH_EXPIRED = "dispatch_expired"
"""The ``reason`` of an ``order.cancelled`` event the sweeper wrote for a paid order not
dispatched by its deadline."""


def _expire_dispatch_in(tx: Tx, order_id: uuid.UUID, now_us: int) -> bool:
    """Cancel and refund a paid order whose dispatch deadline passed before ``now_us``
    (a ``cancel`` step with a step id of its own); ``False`` when it no longer applies."""
    rec = _read(tx, order_id, lock=True)
    if (
        rec is None
        or rec["state"] != State.PAID
        or rec["dispatch_deadline_at_us"] is None
        or rec["dispatch_deadline_at_us"] >= now_us
    ):
        return False  # dispatched, cancelled or refunded meanwhile, or still in time
    due_us: int = rec["dispatch_deadline_at_us"]
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"dispatch-expired:{order_id}:{due_us}")

    def apply(tx: Tx, rec: Rec) -> list[_Leg]:
        left: int = rec["paid_minor"] - rec["released_minor"] - rec["refunded_minor"]
        legs = _refund_from_escrow(tx, rec, step_id, left) if left > 0 else []
        rec["state"] = State.CANCELLED.value
        _emit(
            tx,
            events.ORDER_CANCELLED,
            rec,
            refunded_now_minor=left,
            reason=DISPATCH_EXPIRED,
            dispatch_deadline_at=_iso(due_us),
        )
        return legs

    _run(
        tx,
        kind=_Step.CANCEL,
        step_id=step_id,
        order_id=order_id,
        params={"reason": DISPATCH_EXPIRED, "due_at_us": due_us},
        apply=apply,
    )
    return True


def _note_refusal_in(tx: Tx, order_id: uuid.UUID, refusal: Refused) -> None:
    """Make a refused dispatch expiry visible: one ``order.dispatch_expiry_refused`` event
    per order and refusal code (the order stays paid and due; later sweeps try again)."""
    seen = tx.execute(
        "SELECT payload FROM events WHERE subject_id = :id AND type = :type",
        {"id": order_id, "type": events.ORDER_DISPATCH_EXPIRY_REFUSED},
    )
    if any(json.loads(row[0])["code"] == refusal.code for row in seen):
        return
    rec = _read(tx, order_id, lock=False)
    assert rec is not None  # the sweep found it; orders are never deleted
    _emit(
        tx,
        events.ORDER_DISPATCH_EXPIRY_REFUSED,
        rec,
        code=refusal.code,
        detail=refusal.detail,
        dispatch_deadline_at=_iso(rec["dispatch_deadline_at_us"]),
    )


SWEEP_RETRY_INTERVAL_US = 15 * 60 * 1_000_000
"""A quarter of an hour: how long the sweeper retries the same page of orders the rules
refused (dispatch expiries, auto-releases) before it turns to the next page (see
:func:`_turning_page`). The service sweeps every 30 s, so each interval has sweeps in it."""

_DUE_EXPIRY = (
    "FROM orders WHERE state = 'paid' AND dispatch_deadline_at_us < :now AND {noted} EXISTS"
    " (SELECT 1 FROM events WHERE events.subject_id = orders.id AND events.type = :refused)"
)
_DUE_RELEASE = "FROM orders WHERE auto_release_at_us <= :now"


def _due_params(now_us: int) -> dict[str, Any]:
    return {"now": now_us, "refused": events.ORDER_DISPATCH_EXPIRY_REFUSED}


def _fresh_expiries(tx: Tx, now_us: int, limit: int) -> list[uuid.UUID]:
    """The first ``limit`` due orders no sweep has been refused on, by (deadline, id).
    Each one a sweep meets is cancelled or noted refused, so it leaves this list: a due
    order is met within ceil(due / limit) sweeps however many before it are refused."""
    rows = tx.execute(
        f"SELECT id {_DUE_EXPIRY.format(noted='NOT')}"
        " ORDER BY dispatch_deadline_at_us, id LIMIT :limit",
        {**_due_params(now_us), "limit": limit},
    )
    return [row[0] for row in rows]


def _turning_page(
    tx: Tx, due: str, order_by: str, params: Mapping[str, Any], now_us: int, limit: int
) -> list[uuid.UUID]:
    """At most ``limit`` of the ``n`` orders ``SELECT id {due} ORDER BY {order_by}``
    finds. With more than ``limit`` the page turns every :data:`SWEEP_RETRY_INTERVAL_US`:
    it starts at ``(slot * limit) mod n`` (``slot``: the interval ``now`` falls in) and
    wraps round, so that orders refused again and again at the head never hide the
    others: each is met within ceil(n / limit) intervals."""
    row = tx.one(f"SELECT count(*) {due}", params)
    count = 0 if row is None else int(row[0])
    if count == 0:
        return []
    offset = 0 if count <= limit else (now_us // SWEEP_RETRY_INTERVAL_US * limit) % count
    page = f"SELECT id {due} ORDER BY {order_by} LIMIT :limit OFFSET :offset"
    found = [r[0] for r in tx.execute(page, {**params, "limit": limit, "offset": offset})]
    if len(found) < limit and offset > 0:  # wrap round to the first ones
        rest = {**params, "limit": limit - len(found), "offset": 0}
        found += [r[0] for r in tx.execute(page, rest)]
    return found


def _refused_expiries(tx: Tx, now_us: int, limit: int) -> list[uuid.UUID]:
    """A turning page of the due orders already noted refused, to retry."""
    due = _DUE_EXPIRY.format(noted="")
    order_by = "dispatch_deadline_at_us, id"
    return _turning_page(tx, due, order_by, _due_params(now_us), now_us, limit)


def _due_releases(tx: Tx, now_us: int, limit: int) -> list[uuid.UUID]:
    """A turning page of the orders whose auto-release time has come."""
    order_by = "auto_release_at_us, id"
    return _turning_page(tx, _DUE_RELEASE, order_by, {"now": now_us}, now_us, limit)


def _sweep_dispatch_deadlines(led: Ledger, now_us: int, limit: int) -> int:
    """Up to ``limit`` due orders never refused, then up to ``limit`` refused before (not
    those this sweep just tried)."""
    cancelled = 0
    tried: set[uuid.UUID] = set()
    for pick in (_fresh_expiries, _refused_expiries):
        due = led.transact(functools.partial(pick, now_us=now_us, limit=limit))
        for order_id in (o for o in due if o not in tried):
            tried.add(order_id)

            def one(tx: Tx, order_id: uuid.UUID = order_id) -> bool:
                return _expire_dispatch_in(tx, order_id, now_us)

            try:
                if led.transact(one):
                    cancelled += 1
            except Refused as refusal:  # e.g. the wallet's KYC maximum: noted, sweep goes on
                led.transact(
                    functools.partial(_note_refusal_in, order_id=order_id, refusal=refusal)
                )
    return cancelled


def _sweep_auto_releases(led: Ledger, now_us: int, limit: int) -> int:
    due = led.transact(functools.partial(_due_releases, now_us=now_us, limit=limit))
    released = 0
    for order_id in due:

        def one(tx: Tx, order_id: uuid.UUID = order_id) -> bool:
            return _auto_release_in(tx, order_id, now_us)

        try:
            if led.transact(one):
                released += 1
        except Refused:
            continue  # stays due; visible through get_order and the next sweep
    return released


def sweep_orders(led: Ledger, *, now: datetime | None = None, limit: int = 1000) -> int:
    """The orders' timers at ``now`` (default: the ledger's clock), each order in its own
    transaction, looking at no more than ``limit`` due orders of each kind; how many
    orders it moved:

    - every paid order whose dispatch deadline has passed (``now`` after it: dispatching
      at the deadline itself is in time) is cancelled and refunded in full, with an
      ``order.cancelled`` event whose ``reason`` is ``dispatch_expired``. A refund the
      rules refuse (the villager's wallet would pass its KYC maximum) leaves the order
      paid and due: an ``order.dispatch_expiry_refused`` event says why (once per order
      and code) and the sweep goes on with the next order. So that refused orders never
      starve later ones, the sweep takes up to ``limit`` due orders never refused (by
      deadline, then id: each one met leaves that list, cancelled or noted), then retries
      up to ``limit`` refused ones, a page that turns every
      :data:`SWEEP_RETRY_INTERVAL_US` (each retried within ceil(n / limit) intervals,
      with n of them);
    - every dispatched or delivered order whose auto-release time has passed (at it or
      after) is released. An order the rules refuse to release now (no fee schedule in
      effect, a fee above the amount) stays due and is tried again by a later sweep:
      with more than ``limit`` due, the page of them a sweep takes turns every
      :data:`SWEEP_RETRY_INTERVAL_US`, so each is tried within ceil(n / limit) intervals.

    Running it again changes nothing more: a cancelled or released order is no longer due."""
    if type(limit) is not int or not 1 <= limit <= SWEEP_LIMIT_MAX:
        raise MalformedRequest(f"limit must be 1..{SWEEP_LIMIT_MAX}")
    now_us = to_us(led.now() if now is None else now)
    return _sweep_dispatch_deadlines(led, now_us, limit) + _sweep_auto_releases(led, now_us, limit)


# -- reading ------------------------------------------------------------------------------


def get_order(led: Ledger, *, order_id: uuid.UUID) -> Order:
    """The order, or :class:`~ledger.flows.errors.NotFound`."""
    return led.transact(lambda tx: get_order_in(tx, order_id=order_id))


def get_order_in(tx: Tx, *, order_id: uuid.UUID) -> Order:
    """:func:`get_order` inside a transaction someone else opened."""
    rec = _read(tx, _check_id(order_id, "order_id"), lock=False)
    if rec is None:
        raise NotFound("order_not_found", f"no order {order_id}")
    return _order(rec)


def list_orders(
    led: Ledger,
    *,
    storefront_id: uuid.UUID,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> list[Order]:
    """A storefront's orders, oldest first, after the cursor ``after`` (an order id of
    that storefront; another answers ``[]``), at most ``limit`` (1..1000)."""
    _check_id(storefront_id, "storefront_id")
    if after is not None:
        _check_id(after, "after")
    if type(limit) is not int or not 1 <= limit <= ORDERS_PAGE_MAX:
        raise MalformedRequest(f"limit must be 1..{ORDERS_PAGE_MAX}")

    def read(tx: Tx) -> list[Order]:
        params: dict[str, Any] = {"sf": storefront_id, "limit": limit}
        where = "storefront_id = :sf"
        if after is not None:
            cursor = tx.one(
                "SELECT created_at_us FROM orders WHERE id = :id AND storefront_id = :sf",
                {"id": after, "sf": storefront_id},
            )
            if cursor is None:
                return []
            where += " AND (created_at_us > :at OR (created_at_us = :at AND id > :after))"
            params.update(at=cursor[0], after=after)
        rows = tx.execute(
            f"{_SELECT} WHERE {where} ORDER BY created_at_us, id LIMIT :limit", params
        )
        return [_order(_rec(row)) for row in rows]

    return led.transact(read)
