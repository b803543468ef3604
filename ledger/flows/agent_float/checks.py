"""The request checks and the linked batch every cash flow shares (the float's, the
cash counter's, the consent codes')."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import wallets
from ledger.flows.errors import Refused
from ledger.limits import AMOUNT_MAX_MINOR

__all__ = ["check_amount", "check_id", "submit_linked"]


def check_id(value: object, name: str) -> uuid.UUID:
    """``value`` if it is a UUID; else a malformed request."""
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID")
    return value


def check_amount(value: object, name: str = "amount_minor") -> int:
    """``value`` if it is an amount 1..2**53-1; else :class:`Refused` ``amount_invalid``."""
    if type(value) is not int or not 1 <= value <= AMOUNT_MAX_MINOR:
        raise Refused("amount_invalid", f"{name} must be an integer in 1..{AMOUNT_MAX_MINOR}")
    return value


def submit_linked(
    tx: Tx,
    transfers: Sequence[Transfer],
    short: Mapping[uuid.UUID, str],
    *,
    reference: wallets.Reference | None = None,
) -> None:
    """Create ``transfers`` as one linked batch (all or none). A limit refusal raises
    :class:`Refused` with the code ``short`` gives the account that was short
    (``funds_short`` if it names none); any other refusal is a bug. Then every wallet
    the batch touches gets its KYC maximum checked and its receipts
    (:func:`ledger.flows.wallets.after_transfers_in`; ``reference`` names the operation,
    by default what the transfers' metadata names)."""
    if not transfers:
        return
    batch = [
        dataclasses.replace(t, flags=t.flags | TransferFlags.LINKED)
        if i < len(transfers) - 1
        else t
        for i, t in enumerate(transfers)
    ]
    results = tx.create_transfers(batch)
    failed = [r for r in results if r.status is not Status.CREATED]
    if not failed:
        wallets.after_transfers_in(tx, batch, results, reference=reference)
        return
    cause = next((r for r in failed if r.status is not Status.LINKED_EVENT_FAILED), failed[0])
    transfer = batch[cause.index]
    if cause.status is Status.EXCEEDS_CREDITS and transfer.debit_account_id is not None:
        raise Refused(
            short.get(transfer.debit_account_id, "funds_short"),
            f"{transfer.metadata} refused: {cause.status}",
        )
    if cause.status is Status.EXCEEDS_DEBITS and transfer.credit_account_id is not None:
        raise Refused(
            short.get(transfer.credit_account_id, "funds_short"),
            f"{transfer.metadata} refused: {cause.status}",
        )
    raise InvariantViolation(f"transfer {transfer.id} refused: {cause.status}")
