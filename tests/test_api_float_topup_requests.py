"""``POST /v1/agents/{id}/float-topup-requests``: an agent asks for float for cash it
deposited with a provider; nothing moves until an operator approves the proposal, and
then the float grows once. On both engines, with the attacks of a money route: another
agent, a wrong role, the maker deciding, a replay, markup and oversized input."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from api.client import Client
from tests.test_api_harness import Harness, api, api_server  # noqa: F401 (fixtures)
from tests.test_api_orders import ok, refused

KES = "KES"


@dataclass
class Desk:
    api: Harness
    operator: Client
    agent: Client
    agent_id: str

    def ask(self, amount: Any = 150_000, provider: Any = "KCB", **kw: Any) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "amount_minor": amount, "provider": provider}
        return self.agent.request(
            "POST", f"/v1/agents/{self.agent_id}/float-topup-requests", json_body=body, **kw
        )

    def decide(self, who: Client, proposal_id: str, action: str) -> httpx.Response:
        body = {"reason": "no deposit seen"} if action == "reject" else None
        return who.request("POST", f"/v1/proposals/{proposal_id}/{action}", json_body=body)

    def available(self) -> int:
        answer = ok(self.agent.request("GET", f"/v1/agents/{self.agent_id}/float"))
        found: int = answer["available_minor"]
        return found


def desk_of(harness: Harness) -> Desk:
    operator = harness.client("operator")
    made = harness.key("agent")
    agent_id = made["principal_id"]
    body = {"id": agent_id, "kind": "agent", "name": "Wanjiru's shop", "currency": KES}
    ok(operator.request("POST", "/v1/parties", json_body=body), 201)
    return Desk(harness, operator, harness.client_for(made), agent_id)


def test_a_request_moves_nothing_until_an_operator_approves_it_once(api: Harness) -> None:  # noqa: F811
    desk = desk_of(api)
    proposal = ok(desk.ask(), 202)["proposal"]
    assert (proposal["kind"], proposal["state"]) == ("float_topup", "proposed")
    assert proposal["payload"]["amount_minor"] == 150_000
    assert proposal["proposed_by"] == desk.agent_id
    assert desk.available() == 0
    refused(desk.decide(desk.agent, proposal["id"], "approve"), 403, "forbidden")
    approved = ok(desk.decide(desk.operator, proposal["id"], "approve"))
    assert approved["state"] == "approved"
    assert approved["result"]["amount_minor"] == 150_000
    assert desk.available() == 150_000
    again = ok(desk.decide(desk.api.client("operator"), proposal["id"], "approve"))
    assert again["state"] == "approved" and desk.available() == 150_000  # once


def test_two_requests_alike_are_two_top_ups_and_a_rejected_one_moves_nothing(
    api: Harness,  # noqa: F811
) -> None:
    desk = desk_of(api)
    first, second, third = (ok(desk.ask(), 202)["proposal"] for _ in range(3))
    for proposal in (first, second):
        ok(desk.decide(desk.operator, proposal["id"], "approve"))
    rejected = ok(desk.decide(desk.operator, third["id"], "reject"))
    assert rejected["state"] == "rejected"
    refused(desk.decide(desk.operator, third["id"], "approve"), 409, "proposal_not_pending")
    assert desk.available() == 300_000


def test_only_the_agent_itself_asks(api: Harness) -> None:  # noqa: F811
    desk = desk_of(api)
    other = desk_of(api)
    path = f"/v1/agents/{other.agent_id}/float-topup-requests"
    body = {"id": str(uuid.uuid4()), "amount_minor": 100, "provider": "KCB"}
    refused(desk.agent.request("POST", path, json_body=body), 404, "agent_not_found")
    for role in ("operator", "storefront", "auditor"):
        refused(api.client(role).request("POST", path, json_body=body), 403, "forbidden")
    assert other.available() == 0


def test_a_replay_is_one_request_and_bad_input_writes_nothing(api: Harness) -> None:  # noqa: F811
    desk = desk_of(api)
    key = str(uuid.uuid4())
    body = {"id": str(uuid.uuid4()), "amount_minor": 500, "provider": "KCB"}
    path = f"/v1/agents/{desk.agent_id}/float-topup-requests"
    first = desk.agent.request("POST", path, json_body=body, idempotency_key=key)
    again = desk.agent.request("POST", path, json_body=body, idempotency_key=key)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.content == first.content and again.headers["idempotency-replayed"] == "true"
    refused(desk.ask(provider="<script>alert(1)</script>"), 422, "validation_failed")
    refused(desk.ask(provider="K" * 10_000), 422, "validation_failed")
    for amount in (0, -5, 2**53, "100"):
        refused(desk.ask(amount=amount), 422, "validation_failed")
    refused(desk.ask(amount=1.5), 400, "invalid_json")
    huge = {"id": str(uuid.uuid4()), "amount_minor": 1, "provider": "KCB", "pad": "x" * 1_100_000}
    refused(desk.agent.request("POST", path, json_body=huge), 413, "body_too_large")
    listed = ok(desk.operator.request("GET", "/v1/proposals", params={"state": "proposed"}))
    mine = [p for p in listed["data"] if p["proposed_by"] == desk.agent_id]
    assert len(mine) == 1  # the replayed request, nothing of the refused ones
