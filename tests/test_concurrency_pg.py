"""Races on PostgreSQL: many writers, one account, and the money still adds up.

Every test runs its racers in several ways (``mode``):

- ``threads``: 8 threads, each with its own ``Ledger`` on the URL. Ledgers on one URL in
  one process share one store (its connections): this exercises that sharing; how many
  transactions the store runs at once is up to it.
- ``shared``: 8 threads sharing one ``Ledger``: the group-commit path, where concurrent
  calls are coalesced into one transaction.
- ``processes``: 8 processes (spawned), each with its own ``Ledger``: 8 connections whose
  transactions truly race inside PostgreSQL (``FOR UPDATE`` locks, unique indexes,
  deadlock and unique-race retries).
- ``sqlite-processes``: the same 8 processes on one SQLite file, for contrast (one
  writer at a time, ``BEGIN IMMEDIATE`` across processes).

Racers start together on a barrier (and meet on it again between rounds); afterwards
every answer is checked against the database: the limits held at every step of the
account's statement, counters equal the sums of what was answered ``created``, and
``check_integrity`` is clean.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg
import pytest

from ledger import (
    Account,
    AccountFlags,
    Ledger,
    Status,
    Transfer,
    TransferFlags,
    open_ledger,
)
from tests.conftest import pg_conninfo, require_postgres

S = Status
F = TransferFlags
KES = "KES"
UGX = "UGX"
CODE = 1
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS

RACERS = 8
BARRIER_TIMEOUT_S = 60.0
RACE_TIMEOUT_S = 120.0
HANG_DUMP_S = 60.0
MODES = ["threads", "shared", "processes", "sqlite-processes"]

T = TypeVar("T")


class Sync(Protocol):
    """What racers meet on: ``threading.Barrier`` or ``multiprocessing.Barrier``."""

    def wait(self, timeout: float | None = None) -> int: ...


Racer = Callable[..., T]
"""``racer(led, index, sync, *args)``: a module-level function (processes pickle it)."""


# -- the process pool (spawned once per module, only when a processes test runs) ---------

_worker_sync: Sync | None = None


def _init_worker(sync: Sync) -> None:
    global _worker_sync  # noqa: PLW0603 (one barrier per worker process, set once)
    _worker_sync = sync


def _in_worker(url: str, racer: Racer[T], index: int, args: tuple[Any, ...]) -> T:
    """Runs in a worker process: its own Ledger (its own connections) on ``url``."""
    assert _worker_sync is not None
    # A racer that hangs prints where every thread of its process is (to the test's stderr).
    faulthandler.dump_traceback_later(HANG_DUMP_S)
    led = open_ledger(url)
    try:
        return racer(led, index, _worker_sync, *args)
    finally:
        led.close()
        faulthandler.cancel_dump_traceback_later()


class Pool:
    """8 spawned workers sharing one cyclic barrier of 8 parties, started on first use.

    A worker blocked on the barrier takes no other task, so 8 tasks that each wait on the
    barrier land on 8 distinct workers. After a hang the workers are killed, and the next
    test starts fresh ones.
    """

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self.barrier = self._ctx.Barrier(RACERS)
        self._workers: Any = None  # multiprocessing.pool.Pool

    def workers(self) -> Any:
        if self._workers is None:
            self.barrier.reset()
            self._workers = self._ctx.Pool(
                RACERS, initializer=_init_worker, initargs=(self.barrier,)
            )
            warm = [self._workers.apply_async(_warm) for _ in range(RACERS)]
            assert len({r.get(timeout=RACE_TIMEOUT_S) for r in warm}) == RACERS
        return self._workers

    def kill(self) -> None:
        if self._workers is not None:
            self._workers.terminate()
            self._workers.join()
            self._workers = None


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Pool]:
    pool = Pool()
    try:
        yield pool
    finally:
        pool.kill()


def _warm() -> int:
    """Meet the other workers once (all 8 are up); answers this worker's pid."""
    assert _worker_sync is not None
    _worker_sync.wait(BARRIER_TIMEOUT_S)
    return os.getpid()


def _first_cause(errors: Sequence[BaseException]) -> BaseException | None:
    """The error that broke the race, rather than the barrier it broke for the others."""
    causes = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
    causes = causes or list(errors)
    return causes[0] if causes else None


def race(
    mode: str,
    url: str,
    racer: Racer[T],
    args: Sequence[tuple[Any, ...]],
    request: pytest.FixtureRequest,
) -> list[T]:
    """Run ``racer(led, i, sync, *args[i])`` for every ``i`` at once; their answers in order.

    An exception in any racer fails the test (with its traceback): nothing may leak.
    """
    assert len(args) == RACERS
    if mode.endswith("processes"):
        return _race_processes(request.getfixturevalue("process_pool"), url, racer, args)
    return _race_threads(mode, url, racer, args)


def _race_processes(
    pool: Pool, url: str, racer: Racer[T], args: Sequence[tuple[Any, ...]]
) -> list[T]:
    workers = pool.workers()
    pending = [workers.apply_async(_in_worker, (url, racer, i, a)) for i, a in enumerate(args)]
    deadline = time.monotonic() + RACE_TIMEOUT_S
    while not all(r.ready() for r in pending):
        if any(r.ready() and not r.successful() for r in pending):
            pool.barrier.abort()  # one racer failed: release the others now
        if time.monotonic() > deadline:
            activity = _server_activity(url)
            pool.kill()
            pytest.fail(f"a racer process hung; the server's sessions: {activity}")
        time.sleep(0.005)
    if pool.barrier.broken:
        pool.barrier.reset()
    errors: list[BaseException] = []
    answers: list[T] = []
    for r in pending:
        try:
            answers.append(r.get(0))
        except BaseException as exc:
            errors.append(exc)
    cause = _first_cause(errors)
    if cause is not None:
        raise cause
    return answers


def _server_activity(url: str) -> list[tuple[Any, ...]]:
    """What each session of the server is doing (to explain a hang)."""
    if not url.startswith("postgresql"):
        return []
    with psycopg.connect(pg_conninfo(url), autocommit=True) as conn:
        return conn.execute(
            "SELECT pid, state, wait_event, pg_blocking_pids(pid), backend_xid,"
            " left(regexp_replace(query, '\\s+', ' ', 'g'), 40)"
            " FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()


def _race_threads(mode: str, url: str, racer: Racer[T], args: Sequence[tuple[Any, ...]]) -> list[T]:
    barrier = threading.Barrier(RACERS)
    shared = open_ledger(url) if mode == "shared" else None
    ledgers = [shared or open_ledger(url) for _ in range(RACERS)]
    answers: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            answers[i] = racer(ledgers[i], i, barrier, *args[i])
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,), name=f"racer-{i}") for i in range(RACERS)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + RACE_TIMEOUT_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "a racer hung"
    finally:
        for led in {id(led): led for led in ledgers}.values():
            led.close()
    cause = _first_cause(errors)
    if cause is not None:
        raise cause
    return [answers[i] for i in range(RACERS)]


# -- setup and checks ---------------------------------------------------------------------


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh PostgreSQL schema; a fresh SQLite file for the ``sqlite-processes`` mode."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("mode") == "sqlite-processes":
        return f"sqlite:///{tmp_path}/race.db"
    require_postgres()
    pg_url: str = request.getfixturevalue("pg_url")
    return pg_url


@pytest.fixture
def led(url: str) -> Iterator[Ledger]:
    ledger = open_ledger(url, migrate=True)
    try:
        yield ledger
    finally:
        ledger.close()


def open_accounts(
    led: Ledger, count: int, flags: AccountFlags = AccountFlags(0), currency: str = KES
) -> list[uuid.UUID]:
    ids = [new_id() for _ in range(count)]
    results = led.create_accounts([Account(i, currency, CODE, flags) for i in ids])
    assert [r.status for r in results] == [S.CREATED] * count
    return ids


def fund(led: Ledger, source: uuid.UUID, targets: Sequence[uuid.UUID], amount: int) -> None:
    currency = led.lookup_accounts([source])[0].currency
    results = led.create_transfers(
        [Transfer(new_id(), source, t, amount, currency, CODE) for t in targets]
    )
    assert {r.status for r in results} == {S.CREATED}


def account(led: Ledger, account_id: uuid.UUID) -> Account:
    (found,) = led.lookup_accounts([account_id])
    return found


def statement(led: Ledger, account_id: uuid.UUID) -> list[Transfer]:
    """Every transfer touching the account, in the order applied."""
    out: list[Transfer] = []
    after: uuid.UUID | None = None
    while True:
        page = led.account_transfers(account_id, after=after, limit=1000)
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1].id


def replay_debits(led: Ledger, account_id: uuid.UUID) -> int:
    """Replay the account's statement; assert debits (pending + posted) never passed its
    credits at any step. Answers the most it ever had out."""
    transfers = statement(led, account_id)
    holds = {t.id: t for t in transfers if t.flags & F.PENDING}
    pending = posted = credits = peak = 0
    for t in transfers:
        assert t.amount is not None
        if t.credit_account_id == account_id:
            assert not t.flags & (F.PENDING | F.POST_PENDING | F.VOID_PENDING)
            credits += t.amount
            continue
        if t.flags & F.PENDING:
            pending += t.amount
        elif t.flags & (F.POST_PENDING | F.VOID_PENDING):
            assert t.pending_id is not None
            hold = holds[t.pending_id]
            assert hold.amount is not None
            pending -= hold.amount
            if t.flags & F.POST_PENDING:
                posted += t.amount
        else:
            posted += t.amount
        assert pending >= 0
        assert pending + posted <= credits, f"limit passed at {t.id}"
        peak = max(peak, pending + posted)
    return peak


def assert_integrity(led: Ledger) -> None:
    report = led.check_integrity()
    assert report.ok, report.problems


# -- 1 and 2: overspending one limited account ---------------------------------------------

FUNDING = 5_000
SPEND_CALLS = 40
SPEND_AMOUNT_MAX = 40


def _spend(
    led: Ledger,
    index: int,
    sync: Sync,
    source: uuid.UUID,
    sink: uuid.UUID,
    flags: TransferFlags,
    seed: int,
) -> list[tuple[uuid.UUID, int, Status]]:
    """Many transfers (or holds) out of ``source``, batches of 1 to 3."""
    rng = random.Random(seed)
    out: list[tuple[uuid.UUID, int, Status]] = []
    sync.wait(BARRIER_TIMEOUT_S)
    for _ in range(SPEND_CALLS):
        batch = [
            Transfer(new_id(), source, sink, rng.randint(1, SPEND_AMOUNT_MAX), KES, CODE, flags)
            for _ in range(rng.choice((1, 1, 1, 2, 3)))
        ]
        results = led.create_transfers(batch)
        assert [r.index for r in results] == list(range(len(batch)))
        out.extend((t.id, t.amount or 0, r.status) for t, r in zip(batch, results, strict=True))
    return out


@pytest.mark.parametrize("flags", [F(0), F.PENDING], ids=["posted", "pending"])
@pytest.mark.parametrize("mode", MODES)
def test_racers_never_overspend_a_limited_account(
    led: Ledger, url: str, mode: str, flags: TransferFlags, request: pytest.FixtureRequest
) -> None:
    bank, sink = open_accounts(led, 2)
    (source,) = open_accounts(led, 1, LIMITED)
    fund(led, bank, [source], FUNDING)
    seed = random.randrange(2**32)

    answers = race(
        mode, url, _spend, [(source, sink, flags, seed + i) for i in range(RACERS)], request
    )

    results = [r for answer in answers for r in answer]
    statuses = Counter(status for _, _, status in results)
    assert set(statuses) <= {S.CREATED, S.EXCEEDS_CREDITS}, statuses
    created = [(tid, amount) for tid, amount, status in results if status is S.CREATED]
    refused = [amount for _, amount, status in results if status is not S.CREATED]
    spent = sum(amount for _, amount in created)
    assert created and refused, f"the race never reached the limit (seed {seed})"
    assert len(created) <= FUNDING
    assert spent <= FUNDING
    # Only debits happen during the race, so the balance never grows: a refusal of `a`
    # means the balance was below `a` then, and stays below it to the end.
    left = FUNDING - spent
    assert left < min(refused), f"a refusal was spurious (seed {seed})"

    src = account(led, source)
    held = src.debits_pending if flags & F.PENDING else src.debits_posted
    assert (src.credits_posted, held) == (FUNDING, spent)
    assert src.debits_pending + src.debits_posted == spent
    assert src.credits_posted - src.debits_posted - src.debits_pending == left >= 0
    dst = account(led, sink)
    assert dst.credits_pending + dst.credits_posted == spent
    assert replay_debits(led, source) == spent
    found = led.lookup_transfers([tid for tid, _ in created])
    assert [(t.id, t.amount) for t in found] == created
    assert_integrity(led)

    # Exactly what was left can still go out, and not one unit more.
    last = led.create_transfers(
        [
            Transfer(new_id(), source, sink, left, KES, CODE, flags),
            Transfer(new_id(), source, sink, 1, KES, CODE, flags),
        ]
        if left
        else [Transfer(new_id(), source, sink, 1, KES, CODE, flags)]
    )
    assert [r.status for r in last] == [S.CREATED] * (1 if left else 0) + [S.EXCEEDS_CREDITS]


HOLD_CALLS = 40


def _hold_and_settle(
    led: Ledger, index: int, sync: Sync, source: uuid.UUID, sink: uuid.UUID, seed: int
) -> list[tuple[str, uuid.UUID, int | None, Status]]:
    """Open holds out of ``source`` and post or void some of one's own as one goes."""
    rng = random.Random(seed)
    mine: list[tuple[uuid.UUID, int]] = []
    out: list[tuple[str, uuid.UUID, int | None, Status]] = []
    sync.wait(BARRIER_TIMEOUT_S)
    for _ in range(HOLD_CALLS):
        if mine and rng.random() < 0.4:
            hold_id, amount = mine.pop(rng.randrange(len(mine)))
            kind = rng.choice(("post", "post", "void"))
            posted = rng.choice((None, amount, rng.randint(1, amount)))
            t = Transfer(
                new_id(),
                None,
                None,
                posted if kind == "post" else None,
                None,
                CODE,
                F.POST_PENDING if kind == "post" else F.VOID_PENDING,
                pending_id=hold_id,
            )
            (result,) = led.create_transfers([t])
            out.append((kind, hold_id, posted if posted is not None else amount, result.status))
            continue
        amount = rng.randint(1, 4 * SPEND_AMOUNT_MAX)
        t = Transfer(new_id(), source, sink, amount, KES, CODE, F.PENDING)
        (result,) = led.create_transfers([t])
        if result.status is S.CREATED:
            mine.append((t.id, amount))
        out.append(("hold", t.id, amount, result.status))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_holds_posts_and_voids_race_within_the_limit(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    """Holds count against the limit; voids give room back; the limit holds at every step."""
    bank, sink = open_accounts(led, 2)
    (source,) = open_accounts(led, 1, LIMITED)
    fund(led, bank, [source], FUNDING)
    seed = random.randrange(2**32)

    answers = race(
        mode, url, _hold_and_settle, [(source, sink, seed + i) for i in range(RACERS)], request
    )

    results = [r for answer in answers for r in answer]
    kinds = Counter((kind, status) for kind, _, _, status in results)
    assert set(kinds) <= {
        ("hold", S.CREATED),
        ("hold", S.EXCEEDS_CREDITS),
        ("post", S.CREATED),
        ("void", S.CREATED),
    }, kinds
    assert kinds["hold", S.EXCEEDS_CREDITS] and kinds["void", S.CREATED], kinds
    held = {tid: amount for kind, tid, amount, st in results if kind == "hold" and st == "created"}
    posted = sum(a or 0 for kind, _, a, _ in results if kind == "post")
    settled = {tid for kind, tid, _, _ in results if kind != "hold"}
    still_open = sum(amount or 0 for tid, amount in held.items() if tid not in settled)

    src = account(led, source)
    assert (src.debits_pending, src.debits_posted, src.credits_posted) == (
        still_open,
        posted,
        FUNDING,
    )
    assert src.debits_pending + src.debits_posted <= FUNDING
    dst = account(led, sink)
    assert (dst.credits_pending, dst.credits_posted) == (still_open, posted)
    assert replay_debits(led, source) <= FUNDING
    assert_integrity(led)


# -- 3: many resolutions of one hold, many submissions of one id ---------------------------

HOLDS = 20


def _resolve_holds(
    led: Ledger, index: int, sync: Sync, holds: list[tuple[uuid.UUID, int]], seed: int
) -> list[tuple[uuid.UUID, TransferFlags, int, Status]]:
    """Round ``r``: everybody posts or voids hold ``r`` at once, each with its own id."""
    rng = random.Random(seed)
    out: list[tuple[uuid.UUID, TransferFlags, int, Status]] = []
    for hold_id, amount in holds:
        kind = (
            (F.POST_PENDING, F.VOID_PENDING)[index]
            if index < 2
            else rng.choice((F.POST_PENDING, F.VOID_PENDING))
        )
        asked = rng.choice((None, amount, amount - rng.randint(0, amount - 1)))
        t = Transfer(
            new_id(),
            None,
            None,
            asked if kind is F.POST_PENDING else None,
            None,
            CODE,
            kind,
            pending_id=hold_id,
        )
        sync.wait(BARRIER_TIMEOUT_S)
        (result,) = led.create_transfers([t])
        effect = (asked if asked is not None else amount) if kind is F.POST_PENDING else 0
        out.append((t.id, kind, effect, result.status))
    return out


@pytest.mark.parametrize("mode", MODES)
def test_one_hold_many_posts_and_voids_exactly_one_wins(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    bank, sink = open_accounts(led, 2)
    (source,) = open_accounts(led, 1, LIMITED)
    fund(led, bank, [source], 100 * HOLDS * 2)
    holds = [(new_id(), 100 + i) for i in range(HOLDS)]
    results = led.create_transfers(
        [Transfer(h, source, sink, a, KES, CODE, F.PENDING) for h, a in holds]
    )
    assert {r.status for r in results} == {S.CREATED}
    seed = random.randrange(2**32)

    answers = race(mode, url, _resolve_holds, [(holds, seed + i) for i in range(RACERS)], request)

    posted_total = 0
    losers: list[uuid.UUID] = []
    for round_, (hold_id, amount) in enumerate(holds):
        entries = [answer[round_] for answer in answers]
        winners = [e for e in entries if e[3] is S.CREATED]
        assert len(winners) == 1, (round_, entries)
        win_id, win_kind, effect, _ = winners[0]
        lost = (
            S.PENDING_TRANSFER_ALREADY_POSTED
            if win_kind is F.POST_PENDING
            else S.PENDING_TRANSFER_ALREADY_VOIDED
        )
        assert [e[3] for e in entries if e is not winners[0]] == [lost] * (RACERS - 1)
        losers.extend(e[0] for e in entries if e is not winners[0])
        (stored,) = led.lookup_transfers([win_id])
        assert (stored.pending_id, stored.flags, stored.debit_account_id) == (
            hold_id,
            win_kind,
            source,
        )
        assert stored.amount == (effect if win_kind is F.POST_PENDING else amount)
        posted_total += effect
    assert led.lookup_transfers(losers) == []
    src = account(led, source)
    assert (src.debits_pending, src.debits_posted) == (0, posted_total)
    dst = account(led, sink)
    assert (dst.credits_pending, dst.credits_posted) == (0, posted_total)
    assert replay_debits(led, source) <= src.credits_posted
    assert_integrity(led)


ROUND_KINDS = (
    "plain",
    "hold",
    "chain",
    "refused",
    "unknown_account",
    "post",
    "many",
    "many_unknown",
)
MANY = 100
"""Transfers in the ``many`` rounds: each racer submits them in its own order."""


def _submit_same(
    led: Ledger, index: int, sync: Sync, rounds: list[tuple[list[Transfer], bool]], seed: int
) -> list[list[Status]]:
    """Round ``r``: everybody submits the same batch at once (shuffled, if so marked:
    the statuses are answered in the batch's own order all the same)."""
    rng = random.Random(seed)
    out: list[list[Status]] = []
    for batch, shuffle in rounds:
        order = rng.sample(range(len(batch)), len(batch)) if shuffle else list(range(len(batch)))
        sync.wait(BARRIER_TIMEOUT_S)
        results = led.create_transfers([batch[i] for i in order])
        statuses = [S.CREATED] * len(batch)
        for position, result in zip(order, results, strict=True):
            statuses[position] = result.status
        out.append(statuses)
    return out


@pytest.mark.parametrize("mode", MODES)
def test_the_same_transfer_id_raced_is_created_once(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    """8 racers submit the same ids at once: one creates (or spends) them, the rest get
    ``exists`` (or ``id_already_failed``). Transfers naming only unknown accounts lock no
    account row, so those transactions meet on the ids' unique-index entries instead:
    ``unique_violation``, which must be retried inside, never leaked. The ``many``
    batches come in a different order per racer (their results still answer in order)."""
    bank, sink, other = open_accounts(led, 3)
    (source,) = open_accounts(led, 1, LIMITED)
    sinks = open_accounts(led, 10)
    fund(led, bank, [source], 10_000_000)
    hold_ids = [new_id() for _ in range(4)]
    results = led.create_transfers(
        [Transfer(h, source, sink, 500, KES, CODE, F.PENDING) for h in hold_ids]
    )
    assert {r.status for r in results} == {S.CREATED}
    rounds: list[tuple[list[Transfer], bool]] = []
    expected: list[tuple[Status, Status]] = []
    debited = 0
    for round_ in range(3 * len(ROUND_KINDS)):
        kind = ROUND_KINDS[round_ % len(ROUND_KINDS)]
        amount = 100 + round_
        first, again = S.CREATED, S.EXISTS
        if kind == "plain":
            batch = [Transfer(new_id(), source, sink, amount, KES, CODE)]
            debited += amount
        elif kind == "hold":
            batch = [Transfer(new_id(), source, sink, amount, KES, CODE, F.PENDING)]
        elif kind == "chain":
            batch = [
                Transfer(new_id(), source, sink, amount, KES, CODE, F.LINKED),
                Transfer(new_id(), sink, other, amount, KES, CODE),
            ]
            debited += amount
        elif kind == "refused":
            batch = [Transfer(new_id(), source, sink, 10**12, KES, CODE)]
            first, again = S.EXCEEDS_CREDITS, S.ID_ALREADY_FAILED
        elif kind == "unknown_account":
            batch = [Transfer(new_id(), new_id(), new_id(), amount, KES, CODE)]
            first, again = S.DEBIT_ACCOUNT_NOT_FOUND, S.ID_ALREADY_FAILED
        elif kind == "post":
            (hold_id,) = hold_ids[-1:]
            hold_ids.pop()
            batch = [
                Transfer(new_id(), None, None, None, None, CODE, F.POST_PENDING, pending_id=hold_id)
            ]
            debited += 500
        elif kind == "many":
            batch = [
                Transfer(new_id(), source, sinks[i % len(sinks)], amount + i, KES, CODE)
                for i in range(MANY)
            ]
            debited += sum(t.amount or 0 for t in batch)
        else:
            batch = [Transfer(new_id(), new_id(), new_id(), amount, KES, CODE) for _ in range(MANY)]
            first, again = S.DEBIT_ACCOUNT_NOT_FOUND, S.ID_ALREADY_FAILED
        rounds.append((batch, kind == "many"))
        expected.append((first, again))
    seed = random.randrange(2**32)

    answers = race(mode, url, _submit_same, [(rounds, seed + i) for i in range(RACERS)], request)

    for round_, (first, again) in enumerate(expected):
        size = len(rounds[round_][0])
        got = sorted((answer[round_] for answer in answers), key=lambda s: s[0] != first)
        want = [[first] * size] + [[again] * size] * (RACERS - 1)
        assert got == want, (round_, rounds[round_], got)
    created = [
        t.id
        for (batch, _), (first, _) in zip(rounds, expected, strict=True)
        for t in batch
        if first is S.CREATED
    ]
    assert len(led.lookup_transfers(created)) == len(created)
    spent = [
        t.id
        for (batch, _), (first, _) in zip(rounds, expected, strict=True)
        for t in batch
        if first is not S.CREATED
    ]
    assert led.lookup_transfers(spent) == []
    src = account(led, source)
    assert src.debits_posted == debited
    assert_integrity(led)


def _create_same_accounts(
    led: Ledger, index: int, sync: Sync, rounds: list[list[Account]]
) -> list[list[Status]]:
    """Round ``r``: everybody creates the accounts of round ``r`` at once."""
    out: list[list[Status]] = []
    for accounts in rounds:
        sync.wait(BARRIER_TIMEOUT_S)
        out.append([r.status for r in led.create_accounts(accounts)])
    return out


@pytest.mark.parametrize("mode", MODES)
def test_one_id_with_different_payloads_raced(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    """Each racer sends the same ids with its own accounts (so no two lock the same
    account row and only the unique index on the id decides): one wins, the others read
    its transfer back as ``exists_with_different_debit_account_id``. Likewise accounts:
    one creates the id, the others get ``exists`` or ``exists_with_different_code``."""
    bank = open_accounts(led, 1)[0]
    wallets = open_accounts(led, RACERS, LIMITED)
    sinks = open_accounts(led, RACERS)
    fund(led, bank, wallets, 1_000_000)
    rounds = 12
    ids = [[new_id() for _ in range(3)] for _ in range(rounds)]
    per_racer = [
        [
            ([Transfer(tid, wallets[i], sinks[i], 10 + r, KES, CODE) for tid in ids[r]], False)
            for r in range(rounds)
        ]
        for i in range(RACERS)
    ]
    answers = race(mode, url, _submit_same, [(per_racer[i], i) for i in range(RACERS)], request)
    debited = [0] * RACERS
    for r in range(rounds):
        won = [i for i in range(RACERS) if answers[i][r] == [S.CREATED] * 3]
        assert len(won) == 1, [answers[i][r] for i in range(RACERS)]
        (winner,) = won
        others = [answers[i][r] for i in range(RACERS) if i != winner]
        assert others == [[S.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID] * 3] * (RACERS - 1)
        stored = led.lookup_transfers(ids[r])
        assert {(t.debit_account_id, t.credit_account_id) for t in stored} == {
            (wallets[winner], sinks[winner])
        }
        debited[winner] += 3 * (10 + r)
    found = led.lookup_accounts(wallets)
    assert [a.debits_posted for a in found] == debited
    assert_integrity(led)

    account_rounds = [[new_id() for _ in range(5)] for _ in range(rounds)]
    answers_accounts = race(
        mode,
        url,
        _create_same_accounts,
        [
            ([[Account(a, KES, 1 + i % 2) for a in round_ids] for round_ids in account_rounds],)
            for i in range(RACERS)
        ],
        request,
    )
    for r, round_ids in enumerate(account_rounds):
        got = [answers_accounts[i][r] for i in range(RACERS)]
        won = [i for i, statuses in enumerate(got) if statuses == [S.CREATED] * 5]
        assert len(won) == 1, got
        for i, statuses in enumerate(got):
            if i != won[0]:
                same_code = i % 2 == won[0] % 2
                assert statuses == [S.EXISTS if same_code else S.EXISTS_WITH_DIFFERENT_CODE] * 5
        assert {a.code for a in led.lookup_accounts(round_ids)} == {1 + won[0] % 2}


# -- 4: one hot escrow account, W1-like --------------------------------------------------

HOT_CALLS = 200
WALLETS = 12
WALLET_FUNDING = 5_000


def _hot(
    led: Ledger,
    index: int,
    sync: Sync,
    books: dict[str, tuple[uuid.UUID, list[uuid.UUID]]],
    seed: int,
) -> list[tuple[uuid.UUID, uuid.UUID, int, Status]]:
    """Single transfers: into the escrow, out of it, and wallet to wallet, two currencies."""
    rng = random.Random(seed)
    out: list[tuple[uuid.UUID, uuid.UUID, int, Status]] = []
    sync.wait(BARRIER_TIMEOUT_S)
    for _ in range(HOT_CALLS):
        currency = rng.choice(sorted(books))
        escrow, wallets = books[currency]
        a, b = rng.sample(wallets, 2)
        debit, credit = rng.choice(((a, escrow), (a, escrow), (escrow, a), (escrow, a), (a, b)))
        amount = rng.randint(1, 1_000)
        (result,) = led.create_transfers(
            [Transfer(new_id(), debit, credit, amount, currency, CODE)]
        )
        out.append((debit, credit, amount, result.status))
    return out


@pytest.mark.parametrize("mode", ["shared", "processes", "sqlite-processes"])
def test_hot_escrow_account_under_load(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    books: dict[str, tuple[uuid.UUID, list[uuid.UUID]]] = {}
    balances: dict[uuid.UUID, int] = defaultdict(int)
    for currency in (KES, UGX):
        (bank,) = open_accounts(led, 1, currency=currency)
        (escrow,) = open_accounts(led, 1, LIMITED, currency=currency)
        wallets = open_accounts(led, WALLETS, LIMITED, currency=currency)
        fund(led, bank, wallets, WALLET_FUNDING)
        books[currency] = (escrow, wallets)
        balances.update(dict.fromkeys(wallets, WALLET_FUNDING))
        balances[escrow] = 0
    seed = random.randrange(2**32)

    answers = race(mode, url, _hot, [(books, seed + i) for i in range(RACERS)], request)

    results = [r for answer in answers for r in answer]
    assert len(results) == RACERS * HOT_CALLS
    statuses = Counter(status for *_, status in results)
    assert set(statuses) <= {S.CREATED, S.EXCEEDS_CREDITS}, statuses
    for debit, credit, amount, status in results:
        if status is S.CREATED:
            balances[debit] -= amount
            balances[credit] += amount
    for currency, (escrow, wallets) in books.items():
        found = led.lookup_accounts([escrow, *wallets])
        assert {a.id: a.credits_posted - a.debits_posted for a in found} == {
            a.id: balances[a.id] for a in found
        }
        assert all(a.debits_pending == a.credits_pending == 0 for a in found)
        assert min(balances[a.id] for a in found) >= 0, "a wallet or the escrow went negative"
        assert sum(balances[a.id] for a in found) == WALLETS * WALLET_FUNDING, currency
        escrow_moves = [r for r in results if escrow in r[:2] and r[3] is S.CREATED]
        assert len(escrow_moves) > HOT_CALLS, "the escrow was not hot"
    assert_integrity(led)


# -- expiry racing posts ------------------------------------------------------------------

EXPIRING = 40


def _expire_or_post(
    led: Ledger, index: int, sync: Sync, holds: list[uuid.UUID], at_s: float, seed: int
) -> tuple[int, list[tuple[uuid.UUID, uuid.UUID, Status]]]:
    """Even racers post every hold (each with its own ids); odd ones expire them all."""
    rng = random.Random(seed)
    order = rng.sample(holds, len(holds))
    sync.wait(BARRIER_TIMEOUT_S)
    if index % 2:
        return led.expire_pending(led.now() + timedelta(seconds=at_s)), []
    posts: list[tuple[uuid.UUID, uuid.UUID, Status]] = []
    for hold_id in order:
        t = Transfer(new_id(), None, None, None, None, CODE, F.POST_PENDING, pending_id=hold_id)
        (result,) = led.create_transfers([t])
        posts.append((hold_id, t.id, result.status))
    return 0, posts


@pytest.mark.parametrize("mode", MODES)
def test_expiry_racing_posts_resolves_each_hold_once(
    led: Ledger, url: str, mode: str, request: pytest.FixtureRequest
) -> None:
    bank, sink = open_accounts(led, 2)
    sources = open_accounts(led, 3, LIMITED)
    fund(led, bank, sources, 1_000_000)
    holds = [new_id() for _ in range(EXPIRING)]
    results = led.create_transfers(
        [
            Transfer(h, sources[i % 3], sink, 10 + i, KES, CODE, F.PENDING, timeout_s=3600)
            for i, h in enumerate(holds)
        ]
    )
    assert {r.status for r in results} == {S.CREATED}
    seed = random.randrange(2**32)

    answers = race(
        mode, url, _expire_or_post, [(holds, 7200.0, seed + i) for i in range(RACERS)], request
    )

    expired_count = sum(count for count, _ in answers)
    posts = [p for _, answer in answers for p in answer]
    assert {status for *_, status in posts} <= {
        S.CREATED,
        S.PENDING_TRANSFER_ALREADY_POSTED,
        S.PENDING_TRANSFER_EXPIRED,
    }
    posted = {hold for hold, _, status in posts if status is S.CREATED}
    assert len([p for p in posts if p[2] is S.CREATED]) == len(posted)
    assert expired_count == EXPIRING - len(posted)
    resolutions = {
        t.pending_id: t
        for src in sources
        for t in statement(led, src)
        if t.flags & (F.POST_PENDING | F.VOID_PENDING)
    }
    assert set(resolutions) == set(holds)
    for hold_id, t in resolutions.items():
        assert (t.flags == F.POST_PENDING) == (hold_id in posted)
    assert led.expire_pending(led.now() + timedelta(hours=2)) == 0
    found = led.lookup_accounts([*sources, sink])
    assert all(a.debits_pending == a.credits_pending == 0 for a in found)
    assert_integrity(led)


# -- a writer that races the ledger on an account id, step by step ------------------------


@pytest.mark.parametrize("what", ["account", "spent transfer id"])
def test_racing_another_writer_on_one_id_keeps_the_ledger_working(led: Ledger, what: str) -> None:
    """Another writer creates the same account id (or spends the same transfer id) at the
    same moment, again and again: the ledger's transaction waits on the key, gets
    ``unique_violation``, retries and answers ``exists`` (``id_already_failed``), every
    time; and the ledger still takes transfers afterwards.

    The other writer is a raw connection that inserts the row and commits 0.1 s later, so
    the race is the same on every run (no timing luck involved).
    """
    ids: list[uuid.UUID] = []
    answers: list[str] = []
    for _ in range(8):
        ids.append(new_id())
        with psycopg.connect(pg_conninfo(led.url)) as other:
            if what == "account":
                other.execute(
                    "INSERT INTO accounts (id, currency, code, flags, created_at_us,"
                    " timestamp_us) VALUES (%s, 'KES', 1, 0, 0, 0)",
                    (ids[-1],),
                )
            else:
                other.execute(
                    "INSERT INTO transfer_failures (id, status, created_at_us)"
                    " VALUES (%s, 'debit_account_not_found', 0)",
                    (ids[-1],),
                )
            commit = threading.Timer(0.1, other.commit)
            commit.start()
            try:
                if what == "account":
                    result = led.create_accounts([Account(ids[-1], KES, 1)])
                else:  # unknown accounts: the transaction locks no account row
                    unknown = Transfer(ids[-1], new_id(), new_id(), 1, KES, CODE)
                    result = led.create_transfers([unknown])
                answers.append(result[0].status)
            except Exception as exc:
                answers.append(f"{type(exc).__name__}: {exc}")
            commit.join()
    assert answers == [S.EXISTS if what == "account" else S.ID_ALREADY_FAILED] * 8
    bank, sink = open_accounts(led, 2)
    results = led.create_transfers([Transfer(new_id(), bank, sink, 1, KES, CODE)])
    assert [r.status for r in results] == [S.CREATED]
    assert_integrity(led)


def test_stress_same_spent_ids_in_different_orders(
    led: Ledger, url: str, request: pytest.FixtureRequest
) -> None:
    """8 processes spend the same 100 ids (unknown accounts: no row locks), each in its own
    order, 40 rounds. Their inserts into ``transfer_failures`` can wait on each other in a
    cycle: PostgreSQL breaks one deadlock per ``deadlock_timeout`` (1 s), and the victims'
    quick retries can form new cycles. Each round must still end, correctly, in moments
    (spent ids are inserted in id order, and retries back off at random)."""
    rounds = [
        ([Transfer(new_id(), new_id(), new_id(), 5, KES, CODE) for _ in range(MANY)], True)
        for _ in range(40)
    ]
    started = time.monotonic()
    answers = race("processes", url, _submit_same, [(rounds, i) for i in range(RACERS)], request)
    for round_ in range(len(rounds)):
        got = sorted(
            (answer[round_] for answer in answers),
            key=lambda s: s[0] is not S.DEBIT_ACCOUNT_NOT_FOUND,
        )
        assert got == [[S.DEBIT_ACCOUNT_NOT_FOUND] * MANY] + [[S.ID_ALREADY_FAILED] * MANY] * (
            RACERS - 1
        )
    assert time.monotonic() - started < 60
