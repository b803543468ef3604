"""What the API's access rule (:mod:`api.access`) reads of an account, each question in one
transaction of its own: who opened it (``account_owners``, this package), that
principal's role (:mod:`ledger.flows.principals`), its limit flag (the core) and whether
a party holds it (:func:`ledger.flows.parties.owner_of`). Each is read through its
owner's functions, never its tables.

Not re-exported by :mod:`ledger.flows.ownership`: :mod:`ledger.flows.parties` imports
that package, and this module imports parties; import it by its own path.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.core.values import AccountFlags
from ledger.flows import parties, principals
from ledger.flows.ownership.service import owner_of
from ledger.flows.principals import Role

__all__ = [
    "BOUNDED",
    "Holder",
    "can_read_any",
    "can_read_any_in",
    "holder_in",
    "holders_of",
    "holders_of_in",
    "touches_party",
    "touches_party_in",
]

BOUNDED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
"""The flag a tenant's debit account must carry: its balance never goes below zero."""


@dataclass(frozen=True, slots=True)
class Holder:
    """What the rule needs of an account some principal opened; none of it ever changes."""

    owner: uuid.UUID
    owner_role: Role
    bounded: bool
    """The account carries ``debits_must_not_exceed_credits``."""
    party: bool
    """The account is also a party's (``party_accounts``; only an id claimed before the
    rule existed could be both)."""


def holder_in(tx: Tx, account_id: uuid.UUID) -> Holder | None:
    """The account's holder; None when no principal opened it (or it does not exist)."""
    owner = owner_of(tx, account_id)
    if owner is None:
        return None
    role = principals.principal_role_in(tx, owner)
    if role is None:  # the owner row's foreign key makes this a bug
        raise InvariantViolation(f"account {account_id} is owned by an unknown principal")
    [account] = tx.lookup_accounts([account_id])
    return Holder(
        owner=owner,
        owner_role=role,
        bounded=BOUNDED in account.flags,
        party=parties.owner_of(tx, account_id) is not None,
    )


def holders_of_in(tx: Tx, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Holder | None]:
    """The holder of each account (None: no principal opened it, or it does not exist)."""
    return {account_id: holder_in(tx, account_id) for account_id in account_ids}


def can_read_any_in(tx: Tx, principal_id: uuid.UUID, account_ids: Sequence[uuid.UUID]) -> bool:
    """Whether the principal opened one of the accounts, or its party holds one (a
    storefront's or an agent's party has its principal's id); read in order, the first
    yes ends it."""
    for account_id in account_ids:
        if owner_of(tx, account_id) == principal_id:
            return True
        held = parties.owner_of(tx, account_id)
        if held is not None and held[0] == principal_id:
            return True
    return False


def touches_party_in(tx: Tx, account_ids: Sequence[uuid.UUID]) -> bool:
    """Whether a party holds one of the accounts."""
    return any(parties.owner_of(tx, a) is not None for a in account_ids)


holders_of = transactional(holders_of_in)
can_read_any = transactional(can_read_any_in)
touches_party = transactional(touches_party_in)
