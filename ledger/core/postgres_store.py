"""The ledger on PostgreSQL: the production store.

A batch of a few plain transfers (no flags, hold or reversal: what most callers send) is
one statement, ``vledger_create_plain_transfers`` (migration 0033), which decides and
writes it inside the database and commits in the same round trip; it answers the
engine's statuses (``tests/test_core_plain_path.py`` runs both paths side by side). It
hands a batch back unwritten when a hold past its timeout touches its accounts. Every
other batch is one transaction in two round trips, whatever its size:

1. (pipelined) lock every account the batch names, the accounts of the holds it posts or
   voids and of the due holds touching them, in one ``SELECT ... ORDER BY id FOR UPDATE``
   (one fixed order, so batches never deadlock on accounts); then read the batch's ids
   that exist or were spent, the holds it names, the due holds, and the transfers it
   reverses with the sum their earlier reversals took;
2. (pipelined) insert the transfers, spent ids and hold changes with ``unnest`` arrays,
   update the changed accounts in one statement, and commit.

Between the two, :class:`~ledger.core.engine.TransferBatch` decides in memory. Deadlocks,
serialization failures and races on a transfer id are retried here, never surfaced.
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool, PoolTimeout

from ledger.core import store, tx
from ledger.core.engine import (
    Loaded,
    Outcome,
    TransferBatch,
    create_accounts_in_memory,
    ids_named,
    metadata_json,
    reversal_targets_named,
)
from ledger.core.errors import InvariantViolation, StorageError
from ledger.core.values import Account, Result, Status, Transfer

T = TypeVar("T")

POOL_SIZE_MAX = 16
WRITERS_MAX = 2
"""Write transactions a process keeps in flight at once: while one waits for its commit
to reach the disk, the next group of callers is already being locked and applied."""
CONNECT_TIMEOUT_S = 10
POOL_WAIT_S = 5.0
"""How long a caller waits for a pooled connection; past it (the database away, every
connection busy) the call is a :class:`StorageError` (503), not a hang."""
LOOP_CONNECTIONS_MAX = 4
"""Connections a process keeps for single statements awaited on its event loop
(:meth:`PostgresStore.loop_statement`)."""
RETRY_BACKOFF_S = 0.005
"""A deadlock's or serialization failure's retry waits up to this times the attempt."""


def _same(value: uuid.UUID) -> uuid.UUID:
    return value


LOCK_ACCOUNTS = f"""
SELECT {store.ACCOUNT_STATE_COLUMNS} FROM accounts WHERE id = ANY(%(lock)s::uuid[])
ORDER BY id FOR UPDATE
"""
"""Lock the batch's accounts in one fixed order (so batches never deadlock on them)."""

KIND_EXISTING, KIND_SPENT, KIND_HOLD, KIND_DUE, KIND_TARGET = 1, 2, 3, 4, 5

SELECT_STATE = f"""
SELECT 1, {store.STORED_TRANSFER_COLUMNS}, h.amount, NULL::uuid, NULL::int4 FROM transfers t
    LEFT JOIN transfers h ON h.id = t.pending_id WHERE t.id = ANY(%(tids)s::uuid[])
UNION ALL
SELECT 2, f.id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    NULL FROM transfer_failures f WHERE f.id = ANY(%(tids)s::uuid[])
UNION ALL
SELECT 3, {store.STORED_TRANSFER_COLUMNS}, t.amount, r.id, r.flags FROM transfers t
    LEFT JOIN transfers r ON r.pending_id = t.id WHERE t.id = ANY(%(pids)s::uuid[])
UNION ALL
SELECT 4, {store.STORED_TRANSFER_COLUMNS}, NULL, NULL, NULL
    FROM pending_holds p JOIN transfers t ON t.id = p.hold_id
    WHERE p.expires_at_us <= %(now)s
      AND (p.debit_account_id = ANY(%(lock)s::uuid[])
           OR p.credit_account_id = ANY(%(lock)s::uuid[]))
UNION ALL
SELECT 5, {store.REVERSAL_TARGET_COLUMNS}, NULL, NULL FROM transfers t
    WHERE t.id = ANY(%(rids)s::uuid[])
"""
"""After the lock: the batch's ids that exist or were spent, its holds, the holds past
their timeout that touch a locked account (voided before the batch), and the transfers
it reverses with what their reversals took so far. In READ COMMITTED this statement's
snapshot is taken after the lock is granted, so it sees every reversal committed by the
batch that held the lock before (a reversal's accounts are its target's: see
``store.REVERSAL_TARGET_COLUMNS``)."""

WRITE = f"""
WITH new_transfers AS (
    INSERT INTO transfers ({store.INSERT_TRANSFER_COLUMNS})
    SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18
    FROM unnest(%(t1)s::uuid[], %(t2)s::uuid[], %(t3)s::uuid[], %(t4)s::int8[],
                %(t5)s::int8[], %(t6)s::text[], %(t7)s::int4[], %(t8)s::int4[],
                %(t9)s::uuid[], %(t10)s::int8[], %(t11)s::int8[], %(t12)s::uuid[],
                %(t13)s::text[], %(t14)s::int8[], %(t15)s::int8[], %(t16)s::int8[],
                %(t17)s::int8[], %(t18)s::int8[])
         WITH ORDINALITY AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                              c15, c16, c17, c18, ord)
    ORDER BY ord
    RETURNING 1
), spent AS (
    INSERT INTO transfer_failures (id, status, created_at_us)
    SELECT i, s, %(ts)s FROM unnest(%(f1)s::uuid[], %(f2)s::text[]) AS u(i, s) ORDER BY i
    RETURNING 1
), closed AS (
    DELETE FROM pending_holds WHERE hold_id = ANY(%(closed)s::uuid[]) RETURNING 1
), opened AS (
    INSERT INTO pending_holds (hold_id, debit_account_id, credit_account_id, amount,
                               expires_at_us)
    SELECT * FROM unnest(%(h1)s::uuid[], %(h2)s::uuid[], %(h3)s::uuid[], %(h4)s::int8[],
                         %(h5)s::int8[])
    RETURNING 1
), changed AS (
    UPDATE accounts AS a SET debits_pending = u.dpe, debits_posted = u.dpo,
        credits_pending = u.cpe, credits_posted = u.cpo, timestamp_us = %(ts)s
    FROM unnest(%(a1)s::uuid[], %(a2)s::int8[], %(a3)s::int8[], %(a4)s::int8[],
                %(a5)s::int8[]) AS u(id, dpe, dpo, cpe, cpo)
    WHERE a.id = ANY(%(a1)s::uuid[]) AND a.id = u.id
    RETURNING 1
)
SELECT vledger_assert(
    (SELECT count(*) FROM new_transfers) = %(n_transfers)s
    AND (SELECT count(*) FROM changed) = %(n_accounts)s,
    'a batch wrote other counts of transfers or accounts than it decided')
"""
"""Everything a batch writes, in one statement. It checks its own row counts inside the
database, so that COMMIT can follow in the same round trip: a mismatch (a bug) aborts the
transaction and the COMMIT turns into a rollback."""

PLAIN_BATCH_MAX = 8
"""The largest batch of plain transfers decided inside the database: the function runs
seven statements per transfer, and at about this size the engine path's bulk statements
cost as much (measured: 1 transfer 1.6x the engine's rate, 8 even, 32 0.6x; see
bench/RESULTS.md, W1)."""

DECIDE_PLAIN = """
SELECT batch_us, statuses FROM vledger_create_plain_transfers(
    %(ids)s::uuid[], %(debits)s::uuid[], %(credits)s::uuid[], %(amounts)s::int8[],
    %(currencies)s::text[], %(codes)s::int4[], %(timeouts)s::int8[], %(metadata)s::text[],
    %(now)s)
"""
"""A batch of plain transfers decided, written and (on the autocommit writer) committed in
one round trip; ``statuses`` NULL when it wrote nothing and the engine path must run."""

ASSERTION_SQLSTATE = "VL001"
"""Raised by ``vledger_assert`` (migration 0001) when a write breaks an invariant."""

RETRYABLE = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.LockNotAvailable,
    # psycopg may believe a statement prepared whose Parse an aborted pipeline skipped;
    # the writer that answered this is dropped (below), and its successor prepares anew.
    pg_errors.InvalidSqlStatementName,
)


class _Relock(Exception):
    """The batch needs accounts it did not lock (a hold's, a due hold's): lock them too."""

    def __init__(self, more: set[uuid.UUID]) -> None:
        super().__init__(f"{len(more)} more accounts to lock")
        self.more = more


HOLD_ACCOUNTS_CACHED_MAX = 100_000
"""How many holds' (debit, credit) pairs a store remembers; they never change."""


def conninfo(url: str) -> str:
    """The libpq URI of a SQLAlchemy-style URL (``postgresql+psycopg://``)."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Every statement here is an index lookup whose best plan does not depend on the
    # values: plan once per connection instead of once per call.
    conn.execute("SET plan_cache_mode = force_generic_plan")
    conn.execute("SET application_name = 'vledger'")


class _Writer:
    """A connection kept for write transactions (opened on first use, reopened if lost)."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None

    def connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            _configure(self._conn)
        return self._conn

    def drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _LoopStatements:
    """Single statements in autocommit, awaited on one event loop: one round trip each,
    no thread and no ``BEGIN``/``COMMIT`` (a statement alone is its own transaction).

    Bound to the first loop that asks (another loop gets ``None`` while that one runs).
    At most :data:`LOOP_CONNECTIONS_MAX` connections, opened when first needed; one
    that fails or whose statement is cancelled is closed, not reused. Closed
    synchronously with the store (libpq's ``finish``), from any thread: psycopg's async
    pool would need its own loop to close it.
    """

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Queue[psycopg.AsyncConnection[Any] | None] | None = None
        self._opened: list[psycopg.AsyncConnection[Any]] = []

    def _slots_for(
        self, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Queue[psycopg.AsyncConnection[Any] | None] | None:
        with self._lock:
            if self._loop is not loop and (self._loop is None or self._loop.is_closed()):
                self._close_opened()
                self._loop, self._slots = loop, asyncio.Queue()
                for _ in range(LOOP_CONNECTIONS_MAX):
                    self._slots.put_nowait(None)  # a connection not opened yet
            return self._slots if self._loop is loop else None

    async def run(self, sql: str, params: Mapping[str, Any]) -> list[tx.Row] | None:
        slots = self._slots_for(asyncio.get_running_loop())
        if slots is None:
            return None
        taken, conn = False, None
        try:
            async with asyncio.timeout(POOL_WAIT_S):
                conn, taken = await slots.get(), True
                if conn is None or conn.closed:
                    conn = await self._connect()
                cursor = await conn.execute(_flow_sql(sql), params)
                rows = await cursor.fetchall() if cursor.description is not None else []
        except BaseException as exc:
            if conn is not None:  # its state is unknown: not reused
                conn.pgconn.finish()
            if taken:
                slots.put_nowait(None)
            if isinstance(exc, pg_errors.IntegrityError):
                _invariant(exc)
            if isinstance(exc, TimeoutError | psycopg.Error):
                raise StorageError(f"PostgreSQL statement failed: {exc!r}") from exc
            raise
        slots.put_nowait(conn)
        return rows

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        )
        with self._lock:
            self._opened = [c for c in self._opened if not c.closed] + [conn]
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute("SET application_name = 'vledger'")
        return conn

    def close(self) -> None:
        with self._lock:
            self._close_opened()
            self._loop = self._slots = None

    def _close_opened(self) -> None:
        for conn in self._opened:
            conn.pgconn.finish()
        self._opened = []


class PostgresStore:
    """One PostgreSQL database: writer connections, a pool for reads, and connections for
    single statements awaited on the event loop."""

    dialect = "postgresql"
    writers_max = WRITERS_MAX

    def __init__(self, url: str) -> None:
        self._conninfo = conninfo(url)
        where = url.rsplit("@", 1)[-1]
        try:  # fail fast (the pool would keep retrying until its timeout)
            psycopg.connect(self._conninfo, connect_timeout=CONNECT_TIMEOUT_S).close()
        except psycopg.Error as exc:
            raise StorageError(f"PostgreSQL at {where} is not reachable: {exc}") from exc
        self._pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=POOL_SIZE_MAX,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=_configure,
            timeout=POOL_WAIT_S,
            open=False,
            name="vledger",
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            self._pool.close()
            where = url.rsplit("@", maxsplit=1)[-1]
            raise StorageError(f"PostgreSQL at {where} is not reachable: {exc}") from exc
        self._writers: queue.LifoQueue[_Writer] = queue.LifoQueue()
        for _ in range(self.writers_max):
            self._writers.put(_Writer(self._conninfo))
        self._loop_statements = _LoopStatements(self._conninfo)
        self._hold_accounts: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]] = {}

    def close(self) -> None:
        for _ in range(self.writers_max):
            self._writers.get().drop()
        self._loop_statements.close()
        self._pool.close()

    async def loop_statement(self, sql: str, params: Mapping[str, Any]) -> list[tx.Row] | None:
        """Run one flow statement (``:name`` parameters) alone, in autocommit, on a
        connection of the running event loop; its rows, or ``None`` when this store
        serves another loop (nothing ran). A failure is a :class:`StorageError`: whether a
        write that failed committed is unknown, as for any lost commit."""
        return await self._loop_statements.run(sql, params)

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection for reads: a lost or unreachable database (no connection
        within :data:`POOL_WAIT_S`) is a :class:`StorageError`, never psycopg's own."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise StorageError(f"PostgreSQL connection failed: {exc}") from exc

    def check_schema(self, head: str) -> None:
        with self._pooled() as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except pg_errors.UndefinedTable:
                row = None
        if row is None or row[0] != head:
            raise StorageError(
                f"database is at schema {row[0] if row else 'none'}, not {head}:"
                " run `vledger migrate` (or open_ledger(url, migrate=True))"
            )

    # -- the retry loop ---------------------------------------------------------------

    def _transaction(
        self,
        work: Callable[[psycopg.Connection[Any], set[uuid.UUID]], Any],
        lock: set[uuid.UUID] | None = None,
        *,
        one_statement: bool = False,
    ) -> Any:
        """Run ``work`` in one transaction on the writer connection, pipelined (or, with
        ``one_statement``, as the single statement it runs: its own transaction).

        Deadlocks, serialization failures, races on an id, and a lock set that proved too
        small are retried; a lost connection is reopened and retried (a batch that did
        commit answers ``exists`` on the retry); anything else maps to our errors.
        """
        lock = set(lock or ())
        writer = self._writers.get()
        try:
            for attempt in range(store.MAX_ATTEMPTS):
                try:
                    if one_statement:
                        return work(writer.connection(), lock)
                    return self._run_once(writer, work, lock)
                except _Relock as relock:
                    lock |= relock.more
                    continue
                except RETRYABLE:
                    # Spread the retries of a cycle's victims so they do not meet again.
                    time.sleep(random.uniform(0, RETRY_BACKOFF_S * (attempt + 1)))
                    continue
                except pg_errors.UniqueViolation as exc:
                    # Two transactions created one id at once: the retry sees the winner.
                    if attempt == store.MAX_ATTEMPTS - 1:
                        _invariant(exc)
                except (
                    pg_errors.CheckViolation,
                    pg_errors.RestrictViolation,
                    pg_errors.ForeignKeyViolation,
                ) as exc:
                    _invariant(exc)
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    writer.drop()
                    if attempt >= 3:
                        raise StorageError(f"PostgreSQL connection failed: {exc}") from exc
                except psycopg.Error as exc:
                    if exc.sqlstate == ASSERTION_SQLSTATE:
                        _invariant(exc)
                    raise StorageError(f"PostgreSQL refused the batch: {exc}") from exc
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        finally:
            self._writers.put(writer)
        raise StorageError("batch not committed after retries (contention)")

    @staticmethod
    def _run_once(
        writer: _Writer,
        work: Callable[[psycopg.Connection[Any], set[uuid.UUID]], Any],
        lock: set[uuid.UUID],
    ) -> Any:
        conn = writer.connection()
        try:
            with conn.pipeline():
                conn.execute("BEGIN", prepare=False)
                result = work(conn, lock)
                conn.execute("COMMIT", prepare=False)
        except psycopg.Error:
            # A statement failed inside a pipeline: the statements queued after it were
            # skipped, and psycopg's record of what it prepared on this connection may no
            # longer match the server's. Start the next transaction on a fresh connection.
            writer.drop()
            raise
        except BaseException:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                try:
                    conn.execute("ROLLBACK", prepare=False)
                except psycopg.Error:
                    writer.drop()
            raise
        return result

    # -- accounts ---------------------------------------------------------------------

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]:
        result: list[Result] = self._transaction(
            lambda conn, _lock: self._create_accounts_in(conn, accounts, now_us)
        )
        return result

    @staticmethod
    def _create_accounts_in(
        conn: psycopg.Connection[Any], accounts: Sequence[Account], now_us: int
    ) -> list[Result]:
        ids = list({a.id for a in accounts})
        existing = {
            stored.id: stored
            for stored in (
                store.stored_account(row, _same)
                for row in conn.execute(
                    "SELECT id, currency, code, flags FROM accounts"
                    " WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
                    (_array(ids, "u"),),
                ).fetchall()
            )
        }
        results, new = create_accounts_in_memory(accounts, existing)
        if new:
            rows = [store.account_row(a, now_us) for a in new]
            conn.execute(
                "INSERT INTO accounts (id, currency, code, flags, metadata, created_at_us,"
                " timestamp_us) SELECT * FROM unnest(%s::uuid[], %s::text[], %s::int4[],"
                " %s::int4[], %s::text[], %s::int8[], %s::int8[])",
                _columns(rows),
            )
        return results

    # -- transfers --------------------------------------------------------------------

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: Callable[[], int]) -> Outcome:
        plain = plain_batch(transfers)
        if plain is not None:
            decided = self._decide_plain(plain, now_us)
            if decided is not None:
                return decided
        return self._apply_with_engine(transfers, now_us)

    def _decide_plain(self, plain: dict[str, Any], now_us: Callable[[], int]) -> Outcome | None:
        """The batch decided in the database; ``None`` when it handed the batch back."""

        def work(conn: psycopg.Connection[Any], _lock: set[uuid.UUID]) -> tuple[Any, ...]:
            row = conn.execute(DECIDE_PLAIN, {**plain, "now": now_us()}).fetchone()
            assert row is not None  # a function call answers one row
            return tuple(row)

        batch_us, statuses = self._transaction(work, one_statement=True)
        if statuses is None:
            return None
        return Outcome(
            results=[Result(index, Status(status)) for index, status in enumerate(statuses)],
            timestamp_us=batch_us,
        )

    def _apply_with_engine(
        self, transfers: Sequence[Transfer], now_us: Callable[[], int]
    ) -> Outcome:
        account_ids, pending_ids = ids_named(transfers)
        self._learn_holds([p for p in pending_ids if p not in self._hold_accounts])
        for pending_id in pending_ids:
            account_ids.update(self._hold_accounts.get(pending_id, ()))
        params = {
            "pids": _array(list(pending_ids), "u"),
            "tids": _array(list({t.id for t in transfers}), "u"),
            "rids": _array(list(reversal_targets_named(transfers)), "u"),
        }

        def work(conn: psycopg.Connection[Any], lock: set[uuid.UUID]) -> Outcome:
            now = now_us()
            loaded = self._load(conn, {**params, "lock": _array(list(lock), "u"), "now": now}, lock)
            outcome = TransferBatch(loaded, now).run(transfers)
            self._write(conn, outcome)
            return outcome

        outcome: Outcome = self._transaction(work, account_ids)
        self._remember_holds(outcome)
        return outcome

    def _apply_in(
        self, conn: psycopg.Connection[Any], transfers: Sequence[Transfer], now_us: int
    ) -> Outcome:
        """Apply a batch inside a transaction someone else opened (a flow's)."""
        account_ids, pending_ids = ids_named(transfers)
        self._learn_holds([p for p in pending_ids if p not in self._hold_accounts])
        lock = set(account_ids)
        for pending_id in pending_ids:
            lock.update(self._hold_accounts.get(pending_id, ()))
        params = {
            "pids": _array(list(pending_ids), "u"),
            "tids": _array(list({t.id for t in transfers}), "u"),
            "rids": _array(list(reversal_targets_named(transfers)), "u"),
            "now": now_us,
        }
        while True:
            try:
                loaded = self._load(conn, {**params, "lock": _array(list(lock), "u")}, lock)
                break
            except _Relock as relock:  # rows locked so far stay locked: lock the rest too
                lock |= relock.more
        outcome = TransferBatch(loaded, now_us).run(transfers)
        self._write(conn, outcome)
        self._remember_holds(outcome)
        return outcome

    def transaction(self, work: Callable[[tx.StoreTx], T]) -> T:
        """Run a flow's ``work`` in one transaction on a pooled connection.

        Deadlocks, serialization failures and unique-key races roll back and run ``work``
        again (the rerun sees the winner's rows); anything else maps to our errors.
        """
        for attempt in range(store.MAX_ATTEMPTS):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return work(_PgTx(self, conn))
            except (*RETRYABLE, pg_errors.UniqueViolation) as exc:
                if attempt == store.MAX_ATTEMPTS - 1:
                    if isinstance(exc, pg_errors.UniqueViolation):
                        _invariant(exc)
                    break
            except (
                pg_errors.CheckViolation,
                pg_errors.RestrictViolation,
                pg_errors.ForeignKeyViolation,
            ) as exc:
                _invariant(exc)
            except PoolTimeout as exc:  # waited POOL_WAIT_S already: no second wait
                raise StorageError(f"PostgreSQL connection failed: {exc}") from exc
            except psycopg.OperationalError as exc:
                if attempt >= 3:
                    raise StorageError(f"PostgreSQL connection failed: {exc}") from exc
            except psycopg.Error as exc:
                if exc.sqlstate == ASSERTION_SQLSTATE:
                    _invariant(exc)
                raise StorageError(f"PostgreSQL refused the transaction: {exc}") from exc
            time.sleep(random.uniform(0, RETRY_BACKOFF_S * (attempt + 1)))
        raise StorageError("transaction not committed after retries (contention)")

    def _learn_holds(self, pending_ids: list[uuid.UUID]) -> None:
        """Read the accounts of holds this process has not seen (immutable, no lock)."""
        if not pending_ids:
            return
        with self._pooled() as conn:
            rows = conn.execute(
                "SELECT id, debit_account_id, credit_account_id FROM transfers"
                " WHERE id = ANY(%s::uuid[])",
                (_array(pending_ids, "u"),),
            ).fetchall()
        self._cache_holds((row[0], row[1], row[2]) for row in rows)

    def _remember_holds(self, outcome: Outcome) -> None:
        self._cache_holds((h[0], h[1], h[2]) for h in outcome.holds_opened)

    def _cache_holds(self, holds: Iterable[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]) -> None:
        cache = self._hold_accounts
        for hold_id, debit_id, credit_id in holds:
            if len(cache) >= HOLD_ACCOUNTS_CACHED_MAX:
                cache.clear()
            cache[hold_id] = (debit_id, credit_id)

    def expire(self, now_us: int, limit: int) -> int:
        with self._pooled() as conn:
            rows = conn.execute(
                "SELECT debit_account_id, credit_account_id FROM pending_holds"
                " WHERE expires_at_us <= %s ORDER BY expires_at_us LIMIT %s",
                (now_us, limit),
            ).fetchall()
        if not rows:
            return 0

        def work(conn: psycopg.Connection[Any], lock: set[uuid.UUID]) -> int:
            params = {
                "lock": _array(list(lock), "u"),
                "pids": "{}",
                "tids": "{}",
                "rids": "{}",
                "now": now_us,
            }
            loaded = self._load(conn, params, lock)
            outcome = TransferBatch(loaded, now_us).run([])
            self._write(conn, outcome)
            return outcome.expired_count

        count: int = self._transaction(work, {v for row in rows for v in row})
        return count

    @staticmethod
    def _load(
        conn: psycopg.Connection[Any], params: dict[str, Any], lock: set[uuid.UUID]
    ) -> Loaded:
        locked = conn.execute(LOCK_ACCOUNTS, params)
        state = conn.execute(SELECT_STATE, params)
        accounts = {
            account.id: account
            for account in (store.account_state(row, _same) for row in locked.fetchall())
        }
        loaded = Loaded(accounts=accounts, existing={}, holds={}, spent=set(), expired_holds=[])
        for row in state.fetchall():
            kind = row[0]
            if kind == KIND_SPENT:
                loaded.spent.add(row[1])
                continue
            if kind == KIND_TARGET:
                target, taken = store.reversal_target(row[1:], _same)
                loaded.targets[target.id] = target
                loaded.reversed_amounts[target.id] = taken
                continue
            width = len(row) if kind == KIND_HOLD else store.STORED_TRANSFER_WIDTH + 2
            stored = store.stored_transfer(row[1:width], _same)
            if kind == KIND_EXISTING:
                loaded.existing[stored.id] = stored
                continue
            if kind == KIND_HOLD:
                loaded.holds[stored.id] = stored
            else:
                loaded.expired_holds.append(stored)
            missing = {stored.debit_account_id, stored.credit_account_id} - lock
            if missing:
                raise _Relock(missing)
        return loaded

    @staticmethod
    def _write(conn: psycopg.Connection[Any], outcome: Outcome) -> None:
        rows = outcome.transfer_rows
        params: dict[str, Any] = {"ts": outcome.timestamp_us}
        for i, column in enumerate(zip(*rows, strict=True) if rows else [()] * 18, start=1):
            params[f"t{i}"] = _array(column, TRANSFER_COLUMN_KINDS[i - 1])
        spent = outcome.spent_ids
        params["f1"] = _array([s[0] for s in spent], "u")
        params["f2"] = _array([s[1] for s in spent], "t")
        params["closed"] = _array(outcome.holds_closed, "u")
        holds = outcome.holds_opened
        for i, kind in enumerate("uuuii", start=1):
            params[f"h{i}"] = _array([h[i - 1] for h in holds], kind)
        changed = outcome.accounts_changed
        params["a1"] = _array([a.id for a in changed], "u")
        params["a2"] = _array([a.debits_pending for a in changed], "i")
        params["a3"] = _array([a.debits_posted for a in changed], "i")
        params["a4"] = _array([a.credits_pending for a in changed], "i")
        params["a5"] = _array([a.credits_posted for a in changed], "i")
        params["n_transfers"] = len(rows)
        params["n_accounts"] = len(changed)
        # Not fetched here: the result comes back with the COMMIT, in the same round trip.
        conn.execute(WRITE, params)

    # -- reads ------------------------------------------------------------------------

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]:
        with self._pooled() as conn:
            return _lookup_accounts(conn, ids, now_us)

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]:
        with self._pooled() as conn:
            found = {
                t.id: t
                for t in (
                    store.transfer(row, _same)
                    for row in conn.execute(
                        f"SELECT {store.TRANSFER_COLUMNS} FROM transfers t"
                        " WHERE t.id = ANY(%s::uuid[])",
                        (list(dict.fromkeys(ids)),),
                    ).fetchall()
                )
            }
        return [found[i] for i in ids if i in found]

    def account_transfers(
        self, account_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[Transfer]:
        with self._pooled() as conn:
            cursor: tuple[int, int] = (-1, -1)
            if after is not None:
                row = conn.execute(
                    "SELECT created_at_us, seq FROM transfers WHERE id = %s"
                    " AND (debit_account_id = %s OR credit_account_id = %s)",
                    (after, account_id, account_id),
                ).fetchone()
                if row is None:
                    return []
                cursor = (row[0], row[1])
            rows = conn.execute(
                ACCOUNT_TRANSFERS,
                {"a": account_id, "ts": cursor[0], "seq": cursor[1], "n": limit},
            ).fetchall()
        return [store.transfer(row, _same) for row in rows]

    def balance_at(self, account_id: uuid.UUID, at_us: int) -> tuple[int, int] | None:
        with self._pooled() as conn:
            row = conn.execute(BALANCE_AT, {"a": account_id, "at": at_us}).fetchone()
        if row is None:
            return None
        return (row[0] or 0, row[1] or 0)

    # -- integrity --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        problems: list[str] = []
        with self._pooled() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            totals = {
                row[0]: [int(v) for v in row[1:]]
                for row in conn.execute(
                    "SELECT currency, debits_posted, credits_posted, debits_pending,"
                    " credits_pending FROM trial_balance"
                ).fetchall()
            }
            problems.extend(store.per_currency_problems(totals))
            for rule, sql in store.INTEGRITY_QUERIES:
                ids = [row[0] for row in conn.execute(sql).fetchall()]
                if ids:
                    problems.append(store.describe_problem(rule, ids))
            broken = [
                row[0]
                for row in conn.execute(store.LAST_BALANCES_QUERY).fetchall()
                if store.last_balance_problem(row)
            ]
            if broken:
                problems.append(
                    store.describe_problem(
                        "account's posted counters differ from its last transfer's record", broken
                    )
                )
        return problems


LOOKUP_ACCOUNTS = f"""
SELECT {store.ACCOUNT_COLUMNS},
    (SELECT COALESCE(SUM(p.amount), 0) FROM pending_holds p
     WHERE p.debit_account_id = a.id AND p.expires_at_us <= %(now)s)::int8,
    (SELECT COALESCE(SUM(p.amount), 0) FROM pending_holds p
     WHERE p.credit_account_id = a.id AND p.expires_at_us <= %(now)s)::int8
FROM accounts a WHERE a.id = ANY(%(ids)s::uuid[])
"""
"""Accounts as the clock sees them, in one statement (one snapshot): the amounts of holds
past their timeout, not yet voided by a sweep, are taken out of the pending counters."""

ACCOUNT_TRANSFERS = f"""
(SELECT {store.TRANSFER_COLUMNS}, t.seq FROM transfers t
 WHERE t.debit_account_id = %(a)s AND (t.created_at_us, t.seq) > (%(ts)s, %(seq)s)
 ORDER BY t.created_at_us, t.seq LIMIT %(n)s)
UNION ALL
(SELECT {store.TRANSFER_COLUMNS}, t.seq FROM transfers t
 WHERE t.credit_account_id = %(a)s AND (t.created_at_us, t.seq) > (%(ts)s, %(seq)s)
 ORDER BY t.created_at_us, t.seq LIMIT %(n)s)
ORDER BY 12, 13 LIMIT %(n)s
"""
"""A page of an account's statement: two index range scans merged."""

BALANCE_AT = """
SELECT last.dp, last.cp FROM accounts a LEFT JOIN LATERAL (
    SELECT dp, cp FROM (
        (SELECT created_at_us, seq, debit_account_debits_posted AS dp,
                debit_account_credits_posted AS cp
         FROM transfers WHERE debit_account_id = %(a)s AND created_at_us <= %(at)s
         ORDER BY created_at_us DESC, seq DESC LIMIT 1)
        UNION ALL
        (SELECT created_at_us, seq, credit_account_debits_posted, credit_account_credits_posted
         FROM transfers WHERE credit_account_id = %(a)s AND created_at_us <= %(at)s
         ORDER BY created_at_us DESC, seq DESC LIMIT 1)
    ) AS sides ORDER BY created_at_us DESC, seq DESC LIMIT 1
) AS last ON true
WHERE a.id = %(a)s
"""


TRANSFER_COLUMN_KINDS = "uuuiitiiuiiutiiiii"
"""Per column of a transfer row: u = uuid, i = integer, t = text."""


def _array(values: Sequence[Any], kind: str) -> str:
    """A PostgreSQL array literal: far cheaper to send than a list adapted per element."""
    if kind == "t":
        items = (
            "NULL" if v is None else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for v in values
        )
    else:
        items = ("NULL" if v is None else str(v) for v in values)
    return "{" + ",".join(items) + "}"


def plain_batch(transfers: Sequence[Transfer]) -> dict[str, Any] | None:
    """The parameters of :data:`DECIDE_PLAIN` for a batch of at most
    :data:`PLAIN_BATCH_MAX` plain transfers (no flags, ``pending_id`` or ``reverses_id``)
    whose texts PostgreSQL takes as they are; ``None`` for any other batch."""
    if not 0 < len(transfers) <= PLAIN_BATCH_MAX:
        return None
    metadata: list[str | None] = []
    for t in transfers:
        if t.flags.value or t.pending_id is not None or t.reverses_id is not None:
            return None
        text = metadata_json(t.metadata)
        if not _travels(t.currency) or (text is not None and not _travels(text)):
            return None
        metadata.append(text)
    return {
        "ids": _array([t.id for t in transfers], "u"),
        "debits": _array([t.debit_account_id for t in transfers], "u"),
        "credits": _array([t.credit_account_id for t in transfers], "u"),
        "amounts": _array([t.amount for t in transfers], "i"),
        "currencies": _array([t.currency for t in transfers], "t"),
        "codes": _array([t.code for t in transfers], "i"),
        "timeouts": _array([t.timeout_s for t in transfers], "i"),
        "metadata": _array(metadata, "t"),
    }


def _travels(text: str | None) -> bool:
    """True when PostgreSQL stores ``text`` as it is: a str without NUL, valid UTF-8 (the
    engine path never sends a refused transfer's texts, so neither may refuse them)."""
    if not isinstance(text, str) or "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows turned into columns, each a list (psycopg sends a list as an array)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _invariant(exc: psycopg.Error) -> NoReturn:
    raise InvariantViolation(f"the database refused a write the engine allowed: {exc}") from exc


def _lookup_accounts(
    conn: psycopg.Connection[Any], ids: Sequence[uuid.UUID], now_us: int
) -> list[Account]:
    rows = conn.execute(
        LOOKUP_ACCOUNTS, {"ids": _array(list(dict.fromkeys(ids)), "u"), "now": now_us}
    ).fetchall()
    found = {}
    for row in rows:
        account = store.account(row, _same)
        found[account.id] = replace(
            account,
            debits_pending=account.debits_pending - row[-2],
            credits_pending=account.credits_pending - row[-1],
        )
    return [found[i] for i in ids if i in found]


class _PgTx:
    """A flow's transaction on one pooled connection."""

    dialect = "postgresql"

    def __init__(self, owner: PostgresStore, conn: psycopg.Connection[Any]) -> None:
        self._owner = owner
        self._conn = conn

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tx.Row]:
        cursor = self._conn.execute(_flow_sql(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: int) -> Outcome:
        return self._owner._apply_in(self._conn, transfers, now_us)

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]:
        return self._owner._create_accounts_in(self._conn, accounts, now_us)

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]:
        return _lookup_accounts(self._conn, ids, now_us)

    def savepoint(self, work: Callable[[], T]) -> T:
        with self._conn.transaction():  # nested in the open transaction: a SAVEPOINT
            return work()


_FLOW_SQL: dict[str, str] = {}


def _flow_sql(sql: str) -> str:
    """A flow's ``:name`` SQL in psycopg's style, converted once per statement."""
    converted = _FLOW_SQL.get(sql)
    if converted is None:
        converted = _FLOW_SQL[sql] = tx.pyformat(sql)
    return converted
