"""The villager's consent over signed HTTP, both engines: a wallet payment carries her pay
code (``consent_code``), the hand-over at a station her pickup code (``pickup_code``).
Refusals are problem+json 422 with their code and change no balance; retries replay.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from ledger.flows import pickup
from ledger.flows.parties import Role
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import (
    SEEDS_MINOR,
    Village,
    fee_schedule,
    new_village,
    ok,
    refused,
    village,
)
from tests.test_flow_order_consent import pickup_codes_sent

__all__ = ["api", "api_server", "fee_schedule", "village"]


def balances(village: Village) -> dict[str, int]:
    return {
        "wallet": village.balance(village.villager_id, Role.WALLET),
        "escrow": village.balance(village.shop_id, Role.ESCROW),
        "float": village.balance(village.agent_id, Role.FLOAT),
        "proceeds": village.balance(village.shop_id, Role.PROCEEDS),
    }


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_checkout_without_her_pay_code_is_422_and_with_it_pays_once(village: Village) -> None:
    order = village.order(delivery_method="courier")
    path = f"/v1/orders/{order['id']}/pay"
    before = balances(village)
    for who in (village.shop, village.agent):
        refused(
            village.step(who, order["id"], "pay", {"source": "wallet"}), 422, "consent_required"
        )
    code = village.pay_code(order)
    refused(
        village.step(
            village.shop, order["id"], "pay", {"source": "wallet", "consent_code": wrong(code)}
        ),
        422,
        "consent_invalid",
    )
    assert balances(village) == before
    assert ok(village.shop.request("GET", f"/v1/orders/{order['id']}"))["state"] == "created"

    body = {"source": "wallet", "consent_code": code}
    first = village.shop.request("POST", path, json_body=body, idempotency_key="checkout-1")
    assert ok(first)["state"] == "paid"
    paid = balances(village)
    assert paid["wallet"] == before["wallet"] - SEEDS_MINOR
    assert paid["escrow"] == before["escrow"] + SEEDS_MINOR
    again = village.shop.request("POST", path, json_body=body, idempotency_key="checkout-1")
    assert again.headers["idempotency-replayed"] == "true" and again.content == first.content
    # another key with the spent code: the order is paid, nothing moves twice
    refused(village.shop.request("POST", path, json_body=body), 409, "order_not_payable")
    assert balances(village) == paid
    assert village.api.ledger.check_integrity().ok


def test_a_code_for_another_order_is_422_and_a_client_step_id_replays(village: Village) -> None:
    seeds, hoe = village.order(), village.order()
    before = balances(village)
    stolen = {"source": "wallet", "consent_code": village.pay_code(hoe)}
    refused(village.step(village.agent, seeds["id"], "pay", stolen), 422, "consent_invalid")
    assert balances(village) == before
    step = str(uuid.uuid4())
    body = {"source": "wallet", "consent_code": village.pay_code(seeds), "step_id": step}
    paid = ok(village.step(village.agent, seeds["id"], "pay", body))
    assert (paid["state"], paid["agent_id"]) == ("paid", village.agent_id)
    assert ok(village.step(village.agent, seeds["id"], "pay", body)) == paid  # a new key
    assert balances(village)["wallet"] == before["wallet"] - SEEDS_MINOR


def test_a_storefront_pays_only_its_own_orders_from_the_wallet(village: Village) -> None:
    order = village.order()
    before = balances(village)
    refused(village.step(village.shop, order["id"], "pay", {"source": "cash"}), 403, "forbidden")
    naming = {"source": "wallet", "agent_id": village.agent_id, "consent_code": "123456"}
    refused(village.step(village.shop, order["id"], "pay", naming), 422, "validation_failed")
    for bad in ("12345", "1234567", "12a456", 123456):
        refused(
            village.step(
                village.shop, order["id"], "pay", {"source": "wallet", "consent_code": bad}
            ),
            422,
            "validation_failed",
        )
    other = new_village(village.api)  # another storefront on the same server
    code = village.pay_code(order)
    body = {"source": "wallet", "consent_code": code}
    refused(village.step(other.shop, order["id"], "pay", body), 404, "order_not_found")
    assert balances(village) == before


def test_the_hand_over_needs_her_pickup_code(village: Village) -> None:
    order = village.order(delivery_method="pickup_point")
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    ok(village.step(village.shop, order["id"], "dispatch"))
    code = village.pickup_code(order)
    before = balances(village)
    refused(village.step(village.agent, order["id"], "deliver"), 422, "pickup_code_required")
    refused(
        village.step(village.agent, order["id"], "deliver", {"pickup_code": wrong(code)}),
        422,
        "pickup_code_invalid",
    )
    refused(
        village.step(village.agent, order["id"], "deliver", {"pickup_code": "12 456"}),
        422,
        "validation_failed",
    )
    assert balances(village) == before
    path = f"/v1/orders/{order['id']}/deliver"
    body = {"pickup_code": code}
    first = village.agent.request("POST", path, json_body=body, idempotency_key="handed-1")
    assert ok(first)["state"] == "delivered"
    again = village.agent.request("POST", path, json_body=body, idempotency_key="handed-1")
    assert again.headers["idempotency-replayed"] == "true" and again.content == first.content
    released = ok(village.step(village.agent, order["id"], "release"))
    assert released["state"] == "released"
    assert village.api.ledger.check_integrity().ok


def test_three_wrong_pickup_codes_void_it_and_the_shop_sends_a_new_one(village: Village) -> None:
    order = village.order(delivery_method="agent_delivery")
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    ok(village.step(village.shop, order["id"], "dispatch"))
    code = village.pickup_code(order)
    for _ in range(pickup.TRIES_WRONG_MAX):
        refused(
            village.step(village.agent, order["id"], "deliver", {"pickup_code": wrong(code)}),
            422,
            "pickup_code_invalid",
        )
    refused(
        village.step(village.agent, order["id"], "deliver", {"pickup_code": code}),
        422,
        "pickup_code_invalid",
    )
    resent = ok(village.step(village.shop, order["id"], "dispatch"))  # a new key: a new code
    assert resent["state"] == "dispatched"
    codes = pickup_codes_sent(
        village.api.ledger, uuid.UUID(village.villager_id), uuid.UUID(order["id"])
    )
    assert len(codes) == 2
    delivered = village.step(village.agent, order["id"], "deliver", {"pickup_code": codes[-1]})
    assert ok(delivered)["state"] == "delivered"


def test_openapi_documents_the_codes(api: Harness) -> None:
    doc: dict[str, Any] = httpx.get(api.base_url + "/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "consent_code" in schemas["OrderPay"]["properties"]
    assert "pickup_code" in schemas["OrderDeliver"]["properties"]
    codes = set(schemas["Problem"]["properties"]["code"]["enum"])
    assert {
        "consent_required",
        "consent_invalid",
        "pickup_code_required",
        "pickup_code_invalid",
        "pickup_codes_exceeded",
    } <= codes
