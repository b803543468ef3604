"""``/v1/proposals``: maker-checker for sensitive operator steps (``ledger.flows.proposals``).

An operator's ``POST /v1/transfers`` that touches a party's account answers 202 with a
proposal (``api.access``); nothing moves until a **different** operator approves it.

=====================================  ==================================================
list, get                              auditors, operators
approve                                operators, never the proposal's maker (422
                                       ``proposal_maker_cannot_decide``); approving an
                                       approved proposal answers it unchanged
reject (with a reason)                 operators (its maker too: a withdrawal)
=====================================  ==================================================

Storefronts and agents have no business here (403).
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
from api.routes.common import body_of, page_limit, signed
from api.routes.steps import id_text, parse, time_text
from api.schemas import ProposalList, ProposalOut, ProposalReject
from ledger.flows import proposals
from ledger.flows.proposals import Proposal, State
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/proposals", tags=["proposals"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[uuid.UUID | None, Query(description="the last id of the previous page")]
StateQuery = Annotated[State | None, Query(description="only proposals in this state")]


def proposal_out(p: Proposal) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "kind": p.kind,
        "payload": p.payload,
        "state": p.state.value,
        "proposed_by": str(p.proposed_by),
        "decided_by": id_text(p.decided_by),
        "reason": p.reason,
        "result": p.result,
        "created_at": time_text(p.created_at),
        "decided_at": time_text(p.decided_at),
    }


@router.get("", response_model=ProposalList, summary="List proposals, oldest first")
def list_proposals(
    request: Request,
    caller: Caller,
    state: StateQuery = None,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    led = context(request).ledger
    page = proposals.page(led, state=state, starting_after=starting_after, limit=size)
    if page is None:
        raise ApiError("invalid_parameter", "starting_after names no proposal")
    found, has_more = page
    return json_response(200, {"data": [proposal_out(p) for p in found], "has_more": has_more})


@router.get("/{proposal_id}", response_model=ProposalOut, summary="Get a proposal")
def get_proposal(request: Request, caller: Caller, proposal_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    led = context(request).ledger
    return json_response(200, proposal_out(proposals.get(led, proposal_id)))


@router.post(
    "/{proposal_id}/approve",
    response_model=ProposalOut,
    summary="Approve a proposal (another operator than its maker): it is applied once",
)
def approve(request: Request, caller: Caller, proposal_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger

    def handle() -> Response:
        decided = proposals.approve(led, proposal_id=proposal_id, approver=caller.principal_id)
        return json_response(200, proposal_out(decided))

    return run_post(request, caller, body_of(request), handle)


@router.post(
    "/{proposal_id}/reject",
    response_model=ProposalOut,
    summary="Reject a proposal: nothing it names is applied",
    openapi_extra={"x-request-model": "ProposalReject"},
)
def reject(request: Request, caller: Caller, proposal_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, ProposalReject)
        decided = proposals.reject(
            led, proposal_id=proposal_id, decider=caller.principal_id, reason=data.reason
        )
        return json_response(200, proposal_out(decided))

    return run_post(request, caller, body, handle)
