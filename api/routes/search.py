"""``/v1/back-office``: the back office's reads (:mod:`ledger.flows.lookup`), for the
console's search, account and order pages and its overview.

=================================================  ======================================
``GET /v1/back-office/search?q=``                  what the text names exactly: an object
                                                   by id, a villager by phone, payouts and
                                                   suspense items by the provider's
                                                   reference
``GET /v1/back-office/accounts/{id}/history``      an account, its holder and a page of
                                                   its statement with the posted counters
                                                   after each transfer
``GET /v1/back-office/orders/{id}/timeline``       an order and a page of its events
``GET /v1/back-office/float-alarms``               agents whose float is below their
                                                   threshold, with their float now
=================================================  ======================================

They read the streaming replica when the service has one (``Settings.read_database_url``:
what the primary committed a moment ago may not show yet), else the primary.

Auditors and operators only (they read everything); storefronts and agents are refused
(403), so a search never tells a tenant which phone numbers are registered. Every list is
paged (``limit`` 1..100, ``starting_after``); money is integer minor units.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response
from api.principals import ApiKey
from api.problems import ApiError
from api.routes.cash import float_out
from api.routes.common import account_out, page_limit, signed, transfer_out
from api.routes.orders import order_out
from api.routes.steps import time_text
from api.schemas import AccountHistoryOut, FloatAlarmList, OrderTimelineOut, SearchOut
from ledger.flows import lookup
from ledger.flows.events import Event
from ledger.flows.lookup import AccountHistory, HistoryLine, Hit
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/back-office", tags=["back office"])

Caller = Annotated[ApiKey, Depends(signed)]
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=lookup.QUERY_LENGTH_MAX,
        description="An id, a phone number (+254712345678) or a provider's reference",
        examples=["+254712345678"],
    ),
]


def hit_out(h: Hit) -> dict[str, Any]:
    return {
        "kind": h.kind,
        "id": str(h.id),
        "matched": h.matched,
        "label": h.label,
        "currency": h.currency,
        "amount_minor": h.amount_minor,
    }


def line_out(line: HistoryLine) -> dict[str, Any]:
    return {
        "transfer": transfer_out(line.transfer),
        "debits_posted_after": line.debits_posted_after,
        "credits_posted_after": line.credits_posted_after,
        "balance_posted_after": line.credits_posted_after - line.debits_posted_after,
    }


def history_out(h: AccountHistory) -> dict[str, Any]:
    holder = None
    if h.owner is not None:
        o = h.owner
        holder = {"party_id": str(o.party_id), "role": o.role, "kind": o.kind, "name": o.name}
    return {
        "account": account_out(h.account),
        "holder": holder,
        "data": [line_out(line) for line in h.lines],
        "has_more": h.has_more,
    }


def event_out(e: Event) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "id": str(e.id),
        "type": e.type,
        "payload": e.payload,
        "created_at": time_text(e.created_at),
    }


@router.get("/search", response_model=SearchOut, summary="Find objects by id, phone or reference")
def search(request: Request, caller: Caller, q: SearchText) -> Response:
    require_role(caller, READ_ALL)
    hits = lookup.search(context(request).reads, q)
    return json_response(200, {"query": q.strip(), "data": [hit_out(h) for h in hits]})


@router.get(
    "/accounts/{account_id}/history",
    response_model=AccountHistoryOut,
    summary="An account's statement with its posted counters after each transfer",
)
def account_history(
    request: Request,
    caller: Caller,
    account_id: uuid.UUID,
    limit: Limit = None,
    starting_after: Annotated[
        uuid.UUID | None, Query(description="the last transfer id of the previous page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    found = lookup.account_history(
        context(request).reads,
        account_id=account_id,
        after=starting_after,
        limit=page_limit(request, limit),
    )
    if found is None:
        raise ApiError("invalid_parameter", "starting_after names no transfer of this account")
    return json_response(200, history_out(found))


@router.get(
    "/orders/{order_id}/timeline",
    response_model=OrderTimelineOut,
    summary="An order and its events, in the order they happened",
)
def order_timeline(
    request: Request,
    caller: Caller,
    order_id: uuid.UUID,
    limit: Limit = None,
    starting_after: Annotated[
        int | None, Query(ge=0, le=2**62, description="the last seq of the previous page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    found = lookup.order_timeline(
        context(request).reads,
        order_id=order_id,
        after_seq=starting_after or 0,
        limit=page_limit(request, limit),
    )
    data = [event_out(e) for e in found.events]
    return json_response(
        200, {"order": order_out(found.order), "data": data, "has_more": found.has_more}
    )


@router.get(
    "/float-alarms",
    response_model=FloatAlarmList,
    summary="Agents whose float is below their low-float threshold, with their float now",
)
def float_alarms(
    request: Request,
    caller: Caller,
    limit: Limit = None,
    starting_after: Annotated[
        uuid.UUID | None, Query(description="the last agent id of the previous page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    found, has_more = lookup.float_alarms(
        context(request).reads, after=starting_after, limit=page_limit(request, limit)
    )
    return json_response(200, {"data": [float_out(f) for f in found], "has_more": has_more})


__all__ = ["router"]
