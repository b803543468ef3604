"""``/v1/orders``: order escrow (``ledger.flows.orders``) for storefronts and agents.

Who may do what (another role: 403; another tenant's order: 404, as if it did not exist):

==========  ==========================================================================
create      a storefront, for itself (its party's id is its principal's id)
pay         the agent taking the villager's cash or acting for the villager's wallet
            (it becomes the order's agent); an operator naming the agent; the order's
            storefront from the wallet only (its checkout). A wallet payment carries
            the villager's pay code for this order and amount (``consent_code``):
            without it 422 ``consent_required``, and nothing is held
dispatch    the order's storefront; again on a dispatched order handed over at a
            station: a new pickup code for the villager, the old one void
deliver     the order's agent (the villager confirms at the agent): all, or a part; an
            order handed over at a station (``pickup_point``, ``agent_delivery``) needs
            the villager's ``pickup_code`` (422 ``pickup_code_required`` /
            ``pickup_code_invalid``; a wrong one counts, three void it)
release     the order's agent (the villager confirms early)
dispute     the order's agent, for the villager
resolve     an operator (arbitration)
extend-     an operator: the auto-release timer ``days`` later (1..30, at most 5 times)
release
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
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import page_limit, page_of, signed, write, write_async
from api.routes.steps import id_text, step_id, time_text
from api.schemas import (
    OrderCreate,
    OrderDeliver,
    OrderDispute,
    OrderExtend,
    OrderList,
    OrderOut,
    OrderPay,
    OrderRefund,
    OrderResolve,
    OrderStep,
)
from ledger import Ledger
from ledger.flows import orders
from ledger.flows.orders import Decision, Order, Source
from ledger.limits import API_PAGE_SIZE_MAX

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
        "dispatch_deadline_at": time_text(o.dispatch_deadline_at),
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
    found = orders.get_order(led, order_id=order_id)
    if not _sees(caller, found):
        raise ApiError("order_not_found", f"no order {order_id}", 404)
    return found


@router.post(
    "",
    status_code=201,
    response_model=OrderOut,
    summary="Create an order of the caller's storefront (no money moves yet)",
    openapi_extra={"x-request-model": "OrderCreate"},
)
def create_order(request: Request, caller: Caller) -> Response:
    require_role(caller, STOREFRONT)

    def act(led: Ledger, data: OrderCreate) -> Order:
        return orders.create_order(
            led,
            order_id=data.id,
            storefront_id=caller.principal_id,
            currency=data.currency,
            amount_minor=data.amount_minor,
            delivery_method=data.delivery_method,
            villager_id=data.villager_id,
            agent_id=data.agent_id,
        )

    return write(request, caller, OrderCreate, act, order_out, status=201, location="/v1/orders")


@router.get("", response_model=OrderList, summary="List a storefront's orders, oldest first")
def list_orders(
    request: Request,
    caller: Caller,
    limit: Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)] = None,
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
    found = orders.list_orders(led, storefront_id=shop, after=starting_after, limit=size + 1)
    return page_of(found, size, order_out)


@router.get("/{order_id}", response_model=OrderOut, summary="Get an order")
def get_order(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
    return json_response(200, order_out(_order(request, caller, order_id)))


StepModel = TypeVar(
    "StepModel",
    OrderStep,
    OrderPay,
    OrderDeliver,
    OrderDispute,
    OrderResolve,
    OrderRefund,
    OrderExtend,
)
StepCall = Callable[[Ledger, ApiKey, uuid.UUID, uuid.UUID, StepModel], Order]
"""A step's flow call: (ledger, caller, order id, step id, the parsed body) -> the order."""


def _step_route(
    name: str,
    summary: str,
    model: type[StepModel],
    roles: frozenset[Role],
    call: StepCall[StepModel],
) -> None:
    """Register ``POST /v1/orders/{order_id}/<name>``: the caller's role is checked, the
    POST runs once per Idempotency-Key, the body is parsed as ``model`` (an empty body is
    ``model()`` when every field has a default), the order must be visible to the caller,
    and the step's permanent id is the client's ``step_id`` or one derived from the key."""
    empty_ok = all(not field.is_required() for field in model.model_fields.values())

    async def route(request: Request, caller: Caller, order_id: uuid.UUID) -> Response:
        require_role(caller, roles)

        def act(led: Ledger, data: StepModel) -> Order:
            _order(request, caller, order_id)
            return call(led, caller, order_id, step_id(request, caller, data.step_id), data)

        return await write_async(request, caller, model, act, order_out, empty_ok=empty_ok)

    router.add_api_route(
        f"/{{order_id}}/{name}",
        route,
        methods=["POST"],
        name=name,
        response_model=OrderOut,
        summary=summary,
        openapi_extra={"x-request-model": model.__name__},
    )


def _plain(step: Callable[..., Order]) -> StepCall[OrderStep]:
    """The call of a step that takes nothing but its ids."""
    return lambda led, _caller, order_id, sid, _data: step(led, step_id=sid, order_id=order_id)


def _paying_agent(caller: ApiKey, data: OrderPay) -> uuid.UUID | None:
    """An agent pays as itself; an operator names the agent of a cash payment; a
    storefront's checkout pays from the wallet only, and names no agent."""
    if caller.role is Role.STOREFRONT:
        if data.source != Source.WALLET.value:
            raise ApiError("forbidden", "a cash payment is taken by an agent", 403)
        if data.agent_id is not None:
            raise ApiError("validation_failed", "a storefront names no agent: leave it out")
        return None
    if caller.role is not Role.AGENT:
        return data.agent_id
    if data.agent_id not in (None, caller.principal_id):
        raise ApiError("validation_failed", "an agent pays as itself: leave agent_id out")
    return caller.principal_id


def _pay(led: Ledger, caller: ApiKey, order_id: uuid.UUID, sid: uuid.UUID, data: OrderPay) -> Order:
    return orders.pay_order(
        led,
        step_id=sid,
        order_id=order_id,
        source=Source(data.source),
        agent_id=_paying_agent(caller, data),
        consent_code=data.consent_code,
        caller_id=caller.principal_id,
    )


_step_route(
    "pay",
    "Pay the order into escrow: in cash at the agent, or from the villager's wallet with"
    " the pay code the villager made for this order (an agent, or the storefront's checkout)",
    OrderPay,
    EITHER,
    _pay,
)
_step_route(
    "dispatch",
    "The storefront sent the goods: the auto-release timer starts",
    OrderStep,
    SHOP,
    _plain(orders.dispatch_order),
)
_step_route(
    "deliver",
    "The goods arrived: all of them, or a part (which is released now)",
    OrderDeliver,
    AGENT,
    lambda led, _caller, order_id, sid, data: orders.deliver_order(
        led,
        step_id=sid,
        order_id=order_id,
        amount_minor=data.amount_minor,
        pickup_code=data.pickup_code,
    ),
)
_step_route(
    "release",
    "Release what is left in escrow (the villager confirms early)",
    OrderStep,
    AGENT,
    _plain(orders.release_order),
)
_step_route(
    "dispute",
    "The villager disputes the order: its auto-release timer pauses",
    OrderDispute,
    AGENT,
    lambda led, _caller, order_id, sid, data: orders.dispute_order(
        led, step_id=sid, order_id=order_id, reason=data.reason
    ),
)
_step_route(
    "resolve",
    "End a dispute: refund, release or resume (operators)",
    OrderResolve,
    OPERATOR,
    lambda led, _caller, order_id, sid, data: orders.resolve_dispute(
        led, step_id=sid, order_id=order_id, decision=Decision(data.decision)
    ),
)
_step_route(
    "cancel",
    "Cancel an order before dispatch; a paid one is refunded in full",
    OrderStep,
    EITHER,
    _plain(orders.cancel_order),
)
_step_route(
    "refund",
    "Refund the payer (a part, all that is left, or after release)",
    OrderRefund,
    SHOP,
    lambda led, _caller, order_id, sid, data: orders.refund_order(
        led,
        step_id=sid,
        order_id=order_id,
        amount_minor=data.amount_minor,
        after_release=data.after_release,
    ),
)
_step_route(
    "extend-release",
    "Push the auto-release timer some days later (operators; a paused timer gets the days"
    " added to what it has left)",
    OrderExtend,
    OPERATOR,
    lambda led, _caller, order_id, sid, data: orders.extend_auto_release(
        led, step_id=sid, order_id=order_id, days=data.days
    ),
)
