"""``/v1/suspense``: provider money nobody could match (``ledger.flows.suspense``).

=====================================  ==================================================
``GET /v1/suspense``                   auditors, operators: items oldest first, of one
                                       state, provider and currency if given, paged by id
``GET /v1/suspense/{id}``              auditors, operators: one item
``POST /v1/suspense/{id}/reassign``    operators: the item goes to the villager's wallet
                                       or the storefront's proceeds it belonged to (200;
                                       the money stays inside the platform)
``POST /v1/suspense/{id}/return``      operators: a **proposal** (202, kind
                                       ``suspense_return``) to send it back through its
                                       provider; another operator approves it
                                       (``POST /v1/proposals/{id}/approve``, never the
                                       maker: 422 ``proposal_maker_cannot_decide``)
=====================================  ==================================================

Storefronts and agents have no business here (403). An unknown item is 404
``suspense_not_found``; resolving a resolved item otherwise than it was is 409
``suspense_already_resolved`` (the same request again answers it unchanged); reassigning
an item whose return waits for a second operator, or proposing a second return, 409
``suspense_return_proposed`` (nothing moves; reject that proposal first); a target in
another currency 422 ``currency_mismatch``; a wallet that would pass its tier's maximum
422 ``limit_exceeded_balance`` (nothing moves). Amounts are integer minor units. Writes
run once per Idempotency-Key.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.routes.common import body_of, page_limit, page_of, signed, write
from api.routes.proposals import proposal_out
from api.routes.steps import id_text, parse, step_id, time_text
from api.schemas import ProposalMade, SuspenseList, SuspenseOut, SuspenseReassign, SuspenseReturn
from ledger import Ledger
from ledger.flows import suspense
from ledger.flows.suspense import SuspenseItem, SuspenseState
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/suspense", tags=["suspense"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[uuid.UUID | None, Query(description="the last id of the previous page")]
StateQuery = Annotated[SuspenseState | None, Query(description="only items in this state")]
ProviderQuery = Annotated[
    str | None, Query(pattern=r"^[A-Z0-9]{1,32}$", description="only this provider's items")
]
CurrencyQuery = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217")]


def suspense_out(s: SuspenseItem) -> dict[str, Any]:
    return {
        "id": str(s.id),
        "currency": s.currency,
        "provider": s.provider,
        "provider_reference": s.provider_reference,
        "amount_minor": s.amount_minor,
        "note": s.note,
        "state": s.state.value,
        "park_transfer_id": str(s.park_transfer_id),
        "target_party_id": id_text(s.target_party_id),
        "target_account_id": id_text(s.target_account_id),
        "resolve_transfer_id": id_text(s.resolve_transfer_id),
        "return_reason": s.return_reason,
        "created_at": time_text(s.created_at),
        "resolved_at": time_text(s.resolved_at),
    }


@router.get("", response_model=SuspenseList, summary="List suspense items, oldest first")
def list_items(
    request: Request,
    caller: Caller,
    state: StateQuery = None,
    provider: ProviderQuery = None,
    currency: CurrencyQuery = None,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    found = suspense.list_suspense(
        context(request).ledger,
        state=state,
        provider=provider,
        currency=currency,
        limit=size + 1,
        starting_after=starting_after,
    )
    return page_of(found, size, suspense_out)


@router.get("/{suspense_id}", response_model=SuspenseOut, summary="Get a suspense item")
def get_item(request: Request, caller: Caller, suspense_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    found = suspense.get_suspense(context(request).ledger, suspense_id=suspense_id)
    return json_response(200, suspense_out(found))


@router.post(
    "/{suspense_id}/reassign",
    response_model=SuspenseOut,
    summary="Move a parked item to the wallet or proceeds it belonged to (operators)",
    openapi_extra={"x-request-model": "SuspenseReassign"},
)
def reassign(request: Request, caller: Caller, suspense_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: SuspenseReassign) -> SuspenseItem:
        return suspense.reassign(
            led,
            suspense_id=suspense_id,
            to_villager_id=data.to_villager_id,
            to_storefront_id=data.to_storefront_id,
        )

    return write(request, caller, SuspenseReassign, act, suspense_out)


@router.post(
    "/{suspense_id}/return",
    status_code=202,
    response_model=ProposalMade,
    summary="Propose returning a parked item through its provider (another operator approves it)",
    openapi_extra={"x-request-model": "SuspenseReturn"},
)
def propose_return(request: Request, caller: Caller, suspense_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, SuspenseReturn)
        made = suspense.propose_return(
            led,
            proposal_id=step_id(request, caller, data.id),
            suspense_id=suspense_id,
            reason=data.reason,
            proposed_by=caller.principal_id,
        )
        return json_response(202, {"proposal": proposal_out(made)})

    return run_post(request, caller, body, handle)
