"""A villager with money and a phone that dials the USSD menu, for the USSD tests."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field

from ledger import Ledger
from ledger.flows import agent_float, cash, limits, parties, ussd, villagers
from ledger.flows.parties import Kind, Party, Role
from ledger.flows.ussd import Screen
from tests.villager_helpers import active_villager

PIN = "739146"
"""A PIN whose digits no id, time or screen of these tests is likely to hold."""
KES = "KES"


def new_phone() -> str:
    return f"+25472{secrets.randbelow(10**7):07d}"


def agent(led: Ledger) -> Party:
    made = parties.onboard(
        led, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    agent_float.top_up_float(
        led, topup_id=uuid.uuid4(), agent_id=made.id, amount_minor=50_000_000, provider="BANK"
    )
    return made


def villager(led: Ledger, agent_id: uuid.UUID, cash_ins_minor: tuple[int, ...] = ()) -> Party:
    """An active villager (tier1, :data:`PIN`) who paid ``cash_ins_minor`` in, in order."""
    made = active_villager(led, agent_id=agent_id, phone=new_phone(), pin=PIN, name="Otieno")
    party = limits.set_kyc_tier(led, villager_id=made.id, tier="tier1")
    for amount in cash_ins_minor:
        cash.cash_in(
            led,
            cash_in_id=uuid.uuid4(),
            agent_id=agent_id,
            villager_id=made.id,
            amount_minor=amount,
        )
    return party


def wallet_minor(led: Ledger, party: Party) -> tuple[int, int]:
    """(posted, available) of the villager's wallet."""
    (account,) = led.lookup_accounts([party.account(Role.WALLET)])
    posted = account.credits_posted - account.debits_posted
    return posted, posted - account.debits_pending


@dataclass
class Phone:
    """One dialled session: :meth:`press` sends the inputs so far joined by ``*``, as the
    aggregator does."""

    led: Ledger
    phone: str
    session_id: str = field(default_factory=lambda: f"ATUid_{uuid.uuid4().hex}")
    inputs: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, led: Ledger, party: Party) -> Phone:
        return cls(led, villagers.get_villager(led, party.id).phone)

    def dial(self) -> Screen:
        self.inputs = []
        return self.send("")

    def press(self, key: str) -> Screen:
        self.inputs.append(key)
        return self.send("*".join(self.inputs))

    def send(self, text: str) -> Screen:
        screen = ussd.answer(self.led, session_id=self.session_id, phone=self.phone, text=text)
        assert len(screen.text) <= ussd.SCREEN_LENGTH_MAX
        return screen

    async def press_async(self, key: str) -> Screen:
        """:meth:`press` through :func:`ledger.flows.ussd.answer_async`, as the route does
        (``""`` dials)."""
        self.inputs = [*self.inputs, key] if key else []
        text = "*".join(self.inputs)
        screen = await ussd.answer_async(
            self.led, session_id=self.session_id, phone=self.phone, text=text
        )
        assert len(screen.text) <= ussd.SCREEN_LENGTH_MAX
        return screen
