"""Villagers over signed HTTP, both engines: an agent registers Wanjiru at its station
(the activation code goes to her phone, never into the agent's answer), reads her back,
unlocks her PIN once; a second unlock, a reset and a new phone number are an operator's.
Another agent's villager answers 404, a storefront 403; a replayed POST answers the same.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

import httpx
import pytest

from api.client import Client
from api.problems import FLOW_CODES
from api.schemas import VillagerOut
from ledger.flows import events, villagers
from ledger.flows.errors import Refused
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import flow_source, ok, refused
from tests.villager_helpers import DEFAULT_PIN, activation_code

__all__ = ["api", "api_server"]

KES = "KES"


def new_phone() -> str:
    """A Kenyan mobile number no other test of the module uses."""
    return f"+25471{secrets.randbelow(10**7):07d}"


class Station:
    """An agent onboarded by an operator, with its signed client."""

    def __init__(self, api: Harness) -> None:
        self.api = api
        self.operator = api.client("operator")
        made = api.key("agent")
        self.agent = api.client_for(made)
        self.agent_id = made["principal_id"]
        body = {"id": self.agent_id, "kind": "agent", "name": "Duka", "currency": KES}
        ok(self.operator.request("POST", "/v1/parties", json_body=body), 201)

    def register(
        self, who: Client | None = None, idempotency_key: str | None = None, **over: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "phone": new_phone(),
            "name": "Wanjiru",
            "currency": KES,
            "language": "sw",
            **over,
        }
        return (who or self.agent).request(
            "POST", "/v1/villagers", json_body=body, idempotency_key=idempotency_key
        )

    def registered(self) -> dict[str, Any]:
        found: dict[str, Any] = ok(self.register(), 201)
        return found

    def activate(self, villager: dict[str, Any]) -> None:
        led, villager_id = self.api.ledger, uuid.UUID(villager["id"])
        code = activation_code(led, villager_id)
        villagers.activate(led, phone=villager["phone"], activation_code=code, pin=DEFAULT_PIN)

    def activate_and_lock(self, villager: dict[str, Any]) -> None:
        self.activate(villager)
        villager_id = uuid.UUID(villager["id"])
        for _ in range(villagers.PIN_TRIES_MAX):
            with pytest.raises(Refused):
                villagers.verify_pin(self.api.ledger, villager_id=villager_id, pin="9731")
        assert villagers.get_villager(self.api.ledger, villager_id).state is villagers.State.LOCKED

    def step(self, villager_id: str, action: str, who: Client, body: Any = None) -> httpx.Response:
        return who.request("POST", f"/v1/villagers/{villager_id}/{action}", json_body=body)


def test_an_agent_registers_a_villager_and_only_her_phone_gets_the_code(api: Harness) -> None:
    station = Station(api)
    answer = station.register(phone="+254 712 000 001")
    wanjiru = ok(answer, 201)

    assert answer.headers["location"] == f"/v1/villagers/{wanjiru['id']}"
    assert (wanjiru["agent_id"], wanjiru["phone"], wanjiru["state"]) == (
        station.agent_id,
        "+254712000001",
        "pending_activation",
    )
    assert (wanjiru["kyc_tier"], wanjiru["language"], wanjiru["pin_tries_left"]) == (
        "tier0",
        "sw",
        3,
    )
    code = activation_code(api.ledger, uuid.UUID(wanjiru["id"]))
    assert set(wanjiru) == set(VillagerOut.model_fields)
    assert code not in answer.text and "hash" not in answer.text and "code" not in answer.text
    read = ok(station.agent.request("GET", f"/v1/villagers/{wanjiru['id']}"))
    assert read == wanjiru
    assert code not in str(read)


def test_a_replayed_registration_answers_the_same_and_another_under_its_id_conflicts(
    api: Harness,
) -> None:
    station = Station(api)
    body = {"id": str(uuid.uuid4()), "phone": new_phone(), "name": "Akinyi"}
    first = station.register(idempotency_key="reg-1", **body)
    replayed = station.register(idempotency_key="reg-1", **body)
    again = station.register(**body)  # a new key: the flow answers by the villager id

    assert replayed.headers["idempotency-replayed"] == "true"
    assert replayed.json() == ok(first, 201) == ok(again, 201)
    assert events.VILLAGER_ACTIVATION_CODE in _types(api, body["id"])
    assert _types(api, body["id"]).count(events.VILLAGER_ACTIVATION_CODE) == 1
    refused(station.register(**{**body, "name": "Other"}), 409, "villager_id_reused")
    refused(station.register(phone=body["phone"]), 409, "phone_taken")


def _types(api: Harness, villager_id: str) -> list[str]:
    found = api.ledger.transact(
        lambda tx: events.read_events(tx, party_id=uuid.UUID(villager_id), limit=100)
    )
    return [e.type for e in found]


def test_who_may_register_and_read_a_villager(api: Harness) -> None:
    station, other = Station(api), Station(api)
    wanjiru = station.registered()
    path = f"/v1/villagers/{wanjiru['id']}"
    storefront, auditor = api.client("storefront"), api.client("auditor")

    refused(other.agent.request("GET", path), 404, "villager_not_found")
    refused(storefront.request("GET", path), 403, "forbidden")
    assert ok(auditor.request("GET", path)) == wanjiru
    assert ok(station.operator.request("GET", path)) == wanjiru
    refused(
        station.agent.request("GET", f"/v1/villagers/{uuid.uuid4()}"), 404, "villager_not_found"
    )
    refused(station.register(who=storefront), 403, "forbidden")
    refused(station.register(who=auditor), 403, "forbidden")
    refused(station.register(agent_id=other.agent_id), 404, "agent_not_found")
    refused(station.register(who=station.operator), 422, "validation_failed")
    by_operator = ok(station.register(who=station.operator, agent_id=other.agent_id), 201)
    assert by_operator["agent_id"] == other.agent_id
    ok(other.agent.request("GET", f"/v1/villagers/{by_operator['id']}"))


def test_bad_input_is_refused_and_registers_nobody(api: Harness) -> None:
    station = Station(api)
    for over, status, code in [
        ({"name": "<script>alert(1)</script>"}, 422, "name_invalid"),
        ({"phone": "0712345678"}, 422, "phone_invalid"),
        ({"phone": "+254712345678<b>"}, 422, "phone_invalid"),
        ({"phone": "+254" + "7" * 40}, 422, "validation_failed"),
        ({"language": "fr"}, 422, "validation_failed"),
        ({"pin": "2580"}, 422, "validation_failed"),
        ({"currency": "UGX"}, 422, "currency_mismatch"),
    ]:
        villager_id = str(uuid.uuid4())
        refused(station.register(id=villager_id, **over), status, code)
        refused(
            station.agent.request("GET", f"/v1/villagers/{villager_id}"), 404, "villager_not_found"
        )


def test_an_agent_unlocks_once_and_an_operator_after_that(api: Harness) -> None:
    station, other = Station(api), Station(api)
    wanjiru = station.registered()
    station.activate(wanjiru)
    refused(station.step(wanjiru["id"], "unlock", station.agent), 422, "villager_not_locked")
    for _ in range(villagers.PIN_TRIES_MAX):
        with pytest.raises(Refused):
            villagers.verify_pin(api.ledger, villager_id=uuid.UUID(wanjiru["id"]), pin="9731")
    refused(station.step(wanjiru["id"], "unlock", other.agent), 404, "villager_not_found")
    refused(station.step(wanjiru["id"], "unlock", api.client("storefront")), 403, "forbidden")

    unlocked = ok(station.step(wanjiru["id"], "unlock", station.agent))
    assert (unlocked["state"], unlocked["debit_hold_until"]) == ("pending_activation", None)
    station.activate_and_lock(wanjiru)
    refused(station.step(wanjiru["id"], "unlock", station.agent), 422, "operator_required")
    held = ok(station.step(wanjiru["id"], "unlock", station.operator, body={}))
    assert held["state"] == "pending_activation" and held["debit_hold_until"] is not None


def test_reset_and_a_new_phone_are_for_operators(api: Harness) -> None:
    station = Station(api)
    wanjiru = station.registered()
    refused(station.step(wanjiru["id"], "reset", station.agent), 403, "forbidden")
    phone = new_phone()
    refused(station.step(wanjiru["id"], "phone", station.agent, {"phone": phone}), 403, "forbidden")

    reset = ok(station.step(wanjiru["id"], "reset", station.operator))
    moved = ok(station.step(wanjiru["id"], "phone", station.operator, {"phone": phone}))

    assert reset["debit_hold_until"] is not None
    assert (moved["phone"], moved["state"]) == (phone, "pending_activation")
    refused(
        station.step(wanjiru["id"], "phone", station.operator, {"phone": "07"}),
        422,
        "phone_invalid",
    )
    refused(station.step(str(uuid.uuid4()), "reset", station.operator), 404, "villager_not_found")


def test_every_code_the_villager_flow_raises_has_a_title() -> None:
    text = flow_source("villagers.py")
    raised = set(re.findall(r'(?:Refused|NotFound|Conflict)\(\s*"([a-z_]+)"', text))
    assert {"pin_invalid", "sim_swap_hold", "phone_taken"} <= raised
    assert not raised - set(FLOW_CODES), sorted(raised - set(FLOW_CODES))


def test_openapi_documents_the_villager_routes_and_no_pin_route(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = {p: set(ops) for p, ops in doc["paths"].items() if p.startswith("/v1/villagers")}
    assert paths == {
        "/v1/villagers": {"post"},
        "/v1/villagers/{villager_id}": {"get"},
        "/v1/villagers/{villager_id}/unlock": {"post"},
        "/v1/villagers/{villager_id}/reset": {"post"},
        "/v1/villagers/{villager_id}/phone": {"post"},
    }
    out = doc["components"]["schemas"]["VillagerOut"]["properties"]
    assert not {name for name in out if "hash" in name or "code" in name or name == "pin"}


def test_a_villager_id_is_never_a_principals_id(api: Harness) -> None:
    """Events addressed to the villager (its activation code among them) go to the webhooks
    of the principal with its id: a storefront's id would hand the code to the shop."""
    station = Station(api)
    shop = api.key("storefront")["principal_id"]

    refused(station.register(id=shop), 422, "principal_mismatch")
    refused(station.register(id=station.agent_id), 422, "principal_mismatch")
    assert api.ledger.transact(lambda tx: villagers.get_villager_in(tx, uuid.UUID(shop))) is None
