"""The KYC operator tasks (the package docstring, :mod:`ledger.flows.kyc`, says who may
do what); the rules of tiers are :mod:`ledger.flows.limits`'."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.flows import limits, parties, proposals
from ledger.flows.errors import Refused
from ledger.flows.limits import TierLimits
from ledger.flows.parties import Kind, Party
from ledger.flows.proposals import Proposal
from ledger.flows.villagers import REGISTRATION_TIER

KYC_TIER = "kyc_tier"
"""The proposal kind of a villager's move to a tier above tier0."""
TIER_LIMITS = "tier_limits"
"""The proposal kind of a tier's new limits in a currency."""


def _check_move(tx: Tx, villager_id: uuid.UUID, tier: str) -> None:
    """The villager exists and ``tier`` has limits in her currency."""
    villager = parties.get_party(tx, villager_id, Kind.VILLAGER)
    limits.tier_limits_in(tx, currency=villager.currency, tier=tier)


def change_tier(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    villager_id: uuid.UUID,
    tier: str,
    operator_id: uuid.UUID,
) -> Party | Proposal:
    """An operator moves a villager to ``tier``: to tier0 at once (the villager as she
    is now); to any other tier, a proposal (``proposal_id``) another operator approves.
    :class:`~ledger.flows.errors.NotFound` ``villager_not_found``,
    :class:`~ledger.flows.errors.Refused` ``kyc_tier_unknown`` / ``kyc_tier_invalid``."""
    if not isinstance(villager_id, uuid.UUID) or not isinstance(tier, str):
        raise MalformedRequest("villager_id is a UUID and tier a string")
    if tier == REGISTRATION_TIER:
        return limits.set_kyc_tier(led, villager_id=villager_id, tier=tier)
    led.transact(lambda tx: _check_move(tx, villager_id, tier))
    return proposals.propose(
        led,
        proposal_id=proposal_id,
        kind=KYC_TIER,
        payload={"villager_id": str(villager_id), "tier": tier},
        proposed_by=operator_id,
    )


def onboard_in(
    tx: Tx, *, party_id: uuid.UUID, kind: Kind, name: str, currency: str, kyc_tier: str | None
) -> Party:
    """One operator onboards a party (``POST /v1/parties``): a villager at tier0 only. A
    tier above it is a raise, which takes a second operator: onboard at tier0, then
    :func:`change_tier`. The tier is checked first (``kyc_tier_unknown``), then
    :class:`~ledger.flows.errors.Refused` ``kyc_tier_needs_approval``; nothing is written."""
    party = parties.onboard_with_limits_in(
        tx, party_id=party_id, kind=kind, name=name, currency=currency, kyc_tier=kyc_tier
    )
    if kind is Kind.VILLAGER and kyc_tier != REGISTRATION_TIER:
        raise Refused(
            "kyc_tier_needs_approval",
            f"onboard the villager at {REGISTRATION_TIER}; a higher tier is proposed"
            " (POST /v1/kyc/villagers/{id}/tier) and approved by another operator",
        )
    return party


onboard = transactional(onboard_in)


def _apply_tier(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Move the villager in the approval's transaction; her tier as it is then."""
    villager = limits.set_kyc_tier_in(
        tx, villager_id=uuid.UUID(payload["villager_id"]), tier=payload["tier"]
    )
    return {
        "villager_id": str(villager.id),
        "currency": villager.currency,
        "kyc_tier": villager.kyc_tier,
    }


def _limits_json(found: TierLimits) -> dict[str, Any]:
    return {
        "currency": found.currency,
        "tier": found.tier,
        "per_transaction_max_minor": found.per_transaction_max_minor,
        "daily_max_minor": found.daily_max_minor,
        "balance_max_minor": found.balance_max_minor,
    }


def propose_tier_limits(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    currency: str,
    tier: str,
    per_transaction_max_minor: int,
    daily_max_minor: int,
    balance_max_minor: int,
    proposed_by: uuid.UUID,
) -> Proposal:
    """Propose a tier's limits in a currency (a new tier, or new limits for one); nothing
    changes until another operator approves it. The limits are checked now
    (``limit_invalid``, ``kyc_tier_invalid``, ``currency_not_supported``)."""
    wanted = limits.check_tier_limits(
        currency=currency,
        tier=tier,
        per_transaction_max_minor=per_transaction_max_minor,
        daily_max_minor=daily_max_minor,
        balance_max_minor=balance_max_minor,
    )
    return proposals.propose(
        led,
        proposal_id=proposal_id,
        kind=TIER_LIMITS,
        payload=_limits_json(wanted),
        proposed_by=proposed_by,
    )


def _apply_limits(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Set the limits in the approval's transaction; the tier's limits as they are then."""
    done = limits.set_tier_limits_in(
        tx,
        currency=payload["currency"],
        tier=payload["tier"],
        per_transaction_max_minor=payload["per_transaction_max_minor"],
        daily_max_minor=payload["daily_max_minor"],
        balance_max_minor=payload["balance_max_minor"],
    )
    return _limits_json(done)


proposals.register(KYC_TIER, _apply_tier)
proposals.register(TIER_LIMITS, _apply_limits)
