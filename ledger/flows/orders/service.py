"""The operations on an order (see :mod:`ledger.flows.orders` for the states and the
money): each checks its request, then runs as a step (:func:`steps.run`): the order
locked, a replay answered from history, else the operation applied to the row, the legs
submitted, the row saved and the step recorded, its events in the same transaction."""

from __future__ import annotations

import dataclasses
import functools
import string
import uuid

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.flows import agent_float, events, parties, pickup
from ledger.flows import consent as consent_flow
from ledger.flows.agent_float.checks import check_amount, check_id
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.orders import legs as order_legs
from ledger.flows.orders import repository
from ledger.flows.orders.model import (
    AUTO_RELEASE_DAYS_MAX,
    DAY_US,
    DISPATCH_DEADLINE_HOURS_MAX,
    EXTENSION_DAYS_MAX,
    EXTENSIONS_MAX,
    HOLDING,
    HOUR_US,
    ORDER_NAMESPACE,
    PARTIAL_DELIVERIES_MAX,
    REFUND_WINDOW_DAYS_MAX,
    Decision,
    DeliveryMethod,
    Order,
    OrderRow,
    Source,
    State,
    Step,
    new_order_row,
)
from ledger.flows.orders.steps import (
    Outcome,
    delivery_method_in,
    emit,
    iso,
    refund_all_left,
    refund_from_escrow,
    release,
    release_event,
    release_rest,
    replay,
    request_text,
    run,
    submit,
    wrong_state,
)
from ledger.flows.parties import Kind
from ledger.limits import LIST_PAGE_SIZE_MAX, REASON_LENGTH_MAX

# -- delivery methods ---------------------------------------------------------------------


def get_delivery_methods(led: Ledger) -> list[DeliveryMethod]:
    """Every delivery method's terms, by name."""
    return led.transact(repository.delivery_methods)


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
    auto = _check_term(auto_release_days, "auto_release_days", 1, AUTO_RELEASE_DAYS_MAX)
    window = _check_term(refund_window_days, "refund_window_days", 0, REFUND_WINDOW_DAYS_MAX)
    deadline = _check_term(
        dispatch_deadline_hours, "dispatch_deadline_hours", 1, DISPATCH_DEADLINE_HOURS_MAX
    )

    def work(tx: Tx) -> DeliveryMethod:
        delivery_method_in(tx, name)  # only a known method is changed
        repository.update_delivery_method(
            tx,
            name=name,
            auto_release_days=auto,
            refund_window_days=window,
            dispatch_deadline_hours=deadline,
        )
        return delivery_method_in(tx, name)

    return led.transact(work)


# -- creating -----------------------------------------------------------------------------


def _check_parties(
    tx: Tx,
    *,
    storefront_id: uuid.UUID,
    currency: str,
    villager_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
) -> None:
    """The storefront, and the villager and agent when named, all hold ``currency``."""
    storefront = parties.get_party(tx, storefront_id, Kind.STOREFRONT)
    if storefront.currency != currency:
        raise Refused("currency_mismatch", f"the storefront takes {storefront.currency}")
    for party_id, kind in ((villager_id, Kind.VILLAGER), (agent_id, Kind.AGENT)):
        if party_id is not None and parties.get_party(tx, party_id, kind).currency != currency:
            raise Refused("currency_mismatch", f"{kind} {party_id} holds another currency")


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
    """Record a storefront's order (no money moves yet); idempotent by ``order_id``."""
    order_id = check_id(order_id, "order_id")
    check_id(storefront_id, "storefront_id")
    for value, name in ((villager_id, "villager_id"), (agent_id, "agent_id")):
        if value is not None:
            check_id(value, name)
    people = {"villager_id": villager_id, "agent_id": agent_id}
    request = request_text(
        Step.CREATE,
        order_id,
        {
            "storefront_id": storefront_id,
            "currency": currency,
            "amount_minor": amount_minor,
            "delivery_method": delivery_method,
            **people,
        },
    )
    step_id = uuid.uuid5(ORDER_NAMESPACE, f"create:{order_id}")
    try:
        replayed = replay(tx, step_id, request)
    except Conflict:
        raise Conflict("order_exists_different", f"order {order_id} exists, not as asked") from None
    if replayed is not None:
        return replayed
    check_amount(amount_minor)
    delivery_method_in(tx, delivery_method)
    _check_parties(tx, storefront_id=storefront_id, currency=currency, **people)
    row = new_order_row(
        order_id=order_id,
        storefront_id=storefront_id,
        currency=currency,
        amount_minor=amount_minor,
        delivery_method=delivery_method,
        now_us=tx.now_us,
        **people,
    )
    repository.insert(tx, row)
    repository.insert_step(tx, step_id=step_id, kind=Step.CREATE, row=row, request=request, legs=[])
    return row.order()


create_order = transactional(create_order_in)


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
    row = _payable(led, step_id, order_id)
    given = None
    if row is not None:
        given = consent_flow.by_pin(
            led,
            villager_id=villager_id,
            pin=pin,
            purpose=consent_flow.Purpose.PAYMENT,
            amount_minor=row.amount_minor,
            order_id=row.id,
        )
    return led.transact(
        lambda tx: pay_order_in(
            tx, step_id=step_id, order_id=order_id, source=Source.WALLET, consent=given
        )
    )


def _payable(led: Ledger, step_id: object, order_id: object) -> OrderRow | None:
    """The order, when a consent for paying it can matter: not for a replayed step, an
    order that is gone, not payable or names no villager (the payment step answers those)."""
    step_id, order_id = check_id(step_id, "step_id"), check_id(order_id, "order_id")

    def read(tx: Tx) -> OrderRow | None:
        row = repository.read(tx, order_id, lock=False)
        if repository.step_recorded(tx, step_id) or row is None:
            return None
        if row.state is not State.CREATED or row.villager_id is None:
            return None
        return row

    return led.transact(read)


def _pay_code_consent(
    led: Ledger,
    step_id: object,
    order_id: object,
    code: str,
    caller_id: uuid.UUID | None,
) -> consent_flow.Consent | None:
    row = _payable(led, step_id, order_id)
    if row is None or row.villager_id is None:
        return None
    return consent_flow.check_code(
        led,
        caller_id=caller_id or row.storefront_id,
        villager_id=row.villager_id,
        code=code,
        purpose=consent_flow.Purpose.PAYMENT,
        amount_minor=row.amount_minor,
        order_id=row.id,
    )


def _with_agent(tx: Tx, row: OrderRow, agent_id: uuid.UUID | None) -> OrderRow:
    """The created order, with the agent who takes its payment when it named none."""
    if row.state is not State.CREATED:
        raise wrong_state("order_not_payable", row, "only a created order is paid")
    if agent_id is None:
        return row
    if row.agent_id not in (None, agent_id):
        raise Refused("agent_mismatch", f"order {row.id} names another agent")
    if row.agent_id is None:
        agent = parties.get_party(tx, agent_id, Kind.AGENT)
        if agent.currency != row.currency:
            raise Refused("currency_mismatch", f"agent {agent_id} holds another currency")
    return dataclasses.replace(row, agent_id=agent_id)


def _check_payer(
    tx: Tx, row: OrderRow, source: Source, consent: consent_flow.Consent | None
) -> None:
    """A wallet pays with the villager's consent (used once here); cash through an agent."""
    if source is Source.CASH:
        if row.agent_id is None:
            raise Refused("agent_required", "a cash payment is taken by an agent")
        return
    if row.villager_id is None:
        raise Refused("villager_required", "a wallet payment needs the order's villager")
    consent_flow.require_in(
        tx,
        consent,
        villager_id=row.villager_id,
        purpose=consent_flow.Purpose.PAYMENT,
        amount_minor=row.amount_minor,
        order_id=row.id,
    )


def _dispatch_deadline_us(tx: Tx, row: OrderRow) -> int:
    """When an order paid now must be dispatched by: its method's deadline from now."""
    hours = delivery_method_in(tx, row.delivery_method).dispatch_deadline_hours
    return tx.now_us + hours * HOUR_US


def _pay(
    tx: Tx,
    row: OrderRow,
    *,
    step_id: uuid.UUID,
    source: Source,
    agent_id: uuid.UUID | None,
    consent: consent_flow.Consent | None,
) -> Outcome:
    row = _with_agent(tx, row, agent_id)
    _check_payer(tx, row, source, consent)
    legs = submit(tx, order_legs.payment_legs(row, step_id, source), order_legs.shortages(row))
    row = dataclasses.replace(
        row,
        state=State.PAID,
        payment_source=source,
        payment_transfer_id=legs[0].transfer.id,
        paid_minor=row.amount_minor,
        dispatch_deadline_at_us=_dispatch_deadline_us(tx, row),
    )
    emit(tx, events.ORDER_PAID, row, payment_source=source.value)
    if source is Source.CASH and row.agent_id is not None:
        agent_float.check_float_low(tx, row.agent_id)
    return row, legs


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
        check_id(agent_id, "agent_id")
    return run(
        tx,
        kind=Step.PAY,
        step_id=step_id,
        order_id=order_id,
        params={"source": source.value, "agent_id": agent_id},
        apply=functools.partial(
            _pay, step_id=step_id, source=source, agent_id=agent_id, consent=consent
        ),
    )


# -- dispatch, delivery, release ------------------------------------------------------------


def _issue_pickup_code(tx: Tx, row: OrderRow) -> None:
    if row.villager_id is None:  # pickup.needed says no code without a villager
        raise InvariantViolation(f"order {row.id} names no villager to send a pickup code")
    pickup.issue_in(
        tx,
        order_id=row.id,
        villager_id=row.villager_id,
        storefront_id=row.storefront_id,
        valid_until_us=row.auto_release_at_us,
    )


def _check_dispatch_in_time(tx: Tx, row: OrderRow) -> None:
    """A paid order is dispatched up to its deadline inclusive; a microsecond later the
    sweeper's to cancel and refund it: :class:`Refused` ``dispatch_deadline_passed`` (a
    state refusal, 409 in the API), nothing written. An order paid before the deadlines
    existed has none and is dispatched at any time."""
    due_us = row.dispatch_deadline_at_us
    if due_us is not None and tx.now_us > due_us:
        raise Refused(
            "dispatch_deadline_passed",
            f"order {row.id} was to be dispatched by {iso(due_us)}; the sweeper cancels"
            " and refunds it",
        )


def _dispatch(tx: Tx, row: OrderRow) -> Outcome:
    handover = pickup.needed(row.delivery_method, row.villager_id)
    if row.state is State.DISPATCHED and handover:
        _issue_pickup_code(tx, row)  # the storefront re-sends the villager's code
        return row, []
    if row.state is not State.PAID:
        raise wrong_state("order_not_dispatchable", row, "only a paid order is dispatched")
    _check_dispatch_in_time(tx, row)
    days = delivery_method_in(tx, row.delivery_method).auto_release_days
    row = dataclasses.replace(
        row,
        state=State.DISPATCHED,
        dispatched_at_us=tx.now_us,
        auto_release_at_us=tx.now_us + days * DAY_US,
    )
    emit(tx, events.ORDER_DISPATCHED, row, auto_release_at=iso(row.auto_release_at_us))
    if handover:
        _issue_pickup_code(tx, row)
    return row, []


def dispatch_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """The storefront sent the goods: the auto-release timer starts (N days, N by the
    order's delivery method). An order handed over at a station
    (:data:`ledger.flows.pickup.HANDOVER_METHODS`) that names a villager gets a pickup code,
    sent to the villager; dispatching such an order again (a new step id) sends a new code
    and voids the old one, the timer untouched (see :mod:`ledger.flows.pickup`). A paid
    order past its dispatch deadline (the sweeper has not cancelled it yet) is refused
    ``dispatch_deadline_passed``; at the deadline itself it is still in time."""
    return run(
        tx, kind=Step.DISPATCH, step_id=step_id, order_id=order_id, params={}, apply=_dispatch
    )


dispatch_order = transactional(dispatch_order_in)


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


def _pickup_proof(
    led: Ledger, step_id: object, order_id: object, code: str | None
) -> pickup.PickupProof | None:
    """Check a pickup code before the delivery's transaction, when it can matter: not for
    a replayed step, an order that is not dispatched or one handed over without a code
    (the delivery step answers those)."""
    if code is None:
        return None
    step_id, order_id = check_id(step_id, "step_id"), check_id(order_id, "order_id")

    def needs_code(tx: Tx) -> bool:
        row = repository.read(tx, order_id, lock=False)
        return (
            not repository.step_recorded(tx, step_id)
            and row is not None
            and row.state is State.DISPATCHED
            and pickup.needed(row.delivery_method, row.villager_id)
        )

    if not led.transact(needs_code):
        return None
    return pickup.check(led, order_id=order_id, code=code)


def _deliver(
    tx: Tx,
    row: OrderRow,
    *,
    step_id: uuid.UUID,
    amount_minor: int | None,
    pickup_proof: pickup.PickupProof | None,
) -> Outcome:
    if row.state is not State.DISPATCHED:
        raise wrong_state("order_not_deliverable", row, "only a dispatched order is delivered")
    left = row.escrow_minor
    final = amount_minor is None or amount_minor == left
    if pickup.needed(row.delivery_method, row.villager_id):
        pickup.require_in(tx, pickup_proof, order_id=row.id, final=final)
    if amount_minor is None or final:
        row = dataclasses.replace(row, state=State.DELIVERED)
        emit(tx, events.ORDER_DELIVERED, row, delivered_minor=left, partial=False)
        return row, []
    if amount_minor > left:
        raise Refused("amount_exceeds_escrow", f"only {left} of order {row.id} is left")
    if row.deliveries >= PARTIAL_DELIVERIES_MAX:
        raise Refused(
            "partial_deliveries_exceeded",
            f"at most {PARTIAL_DELIVERIES_MAX} partial deliveries",
        )
    row, legs = release(tx, row, step_id, amount_minor)
    row = dataclasses.replace(row, deliveries=row.deliveries + 1)
    emit(tx, events.ORDER_DELIVERED, row, delivered_minor=amount_minor, partial=True)
    release_event(tx, row, amount_minor, legs)
    return row, legs


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
        check_amount(amount_minor)
    return run(
        tx,
        kind=Step.DELIVER,
        step_id=step_id,
        order_id=order_id,
        params={"amount_minor": amount_minor},
        apply=functools.partial(
            _deliver, step_id=step_id, amount_minor=amount_minor, pickup_proof=pickup_proof
        ),
    )


def _release(tx: Tx, row: OrderRow, *, step_id: uuid.UUID) -> Outcome:
    if row.state not in (State.DISPATCHED, State.DELIVERED):
        raise wrong_state(
            "order_not_releasable", row, "only a dispatched or delivered order is released"
        )
    if row.state is State.DISPATCHED and pickup.needed(row.delivery_method, row.villager_id):
        raise Refused(
            "pickup_code_required",
            f"order {row.id} is delivered with the villager's pickup code first",
        )
    return release_rest(tx, row, step_id)


def release_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """Release all the order has left in escrow to the seller, the agent and the platform
    (a dispatched order: the villager confirms early; a delivered one: as agreed). An
    order handed over at a station is not released early while dispatched: the villager's
    confirmation there is the delivery with her pickup code (``pickup_code_required``),
    then release."""
    return run(
        tx,
        kind=Step.RELEASE,
        step_id=step_id,
        order_id=order_id,
        params={},
        apply=functools.partial(_release, step_id=step_id),
    )


release_order = transactional(release_order_in)


# -- disputes and timers ------------------------------------------------------------------


def _dispute(tx: Tx, row: OrderRow, *, reason: str) -> Outcome:
    if row.state not in HOLDING:
        raise wrong_state(
            "order_not_disputable",
            row,
            "only a paid, dispatched or delivered order is disputed",
        )
    at = row.auto_release_at_us
    row = dataclasses.replace(
        row,
        disputed_from=row.state,
        state=State.DISPUTED,
        auto_release_at_us=None,
        timer_remaining_us=None if at is None else max(0, at - tx.now_us),
    )
    emit(tx, events.ORDER_DISPUTED, row, reason=reason)
    return row, []


def dispute_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, reason: str) -> Order:
    """The villager disputes a paid, dispatched or delivered order: the auto-release timer
    pauses (what it had left is kept) until :func:`resolve_dispute`."""
    if not isinstance(reason, str) or not 1 <= len(reason) <= REASON_LENGTH_MAX:
        raise Refused("reason_invalid", f"a reason is 1-{REASON_LENGTH_MAX} characters")
    return run(
        tx,
        kind=Step.DISPUTE,
        step_id=step_id,
        order_id=order_id,
        params={"reason": reason},
        apply=functools.partial(_dispute, reason=reason),
    )


dispute_order = transactional(dispute_order_in)


def _resume(tx: Tx, row: OrderRow) -> OrderRow:
    """Back to the state the dispute came from, the paused timer running again."""
    remaining = row.timer_remaining_us
    return dataclasses.replace(
        row,
        state=row.disputed_from or row.state,
        disputed_from=None,
        timer_remaining_us=None,
        auto_release_at_us=None if remaining is None else tx.now_us + remaining,
    )


def _resolve(tx: Tx, row: OrderRow, *, step_id: uuid.UUID, decision: Decision) -> Outcome:
    if row.state is not State.DISPUTED:
        raise wrong_state("order_not_disputed", row, "only a disputed order is resolved")
    if decision is Decision.RESUME:
        row = _resume(tx, row)
        emit(tx, events.ORDER_DISPUTE_RESOLVED, row, decision=decision.value)
        return row, []
    if decision is Decision.RELEASE:
        row, legs = release_rest(tx, row, step_id)
        emit(tx, events.ORDER_DISPUTE_RESOLVED, row, decision=decision.value)
        return row, legs
    left = row.escrow_minor
    row, legs = refund_all_left(tx, row, step_id)
    row = dataclasses.replace(
        row,
        state=State.RELEASED if row.released_minor > 0 else State.REFUNDED,
        disputed_from=None,
        timer_remaining_us=None,
    )
    emit(tx, events.ORDER_DISPUTE_RESOLVED, row, decision=decision.value)
    emit(tx, events.ORDER_REFUNDED, row, refunded_now_minor=left, after_release=False)
    return row, legs


def resolve_dispute_in(
    tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, decision: Decision
) -> Order:
    """End a dispute: ``refund`` (for the villager: what is left in escrow goes back),
    ``release`` (for the storefront: it is released now), or ``resume`` (withdrawn: the
    order goes back to its state and its timer runs again with the time it had left)."""
    try:
        decision = Decision(decision)
    except ValueError:
        raise Refused("decision_invalid", "a decision is refund, release or resume") from None
    return run(
        tx,
        kind=Step.RESOLVE,
        step_id=step_id,
        order_id=order_id,
        params={"decision": decision.value},
        apply=functools.partial(_resolve, step_id=step_id, decision=decision),
    )


resolve_dispute = transactional(resolve_dispute_in)


def _extend(tx: Tx, row: OrderRow, *, days: int) -> Outcome:
    if row.auto_release_at_us is not None:
        row = dataclasses.replace(row, auto_release_at_us=row.auto_release_at_us + days * DAY_US)
    elif row.timer_remaining_us is not None:
        row = dataclasses.replace(row, timer_remaining_us=row.timer_remaining_us + days * DAY_US)
    else:
        raise wrong_state("order_timer_not_running", row, "only a dispatched order has a timer")
    if row.extensions >= EXTENSIONS_MAX:
        raise Refused("extensions_exceeded", f"at most {EXTENSIONS_MAX} extensions per order")
    row = dataclasses.replace(row, extensions=row.extensions + 1)
    emit(
        tx,
        events.ORDER_EXTENDED,
        row,
        days=days,
        auto_release_at=iso(row.auto_release_at_us),
        timer_remaining_us=row.timer_remaining_us,
    )
    return row, []


def extend_auto_release_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID, days: int) -> Order:
    """Push the order's auto-release timer ``days`` later (1..30; at most 5 times); a
    paused timer (disputed order) gets the days added to what it has left."""
    if type(days) is not int or not 1 <= days <= EXTENSION_DAYS_MAX:
        raise Refused("extension_invalid", f"an extension is 1..{EXTENSION_DAYS_MAX} days")
    return run(
        tx,
        kind=Step.EXTEND,
        step_id=step_id,
        order_id=order_id,
        params={"days": days},
        apply=functools.partial(_extend, days=days),
    )


extend_auto_release = transactional(extend_auto_release_in)


# -- cancel and refund ----------------------------------------------------------------------


def _cancel(tx: Tx, row: OrderRow, *, step_id: uuid.UUID) -> Outcome:
    if row.state not in (State.CREATED, State.PAID):
        raise wrong_state(
            "order_not_cancellable", row, "only an order not yet dispatched is cancelled"
        )
    left = row.escrow_minor
    row, legs = refund_all_left(tx, row, step_id)
    row = dataclasses.replace(row, state=State.CANCELLED)
    emit(tx, events.ORDER_CANCELLED, row, refunded_now_minor=left)
    return row, legs


def cancel_order_in(tx: Tx, *, step_id: uuid.UUID, order_id: uuid.UUID) -> Order:
    """Cancel an order before dispatch; a paid one is refunded in full to its payer."""
    return run(
        tx,
        kind=Step.CANCEL,
        step_id=step_id,
        order_id=order_id,
        params={},
        apply=functools.partial(_cancel, step_id=step_id),
    )


cancel_order = transactional(cancel_order_in)


def _refund_before_release(
    tx: Tx, row: OrderRow, *, step_id: uuid.UUID, amount_minor: int | None
) -> Outcome:
    if row.state is State.RELEASED:
        raise wrong_state("order_released", row, "a refund after release says after_release=True")
    if row.state is State.DISPUTED:
        raise wrong_state("order_disputed", row, "a disputed order is resolved")
    if row.state not in HOLDING:
        raise wrong_state("order_not_refundable", row, "the order holds nothing in escrow")
    left = row.escrow_minor
    refund_minor = left if amount_minor is None else amount_minor
    if refund_minor > left:
        raise Refused("amount_exceeds_escrow", f"only {left} of order {row.id} is left")
    row, legs = refund_from_escrow(tx, row, step_id, refund_minor)
    if refund_minor == left:
        row = dataclasses.replace(
            row,
            state=State.RELEASED if row.released_minor > 0 else State.REFUNDED,
            auto_release_at_us=None,
        )
    emit(tx, events.ORDER_REFUNDED, row, refunded_now_minor=refund_minor, after_release=False)
    return row, legs


def _check_refundable_after_release(tx: Tx, row: OrderRow, amount_minor: int | None) -> int:
    """A released order in its refund window gives back all it released; that amount."""
    if row.state is not State.RELEASED:
        raise wrong_state(
            "order_not_released", row, "a refund after release needs a released order"
        )
    if row.refund_until_us is not None and tx.now_us > row.refund_until_us:
        raise Refused(
            "refund_window_closed",
            f"order {row.id} could be refunded until {iso(row.refund_until_us)}",
        )
    released = row.released_minor
    if released == 0 or (amount_minor is not None and amount_minor != released):
        raise Refused("amount_invalid", f"a refund after release returns all {released} released")
    return released


def _refund_after_release(
    tx: Tx, row: OrderRow, *, step_id: uuid.UUID, amount_minor: int | None
) -> Outcome:
    released = _check_refundable_after_release(tx, row, amount_minor)
    reversals = order_legs.reversal_legs(row, step_id, repository.released_legs(tx, row.id))
    refunds = order_legs.refund_legs(row, step_id, released)
    legs = submit(tx, reversals + refunds, order_legs.shortages(row))
    row = dataclasses.replace(
        row,
        state=State.REFUNDED,
        released_minor=0,
        reversed_minor=row.reversed_minor + released,
        refunded_minor=row.refunded_minor + released,
    )
    emit(tx, events.ORDER_REFUNDED, row, refunded_now_minor=released, after_release=True)
    return row, legs


def refund_order_in(
    tx: Tx,
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
    if amount_minor is not None:
        check_amount(amount_minor)
    if not isinstance(after_release, bool):
        raise MalformedRequest("after_release must be a bool")
    refund = _refund_after_release if after_release else _refund_before_release
    return run(
        tx,
        kind=Step.REFUND,
        step_id=step_id,
        order_id=order_id,
        params={"amount_minor": amount_minor, "after_release": after_release},
        apply=functools.partial(refund, step_id=step_id, amount_minor=amount_minor),
    )


refund_order = transactional(refund_order_in)


# -- reading ------------------------------------------------------------------------------


def get_order_in(tx: Tx, *, order_id: uuid.UUID) -> Order:
    """The order, or :class:`~ledger.flows.errors.NotFound`."""
    row = repository.read(tx, check_id(order_id, "order_id"), lock=False)
    if row is None:
        raise NotFound("order_not_found", f"no order {order_id}")
    return row.order()


get_order = transactional(get_order_in)


def latest_of_villager_in(tx: Tx, *, villager_id: uuid.UUID, limit: int) -> list[Order]:
    """A villager's latest orders, newest first, at most ``limit`` (1..1000)."""
    check_id(villager_id, "villager_id")
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")
    rows = repository.latest_of_villager(tx, villager_id=villager_id, limit=limit)
    return [row.order() for row in rows]


ID_HEX_DIGITS = 32
"""The hex digits of an order id (a UUID)."""


def of_villager_by_id_prefix_in(
    tx: Tx, *, villager_id: uuid.UUID, id_prefix_hex: str, limit: int
) -> list[Order]:
    """A villager's orders whose id begins with the hex digits ``id_prefix_hex``
    (1..:data:`ID_HEX_DIGITS` of ``0-9a-fA-F``; an exact match of those digits, read as a
    range of the primary key), newest first, at most ``limit`` (1..1000). Another
    villager's orders are never among them."""
    check_id(villager_id, "villager_id")
    if not (
        isinstance(id_prefix_hex, str)
        and 0 < len(id_prefix_hex) <= ID_HEX_DIGITS
        and all(c in string.hexdigits for c in id_prefix_hex)
    ):
        raise MalformedRequest(f"id_prefix_hex must be 1..{ID_HEX_DIGITS} hex digits")
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")
    low = uuid.UUID(hex=id_prefix_hex.ljust(ID_HEX_DIGITS, "0"))
    high = uuid.UUID(hex=id_prefix_hex.ljust(ID_HEX_DIGITS, "f"))
    rows = repository.of_villager_in_id_range(
        tx, villager_id=villager_id, low=low, high=high, limit=limit
    )
    return [row.order() for row in rows]


def list_orders(
    led: Ledger,
    *,
    storefront_id: uuid.UUID,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> list[Order]:
    """A storefront's orders, oldest first, after the cursor ``after`` (an order id of
    that storefront; another answers ``[]``), at most ``limit`` (1..1000)."""
    check_id(storefront_id, "storefront_id")
    if after is not None:
        check_id(after, "after")
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")
    rows = led.transact(
        functools.partial(
            repository.page_of_storefront, storefront_id=storefront_id, after=after, limit=limit
        )
    )
    return [row.order() for row in rows]


def list_agent_orders(
    led: Ledger,
    *,
    agent_id: uuid.UUID,
    before: uuid.UUID | None = None,
    limit: int = 100,
) -> list[Order]:
    """The orders naming the agent (paid or to be handed over at its station), newest
    first, older than the cursor ``before`` (an order id of that agent; another answers
    ``[]``), at most ``limit`` (1..1000)."""
    check_id(agent_id, "agent_id")
    if before is not None:
        check_id(before, "before")
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")
    rows = led.transact(
        functools.partial(repository.page_of_agent, agent_id=agent_id, before=before, limit=limit)
    )
    return [row.order() for row in rows]
