"""The ``kyc_tiers`` and ``kyc_usage`` tables: the only module that writes SQL naming
them. Amounts are minor units; a usage row is one villager's UTC day."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx


class Direction(StrEnum):
    """Which way cash crosses the counter (each has its own daily allowance)."""

    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"

    @property
    def column(self) -> str:
        """The ``kyc_usage`` column that counts this direction."""
        return f"{self.value}_minor"


@dataclass(frozen=True, slots=True)
class TierLimits:
    """The limits of one KYC tier in one currency (minor units)."""

    currency: str
    tier: str
    per_transaction_max_minor: int
    daily_max_minor: int
    """Per UTC day, for cash-in and for cash-out apart."""
    balance_max_minor: int


def select_tier(tx: Tx, *, currency: str, tier: str) -> TierLimits | None:
    row = tx.one(
        "SELECT currency, tier, per_transaction_max_minor, daily_max_minor, balance_max_minor"
        " FROM kyc_tiers WHERE currency = :c AND tier = :t",
        {"c": currency, "t": tier},
    )
    return None if row is None else TierLimits(row[0], row[1], row[2], row[3], row[4])


def upsert_tier(tx: Tx, limits: TierLimits) -> None:
    """Add the tier in its currency, or replace its three limits."""
    tx.execute(
        "INSERT INTO kyc_tiers (currency, tier, per_transaction_max_minor, daily_max_minor,"
        " balance_max_minor, updated_at_us) VALUES (:c, :t, :per, :daily, :balance, :now)"
        " ON CONFLICT (currency, tier) DO UPDATE SET"
        " per_transaction_max_minor = :per, daily_max_minor = :daily,"
        " balance_max_minor = :balance, updated_at_us = :now",
        {
            "c": limits.currency,
            "t": limits.tier,
            "per": limits.per_transaction_max_minor,
            "daily": limits.daily_max_minor,
            "balance": limits.balance_max_minor,
            "now": tx.now_us,
        },
    )


def locked_usage(tx: Tx, *, villager_id: uuid.UUID, day: int) -> tuple[int, int]:
    """Insert the day's row if missing (race-safe: ``ON CONFLICT DO NOTHING``), then lock
    it until commit; (cash in, cash out) so far."""
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
    if row is None:
        raise InvariantViolation(f"kyc_usage of {villager_id} on day {day} vanished")
    return int(row[0]), int(row[1])


def add_usage(
    tx: Tx, *, villager_id: uuid.UUID, day: int, direction: Direction, delta_minor: int
) -> None:
    """Add ``delta_minor`` (negative: give back) to the day's count of ``direction``; the
    database refuses a count below zero."""
    column = Direction(direction).column
    tx.execute(
        f"UPDATE kyc_usage SET {column} = {column} + :amount, updated_at_us = :now"
        " WHERE villager_id = :v AND utc_day = :d",
        {"amount": delta_minor, "now": tx.now_us, "v": villager_id, "d": day},
    )


def select_usage(tx: Tx, *, villager_id: uuid.UUID, day: int) -> tuple[int, int]:
    """(cash in, cash out) of the villager on ``day``; (0, 0) for a day without a row."""
    row = tx.one(
        "SELECT cash_in_minor, cash_out_minor FROM kyc_usage"
        " WHERE villager_id = :v AND utc_day = :d",
        {"v": villager_id, "d": day},
    )
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def select_tiers(tx: Tx, *, currency: str, after_tier: str, limit: int) -> list[TierLimits]:
    """At most ``limit`` tiers of ``currency`` whose name sorts after ``after_tier``
    (``""``: from the first), in the order of their names."""
    rows = tx.execute(
        "SELECT currency, tier, per_transaction_max_minor, daily_max_minor, balance_max_minor"
        " FROM kyc_tiers WHERE currency = :c AND tier > :after ORDER BY tier LIMIT :n",
        {"c": currency, "after": after_tier, "n": limit},
    )
    return [TierLimits(r[0], r[1], r[2], r[3], r[4]) for r in rows]
