"""``/v1/orders``: order escrow (``ledger.flows.orders``) for storefronts and agents.

Who may do what (another role: 403; another tenant's order: 404, as if it did not exist):

==========  ==========================================================================
create      a storefront, for itself (its party's id is its principal's id)
pay         the agent taking the villager's cash or acting for the villager's wallet
            (it becomes the order's agent); an operator naming the agent
dispatch    the order's storefront
deliver     the order's agent (the villager confirms at the agent): all, or a part
release     the order's agent (the villager confirms early)
dispute     the order's agent, for the villager
resolve     an operator (arbitration)
cancel      the order's storefront or agent, before dispatch
refund      the order's storefront
read        the order's storefront; an agent the orders naming it or no agent yet (the
            villager brings the order id); auditors and operators all
==========  ==========================================================================

An operator may do every step but create. Every step answers the order as it left it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError, flow_call
from api.routes.common import PAGE_SIZE_MAX, body_of, page_limit, signed
from api.routes.steps import id_text, parse, step_id, time_text
from api.schemas import (
    OrderCreate,
    OrderDeliver,
    OrderDispute,
    OrderList,
    OrderOut,
    OrderPay,
    OrderRefund,
    OrderResolve,
    OrderStep,
)
from ledger.flows import orders
from ledger.flows.orders import Decision, Order, Source

router = APIRouter(prefix="/v1/orders", tags=["orders"])

Caller = Annotated[ApiKey, Depends(signed)]

STOREFRONT = frozenset({Role.STOREFRONT})
AGENT = frozenset({Role.AGENT, Role.OPERATOR})
SHOP = frozenset({Role.STOREFRONT, Role.OPERATOR})
EITHER = frozenset({Role.STOREFRONT, Role.AGENT, Role.OPERATOR})
OPERATOR = frozenset({Role.OPERATOR})


def order_out(o: Order) -> dict[str, Any]:
    return {
        "id": str(o.id),
        "storefront_id": str(o.storefront_id),
        "villager_id": id_text(o.villager_id),
        "agent_id": id_text(o.agent_id),
        "currency": o.currency,
        "amount_minor": o.amount_minor,
        "delivery_method": o.delivery_method,
        "state": o.state.value,
        "payment_source": None if o.payment_source is None else o.payment_source.value,
        "paid_minor": o.paid_minor,
        "released_minor": o.released_minor,
        "refunded_minor": o.refunded_minor,
        "reversed_minor": o.reversed_minor,
        "escrow_minor": o.escrow_minor,
        "deliveries": o.deliveries,
        "extensions": o.extensions,
        "disputed_from": None if o.disputed_from is None else o.disputed_from.value,
        "auto_release_at": time_text(o.auto_release_at),
        "refund_until": time_text(o.refund_until),
        "created_at": time_text(o.created_at),
        "updated_at": time_text(o.updated_at),
        "dispatched_at": time_text(o.dispatched_at),
        "released_at": time_text(o.released_at),
    }


def _sees(caller: ApiKey, order: Order) -> bool:
    if caller.role in READ_ALL:
        return True
    if caller.role is Role.STOREFRONT:
        return order.storefront_id == caller.principal_id
    if caller.role is Role.AGENT:
        return order.agent_id in (None, caller.principal_id)
    return False


def _order(request: Request, caller: ApiKey, order_id: uuid.UUID) -> Order:
    """The order if the caller may see it; 404 ``order_not_found`` alike otherwise."""
    led = context(request).ledger
    found = flow_call(lambda: orders.get_order(led, order_id=order_id))
    if not _sees(caller, found):
        raise ApiError("order_not_found", f"no order {order_id}", 404)
    return found


def _created(order: Order) -> Response:
    return json_response(201, order_out(order), {"Location": f"/v1/orders/{order.id}"})


@router.post(
    "",
    status_code=201,
    response_model=OrderOut,
    summary="Create an order of the caller's storefront (no money moves yet)",
    openapi_extra={"x-request-model": "OrderCreate"},
)
def create_order(request: Request, caller: Caller) -> Response:
    require_role(caller, STOREFRONT)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, OrderCreate)
        made = flow_call(
            lambda: orders.create_order(
                led,
                order_id=data.id,
                storefront_id=caller.principal_id,
                currency=data.currency,
                amount_minor=data.amount_minor,
                delivery_method=data.delivery_method,
                villager_id=data.villager_id,
                agent_id=data.agent_id,
            )
        )
        return _created(made)

    return run_post(request, caller, body, handle)


@router.get("", response_model=OrderList, summary="List a storefront's orders, oldest first")
def list_orders(
    request: Request,
    caller: Caller,
    limit: Annotated[int | None, Query(ge=1, le=PAGE_SIZE_MAX)] = None,
    starting_after: Annotated[uuid.UUID | None, Query(description="last id of a page")] = None,
    storefront_id: Annotated[
        uuid.UUID | None, Query(description="auditors and operators: whose orders (required)")
    ] = None,
) -> Response:
    require_role(caller, STOREFRONT | READ_ALL)
    if caller.role is Role.STOREFRONT:
        if storefront_id not in (None, caller.principal_id):
            return json_response(200, {"data": [], "has_more": False})
        storefront_id = caller.principal_id
    elif storefront_id is None:
        raise ApiError("invalid_parameter", "storefront_id is required for this role")
    size = page_limit(request, limit)
    led = context(request).ledger
    shop = storefront_id
    found = flow_call(
        lambda: orders.list_orders(led, storefront_id=shop, after=starting_after, limit=size + 1)
    )
    return json_response(
        200, {"data": [order_out(o) for o in found[:size]], "has_more": len(found) > size}
    )


@router.get("/{order_id}", response_model=OrderOut, summary="Get an order")
def get_order(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    return json_response(200, order_out(_order(request, caller, order_id)))


def _step(
    request: Request,
    caller: Caller,
    order_id: uuid.UUID,
    run: Callable[[uuid.UUID], Order],
    step: uuid.UUID | None,
) -> Response:
    """A step on a visible order: ``run(step_id)`` answers the order it left."""
    _order(request, caller, order_id)
    sid = step_id(request, caller, step)
    return json_response(200, order_out(flow_call(lambda: run(sid))))


def _post(
    request: Request,
    caller: ApiKey,
    roles: frozenset[Role],
    handle: Callable[[bytes], Response],
) -> Response:
    require_role(caller, roles)
    body = body_of(request)
    return run_post(request, caller, body, lambda: handle(body))


@router.post(
    "/{order_id}/pay",
    response_model=OrderOut,
    summary="Pay the order into escrow (an agent: in cash, or from the villager's wallet)",
    openapi_extra={"x-request-model": "OrderPay"},
)
def pay(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderPay)
        agent_id = data.agent_id
        if caller.role is Role.AGENT:
            if agent_id not in (None, caller.principal_id):
                raise ApiError("validation_failed", "an agent pays as itself: leave agent_id out")
            agent_id = caller.principal_id
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.pay_order(
                led, step_id=sid, order_id=order_id, source=Source(data.source), agent_id=agent_id
            ),
            data.step_id,
        )

    return _post(request, caller, AGENT, handle)


@router.post(
    "/{order_id}/dispatch",
    response_model=OrderOut,
    summary="The storefront sent the goods: the auto-release timer starts",
    openapi_extra={"x-request-model": "OrderStep"},
)
def dispatch(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderStep, empty_ok=True)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.dispatch_order(led, step_id=sid, order_id=order_id),
            data.step_id,
        )

    return _post(request, caller, SHOP, handle)


@router.post(
    "/{order_id}/deliver",
    response_model=OrderOut,
    summary="The goods arrived: all of them, or a part (which is released now)",
    openapi_extra={"x-request-model": "OrderDeliver"},
)
def deliver(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderDeliver, empty_ok=True)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.deliver_order(
                led, step_id=sid, order_id=order_id, amount_minor=data.amount_minor
            ),
            data.step_id,
        )

    return _post(request, caller, AGENT, handle)


@router.post(
    "/{order_id}/release",
    response_model=OrderOut,
    summary="Release what is left in escrow (the villager confirms early)",
    openapi_extra={"x-request-model": "OrderStep"},
)
def release(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderStep, empty_ok=True)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.release_order(led, step_id=sid, order_id=order_id),
            data.step_id,
        )

    return _post(request, caller, AGENT, handle)


@router.post(
    "/{order_id}/dispute",
    response_model=OrderOut,
    summary="The villager disputes the order: its auto-release timer pauses",
    openapi_extra={"x-request-model": "OrderDispute"},
)
def dispute(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderDispute)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.dispute_order(
                led, step_id=sid, order_id=order_id, reason=data.reason
            ),
            data.step_id,
        )

    return _post(request, caller, AGENT, handle)


@router.post(
    "/{order_id}/resolve",
    response_model=OrderOut,
    summary="End a dispute: refund, release or resume (operators)",
    openapi_extra={"x-request-model": "OrderResolve"},
)
def resolve(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderResolve)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.resolve_dispute(
                led, step_id=sid, order_id=order_id, decision=Decision(data.decision)
            ),
            data.step_id,
        )

    return _post(request, caller, OPERATOR, handle)


@router.post(
    "/{order_id}/cancel",
    response_model=OrderOut,
    summary="Cancel an order before dispatch; a paid one is refunded in full",
    openapi_extra={"x-request-model": "OrderStep"},
)
def cancel(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderStep, empty_ok=True)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.cancel_order(led, step_id=sid, order_id=order_id),
            data.step_id,
        )

    return _post(request, caller, EITHER, handle)


@router.post(
    "/{order_id}/refund",
    response_model=OrderOut,
    summary="Refund the payer (a part, all that is left, or after release)",
    openapi_extra={"x-request-model": "OrderRefund"},
)
def refund(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    led = context(request).ledger

    def handle(body: bytes) -> Response:
        data = parse(request, body, OrderRefund, empty_ok=True)
        return _step(
            request,
            caller,
            order_id,
            lambda sid: orders.refund_order(
                led,
                step_id=sid,
                order_id=order_id,
                amount_minor=data.amount_minor,
                after_release=data.after_release,
            ),
            data.step_id,
        )

    return _post(request, caller, SHOP, handle)
