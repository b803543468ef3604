"""The ``suspense_items`` table: the only module that writes SQL naming it.

One row per parked item; it is written once when parked and updated once when resolved
(reassigned or returned). Amounts are minor units of the item's currency, moments UTC
microseconds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.rows import RowMapper, moment, written_or_locked
from ledger.core.tx import Tx


class SuspenseState(StrEnum):
    PARKED = "parked"
    REASSIGNED = "reassigned"
    RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class SuspenseItem:
    """Provider money in suspense; ``amount_minor`` in minor units of ``currency``."""

    id: uuid.UUID
    currency: str
    provider: str
    provider_reference: str
    amount_minor: int
    note: str | None
    state: SuspenseState
    park_transfer_id: uuid.UUID
    target_party_id: uuid.UUID | None
    """Reassigned: the villager or storefront it went to."""
    target_account_id: uuid.UUID | None
    """Reassigned: the wallet or proceeds account it went to."""
    resolve_transfer_id: uuid.UUID | None
    return_reason: str | None
    created_at: datetime
    resolved_at: datetime | None


_ITEM = RowMapper(
    SuspenseItem,
    "id, currency, provider, provider_reference, amount_minor, note, state, park_transfer_id,"
    " target_party_id, target_account_id, resolve_transfer_id, return_reason,"
    " created_at_us AS created_at, resolved_at_us AS resolved_at",
    {"state": SuspenseState, "created_at": moment, "resolved_at": moment},
)


def read(tx: Tx, suspense_id: uuid.UUID, *, lock: bool) -> SuspenseItem | None:
    """The item, locked ``FOR UPDATE`` when ``lock``; ``None`` when there is none."""
    row = tx.one(
        f"SELECT {_ITEM.columns} FROM suspense_items WHERE id = :id{tx.for_update if lock else ''}",
        {"id": suspense_id},
    )
    return _ITEM.one(row)


def reread(tx: Tx, suspense_id: uuid.UUID) -> SuspenseItem:
    """An item this transaction wrote or locked."""
    return written_or_locked(read(tx, suspense_id, lock=False), f"suspense {suspense_id}")


def id_parked_as(tx: Tx, *, provider: str, provider_reference: str) -> uuid.UUID | None:
    """The item that parked this provider's reference, if one did."""
    row = tx.one(
        "SELECT id FROM suspense_items WHERE provider = :p AND provider_reference = :r",
        {"p": provider, "r": provider_reference},
    )
    return None if row is None else row[0]


def with_reference(tx: Tx, reference: str, *, limit: int) -> list[SuspenseItem]:
    """At most ``limit`` items of any provider parked with this reference, in id order."""
    rows = tx.execute(
        f"SELECT {_ITEM.columns} FROM suspense_items WHERE provider_reference = :r"
        " ORDER BY id LIMIT :limit",
        {"r": reference, "limit": limit},
    )
    return _ITEM.all(rows)


def insert_parked(
    tx: Tx,
    *,
    suspense_id: uuid.UUID,
    currency: str,
    provider: str,
    provider_reference: str,
    amount_minor: int,
    note: str | None,
    park_transfer_id: uuid.UUID,
) -> None:
    tx.execute(
        f"INSERT INTO suspense_items ({_ITEM.stored_columns}) VALUES (:id, :currency,"
        " :provider, :reference, :amount, :note, 'parked', :park, NULL, NULL, NULL, NULL,"
        " :now, NULL)",
        {
            "id": suspense_id,
            "currency": currency,
            "provider": provider,
            "reference": provider_reference,
            "amount": amount_minor,
            "note": note,
            "park": park_transfer_id,
            "now": tx.now_us,
        },
    )


def mark_reassigned(
    tx: Tx,
    suspense_id: uuid.UUID,
    *,
    party_id: uuid.UUID,
    account_id: uuid.UUID,
    transfer_id: uuid.UUID,
) -> None:
    tx.execute(
        "UPDATE suspense_items SET state = 'reassigned', target_party_id = :party,"
        " target_account_id = :account, resolve_transfer_id = :t, resolved_at_us = :now"
        " WHERE id = :id",
        {
            "party": party_id,
            "account": account_id,
            "t": transfer_id,
            "now": tx.now_us,
            "id": suspense_id,
        },
    )


def mark_returned(tx: Tx, suspense_id: uuid.UUID, *, reason: str, transfer_id: uuid.UUID) -> None:
    tx.execute(
        "UPDATE suspense_items SET state = 'returned', return_reason = :reason,"
        " resolve_transfer_id = :t, resolved_at_us = :now WHERE id = :id",
        {"reason": reason, "t": transfer_id, "now": tx.now_us, "id": suspense_id},
    )


def select_page(
    tx: Tx,
    *,
    state: SuspenseState | None,
    provider: str | None,
    currency: str | None,
    limit: int,
    starting_after: uuid.UUID | None,
) -> list[SuspenseItem]:
    """At most ``limit`` items oldest first (``created_at``, then id) matching the filters
    given, after the item ``starting_after`` (``[]`` when there is no such item)."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    filters = {
        "state": None if state is None else state.value,
        "provider": provider,
        "currency": currency,
    }
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if starting_after is not None:
        cursor = tx.one(
            "SELECT created_at_us FROM suspense_items WHERE id = :id", {"id": starting_after}
        )
        if cursor is None:
            return []
        where.append("(created_at_us > :at OR (created_at_us = :at AND id > :after))")
        params.update(at=cursor[0], after=starting_after)
    rows = tx.execute(
        f"SELECT {_ITEM.columns} FROM suspense_items WHERE {' AND '.join(where)}"
        " ORDER BY created_at_us, id LIMIT :limit",
        params,
    )
    return _ITEM.all(rows)
