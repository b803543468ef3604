"""All SQL of ``account_owners``: one row per account opened through the API, naming the
principal that opened it, numbered in order (``seq``); a row never changes (a trigger
refuses UPDATE and DELETE). Moments are UTC microseconds since 1970 (``*_us``)."""

from __future__ import annotations

import uuid

from ledger.core.tx import Tx

__all__ = ["insert_owner", "select_owned_ids", "select_owner", "select_seq"]


def select_owner(tx: Tx, account_id: uuid.UUID) -> uuid.UUID | None:
    """The principal that opened ``account_id``, or None."""
    row = tx.one(
        "SELECT principal_id FROM account_owners WHERE account_id = :account_id",
        {"account_id": account_id},
    )
    if row is None:
        return None
    owner: uuid.UUID = row[0]
    return owner


def insert_owner(tx: Tx, account_id: uuid.UUID, principal_id: uuid.UUID) -> None:
    """Record that ``principal_id`` opened ``account_id`` now."""
    tx.execute(
        "INSERT INTO account_owners (account_id, principal_id, created_at_us)"
        " VALUES (:account_id, :principal_id, :now)",
        {"account_id": account_id, "principal_id": principal_id, "now": tx.now_us},
    )


def select_seq(tx: Tx, account_id: uuid.UUID, *, principal_id: uuid.UUID | None) -> int | None:
    """The account's place in the order of opening (``seq``); None when no row names it
    (or, with ``principal_id``, none of that principal's)."""
    mine = "" if principal_id is None else " AND principal_id = :principal_id"
    row = tx.one(
        f"SELECT seq FROM account_owners WHERE account_id = :account_id{mine}",
        {"account_id": account_id, "principal_id": principal_id},
    )
    return None if row is None else int(row[0])


def select_owned_ids(
    tx: Tx, *, principal_id: uuid.UUID | None, after_seq: int, limit: int
) -> list[uuid.UUID]:
    """Up to ``limit`` account ids opened after ``after_seq`` (by ``principal_id``;
    ``None``: anyone), in the order they were opened."""
    mine = "" if principal_id is None else " AND principal_id = :principal_id"
    rows = tx.execute(
        f"SELECT account_id FROM account_owners WHERE seq > :after_seq{mine}"
        " ORDER BY seq LIMIT :limit",
        {"after_seq": after_seq, "principal_id": principal_id, "limit": limit},
    )
    return [row[0] for row in rows]
