"""``/v1/kyc``: KYC tiers over the signed API (``ledger.flows.kyc``, ``ledger.flows.limits``).

=============================================  =============================================
``POST /v1/kyc/villagers/{villager_id}/tier``  operators: to ``tier0`` applied at once
                                               (200, the villager's tier now; lowering only
                                               restricts her); to any other tier a
                                               **proposal** (202, kind ``kyc_tier``)
``GET /v1/kyc/tiers?currency=``                auditors, operators: a currency's tiers and
                                               their limits, by name, paged by name
``POST /v1/kyc/tiers``                         operators: a **proposal** (202, kind
                                               ``tier_limits``) of a tier's limits
``POST /v1/proposals/{id}/approve``            another operator (never the maker, 422
                                               ``proposal_maker_cannot_decide``): applies it
=============================================  =============================================

Storefronts and agents have no business here (403; an agent registers villagers at
``tier0`` only, ``POST /v1/villagers``, and cannot move them). A villager who does not
exist is 404 ``villager_not_found``; a tier without limits in her currency is 422
``kyc_tier_unknown``; limits out of range or a per-transaction limit above the daily one
422 ``limit_invalid``. Amounts are integer minor units. Writes run once per
Idempotency-Key; a proposal's ``id`` (the client's) makes it idempotent for ever.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.routes.common import body_of, page_limit, page_of, signed
from api.routes.fees import supported
from api.routes.proposals import proposal_out
from api.routes.steps import parse, step_id
from api.schemas import (
    KycTierOut,
    KycTierSet,
    ProposalMade,
    TierLimitsList,
    TierLimitsSet,
)
from ledger.flows import kyc, limits
from ledger.flows.limits import TIER_LENGTH_MAX, TierLimits
from ledger.flows.parties import Party
from ledger.flows.proposals import Proposal
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/kyc", tags=["kyc"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
CurrencyQuery = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[
    str | None,
    Query(
        pattern=f"^[A-Za-z0-9_]{{1,{TIER_LENGTH_MAX}}}$",
        description="the last tier of the previous page",
    ),
]
PROPOSED: dict[int | str, dict[str, Any]] = {
    202: {"model": ProposalMade, "description": "Proposed: another operator approves it"}
}


def tier_out(p: Party) -> dict[str, Any]:
    return {"villager_id": str(p.id), "currency": p.currency, "kyc_tier": p.kyc_tier}


def limits_out(t: TierLimits) -> dict[str, Any]:
    return {
        "currency": t.currency,
        "tier": t.tier,
        "per_transaction_max_minor": t.per_transaction_max_minor,
        "daily_max_minor": t.daily_max_minor,
        "balance_max_minor": t.balance_max_minor,
    }


def proposed(made: Proposal) -> Response:
    return json_response(202, {"proposal": proposal_out(made)})


@router.post(
    "/villagers/{villager_id}/tier",
    response_model=KycTierOut,
    responses=PROPOSED,
    summary="Set a villager's KYC tier: tier0 at once, a higher tier as a proposal",
    openapi_extra={"x-request-model": "KycTierSet"},
)
def set_tier(request: Request, caller: Caller, villager_id: uuid.UUID) -> Response:
    """Lowering to tier0 is one operator's act (it only restricts what the villager may
    move); any other tier waits for a second operator."""
    require_role(caller, OPERATOR)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, KycTierSet)
        made = kyc.change_tier(
            led,
            proposal_id=step_id(request, caller, data.id),
            villager_id=villager_id,
            tier=data.tier,
            operator_id=caller.principal_id,
        )
        if isinstance(made, Proposal):
            return proposed(made)
        return json_response(200, tier_out(made))

    return run_post(request, caller, body, handle)


@router.get("/tiers", response_model=TierLimitsList, summary="A currency's KYC tiers and limits")
def list_tiers(
    request: Request,
    caller: Caller,
    currency: CurrencyQuery,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    supported(currency)
    found = limits.list_tier_limits(
        context(request).ledger, currency=currency, after_tier=starting_after, limit=size + 1
    )
    return page_of(found, size, limits_out)


@router.post(
    "/tiers",
    status_code=202,
    response_model=ProposalMade,
    summary="Propose a tier's limits in a currency (another operator approves them)",
    openapi_extra={"x-request-model": "TierLimitsSet"},
)
def propose_limits(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, TierLimitsSet)
        return proposed(
            kyc.propose_tier_limits(
                led,
                proposal_id=step_id(request, caller, data.id),
                currency=data.currency,
                tier=data.tier,
                per_transaction_max_minor=data.per_transaction_max_minor,
                daily_max_minor=data.daily_max_minor,
                balance_max_minor=data.balance_max_minor,
                proposed_by=caller.principal_id,
            )
        )

    return run_post(request, caller, body, handle)
