"""Idempotency-Key (IETF httpapi draft) records: each POST answered once, replayed after.

A POST claims (principal, method, path, key) with the SHA-256 of its body before it does
anything. The claim answers one of:

* new: no live record, one is written ``in_progress`` and the request runs; its answer
  (any status below 500) is stored and replayed for ``ttl_s``; a 5xx or a crash
  releases the key (the ledger's own ids make the rerun safe);
* replay: the same body was answered before: the stored status, headers and body;
* ``idempotency_key_reused`` (422): the key was used with another body;
* ``idempotency_in_progress`` (409, ``Retry-After``): the first request is still
  running. An ``in_progress`` record older than ``lock_s`` is taken over (its process
  died between the ledger's commit and storing the answer; the ledger's ids answer
  ``exists`` for what it had done).

The record and the ledger change are two transactions, not one: the group commit of
transfers would otherwise be lost. What stays exact is the money (client ids).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Literal

from ledger import Ledger
from ledger.core.tx import Tx

US_PER_S = 1_000_000
PURGE_BATCH_MAX = 1000


@dataclass(frozen=True, slots=True)
class Scope:
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
    status_code: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: Literal["new", "replay", "reused", "in_progress"]
    answer: StoredAnswer | None = None
    retry_after_s: int = 0


_WHERE = (
    " WHERE principal_id = :principal_id AND method = :method AND path = :path"
    " AND idempotency_key = :key"
)


def claim(led: Ledger, scope: Scope, *, digest: str, ttl_s: int, lock_s: int) -> Claim:
    def work(tx: Tx) -> Claim:
        row = tx.one(
            "SELECT request_digest, state, status_code, response_headers, response_body,"
            f" locked_until_us, expires_at_us FROM idempotency_records{_WHERE}{tx.for_update}",
            scope.params(),
        )
        now = tx.now_us
        if row is not None and row[6] <= now:
            tx.execute(f"DELETE FROM idempotency_records{_WHERE}", scope.params())
            row = None
        if row is None:
            tx.execute(
                "INSERT INTO idempotency_records (principal_id, method, path, idempotency_key,"
                " request_digest, state, created_at_us, locked_until_us, expires_at_us)"
                " VALUES (:principal_id, :method, :path, :key, :digest, 'in_progress', :now,"
                " :locked_until, :expires)",
                {
                    **scope.params(),
                    "digest": digest,
                    "now": now,
                    "locked_until": now + lock_s * US_PER_S,
                    "expires": now + ttl_s * US_PER_S,
                },
            )
            return Claim("new")
        if row[0] != digest:
            return Claim("reused")
        if row[1] == "done":
            return Claim(
                "replay",
                StoredAnswer(int(row[2]), json.loads(row[3]), str(row[4]).encode("utf-8")),
            )
        if row[5] > now:
            return Claim("in_progress", retry_after_s=max(1, min(5, (row[5] - now) // US_PER_S)))
        tx.execute(
            f"UPDATE idempotency_records SET locked_until_us = :locked_until{_WHERE}",
            {**scope.params(), "locked_until": now + lock_s * US_PER_S},
        )
        return Claim("new")

    return led.transact(work)


def complete(led: Ledger, scope: Scope, answer: StoredAnswer) -> None:
    """Store the answer of a claimed request (UTF-8 JSON bodies only)."""

    def work(tx: Tx) -> None:
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

    led.transact(work)


def release(led: Ledger, scope: Scope) -> None:
    """Forget a claimed request that failed (5xx): the client may retry with the key."""
    led.transact(
        lambda tx: tx.execute(
            f"DELETE FROM idempotency_records{_WHERE} AND state = 'in_progress'", scope.params()
        )
    )


def purge_expired(led: Ledger) -> int:
    """Delete up to :data:`PURGE_BATCH_MAX` expired records; how many were deleted."""

    def work(tx: Tx) -> int:
        rows = tx.execute(
            "SELECT principal_id, method, path, idempotency_key FROM idempotency_records"
            " WHERE expires_at_us <= :now ORDER BY expires_at_us LIMIT :limit",
            {"now": tx.now_us, "limit": PURGE_BATCH_MAX},
        )
        for row in rows:
            tx.execute(
                f"DELETE FROM idempotency_records{_WHERE}",
                {"principal_id": row[0], "method": row[1], "path": row[2], "key": row[3]},
            )
        return len(rows)

    return led.transact(work)
