"""KYC limits: what a villager of a tier may move through an agent's counter.

A villager's KYC tier (``parties.kyc_tier``) and currency name a row of ``kyc_tiers``
with three limits, in minor units (the figures seeded by migration 0004 are below):

- ``per_transaction_max_minor``: the most one cash-in or one cash-out may move (the
  amount the villager hands over or takes away; a cash-out's fee is not counted);
- ``daily_max_minor``: the most a villager may cash in in one UTC day, and, **counted
  apart**, the most they may cash out in one UTC day (a villager who cashes in 10,000
  and out 10,000 on one day has used 10,000 of each allowance, not 20,000 of one: the
  limits are about how much cash crosses the counter in each direction);
- ``balance_max_minor``: the most the wallet may hold after any credit (credits posted
  plus pending, less debits posted: what the wallet would hold if every pending credit
  posted and no pending debit did). Checked by :func:`check_balance_in`, which every
  flow reaches through :func:`ledger.flows.wallets.after_transfers_in` after each batch
  that credits a wallet: cash-ins, order refunds, suspense reassignments, reversals.

Seeded tiers (``tier0``: a phone number; ``tier1``: an ID document checked; ``tier2``:
full KYC), per transaction / per day and direction / wallet balance, in major units:

=====  ===========================  ===========================  ==========================
tier   KES                          UGX                          TZS
=====  ===========================  ===========================  ==========================
tier0  5,000 / 10,000 / 20,000      150,000 / 300,000 / 600,000  100,000 / 200,000 / 400,000
tier1  70,000 / 150,000 / 300,000   2m / 4m / 8m                 1.5m / 3m / 6m
tier2  250,000 / 500,000 / 1m       7m / 15m / 30m               5m / 10m / 20m
=====  ===========================  ===========================  ==========================

A villager whose tier has no row in their currency can do no cash operation
(``kyc_tier_unknown``): :func:`set_tier_limits` adds one.

Concurrency: the daily amounts live in one ``kyc_usage`` row per villager and UTC day.
Every cash operation of a villager inserts that row if it is missing (``INSERT ... ON
CONFLICT DO NOTHING``, so two first operations of a day do not collide) and then locks it
(``SELECT ... FOR UPDATE``) before it checks and adds, so two agents cashing out one
wallet at once run one after the other and the second sees the first's amount. A
two-phase cash-out reserves its amount when it is requested; cancelled or expired, it
gives the amount back to the day it was taken from. The balance limit is checked after
the crediting transfers in the same transaction, when the core holds the wallet's row
locked, so it too holds under concurrency.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from ledger.core import currency as iso4217
from ledger.core.errors import MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.tx import Row, Tx
from ledger.flows import events, parties
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind, Party, Role

__all__ = [
    "DAY_US",
    "LIMIT_MAX_MINOR",
    "TIER_LENGTH_MAX",
    "Direction",
    "TierLimits",
    "Usage",
    "check_balance_in",
    "get_tier_limits",
    "get_usage",
    "release_in",
    "reserve_in",
    "set_kyc_tier",
    "set_kyc_tier_in",
    "set_tier_limits",
    "tier_limits_in",
    "utc_day",
]

DAY_US = 86_400 * 1_000_000
"""A UTC day in microseconds; ``utc_day`` is the count of whole days since 1970-01-01."""
LIMIT_MAX_MINOR = 2**53 - 1
TIER_LENGTH_MAX = 32
_EPOCH = date(1970, 1, 1)


class Direction(StrEnum):
    """Which way cash crosses the counter (each has its own daily allowance)."""

    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"


@dataclass(frozen=True, slots=True)
class TierLimits:
    """The limits of one KYC tier in one currency (minor units)."""

    currency: str
    tier: str
    per_transaction_max_minor: int
    daily_max_minor: int
    """Per UTC day, for cash-in and for cash-out apart."""
    balance_max_minor: int


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


def _limits(row: Row) -> TierLimits:
    return TierLimits(row[0], row[1], row[2], row[3], row[4])


def tier_limits_in(tx: Tx, *, currency: str, tier: str) -> TierLimits:
    """The limits of ``tier`` in ``currency``; :class:`Refused` ``kyc_tier_unknown``."""
    row = tx.one(
        "SELECT currency, tier, per_transaction_max_minor, daily_max_minor, balance_max_minor"
        " FROM kyc_tiers WHERE currency = :c AND tier = :t",
        {"c": currency, "t": tier},
    )
    if row is None:
        raise Refused("kyc_tier_unknown", f"no KYC tier {tier!r} in {currency}")
    return _limits(row)


def get_tier_limits(led: Ledger, *, currency: str, tier: str) -> TierLimits:
    """:func:`tier_limits_in` in a transaction of its own."""
    return led.transact(lambda tx: tier_limits_in(tx, currency=currency, tier=tier))


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


def set_tier_limits(
    led: Ledger,
    *,
    currency: str,
    tier: str,
    per_transaction_max_minor: int,
    daily_max_minor: int,
    balance_max_minor: int,
) -> TierLimits:
    """Add a tier in a currency, or change its limits (an operator's act). Limits apply to
    operations from now on; what a villager already used today stays used."""
    _check_tier_name(tier)
    values = {
        "per": _check_limit(per_transaction_max_minor, "per_transaction_max_minor"),
        "daily": _check_limit(daily_max_minor, "daily_max_minor"),
        "balance": _check_limit(balance_max_minor, "balance_max_minor"),
    }
    if values["per"] > values["daily"]:
        raise Refused("limit_invalid", "the per-transaction limit is above the daily limit")
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")

    def work(tx: Tx) -> TierLimits:
        params = {**values, "c": currency, "t": tier, "now": tx.now_us}
        tx.execute(
            "INSERT INTO kyc_tiers (currency, tier, per_transaction_max_minor, daily_max_minor,"
            " balance_max_minor, updated_at_us) VALUES (:c, :t, :per, :daily, :balance, :now)"
            " ON CONFLICT (currency, tier) DO UPDATE SET"
            " per_transaction_max_minor = :per, daily_max_minor = :daily,"
            " balance_max_minor = :balance, updated_at_us = :now",
            params,
        )
        return tier_limits_in(tx, currency=currency, tier=tier)

    return led.transact(work)


def set_kyc_tier(led: Ledger, *, villager_id: uuid.UUID, tier: str) -> Party:
    """Move a villager to another KYC tier (one that exists in their currency); the
    villager as it is now. Setting the tier they have changes nothing."""
    return led.transact(lambda tx: set_kyc_tier_in(tx, villager_id=villager_id, tier=tier))


def set_kyc_tier_in(tx: Tx, *, villager_id: uuid.UUID, tier: str) -> Party:
    """:func:`set_kyc_tier` inside a transaction someone else opened."""
    if not isinstance(villager_id, uuid.UUID):
        raise MalformedRequest("villager_id must be a UUID")
    _check_tier_name(tier)
    row = tx.one(
        f"SELECT kind, currency, kyc_tier FROM parties WHERE id = :id{tx.for_update}",
        {"id": villager_id},
    )
    if row is None or row[0] != Kind.VILLAGER:
        raise NotFound("villager_not_found", f"no villager {villager_id}")
    tier_limits_in(tx, currency=row[1], tier=tier)
    if row[2] != tier:
        tx.execute(
            "UPDATE parties SET kyc_tier = :tier WHERE id = :id", {"tier": tier, "id": villager_id}
        )
        events.emit(
            tx,
            events.KYC_TIER_CHANGED,
            {"villager_id": str(villager_id), "from_tier": row[2], "to_tier": tier},
            party_id=villager_id,
            subject_id=villager_id,
        )
    return parties.get_party(tx, villager_id, Kind.VILLAGER)


# -- usage --------------------------------------------------------------------------------


def _locked_usage(tx: Tx, villager_id: uuid.UUID, day: int) -> tuple[int, int]:
    """Insert the day's row if missing (race-safe), then lock it; (cash in, cash out)."""
    tx.execute(
        "INSERT INTO kyc_usage (villager_id, utc_day, cash_in_minor, cash_out_minor,"
        " updated_at_us) VALUES (:v, :d, 0, 0, :now)"
        " ON CONFLICT (villager_id, utc_day) DO NOTHING",
        {"v": villager_id, "d": day, "now": tx.now_us},
    )
    row = tx.one(
        "SELECT cash_in_minor, cash_out_minor FROM kyc_usage"
        f" WHERE villager_id = :v AND utc_day = :d{tx.for_update}",
        {"v": villager_id, "d": day},
    )
    assert row is not None  # inserted above, and usage rows are never deleted
    return int(row[0]), int(row[1])


def _column(direction: Direction) -> str:
    return "cash_in_minor" if direction is Direction.CASH_IN else "cash_out_minor"


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
    cash_in, cash_out = _locked_usage(tx, villager.id, day)
    used = cash_in if direction is Direction.CASH_IN else cash_out
    if used + amount_minor > limits.daily_max_minor:
        raise Refused(
            "limit_exceeded_daily",
            f"{direction.value} of {amount_minor} today after {used} would pass the"
            f" {limits.tier} daily limit of {limits.daily_max_minor}",
        )
    column = _column(direction)
    tx.execute(
        f"UPDATE kyc_usage SET {column} = {column} + :amount, updated_at_us = :now"
        " WHERE villager_id = :v AND utc_day = :d",
        {"amount": amount_minor, "now": tx.now_us, "v": villager.id, "d": day},
    )
    return day


def release_in(
    tx: Tx, *, villager_id: uuid.UUID, day: int, direction: Direction, amount_minor: int
) -> None:
    """Give back what :func:`reserve_in` counted on ``day`` (a cash-out that did not
    happen); the database refuses usage below zero."""
    _locked_usage(tx, villager_id, day)
    column = _column(Direction(direction))
    tx.execute(
        f"UPDATE kyc_usage SET {column} = {column} - :amount, updated_at_us = :now"
        " WHERE villager_id = :v AND utc_day = :d",
        {"amount": amount_minor, "now": tx.now_us, "v": villager_id, "d": day},
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
        row = tx.one(
            "SELECT cash_in_minor, cash_out_minor FROM kyc_usage"
            " WHERE villager_id = :v AND utc_day = :d",
            {"v": villager_id, "d": wanted},
        )
        cash_in, cash_out = (0, 0) if row is None else (int(row[0]), int(row[1]))
        return Usage(villager_id, _EPOCH + timedelta(days=wanted), cash_in, cash_out)

    return led.transact(work)
