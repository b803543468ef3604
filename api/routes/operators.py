"""``/v1/operators``: a new operator, or another key for one, is a proposal another
operator approves (maker-checker, :mod:`ledger.flows.principals.operators`).

=========================================  ==============================================
``POST /v1/operators``                     operators: propose a person (``name``) with
                                           the Ed25519 public key they made (202, a
                                           proposal; nothing is created yet)
``POST /v1/operators/{id}/keys``           operators: propose another public key for
                                           the operator ``id`` (202, a proposal)
``POST /v1/proposals/{id}/approve``        another operator (never the maker, 422
                                           ``proposal_maker_cannot_decide``): creates
                                           the operator or registers the key; the
                                           proposal's ``result`` carries ``key_id``
=========================================  ==============================================

Auditors, storefronts and agents are refused (403). The proposal's payload shows the
key's ``fingerprint`` (SHA-256) for the checker to compare with the person's; no secret
is ever sent. A name already taken (``operator_exists``), a key registered to anyone
(``public_key_registered``) or not a raw 32-byte Ed25519 key (``public_key_invalid``) is
refused (422), at the proposal and again at the approval. An unknown operator is 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.access import require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.routes.common import body_of, signed
from api.routes.proposals import proposal_out
from api.routes.steps import parse, step_id
from api.schemas import OperatorCreate, OperatorKeyCreate, ProposalCreated
from ledger.flows.principals import operators

router = APIRouter(prefix="/v1/operators", tags=["operators"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})


@router.post(
    "",
    status_code=202,
    response_model=ProposalCreated,
    summary="Propose a new operator (another operator approves it)",
    openapi_extra={"x-request-model": "OperatorCreate"},
)
def propose_operator(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATOR)
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, OperatorCreate)
        made = operators.propose_operator(
            context(request).ledger,
            proposal_id=step_id(request, caller, data.id),
            name=data.name,
            public_key=data.public_key,
            proposed_by=caller.principal_id,
        )
        return json_response(202, {"proposal": proposal_out(made)})

    return run_post(request, caller, body, handle)


@router.post(
    "/{principal_id}/keys",
    status_code=202,
    response_model=ProposalCreated,
    summary="Propose another key for an operator (another operator approves it)",
    openapi_extra={"x-request-model": "OperatorKeyCreate"},
)
def propose_key(request: Request, caller: Caller, principal_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, OperatorKeyCreate)
        made = operators.propose_operator_key(
            context(request).ledger,
            proposal_id=step_id(request, caller, data.id),
            principal_id=principal_id,
            public_key=data.public_key,
            proposed_by=caller.principal_id,
        )
        return json_response(202, {"proposal": proposal_out(made)})

    return run_post(request, caller, body, handle)
