"""Ledger.loop_statement: one statement alone, awaited on the event loop (PostgreSQL in
autocommit on the loop's own connections; SQLite runs none there)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from ledger import InvariantViolation, Ledger, StorageError, open_ledger
from ledger.core.postgres_store import LOOP_CONNECTIONS_MAX, PostgresStore, conninfo

BACKEND_PID = "SELECT pg_backend_pid()"


@pytest.fixture
def pg_ledger(pg_url: str) -> Iterator[Ledger]:
    led = open_ledger(pg_url, migrate=True)
    try:
        yield led
    finally:
        led.close()


def _loop_connections(led: Ledger) -> list[psycopg.AsyncConnection[object]]:
    store = led._store
    assert isinstance(store, PostgresStore)
    return [c for c in store._loop_statements._opened if not c.closed]


def _alive(url: str, pids: set[int]) -> set[int]:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
        return {row[0] for row in rows}


def test_sqlite_runs_no_statement_on_the_loop(sqlite_url: str) -> None:
    with open_ledger(sqlite_url, migrate=True) as led:
        assert asyncio.run(led.loop_statement("SELECT 1")) is None


def test_a_statement_answers_its_rows_and_commits_alone(pg_ledger: Ledger) -> None:
    head = pg_ledger.transact(lambda tx: tx.one("SELECT version_num FROM alembic_version"))
    assert head is not None
    answered = asyncio.run(
        pg_ledger.loop_statement(
            "UPDATE alembic_version SET version_num = version_num RETURNING version_num, :x",
            {"x": 7},
        )
    )
    assert answered == [(head[0], 7)]
    # autocommit: no transaction is left open on the loop's connections
    assert [c.info.transaction_status.name for c in _loop_connections(pg_ledger)] == ["IDLE"]


def test_an_integrity_error_is_an_invariant_violation_and_a_lost_connection_storage(
    pg_ledger: Ledger,
) -> None:
    async def run() -> None:
        with pytest.raises(InvariantViolation):
            await pg_ledger.loop_statement(
                "INSERT INTO alembic_version SELECT version_num FROM alembic_version"
            )
        killed = await pg_ledger.loop_statement(BACKEND_PID)
        assert killed is not None
        await asyncio.to_thread(_terminate, pg_ledger.url, killed[0][0])
        with pytest.raises(StorageError):  # the connections are taken in turn: its comes
            for _ in range(LOOP_CONNECTIONS_MAX):
                await pg_ledger.loop_statement(BACKEND_PID)
        answered = await pg_ledger.loop_statement(BACKEND_PID)  # its slot opens anew
        assert answered is not None and answered[0][0] != killed[0][0]

    asyncio.run(run())


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_cancelled_statements_give_their_connection_slots_back(pg_ledger: Ledger) -> None:
    async def run() -> set[int]:
        sleepers = [
            asyncio.create_task(pg_ledger.loop_statement("SELECT pg_sleep(30)"))
            for _ in range(LOOP_CONNECTIONS_MAX + 2)
        ]
        await asyncio.sleep(0.3)
        for task in sleepers:
            task.cancel()
        await asyncio.gather(*sleepers, return_exceptions=True)
        # as many statements at once as were cancelled: no more connections than slots
        pids = await asyncio.wait_for(
            asyncio.gather(*(pg_ledger.loop_statement(BACKEND_PID) for _ in sleepers)),
            timeout=10,
        )
        assert len(_loop_connections(pg_ledger)) <= LOOP_CONNECTIONS_MAX
        return {rows[0][0] for rows in pids if rows}

    assert len(asyncio.run(run())) == LOOP_CONNECTIONS_MAX


def test_a_second_loop_gets_none_until_the_first_is_closed(pg_ledger: Ledger) -> None:
    first = asyncio.new_event_loop()
    try:
        assert first.run_until_complete(pg_ledger.loop_statement("SELECT 1")) == [(1,)]
        assert asyncio.run(pg_ledger.loop_statement("SELECT 1")) is None  # another loop
    finally:
        first.close()
    assert asyncio.run(pg_ledger.loop_statement("SELECT 2")) == [(2,)]  # bound anew


def test_closing_the_ledger_closes_the_loop_connections(pg_url: str) -> None:
    led = open_ledger(pg_url, migrate=True)

    async def pids() -> set[int]:
        found = await asyncio.gather(*(led.loop_statement(BACKEND_PID) for _ in range(3)))
        return {rows[0][0] for rows in found if rows}

    opened = asyncio.run(pids())
    assert opened and _alive(pg_url, opened) == opened
    led.close()
    for _ in range(50):  # the server notices a closed socket at once, or nearly
        if not _alive(pg_url, opened):
            break
        asyncio.run(asyncio.sleep(0.05))
    assert _alive(pg_url, opened) == set()
