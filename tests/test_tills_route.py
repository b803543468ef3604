"""An agent's till number and SMS phone over signed HTTP, both engines.

The agent reads its own till number (the one a villager types on the USSD menu, the same
the menu finds); operators and auditors read any agent's; another agent is answered 404
as if there were none, a storefront 403. An operator sets where an agent's SMS go through
the flow the CLI uses (``sms.contacts``), once per Idempotency-Key; other roles are
refused, a malformed phone is 422, an unknown agent 404; markup and oversized bodies too.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from api.client import Client
from ledger.flows.parties import tills
from tests.test_api_attacks import send
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import ok, refused

__all__ = ["api", "api_server"]


def onboard(api: Harness, kind: str, name: str = "Wanjiru's shop") -> tuple[str, Client]:
    made = api.key(kind)
    body = {"id": made["principal_id"], "kind": kind, "name": name, "currency": "KES"}
    ok(api.client("operator").request("POST", "/v1/parties", json_body=body), 201)
    return made["principal_id"], api.client_for(made)


def contact_of(api: Harness, agent_id: str) -> Any:
    return api.ledger.transact(
        lambda tx: tx.one(
            "SELECT phone, language FROM sms_contacts WHERE party_id = :id",
            {"id": uuid.UUID(agent_id)},
        )
    )


def put_contact(client: Client, agent_id: str, body: Any, key: str | None = None) -> httpx.Response:
    return client.request(
        "PUT",
        f"/v1/agents/{agent_id}/sms-contact",
        json_body=body,
        idempotency_key=key or str(uuid.uuid4()),
    )


def test_the_agent_operators_and_auditors_see_the_till_number(api: Harness) -> None:
    agent_id, agent = onboard(api, "agent")
    mine = ok(agent.request("GET", f"/v1/agents/{agent_id}/till"))
    assert mine == {
        "agent_id": agent_id,
        "till_number": mine["till_number"],
        "name": "Wanjiru's shop",
    }
    assert tills.well_formed(mine["till_number"])
    found = api.ledger.transact(lambda tx: tills.agent_of_till_in(tx, mine["till_number"]))
    assert str(found) == agent_id  # the number the USSD menu finds her by
    for role in ("operator", "auditor"):
        assert ok(api.client(role).request("GET", f"/v1/agents/{agent_id}/till")) == mine
    assert ok(agent.request("GET", f"/v1/agents/{agent_id}/till")) == mine  # never changes


def test_another_agent_or_a_storefront_or_no_agent_is_refused(api: Harness) -> None:
    agent_id, _ = onboard(api, "agent")
    _, other = onboard(api, "agent", "Other shop")
    _, shop = onboard(api, "storefront", "Shop")
    path = f"/v1/agents/{agent_id}/till"
    refused(other.request("GET", path), 404, "agent_not_found")
    refused(shop.request("GET", path), 403, "forbidden")
    operator = api.client("operator")
    refused(operator.request("GET", f"/v1/agents/{uuid.uuid4()}/till"), 404, "agent_not_found")
    villager_party = onboard(api, "storefront", "A storefront, not an agent")[0]
    refused(operator.request("GET", f"/v1/agents/{villager_party}/till"), 404, "agent_not_found")


def test_a_forged_or_missing_signature_is_401(api: Harness) -> None:
    agent_id, agent = onboard(api, "agent")
    path = f"/v1/agents/{agent_id}/till"
    answer = send(agent, "GET", path, edit={"signature": "sig1=:AAAA:"})
    assert answer.status_code == 401
    assert httpx.get(agent.url(path)).status_code == 401
    moved = send(agent, "GET", path, send_path=f"/v1/agents/{uuid.uuid4()}/till")
    assert moved.status_code == 401


def test_an_operator_sets_the_agents_sms_phone_once_per_key(api: Harness) -> None:
    agent_id, _ = onboard(api, "agent")
    operator = api.client("operator")
    key = str(uuid.uuid4())
    body = {"phone": "+254 712-345-678", "language": "sw"}
    first = ok(put_contact(operator, agent_id, body, key))
    assert first == {"agent_id": agent_id, "phone": "+254712345678", "language": "sw"}
    again = put_contact(operator, agent_id, body, key)
    assert again.headers.get("idempotency-replayed") == "true" and again.json() == first
    assert tuple(contact_of(api, agent_id)) == ("+254712345678", "sw")
    changed = ok(put_contact(operator, agent_id, {"phone": "+254700111222"}))
    assert changed["language"] == "en"  # the default when none is given
    assert tuple(contact_of(api, agent_id)) == ("+254700111222", "en")
    refused(put_contact(operator, agent_id, {"phone": "+1"}, key), 422, "idempotency_key_reused")


def test_only_an_operator_sets_it_and_bad_bodies_change_nothing(api: Harness) -> None:
    agent_id, agent = onboard(api, "agent")
    _, shop = onboard(api, "storefront", "Shop")
    body = {"phone": "+254712345678"}
    refused(put_contact(agent, agent_id, body), 403, "forbidden")
    refused(put_contact(shop, agent_id, body), 403, "forbidden")
    refused(put_contact(api.client("auditor"), agent_id, body), 403, "forbidden")
    operator = api.client("operator")
    assert put_contact(operator, agent_id, {"phone": "<script>"}).status_code == 422
    assert put_contact(operator, agent_id, {"phone": "+2547" + "1" * 40}).status_code == 422
    assert put_contact(operator, agent_id, {"phone": "+999123"}).status_code == 422
    assert put_contact(operator, agent_id, {**body, "language": "fr"}).status_code == 422
    assert put_contact(operator, agent_id, {**body, "role": "x"}).status_code == 422
    refused(put_contact(operator, str(uuid.uuid4()), body), 404, "agent_not_found")
    assert contact_of(api, agent_id) is None
    big = send(
        operator,
        "PUT",
        f"/v1/agents/{agent_id}/sms-contact",
        b'{"phone":"' + b"1" * 2_000_000 + b'"}',
        idempotency_key=str(uuid.uuid4()),
    )
    assert big.status_code == 413
    missing = send(
        operator, "PUT", f"/v1/agents/{agent_id}/sms-contact", b'{"phone":"+254712345678"}'
    )
    assert missing.status_code == 400  # no Idempotency-Key
    assert contact_of(api, agent_id) is None
