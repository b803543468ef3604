"""``/v1/back-office``, the back office's reads, over signed HTTP on both engines (SQLite
and PostgreSQL): a search finds a villager by phone, objects by id and suspense items by
the provider's reference; an account's history pages with its counters after each
transfer; an order's timeline lists its events; the float alarms list an agent below its
threshold. Storefronts and agents are refused (403), unsigned and forged requests 401,
unknown objects 404, a bad cursor or an oversized search refused; markup comes back as
JSON text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ledger.flows import agent_float, parties, suspense
from ledger.flows.parties import Role
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import Village, fee_schedule, new_village, ok, refused

__all__ = ["api", "api_server", "fee_schedule"]

XSS = '<img src=x onerror="alert(1)">'
BASE = "/v1/back-office"


@pytest.fixture
def village(api: Harness, fee_schedule: None) -> Iterator[Village]:
    yield new_village(api)


def phone_of(village: Village) -> str:
    auditor = village.api.client("auditor")
    found = ok(auditor.request("GET", f"/v1/villagers/{village.villager_id}"))
    phone: str = found["phone"]
    return phone


def search(client: Any, text: str) -> httpx.Response:
    answer: httpx.Response = client.request("GET", f"{BASE}/search", params={"q": text})
    return answer


def test_search_finds_a_villager_by_phone_and_objects_by_id_and_reference(
    village: Village,
) -> None:
    auditor = village.api.client("auditor")
    phone = phone_of(village)
    found = ok(search(auditor, phone))
    assert [(h["kind"], h["id"], h["matched"]) for h in found["data"]] == [
        ("party", village.villager_id, "phone")
    ]
    spaced = f"{phone[:4]} {phone[4:7]} {phone[7:]}"  # any spelling the flow takes
    assert ok(search(auditor, spaced))["data"][0]["id"] == village.villager_id

    order = village.order()
    by_id = ok(search(auditor, order["id"]))["data"]
    assert [(h["kind"], h["amount_minor"], h["currency"]) for h in by_id] == [
        ("order", order["amount_minor"], "KES")
    ]
    wallet = str(parties.account_id(uuid.UUID(village.villager_id), Role.WALLET))
    assert [h["kind"] for h in ok(search(auditor, wallet))["data"]] == ["account"]
    assert [h["kind"] for h in ok(search(auditor, village.agent_id))["data"]] == ["party"]

    reference = f"MP{uuid.uuid4().hex[:10].upper()}"
    item_id = uuid.uuid4()
    suspense.park(village.api.ledger, suspense_id=item_id, currency="KES", provider="MPESA",
                  provider_reference=reference, amount_minor=30_000)  # fmt: skip
    by_reference = ok(search(auditor, reference))["data"]
    assert [(h["kind"], h["id"], h["matched"], h["amount_minor"]) for h in by_reference] == [
        ("suspense_item", str(item_id), "reference", 30_000)
    ]
    assert ok(search(auditor, "+254700000001"))["data"] == []
    assert ok(search(auditor, str(uuid.uuid4())))["data"] == []


def test_an_accounts_history_pages_with_its_counters_after_each_transfer(
    village: Village,
) -> None:
    operator = village.api.client("operator")
    wallet = str(parties.account_id(uuid.UUID(village.villager_id), Role.WALLET))
    village.fund(village.villager_id, Role.WALLET, 5_000)
    first = ok(operator.request("GET", f"{BASE}/accounts/{wallet}/history", params={"limit": "1"}))
    assert first["holder"]["party_id"] == village.villager_id
    assert first["holder"]["role"] == "wallet" and first["has_more"] is True
    [line] = first["data"]
    assert (line["credits_posted_after"], line["balance_posted_after"]) == (200_000, 200_000)
    after = line["transfer"]["id"]
    second = ok(operator.request("GET", f"{BASE}/accounts/{wallet}/history",
                                 params={"limit": "1", "starting_after": after}))  # fmt: skip
    [line] = second["data"]
    assert (line["transfer"]["amount"], line["balance_posted_after"]) == (5_000, 205_000)
    assert second["has_more"] is False
    assert second["account"]["credits_posted"] == 205_000

    missing = operator.request("GET", f"{BASE}/accounts/{uuid.uuid4()}/history")
    refused(missing, 404, "account_not_found")
    bad_cursor = operator.request(
        "GET", f"{BASE}/accounts/{wallet}/history", params={"starting_after": str(uuid.uuid4())}
    )
    refused(bad_cursor, 400, "invalid_parameter")
    too_big = operator.request("GET", f"{BASE}/accounts/{wallet}/history", params={"limit": "101"})
    assert too_big.status_code in (400, 422), too_big.text


def test_an_orders_timeline_lists_its_events_in_order_and_pages(village: Village) -> None:
    auditor = village.api.client("auditor")
    order = village.order()
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    ok(village.step(village.shop, order["id"], "dispatch"))
    path = f"{BASE}/orders/{order['id']}/timeline"
    whole = ok(auditor.request("GET", path))
    assert whole["order"]["id"] == order["id"] and whole["order"]["state"] == "dispatched"
    types = [e["type"] for e in whole["data"]]
    assert types[:2] == ["order.paid", "order.dispatched"], types
    page = ok(auditor.request("GET", path, params={"limit": "1"}))
    assert [e["type"] for e in page["data"]] == ["order.paid"] and page["has_more"] is True
    rest = ok(auditor.request("GET", path, params={"starting_after": str(page["data"][0]["seq"])}))
    assert [e["type"] for e in rest["data"]] == types[1:]
    refused(
        auditor.request("GET", f"{BASE}/orders/{uuid.uuid4()}/timeline"), 404, "order_not_found"
    )


def test_float_alarms_list_an_agent_below_its_threshold(village: Village) -> None:
    auditor = village.api.client("auditor")
    agent = uuid.UUID(village.agent_id)
    agent_float.set_float_threshold(village.api.ledger, agent_id=agent, threshold_minor=900_000)
    seen: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(50):
        params = {"limit": "100"} if after is None else {"limit": "100", "starting_after": after}
        page = ok(auditor.request("GET", f"{BASE}/float-alarms", params=params))
        seen += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["agent_id"]
    mine = [f for f in seen if f["agent_id"] == village.agent_id]
    assert [(f["available_minor"], f["low_threshold_minor"]) for f in mine] == [(500_000, 900_000)]
    agent_float.set_float_threshold(village.api.ledger, agent_id=agent, threshold_minor=100)
    again = ok(auditor.request("GET", f"{BASE}/float-alarms", params={"limit": "100"}))
    assert village.agent_id not in {f["agent_id"] for f in again["data"]}


def routes(village: Village, order_id: str) -> list[str]:
    wallet = parties.account_id(uuid.UUID(village.villager_id), Role.WALLET)
    return [
        f"{BASE}/search?q={village.villager_id}",
        f"{BASE}/accounts/{wallet}/history",
        f"{BASE}/orders/{order_id}/timeline",
        f"{BASE}/float-alarms",
    ]


def test_storefronts_and_agents_are_refused_even_for_their_own_objects(
    village: Village,
) -> None:
    order = village.order()
    for path in routes(village, order["id"]):
        for tenant in (village.shop, village.agent):
            refused(tenant.request("GET", path), 403, "forbidden")
        assert village.operator.request("GET", path).status_code == 200, path


def test_unsigned_and_forged_requests_are_refused(village: Village) -> None:
    order = village.order()
    auditor = village.api.client("auditor")
    for path in routes(village, order["id"]):
        bare = httpx.get(village.api.base_url + path)
        assert bare.status_code == 401, path
        assert bare.headers["content-type"].startswith("application/problem+json")
        signed = auditor.request("GET", path).request.headers
        forged = dict(signed)
        forged["signature"] = forged["signature"][:-6] + "AAAAA:"
        answer = httpx.get(village.api.base_url + path, headers=forged)
        assert answer.status_code == 401, (path, answer.text)


def test_markup_and_oversized_searches_are_text_or_refused(village: Village) -> None:
    auditor = village.api.client("auditor")
    answer = search(auditor, XSS)
    assert answer.headers["content-type"].startswith("application/json")
    assert ok(answer) == {"query": XSS, "data": []}
    assert search(auditor, "x" * 129).status_code in (400, 422)
    assert search(auditor, "").status_code in (400, 422)
    assert search(auditor, "x" * 128).status_code == 200
