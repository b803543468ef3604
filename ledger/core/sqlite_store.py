"""The ledger on a SQLite file: the embedded default.

SQLite has one writer at a time per file, so a batch takes the write lock up front
(``BEGIN IMMEDIATE``) and needs no row locks. The file runs in WAL mode with
``synchronous=FULL``: a commit is on disk before a call answers, and readers never block
the writer. UUIDs are stored as 16-byte BLOBs.

A file that cannot grow (the disk full, or ``PRAGMA max_page_count`` reached) makes SQLite
answer ``SQLITE_FULL``: every write path (the writer's ``BEGIN`` and ``COMMIT``, the store's
statements, a flow's :class:`_SqliteTx`) raises it as :class:`StorageError`, nothing
committed. SQLite rolls back only the failing statement or the whole transaction, as it
sees fit; a flow's transaction is then rolled back whole (part of a batch may be in it)
and refuses any further statement, so that none runs, and commits, on its own, even if
the flow catches the error.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from ledger.core import store, tx
from ledger.core.engine import (
    Loaded,
    Outcome,
    StoredTransfer,
    TransferBatch,
    create_accounts_in_memory,
    ids_named,
    reversal_targets_named,
)
from ledger.core.errors import InvariantViolation, StorageError
from ledger.core.values import Account, Result, Transfer

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
READERS_MAX = 8


def _uuid(value: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=value)


def _blob(value: uuid.UUID | None) -> bytes | None:
    return None if value is None else value.bytes


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _full(exc: sqlite3.Error) -> StorageError | None:
    """``SQLITE_FULL`` as the :class:`StorageError` it is; ``None`` for another error."""
    if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_FULL:
        return None
    return StorageError(
        f"the SQLite file cannot grow (disk full, or max_page_count reached): {exc};"
        " nothing of the transaction was written"
    )


@contextmanager
def _full_mapped() -> Iterator[None]:
    """Statements on the writer: ``SQLITE_FULL`` raised as :class:`StorageError`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        full = _full(exc)
        if full is None:
            raise
        raise full from exc


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """Begin a write transaction, retrying briefly while another process holds the lock."""
    for attempt in range(store.MAX_ATTEMPTS):
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if (full := _full(exc)) is not None:
                raise full from exc
            if "locked" not in str(exc) or attempt == store.MAX_ATTEMPTS - 1:
                raise StorageError(f"SQLite write lock not acquired: {exc}") from exc
            time.sleep(0.01 * (attempt + 1))


def _ended_early() -> StorageError:
    return StorageError("the transaction was rolled back after an error; nothing was written")


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


BALANCE_AT = """
SELECT dp, cp FROM (
    SELECT * FROM (SELECT created_at_us, seq, debit_account_debits_posted AS dp,
                          debit_account_credits_posted AS cp
                   FROM transfers WHERE debit_account_id = ? AND created_at_us <= ?
                   ORDER BY created_at_us DESC, seq DESC LIMIT 1)
    UNION ALL
    SELECT * FROM (SELECT created_at_us, seq, credit_account_debits_posted,
                          credit_account_credits_posted
                   FROM transfers WHERE credit_account_id = ? AND created_at_us <= ?
                   ORDER BY created_at_us DESC, seq DESC LIMIT 1)
) ORDER BY created_at_us DESC, seq DESC LIMIT 1
"""
"""An account's posted counters as of a moment: two index lookups, never a sum."""

ACCOUNT_TRANSFERS = f"""
SELECT * FROM (SELECT {store.TRANSFER_COLUMNS}, t.seq FROM transfers t
               WHERE t.debit_account_id = ? AND (t.created_at_us, t.seq) > (?, ?)
               ORDER BY t.created_at_us, t.seq LIMIT ?)
UNION ALL
SELECT * FROM (SELECT {store.TRANSFER_COLUMNS}, t.seq FROM transfers t
               WHERE t.credit_account_id = ? AND (t.created_at_us, t.seq) > (?, ?)
               ORDER BY t.created_at_us, t.seq LIMIT ?)
ORDER BY 12, 13 LIMIT ?
"""
"""A page of an account's statement: two index range scans merged."""


class SqliteStore:
    """One SQLite file: one writer connection (behind a lock), a few reader connections."""

    dialect = "sqlite"
    writers_max = 1  # SQLite has one writer per file

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._writer = _connect(path)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open SQLite file {path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._readers: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._reader_count = 0
        self._reader_lock = threading.Lock()
        self._closed = False

    # -- connections ------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: the file's write lock is held from the start."""
        with self._write_lock:
            conn = self._writer
            _begin_immediate(conn)
            try:
                with _full_mapped():
                    yield conn
                    if not conn.in_transaction:  # a caller went on after SQLite's rollback
                        raise _ended_early()
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLITE_FULL has rolled it back already
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on a snapshot (WAL readers do not block the writer)."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            with self._reader_lock:
                self._reader_count += 1
            conn = _connect(self.path)
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")
            if self._readers.qsize() < READERS_MAX:
                self._readers.put(conn)
            else:
                conn.close()

    def check_schema(self, head: str) -> None:
        """Refuse a database that is not migrated to ``head``."""
        with self._read() as conn:
            try:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:
                row = None
        if row is None or row[0] != head:
            raise StorageError(
                f"{self.path} is at schema {row[0] if row else 'none'}, not {head}:"
                " run `vledger migrate` (or open_ledger(url, migrate=True))"
            )

    async def loop_statement(self, sql: str, params: Mapping[str, Any]) -> list[tx.Row] | None:
        """``None``: SQLite writes through its one writer, never on an event loop."""
        return None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock:
            self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    # -- accounts ---------------------------------------------------------------------

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]:
        with self._write() as conn:
            return self._create_accounts(conn, accounts, now_us)

    def _create_accounts(
        self, conn: sqlite3.Connection, accounts: Sequence[Account], now_us: int
    ) -> list[Result]:
        ids = list({a.id for a in accounts})
        existing = {
            stored.id: stored
            for stored in (
                store.stored_account(row, _uuid)
                for row in self._select_in(
                    conn,
                    "SELECT id, currency, code, flags FROM accounts WHERE id IN ({})",
                    [i.bytes for i in ids],
                )
            )
        }
        results, new = create_accounts_in_memory(accounts, existing)
        if new:
            conn.executemany(
                "INSERT INTO accounts (id, currency, code, flags, metadata, created_at_us,"
                " timestamp_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(a.id.bytes, *store.account_row(a, now_us)[1:]) for a in new],
            )
        return results

    @staticmethod
    def _select_in(
        conn: sqlite3.Connection, sql: str, values: Sequence[Any], *before: Any
    ) -> list[Any]:
        """Rows of ``sql`` whose ``IN ({})`` is filled with one mark per value."""
        if not values:
            return []
        return conn.execute(sql.format(_marks(len(values))), (*before, *values)).fetchall()

    # -- transfers --------------------------------------------------------------------

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: Callable[[], int]) -> Outcome:
        with self._write() as conn:
            return self._apply(conn, transfers, now_us())

    def _apply(
        self, conn: sqlite3.Connection, transfers: Sequence[Transfer], now_us: int
    ) -> Outcome:
        account_ids, pending_ids = ids_named(transfers)
        transfer_ids = list({t.id.bytes for t in transfers})
        loaded = self._load(conn, account_ids, pending_ids, transfer_ids, now_us)
        self._load_reversal_targets(conn, reversal_targets_named(transfers), loaded)
        outcome = TransferBatch(loaded, now_us).run(transfers)
        self._write_outcome(conn, outcome)
        return outcome

    def transaction(self, work: Callable[[tx.StoreTx], T]) -> T:
        """Run ``work`` in one write transaction (the file's single writer: no retries)."""
        with self._write() as conn:
            return work(_SqliteTx(self, conn))

    def expire(self, now_us: int, limit: int) -> int:
        with self._write() as conn:
            rows = conn.execute(
                "SELECT debit_account_id, credit_account_id FROM pending_holds"
                " WHERE expires_at_us <= ? ORDER BY expires_at_us LIMIT ?",
                (now_us, limit),
            ).fetchall()
            if not rows:
                return 0
            account_ids = {_uuid(v) for row in rows for v in row}
            loaded = self._load(conn, account_ids, set(), [], now_us)
            outcome = TransferBatch(loaded, now_us).run([])
            self._write_outcome(conn, outcome)
        return outcome.expired_count

    def _load(
        self,
        conn: sqlite3.Connection,
        account_ids: set[uuid.UUID],
        pending_ids: set[uuid.UUID],
        transfer_ids: list[bytes],
        now_us: int,
    ) -> Loaded:
        """What the engine needs for one batch: the holds it resolves, the holds due to
        expire on the accounts it names, those accounts, and the ids already used."""
        holds = self._holds(conn, pending_ids)
        named = set(account_ids) | _accounts_of(holds.values())
        expired = self._expired(conn, named, now_us)
        named |= _accounts_of(expired)
        accounts = {
            state.id: state
            for state in (
                store.account_state(row, _uuid)
                for row in self._select_in(
                    conn,
                    f"SELECT {store.ACCOUNT_STATE_COLUMNS} FROM accounts WHERE id IN ({{}})",
                    [a.bytes for a in named],
                )
            )
        }
        existing, spent = self._existing(conn, transfer_ids)
        return Loaded(accounts, existing, holds, spent, expired)

    def _holds(
        self, conn: sqlite3.Connection, pending_ids: set[uuid.UUID]
    ) -> dict[uuid.UUID, StoredTransfer]:
        """The holds a batch names, with how each was resolved."""
        rows = self._select_in(
            conn,
            f"SELECT {store.STORED_TRANSFER_COLUMNS}, t.amount, r.id, r.flags"
            " FROM transfers t LEFT JOIN transfers r ON r.pending_id = t.id"
            " WHERE t.id IN ({})",
            [p.bytes for p in pending_ids],
        )
        return {hold.id: hold for hold in (store.stored_transfer(row, _uuid) for row in rows)}

    @staticmethod
    def _expired(
        conn: sqlite3.Connection, named: set[uuid.UUID], now_us: int
    ) -> list[StoredTransfer]:
        """The open holds on ``named`` accounts whose timeout has passed, oldest first."""
        if not named:
            return []
        blobs = [a.bytes for a in named]
        marks = _marks(len(blobs))
        return [
            store.stored_transfer(row, _uuid)
            for row in conn.execute(
                f"SELECT {store.STORED_TRANSFER_COLUMNS} FROM pending_holds p"
                " JOIN transfers t ON t.id = p.hold_id WHERE p.expires_at_us <= ?"
                f" AND (p.debit_account_id IN ({marks}) OR p.credit_account_id IN ({marks}))"
                " ORDER BY p.expires_at_us",
                (now_us, *blobs, *blobs),
            ).fetchall()
        ]

    def _existing(
        self, conn: sqlite3.Connection, transfer_ids: list[bytes]
    ) -> tuple[dict[uuid.UUID, StoredTransfer], set[uuid.UUID]]:
        """Of a batch's transfer ids: those that exist, and those spent by a refusal."""
        existing = {
            stored.id: stored
            for stored in (
                store.stored_transfer(row, _uuid)
                for row in self._select_in(
                    conn,
                    f"SELECT {store.STORED_TRANSFER_COLUMNS}, h.amount FROM transfers t"
                    " LEFT JOIN transfers h ON h.id = t.pending_id WHERE t.id IN ({})",
                    transfer_ids,
                )
            )
        }
        spent = {
            _uuid(row[0])
            for row in self._select_in(
                conn, "SELECT id FROM transfer_failures WHERE id IN ({})", transfer_ids
            )
        }
        return existing, spent

    def _load_reversal_targets(
        self, conn: sqlite3.Connection, target_ids: set[uuid.UUID], loaded: Loaded
    ) -> None:
        """The transfers the batch reverses, and what earlier reversals took of each (the
        file's write lock is held: no other writer can add a reversal meanwhile)."""
        for row in self._select_in(
            conn,
            f"SELECT {store.REVERSAL_TARGET_COLUMNS} FROM transfers t WHERE t.id IN ({{}})",
            [i.bytes for i in target_ids],
        ):
            target, taken = store.reversal_target(row, _uuid)
            loaded.targets[target.id] = target
            loaded.reversed_amounts[target.id] = taken

    @staticmethod
    def _write_outcome(conn: sqlite3.Connection, outcome: Outcome) -> None:
        if outcome.transfer_rows:
            conn.executemany(
                f"INSERT INTO transfers ({store.INSERT_TRANSFER_COLUMNS}) VALUES ({_marks(18)})",
                [
                    (
                        r[0].bytes,
                        r[1].bytes,
                        r[2].bytes,
                        r[3],
                        r[4],
                        r[5],
                        r[6],
                        r[7],
                        _blob(r[8]),
                        r[9],
                        r[10],
                        _blob(r[11]),
                        *r[12:],
                    )
                    for r in outcome.transfer_rows
                ],
            )
        if outcome.spent_ids:
            conn.executemany(
                "INSERT INTO transfer_failures (id, status, created_at_us) VALUES (?, ?, ?)",
                [(i.bytes, status, outcome.timestamp_us) for i, status in outcome.spent_ids],
            )
        if outcome.holds_closed:
            conn.executemany(
                "DELETE FROM pending_holds WHERE hold_id = ?",
                [(h.bytes,) for h in outcome.holds_closed],
            )
        if outcome.holds_opened:
            conn.executemany(
                "INSERT INTO pending_holds (hold_id, debit_account_id, credit_account_id,"
                " amount, expires_at_us) VALUES (?, ?, ?, ?, ?)",
                [(h[0].bytes, h[1].bytes, h[2].bytes, h[3], h[4]) for h in outcome.holds_opened],
            )
        if outcome.accounts_changed:
            timestamp = outcome.timestamp_us
            conn.executemany(
                "UPDATE accounts SET debits_pending = ?, debits_posted = ?,"
                " credits_pending = ?, credits_posted = ?, timestamp_us = ? WHERE id = ?",
                [(*a.counters(), timestamp, a.id.bytes) for a in outcome.accounts_changed],
            )

    # -- reads ------------------------------------------------------------------------

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]:
        with self._read() as conn:
            return self._lookup_accounts(conn, ids, now_us)

    def _lookup_accounts(
        self, conn: sqlite3.Connection, ids: Sequence[uuid.UUID], now_us: int
    ) -> list[Account]:
        blobs = [i.bytes for i in dict.fromkeys(ids)]
        found = {
            a.id: a
            for a in (
                store.account(row, _uuid)
                for row in self._select_in(
                    conn,
                    f"SELECT {store.ACCOUNT_COLUMNS} FROM accounts WHERE id IN ({{}})",
                    blobs,
                )
            )
        }
        expired: list[tuple[uuid.UUID, uuid.UUID, int]] = []
        if blobs:
            marks = _marks(len(blobs))
            expired = [
                (_uuid(row[0]), _uuid(row[1]), row[2])
                for row in conn.execute(
                    "SELECT debit_account_id, credit_account_id, amount FROM pending_holds"
                    " WHERE expires_at_us <= ?"
                    f" AND (debit_account_id IN ({marks}) OR credit_account_id IN ({marks}))",
                    (now_us, *blobs, *blobs),
                )
            ]
        found = {a.id: a for a in store.subtract_expired(list(found.values()), expired)}
        return [found[i] for i in ids if i in found]

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]:
        with self._read() as conn:
            found = {
                t.id: t
                for t in (
                    store.transfer(row, _uuid)
                    for row in self._select_in(
                        conn,
                        f"SELECT {store.TRANSFER_COLUMNS} FROM transfers t WHERE t.id IN ({{}})",
                        [i.bytes for i in dict.fromkeys(ids)],
                    )
                )
            }
        return [found[i] for i in ids if i in found]

    def account_transfers(
        self, account_id: uuid.UUID, after: uuid.UUID | None, limit: int
    ) -> list[Transfer]:
        a = account_id.bytes
        with self._read() as conn:
            cursor = (-1, -1)
            if after is not None:
                row = conn.execute(
                    "SELECT created_at_us, seq FROM transfers WHERE id = ?"
                    " AND (debit_account_id = ? OR credit_account_id = ?)",
                    (after.bytes, a, a),
                ).fetchone()
                if row is None:
                    return []
                cursor = (row[0], row[1])
            rows = conn.execute(
                ACCOUNT_TRANSFERS, (a, *cursor, limit, a, *cursor, limit, limit)
            ).fetchall()
        return [store.transfer(row, _uuid) for row in rows]

    def balance_at(self, account_id: uuid.UUID, at_us: int) -> tuple[int, int] | None:
        a = account_id.bytes
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM accounts WHERE id = ?", (a,)).fetchone() is None:
                return None
            row = conn.execute(BALANCE_AT, (a, at_us, a, at_us)).fetchone()
        return (0, 0) if row is None else (row[0], row[1])

    # -- integrity --------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        problems: list[str] = []
        with self._read() as conn:
            # the published view trial_balance sums in SQL; SQLite's SUM stops at 2**63,
            # and counters of several accounts may add up past it, so Python sums here
            totals: dict[str, list[int]] = {}
            for code, dpe, dpo, cpe, cpo in conn.execute(
                "SELECT currency, debits_pending, debits_posted, credits_pending, credits_posted"
                " FROM accounts"
            ):
                total = totals.setdefault(code, [0, 0, 0, 0])
                total[0] += dpo
                total[1] += cpo
                total[2] += dpe
                total[3] += cpe
            problems.extend(store.per_currency_problems(totals))
            for rule, sql in store.INTEGRITY_QUERIES:
                ids = [_uuid(row[0]) for row in conn.execute(sql)]
                if ids:
                    problems.append(store.describe_problem(rule, ids))
            broken = [
                _uuid(row[0])
                for row in conn.execute(store.LAST_BALANCES_QUERY)
                if store.last_balance_problem(row)
            ]
            if broken:
                problems.append(
                    store.describe_problem(
                        "account's posted counters differ from its last transfer's record", broken
                    )
                )
        return problems


class _SqliteTx:
    """A flow's transaction on the file's writer connection."""

    dialect = "sqlite"

    def __init__(self, owner: SqliteStore, conn: sqlite3.Connection) -> None:
        self._owner = owner
        self._conn = conn
        self._depth = 0

    def _live(self) -> sqlite3.Connection:
        """The connection, while its transaction is open: once it was rolled back
        (``SQLITE_FULL``), a statement would run, and commit, on its own."""
        if not self._conn.in_transaction:
            raise _ended_early()
        return self._conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The live connection for writes; ``SQLITE_FULL`` rolls the whole transaction
        back (SQLite may keep it open with part of a batch in it) as a StorageError."""
        conn = self._live()
        try:
            yield conn
        except sqlite3.OperationalError as exc:
            full = _full(exc)
            if full is None:
                raise
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise full from exc

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tx.Row]:
        bound = {k: v.bytes if isinstance(v, uuid.UUID) else v for k, v in params.items()}
        try:
            with self._writing() as conn:
                rows = conn.execute(sql, bound).fetchall()
        except sqlite3.IntegrityError as exc:
            raise InvariantViolation(f"SQLite refused a flow's write: {exc}") from exc
        return [tuple(_from_sqlite(v) for v in row) for row in rows]

    def apply_transfers(self, transfers: Sequence[Transfer], now_us: int) -> Outcome:
        with self._writing() as conn:
            return self._owner._apply(conn, transfers, now_us)

    def create_accounts(self, accounts: Sequence[Account], now_us: int) -> list[Result]:
        with self._writing() as conn:
            return self._owner._create_accounts(conn, accounts, now_us)

    def lookup_accounts(self, ids: Sequence[uuid.UUID], now_us: int) -> list[Account]:
        return self._owner._lookup_accounts(self._live(), ids, now_us)

    def savepoint(self, work: Callable[[], T]) -> T:
        conn = self._live()
        self._depth += 1
        name = f"vl_{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            done = work()
        except BaseException:
            if self._conn.in_transaction:  # else SQLite rolled it all back (SQLITE_FULL)
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
            raise
        finally:
            self._depth -= 1
        self._live().execute(f"RELEASE {name}")
        return done


def _from_sqlite(value: Any) -> Any:
    """A 16-byte BLOB is a UUID (flow tables store no other 16-byte values)."""
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    return value


def _accounts_of(transfers: Iterable[StoredTransfer]) -> set[uuid.UUID]:
    """The debit and credit accounts of ``transfers``."""
    return {a for t in transfers for a in (t.debit_account_id, t.credit_account_id)}
