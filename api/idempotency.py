"""Idempotency-Key (IETF httpapi draft) records: each POST answered once, replayed after.

A POST claims (principal, method, path, key) with the SHA-256 of its body before it does
anything. The claim answers one of:

* new: no live record, one is written ``in_progress`` and the request runs; its answer
  (any status below 500) is stored and replayed for ``ttl_s``; a 5xx or a crash
  releases the key (the ledger's own ids make the rerun safe);
* replay: the same body was answered before: the stored status, headers and body;
* ``idempotency_key_reused`` (422): the key was used with another body;
* ``idempotency_in_progress`` (409, ``Retry-After``): the first request is still
  running. A claim is a lease of ``lock_s`` seconds (``Settings.idempotency_lock_s``):
  an ``in_progress`` record whose lease has run out is taken over by the next attempt
  with the same body (its request died, or its answer was lost, between the ledger's
  commit and storing the answer; the ledger's ids answer ``exists`` for what it had done).
  So no record blocks its key for longer than ``lock_s``.

The record and the ledger change are two transactions, not one: the group commit of
transfers would otherwise be lost. What stays exact is the money (client ids).

The records are a cache of answers, not the money: on PostgreSQL their transactions
(claim, complete, release, purge) commit with ``synchronous_commit = off``, so a request
waits for one disk flush only, the ledger's (which the group commit shares). What a
crash of PostgreSQL can then lose, and why each loss is safe:

* a claim not flushed yet: its request had not reached the ledger's commit (a durable
  commit flushes the WAL up to itself, hence every record committed before it, the
  claim included), or it had, and then the claim is on disk too. Its client got no
  answer, retries, claims anew, and runs once (the transfer ids it sends are the same);
* a completion (or a release) not flushed yet, after the transfer's commit was flushed:
  the record is back to ``in_progress``; its client may already hold the answer. A
  retry gets 409 until the lease of ``lock_s`` runs out, then takes the key over and
  reruns: the transfers answer ``exists``, nothing moves twice. The answer replayed is
  then the rerun's, not the first one (as after the API process dying at that point);
* a purge not flushed: the expired records are deleted again by the next purge.

A crash of the API process alone loses nothing committed (asynchronous commit is about
the database's own crash); its unfinished claims wait out their lease, as before.
Visibility does not change: another transaction sees a claim as soon as it commits, so
two concurrent requests with one key still run one of them.
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


CLAIM_ATTEMPTS_MAX = 3
"""Inserts a claim tries when the record it met keeps vanishing (released or purged in
between); past that it answers ``in_progress`` (the key is being raced for)."""


def _without_flush(tx: Tx) -> str:
    """A condition that holds, and that on PostgreSQL makes the transaction evaluating it
    commit without waiting for the disk: ``set_config(..., true)`` is ``SET LOCAL``, folded
    into the statement that writes to save a round trip. A statement that writes no row
    may not evaluate it, and needs not: a transaction that wrote nothing flushes nothing."""
    if tx.dialect == "postgresql":
        return "set_config('synchronous_commit', 'off', true) = 'off'"
    return "1 = 1"


def claim(led: Ledger, scope: Scope, *, digest: str, ttl_s: int, lock_s: int) -> Claim:
    def work(tx: Tx) -> Claim:
        now = tx.now_us
        fresh = {
            **scope.params(),
            "digest": digest,
            "now": now,
            "locked_until": now + lock_s * US_PER_S,
            "expires": now + ttl_s * US_PER_S,
        }
        for _ in range(CLAIM_ATTEMPTS_MAX):
            inserted = tx.execute(
                "INSERT INTO idempotency_records (principal_id, method, path, idempotency_key,"
                " request_digest, state, created_at_us, locked_until_us, expires_at_us)"
                " SELECT :principal_id, :method, :path, :key, :digest, 'in_progress', :now,"
                f" :locked_until, :expires WHERE {_without_flush(tx)}"
                " ON CONFLICT (principal_id, method, path, idempotency_key) DO NOTHING"
                " RETURNING 1",
                fresh,
            )
            if inserted:
                return Claim("new")
            row = tx.one(
                "SELECT request_digest, state, status_code, response_headers, response_body,"
                f" locked_until_us, expires_at_us FROM idempotency_records{_WHERE}"
                f"{tx.for_update}",
                scope.params(),
            )
            if row is None:
                continue  # released or purged since the insert met it: insert again
            if row[6] <= now:
                tx.execute(
                    "UPDATE idempotency_records SET request_digest = :digest,"
                    " state = 'in_progress', status_code = NULL, response_headers = NULL,"
                    " response_body = NULL, created_at_us = :now,"
                    f" locked_until_us = :locked_until, expires_at_us = :expires{_WHERE}",
                    fresh,
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
                return Claim(
                    "in_progress", retry_after_s=max(1, min(5, (row[5] - now) // US_PER_S))
                )
            # The lease ran out: the request holding it died (or its answer was lost).
            tx.execute(
                f"UPDATE idempotency_records SET locked_until_us = :locked_until{_WHERE}",
                fresh,
            )
            return Claim("new")
        return Claim("in_progress", retry_after_s=1)

    return led.transact(work)


def complete(led: Ledger, scope: Scope, answer: StoredAnswer) -> None:
    """Store the answer of a claimed request (UTF-8 JSON bodies only)."""

    def work(tx: Tx) -> None:
        tx.execute(
            "UPDATE idempotency_records SET state = 'done', status_code = :status,"
            f" response_headers = :headers, response_body = :body{_WHERE}"
            f" AND state = 'in_progress' AND {_without_flush(tx)}",
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

    def work(tx: Tx) -> None:
        tx.execute(
            f"DELETE FROM idempotency_records{_WHERE} AND state = 'in_progress'"
            f" AND {_without_flush(tx)}",
            scope.params(),
        )

    led.transact(work)


def purge_expired(led: Ledger) -> int:
    """Delete up to :data:`PURGE_BATCH_MAX` expired records; how many were deleted."""

    def work(tx: Tx) -> int:
        rows = tx.execute(
            "SELECT principal_id, method, path, idempotency_key FROM idempotency_records"
            f" WHERE expires_at_us <= :now AND {_without_flush(tx)}"
            " ORDER BY expires_at_us LIMIT :limit",
            {"now": tx.now_us, "limit": PURGE_BATCH_MAX},
        )
        for row in rows:
            tx.execute(
                f"DELETE FROM idempotency_records{_WHERE}",
                {"principal_id": row[0], "method": row[1], "path": row[2], "key": row[3]},
            )
        return len(rows)

    return led.transact(work)
