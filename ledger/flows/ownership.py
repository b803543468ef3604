"""Which principal owns an account opened through the API (``account_owners``).

The API records the owner of every account a key opens (``POST /v1/accounts``) in the
same transaction as the account; the row never changes (a trigger refuses UPDATE and
DELETE). The flows read it too: onboarding adopts an existing account only when no
principal owns it (:func:`ledger.flows.parties._open_account`), so nobody can open a
party's account before the party exists and keep a claim on it.
"""

from __future__ import annotations

import uuid

from ledger.core.tx import Tx


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
