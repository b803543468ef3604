"""Villagers who can consent, for tests: registered at an agent's station, activated with
a PIN, moved to a KYC tier; and the codes they make (``ledger.flows.consent``)."""

from __future__ import annotations

import secrets
import uuid

from ledger import Ledger
from ledger.flows import consent, limits
from ledger.flows.consent import IssuedCode, Purpose
from ledger.flows.parties import Party
from tests.villager_helpers import DEFAULT_PIN, active_villager

PIN = DEFAULT_PIN


def new_phone() -> str:
    """A Kenyan mobile number nobody else in the test has (E.164)."""
    return f"+25471{secrets.randbelow(10**7):07d}"


def consenting_villager(
    led: Ledger,
    *,
    agent_id: uuid.UUID,
    tier: str = "tier1",
    currency: str = "KES",
    name: str = "Otieno",
    villager_id: uuid.UUID | None = None,
) -> Party:
    """A villager registered at ``agent_id``, active with :data:`PIN`, of ``tier``."""
    made = active_villager(
        led,
        agent_id=agent_id,
        phone=new_phone(),
        villager_id=villager_id,
        currency=currency,
        name=name,
    )
    return limits.set_kyc_tier(led, villager_id=made.id, tier=tier)


def withdrawal_code(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    agent_id: uuid.UUID,
    amount_minor: int,
    purpose: Purpose = Purpose.WITHDRAWAL,
) -> str:
    """The digits of a code the villager made with the PIN for this agent and amount."""
    return issue(
        led,
        villager_id=villager_id,
        agent_id=agent_id,
        amount_minor=amount_minor,
        purpose=purpose,
    ).code


def issue(
    led: Ledger,
    *,
    villager_id: uuid.UUID,
    amount_minor: int,
    agent_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
    purpose: Purpose = Purpose.WITHDRAWAL,
) -> IssuedCode:
    """A code the villager made with the PIN."""
    return consent.make_code(
        led,
        villager_id=villager_id,
        pin=PIN,
        purpose=purpose,
        amount_minor=amount_minor,
        agent_id=agent_id,
        order_id=order_id,
    )
