"""Accounts through the API: created with their owner in one transaction, listed by owner
(:mod:`ledger.flows.ownership` owns ``account_owners`` and does both).

An account opened through the API has a random or time-ordered id, a version 4 or 7 UUID
(:data:`ACCOUNT_ID_VERSIONS`), for every role: the ids the platform derives for parties'
accounts (``ledger.flows.parties.account_id``, ``platform_id``) are version 5, so nobody
can open a party's account before the party exists (``account_id_reserved``, 422).
"""

from __future__ import annotations

import uuid

from api.access import READ_ALL
from api.principals import ApiKey
from api.problems import ApiError
from ledger import Account, Ledger
from ledger.flows import ownership
from ledger.flows.ownership import Opened

Created = Opened
"""What :func:`create_account` answers (the status, and the account when the caller owns
it)."""

ACCOUNT_ID_VERSIONS = frozenset({4, 7})
"""The UUID versions an account id opened through the API may have (5 is the platform's)."""


def check_account_id(account_id: uuid.UUID) -> None:
    """Refuse an id the platform could derive (any UUID but RFC 9562 versions 4 and 7)."""
    if account_id.variant != uuid.RFC_4122 or account_id.version not in ACCOUNT_ID_VERSIONS:
        raise ApiError(
            "account_id_reserved",
            "an account id is a version 4 (random) or version 7 (time-ordered) UUID",
        )


def create_account(led: Ledger, caller: ApiKey, account: Account) -> Created:
    """Create ``account`` owned by the caller; ``exists`` of the caller's own answers it
    back, ``exists`` of another's answers no account (no existence leak beyond a guessed id).
    An id that is not a version 4 or 7 UUID is refused before anything is written."""
    check_account_id(account.id)
    return ownership.open_account(led, account, principal_id=caller.principal_id)


def list_accounts(
    led: Ledger, caller: ApiKey, *, starting_after: uuid.UUID | None, limit: int
) -> tuple[list[Account], bool] | None:
    """A page of the accounts the caller may read, oldest first; None for a cursor that
    names no account of the list."""
    page = ownership.owned_accounts(
        led,
        principal_id=None if caller.role in READ_ALL else caller.principal_id,
        starting_after=starting_after,
        limit=limit,
    )
    return None if page is None else (page.accounts, page.has_more)
