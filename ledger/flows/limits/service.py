"""The limits flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.limits`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from ledger.core import currency as iso4217
from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.flows import events, parties
from ledger.flows.errors import NotFound, Refused
from ledger.flows.limits import repository
from ledger.flows.limits.repository import Direction, TierLimits
from ledger.flows.parties import Kind, Party, Role
from ledger.limits import AMOUNT_MAX_MINOR as LIMIT_MAX_MINOR
from ledger.limits import LIST_PAGE_SIZE_MAX, US_PER_S

DAY_US = 86_400 * US_PER_S
"""A UTC day in microseconds; ``utc_day`` is the count of whole days since 1970-01-01."""
TIER_LENGTH_MAX = 32
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a villager cashed in and out on one UTC day (minor units)."""

    villager_id: uuid.UUID
    day: date
    cash_in_minor: int
    cash_out_minor: int


def utc_day(now_us: int) -> int:
    """Whole UTC days since 1970-01-01 at ``now_us``."""
    return now_us // DAY_US


def tier_limits_in(tx: Tx, *, currency: str, tier: str) -> TierLimits:
    """The limits of ``tier`` in ``currency``; :class:`Refused` ``kyc_tier_unknown``."""
    found = repository.select_tier(tx, currency=currency, tier=tier)
    if found is None:
        raise Refused("kyc_tier_unknown", f"no KYC tier {tier!r} in {currency}")
    return found


get_tier_limits = transactional(tier_limits_in)


def _check_limit(value: object, name: str) -> int:
    if type(value) is not int or not 1 <= value <= LIMIT_MAX_MINOR:
        raise Refused("limit_invalid", f"{name} must be an integer in 1..{LIMIT_MAX_MINOR}")
    return value


def _check_tier_name(tier: object) -> str:
    if (
        not isinstance(tier, str)
        or not 1 <= len(tier) <= TIER_LENGTH_MAX
        or not tier.isascii()
        or not tier.replace("_", "").isalnum()
    ):
        raise Refused("kyc_tier_invalid", f"a tier is 1-{TIER_LENGTH_MAX} ASCII letters or digits")
    return tier


def check_tier_limits(
    *,
    currency: str,
    tier: str,
    per_transaction_max_minor: int,
    daily_max_minor: int,
    balance_max_minor: int,
) -> TierLimits:
    """The limits asked for, once each is checked (:class:`Refused` ``kyc_tier_invalid``,
    ``limit_invalid``, ``currency_not_supported``); nothing is read or written."""
    _check_tier_name(tier)
    per = _check_limit(per_transaction_max_minor, "per_transaction_max_minor")
    daily = _check_limit(daily_max_minor, "daily_max_minor")
    balance = _check_limit(balance_max_minor, "balance_max_minor")
    if per > daily:
        raise Refused("limit_invalid", "the per-transaction limit is above the daily limit")
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")
    return TierLimits(currency, tier, per, daily, balance)


def _limits_json(limits: TierLimits | None) -> dict[str, int] | None:
    if limits is None:
        return None
    return {
        "per_transaction_max_minor": limits.per_transaction_max_minor,
        "daily_max_minor": limits.daily_max_minor,
        "balance_max_minor": limits.balance_max_minor,
    }


def set_tier_limits_in(
    tx: Tx,
    *,
    currency: str,
    tier: str,
    per_transaction_max_minor: int,
    daily_max_minor: int,
    balance_max_minor: int,
) -> TierLimits:
    """Add a tier in a currency, or change its limits (an operator's act: over the API,
    the approval of a ``tier_limits`` proposal, :mod:`ledger.flows.kyc`). Limits apply to
    operations from now on; what a villager already used today stays used. A change
    emits ``kyc.tier_limits_changed`` (the limits before, ``null`` for a new tier, and
    after); setting the limits a tier has changes nothing and emits nothing.
    (:func:`set_tier_limits` runs it in a transaction of its own.)"""
    wanted = check_tier_limits(
        currency=currency,
        tier=tier,
        per_transaction_max_minor=per_transaction_max_minor,
        daily_max_minor=daily_max_minor,
        balance_max_minor=balance_max_minor,
    )
    before = repository.select_tier(tx, currency=currency, tier=tier)
    if before != wanted:
        repository.upsert_tier(tx, wanted)
        payload = {
            "currency": currency,
            "tier": tier,
            "from": _limits_json(before),
            "to": _limits_json(wanted),
        }
        events.emit(tx, events.KYC_TIER_LIMITS_CHANGED, payload)
    return tier_limits_in(tx, currency=currency, tier=tier)


set_tier_limits = transactional(set_tier_limits_in)


def list_tier_limits(
    led: Ledger, *, currency: str, after_tier: str | None = None, limit: int = 100
) -> list[TierLimits]:
    """The tiers of ``currency`` and their limits, by name, after ``after_tier``, at most
    ``limit`` (1..:data:`~ledger.limits.LIST_PAGE_SIZE_MAX`)."""
    if type(limit) is not int or not 1 <= limit <= LIST_PAGE_SIZE_MAX:
        raise MalformedRequest(f"limit must be 1..{LIST_PAGE_SIZE_MAX}")
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")
    after = "" if after_tier is None else _check_tier_name(after_tier)
    return led.transact(
        lambda tx: repository.select_tiers(tx, currency=currency, after_tier=after, limit=limit)
    )


def set_kyc_tier_in(tx: Tx, *, villager_id: uuid.UUID, tier: str) -> Party:
    """Move a villager to another KYC tier (one that exists in their currency); the
    villager as it is now. Setting the tier they have changes nothing
    (:func:`set_kyc_tier` runs it in a transaction of its own)."""
    if not isinstance(villager_id, uuid.UUID):
        raise MalformedRequest("villager_id must be a UUID")
    _check_tier_name(tier)
    villager = parties.find_party(tx, villager_id, lock=True)
    if villager is None or villager.kind != Kind.VILLAGER:
        raise NotFound("villager_not_found", f"no villager {villager_id}")
    tier_limits_in(tx, currency=villager.currency, tier=tier)
    if villager.kyc_tier != tier:
        parties.change_kyc_tier_in(tx, party_id=villager_id, tier=tier)
        events.emit(
            tx,
            events.KYC_TIER_CHANGED,
            {"villager_id": str(villager_id), "from_tier": villager.kyc_tier, "to_tier": tier},
            party_id=villager_id,
            subject_id=villager_id,
        )
    return parties.get_party(tx, villager_id, Kind.VILLAGER)


set_kyc_tier = transactional(set_kyc_tier_in)


# -- usage --------------------------------------------------------------------------------


def reserve_in(tx: Tx, *, villager: Party, direction: Direction, amount_minor: int) -> int:
    """Check the per-transaction and daily limits of ``villager``'s tier for one
    operation of ``amount_minor`` and count it in today's usage (locked until commit);
    the UTC day it was counted in. :class:`Refused` ``limit_exceeded_per_transaction``
    or ``limit_exceeded_daily`` (nothing counted)."""
    direction = Direction(direction)
    if villager.kyc_tier is None:
        raise Refused("kyc_tier_unknown", f"party {villager.id} has no KYC tier")
    limits = tier_limits_in(tx, currency=villager.currency, tier=villager.kyc_tier)
    if amount_minor > limits.per_transaction_max_minor:
        raise Refused(
            "limit_exceeded_per_transaction",
            f"{amount_minor} is above the {limits.tier} limit of"
            f" {limits.per_transaction_max_minor} per transaction",
        )
    day = utc_day(tx.now_us)
    cash_in, cash_out = repository.locked_usage(tx, villager_id=villager.id, day=day)
    used = cash_in if direction is Direction.CASH_IN else cash_out
    if used + amount_minor > limits.daily_max_minor:
        raise Refused(
            "limit_exceeded_daily",
            f"{direction.value} of {amount_minor} today after {used} would pass the"
            f" {limits.tier} daily limit of {limits.daily_max_minor}",
        )
    repository.add_usage(
        tx, villager_id=villager.id, day=day, direction=direction, delta_minor=amount_minor
    )
    return day


def release_in(
    tx: Tx, *, villager_id: uuid.UUID, day: int, direction: Direction, amount_minor: int
) -> None:
    """Give back what :func:`reserve_in` counted on ``day`` (a cash-out that did not
    happen); the database refuses usage below zero."""
    repository.locked_usage(tx, villager_id=villager_id, day=day)
    repository.add_usage(
        tx, villager_id=villager_id, day=day, direction=direction, delta_minor=-amount_minor
    )


def check_balance_in(tx: Tx, *, villager: Party) -> None:
    """After transfers that credit the villager's wallet (any flow's, through
    :func:`ledger.flows.wallets.after_transfers_in`): :class:`Refused`
    ``limit_exceeded_balance`` when the wallet now holds more than the tier allows (the
    caller's transaction rolls back); exactly the maximum is allowed."""
    if villager.kyc_tier is None:
        raise Refused("kyc_tier_unknown", f"party {villager.id} has no KYC tier")
    limits = tier_limits_in(tx, currency=villager.currency, tier=villager.kyc_tier)
    [wallet] = tx.lookup_accounts([villager.account(Role.WALLET)])
    balance = wallet.credits_posted + wallet.credits_pending - wallet.debits_posted
    if balance > limits.balance_max_minor:
        raise Refused(
            "limit_exceeded_balance",
            f"the wallet would hold {balance}, above the {limits.tier} limit of"
            f" {limits.balance_max_minor}",
        )


def get_usage(led: Ledger, *, villager_id: uuid.UUID, day: date | None = None) -> Usage:
    """What the villager cashed in and out on ``day`` (default: today, UTC)."""

    def work(tx: Tx) -> Usage:
        wanted = utc_day(tx.now_us) if day is None else (day - _EPOCH).days
        cash_in, cash_out = repository.select_usage(tx, villager_id=villager_id, day=wanted)
        return Usage(villager_id, _EPOCH + timedelta(days=wanted), cash_in, cash_out)

    return led.transact(work)
