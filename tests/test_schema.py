"""The database guards the money by itself: migrations, constraints, triggers, indexes.

These tests go around the ``Ledger`` on purpose, writing raw SQL the way a careless
script or an attacker with a database login would, and check that the database refuses.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from ledger import Account, AccountFlags, Ledger, Transfer, TransferFlags, open_ledger
from ledger.core import migrations, postgres_store, sqlite_store
from ledger.core.postgres_store import conninfo

KES = "KES"


class Raw:
    """A raw DB-API connection to the ledger's database, with ``?`` marks on both engines."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite:///")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
            # SQLite enforces foreign keys per connection; the ledger's own connections
            # switch them on, and so does this one (a raw script that does not could
            # insert an orphan row, which the integrity check then reports).
            self.conn.execute("PRAGMA foreign_keys = ON")
        else:
            self.conn = psycopg.connect(conninfo(url), autocommit=True)

    def id(self, value: uuid.UUID) -> object:
        return value.bytes if self.sqlite else value

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def refuses(self, sql: str, params: tuple[object, ...] = ()) -> str:
        """Run ``sql``, expect the database to refuse it, and answer its message."""
        errors = (sqlite3.DatabaseError,) if self.sqlite else (psycopg.Error,)
        with pytest.raises(errors) as caught:
            self.execute(sql, params)
        return str(caught.value)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw(ledger: Ledger) -> Iterator[Raw]:
    connection = Raw(ledger.url)
    try:
        yield connection
    finally:
        connection.close()


def funded(ledger: Ledger) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    bank, wallet = uuid.uuid4(), uuid.uuid4()
    ledger.create_accounts(
        [
            Account(bank, KES, 1),
            Account(wallet, KES, 1, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        ]
    )
    first = uuid.uuid4()
    ledger.create_transfers([Transfer(first, bank, wallet, 500, KES, 1)])
    return bank, wallet, first


def test_migrations_run_up_down_up_on_both_engines(db_url: str) -> None:
    migrations.upgrade(db_url)
    assert migrations.current_revision(db_url) == migrations.head_revision()
    migrations.downgrade(db_url, "base")
    assert migrations.current_revision(db_url) is None
    migrations.upgrade(db_url)
    with open_ledger(db_url) as led:
        bank, wallet, _ = funded(led)
        assert led.lookup_accounts([wallet])[0].credits_posted == 500
        assert led.check_integrity().ok


def test_an_unmigrated_database_is_refused_with_a_hint(db_url: str) -> None:
    from ledger import StorageError

    with pytest.raises(StorageError, match="vledger migrate"):
        open_ledger(db_url)


def test_bad_urls_are_refused_before_anything_runs() -> None:
    from ledger import MalformedRequest

    for url in ("mysql://root@localhost/x", "sqlite://", "sqlite:///:memory:", "village.db"):
        with pytest.raises(MalformedRequest):
            open_ledger(url, migrate=True)


def test_transfers_cannot_be_updated_or_deleted(ledger: Ledger, raw: Raw) -> None:
    bank, wallet, first = funded(ledger)
    ledger.create_transfers([Transfer(uuid.uuid4(), wallet, bank, 501, KES, 1)])  # spent id
    assert raw.execute("SELECT count(*) FROM transfer_failures") == [(1,)]
    assert "immutable" in raw.refuses(
        "UPDATE transfers SET amount = 1 WHERE id = ?", (raw.id(first),)
    )
    assert "immutable" in raw.refuses("DELETE FROM transfers WHERE id = ?", (raw.id(first),))
    assert "immutable" in raw.refuses("DELETE FROM transfer_failures")
    if not raw.sqlite:
        assert "immutable" in raw.refuses("TRUNCATE transfers CASCADE")
    assert "immutable" in raw.refuses("DELETE FROM accounts WHERE id = ?", (raw.id(wallet),))
    assert "refused" in raw.refuses(
        "UPDATE accounts SET currency = 'UGX' WHERE id = ?", (raw.id(wallet),)
    )
    assert "refused" in raw.refuses("UPDATE accounts SET flags = 0 WHERE id = ?", (raw.id(wallet),))
    assert ledger.lookup_transfers([first])[0].amount == 500
    assert ledger.check_integrity().ok


def test_check_constraints_guard_the_counters(ledger: Ledger, raw: Raw) -> None:
    _, wallet, _ = funded(ledger)
    w = (raw.id(wallet),)
    # limit flags count pending amounts
    raw.refuses("UPDATE accounts SET debits_posted = 501 WHERE id = ?", w)
    raw.refuses("UPDATE accounts SET debits_pending = 1, debits_posted = 500 WHERE id = ?", w)
    raw.refuses("UPDATE accounts SET credits_posted = -1 WHERE id = ?", w)
    raw.execute("UPDATE accounts SET debits_pending = 100, debits_posted = 400 WHERE id = ?", w)
    raw.execute("UPDATE accounts SET debits_pending = 0, debits_posted = 0 WHERE id = ?", w)
    both = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    raw.refuses(
        "INSERT INTO accounts (id, currency, code, flags, created_at_us, timestamp_us)"
        " VALUES (?, 'KES', 1, ?, 0, 0)",
        (raw.id(uuid.uuid4()), both.value),
    )
    raw.refuses(
        "INSERT INTO accounts (id, currency, code, flags, created_at_us, timestamp_us)"
        " VALUES (?, 'KES', 0, 0, 0, 0)",
        (raw.id(uuid.uuid4()),),
    )


def _insert_transfer(
    raw: Raw,
    debit: uuid.UUID,
    credit: uuid.UUID,
    amount: int,
    *,
    flags: int = 0,
    pending_id: uuid.UUID | None = None,
) -> None:
    raw.execute(
        "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, code,"
        " flags, pending_id, timeout_s, created_at_us, debit_account_debits_posted,"
        " debit_account_credits_posted, credit_account_debits_posted,"
        " credit_account_credits_posted) VALUES (?, ?, ?, ?, 'KES', 1, ?, ?, 0, 0, 0, 0, 0, 0)",
        (
            raw.id(uuid.uuid4()),
            raw.id(debit),
            raw.id(credit),
            amount,
            flags,
            None if pending_id is None else raw.id(pending_id),
        ),
    )


def test_check_constraints_guard_transfers(ledger: Ledger, raw: Raw) -> None:
    bank, wallet, first = funded(ledger)
    for amount in (0, -5):
        raw.refuses(
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency,"
            " code, flags, timeout_s, created_at_us, debit_account_debits_posted,"
            " debit_account_credits_posted, credit_account_debits_posted,"
            " credit_account_credits_posted) VALUES (?, ?, ?, ?, 'KES', 1, 0, 0, 0, 0, 0, 0, 0)",
            (raw.id(uuid.uuid4()), raw.id(bank), raw.id(wallet), amount),
        )
    with pytest.raises((sqlite3.DatabaseError, psycopg.Error)):
        _insert_transfer(raw, wallet, wallet, 1)
    with pytest.raises((sqlite3.DatabaseError, psycopg.Error)):
        _insert_transfer(raw, uuid.uuid4(), wallet, 1)  # no such account


def test_a_hold_resolves_at_most_once_even_for_raw_sql(ledger: Ledger, raw: Raw) -> None:
    bank, wallet, _ = funded(ledger)
    hold = uuid.uuid4()
    ledger.create_transfers([Transfer(hold, wallet, bank, 100, KES, 1, TransferFlags.PENDING)])
    post = Transfer(uuid.uuid4(), None, None, None, None, 1, TransferFlags.POST_PENDING, hold)
    ledger.create_transfers([post])
    with pytest.raises((sqlite3.DatabaseError, psycopg.Error)):
        _insert_transfer(
            raw, wallet, bank, 100, flags=TransferFlags.VOID_PENDING.value, pending_id=hold
        )
    assert ledger.check_integrity().ok


def test_integrity_check_finds_a_tampered_balance(ledger: Ledger, raw: Raw) -> None:
    _, wallet, _ = funded(ledger)
    raw.execute("UPDATE accounts SET credits_posted = 400 WHERE id = ?", (raw.id(wallet),))
    report = ledger.check_integrity()
    assert not report.ok
    text = "\n".join(report.problems)
    assert "credits posted" in text  # debits != credits for KES
    assert "sums over its transfers" in text
    assert str(wallet) in text


# -- history is an index lookup -------------------------------------------------------


def _fill(ledger: Ledger, accounts: int = 40, rounds: int = 30) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(accounts)]
    ledger.create_accounts([Account(i, KES, 1) for i in ids])
    for r in range(rounds):
        ledger.create_transfers(
            [
                Transfer(uuid.uuid4(), ids[k], ids[(k + r + 1) % accounts], 1 + k, KES, 1)
                for k in range(accounts)
            ]
        )
    return ids


def test_history_reads_are_index_lookups_on_postgresql(pg_url: str) -> None:
    with open_ledger(pg_url, migrate=True) as led:
        ids = _fill(led)
        conn = psycopg.connect(conninfo(pg_url), autocommit=True)
        try:
            conn.execute("ANALYZE")
            plans = {}
            for name, sql, params in (
                ("balance_at", postgres_store.BALANCE_AT, {"a": ids[3], "at": 2**62}),
                (
                    "account_transfers",
                    postgres_store.ACCOUNT_TRANSFERS,
                    {"a": ids[3], "ts": -1, "seq": -1, "n": 100},
                ),
            ):
                rows = conn.execute("EXPLAIN " + sql, params).fetchall()
                plans[name] = "\n".join(row[0] for row in rows)
        finally:
            conn.close()
    for name, plan in plans.items():
        assert "Seq Scan on transfers" not in plan, (name, plan)
        assert "ix_transfers_debit_account_id_created_at_us" in plan, (name, plan)
        assert "ix_transfers_credit_account_id_created_at_us" in plan, (name, plan)
        assert "Aggregate" not in plan, (name, plan)  # never a sum over history


def test_history_reads_are_index_lookups_on_sqlite(sqlite_url: str) -> None:
    with open_ledger(sqlite_url, migrate=True) as led:
        ids = _fill(led)
    conn = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    try:
        conn.execute("ANALYZE")
        plans = {}
        for name, sql, params in (
            ("balance_at", sqlite_store.BALANCE_AT, (ids[3].bytes, 2**62) * 2),
            (
                "account_transfers",
                sqlite_store.ACCOUNT_TRANSFERS,
                (ids[3].bytes, -1, -1, 100, ids[3].bytes, -1, -1, 100, 100),
            ),
        ):
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            plans[name] = "\n".join(str(row[3]) for row in rows)
    finally:
        conn.close()
    for name, plan in plans.items():
        assert "SCAN t\n" not in plan + "\n" and "SCAN transfers" not in plan, (name, plan)
        assert "USING INDEX ix_transfers_debit_account_id_created_at_us" in plan, (name, plan)
        assert "USING INDEX ix_transfers_credit_account_id_created_at_us" in plan, (name, plan)


def test_a_write_that_breaks_its_own_counts_aborts_inside_postgresql(pg_url: str) -> None:
    """The batch's write statement asserts its row counts in the database (so COMMIT can
    ride in the same round trip); the assertion raises and aborts the transaction."""
    with open_ledger(pg_url, migrate=True):
        pass
    with psycopg.connect(conninfo(pg_url), autocommit=True) as conn:
        assert conn.execute("SELECT vledger_assert(true, 'fine')").fetchone() == (True,)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT vledger_assert(1 = 2, 'counts differ')")
        assert caught.value.sqlstate == postgres_store.ASSERTION_SQLSTATE
        assert "counts differ" in str(caught.value)
