"""Enrollment over signed HTTP, both engines: operators issue codes (and only they), the
code is answered once, a redeem is signed by the key it registers (proof of possession),
and bad input is refused with nothing changed."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from api.app import create_app
from api.local_server import ServerThread
from api.principals import Alg, find_key
from api.settings import Settings
from api.signatures import sign_request
from ledger import open_ledger
from ledger.flows import enrollment, events, parties
from ledger.flows.enrollment.service import ISSUED
from ledger.flows.parties import Kind
from ledger.limits import LIST_PAGE_SIZE_MAX as PAGE
from tests.test_api_harness import Harness, api, api_server

__all__ = ["api", "api_server"]

REDEEM = "/v1/enrollments/redeem"


def public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def agent_principal(api: Harness) -> str:
    made = api.key("agent")
    parties.onboard(
        api.ledger,
        party_id=uuid.UUID(made["principal_id"]),
        kind=Kind.AGENT,
        name="Duka",
        currency="KES",
    )
    return made["principal_id"]


def issue(api: Harness, principal_id: str) -> dict[str, Any]:
    operator = api.client("operator")
    answer = operator.request("POST", "/v1/enrollments", json_body={"principal_id": principal_id})
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def redeem(
    base_url: str,
    body: dict[str, Any] | bytes,
    signer: Ed25519PrivateKey | None,
    *,
    key_id: str | None = None,
) -> httpx.Response:
    """POST the redeem, signed by ``signer`` with ``key_id`` (default: its thumbprint)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", "idempotency-key": f'"{uuid.uuid4()}"'}
    if signer is not None:
        thumb = enrollment.thumbprint(base64.b64decode(public_b64(signer)))
        headers = sign_request(
            method="POST",
            url=base_url + REDEEM,
            headers=headers,
            body=raw,
            key_id=key_id or thumb,
            alg=Alg.ED25519,
            private_key=signer,
        )
    return httpx.post(base_url + REDEEM, content=raw, headers=headers)


def test_an_operator_issues_a_code_once_and_the_new_key_signs_requests(api: Harness) -> None:
    agent = agent_principal(api)
    operator = api.client("operator")
    key = str(uuid.uuid4())
    first = operator.request(
        "POST", "/v1/enrollments", json_body={"principal_id": agent}, idempotency_key=key
    )
    assert first.status_code == 201, first.text
    issued = first.json()
    assert issued["role"] == "agent" and issued["principal_id"] == agent
    assert enrollment.normalise(issued["code"]) is not None
    assert issued["qr_svg"].startswith("<svg") and "<script" not in issued["qr_svg"]
    again = operator.request(
        "POST", "/v1/enrollments", json_body={"principal_id": agent}, idempotency_key=key
    )
    assert again.status_code == 201 and again.headers["idempotency-replayed"] == "true"
    assert again.json()["id"] == issued["id"] and again.json()["code"] is None
    phone = Ed25519PrivateKey.generate()
    answer = redeem(api.base_url, {"code": issued["code"], "public_key": public_b64(phone)}, phone)
    assert answer.status_code == 201, answer.text
    enrolled = answer.json()
    assert enrolled["principal_id"] == agent and enrolled["key_id"].startswith("k_")
    key_file = api.key_dir / f"{uuid.uuid4().hex}.pem"
    key_file.write_bytes(phone.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    app = api.client_for({"key_id": enrolled["key_id"], "path": str(key_file)})
    device = app.request("GET", f"/v1/devices/{enrolled['device_id']}")
    assert device.status_code == 200, device.text
    assert device.json()["public_key"] == public_b64(phone)
    # the same key redeeming again answers the same; another key is refused
    replay = redeem(api.base_url, {"code": issued["code"], "public_key": public_b64(phone)}, phone)
    assert replay.status_code == 201 and replay.json() == enrolled
    other = Ed25519PrivateKey.generate()
    used = redeem(api.base_url, {"code": issued["code"], "public_key": public_b64(other)}, other)
    assert used.status_code == 422 and used.json()["code"] == "enrollment_code_used"


@pytest.mark.parametrize("role", ["agent", "auditor", "storefront"])
def test_only_an_operator_issues_codes(api: Harness, role: str) -> None:
    agent = agent_principal(api)
    caller = api.client(role)
    answer = caller.request("POST", "/v1/enrollments", json_body={"principal_id": agent})
    assert answer.status_code == 403 and answer.json()["code"] == "forbidden"


def test_issuing_for_no_principal_or_a_storefront_is_refused(api: Harness) -> None:
    operator = api.client("operator")
    none = operator.request(
        "POST", "/v1/enrollments", json_body={"principal_id": str(uuid.uuid4())}
    )
    assert none.status_code == 404 and none.json()["code"] == "principal_not_found"
    shop = api.key("storefront")["principal_id"]
    refused = operator.request("POST", "/v1/enrollments", json_body={"principal_id": shop})
    assert refused.status_code == 422 and refused.json()["code"] == "enrollment_role_refused"
    markup = operator.request(
        "POST", "/v1/enrollments", json_body={"principal_id": "<img src=x onerror=alert(1)>"}
    )
    assert markup.status_code in (400, 422) and "<img" not in markup.json().get("detail", "")


def test_a_redeem_signed_by_another_key_than_the_body_names_is_refused(api: Harness) -> None:
    issued = issue(api, agent_principal(api))
    phone, thief = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    body = {"code": issued["code"], "public_key": public_b64(phone)}
    # signed by another key under its own thumbprint: not the body's key
    assert redeem(api.base_url, body, thief).json()["code"] == "key_unknown"
    # signed by another key claiming the body key's thumbprint: the signature fails
    thumb = enrollment.thumbprint(base64.b64decode(public_b64(phone)))
    forged = redeem(api.base_url, body, thief, key_id=thumb)
    assert forged.status_code == 401 and forged.json()["code"] == "signature_invalid"
    no_key = httpx.post(
        api.base_url + REDEEM, json=body, headers={"content-type": "application/json"}
    )
    assert no_key.status_code == 400 and no_key.json()["code"] == "idempotency_key_missing"
    unsigned = redeem(api.base_url, body, None)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "signature_missing"
    # a body changed after signing
    signed_for = json.dumps(body).encode()
    thumb_headers = sign_request(
        method="POST",
        url=api.base_url + REDEEM,
        headers={"content-type": "application/json", "idempotency-key": '"t-1"'},
        body=signed_for,
        key_id=thumb,
        alg=Alg.ED25519,
        private_key=phone,
    )
    tampered = signed_for.replace(b'"code": "', b'"code": " ')
    changed = httpx.post(api.base_url + REDEEM, content=tampered, headers=thumb_headers)
    assert changed.status_code == 401 and changed.json()["code"] == "digest_mismatch"
    # none of it counted against the code: the phone still enrolls
    assert redeem(api.base_url, body, phone).status_code == 201


def test_bad_redeem_bodies_are_refused_and_change_nothing(api: Harness) -> None:
    issued = issue(api, agent_principal(api))
    phone = Ed25519PrivateKey.generate()
    key = public_b64(phone)
    big = redeem(api.base_url, b"{" + b" " * 2_000_000 + b"}", phone)
    assert big.status_code == 413
    for code in ("<script>alert(1)</script>", "A" * 64):
        answer = redeem(api.base_url, {"code": code, "public_key": key}, phone)
        assert answer.status_code == 422 and answer.json()["code"] == "enrollment_code_invalid"
        assert "<script" not in answer.text
    too_long = redeem(api.base_url, {"code": "A" * 65, "public_key": key}, phone)
    assert too_long.status_code == 422 and too_long.json()["code"] == "validation_failed"
    bad_key = redeem(api.base_url, {"code": issued["code"], "public_key": "<b>x</b>"}, phone)
    assert bad_key.status_code == 422 and bad_key.json()["code"] == "public_key_invalid"
    extra = redeem(api.base_url, {"code": issued["code"], "public_key": key, "x": 1}, phone)
    assert extra.status_code == 422
    answer = redeem(api.base_url, {"code": issued["code"], "public_key": key}, phone)
    assert answer.status_code == 201, answer.text
    found = find_key(api.ledger, answer.json()["key_id"])
    assert found is not None and found.active


@pytest.fixture
def strict_server(db_url: str) -> Iterator[str]:
    """A server whose rate limit allows a burst of 3 requests."""
    led = open_ledger(db_url, migrate=True)
    settings = Settings(
        rate_limit_per_s=0.01,
        rate_limit_burst=3,
        sweep_interval_s=None,
        seal_interval_s=None,
        reconcile_interval_s=None,
    )
    server = ServerThread(create_app(db_url, settings=settings)).start()
    try:
        yield server.base_url
    finally:
        server.stop()
        led.close()


def test_redeem_is_rate_limited_by_network_address(strict_server: str) -> None:
    phone = Ed25519PrivateKey.generate()
    body = {"code": "AAAA-AAAA-AAAA-AAAA-AAAA", "public_key": public_b64(phone)}
    answers = [redeem(strict_server, body, phone) for _ in range(4)]
    assert [a.status_code for a in answers] == [422, 422, 422, 429]
    assert answers[-1].json()["code"] == "rate_limited" and answers[-1].headers["retry-after"]


def test_no_operator_gets_a_key_for_an_operator_through_the_api(api: Harness) -> None:
    """Maker-checker needs two people: an operator who could enroll a key for another
    operator (or a second one of its own) could propose and approve alone. Nothing is
    issued; an operator's code comes from the command line at setup."""
    mine = api.key("operator")
    boss = api.client_for(mine)
    other = api.key("operator")["principal_id"]
    before = issued_events(api)
    for target in (other, mine["principal_id"]):
        refused = boss.request("POST", "/v1/enrollments", json_body={"principal_id": target})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "enrollment_role_refused"
    assert issued_events(api) == before
    at_setup = enrollment.issue(api.ledger, principal_id=uuid.UUID(other), issued_by=None)
    assert at_setup.role.value == "operator"
    assert issued_events(api) == before + 1


def issued_events(api: Harness) -> int:
    """How many ``enrollment.issued`` events the outbox holds."""
    count, after = 0, 0
    while found := api.ledger.transact(
        lambda tx, a=after: events.read_events(tx, after_seq=a, limit=PAGE)
    ):
        count += sum(1 for event in found if event.type == ISSUED)
        after = found[-1].seq
    return count
