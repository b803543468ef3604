"""Operators and their keys as proposals, over signed HTTP on both engines: one operator
proposes a person with the public key they made, another approves, and only then does
that key sign; the maker alone, an auditor, a taken name or a key already registered
changes nothing. And the command line makes the first two operators only."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from api.client import Client
from ledger.flows import events
from ledger.flows.principals import operators
from ledger.limits import LIST_PAGE_SIZE_MAX as PAGE
from ledger.limits import NAME_LENGTH_MAX
from tests.test_api_harness import Harness, api, api_server

__all__ = ["api", "api_server"]


class Person:
    """Someone who made an Ed25519 key pair of their own (the private half in a file)."""

    def __init__(self, folder: Path) -> None:
        self.private = Ed25519PrivateKey.generate()
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public = base64.b64encode(raw).decode("ascii")
        self.path = folder / f"{uuid.uuid4().hex}.pem"
        pem = self.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        self.path.write_bytes(pem)

    def client(self, api: Harness, key_id: str) -> Client:
        client = Client.from_key_file(api.base_url, key_id, self.path)
        api.clients.append(client)
        return client


def propose(maker: Client, path: str, body: dict[str, Any], status: int = 202) -> dict[str, Any]:
    answer = maker.request("POST", path, json_body=body)
    assert answer.status_code == status, answer.text
    found: dict[str, Any] = answer.json()
    return found


def approve(checker: Client, proposal_id: str, status: int = 200) -> dict[str, Any]:
    answer = checker.request("POST", f"/v1/proposals/{proposal_id}/approve")
    assert answer.status_code == status, answer.text
    found: dict[str, Any] = answer.json()
    return found


def count_events(api: Harness, event_type: str) -> int:
    count, after = 0, 0
    while found := api.ledger.transact(
        lambda tx, a=after: events.read_events(tx, after_seq=a, limit=PAGE)
    ):
        count += sum(1 for event in found if event.type == event_type)
        after = found[-1].seq
    return count


def test_a_new_operator_signs_only_after_a_second_operator_approves(
    api: Harness, tmp_path: Path
) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    person = Person(tmp_path)
    name = f"Wanjiru {uuid.uuid4().hex[:6]}"
    made = propose(maker, "/v1/operators", {"name": name, "public_key": person.public})
    proposal = made["proposal"]
    assert proposal["kind"] == "operator" and proposal["state"] == "proposed"
    assert proposal["payload"]["fingerprint"].startswith("SHA256:")
    assert proposal["payload"]["name"] == name
    before = count_events(api, operators.OPERATOR_ADDED)
    refused = maker.request("POST", f"/v1/proposals/{proposal['id']}/approve")
    assert refused.status_code == 422 and refused.json()["code"] == "proposal_maker_cannot_decide"
    auditor = api.client("auditor")
    assert auditor.request("POST", f"/v1/proposals/{proposal['id']}/approve").status_code == 403
    assert count_events(api, operators.OPERATOR_ADDED) == before
    decided = approve(checker, proposal["id"])
    assert decided["state"] == "approved" and decided["decided_by"] != decided["proposed_by"]
    result = decided["result"]
    assert result["name"] == name and result["fingerprint"] == proposal["payload"]["fingerprint"]
    assert count_events(api, operators.OPERATOR_ADDED) == before + 1
    newcomer = person.client(api, result["key_id"])
    listed = newcomer.request("GET", "/v1/proposals", params={"limit": "1"})
    assert listed.status_code == 200, listed.text
    # the newcomer is an operator: it may check a proposal the first operator makes
    again = propose(
        maker, "/v1/operators", {"name": name + " 2", "public_key": Person(tmp_path).public}
    )
    assert approve(newcomer, again["proposal"]["id"])["state"] == "approved"
    assert approve(checker, proposal["id"])["result"] == result  # approving again: as it was


def test_another_key_for_an_operator_is_a_proposal_too(api: Harness, tmp_path: Path) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    target = api.key("operator")["principal_id"]
    laptop = Person(tmp_path)
    made = propose(maker, f"/v1/operators/{target}/keys", {"public_key": laptop.public})
    assert made["proposal"]["kind"] == "operator_key"
    before = count_events(api, operators.OPERATOR_KEY_ADDED)
    decided = approve(checker, made["proposal"]["id"])
    assert decided["result"]["principal_id"] == target
    assert count_events(api, operators.OPERATOR_KEY_ADDED) == before + 1
    assert (
        laptop.client(api, decided["result"]["key_id"])
        .request("GET", "/v1/proposals", params={"limit": "1"})
        .status_code
        == 200
    )


def test_only_operators_propose(api: Harness, tmp_path: Path) -> None:
    body = {"name": "Someone", "public_key": Person(tmp_path).public}
    target = api.key("operator")["principal_id"]
    for role in ("auditor", "storefront", "agent"):
        caller = api.client(role)
        assert caller.request("POST", "/v1/operators", json_body=body).status_code == 403
        key_path = f"/v1/operators/{target}/keys"
        refused = caller.request("POST", key_path, json_body={"public_key": body["public_key"]})
        assert refused.status_code == 403


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "", "public_key": "A" * 43 + "="}, "validation_failed"),
        ({"name": "x" * (NAME_LENGTH_MAX + 1), "public_key": "A" * 43 + "="}, "validation_failed"),
        ({"name": "Amina", "public_key": "not base64"}, "validation_failed"),
        ({"name": "Amina", "public_key": "A" * 43 + "=", "role": "operator"}, "validation_failed"),
        ({"name": "Amina\u0007", "public_key": None}, "validation_failed"),
    ],
)
def test_malformed_proposals_are_refused_and_nothing_is_proposed(
    api: Harness, body: dict[str, Any], code: str
) -> None:
    maker = api.client("operator")
    before = maker.request("GET", "/v1/proposals", params={"state": "proposed", "limit": "100"})
    answer = maker.request("POST", "/v1/operators", json_body=body)
    assert answer.status_code in (400, 422), answer.text
    assert answer.json()["code"] == code
    after = maker.request("GET", "/v1/proposals", params={"state": "proposed", "limit": "100"})
    assert after.json()["data"] == before.json()["data"]


def test_a_taken_name_a_registered_key_or_an_unknown_operator_is_refused(
    api: Harness, tmp_path: Path
) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    name = f"Desk {uuid.uuid4().hex[:6]}"
    existing = api.key("operator", name=name)
    taken = propose(
        maker, "/v1/operators", {"name": name, "public_key": Person(tmp_path).public}, 422
    )
    assert taken["code"] == "operator_exists"
    registered = existing_public_key(api, existing)
    again = propose(maker, "/v1/operators", {"name": "Fresh", "public_key": registered}, 422)
    assert again["code"] == "public_key_registered"
    nobody = propose(
        maker, f"/v1/operators/{uuid.uuid4()}/keys", {"public_key": Person(tmp_path).public}, 404
    )
    assert nobody["code"] == "operator_not_found"
    shop = api.key("storefront")["principal_id"]
    not_operator = propose(
        maker, f"/v1/operators/{shop}/keys", {"public_key": Person(tmp_path).public}, 404
    )
    assert not_operator["code"] == "operator_not_found"
    # two proposals for the same name: the second approval finds the name taken
    name = f"Twice {uuid.uuid4().hex[:6]}"
    first = propose(maker, "/v1/operators", {"name": name, "public_key": Person(tmp_path).public})
    second = propose(maker, "/v1/operators", {"name": name, "public_key": Person(tmp_path).public})
    approve(checker, first["proposal"]["id"])
    late = approve(checker, second["proposal"]["id"], status=422)
    assert late["code"] == "operator_exists"
    assert (
        checker.request("GET", f"/v1/proposals/{second['proposal']['id']}").json()["state"]
        == "proposed"
    )


def test_markup_in_a_name_is_kept_as_text_and_a_replay_proposes_once(
    api: Harness, tmp_path: Path
) -> None:
    maker = api.client("operator")
    body = {"name": "<img src=x onerror=alert(1)>", "public_key": Person(tmp_path).public}
    key = str(uuid.uuid4())
    first = maker.request("POST", "/v1/operators", json_body=body, idempotency_key=key)
    replay = maker.request("POST", "/v1/operators", json_body=body, idempotency_key=key)
    assert first.status_code == replay.status_code == 202
    assert first.json() == replay.json()
    assert first.json()["proposal"]["payload"]["name"] == body["name"]
    changed = {**body, "name": "Someone else"}
    reused = maker.request("POST", "/v1/operators", json_body=changed, idempotency_key=key)
    assert reused.status_code in (409, 422), reused.text


def existing_public_key(api: Harness, made: dict[str, str]) -> str:
    key = load_pem_private_key(Path(made["path"]).read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")
