"""The rows a process wrote last (ledger.flows.ussd.written) are a guess, never a truth:
a menu step saved through one is saved only if the stored row is still exactly it."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import psycopg
import pytest

from ledger import Ledger, StorageError, open_ledger
from ledger.core.postgres_store import LOOP_CONNECTIONS_MAX, PostgresStore, conninfo
from ledger.core.tx import Tx
from ledger.flows import ussd
from ledger.flows.ussd import Screen, written
from ledger.flows.ussd.repository import select
from ledger.flows.ussd.service import _step_in
from tests.conftest import Clock
from tests.ussd_helpers import PIN, Phone, agent, villager

MAIN = (
    "Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)


def test_a_step_on_the_guess_reads_nothing_and_saves_the_row(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 1
    assert written.guess(ledger.url, phone.session_id) == stored  # exactly what is stored


def test_a_stale_guess_is_not_used_another_workers_step_wins(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")  # the language menu
    stale = written.guess(ledger.url, phone.session_id)
    assert stale is not None
    written.forget(ledger.url, phone.session_id)  # another worker answers the next step
    answered = phone.press("0")  # back to the main menu
    before = ledger.transact(lambda tx: select(tx, phone.session_id))
    written.keep(ledger.url, stale)  # this process still believes the session is at "4"
    # The aggregator replays "4*0": on the stale guess it would look like the next step;
    # the stored row differs, so nothing is written and the replay answers the same.
    assert phone.send("4*0") == answered
    assert ledger.transact(lambda tx: select(tx, phone.session_id)) == before


def test_a_guess_the_stored_row_no_longer_holds_writes_nothing(ledger: Ledger) -> None:
    """A guess is used only while the stored row holds its ``write_id``: a guess that says
    Swahili, under any other write id, is not believed (the step is judged on the stored
    row: English)."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")
    guess = written.guess(ledger.url, phone.session_id)
    assert guess is not None and guess.write_id != 0
    for write_id in (guess.write_id ^ 1, 0):
        written.keep(ledger.url, replace(guess, write_id=write_id, language="sw"))
        assert phone.press("0").text == MAIN  # judged on the stored row: English
        after = ledger.transact(lambda tx: select(tx, phone.session_id))
        assert after is not None and after.inputs_seen == len(phone.inputs)
        assert after.language == "en" and written.guess(ledger.url, phone.session_id) == after
        phone.press("4")
        guess = written.guess(ledger.url, phone.session_id)
        assert guess is not None


class _Abandoned(Exception):
    pass


def test_a_step_whose_transaction_rolled_back_leaves_a_guess_no_row_holds(ledger: Ledger) -> None:
    """A step is remembered inside its transaction; when that transaction rolls back, the
    guess holds a write id that no stored row ever held, so it is never believed."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")

    def abandoned(tx: Tx) -> None:
        _step_in(tx, ledger.url, phone.session_id, phone.phone, "4*0")
        raise _Abandoned

    with pytest.raises(_Abandoned):
        ledger.transact(abandoned)
    kept = written.guess(ledger.url, phone.session_id)
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert kept is not None and stored is not None
    assert (kept.inputs_seen, stored.inputs_seen) == (2, 1) and kept.write_id != stored.write_id
    assert phone.press("0").text == MAIN  # the aggregator's retry: judged on the stored row
    after = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert after is not None and after.inputs_seen == 2
    assert written.guess(ledger.url, phone.session_id) == after


def test_a_first_step_and_a_menu_step_are_one_transaction_each(ledger: Ledger) -> None:
    """Dialling (find her by phone, store the session) and a menu step (on the guess)
    each open one database transaction, on either engine."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    store, opened = ledger._store, []
    real = store.transaction

    def counted(work: object) -> object:
        opened.append(1)
        return real(work)  # type: ignore[arg-type]

    store.transaction = counted  # type: ignore[method-assign]
    try:
        assert phone.dial().text == MAIN
        assert len(opened) == 1
        phone.press("4")
        assert len(opened) == 2
    finally:
        del store.transaction
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 1


class _Counted:
    """Counts the store's transactions and the statements it ran on the event loop
    (the real calls run; a statement that failed is counted apart)."""

    def __init__(self, ledger: Ledger) -> None:
        self.store, self.transactions, self.on_loop, self.failed = ledger._store, 0, 0, 0
        real_transaction, real_statement = self.store.transaction, self.store.loop_statement

        def transaction(work: object) -> object:
            self.transactions += 1
            return real_transaction(work)  # type: ignore[arg-type]

        async def loop_statement(sql: str, params: object) -> object:
            try:
                rows = await real_statement(sql, params)  # type: ignore[arg-type]
            except StorageError:
                self.failed += 1
                raise
            self.on_loop += rows is not None
            return rows

        self.store.transaction = transaction  # type: ignore[method-assign]
        self.store.loop_statement = loop_statement  # type: ignore[method-assign]

    def stop(self) -> None:
        del self.store.transaction, self.store.loop_statement

    def since(self, transactions: int, on_loop: int) -> tuple[int, int]:
        return self.transactions - transactions, self.on_loop - on_loop


def test_a_menu_step_on_the_loop_is_one_statement_and_no_transaction(ledger: Ledger) -> None:
    """PostgreSQL: a step whose screen reads nothing (a menu, the PIN prompt) on the guess
    is one statement awaited on the loop, no transaction. SQLite: one transaction, as
    before. Either way the stored row is the guess, and a screen that reads money goes
    through a transaction."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    plain = (0, 1) if ledger.dialect == "postgresql" else (1, 0)

    async def walk(counted: _Counted) -> None:
        assert (await phone.press_async("")).text == MAIN
        assert counted.since(0, 0) == (1, 0)
        for key, screen in (("4", "Choose a language"), ("0", MAIN), ("1", "Enter your PIN")):
            was = (counted.transactions, counted.on_loop)
            assert (await phone.press_async(key)).text.startswith(screen)
            assert counted.since(*was) == plain
            stored = ledger.transact(lambda tx: select(tx, phone.session_id))
            assert stored is not None and stored.inputs_seen == len(phone.inputs)
            assert written.guess(ledger.url, phone.session_id) == stored
        was = (counted.transactions, counted.on_loop)
        assert (await phone.press_async(PIN)).text.startswith("Balance: KES 100.00")
        assert counted.since(*was)[1] == 0  # the PIN and the balance: transactions

    counted = _Counted(ledger)
    try:
        asyncio.run(walk(counted))
    finally:
        counted.stop()


def test_a_stale_guess_on_the_loop_writes_nothing(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))

    async def walk() -> None:
        await phone.press_async("")
        await phone.press_async("4")
        stale = written.guess(ledger.url, phone.session_id)
        assert stale is not None
        written.forget(ledger.url, phone.session_id)  # another worker answers "0"
        answered = await phone.press_async("0")
        before = ledger.transact(lambda tx: select(tx, phone.session_id))
        written.keep(ledger.url, stale)
        phone.inputs = ["4"]  # the aggregator replays "4*0"
        assert await phone.press_async("0") == answered
        assert ledger.transact(lambda tx: select(tx, phone.session_id)) == before

    asyncio.run(walk())


def test_three_deliveries_of_a_step_on_the_loop_save_it_once(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))

    async def deliver() -> list[Screen]:
        await phone.press_async("")
        return list(
            await asyncio.gather(
                *(
                    ussd.answer_async(
                        ledger, session_id=phone.session_id, phone=phone.phone, text="4"
                    )
                    for _ in range(3)
                )
            )
        )

    screens = asyncio.run(deliver())
    assert {s.text for s in screens} == {screens[0].text}
    assert screens[0].text.startswith("Choose a language")
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 1
    assert stored.screen_text == screens[0].text


def test_an_idle_session_on_the_loop_is_over(ledger: Ledger, clock: Clock) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))

    async def walk() -> None:
        await phone.press_async("")
        clock.advance(180)
        assert (await phone.press_async("4")).text.startswith("Choose a language")
        clock.advance(181)
        expired = await phone.press_async("0")
        assert expired.end and "timed out" in expired.text
        stored = ledger.transact(lambda tx: select(tx, phone.session_id))
        assert stored is not None and stored.inputs_seen == 1

    asyncio.run(walk())


def test_a_lost_loop_connection_answers_the_step_through_a_transaction(
    pg_url: str,
) -> None:
    """Every connection of the loop killed: each step is still answered once, the step
    whose statement met the dead connection through a transaction."""
    with open_ledger(pg_url, migrate=True) as led:
        phone = Phone.of(led, villager(led, agent(led).id, (10_000,)))
        counted = _Counted(led)

        async def walk() -> None:
            await phone.press_async("")
            await phone.press_async("4")
            store = led._store
            assert isinstance(store, PostgresStore)
            pids = [c.info.backend_pid for c in store._loop_statements._opened]
            await asyncio.to_thread(_terminate, pg_url, pids)
            for key in ["0", "4"] * LOOP_CONNECTIONS_MAX:  # each slot's turn comes
                await phone.press_async(key)
            stored = led.transact(lambda tx: select(tx, phone.session_id))
            assert stored is not None and stored.inputs_seen == len(phone.inputs)
            assert stored.screen_text.startswith("Choose a language")

        try:
            asyncio.run(walk())
        finally:
            counted.stop()
        assert counted.failed == 1


def _terminate(url: str, pids: list[int]) -> None:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
