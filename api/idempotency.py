"""Idempotency-Key records as the API's pipeline uses them (:func:`api.context.run_post`).

The records live in :mod:`ledger.flows.idempotency`, the owner of
``idempotency_records``; this module re-exports what callers of the API import from
here.
"""

from __future__ import annotations

from ledger.flows.idempotency import (
    Claim,
    Outcome,
    Scope,
    StoredAnswer,
    claim,
    claim_in,
    complete,
    complete_in,
    purge_expired,
    release,
)

__all__ = [
    "Claim",
    "Outcome",
    "Scope",
    "StoredAnswer",
    "claim",
    "claim_in",
    "complete",
    "complete_in",
    "purge_expired",
    "release",
]
