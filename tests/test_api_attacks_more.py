"""More of the issue's attacks, over real HTTP on both engines (beside ``test_api_attacks``).

Concurrency past the Idempotency-Key (ten requests with ten keys and one transfer id),
a signature moved to another authority, a second ``vledger`` signature, a storefront
key on agent routes, a rate-limited write, and a phone whose clock runs ahead: each is
answered with its 4xx (or corrected by the client) and moves nothing it should not.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from api.app import create_app
from api.client import Client
from tests.test_api_attacks import debits, refused, send, transfer_json
from tests.test_api_harness import (
    FAST_TEST_SETTINGS,
    Harness,
    ServerThread,
    account_body,
    api,
    api_server,
    funded_pair,
    transfer_body,
)
from webhooks import WebhookSettings

__all__ = ["api", "api_server"]

CONCURRENT_REQUESTS = 10


@pytest.fixture
def shop(api: Harness) -> Client:
    return api.client("storefront")


@pytest.fixture
def pair(shop: Client) -> tuple[str, str]:
    source, destination, _ = funded_pair(shop, 10_000)
    return source, destination


def test_ten_concurrent_posts_with_ten_keys_and_one_transfer_id_move_money_once(
    shop: Client, pair: tuple[str, str]
) -> None:
    """The Idempotency-Key cannot catch these (ten keys): the transfer id does."""
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 250)
    signed = [
        shop.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
        for _ in range(CONCURRENT_REQUESTS)
    ]
    answers: list[httpx.Response] = []
    start = threading.Barrier(CONCURRENT_REQUESTS)

    def post(headers: dict[str, str]) -> None:
        start.wait()
        answers.append(httpx.post(url, content=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=post, args=(h,)) for h in signed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * CONCURRENT_REQUESTS
    statuses = sorted(a.json()["results"][0]["status"] for a in answers)
    assert statuses == ["created"] + ["exists"] * (CONCURRENT_REQUESTS - 1)
    assert debits(shop, source) == 250


def test_ten_concurrent_account_creations_with_one_id_make_one_account(shop: Client) -> None:
    url = shop.url("/v1/accounts")
    body = json.dumps(account_body()).encode()
    signed = [
        shop.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
        for _ in range(CONCURRENT_REQUESTS)
    ]
    answers: list[httpx.Response] = []
    start = threading.Barrier(CONCURRENT_REQUESTS)

    def post(headers: dict[str, str]) -> None:
        start.wait()
        answers.append(httpx.post(url, content=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=post, args=(h,)) for h in signed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (CONCURRENT_REQUESTS - 1) + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(shop.list_accounts(limit=100)["data"]) == 1


def test_a_signature_moved_to_another_authority_is_refused(
    shop: Client, pair: tuple[str, str]
) -> None:
    source, destination = pair
    # signed for 127.0.0.1:port, sent with Host: localhost:port (same socket)
    port = httpx.URL(shop.base_url).port
    answer = send(
        shop,
        "POST",
        "/v1/transfers",
        transfer_json(source, destination, 10),
        edit={"host": f"localhost:{port}"},
    )
    refused(answer, 401, "signature_invalid")
    assert debits(shop, source) == 0


def test_a_second_vledger_signature_is_refused(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 10)
    headers = shop.signed_headers("POST", url, body, idempotency_key="two-sigs")
    params = headers["signature-input"].split("=", 1)[1]
    value = headers["signature"].split("=", 1)[1]
    headers["signature-input"] += f", again={params}"
    headers["signature"] += f", again={value}"
    refused(httpx.post(url, content=body, headers=headers), 401, "signature_invalid")
    assert debits(shop, source) == 0


def test_a_storefront_key_on_agent_routes_is_403_and_changes_nothing(
    api: Harness, shop: Client
) -> None:
    agent_key = api.key("agent")
    agent = api.client_for(agent_key)
    agent_id = agent_key["principal_id"]
    for path, body in (
        (
            "/v1/devices",
            {"id": str(uuid.uuid4()), "public_key": "A" * 43 + "=", "allowance_minor": 100},
        ),
        (
            f"/v1/agents/{agent_id}/cash-ins",
            {"id": str(uuid.uuid4()), "villager_id": str(uuid.uuid4()), "amount_minor": 100},
        ),
        (
            f"/v1/agents/{agent_id}/float-topups",
            {"id": str(uuid.uuid4()), "amount_minor": 100, "provider": "KCB"},
        ),
    ):
        answer = send(shop, "POST", path, json.dumps(body).encode())
        refused(answer, 403, "forbidden")
    refused(send(shop, "GET", f"/v1/agents/{agent_id}/float"), 403, "forbidden")
    refused(
        send(agent, "POST", "/v1/parties", json.dumps({"id": agent_id}).encode()), 403, "forbidden"
    )


def test_a_rate_limited_write_moves_nothing_and_the_client_retries_after(api: Harness) -> None:
    limited = ServerThread(
        create_app(
            api.db_url,
            settings=dataclasses.replace(
                FAST_TEST_SETTINGS, rate_limit_per_s=2.0, rate_limit_burst=1
            ),
            webhook_settings=WebhookSettings(worker_enabled=False),
        )
    ).start()
    try:
        made = api.key("storefront")
        source, destination, _ = funded_pair(api.client_for(made), 1_000)
        strict = Client.from_key_file(
            limited.base_url, made["key_id"], made["path"], attempts_max=1
        )
        patient = Client.from_key_file(
            limited.base_url, made["key_id"], made["path"], attempts_max=3
        )
        with strict, patient:
            body = {"transfers": [transfer_body(source, destination, 40)]}
            assert strict.request("GET", "/v1/accounts").status_code == 200  # the burst
            answer = strict.request("POST", "/v1/transfers", json_body=body, idempotency_key="r1")
            refused(answer, 429, "rate_limited")
            assert int(answer.headers["retry-after"]) >= 1
            assert api.client_for(made).get_account(source)["debits_posted"] == 0
            # the same key and body after Retry-After: one effect, not a stored 429
            again = patient.request("POST", "/v1/transfers", json_body=body, idempotency_key="r1")
            assert again.status_code == 200, again.text
            assert again.json()["results"][0]["status"] == "created"
        assert api.client_for(made).get_account(source)["debits_posted"] == 40
    finally:
        limited.stop()


def test_a_client_whose_clock_runs_ahead_corrects_it_from_date(api: Harness) -> None:
    made = api.key("storefront")
    ahead = api.client_for(made, clock=lambda: datetime.now(UTC).timestamp() + 1_000)
    created = ahead.create_account(**account_body())  # 401 signature_expired, then retried
    assert ahead.get_account(created["id"])["id"] == created["id"]
    assert -1_010 < ahead.clock_offset_s < -990


def test_a_refused_signature_is_not_retried_into_a_different_request(
    shop: Client, pair: tuple[str, str]
) -> None:
    """A stale signature answers 401 and stores nothing under its Idempotency-Key: the
    same key then runs the request once."""
    source, destination = pair
    body = transfer_json(source, destination, 70)
    stale = datetime.fromtimestamp(datetime.now(UTC).timestamp() - 400, UTC)
    refused(
        send(shop, "POST", "/v1/transfers", body, idempotency_key="k-stale", created=stale),
        401,
        "signature_expired",
    )
    answer = send(shop, "POST", "/v1/transfers", body, idempotency_key="k-stale")
    assert answer.status_code == 200
    assert "idempotency-replayed" not in answer.headers
    assert debits(shop, source) == 70
