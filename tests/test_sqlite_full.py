"""A SQLite file that cannot grow answers 503 and writes nothing (issue 18).

``PRAGMA max_page_count`` on the store's writer connection (set through a flow
transaction, which runs on that connection) makes SQLite answer ``SQLITE_FULL`` ("database
or disk is full") as soon as a write needs a new page, as a full disk does. The ledger
raises :class:`~ledger.StorageError` and commits nothing; over the API a signed POST
answers 503 ``not_ready`` as ``application/problem+json``, keeps no idempotency record,
and once the limit is lifted the same request runs.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.keys import create_key
from api.local_server import ServerThread
from api.problems import PROBLEM_CONTENT_TYPE
from ledger import Account, Ledger, StorageError, Transfer, open_ledger
from ledger.core.tx import Tx
from ledger.limits import TRANSFERS_PER_REQUEST_MAX
from tests.test_api_harness import FAST_TEST_SETTINGS
from webhooks.settings import WebhookSettings

PAGES_UNLIMITED = 1_073_741_823
"""SQLite's default ``max_page_count``."""
BATCH = TRANSFERS_PER_REQUEST_MAX
"""Transfers per write: far more than the free room left in the file's pages."""


def cap(led: Ledger) -> int:
    """Let the file grow by no page from now on; its size in pages."""

    def work(tx: Tx) -> int:
        [(pages,)] = tx.execute("PRAGMA page_count")
        [(capped,)] = tx.execute(f"PRAGMA max_page_count = {int(pages)}")
        assert capped == pages
        return int(pages)

    return led.transact(work)


def lift(led: Ledger) -> None:
    led.transact(lambda tx: tx.execute(f"PRAGMA max_page_count = {PAGES_UNLIMITED}"))


def two_accounts(led: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    bank, shop = uuid.uuid4(), uuid.uuid4()
    led.create_accounts([Account(bank, "KES", 1), Account(shop, "KES", 1)])
    return bank, shop


def batch(bank: uuid.UUID, shop: uuid.UUID) -> list[Transfer]:
    return [Transfer(uuid.uuid4(), bank, shop, 1 + n, "KES", 1) for n in range(BATCH)]


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    led = open_ledger(sqlite_url, migrate=True)
    try:
        yield led
    finally:
        led.close()


def test_a_full_file_is_a_storage_error_and_nothing_is_written(sqlite_ledger: Ledger) -> None:
    led = sqlite_ledger
    bank, shop = two_accounts(led)
    cap(led)
    transfers = batch(bank, shop)
    with pytest.raises(StorageError, match="cannot grow"):
        led.create_transfers(transfers)

    def flow(tx: Tx) -> None:  # a flow's transaction: its rows and its money
        tx.execute("SELECT 1")
        tx.create_transfers(transfers)

    with pytest.raises(StorageError, match="cannot grow"):
        led.transact(flow)
    with pytest.raises(StorageError, match="cannot grow"):
        led.transact(lambda tx: tx.savepoint(flow))  # a nested transact is a savepoint
    assert led.lookup_transfers([t.id for t in transfers]) == []
    assert [a.credits_posted for a in led.lookup_accounts([shop])] == [0]

    lift(led)
    results = led.create_transfers(transfers)
    assert {r.status.value for r in results} == {"created"}
    paid = sum(1 + n for n in range(BATCH))  # batch()'s amounts
    assert led.lookup_accounts([shop])[0].credits_posted == paid


def test_a_flow_that_goes_on_after_the_full_file_writes_nothing(sqlite_ledger: Ledger) -> None:
    """SQLite rolls the whole transaction back on SQLITE_FULL: a flow that catches the
    error and writes on must be refused, not left writing (and committing) statement by
    statement outside any transaction."""
    led = sqlite_ledger
    bank, shop = two_accounts(led)
    cap(led)
    late = uuid.uuid4()

    def flow(tx: Tx) -> None:
        with pytest.raises(StorageError, match="cannot grow"):
            tx.create_transfers(batch(bank, shop))
        tx.create_accounts([Account(late, "KES", 1)])  # one row: room enough for it

    with pytest.raises(StorageError, match="transaction was rolled back"):
        led.transact(flow)
    assert led.lookup_accounts([late]) == []


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Ledger, Client]]:
    """The API on the file (no background writers), its ledger, an operator's client."""
    open_ledger(sqlite_url, migrate=True).close()
    app = create_app(
        sqlite_url,
        settings=dataclasses.replace(FAST_TEST_SETTINGS),
        webhook_settings=WebhookSettings(worker_enabled=False),
    )
    server = ServerThread(app).start()
    path = tmp_path / "operator.pem"
    made = create_key(sqlite_url, "operator", "operator", "ed25519", path, setup_rules=False)
    client = Client.from_key_file(server.base_url, made["key_id"], path, attempts_max=1)
    try:
        yield server.base_url, app.state.ctx.ledger, client
    finally:
        client.close()
        server.stop()


def post_transfers(client: Client, body: dict[str, Any], key: str) -> httpx.Response:
    return client.request("POST", "/v1/transfers", json_body=body, idempotency_key=key)


def refused_as_not_ready(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert answer.json()["code"] == "not_ready"
    assert int(answer.headers["retry-after"]) >= 1


def test_a_signed_post_on_a_full_file_answers_503_then_runs_once_there_is_room(
    served: tuple[str, Ledger, Client],
) -> None:
    _base, led, client = served
    bank, shop = two_accounts(led)
    transfers = batch(bank, shop)
    body = {"transfers": [transfer_json(t) for t in transfers]}
    key = str(uuid.uuid4())
    pages = cap(led)

    refused_as_not_ready(post_transfers(client, body, key))
    assert led.lookup_transfers([t.id for t in transfers]) == []
    assert cap(led) == pages  # the file did not grow either

    lift(led)
    answer = post_transfers(client, body, key)  # no answer was stored: it runs now
    assert answer.status_code == 200, answer.text
    assert "idempotency-replayed" not in answer.headers
    assert {r["status"] for r in answer.json()["results"]} == {"created"}
    assert len(led.lookup_transfers([t.id for t in transfers])) == BATCH


def test_concurrent_posts_on_a_full_file_all_answer_503(
    served: tuple[str, Ledger, Client],
) -> None:
    """Concurrent requests share one transaction (group commit): the one that meets the
    full file must not leave the others writing outside it."""
    _base, led, client = served
    bank, shop = two_accounts(led)
    bodies = [{"transfers": [transfer_json(t) for t in batch(bank, shop)]} for _ in range(4)]
    cap(led)
    answers: list[httpx.Response] = []
    start = threading.Barrier(len(bodies))

    def send(body: dict[str, Any]) -> None:
        start.wait()
        answers.append(post_transfers(client, body, str(uuid.uuid4())))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == len(bodies)
    for answer in answers:
        refused_as_not_ready(answer)
    ids = [uuid.UUID(t["id"]) for body in bodies for t in body["transfers"]]
    assert led.lookup_transfers(ids) == []
    assert led.lookup_accounts([shop])[0].credits_posted == 0


def transfer_json(t: Transfer) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "debit_account_id": str(t.debit_account_id),
        "credit_account_id": str(t.credit_account_id),
        "amount": t.amount,
        "currency": t.currency,
        "code": t.code,
    }
