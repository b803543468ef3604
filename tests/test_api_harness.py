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
    _lender: Client | None = None

    def __post_init__(self) -> None:
        _HARNESSES[self.base_url] = self

    def lender(self) -> Client:
        """An operator of the module's server that lends tenants money (see
        :func:`funded_pair`); kept open while the server runs."""
        if self._lender is None:
            made = self.key("operator")
            self._lender = Client.from_key_file(self.base_url, made["key_id"], made["path"])
        return self._lender

    def key(self, role: str, name: str | None = None, alg: str = "ed25519") -> dict[str, str]:
        """A new key (and principal, unless ``name`` names one); its file in ``path``."""
        path = self.key_dir / f"{uuid.uuid4().hex}.key"
        name = name or f"{role}-{uuid.uuid4().hex[:8]}"
        made = create_key(self.db_url, role, name, alg, path, setup_rules=False)
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
            lender = _HARNESSES.pop(server.base_url)._lender
            if lender is not None:
                lender.close()
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


_HARNESSES: dict[str, Harness] = {}
"""The running harness of each server (by base URL), for :func:`funded_pair`."""

BOUNDED = ["debits_must_not_exceed_credits"]


def funded_pair(client: Client, amount: int = 100_000) -> tuple[str, str, str]:
    """(source, destination, funding) accounts of ``client``: the source holds ``amount``.

    No tenant mints money (``api.access``): an operator lends ``amount`` from an account
    of its own into the bounded ``funding`` account, and the client moves it to its
    bounded ``source``."""
    funding = client.create_account(**account_body(flags=BOUNDED))["id"]
    source = client.create_account(**account_body(flags=BOUNDED))["id"]
    destination = client.create_account(**account_body())["id"]
    lender = _HARNESSES[client.base_url].lender()
    bank = lender.create_account(**account_body())["id"]
    [lent] = lender.create_transfers([transfer_body(bank, funding, amount)])
    assert lent["status"] == "created"
    [result] = client.create_transfers([transfer_body(funding, source, amount)])
    assert result["status"] == "created"
    return source, destination, funding


def approved(api: Harness, maker: Client, transfers: list[dict[str, Any]]) -> list[Any]:
    """Transfers touching a party's account, by the operator ``maker``: proposed (202),
    then approved by a second operator (maker-checker); the core's results."""
    proposed = maker.request("POST", "/v1/transfers", json_body={"transfers": transfers})
    assert proposed.status_code == 202, proposed.text
    proposal_id = proposed.json()["proposal"]["id"]
    checker = api.lender()
    decided = checker.request("POST", f"/v1/proposals/{proposal_id}/approve")
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "approved"
    results: list[Any] = decided.json()["result"]
    return results


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
