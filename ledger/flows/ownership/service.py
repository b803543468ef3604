"""Opening an account owned by a principal, and reading who owns what (see
:mod:`ledger.flows.ownership`); the rows are :mod:`ledger.flows.ownership.repository`'s."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger import Account, Status
from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.flows.ownership import repository

__all__ = [
    "Opened",
    "OwnedPage",
    "open_account",
    "open_account_in",
    "owned_accounts",
    "owned_accounts_in",
    "owner_of",
]


@dataclass(frozen=True, slots=True)
class Opened:
    """What opening an account answered."""

    status: Status
    account: Account | None
    """The account as stored, when the caller owns it (created now or before)."""


@dataclass(frozen=True, slots=True)
class OwnedPage:
    """A page of accounts opened through the API, oldest first."""

    accounts: list[Account]
    has_more: bool


def owner_of(tx: Tx, account_id: uuid.UUID) -> uuid.UUID | None:
    """The principal that opened ``account_id`` through the API, or ``None``."""
    return repository.select_owner(tx, account_id)


def open_account_in(tx: Tx, account: Account, *, principal_id: uuid.UUID) -> Opened:
    """Create ``account`` owned by ``principal_id``; ``exists`` of the principal's own
    answers it back, ``exists`` of another's answers no account (no existence leak beyond
    a guessed id)."""
    [result] = tx.create_accounts([account])
    if result.status is Status.CREATED:
        repository.insert_owner(tx, account.id, principal_id)
    elif result.status.value.startswith("exists") and owner_of(tx, account.id) != principal_id:
        return Opened(Status.EXISTS, None)
    if result.status not in (Status.CREATED, Status.EXISTS):
        return Opened(result.status, None)
    [stored] = tx.lookup_accounts([account.id])
    return Opened(result.status, stored)


def owned_accounts_in(
    tx: Tx, *, principal_id: uuid.UUID | None, starting_after: uuid.UUID | None, limit: int
) -> OwnedPage | None:
    """A page of the accounts ``principal_id`` opened (``None``: anyone's), oldest first;
    None for a cursor that names no account of the list."""
    after_seq = 0
    if starting_after is not None:
        found = repository.select_seq(tx, starting_after, principal_id=principal_id)
        if found is None:
            return None
        after_seq = found
    ids = repository.select_owned_ids(
        tx, principal_id=principal_id, after_seq=after_seq, limit=limit + 1
    )
    page = ids[:limit]
    accounts = tx.lookup_accounts(page) if page else []
    return OwnedPage(accounts, len(ids) > limit)


open_account = transactional(open_account_in)
owned_accounts = transactional(owned_accounts_in)
