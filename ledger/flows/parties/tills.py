"""Agents' till numbers (``agent_tills``, all its SQL): the 6-digit number a villager
types on the USSD menu to name the agent she withdraws at.

A till number is :data:`TILL_DIGITS` digits, the first not ``0``, drawn from
:mod:`secrets`, unique (a database constraint too), one per agent and never changed.
It is allotted when an agent is onboarded (:func:`ledger.flows.parties.onboard_in`) and,
for an agent without one, on first need (:func:`till_of_in`). It is not a secret: the
agent shows it on the counter.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows.errors import NotFound
from ledger.flows.parties import repository

__all__ = [
    "ALLOT_TRIES_MAX",
    "TILL_DIGITS",
    "AgentTill",
    "agent_of_till_in",
    "agent_till",
    "till_of_in",
    "well_formed",
]

TILL_DIGITS = 6
ALLOT_TRIES_MAX = 20
"""Draws before giving up on a free number (900,000 numbers: a bug long before that)."""


def well_formed(till: str) -> bool:
    """Whether ``till`` can be a till number (``TILL_DIGITS`` ASCII digits, no leading 0)."""
    return len(till) == TILL_DIGITS and till.isascii() and till.isdigit() and till[0] != "0"


def _select(tx: Tx, agent_id: uuid.UUID) -> str | None:
    row = tx.one("SELECT till_number FROM agent_tills WHERE agent_id = :id", {"id": agent_id})
    return None if row is None else str(row[0])


def till_of_in(tx: Tx, agent_id: uuid.UUID) -> str:
    """The agent's till number, allotted now if it has none (the caller checked that
    ``agent_id`` is an agent)."""
    found = _select(tx, agent_id)
    if found is not None:
        return found
    for _ in range(ALLOT_TRIES_MAX):
        till = f"{10 ** (TILL_DIGITS - 1) + secrets.randbelow(9 * 10 ** (TILL_DIGITS - 1))}"
        taken = tx.one("SELECT agent_id FROM agent_tills WHERE till_number = :till", {"till": till})
        if taken is not None:
            continue
        tx.execute(
            "INSERT INTO agent_tills (agent_id, till_number, created_at_us)"
            " VALUES (:id, :till, :now)",
            {"id": agent_id, "till": till, "now": tx.now_us},
        )
        return till
    raise InvariantViolation(f"no free till number in {ALLOT_TRIES_MAX} draws")


@dataclass(frozen=True, slots=True)
class AgentTill:
    """An agent's till number, with the name a villager sees beside it on the menu."""

    agent_id: uuid.UUID
    till_number: str
    name: str


AGENT_KIND = "agent"
"""``parties.kind`` of an agent (:class:`ledger.flows.parties.Kind`, which imports this)."""


def agent_till(led: Ledger, *, agent_id: uuid.UUID) -> AgentTill:
    """The agent's till number (allotted now if it has none) and name;
    :class:`NotFound` ``agent_not_found`` when ``agent_id`` is no agent."""

    def work(tx: Tx) -> AgentTill:
        party = repository.select_party(tx, agent_id)
        if party is None or party.kind != AGENT_KIND:
            raise NotFound("agent_not_found", f"no agent {agent_id}")
        return AgentTill(agent_id, till_of_in(tx, agent_id), party.name)

    return led.transact(work)


def agent_of_till_in(tx: Tx, till: str) -> uuid.UUID | None:
    """The agent whose till number is ``till``, or ``None`` (a malformed one too)."""
    if not well_formed(till):
        return None
    row = tx.one("SELECT agent_id FROM agent_tills WHERE till_number = :till", {"till": till})
    if row is None:
        return None
    agent_id: uuid.UUID = row[0]
    return agent_id
