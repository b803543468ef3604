"""Agents' till numbers on both engines: every agent gets one at onboarding (6 digits,
no leading 0, unique, stable); nobody else has one; a malformed or unknown number names
no agent; the table refuses a duplicate."""

from __future__ import annotations

import uuid

import pytest

from ledger import Ledger, LedgerError
from ledger.flows import parties
from ledger.flows.parties import Kind, tills


def onboard(ledger: Ledger, kind: Kind, **extra: str) -> parties.Party:
    return parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=kind, name=f"{kind.value} x", currency="KES", **extra
    )


def test_each_agent_has_its_own_till_and_only_agents_have_one(ledger: Ledger) -> None:
    agents = [onboard(ledger, Kind.AGENT) for _ in range(5)]
    found = [ledger.transact(lambda tx, a=a: tills.till_of_in(tx, a.id)) for a in agents]  # type: ignore[misc]
    assert len(set(found)) == 5
    assert all(tills.well_formed(t) and len(t) == tills.TILL_DIGITS for t in found)
    for agent, till in zip(agents, found, strict=True):
        assert ledger.transact(lambda tx, t=till: tills.agent_of_till_in(tx, t)) == agent.id  # type: ignore[misc]
        assert ledger.transact(lambda tx, a=agent: tills.till_of_in(tx, a.id)) == till  # type: ignore[misc]
    shop = onboard(ledger, Kind.STOREFRONT)
    count = ledger.transact(
        lambda tx: tx.one("SELECT count(*) FROM agent_tills WHERE agent_id = :id", {"id": shop.id})
    )
    assert count is not None and count[0] == 0


@pytest.mark.parametrize(
    "till", ["", "12345", "1234567", "012345", "12a456", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_a_malformed_till_names_no_agent(ledger: Ledger, till: str) -> None:
    onboard(ledger, Kind.AGENT)
    assert not tills.well_formed(till)
    assert ledger.transact(lambda tx: tills.agent_of_till_in(tx, till)) is None


def test_the_database_refuses_a_second_agent_on_one_till(ledger: Ledger) -> None:
    first, second = onboard(ledger, Kind.AGENT), onboard(ledger, Kind.AGENT)
    till = ledger.transact(lambda tx: tills.till_of_in(tx, first.id))
    with pytest.raises(LedgerError):
        ledger.transact(
            lambda tx: tx.execute(
                "UPDATE agent_tills SET till_number = :till WHERE agent_id = :id",
                {"till": till, "id": second.id},
            )
        )
