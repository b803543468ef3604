"""The ``events`` table, the outbox: the only module that writes SQL naming it.

Rows are appended and read in ``seq`` order; a trigger refuses UPDATE and DELETE.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.core.store import from_us
from ledger.core.tx import Tx


@dataclass(frozen=True, slots=True)
class Event:
    """One row of the outbox; ``payload`` holds integer minor units and ISO 8601 times."""

    seq: int
    id: uuid.UUID
    type: str
    party_id: uuid.UUID | None
    subject_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: datetime


def insert(
    tx: Tx,
    *,
    event_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    party_id: uuid.UUID | None,
    subject_id: uuid.UUID | None,
) -> None:
    tx.execute(
        "INSERT INTO events (id, type, party_id, subject_id, payload, created_at_us)"
        " VALUES (:id, :type, :party_id, :subject_id, :payload, :now)",
        {
            "id": event_id,
            "type": event_type,
            "party_id": party_id,
            "subject_id": subject_id,
            "payload": json.dumps(payload, sort_keys=True, separators=(",", ":")),
            "now": tx.now_us,
        },
    )


def select_after(
    tx: Tx,
    *,
    after_seq: int,
    limit: int,
    party_id: uuid.UUID | None,
    subject_id: uuid.UUID | None,
) -> list[Event]:
    """At most ``limit`` events after ``after_seq`` in order, of one party or subject if
    given."""
    where = "seq > :after"
    if party_id is not None:
        where += " AND party_id = :party_id"
    if subject_id is not None:
        where += " AND subject_id = :subject_id"
    rows = tx.execute(
        "SELECT seq, id, type, party_id, subject_id, payload, created_at_us FROM events"
        f" WHERE {where} ORDER BY seq LIMIT :limit",
        {"after": after_seq, "party_id": party_id, "subject_id": subject_id, "limit": limit},
    )
    return [
        Event(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), from_us(row[6]))
        for row in rows
    ]
