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

On the API's pipeline (``api.context.run_post``) the claim, everything the request
writes (flows and money) and the stored answer are ONE database transaction: after any
crash a request is either done, with its answer stored for replay, or never happened (no
record, no money). A second request with the same key waits for the first's transaction
(the record's unique key) and then replays its answer; nobody ever sees ``in_progress``,
so no lease is left behind. The records commit durably with the money.

The lease (``lock_s``) still matters for a handler that commits as it goes (a
reconciliation job: ``run_post(..., one_transaction=False)``): there claim, work and
answer are three transactions, and a crash between them leaves the key ``in_progress``
until the lease runs out; the next attempt then takes it over (the job's own records make
the rerun safe).
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
