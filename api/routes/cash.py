"""Cash at the agent's counter (``ledger.flows.cash``) and the agent's float
(``ledger.flows.agent_float``).

Who may do what (another role: 403; another agent's object: 404, as if it did not exist):

=============================  ==========================================================
cash-ins, cash-out requests,   the agent named in the path, for itself (for float
float transfers, threshold     transfers: the paying agent); an operator, for any agent
confirm, cancel a cash-out     the cash-out's agent; an operator
float top-ups                  **operators only**: the agent's cash deposit at the bank
                               or super-agent is confirmed by the platform against the
                               provider's statement, never asserted by the agent (that
                               would let an agent mint its own float)
guarantee cap                  **operators only**: the collateral the agent lodged bounds
                               its float (an agent raising its own would defeat it)
read (lists, one, the float)   the agent its own; auditors and operators all
=============================  ==========================================================

A cash-out request carries the withdrawal code the villager made for the agent and the
exact amount (``consent_code``, :mod:`ledger.flows.consent`): without it 422
``consent_required``, a wrong one ``consent_invalid`` (counted against the code and,
rate-limited, against the caller), an old one ``consent_expired``; nothing is held.

Storefronts have no business here (403). A write carries the operation's permanent id
(``id`` in the body, the client's UUID): besides the Idempotency-Key's stored answer
(24 h), the flow answers the same operation for the same id at any later time, which an
agent's phone offline for days relies on. Confirming a completed cash-out and cancelling
a cancelled one answer it unchanged, so those two steps need no id of their own.
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
from api.routes.common import page_limit, page_of, signed, write, write_async
from api.routes.proposals import proposal_out
from api.routes.steps import id_text, time_text
from api.schemas import (
    CashInCreate,
    CashInList,
    CashInOut,
    CashOutCancel,
    CashOutConfirm,
    CashOutCreate,
    CashOutList,
    CashOutOut,
    FloatOut,
    FloatThresholdSet,
    FloatTopUpCreate,
    FloatTopUpOut,
    FloatTransferCreate,
    FloatTransferOut,
    GuaranteeCapSet,
    ProposalCreated,
)
from ledger import Ledger
from ledger.flows import agent_float, cash
from ledger.flows.agent_float import FloatStatus, FloatTopUp, FloatTransfer
from ledger.flows.cash import CashIn, CashOut, CashOutState
from ledger.flows.proposals import Proposal
from ledger.limits import API_PAGE_SIZE_MAX

agents_router = APIRouter(prefix="/v1/agents", tags=["cash"])
cash_outs_router = APIRouter(prefix="/v1/cash-outs", tags=["cash"])
cash_ins_router = APIRouter(prefix="/v1/cash-ins", tags=["cash"])

Caller = Annotated[ApiKey, Depends(signed)]
ACTORS = frozenset({Role.AGENT, Role.OPERATOR})
READERS = frozenset({Role.AGENT}) | READ_ALL
OPERATOR = frozenset({Role.OPERATOR})
AGENT_ONLY = frozenset({Role.AGENT})
DEFAULT_CANCEL_REASON = "cancelled"

Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)]
After = Annotated[uuid.UUID | None, Query(description="last id of a page")]


def cash_in_out(c: CashIn) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "agent_id": str(c.agent_id),
        "villager_id": str(c.villager_id),
        "device_id": id_text(c.device_id),
        "currency": c.currency,
        "amount_minor": c.amount_minor,
        "fee_minor": c.fee_minor,
        "commission_minor": c.commission_minor,
        "fee_version": c.fee_version,
        "created_at": time_text(c.created_at),
    }


def cash_out_out(c: CashOut) -> dict[str, Any]:
    return {
        "id": str(c.id),
        "agent_id": str(c.agent_id),
        "villager_id": str(c.villager_id),
        "device_id": id_text(c.device_id),
        "currency": c.currency,
        "amount_minor": c.amount_minor,
        "fee_minor": c.fee_minor,
        "total_minor": c.total_minor,
        "fee_version": c.fee_version,
        "mode": c.mode.value,
        "state": c.state.value,
        "reason": c.reason,
        "created_at": time_text(c.created_at),
        "expires_at": time_text(c.expires_at),
        "resolved_at": time_text(c.resolved_at),
    }


def float_out(f: FloatStatus) -> dict[str, Any]:
    return {
        "agent_id": str(f.agent_id),
        "currency": f.currency,
        "balance_minor": f.balance_minor,
        "held_minor": f.held_minor,
        "available_minor": f.available_minor,
        "low_threshold_minor": f.low_threshold_minor,
        "low_armed": f.low_armed,
        "guarantee_cap_minor": f.guarantee_cap_minor,
    }


def top_up_out(t: FloatTopUp) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "agent_id": str(t.agent_id),
        "provider": t.provider,
        "currency": t.currency,
        "amount_minor": t.amount_minor,
        "transfer_id": str(t.transfer_id),
        "created_at": time_text(t.created_at),
    }


def float_transfer_out(t: FloatTransfer) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "from_agent_id": str(t.from_agent_id),
        "to_agent_id": str(t.to_agent_id),
        "currency": t.currency,
        "amount_minor": t.amount_minor,
        "transfer_id": str(t.transfer_id),
        "created_at": time_text(t.created_at),
    }


def _agent(caller: ApiKey, agent_id: uuid.UUID, roles: frozenset[Role]) -> None:
    """403 for a role not in ``roles``; 404 for an agent acting on another agent."""
    require_role(caller, roles)
    if caller.role is Role.AGENT and agent_id != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {agent_id}", 404)


def _visible(caller: ApiKey, owner: uuid.UUID) -> bool:
    return caller.role in READ_ALL or owner == caller.principal_id


# -- cash-ins ---------------------------------------------------------------------------


@agents_router.post(
    "/{agent_id}/cash-ins",
    status_code=201,
    response_model=CashInOut,
    summary="A villager hands the agent cash: the agent's float pays her wallet",
    openapi_extra={"x-request-model": "CashInCreate"},
)
async def create_cash_in(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, ACTORS)

    def act(led: Ledger, data: CashInCreate) -> CashIn:
        return cash.cash_in(
            led,
            cash_in_id=data.id,
            agent_id=agent_id,
            villager_id=data.villager_id,
            amount_minor=data.amount_minor,
        )

    return await write_async(
        request, caller, CashInCreate, act, cash_in_out, status=201, location="/v1/cash-ins"
    )


@agents_router.get(
    "/{agent_id}/cash-ins", response_model=CashInList, summary="An agent's cash-ins, oldest first"
)
def list_cash_ins(
    request: Request,
    caller: Caller,
    agent_id: uuid.UUID,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    _agent(caller, agent_id, READERS)
    size = page_limit(request, limit)
    led = context(request).ledger
    found = cash.list_cash_ins(led, agent_id=agent_id, after=starting_after, limit=size + 1)
    return page_of(found, size, cash_in_out)


@cash_ins_router.get("/{cash_in_id}", response_model=CashInOut, summary="Get a cash-in")
def get_cash_in(request: Request, caller: Caller, cash_in_id: uuid.UUID) -> Response:
    require_role(caller, READERS)
    led = context(request).ledger
    found = cash.get_cash_in(led, cash_in_id)
    if not _visible(caller, found.agent_id):
        raise ApiError("cash_in_not_found", f"no cash-in {cash_in_id}", 404)
    return json_response(200, cash_in_out(found))


# -- cash-outs --------------------------------------------------------------------------


@agents_router.post(
    "/{agent_id}/cash-outs",
    status_code=201,
    response_model=CashOutOut,
    summary="Request a cash-out with the villager's withdrawal code: her wallet and the"
    " agent's cash are held",
    openapi_extra={"x-request-model": "CashOutCreate"},
)
def request_cash_out(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, ACTORS)

    def act(led: Ledger, data: CashOutCreate) -> CashOut:
        return cash.request_cash_out(
            led,
            cash_out_id=data.id,
            agent_id=agent_id,
            villager_id=data.villager_id,
            amount_minor=data.amount_minor,
            consent_code=data.consent_code,
            timeout_s=data.timeout_s,
            caller_id=caller.principal_id,
        )

    return write(
        request, caller, CashOutCreate, act, cash_out_out, status=201, location="/v1/cash-outs"
    )


@agents_router.get(
    "/{agent_id}/cash-outs",
    response_model=CashOutList,
    summary="An agent's cash-outs (of one state, if given), oldest first",
)
def list_cash_outs(
    request: Request,
    caller: Caller,
    agent_id: uuid.UUID,
    limit: Limit = None,
    starting_after: After = None,
    state: Annotated[CashOutState | None, Query(description="only this state")] = None,
) -> Response:
    _agent(caller, agent_id, READERS)
    size = page_limit(request, limit)
    led = context(request).ledger
    found = cash.list_cash_outs(
        led, agent_id=agent_id, state=state, after=starting_after, limit=size + 1
    )
    return page_of(found, size, cash_out_out)


def _cash_out(request: Request, caller: ApiKey, cash_out_id: uuid.UUID) -> CashOut:
    """The cash-out if the caller may see it; 404 ``cash_out_not_found`` alike otherwise."""
    led = context(request).ledger
    found = cash.get_cash_out(led, cash_out_id)
    if not _visible(caller, found.agent_id):
        raise ApiError("cash_out_not_found", f"no cash-out {cash_out_id}", 404)
    return found


@cash_outs_router.get("/{cash_out_id}", response_model=CashOutOut, summary="Get a cash-out")
def get_cash_out(request: Request, caller: Caller, cash_out_id: uuid.UUID) -> Response:
    require_role(caller, READERS)
    return json_response(200, cash_out_out(_cash_out(request, caller, cash_out_id)))


@cash_outs_router.post(
    "/{cash_out_id}/confirm",
    response_model=CashOutOut,
    summary="The agent handed the cash over: the holds post and the fee is paid",
    openapi_extra={"x-request-model": "CashOutConfirm"},
)
def confirm_cash_out(request: Request, caller: Caller, cash_out_id: uuid.UUID) -> Response:
    require_role(caller, ACTORS)

    def act(led: Ledger, data: CashOutConfirm) -> CashOut:
        found = _cash_out(request, caller, cash_out_id)
        return cash.confirm_cash_out(led, cash_out_id=cash_out_id, agent_id=found.agent_id)

    return write(request, caller, CashOutConfirm, act, cash_out_out, empty_ok=True)


@cash_outs_router.post(
    "/{cash_out_id}/cancel",
    response_model=CashOutOut,
    summary="Cancel a requested cash-out: its holds are voided (one past its timeout expires)",
    openapi_extra={"x-request-model": "CashOutCancel"},
)
def cancel_cash_out(request: Request, caller: Caller, cash_out_id: uuid.UUID) -> Response:
    require_role(caller, ACTORS)

    def act(led: Ledger, data: CashOutCancel) -> CashOut:
        _cash_out(request, caller, cash_out_id)
        reason = data.reason or DEFAULT_CANCEL_REASON
        return cash.cancel_cash_out(led, cash_out_id=cash_out_id, reason=reason)

    return write(request, caller, CashOutCancel, act, cash_out_out, empty_ok=True)


# -- the float --------------------------------------------------------------------------


@agents_router.get("/{agent_id}/float", response_model=FloatOut, summary="An agent's float now")
def get_float(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, READERS)
    led = context(request).ledger
    return json_response(200, float_out(agent_float.get_float(led, agent_id=agent_id)))


@agents_router.post(
    "/{agent_id}/float-topups",
    status_code=201,
    response_model=FloatTopUpOut,
    summary="The agent's cash deposit at a provider, confirmed by the platform, becomes"
    " float (operators)",
    openapi_extra={"x-request-model": "FloatTopUpCreate"},
)
def top_up_float(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: FloatTopUpCreate) -> FloatTopUp:
        return agent_float.top_up_float(
            led,
            topup_id=data.id,
            agent_id=agent_id,
            amount_minor=data.amount_minor,
            provider=data.provider,
        )

    return write(request, caller, FloatTopUpCreate, act, top_up_out, status=201)


@agents_router.post(
    "/{agent_id}/float-topup-requests",
    status_code=202,
    response_model=ProposalCreated,
    summary="The agent asks for float for cash it deposited with a provider: a proposal an"
    " operator approves (POST /v1/proposals/{id}/approve) once the deposit is confirmed"
    " (the agent itself)",
    openapi_extra={"x-request-model": "FloatTopUpCreate"},
)
def request_top_up(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, AGENT_ONLY)

    def act(led: Ledger, data: FloatTopUpCreate) -> Proposal:
        return agent_float.request_top_up(
            led,
            request_id=data.id,
            agent_id=agent_id,
            amount_minor=data.amount_minor,
            provider=data.provider,
        )

    return write(
        request, caller, FloatTopUpCreate, act, lambda p: {"proposal": proposal_out(p)}, status=202
    )


@agents_router.post(
    "/{agent_id}/float-transfers",
    status_code=201,
    response_model=FloatTransferOut,
    summary="The agent pays some of its float to another agent",
    openapi_extra={"x-request-model": "FloatTransferCreate"},
)
def transfer_float(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, ACTORS)

    def act(led: Ledger, data: FloatTransferCreate) -> FloatTransfer:
        return agent_float.transfer_float(
            led,
            transfer_id=data.id,
            from_agent_id=agent_id,
            to_agent_id=data.to_agent_id,
            amount_minor=data.amount_minor,
        )

    return write(request, caller, FloatTransferCreate, act, float_transfer_out, status=201)


@agents_router.post(
    "/{agent_id}/float-threshold",
    response_model=FloatOut,
    summary="Set (or clear) the float below which float.low is emitted",
    openapi_extra={"x-request-model": "FloatThresholdSet"},
)
def set_float_threshold(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    _agent(caller, agent_id, ACTORS)

    def act(led: Ledger, data: FloatThresholdSet) -> FloatStatus:
        return agent_float.set_float_threshold(
            led, agent_id=agent_id, threshold_minor=data.threshold_minor
        )

    return write(request, caller, FloatThresholdSet, act, float_out)


@agents_router.post(
    "/{agent_id}/guarantee-cap",
    response_model=FloatOut,
    summary="Set (or remove) the most the agent's float may hold, its collateral (operators)",
    openapi_extra={"x-request-model": "GuaranteeCapSet"},
)
def set_guarantee_cap(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: GuaranteeCapSet) -> FloatStatus:
        return agent_float.set_guarantee_cap(led, agent_id=agent_id, cap_minor=data.cap_minor)

    return write(request, caller, GuaranteeCapSet, act, float_out)
