"""The villager's orders over USSD: her latest orders (numbered, paged), one order's
amount and state, and what she may do with it through the same flow functions as the
API: a pay code for an unpaid order (:func:`ledger.flows.consent.make_code_in_session`,
on the PIN the session verified once; purpose ``payment``, the order's exact amount),
confirm delivered (:func:`ledger.flows.orders.release_order`: the villager confirms,
escrow released to the seller; the orders flow refuses it unless the order is
dispatched or delivered, and for a station hand-over wants the pickup code instead) and
open a dispute (:func:`ledger.flows.orders.dispute_order`).

The list shows her latest :data:`ORDERS_SHOWN_MAX`; any other of hers she reaches by its
reference (:func:`ledger.flows.orders.order_reference`, as the screens and her order SMS
show it, typed on the screen ``99`` asks for): :func:`find_in` reads her orders whose id
begins with it (the orders flow's exact prefix read, a range of the primary key). One
leads to the order's screen, the same as from the list; several (two ids sharing their
first 24 bits) are listed to choose from; none answers the same "no order of yours"
whether the reference is unknown or another villager's.

Only her own orders are listed, and every screen and step checks again that the order
is hers (an order of another villager is answered like one that does not exist). Each
order step's ``step_id`` is derived from the session and the step, so a step run twice
(given back after a failure, then retried) is the orders flow's replay, never a second
move.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import consent, orders
from ledger.flows.errors import FlowError
from ledger.flows.orders import Order, order_reference
from ledger.flows.orders import State as OrderState
from ledger.flows.orders.service import latest_of_villager_in, of_villager_by_id_prefix_in
from ledger.flows.ussd.menus import REFERENCE, REFERENCE_DIGITS, Action, Note, OrderAction
from ledger.flows.ussd.model import Menu, Screen, State
from ledger.flows.ussd.screens import ask, ended, paged
from ledger.i18n import tr
from ledger.money import format_money

__all__ = ["ORDERS_SHOWN_MAX", "STEP_NAMESPACE", "act", "find_in", "screen"]

ORDERS_SHOWN_MAX = 9
"""How many of her latest orders the list shows (one key each)."""
STEP_NAMESPACE = uuid.UUID("5c1d3f0e-8a7b-4f43-9d0c-2b6a1e7f9a31")
"""The namespace of the order steps' ids (uuid5 of the session and the step)."""


def _state_word(language: str, state: OrderState) -> str:
    words: dict[OrderState, Callable[[], str]] = {
        OrderState.CREATED: lambda: tr(language, "ussd", "unpaid"),
        OrderState.PAID: lambda: tr(language, "ussd", "paid"),
        OrderState.DISPATCHED: lambda: tr(language, "ussd", "on its way"),
        OrderState.DELIVERED: lambda: tr(language, "ussd", "delivered"),
        OrderState.RELEASED: lambda: tr(language, "ussd", "completed"),
        OrderState.CANCELLED: lambda: tr(language, "ussd", "cancelled"),
        OrderState.DISPUTED: lambda: tr(language, "ussd", "disputed"),
        OrderState.REFUNDED: lambda: tr(language, "ussd", "refunded"),
    }
    return words[state]()


def _hers(tx: Tx, villager_id: uuid.UUID, order_id: str) -> Order | None:
    try:
        found = orders.get_order_in(tx, order_id=uuid.UUID(order_id))
    except (ValueError, FlowError):
        return None
    return found if found.villager_id == villager_id else None


def _list(
    tx: Tx, language: str, state: State, villager_id: uuid.UUID, note: str | None
) -> tuple[Screen, State]:
    if not state.order_ids:  # the list is read once, then its numbers stay
        latest = latest_of_villager_in(tx, villager_id=villager_id, limit=ORDERS_SHOWN_MAX)
        state = State(Menu.ORDERS, order_ids=tuple(str(o.id) for o in latest))
    lines = []
    for number, order_id in enumerate(state.order_ids, start=1):
        order = _hers(tx, villager_id, order_id)
        if order is not None:
            amount = format_money(order.amount_minor, order.currency)
            word = _state_word(language, order.state)
            lines.append(f"{number} {order_reference(order.id)} {amount} {word}")
    if lines:
        lines.insert(0, tr(language, "ussd", "{key} Order reference", key=REFERENCE))
    else:
        lines = [tr(language, "ussd", "You have no orders yet.")]
    title = "\n".join(part for part in (note, tr(language, "ussd", "My orders")) if part)
    found, page = paged(language, title, lines, state.page)
    return found, State(Menu.ORDERS, page=page, order_ids=state.order_ids)


def find_in(tx: Tx, villager_id: uuid.UUID, typed: str, state: State) -> tuple[State, Note | None]:
    """Where her typed reference (:func:`~ledger.flows.ussd.menus.typed_reference`)
    leads from the reference screen ``state``: her order with it, a list of hers that
    share it, or that screen again (none of hers: another villager's is answered alike)."""
    found = of_villager_by_id_prefix_in(
        tx, villager_id=villager_id, id_prefix_hex=typed, limit=ORDERS_SHOWN_MAX
    )
    if not found:
        return State(Menu.ORDER_REFERENCE, order_ids=state.order_ids), Note.ORDER_UNKNOWN
    if len(found) == 1:
        return State(Menu.ORDER, order_id=str(found[0].id), order_ids=state.order_ids), None
    return State(Menu.ORDERS, order_ids=tuple(str(o.id) for o in found)), Note.REFERENCE_SHARED


def _one(language: str, order: Order, note: str | None) -> Screen:
    lines = [
        tr(
            language,
            "ussd",
            "Order {reference}: {amount}, {state}",
            reference=order_reference(order.id),
            amount=format_money(order.amount_minor, order.currency),
            state=_state_word(language, order.state),
        )
    ]
    if order.state is OrderState.CREATED:
        lines.append(tr(language, "ussd", "1 Get a pay code"))
    if order.state in (OrderState.DISPATCHED, OrderState.DELIVERED):
        lines.append(tr(language, "ussd", "2 Confirm delivered"))
    if order.state in (OrderState.PAID, OrderState.DISPATCHED, OrderState.DELIVERED):
        lines.append(tr(language, "ussd", "3 Open a dispute"))
    lines.append(tr(language, "ussd", "0 Back"))
    return ask(language, "\n".join(lines), note)


def screen(
    tx: Tx, language: str, state: State, villager_id: uuid.UUID, note: str | None
) -> tuple[Screen, State]:
    """The screen of an orders step (``state.menu`` one of the order menus)."""
    if state.menu is Menu.ORDER_REFERENCE:
        prompt = tr(
            language,
            "ussd",
            "Enter the order reference ({digits} characters, like 3FA2C9)",
            digits=REFERENCE_DIGITS,
        )
        return ask(language, prompt + "\n" + tr(language, "ussd", "0 Back"), note), state
    if state.menu is Menu.ORDERS or state.order_id is None:
        return _list(tx, language, state, villager_id, note)
    order = _hers(tx, villager_id, state.order_id)
    if order is None:
        listed = State(Menu.ORDERS, order_ids=state.order_ids)
        return _list(tx, language, listed, villager_id, None)
    if state.menu is Menu.ORDER:
        return _one(language, order, note), state
    prompt = tr(language, "ussd", "Why do you dispute it?\n1 Not arrived\n2 Damaged\n3 Wrong goods")
    return ask(language, prompt + "\n" + tr(language, "ussd", "0 Back"), note), state


def act(
    led: Ledger,
    *,
    language: str,
    villager_id: uuid.UUID,
    step: OrderAction,
    step_id: uuid.UUID,
    state: State,
) -> Screen | tuple[State, Note]:
    """Run the villager's step on her order through its flow: the ``END`` screen of what
    was done, or the order's screen again with a note (refused, nothing moved)."""
    again = State(Menu.ORDER, order_id=step.order_id, order_ids=state.order_ids)
    order = led.transact(lambda tx: _hers(tx, villager_id, step.order_id))
    if order is None:
        return State(Menu.ORDERS, order_ids=state.order_ids), Note.INVALID
    ref, amount = order_reference(order.id), format_money(order.escrow_minor, order.currency)
    try:
        if step.action is Action.PAY_CODE:
            issued = consent.make_code_in_session(  # the session verified the PIN
                led,
                villager_id=villager_id,
                purpose=consent.Purpose.PAYMENT,
                amount_minor=order.amount_minor,
                order_id=order.id,
            )
            return ended(
                tr(
                    language,
                    "ussd",
                    "Pay code: {code}\nFor {amount}, order {reference}. Valid {minutes}"
                    " minutes. Give it only to the shop.",
                    code=issued.code,
                    amount=format_money(order.amount_minor, order.currency),
                    reference=ref,
                    minutes=consent.CODE_TTL_S // 60,
                )
            )
        if step.action is Action.CONFIRM:
            orders.release_order(led, step_id=step_id, order_id=order.id)
            return ended(
                tr(
                    language,
                    "ussd",
                    "Order {reference} confirmed delivered. {amount} is paid to the seller.",
                    reference=ref,
                    amount=amount,
                )
            )
        orders.dispute_order(led, step_id=step_id, order_id=order.id, reason=step.reason or "")
    except (FlowError, MalformedRequest):
        return again, Note.ORDER_NOT_NOW
    return ended(
        tr(
            language,
            "ussd",
            "Your dispute of order {reference} is open. The money stays held until it is settled.",
            reference=ref,
        )
    )
