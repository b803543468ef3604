"""A database that cannot serve a request: the API answers 503 ``not_ready`` with
``Retry-After`` (a problem, never a 500), ``/readyz`` says not ready, nothing moves, and
the same request sent again once the database is back moves the money once.

The outage is real, over real HTTP, on each engine: on SQLite another connection holds
the file's write lock past the service's busy timeout (shortened here from 30 s, so the
test does not wait for minutes); on PostgreSQL the service's schema is renamed away (its
tables are gone from the service's ``search_path``, as in a database not migrated), then
renamed back.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from api.app import create_app
from api.local_server import ServerThread
from api.problems import PROBLEM_CONTENT_TYPE, STORAGE_RETRY_AFTER_S
from ledger import open_ledger
from ledger.core import sqlite_store
from tests.conftest import drop_pg_schema, pg_base_url, pg_conninfo
from tests.test_api_harness import (
    _HARNESSES,
    FAST_TEST_SETTINGS,
    Harness,
    fresh_database,
    funded_pair,
    transfer_body,
)
from webhooks import WebhookSettings

SHORT_BUSY_TIMEOUT_MS = 50
"""The service's SQLite busy timeout in these tests (the service's own is 30 s)."""
LENT = 100_000
PAID = 2_500


@dataclass
class Outage:
    """A server on a database this test can take away and bring back."""

    api: Harness
    begin: Callable[[], None]
    end: Callable[[], None]

    @contextmanager
    def down(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        finally:
            self.end()


def _sqlite_lock(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Another process's writer holding the file's write lock, then letting it go."""
    path = url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def begin() -> None:
        blocker.execute("BEGIN IMMEDIATE")

    def end() -> None:
        blocker.execute("ROLLBACK")
        blocker.close()

    return begin, end


def _pg_schema_away(schema: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """The service's schema renamed away (its tables vanish from its search_path), and back."""

    def rename(old: str, new: str) -> None:
        with psycopg.connect(pg_conninfo(pg_base_url()), autocommit=True) as conn:
            conn.execute(f'ALTER SCHEMA "{old}" RENAME TO "{new}"')

    return (lambda: rename(schema, f"{schema}_away"), lambda: rename(f"{schema}_away", schema))


@pytest.fixture(params=["sqlite", "postgres"])
def outage(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Outage]:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", SHORT_BUSY_TIMEOUT_MS)
    url, schema = fresh_database(request.param, tmp_path)
    begin, end = _sqlite_lock(url) if schema is None else _pg_schema_away(schema)
    try:
        led = open_ledger(url, migrate=True)
        app = create_app(
            url,
            settings=FAST_TEST_SETTINGS,
            webhook_settings=WebhookSettings(worker_enabled=False),
        )
        server = ServerThread(app).start()
        (tmp_path / "keys").mkdir()
        api = Harness(url, server.base_url, led, tmp_path / "keys")
        try:
            yield Outage(api, begin, end)
        finally:
            api.close_clients()
            lender = _HARNESSES.pop(server.base_url)._lender
            if lender is not None:
                lender.close()
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def _posted(outage: Outage, *account_ids: str) -> list[int]:
    accounts = outage.api.ledger.lookup_accounts([uuid.UUID(a) for a in account_ids])
    return [a.credits_posted - a.debits_posted for a in accounts]


def _assert_not_ready(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert answer.headers["retry-after"] == str(STORAGE_RETRY_AFTER_S)
    problem = answer.json()
    assert problem["type"] == "urn:vledger:problem:not_ready"
    assert (problem["code"], problem["status"]) == ("not_ready", 503)
    assert problem["request_id"] == answer.headers["x-request-id"]


def test_a_payment_while_the_database_is_away_is_503_and_moves_once_when_it_is_back(
    outage: Outage,
) -> None:
    storefront = outage.api.client("storefront", attempts_max=1)
    source, destination, _ = funded_pair(storefront, LENT)
    payment = transfer_body(source, destination, PAID)
    key = str(uuid.uuid4())
    with outage.down():
        answer = storefront.request(
            "POST", "/v1/transfers", json_body={"transfers": [payment]}, idempotency_key=key
        )
        _assert_not_ready(answer)
        detail = answer.json()["detail"]
        assert "nothing was committed" in detail
        assert "api.db" not in detail and "PostgreSQL" not in detail  # no file, no host
        assert httpx.get(outage.api.base_url + "/readyz").json()["code"] == "not_ready"
        assert httpx.get(outage.api.base_url + "/healthz").status_code == 200
    assert httpx.get(outage.api.base_url + "/readyz").status_code == 200
    assert _posted(outage, source, destination) == [LENT, 0]  # the 503 moved nothing

    again = storefront.request(
        "POST", "/v1/transfers", json_body={"transfers": [payment]}, idempotency_key=key
    )
    assert again.status_code == 200, again.text
    assert [r["status"] for r in again.json()["results"]] == ["created"]
    assert _posted(outage, source, destination) == [LENT - PAID, PAID]


def test_the_client_waits_retry_after_and_its_payment_lands_once(outage: Outage) -> None:
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the database comes back while the client waits
        waits.append(seconds)
        outage.end()
        time.sleep(seconds)

    storefront = outage.api.client("storefront", attempts_max=3, sleep=wait)
    source, destination, _ = funded_pair(storefront, LENT)
    outage.begin()
    [result] = storefront.create_transfers([transfer_body(source, destination, PAID)])
    assert waits == [STORAGE_RETRY_AFTER_S]  # one 503, then the retry
    assert result["status"] == "created"
    assert _posted(outage, source, destination) == [LENT - PAID, PAID]


def test_every_signed_route_documents_503_with_retry_after(db_url: str) -> None:
    open_ledger(db_url, migrate=True).close()
    app = create_app(db_url, settings=FAST_TEST_SETTINGS)
    doc = app.openapi()
    app.state.ctx.ledger.close()
    operations = [
        (path, method, operation)
        for path, methods in doc["paths"].items()
        if path.startswith("/v1/")
        for method, operation in methods.items()
    ]
    assert len(operations) > 40
    for path, method, operation in operations:
        answer = operation["responses"]["503"]
        assert "Retry-After" in answer["headers"], (method, path)
        schema = answer["content"][PROBLEM_CONTENT_TYPE]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    assert "not_ready" in doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert "503" in doc["paths"]["/readyz"]["get"]["responses"]
    assert "503" not in doc["paths"]["/healthz"]["get"]["responses"]  # no database asked
