"""The station app's reads for an agent (``/v1/agents/{agent_id}/...``): its home screen's
figures, the orders at its station, and one of its villagers found by phone number.

Who may read: the agent itself; auditors and operators (another role: 403; an agent
naming another agent: 404, as if it did not exist). Each route is one flow read:

- ``GET .../station``: :func:`ledger.flows.cash.station.station_figures` (cash on hand,
  what open cash-outs promise of it, how many are open, commission credited this month
  in UTC); the float is ``GET .../float``;
- ``GET .../orders``: :func:`ledger.flows.orders.list_agent_orders`, the orders naming
  the agent, newest first, paged;
- ``GET .../villagers?phone=``: :func:`ledger.flows.villagers.find_station_villager`,
  the agent's own villager of that number or none: a number nobody has and another
  agent's villager answer alike (an empty list), so an agent learns nothing of other
  stations; a number that is no phone number is 400 ``invalid_parameter``.

Storefronts have no business here. Every answer is a read: nothing is written.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import page_limit, page_of, signed
from api.routes.orders import order_out
from api.routes.steps import time_text
from api.routes.villagers import villager_out
from api.schemas import OrderList, StationOut, VillagerList
from ledger.flows import orders, villagers
from ledger.flows.cash.station import StationFigures, station_figures
from ledger.flows.errors import Refused
from ledger.flows.villagers import PHONE_INPUT_LENGTH_MAX
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/agents", tags=["station"])

Caller = Annotated[ApiKey, Depends(signed)]
READERS = frozenset({Role.AGENT}) | READ_ALL


def station_out(s: StationFigures) -> dict[str, Any]:
    return {
        "agent_id": str(s.agent_id),
        "currency": s.currency,
        "cash_on_hand_minor": s.cash_on_hand_minor,
        "cash_promised_minor": s.cash_promised_minor,
        "open_cash_outs": s.open_cash_outs,
        "commission_month": s.commission_month,
        "commission_month_minor": s.commission_month_minor,
        "at": time_text(s.at),
    }


def _reader(caller: ApiKey, agent_id: uuid.UUID) -> None:
    """403 for a role that never reads here; 404 for an agent naming another agent."""
    require_role(caller, READERS)
    if caller.role is Role.AGENT and agent_id != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {agent_id}", 404)


@router.get(
    "/{agent_id}/station",
    response_model=StationOut,
    summary="An agent's station figures: cash on hand, open cash-outs, commission this month",
)
def get_station(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _reader(caller, agent_id)
    led = context(request).ledger
    return json_response(200, station_out(station_figures(led, agent_id=agent_id)))


@router.get(
    "/{agent_id}/orders",
    response_model=OrderList,
    summary="The orders at an agent's station (naming the agent), newest first",
)
def list_station_orders(
    request: Request,
    caller: Caller,
    agent_id: uuid.UUID,
    limit: Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)] = None,
    starting_after: Annotated[uuid.UUID | None, Query(description="last id of a page")] = None,
) -> Response:
    _reader(caller, agent_id)
    size = page_limit(request, limit)
    led = context(request).ledger
    found = orders.list_agent_orders(led, agent_id=agent_id, before=starting_after, limit=size + 1)
    return page_of(found, size, order_out)


@router.get(
    "/{agent_id}/villagers",
    response_model=VillagerList,
    summary="Find the agent's own villager by phone number (none: an empty list)",
)
def find_villager(
    request: Request,
    caller: Caller,
    agent_id: uuid.UUID,
    phone: Annotated[
        str,
        Query(
            min_length=1,
            max_length=PHONE_INPUT_LENGTH_MAX,
            description="E.164 with its country code (+254712345678)",
            examples=["+254712345678"],
        ),
    ],
) -> Response:
    _reader(caller, agent_id)
    led = context(request).ledger
    try:
        found = villagers.find_station_villager(led, agent_id=agent_id, phone=phone)
    except Refused as refused:  # a malformed query parameter of a read: 400, as documented
        raise ApiError("invalid_parameter", refused.detail, 400) from None
    data = [] if found is None else [villager_out(found)]
    return json_response(200, {"data": data, "has_more": False})
