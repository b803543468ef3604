"""One database transaction shared by the ledger and a flow's own tables.

A village flow (an order paid, a cash-out confirmed) changes its own rows (the order's
state, an outbox event) and moves money; both must commit together or not at all. The
flow gives :meth:`~ledger.Ledger.transact` a function of a :class:`Tx`; the function
reads and writes its rows with :meth:`Tx.execute` and moves money with
:meth:`Tx.create_transfers`, and everything commits when it returns.

Rules for that function:

- it touches the database only through ``tx`` and may be run more than once (a deadlock
  or a race on a unique key rolls the transaction back and runs it again, so that the
  second run sees the winner); it does no other I/O;
- it raises to roll back; whatever it raises, nothing it wrote stays;
- SQL uses ``:name`` placeholders on both engines; ``{tx.for_update}`` after a SELECT
  locks the rows it read on PostgreSQL (SQLite has one writer, which is already a lock);
- UUIDs are passed and read back as :class:`uuid.UUID` on both engines (on SQLite a flow
  table stores them as 16-byte BLOBs, and a 16-byte BLOB read back is a UUID).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from ledger.core.engine import Outcome
from ledger.core.errors import MalformedRequest
from ledger.core.store import from_us
from ledger.core.values import Account, Result, Status, Transfer

T = TypeVar("T")

Row = tuple[Any, ...]


class StoreTx(Protocol):
    """What a store offers inside one of its transactions."""

    dialect: str

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[Row]: ...

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: int) -> Outcome: ...

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]: ...

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]: ...

    def savepoint(self, work: Callable[[], T]) -> T: ...


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def pyformat(sql: str) -> str:
    """``:name`` placeholders as psycopg's ``%(name)s`` (a literal ``%`` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Tx:
    """A flow's view of one transaction: its own SQL, and the ledger's calls."""

    def __init__(
        self,
        inner: StoreTx,
        now_us: int,
        check_accounts: Callable[[Sequence[Account]], None],
        check_transfers: Callable[[Sequence[Transfer]], int],
    ) -> None:
        self._inner = inner
        self.now_us = now_us
        """The ledger's clock when the transaction began, in microseconds since 1970 UTC."""
        self._check_accounts = check_accounts
        self._check_transfers = check_transfers

    @property
    def now(self) -> datetime:
        """The ledger's clock when the transaction began (UTC)."""
        return from_us(self.now_us)

    @property
    def dialect(self) -> str:
        return self._inner.dialect

    @property
    def for_update(self) -> str:
        """Appended to a SELECT: lock its rows until commit (PostgreSQL; SQLite needs none)."""
        return " FOR UPDATE" if self._inner.dialect == "postgresql" else ""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run one statement; its rows (none for a write without RETURNING)."""
        return self._inner.execute(sql, params or {})

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        """The first row of a query, or ``None``."""
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def create_accounts(self, accounts: Sequence[Account]) -> list[Result]:
        """As :meth:`Ledger.create_accounts`, inside this transaction."""
        self._check_accounts(accounts)
        if not accounts:
            return []
        return self._inner.create_accounts(accounts, self.now_us)

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[Result]:
        """As :meth:`Ledger.create_transfers`, inside this transaction (not yet durable:
        it commits with everything else when the flow's function returns)."""
        open_from = self._check_transfers(transfers)
        results: list[Result] = []
        if open_from:
            results = self._inner.apply_transfers(transfers[:open_from], self.now_us).results
        return results + [
            Result(index, Status.LINKED_EVENT_CHAIN_OPEN)
            for index in range(open_from, len(transfers))
        ]

    def savepoint(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` on this transaction inside a savepoint: if it raises, what it wrote
        is rolled back (and the error re-raised) while the rest of the transaction goes on.
        A :meth:`Ledger.transact` called while this transaction runs, on this thread and
        on the same database, is one of these (see :mod:`ledger.core.ledger`)."""
        return self._inner.savepoint(lambda: work(self))

    def lookup_accounts(self, ids: Sequence[uuid.UUID]) -> list[Account]:
        """As :meth:`Ledger.lookup_accounts`, reading this transaction's own writes."""
        for i in ids:
            if not isinstance(i, uuid.UUID):
                raise MalformedRequest("account ids must be UUIDs")
        if not ids:
            return []
        return self._inner.lookup_accounts(ids, self.now_us)
