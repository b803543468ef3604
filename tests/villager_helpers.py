"""Villagers for tests: registered by an agent and activated with the code the outbox
holds for them (the SMS issue will carry it; here the test reads it)."""

from __future__ import annotations

import uuid

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import events, villagers
from ledger.flows.villagers import Villager

DEFAULT_PIN = "2580"


def activation_code(led: Ledger, villager_id: uuid.UUID) -> str:
    """The newest activation code sent to the villager."""

    def newest(tx: Tx) -> str:
        found: str | None = None
        after = 0
        while True:
            page = events.read_events(
                tx, after_seq=after, limit=events.EVENTS_PAGE_MAX, party_id=villager_id
            )
            for event in page:
                if event.type == events.VILLAGER_ACTIVATION_CODE:
                    found = str(event.payload["code"])
            if len(page) < events.EVENTS_PAGE_MAX:
                break
            after = page[-1].seq
        assert found is not None, f"no activation code was sent to {villager_id}"
        return found

    return led.transact(newest)


def active_villager(
    led: Ledger,
    *,
    agent_id: uuid.UUID,
    phone: str,
    pin: str = DEFAULT_PIN,
    villager_id: uuid.UUID | None = None,
    currency: str = "KES",
    name: str = "Wanjiru",
) -> Villager:
    """A villager registered at ``agent_id``'s station who has set ``pin``."""
    registered = villagers.register_villager(
        led,
        villager_id=villager_id or uuid.uuid4(),
        agent_id=agent_id,
        phone=phone,
        name=name,
        currency=currency,
        language="en",
    )
    code = activation_code(led, registered.id)
    return villagers.activate(led, phone=registered.phone, activation_code=code, pin=pin)
