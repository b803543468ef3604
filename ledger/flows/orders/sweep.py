"""The orders' timers: :func:`sweep_orders` cancels and refunds the paid orders not
dispatched by their deadline, and releases the orders whose auto-release time has come,
each order in a transaction of its own."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from datetime import datetime

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows import events
from ledger.flows.errors import Refused
from ledger.flows.orders import repository
from ledger.flows.orders.model import (
    DISPATCH_EXPIRED,
    ORDER_NAMESPACE,
    OrderRow,
    State,
    Step,
)
from ledger.flows.orders.steps import Outcome, emit, iso, refund_all_left, release_rest, run
from ledger.limits import SWEEP_BATCH_MAX, US_PER_S

SWEEP_RETRY_INTERVAL_US = 15 * 60 * US_PER_S
"""A quarter of an hour: how long the sweeper retries the same page of orders the rules
refused (dispatch expiries, auto-releases) before it turns to the next page (see
:func:`_slot`). The service sweeps every 30 s, so each interval has sweeps in it."""


def _slot(now_us: int) -> int:
    """Which page of a turning list a sweep at ``now_us`` takes: with ``n`` due and
    ``limit`` a page, it starts at ``(slot * limit) mod n`` and wraps round, so that orders
    refused again and again at the head never hide the others: each is met within
    ceil(n / limit) intervals of :data:`SWEEP_RETRY_INTERVAL_US`."""
    return now_us // SWEEP_RETRY_INTERVAL_US


# -- one order --------------------------------------------------------------------------------


def _auto_release_in(tx: Tx, order_id: uuid.UUID, now_us: int) -> bool:
    row = repository.read(tx, order_id, lock=True)
    if (
        row is None
        or row.state not in (State.DISPATCHED, State.DELIVERED)
        or row.auto_release_at_us is None
        or row.auto_release_at_us > now_us
    ):
        return False  # a dispute, a release or an extension came first
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"auto-release:{order_id}:{row.auto_release_at_us}")

    def apply(tx: Tx, row: OrderRow) -> Outcome:
        return release_rest(tx, row, step_id)

    run(
        tx,
        kind=Step.AUTO_RELEASE,
        step_id=step_id,
        order_id=order_id,
        params={"due_at_us": row.auto_release_at_us},
        apply=apply,
    )
    return True


def _expire(tx: Tx, row: OrderRow, *, step_id: uuid.UUID, due_us: int) -> Outcome:
    left = row.escrow_minor
    row, legs = refund_all_left(tx, row, step_id)
    row = dataclasses.replace(row, state=State.CANCELLED)
    emit(
        tx,
        events.ORDER_CANCELLED,
        row,
        refunded_now_minor=left,
        reason=DISPATCH_EXPIRED,
        dispatch_deadline_at=iso(due_us),
    )
    return row, legs


def _expire_dispatch_in(tx: Tx, order_id: uuid.UUID, now_us: int) -> bool:
    """Cancel and refund a paid order whose dispatch deadline passed before ``now_us``
    (a ``cancel`` step with a step id of its own); ``False`` when it no longer applies."""
    row = repository.read(tx, order_id, lock=True)
    if (
        row is None
        or row.state is not State.PAID
        or row.dispatch_deadline_at_us is None
        or row.dispatch_deadline_at_us >= now_us
    ):
        return False  # dispatched, cancelled or refunded meanwhile, or still in time
    due_us = row.dispatch_deadline_at_us
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"dispatch-expired:{order_id}:{due_us}")
    run(
        tx,
        kind=Step.CANCEL,
        step_id=step_id,
        order_id=order_id,
        params={"reason": DISPATCH_EXPIRED, "due_at_us": due_us},
        apply=functools.partial(_expire, step_id=step_id, due_us=due_us),
    )
    return True


def _note_refusal_in(tx: Tx, order_id: uuid.UUID, refusal: Refused) -> None:
    """Make a refused dispatch expiry visible: one ``order.dispatch_expiry_refused`` event
    per order and refusal code (the order stays paid and due; later sweeps try again)."""
    if refusal.code in repository.refusal_codes_noted(tx, order_id):
        return
    row = repository.read(tx, order_id, lock=False)
    if row is None:  # the sweep found it; orders are never deleted
        raise InvariantViolation(f"order {order_id} is gone")
    emit(
        tx,
        events.ORDER_DISPATCH_EXPIRY_REFUSED,
        row,
        code=refusal.code,
        detail=refusal.detail,
        dispatch_deadline_at=iso(row.dispatch_deadline_at_us),
    )


# -- the sweep --------------------------------------------------------------------------------


def _expire_each(
    led: Ledger, order_ids: list[uuid.UUID], now_us: int, tried: set[uuid.UUID]
) -> int:
    """Expire each order not ``tried`` yet in this sweep; a refusal is noted and the sweep
    goes on. How many were cancelled."""
    cancelled = 0
    for order_id in order_ids:
        if order_id in tried:
            continue
        tried.add(order_id)
        try:
            if led.transact(
                functools.partial(_expire_dispatch_in, order_id=order_id, now_us=now_us)
            ):
                cancelled += 1
        except Refused as refusal:  # e.g. the wallet's KYC maximum: noted, sweep goes on
            led.transact(functools.partial(_note_refusal_in, order_id=order_id, refusal=refusal))
    return cancelled


def _sweep_dispatch_deadlines(led: Ledger, now_us: int, limit: int) -> int:
    """Up to ``limit`` due orders never refused (each one a sweep meets is cancelled or
    noted refused, so it leaves that list: a due order is met within ceil(due / limit)
    sweeps however many before it are refused), then a turning page of up to ``limit``
    refused before (not those this sweep just tried)."""
    tried: set[uuid.UUID] = set()
    fresh = led.transact(functools.partial(repository.fresh_expiries, now_us=now_us, limit=limit))
    cancelled = _expire_each(led, fresh, now_us, tried)
    refused = led.transact(
        functools.partial(
            repository.refused_expiries, now_us=now_us, slot=_slot(now_us), limit=limit
        )
    )
    return cancelled + _expire_each(led, refused, now_us, tried)


def _sweep_auto_releases(led: Ledger, now_us: int, limit: int) -> int:
    due = led.transact(
        functools.partial(repository.due_releases, now_us=now_us, slot=_slot(now_us), limit=limit)
    )
    released = 0
    for order_id in due:
        try:
            if led.transact(functools.partial(_auto_release_in, order_id=order_id, now_us=now_us)):
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
    if type(limit) is not int or not 1 <= limit <= SWEEP_BATCH_MAX:
        raise MalformedRequest(f"limit must be 1..{SWEEP_BATCH_MAX}")
    now_us = to_us(led.now() if now is None else now)
    return _sweep_dispatch_deadlines(led, now_us, limit) + _sweep_auto_releases(led, now_us, limit)
