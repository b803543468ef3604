"""What the two stores (SQLite, PostgreSQL) share: the shape of rows and their decoding.

A store owns the connections of one database and runs each batch as one transaction:
load and lock what the batch names, let :class:`~ledger.core.engine.TransferBatch`
decide, write back in bulk, commit. The SQL differs per engine; the decisions do not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ledger.core.engine import (
    EXPIRED,
    OPEN,
    POST_PENDING,
    POSTED,
    VOIDED,
    AccountState,
    Outcome,
    StoredAccount,
    StoredTransfer,
    expiry_void_id,
)
from ledger.core.values import Account, AccountFlags, Balance, Result, Transfer, TransferFlags

if TYPE_CHECKING:
    from ledger.core.tx import Row, StoreTx

T = TypeVar("T")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ACCOUNT_STATE_COLUMNS = (
    "id, currency, flags, debits_pending, debits_posted, credits_pending, credits_posted,"
    " timestamp_us"
)
ACCOUNT_COLUMNS = (
    "id, currency, code, flags, metadata, debits_pending, debits_posted, credits_pending,"
    " credits_posted, created_at_us"
)
STORED_TRANSFER_COLUMNS = (
    "t.id, t.debit_account_id, t.credit_account_id, t.amount, t.amount_requested, t.currency,"
    " t.code, t.flags, t.pending_id, t.timeout_s, t.expires_at_us, t.reverses_id"
)
STORED_TRANSFER_WIDTH = 12
"""How many columns STORED_TRANSFER_COLUMNS names."""
TRANSFER_COLUMNS = (
    "t.id, t.debit_account_id, t.credit_account_id, t.amount, t.currency, t.code, t.flags,"
    " t.pending_id, t.timeout_s, t.reverses_id, t.metadata, t.created_at_us"
)
INSERT_TRANSFER_COLUMNS = (
    "id, debit_account_id, credit_account_id, amount, amount_requested, currency, code,"
    " flags, pending_id, timeout_s, expires_at_us, reverses_id, metadata, created_at_us,"
    " debit_account_debits_posted, debit_account_credits_posted,"
    " credit_account_debits_posted, credit_account_credits_posted"
)

MAX_ATTEMPTS = 20
"""How often a batch is retried after a deadlock, a serialization failure or a race on
an id, before the error reaches the caller (it never should)."""

EXPIRE_BATCH_MAX = 1000
"""How many holds one ``expire_pending`` transaction voids at most; it loops for more."""

UuidIn = Callable[[Any], uuid.UUID]

REVERSAL_TARGET_COLUMNS = (
    f"{STORED_TRANSFER_COLUMNS},"
    " CAST((SELECT COALESCE(SUM(r.amount), 0) FROM transfers r WHERE r.reverses_id = t.id)"
    " AS BIGINT)"
)
"""A transfer that a reversal names, and the sum of the reversals of it so far (an index
lookup on ``ix_transfers_reverses_id``). Read after the batch's accounts are locked: a
reversal's accounts are its target's, so every reversal of one target locks the same two
accounts, and the sum read here cannot change before this batch commits."""


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (integer arithmetic only)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the ledger only takes timezone-aware UTC moments")
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(moment_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=moment_us)


def _metadata(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    value: dict[str, str] = json.loads(text)
    return value


def account_state(row: Sequence[Any], uuid_in: UuidIn) -> AccountState:
    return AccountState(uuid_in(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7])


def account(row: Sequence[Any], uuid_in: UuidIn) -> Account:
    return Account(
        id=uuid_in(row[0]),
        currency=row[1],
        code=row[2],
        flags=AccountFlags(row[3]),
        metadata=_metadata(row[4]),
        debits_pending=row[5],
        debits_posted=row[6],
        credits_pending=row[7],
        credits_posted=row[8],
        created_at=from_us(row[9]),
    )


def stored_account(row: Sequence[Any], uuid_in: UuidIn) -> StoredAccount:
    return StoredAccount(uuid_in(row[0]), row[1], row[2], row[3])


def _optional(value: Any, uuid_in: UuidIn) -> uuid.UUID | None:
    return None if value is None else uuid_in(value)


def stored_transfer(row: Sequence[Any], uuid_in: UuidIn) -> StoredTransfer:
    """A row of STORED_TRANSFER_COLUMNS, then optionally: hold amount, resolution id, flags."""
    stored = StoredTransfer(
        id=uuid_in(row[0]),
        debit_account_id=uuid_in(row[1]),
        credit_account_id=uuid_in(row[2]),
        amount=row[3],
        amount_requested=row[4],
        currency=row[5],
        code=row[6],
        flags=row[7],
        pending_id=_optional(row[8], uuid_in),
        timeout_s=row[9],
        expires_at_us=row[10],
        reverses_id=_optional(row[11], uuid_in),
    )
    if len(row) > STORED_TRANSFER_WIDTH:
        stored.hold_amount = row[STORED_TRANSFER_WIDTH]
    if len(row) > STORED_TRANSFER_WIDTH + 1:
        stored.resolution = resolution(
            stored.id,
            _optional(row[STORED_TRANSFER_WIDTH + 1], uuid_in),
            row[STORED_TRANSFER_WIDTH + 2],
        )
    return stored


def reversal_target(row: Sequence[Any], uuid_in: UuidIn) -> tuple[StoredTransfer, int]:
    """A row of REVERSAL_TARGET_COLUMNS: the target, and what its reversals took so far."""
    return stored_transfer(row[:STORED_TRANSFER_WIDTH], uuid_in), int(row[STORED_TRANSFER_WIDTH])


def resolution(hold_id: uuid.UUID, resolved_by: uuid.UUID | None, flags: int | None) -> int:
    """How the hold ``hold_id`` was resolved, from the transfer that names it."""
    if resolved_by is None or flags is None:
        return OPEN
    if resolved_by == expiry_void_id(hold_id):
        return EXPIRED
    return POSTED if flags & POST_PENDING else VOIDED


def transfer(row: Sequence[Any], uuid_in: UuidIn) -> Transfer:
    return Transfer(
        id=uuid_in(row[0]),
        debit_account_id=uuid_in(row[1]),
        credit_account_id=uuid_in(row[2]),
        amount=row[3],
        currency=row[4],
        code=row[5],
        flags=TransferFlags(row[6]),
        pending_id=_optional(row[7], uuid_in),
        timeout_s=row[8],
        reverses_id=_optional(row[9], uuid_in),
        metadata=_metadata(row[10]),
        created_at=from_us(row[11]),
    )


def account_row(a: Account, now_us: int) -> tuple[Any, ...]:
    """An ``accounts`` row for a new account (counters start at zero)."""
    metadata = (
        json.dumps(a.metadata, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
        if a.metadata
        else None
    )
    return (a.id, a.currency, a.code, a.flags.value, metadata, now_us, now_us)


def subtract_expired(
    accounts: list[Account], expired: Sequence[tuple[uuid.UUID, uuid.UUID, int]]
) -> list[Account]:
    """The accounts with the counters the clock sees (holds past their timeout no longer
    count), in the same order; new values (accounts are frozen)."""
    if not expired:
        return accounts
    by_id = {a.id: a for a in accounts}
    for debit_id, credit_id, amount in expired:
        if (dr := by_id.get(debit_id)) is not None:
            by_id[debit_id] = replace(dr, debits_pending=dr.debits_pending - amount)
        if (cr := by_id.get(credit_id)) is not None:
            by_id[credit_id] = replace(cr, credits_pending=cr.credits_pending - amount)
    return [by_id[a.id] for a in accounts]


def balance(account_id: uuid.UUID, at: datetime, row: Sequence[Any] | None) -> Balance:
    if row is None:
        return Balance(account_id, 0, 0, at)
    return Balance(account_id, row[0], row[1], at)


class Store(Protocol):
    """One database, as the :class:`~ledger.Ledger` uses it."""

    dialect: str
    writers_max: int
    """How many write transactions may be in flight at once from this process."""

    def check_schema(self, head: str) -> None: ...

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]: ...

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: Callable[[], int]) -> Outcome:
        """Runs ``transfers`` as one transaction (retrying races); answers once committed."""
        ...

    def transaction(self, work: Callable[[StoreTx], T]) -> T:
        """Runs a flow's ``work`` in one transaction (rerun on races); commits on return."""
        ...

    async def loop_statement(self, sql: str, params: Mapping[str, Any]) -> list[Row] | None:
        """Runs one flow statement alone on the running event loop, or answers ``None``
        (nothing ran) when this store cannot."""
        ...

    def expire(self, now_us: int, limit: int) -> int: ...

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]: ...

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]: ...

    def account_transfers(
        self, account_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[Transfer]: ...

    def balance_at(self, account_id: uuid.UUID, at_us: int) -> tuple[int, int] | None: ...

    def integrity_problems(self) -> list[str]: ...

    def close(self) -> None: ...


INTEGRITY_QUERIES: tuple[tuple[str, str], ...] = (
    (
        "account counters differ from the sums over its transfers",
        """
        WITH dp AS (SELECT debit_account_id AS id, SUM(amount) AS s FROM transfers
                    WHERE (flags & 10) = 0 GROUP BY debit_account_id),
             cp AS (SELECT credit_account_id AS id, SUM(amount) AS s FROM transfers
                    WHERE (flags & 10) = 0 GROUP BY credit_account_id),
             open_holds AS (SELECT h.debit_account_id, h.credit_account_id, h.amount
                    FROM transfers h WHERE (h.flags & 2) <> 0
                    AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = h.id)),
             dq AS (SELECT debit_account_id AS id, SUM(amount) AS s FROM open_holds
                    GROUP BY debit_account_id),
             cq AS (SELECT credit_account_id AS id, SUM(amount) AS s FROM open_holds
                    GROUP BY credit_account_id)
        SELECT a.id FROM accounts a
        LEFT JOIN dp ON dp.id = a.id LEFT JOIN cp ON cp.id = a.id
        LEFT JOIN dq ON dq.id = a.id LEFT JOIN cq ON cq.id = a.id
        WHERE a.debits_posted <> COALESCE(dp.s, 0) OR a.credits_posted <> COALESCE(cp.s, 0)
           OR a.debits_pending <> COALESCE(dq.s, 0) OR a.credits_pending <> COALESCE(cq.s, 0)
        """,
    ),
    (
        "account outside its limit flags (pending counted)",
        """
        SELECT id FROM accounts
        WHERE ((flags & 2) <> 0 AND debits_pending + debits_posted > credits_posted)
           OR ((flags & 4) <> 0 AND credits_pending + credits_posted > debits_posted)
        """,
    ),
    (
        "open hold missing from pending_holds, or pending_holds row not an open hold",
        """
        SELECT h.id FROM transfers h
        WHERE (h.flags & 2) <> 0
          AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = h.id)
          AND NOT EXISTS (SELECT 1 FROM pending_holds p WHERE p.hold_id = h.id
                          AND p.amount = h.amount AND p.debit_account_id = h.debit_account_id
                          AND p.credit_account_id = h.credit_account_id)
        UNION ALL
        SELECT p.hold_id FROM pending_holds p
        WHERE NOT EXISTS (SELECT 1 FROM transfers h WHERE h.id = p.hold_id AND (h.flags & 2) <> 0)
           OR EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.hold_id)
        """,
    ),
    (
        "post or void that does not match its hold",
        """
        SELECT r.id FROM transfers r JOIN transfers h ON h.id = r.pending_id
        WHERE (h.flags & 2) = 0
           OR r.debit_account_id <> h.debit_account_id
           OR r.credit_account_id <> h.credit_account_id
           OR r.currency <> h.currency
           OR ((r.flags & 4) <> 0 AND r.amount > h.amount)
           OR ((r.flags & 8) <> 0 AND r.amount <> h.amount)
        """,
    ),
    (
        "reversal that does not move back posted money of its target, accounts swapped",
        """
        SELECT r.id FROM transfers r LEFT JOIN transfers t ON t.id = r.reverses_id
        WHERE r.reverses_id IS NOT NULL
          AND (t.id IS NULL OR (r.flags & 14) <> 0 OR (t.flags & 10) <> 0
               OR t.reverses_id IS NOT NULL
               OR r.debit_account_id <> t.credit_account_id
               OR r.credit_account_id <> t.debit_account_id)
        """,
    ),
    (
        "transfer reversed by more than it posted",
        """
        SELECT t.id FROM transfers t
        JOIN (SELECT reverses_id, SUM(amount) AS taken FROM transfers
              WHERE reverses_id IS NOT NULL GROUP BY reverses_id) r ON r.reverses_id = t.id
        WHERE r.taken > t.amount
        """,
    ),
    (
        "transfer in a currency its accounts do not hold",
        """
        SELECT t.id FROM transfers t
        JOIN accounts d ON d.id = t.debit_account_id
        JOIN accounts c ON c.id = t.credit_account_id
        WHERE t.currency <> d.currency OR t.currency <> c.currency
        """,
    ),
)
"""Each query answers the ids that break one rule; no row means the rule holds."""

PROBLEM_IDS_SHOWN_MAX = 10


def per_currency_problems(
    totals: dict[str, list[int]],
) -> list[str]:
    """``totals[currency] = [debits_posted, credits_posted, debits_pending, credits_pending]``."""
    problems = []
    for code, (dpo, cpo, dpe, cpe) in sorted(totals.items()):
        if dpo != cpo:
            problems.append(f"{code}: debits posted {dpo} != credits posted {cpo}")
        if dpe != cpe:
            problems.append(f"{code}: debits pending {dpe} != credits pending {cpe}")
    return problems


def last_transfer_column(side: str, column: str, *, before: str | None = None) -> str:
    """A scalar subquery: ``column`` of the last transfer on the ``side`` (``debit`` or
    ``credit``) of account ``a`` (created before the parameter ``before`` names, if
    given)."""
    window = "" if before is None else f" AND created_at_us < :{before}"
    return (
        f"(SELECT {column} FROM transfers WHERE {side}_account_id = a.id{window}"
        " ORDER BY created_at_us DESC, seq DESC LIMIT 1)"
    )


LAST_BALANCES_QUERY = (
    "SELECT a.id, a.debits_posted, a.credits_posted, "
    + ", ".join(
        last_transfer_column(side, column)
        for side in ("debit", "credit")
        for column in (
            "created_at_us",
            "seq",
            f"{side}_account_debits_posted",
            f"{side}_account_credits_posted",
        )
    )
    + " FROM accounts a"
)
"""Per account: its posted counters, and the balances its last transfer on each side
recorded (time, seq, debits_posted, credits_posted)."""


def last_balance_problem(row: Sequence[Any]) -> bool:
    """True when the account's posted counters differ from what its last transfer recorded."""
    _, debits_posted, credits_posted, d_at, d_seq, d_dp, d_cp, c_at, c_seq, c_dp, c_cp = row
    if d_at is None and c_at is None:
        return bool(debits_posted != 0 or credits_posted != 0)
    if c_at is None or (d_at is not None and (d_at, d_seq) > (c_at, c_seq)):
        return bool((d_dp, d_cp) != (debits_posted, credits_posted))
    return bool((c_dp, c_cp) != (debits_posted, credits_posted))


def describe_problem(rule: str, ids: Sequence[uuid.UUID]) -> str:
    shown = ", ".join(str(i) for i in ids[:PROBLEM_IDS_SHOWN_MAX])
    more = (
        f" and {len(ids) - PROBLEM_IDS_SHOWN_MAX} more" if len(ids) > PROBLEM_IDS_SHOWN_MAX else ""
    )
    return f"{rule}: {shown}{more}"
