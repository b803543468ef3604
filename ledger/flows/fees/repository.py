"""The ``fee_schedules`` table: the only module that writes SQL naming it. A published
version is never edited (a trigger refuses it); a change is a new version."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ledger.core.tx import Tx


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One published version of a product's schedule in a currency."""

    version: int
    rules: dict[str, Any]
    """The rules object as published (see :mod:`ledger.flows.fees`)."""


def last_version(tx: Tx, *, product: str, currency: str) -> int:
    """The newest version number of the schedule; 0 when none was published."""
    row = tx.one(
        "SELECT MAX(version) FROM fee_schedules WHERE product = :p AND currency = :c",
        {"p": product, "c": currency},
    )
    return row[0] if row and row[0] is not None else 0


def insert(
    tx: Tx,
    *,
    schedule_id: uuid.UUID,
    product: str,
    currency: str,
    version: int,
    effective_from_us: int,
    rules: dict[str, Any],
) -> None:
    tx.execute(
        "INSERT INTO fee_schedules (id, product, currency, version, effective_from_us, rules,"
        " created_at_us) VALUES (:id, :p, :c, :v, :eff, :rules, :now)",
        {
            "id": schedule_id,
            "p": product,
            "c": currency,
            "v": version,
            "eff": effective_from_us,
            "rules": json.dumps(rules, sort_keys=True, separators=(",", ":")),
            "now": tx.now_us,
        },
    )


def in_effect(tx: Tx, *, product: str, currency: str) -> ScheduleRow | None:
    """The version in effect at ``tx.now`` (the newest one of the latest start)."""
    row = tx.one(
        "SELECT version, rules FROM fee_schedules WHERE product = :p AND currency = :c"
        " AND effective_from_us <= :now ORDER BY effective_from_us DESC, version DESC LIMIT 1",
        {"p": product, "c": currency, "now": tx.now_us},
    )
    return None if row is None else ScheduleRow(row[0], json.loads(row[1]))


@dataclass(frozen=True, slots=True)
class VersionRow:
    """One published version as a list shows it."""

    version: int
    effective_from_us: int
    """When it takes effect, microseconds since the Unix epoch (UTC)."""
    created_at_us: int
    """When it was published, microseconds since the Unix epoch (UTC)."""
    rules: dict[str, Any]


def select_versions(
    tx: Tx, *, product: str, currency: str, after_version: int, limit: int
) -> list[VersionRow]:
    """Up to ``limit`` versions after ``after_version``, oldest first."""
    rows = tx.execute(
        "SELECT version, effective_from_us, created_at_us, rules FROM fee_schedules"
        " WHERE product = :p AND currency = :c AND version > :after"
        " ORDER BY version LIMIT :limit",
        {"p": product, "c": currency, "after": after_version, "limit": limit},
    )
    return [VersionRow(r[0], r[1], r[2], json.loads(r[3])) for r in rows]
