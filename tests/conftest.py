"""Shared fixtures: a fresh ledger database on each engine, and a clock tests can move.

Every integration test that takes ``db_url`` (or ``ledger``) runs twice: once on a real
SQLite file in a temporary folder, once on a real PostgreSQL in a schema of its own.

PostgreSQL is found at ``VLEDGER_TEST_PG_URL`` (default: the local server, database
``test``). When it cannot be reached the PostgreSQL half is skipped with a message, unless
``VLEDGER_REQUIRE_POSTGRES=1`` (set by ``.ci/run``), in which case the run fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ledger import Ledger, open_ledger

pytest_plugins = ["tests.browser"]  # served app + Debian chromium page fixtures
PG_URL_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    return os.environ.get("VLEDGER_TEST_PG_URL", PG_URL_DEFAULT)


def pg_conninfo(url: str) -> str:
    """The libpq form of a SQLAlchemy-style URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


_pg_state: dict[str, str | None] = {}


def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        try:
            with psycopg.connect(pg_conninfo(pg_base_url()), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["reason"] = None
        except psycopg.Error as exc:
            _pg_state["reason"] = f"PostgreSQL not reachable at {pg_base_url()}: {exc}".strip()
    return _pg_state["reason"]


def require_postgres() -> None:
    """Skip (laptop) or fail (CI) when PostgreSQL is not there."""
    reason = pg_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("VLEDGER_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (VLEDGER_REQUIRE_POSTGRES=1: PostgreSQL tests must run)")
    pytest.skip(f"{reason}; the PostgreSQL half of the suite is skipped")


def pytest_report_header(config: pytest.Config) -> str:
    reason = pg_unavailable_reason()
    if reason is None:
        return f"postgresql: {pg_base_url()} (tests run on SQLite and PostgreSQL)"
    return f"postgresql: NOT AVAILABLE, PostgreSQL tests will skip: {reason}"


def new_pg_schema_url() -> tuple[str, str]:
    """Create a fresh schema and answer (url bound to it, schema name)."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_conninfo(pg_base_url()), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_base_url() else "?"
    return f"{pg_base_url()}{sep}options=-csearch_path%3D{schema}", schema


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(pg_conninfo(pg_base_url()), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema (not migrated)."""
    require_postgres()
    url, schema = new_pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


@pytest.fixture
def sqlite_url(tmp_path: os.PathLike[str]) -> str:
    """A fresh, empty SQLite file (not migrated)."""
    return f"sqlite:///{os.fspath(tmp_path)}/ledger.db"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, empty database on each engine in turn (not migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{os.fspath(tmp_path)}/ledger.db"
        return
    require_postgres()
    url, schema = new_pg_schema_url()
    try:
        yield url
    finally:
        drop_pg_schema(schema)


class Clock:
    """A clock that tests move by hand; always timezone-aware UTC."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(db_url: str, clock: Clock) -> Iterator[Ledger]:
    """A migrated ledger on each engine, on the test's clock."""
    led = open_ledger(db_url, migrate=True, clock=clock)
    try:
        yield led
    finally:
        led.close()


LedgerFactory = Callable[..., Ledger]
