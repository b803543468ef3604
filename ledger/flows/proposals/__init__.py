"""Proposals: a sensitive step one operator makes and a different operator approves.

Maker-checker. A proposal names its ``kind`` and carries a JSON ``payload``; nothing
happens when it is made. A second operator (never the maker: the flow refuses it and a
CHECK constraint refuses it again) approves it, and the step is applied **in the
approval's transaction, with the proposal row locked**, so two approvers racing apply it
once: the second finds it approved and answers the same proposal (approving is
idempotent). A proposal may be rejected instead, with a reason; then nothing moves.

::

    proposed --approve (another operator)--> approved   (result recorded)
             --reject  (any operator)------> rejected   (reason recorded)

A decided proposal never changes again and no proposal is deleted (triggers refuse it).

Kinds are registered with :func:`register` (a function that applies the payload inside
the approval's transaction and answers a JSON-able result). This module registers
``transfers``: an operator's raw transfers that touch a party's account (a correction);
the result is the core's status per transfer, as ``POST /v1/transfers`` answers it (a
transfer the core refuses is a status in the result, not a failed approval).

The table's SQL lives in :mod:`ledger.flows.proposals.repository`.
"""

from ledger.flows.proposals.repository import Proposal, State
from ledger.flows.proposals.service import (
    KIND_LENGTH_MAX,
    PENDING_MATCHES_MAX,
    PROPOSAL_NAMESPACE,
    TRANSFERS,
    Apply,
    ApplyAs,
    approve,
    canonical,
    get,
    get_in,
    page,
    pending_in,
    propose,
    propose_transfers,
    register,
    register_as,
    reject,
    transfer_json,
    transfers_proposal_id,
)
from ledger.limits import REASON_LENGTH_MAX

__all__ = [
    "Apply",
    "ApplyAs",
    "KIND_LENGTH_MAX",
    "PENDING_MATCHES_MAX",
    "PROPOSAL_NAMESPACE",
    "Proposal",
    "REASON_LENGTH_MAX",
    "State",
    "TRANSFERS",
    "approve",
    "canonical",
    "get",
    "get_in",
    "page",
    "pending_in",
    "propose",
    "propose_transfers",
    "register",
    "register_as",
    "reject",
    "transfer_json",
    "transfers_proposal_id",
]
