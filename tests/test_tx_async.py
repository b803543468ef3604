"""``Ledger.transact_grouped_async``: an event loop's callers hand their transactions to
the ledger's writer threads (issue 17, item 2), on both engines. They group as thread
callers do, a refusal stays its own, a bug fails only its caller, the loop keeps
running while the database works, and no thread of the caller's waits meanwhile."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from ledger import Ledger, Status, Transfer, open_ledger
from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx
from ledger.flows import events
from ledger.flows.errors import Refused
from tests.test_tx import (
    KES,
    CountingTransactions,
    assert_refused_left_nothing,
    new_id,
    open_pair,
)

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


def test_async_callers_group_keep_their_refusals_and_leave_the_loop_free(
    ledger: Ledger,
) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    callers = 16
    transfers = [Transfer(new_id(), funding, wallet, 10 + i, KES, 1) for i in range(callers)]
    refused = {i for i in range(callers) if i % 5 == 3}
    ran_on: dict[int, tuple[str, str]] = {}

    def work_of(i: int) -> object:
        def work(tx: Tx) -> list[Status]:
            ran_on[i] = (threading.current_thread().name, WHO.get())
            if i == 0:
                time.sleep(0.3)  # on a writer thread: the others queue meanwhile
            done = [r.status for r in ledger.create_transfers([transfers[i]])]
            events.emit(tx, "test.async", {"i": i}, subject_id=transfers[i].id)
            if i in refused:
                raise Refused("test_refusal", f"caller {i} changed its mind")
            return done

        return work

    async def call(i: int) -> object:
        WHO.set(f"caller {i}")
        try:
            return await ledger.transact_grouped_async(work_of(i))
        except Refused as exc:
            return exc.code

    async def main() -> tuple[list[object], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        first = asyncio.create_task(call(0))
        await asyncio.sleep(0.05)
        answers = await asyncio.gather(first, *(call(i) for i in range(1, callers)))
        ticker.cancel()
        return answers, ticks

    counting = CountingTransactions(ledger)
    try:
        answers, ticks = asyncio.run(main())
    finally:
        counting.remove()
    assert answers == ["test_refusal" if i in refused else [Status.CREATED] for i in range(callers)]
    assert counting.count < callers  # grouped
    assert ticks >= 10  # the loop ran on while the first work held the writer 0.3 s
    assert {name.startswith("vledger-writer") for name, _ in ran_on.values()} == {True}
    assert {i: who for i, (_, who) in ran_on.items()} == {
        i: f"caller {i}" for i in range(callers)
    }  # each work ran in its caller's context
    assert_refused_left_nothing(ledger, wallet, transfers, refused)


def test_a_bug_in_one_async_work_fails_only_its_caller(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    transfers = [Transfer(new_id(), funding, wallet, 100, KES, 1) for _ in range(6)]

    def work_of(i: int) -> object:
        def work(tx: Tx) -> Status:
            [result] = tx.create_transfers([transfers[i]])
            if i == 2:
                raise RuntimeError("a bug")
            return result.status

        return work

    async def call(i: int) -> object:
        try:
            return await ledger.transact_grouped_async(work_of(i))
        except RuntimeError as exc:
            return str(exc)

    async def main() -> list[object]:
        return await asyncio.gather(*(call(i) for i in range(6)))

    assert asyncio.run(main()) == ["a bug" if i == 2 else Status.CREATED for i in range(6)]
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 500
    assert ledger.lookup_transfers([transfers[2].id]) == []


def test_thread_and_loop_callers_mixed_all_finish_once(ledger: Ledger) -> None:
    """Threads that lead their own groups and loop tasks served by writer threads share
    one queue: everyone is answered, every transfer is made once."""
    funding, wallet = open_pair(ledger, limited=False)
    transfers = [Transfer(new_id(), funding, wallet, 1, KES, 1) for _ in range(40)]

    def work_of(i: int) -> object:
        return lambda tx: tx.create_transfers([transfers[i]])[0].status

    thread_answers: dict[int, object] = {}

    def in_thread(i: int) -> None:
        thread_answers[i] = ledger.transact_grouped(work_of(i))  # type: ignore[arg-type]

    async def main() -> list[object]:
        return await asyncio.gather(
            *(ledger.transact_grouped_async(work_of(i)) for i in range(20))  # type: ignore[arg-type]
        )

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(20, 40)]
    for thread in threads:
        thread.start()
    loop_answers = asyncio.run(main())
    for thread in threads:
        thread.join(timeout=30)
    assert loop_answers == [Status.CREATED] * 20
    assert thread_answers == {i: Status.CREATED for i in range(20, 40)}
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 40


def test_inside_a_running_transaction_it_is_refused(ledger: Ledger) -> None:
    def work(tx: Tx) -> None:
        tx.execute("SELECT 1")
        asyncio.run(ledger.transact_grouped_async(lambda inner: None))

    with pytest.raises(InvariantViolation, match="inside a running transaction"):
        ledger.transact(work)


def test_closing_the_ledger_ends_its_writer_threads(db_url: str) -> None:
    led = open_ledger(db_url, migrate=True)
    before = {t.ident for t in threading.enumerate()}
    asyncio.run(led.transact_grouped_async(lambda tx: tx.execute("SELECT 1")))
    writers = [
        t
        for t in threading.enumerate()
        if t.ident not in before and t.name.startswith("vledger-writer")
    ]
    assert writers  # the work ran on a writer thread started for it
    led.close()
    for thread in writers:
        thread.join(timeout=10)
    assert not any(t.is_alive() for t in writers)
