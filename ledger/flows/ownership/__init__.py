"""Which principal owns an account opened through the API (``account_owners``), and the
opening itself: the owner of ``account_owners`` (all its SQL in
:mod:`ledger.flows.ownership.repository`, the rules in :mod:`~ledger.flows.ownership.service`).

The API records the owner of every account a key opens (``POST /v1/accounts``) in the
same transaction as the account (:func:`open_account`); the row never changes (a trigger
refuses UPDATE and DELETE). The flows read it too: onboarding adopts an existing account
only when no principal owns it (:func:`ledger.flows.parties._open_account`), so nobody
can open a party's account before the party exists and keep a claim on it.

The API's access rule reads an account's holder (owner, its role, limit flag, party)
through :mod:`ledger.flows.ownership.holders`, imported by its own path (it reads
parties, which imports this package).
"""

from __future__ import annotations

from ledger.flows.ownership.service import (
    Opened,
    OwnedPage,
    open_account,
    open_account_in,
    owned_accounts,
    owned_accounts_in,
    owner_of,
)

__all__ = [
    "Opened",
    "OwnedPage",
    "open_account",
    "open_account_in",
    "owned_accounts",
    "owned_accounts_in",
    "owner_of",
]
