"""What the wallets flow reads of the core: the holds a batch posts or voids, through the
published view ``journal_transfers`` (every transfer; the core owns ``transfers``).
The flow owns no table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.core.tx import Tx


@dataclass(frozen=True, slots=True)
class Hold:
    """A pending transfer's accounts and amount, as the core wrote it."""

    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount_minor: int


def select_holds(tx: Tx, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Hold]:
    """The transfers of ``ids`` by id (one query; none for no ids)."""
    if not ids:
        return {}
    params: dict[str, Any] = {f"t{i}": transfer_id for i, transfer_id in enumerate(ids)}
    marks = ", ".join(f":{name}" for name in params)
    rows = tx.execute(
        "SELECT id, debit_account_id, credit_account_id, amount FROM journal_transfers"
        f" WHERE id IN ({marks})",
        params,
    )
    return {row[0]: Hold(row[0], row[1], row[2], int(row[3])) for row in rows}
