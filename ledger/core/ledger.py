"""The :class:`Ledger`: the core's public face (see ``shared/CORE_API.md``).

A ``Ledger`` validates arguments (a malformed one raises ``ValueError`` before anything
is written), coalesces concurrent ``create_transfers`` calls into one database
transaction (group commit), and answers each call only after its transfers are
committed. Ledgers opened on the same URL in one process share one store (one
connection pool); each keeps its own clock.

Transactions nest. While a :meth:`Ledger.transact` runs its work, on that thread (its
context), every write on the same database joins it: another ``transact`` is a
savepoint of it, ``create_transfers`` and ``create_accounts`` write in it, and
``lookup_accounts`` reads its writes. So an edge can make a whole request one
transaction (the API's idempotency record, a flow's rows and money, the stored answer:
``api.context.run_post``) while each flow keeps offering its own ``transact``.
``lookup_transfers``, ``account_transfers`` and ``balance_at`` read committed data only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from ledger.core import store as store_rows
from ledger.core.engine import LINKED
from ledger.core.errors import InvariantViolation, LedgerError, MalformedRequest, StorageError
from ledger.core.store import Store, from_us, to_us
from ledger.core.tx import Row, StoreTx, Tx
from ledger.core.values import (
    AMOUNT_LIMIT,
    BATCH_SIZE_MAX,
    CODE_MAX,
    CORE_PAGE_SIZE_MAX,
    TIMEOUT_S_MAX,
    Account,
    AccountFlags,
    Balance,
    Result,
    Status,
    Transfer,
    TransferFlags,
)
from ledger.limits import (
    METADATA_ENTRIES_MAX,
    METADATA_KEY_LENGTH_MAX,
    METADATA_VALUE_LENGTH_MAX,
)

Clock = Callable[[], datetime]
T = TypeVar("T")
P = ParamSpec("P")


_open_tx: contextvars.ContextVar[tuple[Store, Tx] | None] = contextvars.ContextVar(
    "vledger_open_tx", default=None
)
"""The transaction :meth:`Ledger.transact` is running in this context, and its store."""


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """The outcome of :meth:`Ledger.check_integrity`: ``ok`` when ``problems`` is empty."""

    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


# -- argument checks ------------------------------------------------------------------


def _check_uuid(value: object, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, uuid.UUID):
        raise MalformedRequest(f"{name} must be a UUID, not {type(value).__name__}")


def _check_int(value: object, name: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedRequest(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise MalformedRequest(f"{name} must be within {low}..{high}, not {value}")


def _check_metadata(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or len(value) > METADATA_ENTRIES_MAX:
        raise MalformedRequest(f"metadata must be a dict of at most {METADATA_ENTRIES_MAX}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise MalformedRequest("metadata keys and values must be str")
        if len(key) > METADATA_KEY_LENGTH_MAX or len(item) > METADATA_VALUE_LENGTH_MAX:
            raise MalformedRequest("metadata key or value too long")


def _check_batch(items: object, kind: type, name: str) -> None:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise MalformedRequest(f"{name} must be a sequence of {kind.__name__}")
    if len(items) > BATCH_SIZE_MAX:
        raise MalformedRequest(f"at most {BATCH_SIZE_MAX} {name} per call, not {len(items)}")
    for item in items:
        if not isinstance(item, kind):
            raise MalformedRequest(f"{name} must hold {kind.__name__}, not {type(item).__name__}")


def check_account(a: Account) -> None:
    _check_uuid(a.id, "account id")
    if not isinstance(a.currency, str):
        raise MalformedRequest("currency must be a str")
    _check_int(a.code, "code", 0, CODE_MAX)
    if not isinstance(a.flags, AccountFlags):
        raise MalformedRequest("flags must be AccountFlags")
    _check_metadata(a.metadata)


def check_transfer(t: Transfer) -> None:
    _check_uuid(t.id, "transfer id")
    if not isinstance(t.flags, TransferFlags):
        raise MalformedRequest("flags must be TransferFlags")
    resolving = bool(t.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING))
    _check_uuid(t.debit_account_id, "debit_account_id", optional=resolving)
    _check_uuid(t.credit_account_id, "credit_account_id", optional=resolving)
    if t.amount is not None or not resolving:
        _check_int(t.amount, "amount", 0, AMOUNT_LIMIT - 1)
    if (t.currency is not None or not resolving) and not isinstance(t.currency, str):
        raise MalformedRequest("currency must be a str")
    _check_int(t.code, "code", 0, CODE_MAX)
    _check_uuid(t.pending_id, "pending_id", optional=True)
    _check_int(t.timeout_s, "timeout_s", 0, TIMEOUT_S_MAX)
    _check_uuid(t.reverses_id, "reverses_id", optional=True)
    _check_metadata(t.metadata)


# -- group commit ---------------------------------------------------------------------


def _check_accounts(accounts: Sequence[Account]) -> None:
    _check_batch(accounts, Account, "accounts")
    for a in accounts:
        check_account(a)


def _check_transfers(transfers: Sequence[Transfer]) -> int:
    """Refuse a malformed batch; answer where its trailing open chain starts."""
    _check_batch(transfers, Transfer, "transfers")
    for t in transfers:
        check_transfer(t)
    return _trailing_open_chain(transfers)


class _Waiter:
    """A caller queued in a :class:`_Coalescer`: a thread that waits on ``wake``, or an
    event loop's task, called back (``settled``) once done."""

    __slots__ = ("done", "error", "settled", "wake")

    def __init__(self, lock: threading.Lock) -> None:
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Condition(lock)
        """Notified (under the group's lock) when this caller is done, or when it is first
        in the queue and a leader's place came free."""
        self.settled: Callable[[], None] | None = None
        """For a caller that waits on no thread: called (under the lock) once done."""

    def finish(self) -> None:
        """Tell the caller it is done (under the group's lock)."""
        if self.settled is None:
            self.wake.notify()
        else:
            self.settled()


W = TypeVar("W", bound=_Waiter)


class _Coalescer(Generic[W]):
    """Leaders and followers: a caller that finds fewer than ``leaders_max`` groups
    running becomes a leader: it takes what is queued (:meth:`_take`), runs it as one
    group (:meth:`_run_group`, which marks each caller done), and wakes their callers and
    the caller first in the queue, who leads the next group (the others sleep on: one
    wake-up per caller, not one per group)."""

    def __init__(self, *, leaders_max: int) -> None:
        self._lock = threading.Lock()
        self._queue: list[W] = []
        self._leaders = 0
        self._leaders_max = leaders_max
        self._writers: concurrent.futures.ThreadPoolExecutor | None = None
        """Threads that lead for callers that wait on no thread (:meth:`_hand_over`),
        started when first needed, at most ``leaders_max``."""

    def _take(self) -> list[W]:
        raise NotImplementedError

    def _run_group(self, group: list[W]) -> None:
        raise NotImplementedError

    def _lead_or_wait(self, waiter: W) -> None:
        """Return once ``waiter`` is done (by a group this caller led, or another's);
        its error, if any, is the caller's to raise."""
        with self._lock:
            self._queue.append(waiter)
            while not waiter.done:
                if self._leaders >= self._leaders_max or not self._queue:
                    waiter.wake.wait()
                    continue
                self._leaders += 1
                group = self._take()
                if self._queue and self._leaders < self._leaders_max:
                    self._queue[0].wake.notify()  # what did not fit: another leader's place
                self._lock.release()
                try:
                    self._run_group(group)
                finally:
                    self._lock.acquire()
                    self._leaders -= 1
                    self._finished(group)

    def _finished(self, group: list[W]) -> None:
        """Under the lock, a group done: tell its callers, and wake the caller first in
        the queue to lead the next (a thread that waits on no thread gets one)."""
        for done in group:
            done.finish()
        if not self._queue:
            return
        if self._queue[0].settled is None:
            self._queue[0].wake.notify()
        elif self._leaders < self._leaders_max:
            self._start_writer()

    def _hand_over(self, waiter: W) -> None:
        """Queue ``waiter``, whose caller waits on no thread (an event loop's task): a
        writer thread leads its group, and ``waiter.settled`` is called once it is done.
        No thread waits for it meanwhile."""
        with self._lock:
            self._queue.append(waiter)
            if self._leaders < self._leaders_max:
                self._start_writer()

    def _start_writer(self) -> None:
        """Under the lock: a writer thread takes a leader's place and leads groups until
        the queue is empty."""
        self._leaders += 1
        if self._writers is None:
            self._writers = concurrent.futures.ThreadPoolExecutor(
                self._leaders_max, thread_name_prefix="vledger-writer"
            )
        self._writers.submit(self._write_all)

    def stop_writers(self) -> None:
        """Let the writer threads end once their queue is done (the ledger is closing)."""
        with self._lock:
            writers, self._writers = self._writers, None
        if writers is not None:
            writers.shutdown(wait=False)

    def _write_all(self) -> None:
        with self._lock:
            try:
                while self._queue:
                    group = self._take()
                    self._lock.release()
                    try:
                        self._run_group(group)
                    finally:
                        self._lock.acquire()
                        for done in group:
                            done.finish()
            finally:
                self._leaders -= 1
                if self._queue:
                    self._finished([])


class _Request(_Waiter):
    __slots__ = ("results", "transfers")

    def __init__(self, transfers: Sequence[Transfer], lock: threading.Lock) -> None:
        super().__init__(lock)
        self.transfers = transfers
        self.results: list[Result] = []


class GroupCommit(_Coalescer[_Request]):
    """Coalesces concurrent callers' batches into one transaction.

    Leaders and followers (:class:`_Coalescer`): a leader takes every queued request (up
    to the batch limit), runs them as one batch and hands each its results. With two
    leaders, one group is locked and applied while the other waits for its commit. Requests are
    concatenated in arrival order, which answers exactly as running them one after
    another would: a chain never spans two requests (an open chain at the end of a
    request is answered ``linked_event_chain_open`` before it is queued).
    """

    def __init__(
        self, run: Callable[[Sequence[Transfer]], list[Result]], *, leaders_max: int = 1
    ) -> None:
        super().__init__(leaders_max=leaders_max)
        self._run = run

    def submit(self, transfers: Sequence[Transfer]) -> list[Result]:
        request = _Request(transfers, self._lock)
        self._lead_or_wait(request)
        if request.error is not None:
            raise request.error
        return request.results

    def _take(self) -> list[_Request]:
        group: list[_Request] = []
        size = 0
        while self._queue and (not group or size + len(self._queue[0].transfers) <= BATCH_SIZE_MAX):
            request = self._queue.pop(0)
            group.append(request)
            size += len(request.transfers)
        return group

    def _run_group(self, group: list[_Request]) -> None:
        if len(group) == 1:
            self._run_alone(group[0])
            return
        combined: list[Transfer] = []
        offsets: list[int] = []
        for request in group:
            offsets.append(len(combined))
            combined.extend(request.transfers)
        try:
            results = self._run(combined)
        except LedgerError:
            # One request's trouble must not fail the others: run each on its own.
            for request in group:
                self._run_alone(request)
            return
        except BaseException as exc:
            for request in group:
                request.error = exc
                request.done = True
            raise
        for request, offset in zip(group, offsets, strict=True):
            request.results = [
                Result(r.index - offset, r.status)
                for r in results[offset : offset + len(request.transfers)]
            ]
            request.done = True

    def _run_alone(self, request: _Request) -> None:
        try:
            request.results = self._run(request.transfers)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread, re-raised)
            request.error = exc
        request.done = True


GROUP_WORKS_MAX = 64
"""The most transactions :class:`GroupTransact` runs as one."""


class _Queued(_Waiter):
    __slots__ = ("context", "result", "work")

    def __init__(self, work: Callable[[Tx], object], lock: threading.Lock) -> None:
        super().__init__(lock)
        self.work = work
        self.context = contextvars.copy_context()
        """The caller's context: its work runs in it, on whichever thread leads."""
        self.result: object = None


class _GroupAborted(Exception):
    """A work of a group raised what is not a refusal: the group's transaction rolls
    back and each work runs alone."""


class _GroupRefused(Exception):
    """A work of a group run without savepoints raised a refusal: the group's
    transaction rolls back and the group runs again with a savepoint each."""


class GroupTransact(_Coalescer[_Queued]):
    """Runs concurrent callers' transactions as one database transaction: one commit and
    one disk flush for the group, as :class:`GroupCommit` does for batches of transfers.

    Leaders and followers (:class:`_Coalescer`). A leader opens one transaction and
    runs each queued work in it (in the work's own context, with its own :class:`Tx`
    and clock reading), in arrival order, which answers as running them one after
    another would. Most works refuse nothing, so the group first runs them plainly, one
    statement each for a one-statement work. A work that raises a refusal
    (:class:`LedgerError`) rolls that pass back, and the group runs again with a
    savepoint around each work: the refused work's savepoint is rolled back and its
    caller gets the error; the others commit. (A group with a refusal thus runs twice;
    the works are the kind the store already reruns after a deadlock.) A work that
    raises anything else (a database error, a bug) rolls the group back, and each work
    then runs in a transaction of its own, where the store's retries apply as usual.
    """

    def __init__(
        self, store: Store, make_tx: Callable[[StoreTx], Tx], *, leaders_max: int = 1
    ) -> None:
        super().__init__(leaders_max=leaders_max)
        self._store = store
        self._make_tx = make_tx

    def submit(self, work: Callable[[Tx], T]) -> T:
        queued = _Queued(work, self._lock)
        self._lead_or_wait(queued)
        if queued.error is not None:
            raise queued.error
        return queued.result  # type: ignore[return-value]

    async def submit_async(self, work: Callable[[Tx], T]) -> T:
        """:meth:`submit` for an event loop's task: a writer thread runs ``work`` in its
        group while the loop goes on; no thread waits for it."""
        loop = asyncio.get_running_loop()
        settled: asyncio.Future[None] = loop.create_future()
        queued = _Queued(work, self._lock)
        queued.settled = lambda: _settle_from(loop, settled)
        self._hand_over(queued)
        await asyncio.shield(settled)
        if queued.error is not None:
            raise queued.error
        return queued.result  # type: ignore[return-value]

    def _take(self) -> list[_Queued]:
        group = self._queue[:GROUP_WORKS_MAX]
        del self._queue[:GROUP_WORKS_MAX]
        return group

    def _run_group(self, group: list[_Queued]) -> None:
        if len(group) > 1:
            done = self._run_together(group, savepoints=False)
            if done is None:  # a refusal: again, each work in a savepoint
                done = self._run_together(group, savepoints=True)
            if done:
                return
        for queued in group:
            self._run_alone(queued)

    def _run_together(self, group: list[_Queued], *, savepoints: bool) -> bool | None:
        """Run the group as one transaction: True when it committed; None when a work
        refused and ``savepoints`` is off; False when it rolled back otherwise (a work
        raised what is no refusal, or the commit failed): each work then runs alone."""
        try:
            self._store.transaction(lambda inner: self._run_each(inner, group, savepoints))
        except _GroupRefused:
            return None
        except Exception:  # noqa: BLE001 (each runs alone, where its error reaches its caller)
            return False
        except BaseException as exc:
            for queued in group:
                queued.error, queued.done = exc, True
            raise
        for queued in group:
            queued.done = True
        return True

    def _run_each(self, inner: StoreTx, group: list[_Queued], savepoints: bool) -> None:
        run = _in_savepoint if savepoints else _in_open_tx
        for queued in group:
            queued.result, queued.error = None, None
            tx = self._make_tx(inner)
            try:
                queued.result = queued.context.run(run, self._store, tx, queued.work)
            except LedgerError as refused:
                if not savepoints:
                    raise _GroupRefused() from refused  # its writes are in the transaction
                queued.error = refused
            except Exception as exc:
                raise _GroupAborted() from exc  # the transaction rolls back: each alone

    def _run_alone(self, queued: _Queued) -> None:
        def run(inner: StoreTx) -> None:
            tx = self._make_tx(inner)
            queued.result = queued.context.run(_in_open_tx, self._store, tx, queued.work)

        try:
            self._store.transaction(run)
        except BaseException as exc:  # noqa: BLE001 (handed to the caller's thread, re-raised)
            queued.error = exc
        queued.done = True


def _settle_from(loop: asyncio.AbstractEventLoop, settled: asyncio.Future[None]) -> None:
    """From a writer thread: settle ``settled`` on its loop (gone quietly if the loop is
    closed: its caller is gone too)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: asyncio.Future[None]) -> None:
    if not settled.done():
        settled.set_result(None)


def _in_open_tx(store: Store, tx: Tx, work: Callable[[Tx], T]) -> T:
    """``work(tx)`` with ``tx`` as this context's open transaction on ``store`` (see the
    module: what runs in it joins it)."""
    token = _open_tx.set((store, tx))
    try:
        return work(tx)
    finally:
        _open_tx.reset(token)


def _in_savepoint(store: Store, tx: Tx, work: Callable[[Tx], T]) -> T:
    return tx.savepoint(lambda inner: _in_open_tx(store, inner, work))


def _trailing_open_chain(transfers: Sequence[Transfer]) -> int:
    """The index where a chain left open at the end of the batch starts (len if none)."""
    start = len(transfers)
    while start > 0 and transfers[start - 1].flags.value & LINKED:
        start -= 1
    return start


# -- the ledger -----------------------------------------------------------------------


_registry_lock = threading.Lock()
_registry: dict[str, tuple[Store, int]] = {}


def _acquire_store(url: str) -> Store:
    with _registry_lock:
        if url in _registry:
            found, count = _registry[url]
            _registry[url] = (found, count + 1)
            return found
        created = _new_store(url)
        _registry[url] = (created, 1)
        return created


def _release_store(url: str) -> None:
    with _registry_lock:
        found, count = _registry[url]
        if count > 1:
            _registry[url] = (found, count - 1)
            return
        del _registry[url]
    found.close()


SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql+psycopg://", "postgresql://", "postgres://")


def check_url(url: str) -> None:
    """Refuse a URL that names no engine we run on (before touching anything)."""
    if not isinstance(url, str) or not url.startswith((SQLITE_PREFIX, *POSTGRES_PREFIXES)):
        scheme = url.split(":", 1)[0] if isinstance(url, str) else type(url).__name__
        raise MalformedRequest(
            f"unsupported database URL {scheme!r}:"
            " use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
        )
    if url.startswith(SQLITE_PREFIX) and url.removeprefix(SQLITE_PREFIX) in ("", ":memory:"):
        raise MalformedRequest("SQLite needs a file path: sqlite:///village.db")


def _new_store(url: str) -> Store:
    check_url(url)
    if url.startswith(SQLITE_PREFIX):
        from ledger.core.sqlite_store import SqliteStore

        return SqliteStore(url.removeprefix(SQLITE_PREFIX).split("?", 1)[0])
    from ledger.core.postgres_store import PostgresStore

    return PostgresStore(url)


class Ledger:
    """Accounts and transfers on one database. Safe to share between threads."""

    def __init__(self, url: str, *, clock: Clock = system_clock) -> None:
        self.url = url
        self._clock = clock
        self._store = _acquire_store(url)
        self._closed = False
        self._group = GroupCommit(self._commit_transfers, leaders_max=self._store.writers_max)
        self._transacts = GroupTransact(
            self._store, self._new_tx, leaders_max=self._store.writers_max
        )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._store.dialect

    def _now_us(self) -> int:
        return to_us(self._clock())

    def close(self) -> None:
        """Give back the store (the last Ledger on a URL closes its connections)."""
        if not self._closed:
            self._closed = True
            self._transacts.stop_writers()
            _release_store(self.url)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("this Ledger is closed")

    # -- writes -----------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transact` on this database runs in this context (what this
        context writes now joins it)."""
        return self._joined() is not None

    def _joined(self) -> Tx | None:
        """The transaction this context is running on this ledger's database, if any."""
        found = _open_tx.get()
        return found[1] if found is not None and found[0] is self._store else None

    def create_accounts(self, accounts: Sequence[Account]) -> list[Result]:
        """One result per account, in order (``created``, ``exists``, ...)."""
        self._check_open()
        joined = self._joined()
        if joined is not None:
            return joined.create_accounts(accounts)
        _check_accounts(accounts)
        if not accounts:
            return []
        return self._store.create_accounts(accounts, self._now_us())

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[Result]:
        """One result per transfer, in order; answers once the batch is committed (inside
        a running :meth:`transact`, once that commits)."""
        self._check_open()
        joined = self._joined()
        if joined is not None:
            return joined.create_transfers(transfers)
        open_from = _check_transfers(transfers)
        results: list[Result] = []
        if open_from:
            results = self._group.submit(transfers[:open_from])
        return results + [
            Result(index, Status.LINKED_EVENT_CHAIN_OPEN)
            for index in range(open_from, len(transfers))
        ]

    def _commit_transfers(self, transfers: Sequence[Transfer]) -> list[Result]:
        return self._store.apply_transfers(transfers, self._now_us).results

    def transact(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one database transaction with the ledger (see
        :mod:`ledger.core.tx`): a flow's own rows and its transfers commit together, when
        ``work`` returns, and only then does this answer. ``work`` may run more than once.
        Called while another ``transact`` on this database runs in this context, ``work``
        runs in a savepoint of that one (and commits with it)."""
        self._check_open()
        joined = self._joined()
        if joined is not None:
            return joined.savepoint(work)

        return self._store.transaction(
            lambda inner: _in_open_tx(self._store, self._new_tx(inner), work)
        )

    def transact_grouped(self, work: Callable[[Tx], T]) -> T:
        """:meth:`transact`, with ``work`` joining concurrent callers' works in one database
        transaction (:class:`GroupTransact`): one commit, one disk flush for them all. A
        refusal ``work`` raises rolls back its own writes only. For short works that many
        callers run at once (the API's requests)."""
        self._check_open()
        joined = self._joined()
        if joined is not None:
            return joined.savepoint(work)
        return self._transacts.submit(work)

    async def transact_grouped_async(self, work: Callable[[Tx], T]) -> T:
        """:meth:`transact_grouped` for an event loop: ``work`` runs on one of the
        ledger's writer threads, in the group it joins, while the loop serves others (no
        thread waits on the database for the caller). ``work`` runs in a copy of the
        caller's context; what it writes through the ledger joins its transaction."""
        self._check_open()
        if self._joined() is not None:
            raise InvariantViolation("transact_grouped_async inside a running transaction")
        return await self._transacts.submit_async(work)

    async def loop_statement(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[Row] | None:
        """One flow statement (``:name`` parameters) alone, as its own transaction,
        awaited on the running event loop with no thread: on PostgreSQL in autocommit,
        one round trip on the loop's own connections. ``None`` when this ledger runs
        none there (SQLite's one writer; a store already serving another loop): nothing
        ran, use a transaction. Only for a statement whose outcome needs nothing else
        in its transaction (a compare-and-set on one row)."""
        self._check_open()
        if self._joined() is not None:
            raise InvariantViolation("loop_statement inside a running transaction")
        return await self._store.loop_statement(sql, params or {})

    def _new_tx(self, inner: StoreTx) -> Tx:
        return Tx(inner, self._now_us(), _check_accounts, _check_transfers)

    def expire_pending(self, now: datetime | None = None) -> int:
        """Void every hold whose timeout has passed at ``now``; how many were voided."""
        self._check_open()
        now_us = self._now_us() if now is None else to_us(now)
        total = 0
        while True:
            count = self._store.expire(now_us, store_rows.EXPIRE_BATCH_MAX)
            total += count
            if count == 0:
                return total

    # -- reads ------------------------------------------------------------------------

    def lookup_accounts(self, ids: Sequence[uuid.UUID]) -> list[Account]:
        """The accounts asked for, in order, unknown ids left out; expired holds excluded."""
        self._check_open()
        joined = self._joined()
        if joined is not None:
            return joined.lookup_accounts(ids)
        for i in ids:
            _check_uuid(i, "account id")
        if not ids:
            return []
        return self._store.lookup_accounts(ids, self._now_us())

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]:
        self._check_open()
        for i in ids:
            _check_uuid(i, "transfer id")
        if not ids:
            return []
        return self._store.lookup_transfers(ids)

    def account_transfers(
        self, account_id: uuid.UUID, *, after: uuid.UUID | None = None, limit: int = 100
    ) -> list[Transfer]:
        """Transfers touching the account, in the order applied, after the cursor."""
        self._check_open()
        _check_uuid(account_id, "account_id")
        _check_uuid(after, "after", optional=True)
        _check_int(limit, "limit", 1, CORE_PAGE_SIZE_MAX)
        return self._store.account_transfers(account_id, after, limit)

    def balance_at(self, account_id: uuid.UUID, at: datetime) -> Balance | None:
        """Posted counters as of ``at`` (inclusive); ``None`` for an unknown account."""
        self._check_open()
        _check_uuid(account_id, "account_id")
        if not isinstance(at, datetime):
            raise MalformedRequest("at must be a datetime")
        found = self._store.balance_at(account_id, to_us(at))
        if found is None:
            return None
        return Balance(account_id, found[0], found[1], at)

    def check_integrity(self) -> IntegrityReport:
        """Debits = credits per currency, counters = sums over transfers, holds, limits."""
        self._check_open()
        return IntegrityReport(self._store.integrity_problems())

    def now(self) -> datetime:
        """The ledger's clock."""
        return from_us(self._now_us())


def open_ledger(url: str, *, migrate: bool = False, clock: Clock | None = None) -> Ledger:
    """Open the ledger at ``url`` (``sqlite:///FILE`` or ``postgresql+psycopg://...``).

    ``migrate=True`` first brings the schema to the newest revision.
    """
    check_url(url)
    from ledger.core import migrations

    if migrate:
        try:
            migrations.upgrade(url)
        except LedgerError:
            raise
        except Exception as exc:
            raise StorageError(
                f"could not migrate {url.rsplit('@', maxsplit=1)[-1]}: {exc}"
            ) from exc
    led = Ledger(url, clock=clock or system_clock)
    try:
        led._store.check_schema(migrations.head_revision())
    except BaseException:
        led.close()
        raise
    return led


def transactional(work: Callable[Concatenate[Tx, P], T]) -> Callable[Concatenate[Ledger, P], T]:
    """The ledger-level twin of a flow's ``*_in`` function: ``pay_order =
    transactional(pay_order_in)`` runs ``pay_order_in(tx, ...)`` in one
    :meth:`Ledger.transact`, with the same keyword arguments and docstring, so that a flow
    writes each operation once and offers it both inside a caller's transaction and on
    its own."""

    @functools.wraps(work)
    def run(led: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return led.transact(lambda tx: work(tx, *args, **kwargs))

    return run
