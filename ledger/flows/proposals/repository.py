"""The ``proposals`` table: the only module that writes SQL naming it. A decided proposal
never changes again and no proposal is deleted (triggers refuse both)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.core.rows import RowMapper, from_json, moment
from ledger.core.tx import Tx


class State(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Proposal:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    proposed_by: uuid.UUID
    state: State
    decided_by: uuid.UUID | None
    reason: str | None
    result: Any
    """What applying it answered (approved only), as JSON values."""
    created_at: datetime
    decided_at: datetime | None


_PROPOSAL = RowMapper(
    Proposal,
    "id, kind, payload, proposed_by, state, decided_by, reason, result,"
    " created_at_us AS created_at, decided_at_us AS decided_at",
    {
        "payload": from_json,
        "state": State,
        "result": from_json,
        "created_at": moment,
        "decided_at": moment,
    },
)


def insert(
    tx: Tx, *, proposal_id: uuid.UUID, kind: str, payload_text: str, proposed_by: uuid.UUID
) -> None:
    """A new ``proposed`` proposal; ``payload_text`` is its canonical JSON."""
    tx.execute(
        "INSERT INTO proposals (id, kind, payload, proposed_by, state, created_at_us)"
        " VALUES (:id, :kind, :payload, :by, 'proposed', :now)",
        {
            "id": proposal_id,
            "kind": kind,
            "payload": payload_text,
            "by": proposed_by,
            "now": tx.now_us,
        },
    )


def select(tx: Tx, proposal_id: uuid.UUID, *, lock: bool = False) -> Proposal | None:
    """The proposal (its row locked until commit with ``lock``), or ``None``."""
    row = tx.one(
        f"SELECT {_PROPOSAL.columns} FROM proposals WHERE id = :id{tx.for_update if lock else ''}",
        {"id": proposal_id},
    )
    return _PROPOSAL.one(row)


def mark_approved(tx: Tx, *, proposal_id: uuid.UUID, approver: uuid.UUID, result_text: str) -> None:
    tx.execute(
        "UPDATE proposals SET state = 'approved', decided_by = :by, decided_at_us = :now,"
        " result = :result WHERE id = :id AND state = 'proposed'",
        {"id": proposal_id, "by": approver, "now": tx.now_us, "result": result_text},
    )


def mark_rejected(tx: Tx, *, proposal_id: uuid.UUID, decider: uuid.UUID, reason: str) -> None:
    tx.execute(
        "UPDATE proposals SET state = 'rejected', decided_by = :by, decided_at_us = :now,"
        " reason = :reason WHERE id = :id AND state = 'proposed'",
        {"id": proposal_id, "by": decider, "now": tx.now_us, "reason": reason},
    )


def select_pending_like(
    tx: Tx, *, kind: str, patterns: Sequence[str], limit: int
) -> list[Proposal]:
    """At most ``limit`` proposals still ``proposed`` of ``kind`` whose payload text is
    LIKE every one of ``patterns`` (``\\`` escapes ``%`` and ``_``), oldest first."""
    where = "".join(f" AND payload LIKE :p{i} ESCAPE '\\'" for i in range(len(patterns)))
    params: dict[str, Any] = {f"p{i}": p for i, p in enumerate(patterns)}
    rows = tx.execute(
        f"SELECT {_PROPOSAL.columns} FROM proposals WHERE state = 'proposed' AND kind = :kind"
        f"{where} ORDER BY seq LIMIT :n",
        {**params, "kind": kind, "n": limit},
    )
    return _PROPOSAL.all(rows)


def seq_of(tx: Tx, proposal_id: uuid.UUID) -> int | None:
    """The proposal's place in the order proposals were made, or ``None``."""
    row = tx.one("SELECT seq FROM proposals WHERE id = :id", {"id": proposal_id})
    return None if row is None else int(row[0])


def select_after(tx: Tx, *, after_seq: int, state: State | None, limit: int) -> list[Proposal]:
    """At most ``limit`` proposals after ``after_seq``, oldest first, of ``state`` if
    given."""
    where = "" if state is None else " AND state = :state"
    rows = tx.execute(
        f"SELECT {_PROPOSAL.columns} FROM proposals WHERE seq > :after{where}"
        " ORDER BY seq LIMIT :n",
        {"after": after_seq, "state": None if state is None else state.value, "n": limit},
    )
    return _PROPOSAL.all(rows)
