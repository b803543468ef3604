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

from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx

__all__ = ["ALLOT_TRIES_MAX", "TILL_DIGITS", "agent_of_till_in", "till_of_in", "well_formed"]

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


def agent_of_till_in(tx: Tx, till: str) -> uuid.UUID | None:
    """The agent whose till number is ``till``, or ``None`` (a malformed one too)."""
    if not well_formed(till):
        return None
    row = tx.one("SELECT agent_id FROM agent_tills WHERE till_number = :till", {"till": till})
    if row is None:
        return None
    agent_id: uuid.UUID = row[0]
    return agent_id
