"""``/v1/parties``: onboarding storefronts, agents and villagers (operators only).

Tenancy rests on one rule: **a storefront's or an agent's party id is its principal's
id**. ``vledger keys create --role storefront`` makes the principal (and prints its id);
an operator then onboards the party with that id, a name and its one currency. From then
on the principal's orders, devices and events are the party's. A principal is one party
of one currency (a shop selling in two currencies has two principals). A villager's id is
any UUID no principal has. A villager onboarded here needs a ``kyc_tier`` with limits in
its currency (the seeded ``tier0``, ``tier1``, ``tier2`` in KES, UGX and TZS, or one an
operator added; otherwise 422 ``kyc_tier_unknown``, nothing written); one operator onboards
at ``tier0`` only (any other tier: 422 ``kyc_tier_needs_approval``, nothing written; a raise
is ``POST /v1/kyc/villagers/{id}/tier``, approved by a second operator). It is a
**receive-only wallet**: it has no phone and no PIN, so it can consent to nothing and
nothing may debit its wallet. A villager who acts (a PIN, consent codes) is registered by
an agent at its station, ``POST /v1/villagers`` (:mod:`api.routes.villagers`), and cannot
be made from one of these.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.access import READ_ALL, principal_role, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import body_of, signed
from api.routes.steps import parse
from api.schemas import PartyCreate, PartyOut
from ledger.flows import kyc, parties
from ledger.flows.parties import Kind, Party

router = APIRouter(prefix="/v1/parties", tags=["parties"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATORS = frozenset({Role.OPERATOR})
PRINCIPAL_ROLE = {Kind.STOREFRONT: Role.STOREFRONT, Kind.AGENT: Role.AGENT}


def party_out(p: Party) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "kind": p.kind.value,
        "name": p.name,
        "currency": p.currency,
        "kyc_tier": p.kyc_tier,
        "accounts": {role: str(account) for role, account in sorted(p.accounts.items())},
    }


@router.post(
    "",
    status_code=201,
    response_model=PartyOut,
    summary="Onboard a storefront, an agent (named by its principal) or a villager",
    openapi_extra={"x-request-model": "PartyCreate"},
)
def onboard(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATORS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, PartyCreate)
        kind = Kind(data.kind)
        role = principal_role(led, data.id)
        if role is not PRINCIPAL_ROLE.get(kind):
            wanted = f"a {PRINCIPAL_ROLE[kind]} principal's" if kind in PRINCIPAL_ROLE else "no"
            raise ApiError("principal_mismatch", f"a {kind.value}'s id is {wanted} id")
        party = kyc.onboard(
            led,
            party_id=data.id,
            kind=kind,
            name=data.name,
            currency=data.currency,
            kyc_tier=data.kyc_tier,
        )
        return json_response(201, party_out(party), {"Location": f"/v1/parties/{party.id}"})

    return run_post(request, caller, body, handle)


@router.get("/{party_id}", response_model=PartyOut, summary="Get a party and its accounts")
def get_party(request: Request, caller: Caller, party_id: uuid.UUID) -> Response:
    led = context(request).ledger
    found = parties.read_party(led, party_id)
    if found is None or (caller.role not in READ_ALL and found.id != caller.principal_id):
        raise ApiError("party_not_found", f"no party {party_id}", 404)
    return json_response(200, party_out(found))
