"""``/v1/villagers``: villagers as principals (``ledger.flows.villagers``).

Who may do what (another role: 403; another agent's villager: 404, as if it did not exist):

==================================  ======================================================
register (``POST /v1/villagers``)   an agent, at its own station (the caller is the agent;
                                    ``agent_id`` may be left out or must be the caller);
                                    an operator, naming the agent
read (``GET /v1/villagers/{id}``)   the registering agent; auditors and operators
unlock                              the registering agent (a first unlock within 30 days);
                                    an operator (any unlock; a second one starts the
                                    48 h SIM-swap hold)
reset (forgot PIN), phone change    operators only (both start the SIM-swap hold)
==================================  ======================================================

No answer carries a PIN, its hash or an activation code: the code goes to the villager's
phone as an outbox event. Setting, changing and checking a PIN are not routes: they are
the villager's own steps (USSD, a later issue), flow functions until then. Registration is
idempotent by the villager ``id`` as well as by the Idempotency-Key. A villager's id is
never a key principal's id (``principal_mismatch``): events addressed to the villager,
its activation code among them, would otherwise reach that principal's webhooks.
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
from api.routes.steps import parse, time_text
from api.schemas import VillagerCreate, VillagerOut, VillagerPhoneChange, VillagerStep
from ledger.flows import villagers
from ledger.flows.villagers import Villager

router = APIRouter(prefix="/v1/villagers", tags=["villagers"])

Caller = Annotated[ApiKey, Depends(signed)]
REGISTRARS = frozenset({Role.AGENT, Role.OPERATOR})
READERS = frozenset({Role.AGENT}) | READ_ALL
OPERATORS = frozenset({Role.OPERATOR})
NOT_A_PRINCIPAL = "a villager's id is no key principal's id (its events would go to that principal)"


def villager_out(v: Villager) -> dict[str, Any]:
    return {
        "id": str(v.id),
        "agent_id": str(v.agent_id),
        "name": v.name,
        "currency": v.currency,
        "phone": v.phone,
        "language": v.language.value,
        "kyc_tier": v.kyc_tier,
        "state": v.state.value,
        "pin_tries_left": v.pin_tries_left,
        "wallet_id": str(v.wallet_id),
        "unlocked_at": time_text(v.unlocked_at),
        "debit_hold_until": time_text(v.debit_hold_until),
        "created_at": time_text(v.created_at),
        "updated_at": time_text(v.updated_at),
    }


def _registering_agent(caller: ApiKey, named: uuid.UUID | None) -> uuid.UUID:
    if caller.role is Role.OPERATOR:
        if named is None:
            raise ApiError("validation_failed", "an operator names the agent: agent_id")
        return named
    if named is not None and named != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {named}", 404)
    return caller.principal_id


def _visible(request: Request, caller: ApiKey, villager_id: uuid.UUID) -> Villager:
    """The villager, if the caller may see it; else 404 (403 for a role that never may)."""
    require_role(caller, READERS)
    found = villagers.get_villager(context(request).ledger, villager_id)
    if caller.role not in READ_ALL and found.agent_id != caller.principal_id:
        raise ApiError("villager_not_found", f"no villager {villager_id}", 404)
    return found


def _answer(v: Villager, status: int = 200) -> Response:
    return json_response(status, villager_out(v), {"Location": f"/v1/villagers/{v.id}"})


@router.post(
    "",
    status_code=201,
    response_model=VillagerOut,
    summary="An agent registers a villager at its station; the activation code goes to her phone",
    openapi_extra={"x-request-model": "VillagerCreate"},
)
def register(request: Request, caller: Caller) -> Response:
    require_role(caller, REGISTRARS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, VillagerCreate)
        agent_id = _registering_agent(caller, data.agent_id)
        if principal_role(led, data.id) is not None:
            raise ApiError("principal_mismatch", NOT_A_PRINCIPAL)
        made = villagers.register_villager(
            led,
            villager_id=data.id,
            agent_id=agent_id,
            phone=data.phone,
            name=data.name,
            currency=data.currency,
            language=data.language,
        )
        return _answer(made, 201)

    return run_post(request, caller, body, handle)


@router.get("/{villager_id}", response_model=VillagerOut, summary="Get a villager")
def get_villager(request: Request, caller: Caller, villager_id: uuid.UUID) -> Response:
    return _answer(_visible(request, caller, villager_id))


@router.post(
    "/{villager_id}/unlock",
    response_model=VillagerOut,
    summary="Unlock a villager's PIN: a fresh activation code makes her set a new one",
    openapi_extra={"x-request-model": "VillagerStep"},
)
def unlock(request: Request, caller: Caller, villager_id: uuid.UUID) -> Response:
    require_role(caller, REGISTRARS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        parse(request, body, VillagerStep, empty_ok=True)
        if caller.role is Role.AGENT:
            _visible(request, caller, villager_id)
            by = {"agent_id": caller.principal_id}
        else:
            by = {"operator_id": caller.principal_id}
        return _answer(villagers.unlock(led, villager_id=villager_id, **by))

    return run_post(request, caller, body, handle)


@router.post(
    "/{villager_id}/reset",
    response_model=VillagerOut,
    summary="Reset a forgotten PIN (operators): a fresh code and a 48 h hold on large debits",
    openapi_extra={"x-request-model": "VillagerStep"},
)
def reset(request: Request, caller: Caller, villager_id: uuid.UUID) -> Response:
    require_role(caller, OPERATORS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        parse(request, body, VillagerStep, empty_ok=True)
        done = villagers.reset(led, villager_id=villager_id, operator_id=caller.principal_id)
        return _answer(done)

    return run_post(request, caller, body, handle)


@router.post(
    "/{villager_id}/phone",
    response_model=VillagerOut,
    summary="Move a villager to a new phone number (operators): a 48 h hold on large debits",
    openapi_extra={"x-request-model": "VillagerPhoneChange"},
)
def change_phone(request: Request, caller: Caller, villager_id: uuid.UUID) -> Response:
    require_role(caller, OPERATORS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, VillagerPhoneChange)
        done = villagers.change_phone(
            led, villager_id=villager_id, operator_id=caller.principal_id, phone=data.phone
        )
        return _answer(done)

    return run_post(request, caller, body, handle)
