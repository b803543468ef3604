"""Which principal owns an account opened through the API (``account_owners``), and the
opening itself: the owner of ``account_owners``.

The API records the owner of every account a key opens (``POST /v1/accounts``) in the
same transaction as the account (:func:`open_account`); the row never changes (a trigger
refuses UPDATE and DELETE). The flows read it too: onboarding adopts an existing account
only when no principal owns it (:func:`ledger.flows.parties._open_account`), so nobody
can open a party's account before the party exists and keep a claim on it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger import Account, Status
from ledger.core.ledger import transactional
from ledger.core.tx import Tx

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
    row = tx.one(
        "SELECT principal_id FROM account_owners WHERE account_id = :account_id",
        {"account_id": account_id},
    )
    if row is None:
        return None
    owner: uuid.UUID = row[0]
    return owner


def _record_owner(tx: Tx, account_id: uuid.UUID, principal_id: uuid.UUID) -> None:
    tx.execute(
        "INSERT INTO account_owners (account_id, principal_id, created_at_us)"
        " VALUES (:account_id, :principal_id, :now)",
        {"account_id": account_id, "principal_id": principal_id, "now": tx.now_us},
    )


def open_account_in(tx: Tx, account: Account, *, principal_id: uuid.UUID) -> Opened:
    """Create ``account`` owned by ``principal_id``; ``exists`` of the principal's own
    answers it back, ``exists`` of another's answers no account (no existence leak beyond
    a guessed id)."""
    [result] = tx.create_accounts([account])
    if result.status is Status.CREATED:
        _record_owner(tx, account.id, principal_id)
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
    mine = "" if principal_id is None else " AND principal_id = :principal_id"
    after_seq = 0
    if starting_after is not None:
        row = tx.one(
            f"SELECT seq FROM account_owners WHERE account_id = :after{mine}",
            {"after": starting_after, "principal_id": principal_id},
        )
        if row is None:
            return None
        after_seq = int(row[0])
    rows = tx.execute(
        f"SELECT account_id FROM account_owners WHERE seq > :after_seq{mine}"
        " ORDER BY seq LIMIT :limit",
        {"after_seq": after_seq, "principal_id": principal_id, "limit": limit + 1},
    )
    ids = [r[0] for r in rows[:limit]]
    accounts = tx.lookup_accounts(ids) if ids else []
    return OwnedPage(accounts, len(rows) > limit)


open_account = transactional(open_account_in)
owned_accounts = transactional(owned_accounts_in)
