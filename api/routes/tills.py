"""An agent's till number (the 6 digits a villager types over USSD) and its SMS phone.

- ``GET /v1/agents/{agent_id}/till``: the till number and name, for the agent itself,
  operators and auditors (:func:`ledger.flows.parties.tills.agent_till`; a till number is
  allotted on first need). Another agent is answered 404 ``agent_not_found`` as if there
  were none; a storefront 403.
- ``PUT /v1/agents/{agent_id}/sms-contact``: where the agent's SMS go (low float,
  cash-out requested), set by an operator through :func:`sms.contacts.set_agent_contact`
  (what ``vledger sms contact`` calls), once per Idempotency-Key like every write.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import signed, write
from api.schemas import AgentSmsContactOut, AgentSmsContactSet, AgentTillOut
from ledger import Ledger
from ledger.flows.parties import tills
from sms import contacts
from sms.repository import Contact

router = APIRouter(prefix="/v1/agents", tags=["cash"])

Caller = Annotated[ApiKey, Depends(signed)]
READERS = frozenset({Role.AGENT}) | READ_ALL
OPERATOR = frozenset({Role.OPERATOR})


def till_out(t: tills.AgentTill) -> dict[str, Any]:
    return {"agent_id": str(t.agent_id), "till_number": t.till_number, "name": t.name}


def contact_out(c: Contact) -> dict[str, Any]:
    return {"agent_id": str(c.party_id), "phone": c.phone, "language": c.language}


@router.get(
    "/{agent_id}/till",
    response_model=AgentTillOut,
    summary="The agent's till number, which villagers type on the USSD menu",
)
def get_till(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, READERS)
    if caller.role is Role.AGENT and agent_id != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {agent_id}", 404)
    led = context(request).ledger
    return json_response(200, till_out(tills.agent_till(led, agent_id=agent_id)))


@router.put(
    "/{agent_id}/sms-contact",
    response_model=AgentSmsContactOut,
    summary="Set the phone and language of the agent's SMS (operators)",
    openapi_extra={"x-request-model": "AgentSmsContactSet"},
)
def set_sms_contact(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: AgentSmsContactSet) -> Contact:
        return contacts.set_agent_contact(
            led, agent_id=agent_id, phone=data.phone, language=data.language
        )

    return write(request, caller, AgentSmsContactSet, act, contact_out)
