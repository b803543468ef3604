"""Claiming, completing, releasing and purging Idempotency-Key records (see
:mod:`ledger.flows.idempotency`); the rows are :mod:`ledger.flows.idempotency.repository`'s."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.flows.idempotency import repository
from ledger.flows.idempotency.repository import Lease, Record, RecordState, Scope, StoredAnswer
from ledger.limits import US_PER_S

__all__ = [
    "CLAIM_ATTEMPTS_MAX",
    "PURGE_BATCH_MAX",
    "RETRY_AFTER_S_MAX",
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


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim's answer: the stored answer of a replay, the wait of an ``in_progress``."""

    outcome: Outcome
    answer: StoredAnswer | None = None
    retry_after_s: int = 0


def _judge(tx: Tx, scope: Scope, record: Record, lease: Lease) -> Claim:
    """The claim's answer when a live record holds the scope."""
    now = lease.now_us
    if record.expires_at_us <= now:
        repository.take_over(tx, scope, lease)
        return Claim(Outcome.NEW)
    if record.request_digest != lease.digest:
        return Claim(Outcome.REUSED)
    if record.answer is not None:
        return Claim(Outcome.REPLAY, record.answer)
    if record.locked_until_us > now:
        wait_s = (record.locked_until_us - now) // US_PER_S
        return Claim(Outcome.IN_PROGRESS, retry_after_s=max(1, min(RETRY_AFTER_S_MAX, wait_s)))
    # The lease ran out: the request holding it died (or its answer was lost).
    repository.extend_lease(tx, scope, lease)
    return Claim(Outcome.NEW)


def claim_in(tx: Tx, scope: Scope, *, digest: str, ttl_s: int, lock_s: int) -> Claim:
    """Claim ``scope`` for a request whose body has SHA-256 ``digest`` (see the module)."""
    now = tx.now_us
    lease = Lease(
        digest=digest,
        now_us=now,
        locked_until_us=now + lock_s * US_PER_S,
        expires_at_us=now + ttl_s * US_PER_S,
    )
    for _ in range(CLAIM_ATTEMPTS_MAX):
        if repository.insert_in_progress(tx, scope, lease):
            return Claim(Outcome.NEW)
        record = repository.lock_record(tx, scope)
        if record is not None:
            return _judge(tx, scope, record, lease)
        # released or purged since the insert met it: insert again
    return Claim(Outcome.IN_PROGRESS, retry_after_s=1)


def complete_in(tx: Tx, scope: Scope, answer: StoredAnswer) -> None:
    """Store the answer of a claimed request (UTF-8 JSON bodies only)."""
    repository.mark_done(tx, scope, answer)


def release_in(tx: Tx, scope: Scope) -> None:
    """Forget a claimed request that failed (5xx): the client may retry with the key."""
    repository.delete_in_progress(tx, scope)


def purge_expired_in(tx: Tx) -> int:
    """Delete up to :data:`PURGE_BATCH_MAX` expired records; how many were deleted."""
    expired = repository.select_expired(tx, now_us=tx.now_us, limit=PURGE_BATCH_MAX)
    for scope in expired:
        repository.delete(tx, scope)
    return len(expired)


claim = transactional(claim_in)
complete = transactional(complete_in)
release = transactional(release_in)
purge_expired = transactional(purge_expired_in)
