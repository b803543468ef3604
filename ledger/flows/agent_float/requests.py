"""An agent asks for a float top-up (the station app's float screen).

The agent deposited cash with a provider (a bank, a super-agent) and asks for its float:
a proposal of kind :data:`FLOAT_TOPUP` (``ledger.flows.proposals``) that moves nothing.
An operator who sees the deposit confirmed approves it, and the approval makes the
top-up (:func:`~ledger.flows.agent_float.service.top_up_float_in`, its id the request's)
in the approval's transaction; or rejects it with a reason. The agent is the maker, so
the approver is always someone else.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import parties, proposals
from ledger.flows.agent_float.checks import check_amount, check_id
from ledger.flows.agent_float.service import top_up_float_in
from ledger.flows.parties import Kind
from ledger.flows.proposals import Proposal

FLOAT_TOPUP = "float_topup"
"""The proposal kind of an agent's top-up request."""


def request_top_up(
    led: Ledger, *, request_id: uuid.UUID, agent_id: uuid.UUID, amount_minor: int, provider: str
) -> Proposal:
    """Agent ``agent_id`` asks for ``amount_minor`` of float for cash it deposited with
    ``provider``: a proposal (``request_id``) an operator approves. ``provider_invalid``,
    ``amount_invalid``, ``agent_not_found`` before anything is written."""
    check_id(request_id, "request_id")
    check_id(agent_id, "agent_id")
    check_amount(amount_minor)
    parties.provider_role(provider)
    led.transact(lambda tx: parties.get_party(tx, agent_id, Kind.AGENT))
    payload = {
        "request_id": str(request_id),
        "agent_id": str(agent_id),
        "amount_minor": amount_minor,
        "provider": provider,
    }
    return proposals.propose(
        led, proposal_id=request_id, kind=FLOAT_TOPUP, payload=payload, proposed_by=agent_id
    )


def _apply(tx: Tx, payload: Mapping[str, Any], approver: uuid.UUID) -> dict[str, Any]:
    """Make the top-up in the approval's transaction, its id the request's."""
    agent_id = uuid.UUID(payload["agent_id"])
    done = top_up_float_in(
        tx,
        topup_id=uuid.UUID(payload["request_id"]),
        agent_id=agent_id,
        amount_minor=int(payload["amount_minor"]),
        provider=str(payload["provider"]),
    )
    return {
        "topup_id": str(done.id),
        "agent_id": str(agent_id),
        "amount_minor": done.amount_minor,
        "provider": done.provider,
        "approved_by": str(approver),
    }


proposals.register_as(FLOAT_TOPUP, _apply)
