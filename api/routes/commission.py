"""Agents' commission payouts (``ledger.flows.commission``): a month (UTC) per currency.

Who may do what (another role: 403):

=======================================  ================================================
``POST /v1/commission-payouts``          operators: pay a month that is over (422
                                         ``month_not_over`` otherwise) to the agents'
                                         floats (201, at once), or through a provider:
                                         a **proposal** (202, kind ``commission_payout``)
                                         another operator approves (``POST
                                         /v1/proposals/{id}/approve``, never the maker:
                                         422 ``proposal_maker_cannot_decide``); once per
                                         month and currency (again: 201 with the first
                                         payout, nothing moves; while one waits for
                                         approval: 409 ``commission_payout_proposed``)
``GET /v1/commission-payouts``           auditors, operators: payouts by month, paged
``GET /v1/commission-payouts/{id}``      auditors, operators: the payout and a page of
                                         its lines (who got what), by agent id
``GET /v1/agents/{agent_id}/commission`` the agent itself (another agent's: 404, as if it
                                         did not exist), auditors, operators: earned this
                                         month so far, unpaid, the paid months
=======================================  ================================================

Storefronts have no business here (403). The write is idempotent twice over: by its
Idempotency-Key (the stored answer), and in the flow by month and currency (a payout's
id derives from them, and each agent's transfer id from the payout and the agent), so a
retry at any time moves nothing twice. Money is integer minor units; months are UTC.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import body_of, page_limit, page_of, signed
from api.routes.kyc import PROPOSED, proposed
from api.routes.steps import id_text, parse, step_id, time_text
from api.schemas import (
    AgentCommissionOut,
    CommissionPayoutCreate,
    CommissionPayoutList,
    CommissionPayoutOut,
)
from ledger.flows import commission
from ledger.flows.commission import AgentCommission, CommissionPayout, Month, PayoutLine
from ledger.flows.proposals import Proposal
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1", tags=["commission"])
PATH = "/v1/commission-payouts"

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
AGENT_READERS = frozenset({Role.AGENT}) | READ_ALL

Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)]
After = Annotated[uuid.UUID | None, Query(description="last id of a page")]
AfterAgent = Annotated[uuid.UUID | None, Query(description="the last line's agent_id")]


def summary_out(p: CommissionPayout) -> dict[str, Any]:
    month = Month.parse(p.month)
    return {
        "id": str(p.id),
        "month": p.month,
        "currency": p.currency,
        "to": p.destination.value,
        "provider": p.provider,
        "period_start": time_text(month.start),
        "period_end": time_text(month.end),
        "lines_count": p.lines_count,
        "total_minor": p.total_minor,
        "made_by": id_text(p.made_by),
        "created_at": time_text(p.created_at),
    }


def line_out(x: PayoutLine) -> dict[str, Any]:
    return {
        "id": str(x.id),
        "agent_id": str(x.agent_id),
        "commission_account_id": str(x.commission_account_id),
        "destination_account_id": str(x.destination_account_id),
        "earned_minor": x.earned_minor,
        "amount_minor": x.amount_minor,
        "transfer_id": str(x.transfer_id),
        "created_at": time_text(x.created_at),
    }


def payout_out(found: tuple[CommissionPayout, list[PayoutLine]], size: int) -> dict[str, Any]:
    """The payout and the first ``size`` of ``found``'s lines (read with one more)."""
    payout, lines = found
    return {
        **summary_out(payout),
        "lines": [line_out(x) for x in lines[:size]],
        "lines_has_more": len(lines) > size,
    }


def agent_out(a: AgentCommission) -> dict[str, Any]:
    return {
        "agent_id": str(a.agent_id),
        "currency": a.currency,
        "month": a.month,
        "earned_this_month_minor": a.earned_this_month_minor,
        "unpaid_minor": a.unpaid_minor,
        "paid": [
            {
                "month": x.month,
                "payout_id": str(x.payout_id),
                "earned_minor": x.earned_minor,
                "amount_minor": x.amount_minor,
                "transfer_id": str(x.transfer_id),
                "paid_at": time_text(x.created_at),
            }
            for x in a.paid
        ],
    }


@router.post(
    "/commission-payouts",
    status_code=201,
    response_model=CommissionPayoutOut,
    responses=PROPOSED,
    summary="Pay a month's agent commission: to floats at once, to a provider as a proposal",
    openapi_extra={"x-request-model": "CommissionPayoutCreate"},
)
def pay_month(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger
    size = context(request).settings.page_size_default
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, CommissionPayoutCreate)
        made = commission.request_payout(
            led,
            proposal_id=step_id(request, caller, None),
            month=data.month,
            currency=data.currency,
            to=data.to,
            provider=data.provider,
            operator_id=caller.principal_id,
            lines_limit=size + 1,
        )
        if isinstance(made, Proposal):
            return proposed(made)
        answer = payout_out(made, size)
        return json_response(201, answer, {"Location": f"{PATH}/{answer['id']}"})

    return run_post(request, caller, body, handle)


@router.get(
    "/commission-payouts",
    response_model=CommissionPayoutList,
    summary="Commission payouts by month (auditors, operators)",
)
def list_payouts(
    request: Request,
    caller: Caller,
    limit: Limit = None,
    starting_after: After = None,
    currency: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3}$", description="only this currency")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    found = commission.list_payouts(
        context(request).ledger, currency=currency, limit=size + 1, starting_after=starting_after
    )
    return page_of(found, size, summary_out)


@router.get(
    "/commission-payouts/{payout_id}",
    response_model=CommissionPayoutOut,
    summary="A commission payout and a page of its lines: who got what",
)
def get_payout(
    request: Request,
    caller: Caller,
    payout_id: uuid.UUID,
    limit: Limit = None,
    starting_after: AfterAgent = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    found = commission.payout_lines(
        context(request).ledger, payout_id=payout_id, limit=size + 1, after_agent=starting_after
    )
    return json_response(200, payout_out(found, size))


@router.get(
    "/agents/{agent_id}/commission",
    response_model=AgentCommissionOut,
    summary="An agent's commission: earned this month (UTC), unpaid, paid months",
)
def agent_commission(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, AGENT_READERS)
    if caller.role is Role.AGENT and agent_id != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {agent_id}", 404)
    found = commission.agent_commission(context(request).ledger, agent_id=agent_id)
    return json_response(200, agent_out(found))
