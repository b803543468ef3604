"""Where a rate-limit take commits (issues 17 and 18).

:func:`ledger.flows.rate_buckets.take` commits with ``synchronous_commit = off`` on
PostgreSQL. ``Ledger.transact`` nests (a transact inside another is a savepoint of it),
so that take inside a request's transaction would make that transaction's commit, the
request's money, asynchronous: it refuses to run there, on both engines, and takes
nothing. A POST takes with :func:`~ledger.flows.rate_buckets.take_in` in its own
transaction instead (``api.context.run_post``), durably: it goes ahead, then is refused
once the burst is spent; a 429 is not stored (the same Idempotency-Key goes ahead once
the bucket refills); a POST refused before its transaction (a wrong role, no
Idempotency-Key) still takes.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from api.app import create_app
from api.client import Client
from api.keys import create_key
from api.local_server import ServerThread
from ledger import Ledger
from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx
from ledger.flows import rate_buckets
from ledger.flows.rate_buckets import Rate
from tests.test_api_harness import FAST_TEST_SETTINGS
from webhooks.settings import WebhookSettings

ONE_A_MINUTE = Rate.per_second(1 / 60, 1)
"""A burst of one: a second take in the same minute is refused."""


def new_key(db_url: str, folder: Path) -> dict[str, str]:
    path = folder / f"{uuid.uuid4().hex}.pem"
    made = create_key(db_url, "storefront", f"shop-{uuid.uuid4().hex[:8]}", "ed25519", path)
    return {**made, "path": str(path)}


def taken_inside(ledger: Ledger, key: str) -> None:
    def work(tx: Tx) -> int:
        tx.execute("SELECT 1")
        return rate_buckets.take(ledger, key, ONE_A_MINUTE)

    ledger.transact(work)


def taken_inside_a_group(ledger: Ledger, key: str) -> None:
    ledger.transact_grouped(lambda tx: rate_buckets.take(ledger, key, ONE_A_MINUTE))


@pytest.mark.parametrize("inside", [taken_inside, taken_inside_a_group])
def test_a_take_inside_an_open_transaction_is_refused_and_takes_nothing(
    db_url: str, ledger: Ledger, tmp_path: Path, inside: Callable[[Ledger, str], None]
) -> None:
    key = new_key(db_url, tmp_path)["key_id"]
    with pytest.raises(InvariantViolation, match="outside any transaction"):
        inside(ledger, key)
    assert rate_buckets.take(ledger, key, ONE_A_MINUTE) == 0  # the burst was still there
    assert rate_buckets.take(ledger, key, ONE_A_MINUTE) > 0


def test_a_signed_post_takes_its_limit_in_the_request_transaction(
    db_url: str, ledger: Ledger, tmp_path: Path
) -> None:
    """A signed POST takes in its own transaction (``take_in``; ``take`` there would be
    refused: a 500) and goes ahead; the next one is 429."""
    made = new_key(db_url, tmp_path)
    settings = dataclasses.replace(FAST_TEST_SETTINGS, rate_limit_per_s=1 / 60, rate_limit_burst=1)
    hooks = WebhookSettings(worker_enabled=False)
    server = ServerThread(create_app(db_url, settings=settings, webhook_settings=hooks)).start()
    try:
        with Client.from_key_file(
            server.base_url, made["key_id"], made["path"], attempts_max=1
        ) as client:
            account = {"id": str(uuid.uuid4()), "currency": "KES", "code": 1}
            first = client.request("POST", "/v1/accounts", json_body=account)
            second = client.request("POST", "/v1/accounts", json_body=account)
    finally:
        server.stop()
    assert first.status_code == 201, first.text
    assert (second.status_code, second.json()["code"]) == (429, "rate_limited")


def _serve(db_url: str, rate_per_s: float) -> ServerThread:
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS, rate_limit_per_s=rate_per_s, rate_limit_burst=1
    )
    hooks = WebhookSettings(worker_enabled=False)
    return ServerThread(create_app(db_url, settings=settings, webhook_settings=hooks)).start()


def test_a_429_is_not_stored_the_same_key_goes_ahead_once_refilled(
    db_url: str, ledger: Ledger, tmp_path: Path
) -> None:
    made = new_key(db_url, tmp_path)
    server = _serve(db_url, rate_per_s=4)  # one request each 250 ms after a burst of one
    try:
        with Client.from_key_file(
            server.base_url, made["key_id"], made["path"], attempts_max=1
        ) as client:
            account = {"id": str(uuid.uuid4()), "currency": "KES", "code": 1}
            first = client.request("POST", "/v1/accounts", json_body=account)
            other = {"id": str(uuid.uuid4()), "currency": "KES", "code": 1}
            key = str(uuid.uuid4())
            limited = client.request("POST", "/v1/accounts", json_body=other, idempotency_key=key)
            threading.Event().wait(0.6)
            again = client.request("POST", "/v1/accounts", json_body=other, idempotency_key=key)
    finally:
        server.stop()
    assert first.status_code == 201, first.text
    assert (limited.status_code, limited.json()["code"]) == (429, "rate_limited")
    assert again.status_code == 201, again.text
    assert "idempotency-replayed" not in again.headers
    assert [a.id for a in ledger.lookup_accounts([uuid.UUID(other["id"])])] == [
        uuid.UUID(other["id"])
    ]


@pytest.mark.parametrize("refusal", ["wrong_role", "no_idempotency_key"])
def test_a_post_refused_before_its_transaction_still_takes(
    db_url: str, ledger: Ledger, tmp_path: Path, refusal: str
) -> None:
    made = new_key(db_url, tmp_path)  # a storefront's key
    server = _serve(db_url, rate_per_s=1 / 60)
    try:
        with Client.from_key_file(
            server.base_url, made["key_id"], made["path"], attempts_max=1
        ) as client:
            if refusal == "wrong_role":  # a storefront records no cash-in
                path = f"/v1/agents/{uuid.uuid4()}/cash-ins"
                refused = client.request("POST", path, json_body={})
            else:
                url = client.url("/v1/accounts", None)
                headers = client.signed_headers("POST", url, b"{}", idempotency_key=None)
                refused = client._http.request("POST", url, content=b"{}", headers=headers)
            account = {"id": str(uuid.uuid4()), "currency": "KES", "code": 1}
            after = client.request("POST", "/v1/accounts", json_body=account)
    finally:
        server.stop()
    assert refused.status_code == (403 if refusal == "wrong_role" else 400), refused.text
    assert (after.status_code, after.json()["code"]) == (429, "rate_limited")
