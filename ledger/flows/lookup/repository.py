"""What the back office's lookups read beyond the owners' functions: an account's posted
counters right after each of its transfers, from the published view ``journal_transfers``
(every transfer with the counters both of its accounts had once it was applied; the core
owns ``transfers``). No table is named here.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from ledger.core.rows import uuid_of
from ledger.core.tx import Tx

__all__ = ["counters_after"]


def counters_after(
    tx: Tx, account_id: uuid.UUID, transfer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, int]]:
    """(debits posted, credits posted) of the account right after each of the transfers
    (those touching it; one query)."""
    if not transfer_ids:
        return {}
    params: dict[str, Any] = {f"t{i}": tid for i, tid in enumerate(transfer_ids)}
    marks = ", ".join(f":{name}" for name in params)
    params["a"] = account_id
    rows = tx.execute(
        "SELECT id, CASE WHEN debit_account_id = :a THEN debit_account_debits_posted"
        " ELSE credit_account_debits_posted END,"
        " CASE WHEN debit_account_id = :a THEN debit_account_credits_posted"
        " ELSE credit_account_credits_posted END"
        f" FROM journal_transfers WHERE id IN ({marks})"
        " AND (debit_account_id = :a OR credit_account_id = :a)",
        params,
    )
    return {uuid_of(row[0]): (int(row[1]), int(row[2])) for row in rows}
