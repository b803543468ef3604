"""``/v1/transfers``: a batch answered one result per transfer; get one.

Who may debit and credit what is :mod:`api.access`'s rule, checked before the ledger
call. An operator's batch touching a party's account is not applied: it answers 202
with a proposal (``ledger.flows.proposals``) that another operator approves.
"""

from __future__ import annotations

import functools
import operator
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api import strictjson
from api.access import WRITERS, Verdict, can_read_transfer, check_transfers, require_role
from api.context import context, json_response, require_json, run_post_async
from api.principals import ApiKey
from api.problems import ApiError, problem_type
from api.routes.common import body_of, signed, transfer_out
from api.routes.proposals import proposal_out
from api.schemas import (
    TRANSFER_FLAGS,
    ProposalCreated,
    TransferBatchCreate,
    TransferBatchOut,
    TransferCreate,
    TransferOut,
)
from ledger import Status, Transfer, TransferFlags
from ledger.flows import proposals

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])

Caller = Annotated[ApiKey, Depends(signed)]


def _transfer(data: TransferCreate) -> Transfer:
    flags = functools.reduce(
        operator.or_, (TRANSFER_FLAGS[f] for f in data.flags), TransferFlags(0)
    )
    return Transfer(
        id=data.id,
        debit_account_id=data.debit_account_id,
        credit_account_id=data.credit_account_id,
        amount=data.amount,
        currency=data.currency,
        code=data.code,
        flags=flags,
        pending_id=data.pending_id,
        timeout_s=data.timeout_s,
        reverses_id=data.reverses_id,
        metadata=dict(data.metadata) if data.metadata is not None else None,
    )


@router.post(
    "",
    status_code=200,
    response_model=TransferBatchOut,
    summary="Create transfers: one result per transfer, in order",
    responses={
        202: {
            "model": ProposalCreated,
            "description": "an operator's batch touching a party's account: proposed, not"
            " applied until another operator approves it",
        }
    },
    openapi_extra={"x-request-model": "TransferBatchCreate"},
)
async def create_transfers(request: Request, caller: Caller) -> Response:
    ctx = context(request)
    body = body_of(request)
    require_role(caller, WRITERS)

    def handle() -> Response:
        require_json(request)
        data = strictjson.parse(body, TransferBatchCreate)
        if len(data.transfers) > ctx.settings.transfers_per_request_max:
            raise ApiError(
                "validation_failed",
                f"at most {ctx.settings.transfers_per_request_max} transfers per request",
            )
        transfers = [_transfer(t) for t in data.transfers]
        verdict = check_transfers(ctx.ledger, caller, transfers, owners=ctx.owners)
        if verdict is Verdict.PROPOSE:
            proposal = proposals.propose_transfers(
                ctx.ledger, transfers=transfers, proposed_by=caller.principal_id
            )
            return json_response(202, {"proposal": proposal_out(proposal)})
        results = ctx.ledger.create_transfers(transfers)
        return json_response(
            200,
            {
                "results": [
                    {
                        "index": r.index,
                        "id": str(transfers[r.index].id),
                        "status": r.status.value,
                        "type": "" if r.status is Status.CREATED else problem_type(r.status.value),
                    }
                    for r in results
                ]
            },
        )

    return await run_post_async(request, caller, body, handle)


@router.get("/{transfer_id}", response_model=TransferOut, summary="Get a transfer")
def get_transfer(request: Request, caller: Caller, transfer_id: uuid.UUID) -> Response:
    led = context(request).ledger
    found = led.lookup_transfers([transfer_id])
    if not found or not can_read_transfer(led, caller, found[0]):
        raise ApiError("not_found", "no such transfer")
    return json_response(200, transfer_out(found[0]))
