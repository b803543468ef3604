"""All SQL of ``idempotency_records``: one row per (principal, method, path, key), written
``in_progress`` by a claim and ``done`` with the stored answer; deleted when released (a
5xx) or expired. Moments are UTC microseconds since 1970 (``*_us``).

The records commit durably, like everything else: on the API's pipeline a record shares
its request's transaction, money included (:mod:`ledger.flows.idempotency`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.tx import Tx

__all__ = [
    "Lease",
    "Record",
    "RecordState",
    "Scope",
    "StoredAnswer",
    "delete",
    "delete_in_progress",
    "extend_lease",
    "insert_in_progress",
    "lock_record",
    "mark_done",
    "select_expired",
    "take_over",
]


class RecordState(StrEnum):
    """``idempotency_records.state``."""

    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a key is unique within: the principal, the method, the path and the key."""

    principal_id: uuid.UUID
    method: str
    path: str
    key: str

    def params(self) -> dict[str, object]:
        return {
            "principal_id": self.principal_id,
            "method": self.method,
            "path": self.path,
            "key": self.key,
        }


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """A stored answer: its status, the headers kept for replay, the UTF-8 JSON body."""

    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Record:
    """A row of ``idempotency_records`` as a claim reads it."""

    request_digest: str
    state: RecordState
    answer: StoredAnswer | None
    """The stored answer (``done`` records only)."""
    locked_until_us: int
    expires_at_us: int


@dataclass(frozen=True, slots=True)
class Lease:
    """What a claim writes: the request's digest and its moments."""

    digest: str
    """SHA-256 of the request body, hex."""
    now_us: int
    locked_until_us: int
    expires_at_us: int

    def params(self, scope: Scope) -> dict[str, object]:
        return {
            **scope.params(),
            "digest": self.digest,
            "now": self.now_us,
            "locked_until": self.locked_until_us,
            "expires": self.expires_at_us,
        }


_WHERE = (
    " WHERE principal_id = :principal_id AND method = :method AND path = :path"
    " AND idempotency_key = :key"
)


def insert_in_progress(tx: Tx, scope: Scope, lease: Lease) -> bool:
    """Write a new ``in_progress`` record; False when one exists for the scope."""
    inserted = tx.execute(
        "INSERT INTO idempotency_records (principal_id, method, path, idempotency_key,"
        " request_digest, state, created_at_us, locked_until_us, expires_at_us)"
        " SELECT :principal_id, :method, :path, :key, :digest, 'in_progress', :now,"
        " :locked_until, :expires"
        " ON CONFLICT (principal_id, method, path, idempotency_key) DO NOTHING"
        " RETURNING 1",
        lease.params(scope),
    )
    return bool(inserted)


def lock_record(tx: Tx, scope: Scope) -> Record | None:
    """The scope's record, locked until the transaction ends (PostgreSQL); None: none."""
    row = tx.one(
        "SELECT request_digest, state, status_code, response_headers, response_body,"
        f" locked_until_us, expires_at_us FROM idempotency_records{_WHERE}{tx.for_update}",
        scope.params(),
    )
    if row is None:
        return None
    state = RecordState(row[1])
    answer = None
    if state is RecordState.DONE:
        answer = StoredAnswer(int(row[2]), json.loads(row[3]), str(row[4]).encode("utf-8"))
    return Record(str(row[0]), state, answer, int(row[5]), int(row[6]))


def take_over(tx: Tx, scope: Scope, lease: Lease) -> None:
    """Make the scope's (expired) record a fresh ``in_progress`` one for ``lease``."""
    tx.execute(
        "UPDATE idempotency_records SET request_digest = :digest,"
        " state = 'in_progress', status_code = NULL, response_headers = NULL,"
        " response_body = NULL, created_at_us = :now,"
        f" locked_until_us = :locked_until, expires_at_us = :expires{_WHERE}",
        lease.params(scope),
    )


def extend_lease(tx: Tx, scope: Scope, lease: Lease) -> None:
    """Give the scope's ``in_progress`` record the lease's ``locked_until_us``."""
    tx.execute(
        f"UPDATE idempotency_records SET locked_until_us = :locked_until{_WHERE}",
        lease.params(scope),
    )


def mark_done(tx: Tx, scope: Scope, answer: StoredAnswer) -> None:
    """Store the answer of the scope's ``in_progress`` record (UTF-8 JSON bodies only)."""
    tx.execute(
        "UPDATE idempotency_records SET state = 'done', status_code = :status,"
        f" response_headers = :headers, response_body = :body{_WHERE}"
        " AND state = 'in_progress'",
        {
            **scope.params(),
            "status": answer.status_code,
            "headers": json.dumps(answer.headers),
            "body": answer.body.decode("utf-8"),
        },
    )


def delete_in_progress(tx: Tx, scope: Scope) -> None:
    """Delete the scope's record if it is still ``in_progress``."""
    tx.execute(
        f"DELETE FROM idempotency_records{_WHERE} AND state = 'in_progress'",
        scope.params(),
    )


def select_expired(tx: Tx, *, now_us: int, limit: int) -> list[Scope]:
    """The scopes of up to ``limit`` records expired at ``now_us``, soonest expired first."""
    rows = tx.execute(
        "SELECT principal_id, method, path, idempotency_key FROM idempotency_records"
        " WHERE expires_at_us <= :now"
        " ORDER BY expires_at_us LIMIT :limit",
        {"now": now_us, "limit": limit},
    )
    return [Scope(row[0], str(row[1]), str(row[2]), str(row[3])) for row in rows]


def delete(tx: Tx, scope: Scope) -> None:
    """Delete the scope's record, whatever its state."""
    tx.execute(f"DELETE FROM idempotency_records{_WHERE}", scope.params())
