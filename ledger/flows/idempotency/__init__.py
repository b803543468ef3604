"""Idempotency-Key (IETF httpapi draft) records: each POST answered once, replayed after.
This package owns ``idempotency_records`` (all its SQL in
:mod:`ledger.flows.idempotency.repository`, the rules in :mod:`~ledger.flows.idempotency.service`);
the API's pipeline (``api.context.run_post``) calls it.

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

from ledger.flows.idempotency.repository import RecordState, Scope, StoredAnswer
from ledger.flows.idempotency.service import (
    CLAIM_ATTEMPTS_MAX,
    PURGE_BATCH_MAX,
    RETRY_AFTER_S_MAX,
    Claim,
    Outcome,
    claim,
    claim_in,
    complete,
    complete_in,
    purge_expired,
    purge_expired_in,
    release,
    release_in,
)

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
