"""End-to-end over real HTTP, both engines: the happy paths of the signed API.

A storefront opens accounts, moves money, reads its statement and balances; keys rotate
and revoke; roles and tenants see only what they may; POSTs are idempotent; the client
corrects its clock and retries safely.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.client import Client, ProblemError
from api.observability import JsonFormatter
from api.openapi import REQUEST_MODELS
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

__all__ = ["api", "api_server"]


def test_storefront_opens_accounts_moves_money_and_reads_its_statement(api: Harness) -> None:
    shop = api.client("storefront")
    source, destination, funding = funded_pair(shop, 100_000)

    results = shop.create_transfers(
        [transfer_body(source, destination, 30_000), transfer_body(source, destination, 5_000)]
    )
    assert [r["status"] for r in results] == ["created", "created"]
    assert [r["index"] for r in results] == [0, 1]

    got = shop.get_account(source)
    assert got["debits_posted"] == 35_000
    assert got["credits_posted"] == 100_000
    assert got["flags"] == ["debits_must_not_exceed_credits"]
    assert shop.get_transfer(results[0]["id"])["amount"] == 30_000

    statement = shop.account_transfers(source, limit=2)
    assert [t["amount"] for t in statement["data"]] == [100_000, 30_000]
    assert statement["has_more"] is True
    rest = shop.account_transfers(source, limit=2, starting_after=statement["data"][-1]["id"])
    assert [t["amount"] for t in rest["data"]] == [5_000]
    assert rest["has_more"] is False

    assert shop.balance(source)["balance_posted"] == 65_000
    funded_at = datetime.fromisoformat(statement["data"][0]["created_at"])
    assert shop.balance(source, at=funded_at)["balance_posted"] == 100_000
    assert shop.balance(source, at=funded_at - timedelta(microseconds=1))["balance_posted"] == 0

    page = shop.list_accounts(limit=2)
    assert [a["id"] for a in page["data"]] == [funding, source]
    assert page["has_more"] is True
    last = shop.list_accounts(limit=2, starting_after=source)
    assert [a["id"] for a in last["data"]] == [destination]
    assert last["has_more"] is False


def test_an_overdraft_is_a_result_and_changes_nothing(api: Harness) -> None:
    shop = api.client("storefront")
    source, destination, _ = funded_pair(shop, 1_000)
    [result] = shop.create_transfers([transfer_body(source, destination, 1_001)])
    assert result["status"] == "exceeds_credits"
    assert result["type"] == "urn:vledger:problem:exceeds_credits"
    assert shop.get_account(source)["debits_posted"] == 0


def test_a_hold_posts_and_a_linked_batch_is_all_or_nothing(api: Harness) -> None:
    shop = api.client("storefront")
    source, destination, _ = funded_pair(shop, 10_000)
    hold = transfer_body(source, destination, 4_000, flags=["pending"], timeout_s=3600)
    post = {
        "id": str(uuid.uuid4()),
        "pending_id": hold["id"],
        "code": 1,
        "amount": 2_500,
        "flags": ["post_pending"],
    }
    assert [r["status"] for r in shop.create_transfers([hold])] == ["created"]
    assert [r["status"] for r in shop.create_transfers([post])] == ["created"]
    account = shop.get_account(source)
    assert (account["debits_posted"], account["debits_pending"]) == (2_500, 0)

    chain = [
        transfer_body(source, destination, 100, flags=["linked"]),
        transfer_body(source, destination, 1_000_000),
    ]
    statuses = [r["status"] for r in shop.create_transfers(chain)]
    assert statuses == ["linked_event_failed", "exceeds_credits"]
    assert shop.get_account(source)["debits_posted"] == 2_500


def test_hmac_keys_sign_too(api: Harness) -> None:
    shop = api.client("storefront", alg="hmac-sha256")
    created = shop.create_account(**account_body(currency="UGX"))
    assert shop.get_account(created["id"])["currency"] == "UGX"


def test_agents_sign_with_ed25519_only(api: Harness) -> None:
    with pytest.raises(ValueError, match="Ed25519"):
        api.key("agent", alg="hmac-sha256")
    agent = api.client("agent")
    assert agent.create_account(**account_body())["code"] == 101


def test_keys_rotate_then_the_old_one_is_revoked(api: Harness) -> None:
    name = f"shop-{uuid.uuid4().hex[:8]}"
    old = api.key("storefront", name)
    new = api.key("storefront", name)
    assert old["principal_id"] == new["principal_id"]
    assert old["key_id"] != new["key_id"]
    old_client, new_client = api.client_for(old), api.client_for(new)
    account = old_client.create_account(**account_body())["id"]
    assert new_client.get_account(account)["id"] == account  # the same principal's

    operator = api.client("operator")
    assert operator.revoke_key(old["key_id"]) == {"key_id": old["key_id"], "state": "revoked"}
    with pytest.raises(ProblemError) as refused:
        old_client.get_account(account)
    assert (refused.value.status, refused.value.code) == (401, "key_unknown")
    assert new_client.get_account(account)["id"] == account


def test_tenants_see_only_their_own_and_roles_are_enforced(api: Harness) -> None:
    alice, bob = api.client("storefront"), api.client("storefront")
    source, destination, _ = funded_pair(alice, 5_000)
    [paid] = alice.create_transfers([transfer_body(source, destination, 1_000)])

    for read in (
        lambda: bob.get_account(source),
        lambda: bob.get_transfer(paid["id"]),
        lambda: bob.account_transfers(source),
        lambda: bob.balance(source),
    ):
        with pytest.raises(ProblemError) as hidden:
            read()
        assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    assert bob.list_accounts()["data"] == []

    bob_account = bob.create_account(**account_body())["id"]
    with pytest.raises(ProblemError) as theft:
        bob.create_transfers([transfer_body(source, bob_account, 1_000)])
    assert (theft.value.status, theft.value.problem["index"]) == (404, 0)
    assert alice.get_account(source)["debits_posted"] == 1_000

    # paying into someone else's account is allowed: it is how a payment works
    [gift] = alice.create_transfers([transfer_body(source, bob_account, 10)])
    assert gift["status"] == "created"
    assert bob.get_transfer(gift["id"])["amount"] == 10

    auditor = api.client("auditor")
    assert auditor.get_account(source)["debits_posted"] == 1_010
    assert auditor.get_transfer(paid["id"])["id"] == paid["id"]
    for write in (
        lambda: auditor.create_account(**account_body()),
        lambda: auditor.create_transfers([transfer_body(source, destination, 1)]),
        lambda: auditor.revoke_key("k_whatever"),
    ):
        with pytest.raises(ProblemError) as denied:
            write()
        assert (denied.value.status, denied.value.code) == (403, "forbidden")

    with pytest.raises(ProblemError) as denied:
        alice.revoke_key("k_whatever")
    assert (denied.value.status, denied.value.code) == (403, "forbidden")

    operator = api.client("operator")
    [moved] = operator.create_transfers([transfer_body(source, destination, 1)])
    assert moved["status"] == "created"


def test_an_account_id_is_idempotent_and_another_tenants_id_is_not_leaked(api: Harness) -> None:
    alice, bob = api.client("storefront"), api.client("storefront")
    body = account_body()
    first = alice.create_account(**body)
    again = alice.request("POST", "/v1/accounts", json_body=body)  # a new Idempotency-Key
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    with pytest.raises(ProblemError) as taken:
        bob.create_account(**body)
    assert (taken.value.status, taken.value.code) == (409, "exists")
    assert "debits_posted" not in taken.value.problem


def test_same_idempotency_key_replays_the_stored_answer(api: Harness) -> None:
    shop = api.client("storefront")
    source, destination, _ = funded_pair(shop, 5_000)
    body = {"transfers": [transfer_body(source, destination, 700)]}
    first = shop.request("POST", "/v1/transfers", json_body=body, idempotency_key="pay-1")
    second = shop.request("POST", "/v1/transfers", json_body=body, idempotency_key="pay-1")
    assert first.status_code == second.status_code == 200
    assert "idempotency-replayed" not in first.headers
    assert second.headers["idempotency-replayed"] == "true"
    assert second.content == first.content
    assert shop.get_account(source)["debits_posted"] == 700

    # the key is scoped by principal and path: another principal may use it
    other = api.client("storefront")
    answer = other.request(
        "POST", "/v1/accounts", json_body=account_body(), idempotency_key="pay-1"
    )
    assert answer.status_code == 201


def test_client_corrects_its_clock_from_the_server_date(api: Harness) -> None:
    made = api.key("storefront")
    skewed = api.client_for(made, clock=lambda: datetime.now(UTC).timestamp() - 1_000)
    created = skewed.create_account(**account_body())
    assert skewed.get_account(created["id"])["id"] == created["id"]
    assert 990 < skewed.clock_offset_s < 1_010


class _DropFirstSend(httpx.HTTPTransport):
    """A network that loses the first request after the server answered it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        response = super().handle_request(request)
        if self.sent == 1:
            response.read()
            raise httpx.ReadError("connection reset", request=request)
        return response


def test_client_retries_a_lost_answer_with_the_same_key_and_pays_once(api: Harness) -> None:
    made = api.key("storefront")
    shop = api.client_for(made)
    source, destination, _ = funded_pair(shop, 5_000)
    transport = _DropFirstSend()
    flaky = api.client_for(made, transport=transport, sleep=lambda s: None)
    response = flaky.request(
        "POST", "/v1/transfers", json_body={"transfers": [transfer_body(source, destination, 900)]}
    )
    assert transport.sent == 2
    assert response.status_code == 200
    assert response.headers["idempotency-replayed"] == "true"
    assert shop.get_account(source)["debits_posted"] == 900


def test_openapi_is_3_1_and_documents_bodies_and_every_error(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in (
        "/v1/accounts",
        "/v1/accounts/{account_id}",
        "/v1/accounts/{account_id}/transfers",
        "/v1/accounts/{account_id}/balance",
        "/v1/transfers",
        "/v1/transfers/{transfer_id}",
    ):
        assert path in paths
    for path, operations in paths.items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"400", "401", "403", "404", "429", "500"} <= codes, (path, method)
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert {"Signature-Input", "Signature"} <= headers
            if method == "post":
                assert {"409", "413", "415", "422"} <= codes
                assert "Idempotency-Key" in headers
    create = paths["/v1/transfers"]["post"]["requestBody"]["content"]["application/json"]
    assert create["schema"]["$ref"] == "#/components/schemas/TransferBatchCreate"
    schemas = doc["components"]["schemas"]
    amount = schemas["TransferCreate"]["properties"]["amount"]["anyOf"][0]
    assert (amount["type"], amount["minimum"], amount["maximum"]) == ("integer", 1, 2**53 - 1)
    assert schemas["TransferCreate"]["additionalProperties"] is False
    assert "exceeds_credits" in schemas["Problem"]["properties"]["code"]["enum"]


def test_every_request_body_has_an_example_its_model_accepts(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    used: set[str] = set()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "requestBody" not in operation:
                continue
            bodies = operation["requestBody"]["content"]
            if "application/json" not in bodies:  # an upload: a file's bytes, raw or multipart
                assert any("example" in body for body in bodies.values()), (method, path)
                continue
            content = bodies["application/json"]
            assert "example" in content, (method, path)
            name = content["schema"]["$ref"].rsplit("/", 1)[1]
            REQUEST_MODELS[name].model_validate_json(json.dumps(content["example"]))
            used.add(name)
    assert used == set(REQUEST_MODELS)


def test_readyz_and_metrics(api: Harness) -> None:
    assert httpx.get(api.base_url + "/readyz").json() == {"status": "ready"}
    api.client("storefront").list_accounts()
    metrics = httpx.get(api.base_url + "/metrics").text
    assert 'vledger_http_requests_total{method="GET",route="/v1/accounts",status="200"}' in metrics


def test_rate_limit_answers_429_with_retry_after(api: Harness) -> None:
    from api.app import create_app

    server = ServerThread(
        create_app(
            api.db_url,
            settings=dataclasses.replace(
                FAST_TEST_SETTINGS, rate_limit_per_s=0.5, rate_limit_burst=3
            ),
        )
    ).start()
    try:
        made = api.key("storefront")
        client = Client.from_key_file(server.base_url, made["key_id"], made["path"], attempts_max=1)
        with client:
            answers = [client.request("GET", "/v1/accounts") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert answers[-1].json()["code"] == "rate_limited"
        assert int(answers[-1].headers["retry-after"]) >= 1
    finally:
        server.stop()


def test_logs_are_json_with_a_request_id_and_no_secrets(
    api: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    shop = api.client("storefront")

    def ours() -> list[dict[str, Any]]:
        lines = [
            json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "vledger.api"
        ]
        return [line for line in lines if line.get("key_id") == shop.key_id]

    with caplog.at_level(logging.INFO, logger="vledger.api"):
        shop.create_account(**account_body())
        # the access line is written once the answer is sent: it may trail the answer
        deadline = time.monotonic() + 5
        while not ours() and time.monotonic() < deadline:
            time.sleep(0.01)
    records = [r for r in caplog.records if r.name == "vledger.api"]
    [entry] = ours()
    assert entry["request_id"] and entry["status"] == 201
    text = "\n".join(JsonFormatter().format(r) for r in records)
    assert "signature" not in text.lower() and "BEGIN" not in text
