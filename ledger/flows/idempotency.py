"""Idempotency-Key (IETF httpapi draft) records: each POST answered once, replayed after.
This module owns ``idempotency_records``; the API's pipeline (``api.context.run_post``)
calls it.

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
from enum import StrEnum

from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.limits import US_PER_S

__all__ = [
    "CLAIM_ATTEMPTS_MAX",
    "PURGE_BATCH_MAX",
    "Claim",
    "Outcome",
    "RecordState",
    "Scope",
    "StoredAnswer",
    "claim",
    "claim_in",
    "complete",
    "complete_in",
    "purge_expired",
    "purge_expired_in",
    "release",
    "release_in",
]

PURGE_BATCH_MAX = 1000
"""The most expired records one :func:`purge_expired` deletes."""

CLAIM_ATTEMPTS_MAX = 3
"""Inserts a claim tries when the record it met keeps vanishing (released or purged in
between); past that it answers ``in_progress`` (the key is being raced for)."""

RETRY_AFTER_S_MAX = 5
"""The longest ``Retry-After`` an ``in_progress`` claim answers, in seconds."""


class Outcome(StrEnum):
    """What a claim found (see the module)."""

    NEW = "new"
    REPLAY = "replay"
    REUSED = "reused"
    IN_PROGRESS = "in_progress"


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
class Claim:
    outcome: Outcome
    answer: StoredAnswer | None = None
    retry_after_s: int = 0


@dataclass(frozen=True, slots=True)
class _Record:
    """A row of ``idempotency_records`` as a claim reads it."""

    request_digest: str
    state: RecordState
    answer: StoredAnswer | None
    locked_until_us: int
    expires_at_us: int


_WHERE = (
    " WHERE principal_id = :principal_id AND method = :method AND path = :path"
    " AND idempotency_key = :key"
)


def _without_flush(tx: Tx) -> str:
    """A condition that holds, and that on PostgreSQL makes the transaction evaluating it
    commit without waiting for the disk: ``set_config(..., true)`` is ``SET LOCAL``, folded
    into the statement that writes to save a round trip. A statement that writes no row
    may not evaluate it, and needs not: a transaction that wrote nothing flushes nothing."""
    if tx.dialect == "postgresql":
        return "set_config('synchronous_commit', 'off', true) = 'off'"
    return "1 = 1"


def _insert(tx: Tx, fresh: dict[str, object]) -> bool:
    """Write a new ``in_progress`` record; False when one exists for the scope."""
    inserted = tx.execute(
        "INSERT INTO idempotency_records (principal_id, method, path, idempotency_key,"
        " request_digest, state, created_at_us, locked_until_us, expires_at_us)"
        " SELECT :principal_id, :method, :path, :key, :digest, 'in_progress', :now,"
        f" :locked_until, :expires WHERE {_without_flush(tx)}"
        " ON CONFLICT (principal_id, method, path, idempotency_key) DO NOTHING"
        " RETURNING 1",
        fresh,
    )
    return bool(inserted)


def _locked_record(tx: Tx, scope: Scope) -> _Record | None:
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
    return _Record(str(row[0]), state, answer, int(row[5]), int(row[6]))


def _take_over_expired(tx: Tx, fresh: dict[str, object]) -> None:
    tx.execute(
        "UPDATE idempotency_records SET request_digest = :digest,"
        " state = 'in_progress', status_code = NULL, response_headers = NULL,"
        " response_body = NULL, created_at_us = :now,"
        f" locked_until_us = :locked_until, expires_at_us = :expires{_WHERE}",
        fresh,
    )


def _judge(tx: Tx, record: _Record, digest: str, fresh: dict[str, object]) -> Claim:
    """The claim's answer when a live record holds the scope."""
    now = tx.now_us
    if record.expires_at_us <= now:
        _take_over_expired(tx, fresh)
        return Claim(Outcome.NEW)
    if record.request_digest != digest:
        return Claim(Outcome.REUSED)
    if record.answer is not None:
        return Claim(Outcome.REPLAY, record.answer)
    if record.locked_until_us > now:
        wait_s = (record.locked_until_us - now) // US_PER_S
        return Claim(Outcome.IN_PROGRESS, retry_after_s=max(1, min(RETRY_AFTER_S_MAX, wait_s)))
    # The lease ran out: the request holding it died (or its answer was lost).
    tx.execute(
        f"UPDATE idempotency_records SET locked_until_us = :locked_until{_WHERE}",
        fresh,
    )
    return Claim(Outcome.NEW)


def claim_in(tx: Tx, scope: Scope, *, digest: str, ttl_s: int, lock_s: int) -> Claim:
    """Claim ``scope`` for a request whose body has SHA-256 ``digest`` (see the module)."""
    now = tx.now_us
    fresh = {
        **scope.params(),
        "digest": digest,
        "now": now,
        "locked_until": now + lock_s * US_PER_S,
        "expires": now + ttl_s * US_PER_S,
    }
    for _ in range(CLAIM_ATTEMPTS_MAX):
        if _insert(tx, fresh):
            return Claim(Outcome.NEW)
        record = _locked_record(tx, scope)
        if record is not None:
            return _judge(tx, record, digest, fresh)
        # released or purged since the insert met it: insert again
    return Claim(Outcome.IN_PROGRESS, retry_after_s=1)


def complete_in(tx: Tx, scope: Scope, answer: StoredAnswer) -> None:
    """Store the answer of a claimed request (UTF-8 JSON bodies only)."""
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


def release_in(tx: Tx, scope: Scope) -> None:
    """Forget a claimed request that failed (5xx): the client may retry with the key."""
    tx.execute(
        f"DELETE FROM idempotency_records{_WHERE} AND state = 'in_progress'"
        f" AND {_without_flush(tx)}",
        scope.params(),
    )


def purge_expired_in(tx: Tx) -> int:
    """Delete up to :data:`PURGE_BATCH_MAX` expired records; how many were deleted."""
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


claim = transactional(claim_in)
complete = transactional(complete_in)
release = transactional(release_in)
purge_expired = transactional(purge_expired_in)
