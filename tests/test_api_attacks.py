"""The issue's attack list, over real HTTP on both engines: each is refused with the
right 4xx and changes nothing.

Requests are signed by the client's own ``signed_headers`` and then tampered with, or
signed by hand with the library when the attack needs a signature the client would
never make.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from api.client import Client
from api.signatures import Sha256Digest
from tests.test_api_harness import (
    Harness,
    account_body,
    api,
    api_server,
    funded_pair,
    transfer_body,
)

__all__ = ["api", "api_server"]


def send(
    client: Client,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    idempotency_key: str | None = None,
    created: datetime | None = None,
    edit: dict[str, str | None] | None = None,
    send_path: str | None = None,
    send_body: bytes | None = None,
) -> httpx.Response:
    """Sign (method, path, body), then change what ``edit``/``send_*`` say, then send."""
    if method == "POST" and idempotency_key is None:
        idempotency_key = str(uuid.uuid4())
    url = client.url(path)
    headers = client.signed_headers(
        method, url, body, idempotency_key=idempotency_key, created=created
    )
    for name, value in (edit or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return httpx.request(
        method,
        client.url(send_path or path),
        content=body if send_body is None else send_body,
        headers={name: value.encode("utf-8") for name, value in headers.items()},
    )


def refused(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == code, problem
    assert problem["type"] == f"urn:vledger:problem:{code}"
    assert problem["status"] == status
    if status == 401:
        assert answer.headers["date"].endswith("GMT")


def transfer_json(debit: str, credit: str, amount: Any) -> bytes:
    return json.dumps({"transfers": [transfer_body(debit, credit, amount)]}).encode()


@pytest.fixture
def shop(api: Harness) -> Client:
    return api.client("storefront")


@pytest.fixture
def pair(shop: Client) -> tuple[str, str]:
    source, destination, _ = funded_pair(shop, 10_000)
    return source, destination


def debits(shop: Client, account: str) -> int:
    return int(shop.get_account(account)["debits_posted"])


# -- signatures -----------------------------------------------------------------------


def test_byte_identical_replay_gets_the_stored_answer_and_moves_nothing(
    shop: Client, pair: tuple[str, str]
) -> None:
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 1_000)
    headers = shop.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
    first = httpx.post(url, content=body, headers=headers)
    second = httpx.post(url, content=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.headers["idempotency-replayed"] == "true"
    assert second.content == first.content
    assert debits(shop, source) == 1_000
    # a signed GET replayed only reads again
    get_headers = shop.signed_headers("GET", shop.url(f"/v1/accounts/{source}"))
    assert httpx.get(shop.url(f"/v1/accounts/{source}"), headers=get_headers).status_code == 200
    assert httpx.get(shop.url(f"/v1/accounts/{source}"), headers=get_headers).status_code == 200


@pytest.mark.parametrize(
    ("offset_s", "accepted"),
    [(-301, False), (-290, True), (55, True), (62, False)],
    ids=["stale", "old-but-inside", "ahead-but-inside", "future"],
)
def test_created_must_be_within_300s_back_and_60s_ahead(
    shop: Client, pair: tuple[str, str], offset_s: int, accepted: bool
) -> None:
    source, destination = pair
    created = datetime.now(UTC) + timedelta(seconds=offset_s)
    answer = send(
        shop, "POST", "/v1/transfers", transfer_json(source, destination, 10), created=created
    )
    if accepted:
        assert answer.status_code == 200
        assert debits(shop, source) == 10
    else:
        refused(answer, 401, "signature_expired")
        assert debits(shop, source) == 0


def test_body_changed_under_the_old_digest(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    answer = send(
        shop,
        "POST",
        "/v1/transfers",
        transfer_json(source, destination, 10),
        send_body=transfer_json(source, destination, 9_999),
    )
    refused(answer, 401, "digest_mismatch")
    assert debits(shop, source) == 0


def test_body_and_digest_changed_under_the_old_signature(
    shop: Client, pair: tuple[str, str]
) -> None:
    source, destination = pair
    forged = transfer_json(source, destination, 9_999)
    answer = send(
        shop,
        "POST",
        "/v1/transfers",
        transfer_json(source, destination, 10),
        send_body=forged,
        edit={"content-digest": Sha256Digest.create(forged)},
    )
    refused(answer, 401, "signature_invalid")
    assert debits(shop, source) == 0


def test_query_or_path_edited(api: Harness, shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    refused(
        send(shop, "GET", "/v1/accounts?limit=1", send_path="/v1/accounts?limit=2"),
        401,
        "signature_invalid",
    )
    refused(
        send(shop, "GET", f"/v1/accounts/{source}", send_path=f"/v1/accounts/{destination}"),
        401,
        "signature_invalid",
    )
    other = api.client("storefront")
    theirs = other.create_account(**account_body())["id"]
    body = json.dumps({"transfers": [transfer_body(source, destination, 10)]}).encode()
    refused(
        send(shop, "POST", "/v1/transfers", body, send_path="/v1/accounts"),
        401,
        "signature_invalid",
    )
    assert debits(shop, source) == 0
    assert other.get_account(theirs)["credits_posted"] == 0


def test_unsigned_headers_injected(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    # an Idempotency-Key the signature does not cover
    refused(
        send(shop, "GET", "/v1/accounts", edit={"idempotency-key": '"x"'}),
        401,
        "signature_coverage",
    )
    # a second Content-Type line changes the covered value
    answer = send(
        shop,
        "POST",
        "/v1/transfers",
        transfer_json(source, destination, 10),
        edit={"content-type": "application/json, text/plain"},
    )
    refused(answer, 401, "signature_invalid")
    # headers nobody signed give nothing: the role is the key's, not a header's
    answer = send(shop, "GET", "/v1/accounts", edit={"x-role": "operator", "x-principal": "x"})
    assert answer.status_code == 200
    assert debits(shop, source) == 0


def test_unknown_revoked_and_another_tenants_key_id(api: Harness, shop: Client) -> None:
    account = shop.create_account(**account_body())["id"]
    path = f"/v1/accounts/{account}"
    url = shop.url(path)

    def with_keyid(key_id: str) -> httpx.Response:
        headers = shop.signed_headers("GET", url)
        headers["signature-input"] = headers["signature-input"].replace(
            f'keyid="{shop.key_id}"', f'keyid="{key_id}"'
        )
        return httpx.get(url, headers=headers)

    refused(with_keyid("k_doesnotexist"), 401, "key_unknown")
    other = api.key("storefront")
    refused(with_keyid(other["key_id"]), 401, "signature_invalid")

    doomed = api.key("storefront")
    doomed_client = api.client_for(doomed)
    api.client("operator").revoke_key(doomed["key_id"])
    refused(send(doomed_client, "GET", "/v1/accounts"), 401, "key_unknown")


def _hand_signed(
    client: Client,
    key: Any,
    method: str,
    url: str,
    body: bytes,
    *,
    components: list[str],
    alg_class: Any = algorithms.ED25519,
    include_alg: bool = True,
    tag: str = "vledger",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    class Msg:
        def __init__(self) -> None:
            self.method, self.url = method, url
            self.headers: dict[str, str] = {"content-type": "application/json"} if body else {}
            if body:
                self.headers["content-digest"] = Sha256Digest.create(body)
            self.headers.update(extra or {})

    msg = Msg()
    HTTPMessageSigner(
        signature_algorithm=alg_class,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={client.key_id: key}),
    ).sign(
        msg,
        key_id=client.key_id,
        created=datetime.now(UTC),
        label="vledger",
        tag=tag,
        include_alg=include_alg,
        covered_component_ids=components,
        use_existing_digest=bool(body),
    )
    return {name.lower(): value for name, value in msg.headers.items()}


def test_alg_swapped_or_missing(api: Harness, shop: Client) -> None:
    url = shop.url("/v1/accounts")
    headers = shop.signed_headers("GET", url)
    headers["signature-input"] = headers["signature-input"].replace(
        'alg="ed25519"', 'alg="hmac-sha256"'
    )
    refused(httpx.get(url, headers=headers), 401, "signature_invalid")
    missing = _hand_signed(
        shop, shop._key, "GET", url, b"", components=["@method", "@target-uri"], include_alg=False
    )
    refused(httpx.get(url, headers=missing), 401, "signature_invalid")
    # an HMAC key's secret used as if the key were Ed25519's is refused too
    hmac_made = api.key("storefront", alg="hmac-sha256")
    hmac_client = api.client_for(hmac_made)
    claimed = _hand_signed(
        hmac_client,
        hmac_client._key,
        "GET",
        url,
        b"",
        components=["@method", "@target-uri"],
        alg_class=algorithms.HMAC_SHA256,
    )
    claimed["signature-input"] = claimed["signature-input"].replace(
        'alg="hmac-sha256"', 'alg="ed25519"'
    )
    refused(httpx.get(url, headers=claimed), 401, "signature_invalid")


@pytest.mark.parametrize(
    "components",
    [
        ["@method"],
        ["@target-uri"],
        ["@method", "@target-uri", "content-type"],
        ["@method", "@target-uri", "content-type", "content-digest"],
        ["@method", "@path", "content-type", "content-digest", "idempotency-key"],
    ],
    ids=["no-target", "no-method", "no-digest", "no-idempotency-key", "path-not-target-uri"],
)
def test_a_signature_must_cover_the_required_components(
    shop: Client, pair: tuple[str, str], components: list[str]
) -> None:
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 10)
    headers = _hand_signed(
        shop,
        shop._key,
        "POST",
        url,
        body,
        components=components,
        extra={"idempotency-key": '"k1"'},
    )
    refused(httpx.post(url, content=body, headers=headers), 401, "signature_coverage")
    assert debits(shop, source) == 0


def test_another_tag_is_not_our_signature(shop: Client) -> None:
    url = shop.url("/v1/accounts")
    headers = _hand_signed(
        shop, shop._key, "GET", url, b"", components=["@method", "@target-uri"], tag="other"
    )
    refused(httpx.get(url, headers=headers), 401, "signature_invalid")


@pytest.mark.parametrize(
    "edit",
    [
        {"signature-input": None, "signature": None},
        {"signature": None},
        {"signature-input": None},
        {"signature": "vledger=:not base64!:"},
        {"signature": "vledger=:AAAA:"},
        {"signature": "vledger=(oops"},
        {"signature-input": 'vledger=("@method" "@target-uri";created=1'},
        {"signature-input": "vledger=x"},
        {"signature-input": 'vledger=("@method");created="now";keyid="k";tag="vledger"'},
        {"signature-input": '\u00e9=("@method")'},
        {"content-digest": "sha-256=:AAAA:"},
        {"content-digest": "md5=:AAAA:"},
        {"content-digest": "sha-512=:" + "A" * 88 + ":"},
    ],
    ids=lambda e: "-".join(f"{k}:{'drop' if v is None else len(v)}" for k, v in e.items()),
)
def test_malformed_signature_fields_are_401_never_5xx(
    shop: Client, pair: tuple[str, str], edit: dict[str, str | None]
) -> None:
    source, destination = pair
    answer = send(shop, "POST", "/v1/transfers", transfer_json(source, destination, 10), edit=edit)
    assert answer.status_code == 401, answer.text
    assert answer.json()["code"] in {
        "signature_missing",
        "signature_invalid",
        "signature_coverage",
        "digest_mismatch",
    }
    assert debits(shop, source) == 0


# -- size, idempotency, concurrency ---------------------------------------------------


def test_oversized_body_is_413_declared_or_streamed(shop: Client, pair: tuple[str, str]) -> None:
    source, _ = pair
    big = b'{"transfers":[' + b" " * (1_048_576) + b"]}"
    refused(send(shop, "POST", "/v1/transfers", big), 413, "body_too_large")

    def chunks() -> Any:
        for _ in range(17):
            yield b" " * 65_536

    url = shop.url("/v1/transfers")
    headers = shop.signed_headers("POST", url, b"{}", idempotency_key="big")
    answer = httpx.post(url, content=chunks(), headers=headers)
    refused(answer, 413, "body_too_large")
    assert debits(shop, source) == 0


def test_same_idempotency_key_with_another_body_is_422(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    first = send(
        shop,
        "POST",
        "/v1/transfers",
        transfer_json(source, destination, 10),
        idempotency_key="order-1",
    )
    assert first.status_code == 200
    refused(
        send(
            shop,
            "POST",
            "/v1/transfers",
            transfer_json(source, destination, 20),
            idempotency_key="order-1",
        ),
        422,
        "idempotency_key_reused",
    )
    assert debits(shop, source) == 10


def test_idempotency_key_missing_or_malformed_is_400(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 10)
    headers = shop.signed_headers("POST", url, body)
    refused(httpx.post(url, content=body, headers=headers), 400, "idempotency_key_missing")
    for bad in ('"' + "x" * 256 + '"', '"caf\\u00e9"', "(a b)", '""'):
        resigned = _resign_with_key_header(shop, url, body, bad)
        answer = httpx.post(url, content=body, headers=resigned)
        refused(answer, 400, "idempotency_key_invalid")
    assert debits(shop, source) == 0


def _resign_with_key_header(shop: Client, url: str, body: bytes, raw: str) -> dict[str, str]:
    return _hand_signed(
        shop,
        shop._key,
        "POST",
        url,
        body,
        components=["@method", "@target-uri", "content-type", "content-digest", "idempotency-key"],
        extra={"idempotency-key": raw},
    )


def test_ten_concurrent_identical_posts_have_one_effect(
    shop: Client, pair: tuple[str, str]
) -> None:
    source, destination = pair
    url = shop.url("/v1/transfers")
    body = transfer_json(source, destination, 100)
    headers = shop.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
    answers: list[httpx.Response] = []
    start = threading.Barrier(10)

    def post() -> None:
        start.wait()
        answers.append(httpx.post(url, content=body, headers=headers, timeout=30))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}, statuses
    fresh = [a for a in answers if a.status_code == 200 and "idempotency-replayed" not in a.headers]
    assert len(fresh) == 1
    for a in answers:
        if a.status_code == 409:
            assert a.json()["code"] == "idempotency_in_progress"
            assert int(a.headers["retry-after"]) >= 1
        else:
            assert a.json() == fresh[0].json()
    assert debits(shop, source) == 100


# -- roles and input ------------------------------------------------------------------


def test_storefront_key_on_an_operator_route_is_403(api: Harness, shop: Client) -> None:
    victim = api.key("storefront")
    refused(send(shop, "POST", f"/v1/keys/{victim['key_id']}/revoke"), 403, "forbidden")
    assert api.client_for(victim).list_accounts()["data"] == []


@pytest.mark.parametrize(
    "extra",
    [
        {"debits_posted": 5},
        {"credits_posted": 1_000_000},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"owner": "someone"},
        {"principal_id": str(uuid.uuid4())},
    ],
    ids=lambda e: next(iter(e)),
)
def test_mass_assignment_on_accounts_is_refused(
    api: Harness, shop: Client, extra: dict[str, Any]
) -> None:
    body = account_body(**extra)
    answer = send(shop, "POST", "/v1/accounts", json.dumps(body).encode())
    refused(answer, 422, "validation_failed")
    assert not api.ledger.lookup_accounts([uuid.UUID(body["id"])])


@pytest.mark.parametrize(
    "extra",
    [{"status": "created"}, {"created_at": "2020-01-01T00:00:00Z"}, {"fee": 0}],
    ids=lambda e: next(iter(e)),
)
def test_mass_assignment_on_transfers_is_refused(
    api: Harness, shop: Client, pair: tuple[str, str], extra: dict[str, Any]
) -> None:
    source, destination = pair
    transfer = transfer_body(source, destination, 10, **extra)
    answer = send(shop, "POST", "/v1/transfers", json.dumps({"transfers": [transfer]}).encode())
    refused(answer, 422, "validation_failed")
    assert not api.ledger.lookup_transfers([uuid.UUID(transfer["id"])])


def _raw_transfer(source: str, destination: str, amount: str, currency: str = '"KES"') -> bytes:
    return (
        f'{{"transfers":[{{"id":"{uuid.uuid4()}","debit_account_id":"{source}",'
        f'"credit_account_id":"{destination}","amount":{amount},"currency":{currency},'
        '"code":1}]}'
    ).encode()


@pytest.mark.parametrize(
    ("amount", "status", "code"),
    [
        ("100.0", 400, "invalid_json"),
        ("1e3", 400, "invalid_json"),
        ("1E3", 400, "invalid_json"),
        ("NaN", 400, "invalid_json"),
        ("Infinity", 400, "invalid_json"),
        ("-Infinity", 400, "invalid_json"),
        ("\uff11\uff10\uff10", 400, "invalid_json"),
        ("\u0661\u0660\u0660", 400, "invalid_json"),
        ("0100", 400, "invalid_json"),
        ('"100"', 422, "validation_failed"),
        ('"\uff11\uff10\uff10"', 422, "validation_failed"),
        ("true", 422, "validation_failed"),
        ("null", 422, "validation_failed"),
        ("[100]", 422, "validation_failed"),
        ("0", 422, "validation_failed"),
        ("-1", 422, "validation_failed"),
        (str(2**53), 422, "validation_failed"),
        ("9" * 40, 400, "invalid_json"),
    ],
)
def test_bad_amounts_are_refused(
    shop: Client, pair: tuple[str, str], amount: str, status: int, code: str
) -> None:
    source, destination = pair
    answer = send(shop, "POST", "/v1/transfers", _raw_transfer(source, destination, amount))
    refused(answer, status, code)
    assert debits(shop, source) == 0


def test_the_largest_amount_is_taken(shop: Client) -> None:
    source, destination, _ = funded_pair(shop, 2**53 - 1)  # lent by an operator
    answer = send(shop, "POST", "/v1/transfers", _raw_transfer(source, destination, str(2**53 - 1)))
    assert answer.status_code == 200
    assert answer.json()["results"][0]["status"] == "created"


@pytest.mark.parametrize(
    ("currency", "status", "code"),
    [
        ('"kes"', 422, "validation_failed"),
        ('"KE"', 422, "validation_failed"),
        ('"KESS"', 422, "validation_failed"),
        ('"\uff2b\uff25\uff33"', 422, "validation_failed"),
        ('"K\u0395S"', 422, "validation_failed"),
        ("404", 422, "validation_failed"),
        ('"XXX"', 422, "currency_not_supported"),
    ],
)
def test_bad_currencies_are_refused(
    api: Harness, shop: Client, currency: str, status: int, code: str
) -> None:
    account_id = uuid.uuid4()
    body = f'{{"id":"{account_id}","currency":{currency},"code":101}}'.encode()
    refused(send(shop, "POST", "/v1/accounts", body), status, code)
    assert not api.ledger.lookup_accounts([account_id])


def test_transfer_currency_is_checked_too(shop: Client, pair: tuple[str, str]) -> None:
    source, destination = pair
    answer = send(shop, "POST", "/v1/transfers", _raw_transfer(source, destination, "10", '"kes"'))
    refused(answer, 422, "validation_failed")
    answer = send(shop, "POST", "/v1/transfers", _raw_transfer(source, destination, "10", '"UGX"'))
    assert answer.json()["results"][0]["status"] == "currency_must_match_accounts"
    assert debits(shop, source) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"id":"%(id)s","id":"%(id)s","currency":"KES","code":101}',
        b'{"id":"%(id)s","currency":"KES","code":101,"currency":"UGX"}',
        b"\xff\xfe{}",
        b"\xef\xbb\xbf{}",
        b'{"id":"%(id)s","currency":"KES","code":101',
        b'{"id":"%(id)s","currency":"KES","code":101} {}',
        b"[" * 40 + b"]" * 40,
        b"{}" + b" " * 10,
    ],
    ids=["dup-id", "dup-currency", "not-utf8", "bom", "truncated", "trailing", "deep", "empty-obj"],
)
def test_malformed_json_is_400(api: Harness, shop: Client, body: bytes) -> None:
    account_id = uuid.uuid4()
    raw = body.replace(b"%(id)s", str(account_id).encode())
    answer = send(shop, "POST", "/v1/accounts", raw)
    if raw.startswith(b"{}"):
        refused(answer, 422, "validation_failed")  # well-formed, but not an account
    else:
        refused(answer, 400, "invalid_json")
    assert not api.ledger.lookup_accounts([account_id])


def test_a_post_without_a_body_is_415(shop: Client) -> None:
    url = shop.url("/v1/accounts")
    headers = shop.signed_headers("POST", url, b"", idempotency_key="empty")
    refused(httpx.post(url, headers=headers), 415, "unsupported_media_type")


def test_wrong_content_type_is_415(shop: Client) -> None:
    url = shop.url("/v1/accounts")
    body = json.dumps(account_body()).encode()
    headers = _hand_signed(
        shop,
        shop._key,
        "POST",
        url,
        body,
        components=["@method", "@target-uri", "content-type", "content-digest", "idempotency-key"],
        extra={"content-type": "text/plain", "idempotency-key": '"ct"'},
    )
    refused(httpx.post(url, content=body, headers=headers), 415, "unsupported_media_type")


@pytest.mark.parametrize(
    ("query", "ok"),
    [
        ("limit=100", True),
        ("limit=101", False),
        ("limit=0", False),
        ("limit=x", False),
        ("starting_after=nope", False),
        (f"starting_after={uuid.UUID(int=7)}", False),
    ],
)
def test_page_size_and_cursor_limits(shop: Client, query: str, ok: bool) -> None:
    answer = send(shop, "GET", f"/v1/accounts?{query}")
    if ok:
        assert answer.status_code == 200
    else:
        refused(answer, 400, "invalid_parameter")


def test_bad_path_and_query_values_are_400(shop: Client) -> None:
    refused(send(shop, "GET", "/v1/accounts/not-a-uuid"), 400, "invalid_parameter")
    account = shop.create_account(**account_body())["id"]
    refused(
        send(shop, "GET", f"/v1/accounts/{account}/balance?at=yesterday"), 400, "invalid_parameter"
    )
    refused(
        send(shop, "GET", f"/v1/accounts/{account}/balance?at=2026-01-01T00:00:00"),
        400,
        "invalid_parameter",
    )
    refused(send(shop, "GET", "/v1/nothing-here"), 404, "not_found")


def test_every_answer_forbids_sniffing_even_a_404_that_echoes_its_path(api: Harness) -> None:
    """A problem echoes the request's path in ``instance``: a browser must never read it as
    HTML, whatever the route (a 404 of no route, an unsigned 401, a health check)."""
    for path in ("/no-such-route/<script>alert(1)</script>", "/v1/accounts", "/healthz"):
        answer = httpx.get(api.base_url + path)
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], path
        assert "html" not in answer.headers["content-type"]
