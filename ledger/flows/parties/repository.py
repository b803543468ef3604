"""The ``parties`` and ``party_accounts`` tables: the only module that writes SQL naming
them. Other packages read them through :mod:`ledger.flows.parties` (or the published view
``party_account_roles``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.tx import Row, Tx


@dataclass(frozen=True, slots=True)
class PartyRow:
    """A ``parties`` row; ``kind`` as stored (the service turns it into a ``Kind``)."""

    id: uuid.UUID
    kind: str
    name: str
    currency: str
    kyc_tier: str | None
    """A villager's KYC tier (``tier0`` ...); ``None`` for every other kind."""


@dataclass(frozen=True, slots=True)
class AccountOwner:
    """Who holds an account, in which role, with the party's details."""

    account_id: uuid.UUID
    party_id: uuid.UUID
    role: str
    kind: str
    name: str
    currency: str
    kyc_tier: str | None


def _party(row: Row) -> PartyRow:
    return PartyRow(row[0], row[1], row[2], row[3], row[4])


def insert_party(
    tx: Tx, *, party_id: uuid.UUID, kind: str, name: str, currency: str, kyc_tier: str | None
) -> None:
    tx.execute(
        "INSERT INTO parties (id, kind, name, currency, kyc_tier, created_at_us)"
        " VALUES (:id, :kind, :name, :currency, :kyc_tier, :now)",
        {
            "id": party_id,
            "kind": kind,
            "name": name,
            "currency": currency,
            "kyc_tier": kyc_tier,
            "now": tx.now_us,
        },
    )


def insert_account(tx: Tx, *, party_id: uuid.UUID, role: str, account_id: uuid.UUID) -> None:
    tx.execute(
        "INSERT INTO party_accounts (party_id, role, account_id) VALUES (:party, :role, :account)",
        {"party": party_id, "role": role, "account": account_id},
    )


def select_party(tx: Tx, party_id: uuid.UUID, *, lock: bool = False) -> PartyRow | None:
    """The party's row (locked until commit with ``lock``), or ``None``."""
    row = tx.one(
        "SELECT id, kind, name, currency, kyc_tier FROM parties"
        f" WHERE id = :id{tx.for_update if lock else ''}",
        {"id": party_id},
    )
    return None if row is None else _party(row)


def select_accounts(tx: Tx, party_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """The party's account ids by role."""
    rows = tx.execute(
        "SELECT role, account_id FROM party_accounts WHERE party_id = :id ORDER BY role",
        {"id": party_id},
    )
    return {row[0]: row[1] for row in rows}


def select_owner(tx: Tx, account_id: uuid.UUID) -> tuple[uuid.UUID, str] | None:
    """(party id, role) of the account's holder, or ``None``."""
    row = tx.one(
        "SELECT party_id, role FROM party_accounts WHERE account_id = :id", {"id": account_id}
    )
    return None if row is None else (row[0], row[1])


def select_owners(tx: Tx, accounts: Sequence[uuid.UUID]) -> list[AccountOwner]:
    """The holders of those of ``accounts`` that a party holds (one query)."""
    if not accounts:
        return []
    params: dict[str, Any] = {f"a{i}": account for i, account in enumerate(accounts)}
    marks = ", ".join(f":{name}" for name in params)
    rows = tx.execute(
        "SELECT pa.account_id, pa.party_id, pa.role, p.kind, p.name, p.currency, p.kyc_tier"
        f" FROM party_accounts pa JOIN parties p ON p.id = pa.party_id"
        f" WHERE pa.account_id IN ({marks})",
        params,
    )
    return [AccountOwner(*row) for row in rows]


def update_kyc_tier(tx: Tx, *, party_id: uuid.UUID, tier: str) -> None:
    tx.execute("UPDATE parties SET kyc_tier = :tier WHERE id = :id", {"tier": tier, "id": party_id})
