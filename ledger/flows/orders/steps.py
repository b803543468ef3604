"""How every operation on an order runs: check the ids, lock the order, answer a replay
from its history, else apply the operation to the row, save it and record the step; and
the money steps several operations share (release, refund out of escrow), the outbox
events and the transfer batch."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ledger.core.errors import InvariantViolation
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.core.values import Status, TransferFlags
from ledger.flows import agent_float, events, fees, wallets
from ledger.flows.agent_float.checks import check_id
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.orders import legs as order_legs
from ledger.flows.orders import repository
from ledger.flows.orders.model import (
    DAY_US,
    DELIVERY_METHODS,
    DeliveryMethod,
    Leg,
    Order,
    OrderRow,
    Source,
    State,
    Step,
)

Outcome = tuple[OrderRow, list[Leg]]
"""What an operation made of the order: the changed row and the legs it moved."""
Apply = Callable[[Tx, OrderRow], Outcome]


# -- checks -------------------------------------------------------------------------------


def wrong_state(code: str, row: OrderRow, wanted: str) -> Refused:
    """The refusal of an operation the order's state does not allow (409 in the API)."""
    return Refused(code, f"order {row.id} is {row.state.value}; {wanted}")


def iso(moment_us: int | None) -> str | None:
    return None if moment_us is None else from_us(moment_us).isoformat()


def delivery_method_in(tx: Tx, name: object) -> DeliveryMethod:
    """The terms of delivery method ``name`` as they are now; :class:`Refused`
    ``delivery_method_invalid`` for a name that is none."""
    method = repository.delivery_method(tx, name) if isinstance(name, str) else None
    if method is None:
        raise Refused(
            "delivery_method_invalid", f"a delivery method is one of {sorted(DELIVERY_METHODS)}"
        )
    return method


# -- a step: idempotency, the lock, the history ---------------------------------------------


def request_text(kind: Step, order_id: uuid.UUID, params: Mapping[str, Any]) -> str:
    """The request a step id stands for, as its history keeps it."""
    body = {"kind": kind.value, "order_id": str(order_id)}
    body.update({k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in params.items()})
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def replay(tx: Tx, step_id: uuid.UUID, request: str) -> Order | None:
    """The order as step ``step_id`` left it, or ``None`` for a new step;
    :class:`Conflict` ``step_id_reused`` when the id was used for another request."""
    step = repository.recorded_step(tx, step_id)
    if step is None:
        return None
    if step.request != request:
        raise Conflict("step_id_reused", f"step {step_id} was used for another request")
    return step.result.order()


def run(
    tx: Tx,
    *,
    kind: Step,
    step_id: object,
    order_id: object,
    params: Mapping[str, Any],
    apply: Apply,
) -> Order:
    """Lock the order, answer a replay from history, else apply the step and record it."""
    step_id = check_id(step_id, "step_id")
    order_id = check_id(order_id, "order_id")
    row = repository.read(tx, order_id, lock=True)
    request = request_text(kind, order_id, params)
    replayed = replay(tx, step_id, request)
    if replayed is not None:
        return replayed
    if row is None:
        raise NotFound("order_not_found", f"no order {order_id}")
    row, legs = apply(tx, row)
    row = dataclasses.replace(row, updated_at_us=tx.now_us)
    repository.save(tx, row)
    repository.insert_step(tx, step_id=step_id, kind=kind, row=row, request=request, legs=legs)
    return row.order()


def emit(tx: Tx, event_type: str, row: OrderRow, **extra: Any) -> None:
    """An ``order.*`` event to the storefront, with the order's money as it is now."""
    payload: dict[str, Any] = {
        "order_id": str(row.id),
        "storefront_id": str(row.storefront_id),
        "state": row.state.value,
        "currency": row.currency,
        "amount_minor": row.amount_minor,
        "paid_minor": row.paid_minor,
        "released_minor": row.released_minor,
        "refunded_minor": row.refunded_minor,
    }
    payload.update(extra)
    events.emit(tx, event_type, payload, party_id=row.storefront_id, subject_id=row.id)


# -- money --------------------------------------------------------------------------------


def submit(tx: Tx, legs: Sequence[Leg], short: Mapping[uuid.UUID, str]) -> list[Leg]:
    """Create the legs as one linked batch; a refusal names the account that was short.
    A wallet the batch credits must stay within its KYC maximum (``limit_exceeded_balance``,
    everything rolls back) and every wallet it touches gets its receipts
    (:func:`ledger.flows.wallets.after_transfers_in`)."""
    if not legs:
        return list(legs)
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
        return list(legs)
    cause = next((r for r in failed if r.status is not Status.LINKED_EVENT_FAILED), failed[0])
    transfer = batch[cause.index]
    if cause.status is Status.EXCEEDS_CREDITS and transfer.debit_account_id is not None:
        code = short.get(transfer.debit_account_id, "funds_short")
        raise Refused(code, f"{transfer.metadata} refused: {cause.status}")
    if cause.status is Status.EXCEEDS_DEBITS and transfer.credit_account_id is not None:
        code = short.get(transfer.credit_account_id, "funds_short")
        raise Refused(code, f"{transfer.metadata} refused: {cause.status}")
    raise InvariantViolation(f"order transfer {transfer.id} refused: {cause.status}")


def release(tx: Tx, row: OrderRow, step_id: uuid.UUID, amount_minor: int) -> Outcome:
    """Release ``amount_minor`` of the order's escrow: seller proceeds and the fee legs of
    the ``order`` product's quote; the refund window starts again."""
    quote = fees.quote(tx, product="order", currency=row.currency, amount_minor=amount_minor)
    order_legs.check_fee_within(quote.fee_minor, amount_minor)
    fee_transfers = fees.fee_transfers(
        tx,
        quote,
        payer_account=order_legs.escrow_account(row),
        agent_id=row.agent_id,
        currency=row.currency,
        id_base=order_legs.leg_id(step_id, "fees"),
    )
    legs = order_legs.release_legs(
        row, step_id, amount_minor, fee_minor=quote.fee_minor, fee_transfers=fee_transfers
    )
    submit(tx, legs, order_legs.shortages(row))
    method = delivery_method_in(tx, row.delivery_method)
    row = dataclasses.replace(
        row,
        released_minor=row.released_minor + amount_minor,
        released_at_us=tx.now_us,
        refund_until_us=tx.now_us + method.refund_window_days * DAY_US,
    )
    return row, legs


def release_event(tx: Tx, row: OrderRow, amount_minor: int, legs: Sequence[Leg]) -> None:
    seller_minor, fee_minor = order_legs.release_split(row, legs)
    emit(
        tx,
        events.ORDER_RELEASED,
        row,
        released_now_minor=amount_minor,
        seller_minor=seller_minor,
        fee_minor=fee_minor,
    )


def release_rest(tx: Tx, row: OrderRow, step_id: uuid.UUID) -> Outcome:
    """Release all the order has left in escrow: the order is ``released``, no timer."""
    left = row.escrow_minor
    legs: list[Leg] = []
    if left > 0:
        row, legs = release(tx, row, step_id, left)
    row = dataclasses.replace(
        row,
        state=State.RELEASED,
        auto_release_at_us=None,
        timer_remaining_us=None,
        disputed_from=None,
        # nothing left and nothing released before: no window
        refund_until_us=tx.now_us if row.refund_until_us is None else row.refund_until_us,
    )
    release_event(tx, row, left, legs)
    return row, legs


def refund_from_escrow(tx: Tx, row: OrderRow, step_id: uuid.UUID, amount_minor: int) -> Outcome:
    """``amount_minor`` of escrow back to the payer (see :func:`legs.refund_legs`)."""
    legs = submit(tx, order_legs.refund_legs(row, step_id, amount_minor), order_legs.shortages(row))
    row = dataclasses.replace(row, refunded_minor=row.refunded_minor + amount_minor)
    if row.payment_source is Source.CASH and row.agent_id is not None:
        agent_float.check_float_low(tx, row.agent_id)  # float back: re-arm the alarm
    return row, legs


def refund_all_left(tx: Tx, row: OrderRow, step_id: uuid.UUID) -> Outcome:
    """Everything left in escrow back to the payer (nothing moves when nothing is left)."""
    left = row.escrow_minor
    return refund_from_escrow(tx, row, step_id, left) if left > 0 else (row, [])
