"""A rate-limit take is a transaction of its own, never part of a request's (issue 18).

The take commits with ``synchronous_commit = off`` on PostgreSQL. ``Ledger.transact``
nests (a transact inside another is a savepoint of it), so a take inside a request's
transaction would make that transaction's commit, the request's money, asynchronous:
:func:`ledger.flows.rate_buckets.take` refuses to run there, on both engines, and takes
nothing. The API takes the limit in ``authenticate``, before the request's transaction:
a signed request through the API still goes ahead, then is refused once the burst is
spent.
"""

from __future__ import annotations

import dataclasses
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


def test_a_signed_post_takes_its_limit_outside_the_request_transaction(
    db_url: str, ledger: Ledger, tmp_path: Path
) -> None:
    """The API's take (``authenticate``) runs before the request's transaction: a signed
    POST goes ahead (a take inside it would be refused: a 500), the next one is 429."""
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
