"""Accounts through the API: created with their owner in one transaction, listed by owner.

An account opened through the API has a random or time-ordered id, a version 4 or 7 UUID
(:data:`ACCOUNT_ID_VERSIONS`), for every role: the ids the platform derives for parties'
accounts (``ledger.flows.parties.account_id``, ``platform_id``) are version 5, so nobody
can open a party's account before the party exists (``account_id_reserved``, 422).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from api.access import READ_ALL, owner_of
from api.principals import ApiKey
from api.problems import ApiError
from ledger import Account, Ledger, Status
from ledger.core.tx import Tx

ACCOUNT_ID_VERSIONS = frozenset({4, 7})
"""The UUID versions an account id opened through the API may have (5 is the platform's)."""


def check_account_id(account_id: uuid.UUID) -> None:
    """Refuse an id the platform could derive (any UUID but RFC 9562 versions 4 and 7)."""
    if account_id.variant != uuid.RFC_4122 or account_id.version not in ACCOUNT_ID_VERSIONS:
        raise ApiError(
            "account_id_reserved",
            "an account id is a version 4 (random) or version 7 (time-ordered) UUID",
        )


@dataclass(frozen=True, slots=True)
class Created:
    status: Status
    account: Account | None
    """The account as stored, when the caller owns it (created now or before)."""


def create_account(led: Ledger, caller: ApiKey, account: Account) -> Created:
    """Create ``account`` owned by the caller; ``exists`` of the caller's own answers it
    back, ``exists`` of another's answers no account (no existence leak beyond a guessed id).
    An id that is not a version 4 or 7 UUID is refused before anything is written."""
    check_account_id(account.id)

    def work(tx: Tx) -> Created:
        [result] = tx.create_accounts([account])
        if result.status is Status.CREATED:
            tx.execute(
                "INSERT INTO account_owners (account_id, principal_id, created_at_us)"
                " VALUES (:account_id, :principal_id, :now)",
                {"account_id": account.id, "principal_id": caller.principal_id, "now": tx.now_us},
            )
        elif (
            result.status.value.startswith("exists")
            and owner_of(tx, account.id) != caller.principal_id
        ):
            return Created(Status.EXISTS, None)
        if result.status not in (Status.CREATED, Status.EXISTS):
            return Created(result.status, None)
        [stored] = tx.lookup_accounts([account.id])
        return Created(result.status, stored)

    return led.transact(work)


def list_accounts(
    led: Ledger, caller: ApiKey, *, starting_after: uuid.UUID | None, limit: int
) -> tuple[list[Account], bool] | None:
    """A page of the accounts the caller may read, oldest first; None for a cursor that
    names no account of the list."""
    everyone = caller.role in READ_ALL
    mine = "" if everyone else " AND principal_id = :principal_id"

    def work(tx: Tx) -> tuple[list[Account], bool] | None:
        after_seq = 0
        if starting_after is not None:
            row = tx.one(
                f"SELECT seq FROM account_owners WHERE account_id = :after{mine}",
                {"after": starting_after, "principal_id": caller.principal_id},
            )
            if row is None:
                return None
            after_seq = int(row[0])
        rows = tx.execute(
            f"SELECT account_id FROM account_owners WHERE seq > :after_seq{mine}"
            " ORDER BY seq LIMIT :limit",
            {"after_seq": after_seq, "principal_id": caller.principal_id, "limit": limit + 1},
        )
        ids = [r[0] for r in rows[:limit]]
        accounts = tx.lookup_accounts(ids) if ids else []
        return accounts, len(rows) > limit

    return led.transact(work)
