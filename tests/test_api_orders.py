"""Order escrow over signed HTTP, both engines: a storefront, an agent and a villager.

The stories: a villager pays her order in cash at the agent, the shop dispatches, the
agent confirms delivery and the seller is paid less the fee; tenants see only their own
orders (404), roles only their own steps (403); flow refusals are problem+json with a
stable code; retries are safe by Idempotency-Key and by step id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import Client
from api.problems import API_CODES, FLOW_CODE_ALIASES, FLOW_CODES, STATE_CODES
from ledger import flows
from ledger.flows import fees, orders, parties
from ledger.flows.parties import Role
from tests.consent_helpers import new_phone
from tests.test_api_harness import (
    Harness,
    account_body,
    api,
    api_server,
    approved,
    transfer_body,
)
from tests.test_flow_order_consent import pay_code_made, pickup_code_sent
from tests.villager_helpers import active_villager

__all__ = ["api", "api_server"]

KES = "KES"
SEEDS_MINOR = 120_000
ORDER_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200}],
    "split_bps": {"tax": 1_600, "agent_commission": 2_500},
}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == f"urn:vledger:problem:{code}"
    return problem


@dataclass
class Village:
    """A storefront, an agent and a villager onboarded through the API, with money."""

    api: Harness
    operator: Client
    shop: Client
    shop_id: str
    agent: Client
    agent_id: str
    villager_id: str
    bank: str

    def onboard(self, kind: str, party_id: str, **over: Any) -> Any:
        body = {"id": party_id, "kind": kind, "name": f"{kind} {party_id[:8]}", "currency": KES}
        body.update(over)
        return ok(self.operator.request("POST", "/v1/parties", json_body=body), 201)

    def fund(self, party_id: str, role: str, amount: int) -> None:
        account = str(parties.account_id(uuid.UUID(party_id), role))
        [result] = approved(self.api, self.operator, [transfer_body(self.bank, account, amount)])
        assert result["status"] == "created"

    def balance(self, party_id: str, role: str) -> int:
        [found] = self.api.ledger.lookup_accounts([parties.account_id(uuid.UUID(party_id), role)])
        return found.credits_posted - found.debits_posted

    def order(self, amount: int = SEEDS_MINOR, **over: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "currency": KES,
            "amount_minor": amount,
            "delivery_method": "agent_delivery",
            "villager_id": self.villager_id,
        }
        body.update(over)
        created: dict[str, Any] = ok(self.shop.request("POST", "/v1/orders", json_body=body), 201)
        return created

    def step(self, who: Client, order_id: str, action: str, body: Any = None) -> httpx.Response:
        return who.request("POST", f"/v1/orders/{order_id}/{action}", json_body=body)

    def pay_code(self, order: dict[str, Any]) -> str:
        """The pay code the villager made on her phone for the order and its amount."""
        return pay_code_made(
            self.api.ledger,
            uuid.UUID(self.villager_id),
            uuid.UUID(order["id"]),
            order["amount_minor"],
        )

    def wallet_pay(self, who: Client, order: dict[str, Any]) -> httpx.Response:
        """``who`` pays the order from the wallet with the villager's pay code."""
        body = {"source": "wallet", "consent_code": self.pay_code(order)}
        return self.step(who, order["id"], "pay", body)

    def pickup_code(self, order: dict[str, Any]) -> str:
        """The pickup code the villager got when the order was dispatched."""
        return pickup_code_sent(
            self.api.ledger, uuid.UUID(self.villager_id), uuid.UUID(order["id"])
        )


def new_village(api: Harness) -> Village:
    operator = api.client("operator")
    shop_key, agent_key = api.key("storefront"), api.key("agent")
    bank = operator.create_account(**account_body(code=999))["id"]
    village = Village(
        api,
        operator,
        api.client_for(shop_key),
        shop_key["principal_id"],
        api.client_for(agent_key),
        agent_key["principal_id"],
        str(uuid.uuid4()),
        bank,
    )
    village.onboard("storefront", village.shop_id)
    village.onboard("agent", village.agent_id)
    # registered at the agent's station, her PIN set: she can consent
    active_villager(
        api.ledger,
        agent_id=uuid.UUID(village.agent_id),
        phone=new_phone(),
        villager_id=uuid.UUID(village.villager_id),
    )
    village.fund(village.villager_id, Role.WALLET, 200_000)
    village.fund(village.agent_id, Role.FLOAT, 500_000)
    return village


@pytest.fixture(scope="module")
def fee_schedule(api_server: Harness) -> None:
    fees.publish_schedule(
        api_server.ledger,
        product="order",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=1),
        rules=ORDER_RULES,
    )


@pytest.fixture
def village(api: Harness, fee_schedule: None) -> Iterator[Village]:
    yield new_village(api)


# -- the stories --------------------------------------------------------------------------


def test_villager_pays_cash_at_the_agent_and_the_seller_is_paid_on_delivery(
    village: Village,
) -> None:
    order = village.order()
    assert (order["state"], order["paid_minor"], order["agent_id"]) == ("created", 0, None)
    assert order["storefront_id"] == village.shop_id

    paid = ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    assert (paid["state"], paid["payment_source"], paid["agent_id"]) == (
        "paid",
        "cash",
        village.agent_id,
    )
    assert paid["escrow_minor"] == SEEDS_MINOR
    assert village.balance(village.shop_id, Role.ESCROW) == SEEDS_MINOR
    assert village.balance(village.agent_id, Role.FLOAT) == 500_000 - SEEDS_MINOR

    dispatched = ok(village.step(village.shop, order["id"], "dispatch"))
    assert dispatched["state"] == "dispatched"
    assert dispatched["auto_release_at"] is not None
    handed = {"pickup_code": village.pickup_code(order)}  # she shows her code at the station
    assert ok(village.step(village.agent, order["id"], "deliver", handed))["state"] == "delivered"
    released = ok(village.step(village.agent, order["id"], "release"))
    assert (released["state"], released["released_minor"], released["escrow_minor"]) == (
        "released",
        SEEDS_MINOR,
        0,
    )
    fee = SEEDS_MINOR * 200 // 10_000
    assert village.balance(village.shop_id, Role.PROCEEDS) == SEEDS_MINOR - fee
    assert village.balance(village.agent_id, Role.COMMISSION) == fee * 2_500 // 10_000

    # the storefront reads its party's accounts (but moves them only through orders)
    party = ok(village.shop.request("GET", f"/v1/parties/{village.shop_id}"))
    proceeds = ok(village.shop.request("GET", f"/v1/accounts/{party['accounts']['proceeds']}"))
    assert proceeds["credits_posted"] == SEEDS_MINOR - fee
    stolen = village.shop.request(
        "POST",
        "/v1/transfers",
        json_body={"transfers": [transfer_body(party["accounts"]["proceeds"], village.bank, 1)]},
    )
    refused(stolen, 404, "not_found")

    page = ok(village.shop.request("GET", "/v1/orders"))
    assert [o["id"] for o in page["data"]] == [order["id"]]
    assert page["has_more"] is False
    assert ok(village.shop.request("GET", f"/v1/orders/{order['id']}"))["state"] == "released"
    assert village.api.ledger.check_integrity().ok


def test_wallet_payment_partial_delivery_and_refund_of_the_rest(village: Village) -> None:
    order = village.order(100_000, delivery_method="courier")
    ok(village.wallet_pay(village.agent, order))
    assert village.balance(village.villager_id, Role.WALLET) == 100_000
    ok(village.step(village.shop, order["id"], "dispatch", {}))
    part = ok(village.step(village.agent, order["id"], "deliver", {"amount_minor": 60_000}))
    assert (part["state"], part["released_minor"], part["deliveries"]) == ("dispatched", 60_000, 1)
    rest = ok(village.step(village.shop, order["id"], "refund"))
    assert (rest["state"], rest["refunded_minor"], rest["escrow_minor"]) == ("released", 40_000, 0)
    assert village.balance(village.villager_id, Role.WALLET) == 140_000


def test_a_dispute_is_resolved_by_an_operator_and_refunds_the_villager(village: Village) -> None:
    order = village.order()
    ok(village.wallet_pay(village.shop, order))  # the storefront's checkout, with her code
    ok(village.step(village.shop, order["id"], "dispatch"))
    disputed = ok(village.step(village.agent, order["id"], "dispute", {"reason": "mouldy"}))
    assert (disputed["state"], disputed["disputed_from"]) == ("disputed", "dispatched")
    refused(
        village.step(village.shop, order["id"], "resolve", {"decision": "release"}),
        403,
        "forbidden",
    )
    resolved = ok(village.step(village.operator, order["id"], "resolve", {"decision": "refund"}))
    assert (resolved["state"], resolved["refunded_minor"]) == ("refunded", SEEDS_MINOR)
    assert village.balance(village.villager_id, Role.WALLET) == 200_000


def test_a_cancelled_cash_order_gives_the_agent_its_float_back(village: Village) -> None:
    order = village.order()
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    cancelled = ok(village.step(village.shop, order["id"], "cancel"))
    assert cancelled["state"] == "cancelled"
    assert village.balance(village.agent_id, Role.FLOAT) == 500_000
    assert village.balance(village.shop_id, Role.ESCROW) == 0


# -- refusals -------------------------------------------------------------------------------


def test_flow_refusals_are_problems_with_their_code(village: Village) -> None:
    order = village.order(300_000)
    short = refused(village.wallet_pay(village.agent, order), 422, "wallet_short")
    assert short["title"] == FLOW_CODES["wallet_short"]
    refused(village.step(village.shop, order["id"], "dispatch"), 409, "order_not_dispatchable")
    refused(
        village.step(village.agent, order["id"], "deliver", {"amount_minor": 1}),
        409,
        "order_not_deliverable",
    )
    ugx = village.shop.request(
        "POST",
        "/v1/orders",
        json_body={
            "id": str(uuid.uuid4()),
            "currency": "UGX",
            "amount_minor": 5,
            "delivery_method": "courier",
        },
    )
    refused(ugx, 422, "currency_mismatch")  # the shop takes KES
    missing = str(uuid.uuid4())
    refused(village.shop.request("GET", f"/v1/orders/{missing}"), 404, "order_not_found")
    refused(village.step(village.shop, missing, "dispatch"), 404, "order_not_found")
    stranger = village.shop.request(
        "POST",
        "/v1/orders",
        json_body={**_order_body(), "villager_id": str(uuid.uuid4())},
    )
    refused(stranger, 404, "villager_not_found")


def _order_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "currency": KES,
        "amount_minor": 1_000,
        "delivery_method": "courier",
    }
    body.update(over)
    return body


def test_an_unonboarded_storefront_cannot_create_orders(api: Harness) -> None:
    shop = api.client("storefront")
    refused(
        shop.request("POST", "/v1/orders", json_body=_order_body()), 404, "storefront_not_found"
    )


@pytest.mark.parametrize(
    "over",
    [
        {"amount_minor": "1000"},
        {"amount_minor": True},
        {"amount_minor": 0},
        {"amount_minor": 2**53},
        {"currency": "kes"},
        {"delivery_method": "drone"},
        {"state": "released"},
        {"storefront_id": "6d1c1a8e-2b7f-4c3d-9e0a-5f4b3c2d1e0f"},
        {"paid_minor": 1000},
    ],
)
def test_bad_input_and_mass_assignment_are_422(village: Village, over: dict[str, Any]) -> None:
    answer = village.shop.request("POST", "/v1/orders", json_body=_order_body(**over))
    refused(answer, 422, "validation_failed")


def test_floats_in_json_are_400(village: Village) -> None:
    raw = b'{"id":"%s","currency":"KES","amount_minor":100.0,"delivery_method":"courier"}' % (
        str(uuid.uuid4()).encode()
    )
    headers = village.shop.signed_headers(
        "POST", village.shop.url("/v1/orders"), raw, idempotency_key="float-1"
    )
    answer = httpx.post(village.shop.url("/v1/orders"), content=raw, headers=headers)
    refused(answer, 400, "invalid_json")


# -- tenancy and roles ----------------------------------------------------------------------


def test_another_tenants_order_is_404_and_another_roles_step_is_403(village: Village) -> None:
    order = village.order(agent_id=village.agent_id)
    other_shop = new_village(village.api)
    for attempt in (
        lambda: other_shop.shop.request("GET", f"/v1/orders/{order['id']}"),
        lambda: other_shop.step(other_shop.shop, order["id"], "dispatch"),
        lambda: other_shop.step(other_shop.shop, order["id"], "cancel"),
        lambda: other_shop.step(other_shop.shop, order["id"], "refund"),
        lambda: other_shop.agent.request("GET", f"/v1/orders/{order['id']}"),
        lambda: other_shop.step(other_shop.agent, order["id"], "pay", {"source": "cash"}),
    ):
        refused(attempt(), 404, "order_not_found")
    assert ok(other_shop.shop.request("GET", "/v1/orders"))["data"] == []

    for who, action, body in (
        (village.agent, "dispatch", None),
        (village.shop, "pay", {"source": "cash"}),
        (village.shop, "deliver", None),
        (village.shop, "dispute", {"reason": "x"}),
        (village.agent, "refund", None),
    ):
        refused(village.step(who, order["id"], action, body), 403, "forbidden")
    refused(village.agent.request("POST", "/v1/orders", json_body=_order_body()), 403, "forbidden")
    refused(village.agent.request("GET", "/v1/orders"), 403, "forbidden")

    auditor = village.api.client("auditor")
    assert ok(auditor.request("GET", f"/v1/orders/{order['id']}"))["id"] == order["id"]
    listed = ok(auditor.request("GET", "/v1/orders", params={"storefront_id": village.shop_id}))
    assert [o["id"] for o in listed["data"]] == [order["id"]]
    refused(auditor.request("GET", "/v1/orders"), 400, "invalid_parameter")
    refused(village.step(auditor, order["id"], "cancel"), 403, "forbidden")
    # an agent cannot pay as another agent
    spoof = village.step(
        village.agent, order["id"], "pay", {"source": "cash", "agent_id": other_shop.agent_id}
    )
    refused(spoof, 422, "validation_failed")


def test_parties_are_onboarded_by_operators_and_named_by_their_principal(
    village: Village,
) -> None:
    api = village.api
    refused(
        village.shop.request(
            "POST",
            "/v1/parties",
            json_body={
                "id": str(uuid.uuid4()),
                "kind": "villager",
                "name": "x",
                "currency": KES,
                "kyc_tier": "basic",
            },
        ),
        403,
        "forbidden",
    )
    nobody = {"id": str(uuid.uuid4()), "kind": "storefront", "name": "Ghost", "currency": KES}
    refused(
        village.operator.request("POST", "/v1/parties", json_body=nobody), 422, "principal_mismatch"
    )
    agent_as_shop = {"id": village.agent_id, "kind": "storefront", "name": "x", "currency": KES}
    refused(
        village.operator.request("POST", "/v1/parties", json_body=agent_as_shop),
        422,
        "principal_mismatch",
    )
    villager_as_principal = {
        "id": village.shop_id,
        "kind": "villager",
        "name": "x",
        "currency": KES,
        "kyc_tier": "basic",
    }
    refused(
        village.operator.request("POST", "/v1/parties", json_body=villager_as_principal),
        422,
        "principal_mismatch",
    )
    again = village.onboard("storefront", village.shop_id, name=f"storefront {village.shop_id[:8]}")
    assert again["kind"] == "storefront"
    different = village.operator.request(
        "POST",
        "/v1/parties",
        json_body={"id": village.shop_id, "kind": "storefront", "name": "Renamed", "currency": KES},
    )
    refused(different, 409, "party_exists_different")
    shop_key = api.key("storefront")
    refused(
        village.operator.request(
            "POST",
            "/v1/parties",
            json_body={
                "id": shop_key["principal_id"],
                "kind": "storefront",
                "name": "Z",
                "currency": "XXX",
            },
        ),
        422,
        "currency_not_supported",
    )

    mine = ok(village.shop.request("GET", f"/v1/parties/{village.shop_id}"))
    assert set(mine["accounts"]) == {"escrow", "proceeds"}
    refused(village.shop.request("GET", f"/v1/parties/{village.agent_id}"), 404, "party_not_found")
    refused(
        village.shop.request("GET", f"/v1/parties/{village.villager_id}"), 404, "party_not_found"
    )
    assert (
        ok(village.operator.request("GET", f"/v1/parties/{village.villager_id}"))["kyc_tier"]
        == "tier0"
    )


# -- idempotency ---------------------------------------------------------------------------


def test_a_retried_step_pays_once_by_key_and_by_step_id(village: Village) -> None:
    order = village.order()
    path = f"/v1/orders/{order['id']}/pay"
    first = village.agent.request(
        "POST", path, json_body={"source": "cash"}, idempotency_key="pay-1"
    )
    again = village.agent.request(
        "POST", path, json_body={"source": "cash"}, idempotency_key="pay-1"
    )
    assert again.headers["idempotency-replayed"] == "true"
    assert again.content == first.content
    assert village.balance(village.agent_id, Role.FLOAT) == 500_000 - SEEDS_MINOR

    # a client that keeps its own step id is safe beyond the key's 24 h
    step = str(uuid.uuid4())
    ok(village.step(village.shop, order["id"], "dispatch", {"step_id": step}))
    replay = ok(village.step(village.shop, order["id"], "dispatch", {"step_id": step}))
    assert replay["state"] == "dispatched"
    reused = village.step(village.agent, order["id"], "deliver", {"step_id": step})
    refused(reused, 409, "step_id_reused")

    created = village.order()
    resent = village.shop.request(
        "POST",
        "/v1/orders",
        json_body={
            "id": created["id"],
            "currency": KES,
            "amount_minor": SEEDS_MINOR,
            "delivery_method": "agent_delivery",
            "villager_id": village.villager_id,
        },
    )
    assert ok(resent, 201)["id"] == created["id"]
    changed = village.shop.request("POST", "/v1/orders", json_body=_order_body(id=created["id"]))
    refused(changed, 409, "order_exists_different")


# -- the catalogue and the document ---------------------------------------------------------

EXPOSED_FLOWS = ("orders.py", "pickup.py", "consent.py", "offline.py", "parties.py", "fees.py")
_RAISED = re.compile(r'(?:Refused|NotFound|Conflict|_wrong_state)\(\s*"([a-z_]+)"')
_SHORT = re.compile(r'\]\s*=\s*"([a-z_]+_short)"|:\s*"([a-z_]+_short)"')


def flow_source(name: str) -> str:
    """The source of a flow named ``x.py``: the module, or every module of package ``x/``."""
    root = Path(flows.__file__).parent
    if (root / name).is_file():
        return (root / name).read_text()
    return "\n".join(p.read_text() for p in sorted((root / name.removesuffix(".py")).glob("*.py")))


def test_every_code_the_exposed_flows_raise_has_a_title_and_no_clash() -> None:
    raised: set[str] = set()
    for name in EXPOSED_FLOWS:
        text = flow_source(name)
        raised |= set(_RAISED.findall(text))
        raised |= {a or b for a, b in _SHORT.findall(text)}
    raised |= {f"{kind.value}_not_found" for kind in parties.Kind} | {"party_not_found"}
    answered = {FLOW_CODE_ALIASES.get(code, code) for code in raised}
    internal = {"effective_from_naive", "fee_rules_invalid", "product_invalid"}  # not exposed
    missing = answered - set(FLOW_CODES) - internal
    assert not missing, f"add these to api.problems.FLOW_CODES: {sorted(missing)}"
    assert not set(FLOW_CODES) & set(API_CODES)
    assert set(FLOW_CODES) >= STATE_CODES
    assert set(orders.DELIVERY_METHODS) == {"courier", "pickup_point", "agent_delivery"}


def test_openapi_documents_the_flow_routes(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = doc["paths"]
    for action in (
        "pay",
        "dispatch",
        "deliver",
        "release",
        "dispute",
        "resolve",
        "cancel",
        "refund",
    ):
        operation = paths[f"/v1/orders/{{order_id}}/{action}"]["post"]
        assert "requestBody" in operation, action
        assert {"403", "404", "409", "422"} <= set(operation["responses"])
    create = paths["/v1/orders"]["post"]["requestBody"]
    assert create["required"] is True
    assert create["content"]["application/json"]["schema"]["$ref"].endswith("/OrderCreate")
    assert paths["/v1/orders/{order_id}/dispatch"]["post"]["requestBody"]["required"] is False
    assert "/v1/parties" in paths and "/v1/parties/{party_id}" in paths
    codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert {"wallet_short", "order_not_payable", "record_signature_invalid"} <= set(codes)
    for name in (
        "OrderCreate",
        "OrderPay",
        "OrderOut",
        "PartyCreate",
        "DeviceSync",
        "SignedRecordIn",
        "WebhookEndpointCreate",
    ):
        assert name in doc["components"]["schemas"], name
