"""The API test harness: a real uvicorn server in a thread on a free port, per engine.

Imported by the other ``test_api_*`` modules (its fixtures are re-exported there, and
``ServerThread``, which lives in :mod:`api.local_server` since ``vledger demo`` uses it
too); it holds one smoke test of its own. Each module gets one server per engine on a fresh
database; each test makes its own principals and keys, so tests never share objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.keys import create_key
from api.local_server import ServerThread
from api.settings import Settings
from ledger import Ledger, open_ledger
from tests.conftest import drop_pg_schema, new_pg_schema_url, require_postgres

FAST_TEST_SETTINGS = Settings(
    rate_limit_per_s=10_000.0,
    rate_limit_burst=10_000,
    # The background threads have tests of their own (tests/test_api_background.py).
    sweep_interval_s=None,
    seal_interval_s=None,
    reconcile_interval_s=None,
)


@dataclass
class Harness:
    db_url: str
    base_url: str
    ledger: Ledger
    key_dir: Path
    clients: list[Client] = field(default_factory=list)

    def key(self, role: str, name: str | None = None, alg: str = "ed25519") -> dict[str, str]:
        """A new key (and principal, unless ``name`` names one); its file in ``path``."""
        path = self.key_dir / f"{uuid.uuid4().hex}.key"
        made = create_key(self.db_url, role, name or f"{role}-{uuid.uuid4().hex[:8]}", alg, path)
        return {**made, "path": str(path)}

    def client_for(self, made: dict[str, str], **kw: Any) -> Client:
        client = Client.from_key_file(self.base_url, made["key_id"], made["path"], **kw)
        self.clients.append(client)
        return client

    def client(self, role: str, name: str | None = None, alg: str = "ed25519", **kw: Any) -> Client:
        return self.client_for(self.key(role, name, alg), **kw)

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


def fresh_database(engine: str, tmp: Path) -> tuple[str, str | None]:
    if engine == "sqlite":
        return f"sqlite:///{tmp}/api.db", None
    require_postgres()
    return new_pg_schema_url()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("api")
    url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(url, migrate=True)
        server = ServerThread(create_app(url, settings=FAST_TEST_SETTINGS)).start()
        key_dir = tmp / "keys"
        key_dir.mkdir()
        try:
            yield Harness(url, server.base_url, led, key_dir)
        finally:
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


@pytest.fixture
def api(api_server: Harness) -> Iterator[Harness]:
    """The module's server; the clients a test makes are closed after it."""
    try:
        yield api_server
    finally:
        api_server.close_clients()


def account_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": str(uuid.uuid4()), "currency": "KES", "code": 101}
    body.update(over)
    return body


def funded_pair(client: Client, amount: int = 100_000) -> tuple[str, str, str]:
    """(source, destination, funding) accounts of ``client``: the source holds ``amount``."""
    funding = client.create_account(**account_body())["id"]
    source = client.create_account(**account_body(flags=["debits_must_not_exceed_credits"]))["id"]
    destination = client.create_account(**account_body())["id"]
    [result] = client.create_transfers([transfer_body(funding, source, amount)])
    assert result["status"] == "created"
    return source, destination, funding


def transfer_body(debit: str, credit: str, amount: Any, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "KES",
        "code": 1,
    }
    body.update(over)
    return body


def test_server_answers_health_on_both_engines(api: Harness) -> None:
    answer = httpx.get(api.base_url + "/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}
    assert answer.headers["date"].endswith("GMT")
    assert answer.headers["x-request-id"]
