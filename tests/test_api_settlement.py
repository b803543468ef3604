"""Settlement windows over signed HTTP, both engines: an operator opens and closes a
window, confirms one payout and fails another, the report ties to the ledger, and the
failed money is paid by the next window; storefronts see only their own payouts.

Each test settles its own currency: a window nets every storefront of its currency, and
the tests of a module share one database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.client import Client
from ledger.flows import parties, settlement
from ledger.flows.parties import Role
from tests.test_api_cash import api_server
from tests.test_api_harness import Harness, account_body, api, approved, transfer_body
from tests.test_api_orders import ok, refused

__all__ = ["api", "api_server"]

PROVIDER = "MPESA"


@dataclass
class Market:
    """Storefronts of one currency with released proceeds, and the operator."""

    api: Harness
    currency: str
    operator: Client = field(init=False)
    bank: str = field(init=False)
    shops: dict[str, Client] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.operator = self.api.client("operator")
        self.bank = self.operator.create_account(**account_body(code=999, currency=self.currency))[
            "id"
        ]

    def shop(self, proceeds_minor: int) -> str:
        made = self.api.key("storefront")
        shop_id = made["principal_id"]
        body = {"id": shop_id, "kind": "storefront", "name": "Duka", "currency": self.currency}
        ok(self.operator.request("POST", "/v1/parties", json_body=body), 201)
        self.shops[shop_id] = self.api.client_for(made)
        if proceeds_minor:
            proceeds = str(parties.account_id(uuid.UUID(shop_id), Role.PROCEEDS))
            [moved] = approved(
                self.api,
                self.operator,
                [transfer_body(self.bank, proceeds, proceeds_minor, currency=self.currency)],
            )
            assert moved["status"] == "created"
        return shop_id

    def proceeds(self, shop_id: str) -> int:
        account = parties.account_id(uuid.UUID(shop_id), Role.PROCEEDS)
        [found] = self.api.ledger.lookup_accounts([account])
        return found.credits_posted - found.debits_posted

    def open(self, window_id: str | None = None, who: Client | None = None) -> httpx.Response:
        body = {"id": window_id or str(uuid.uuid4()), "currency": self.currency}
        return (who or self.operator).request("POST", "/v1/settlement-windows", json_body=body)

    def close(self, window_id: str, provider: str = PROVIDER, who: Client | None = None) -> Any:
        return (who or self.operator).request(
            "POST", f"/v1/settlement-windows/{window_id}/close", json_body={"provider": provider}
        )

    def payouts(self, window_id: str, who: Client | None = None) -> list[dict[str, Any]]:
        page = ok(
            (who or self.operator).request("GET", f"/v1/settlement-windows/{window_id}/payouts")
        )
        assert page["has_more"] is False
        found: list[dict[str, Any]] = page["data"]
        return found

    def resolve(self, payout_id: str, action: str, body: dict[str, str]) -> httpx.Response:
        return self.operator.request("POST", f"/v1/payouts/{payout_id}/{action}", json_body=body)


def test_a_window_is_opened_closed_its_payouts_confirmed_or_failed_and_it_ties(
    api: Harness,
) -> None:
    market = Market(api, "UGX")
    paid_shop, failed_shop, idle_shop = market.shop(50_000), market.shop(30_000), market.shop(0)
    window_id = str(uuid.uuid4())
    opened = ok(market.open(window_id), 201)
    assert (opened["state"], opened["currency"], opened["provider"]) == ("open", "UGX", None)
    assert ok(market.open(window_id), 201) == opened  # by its id, with another key
    refused(market.open(), 409, "window_already_open")

    closed = ok(market.close(window_id))
    assert (closed["state"], closed["provider"], closed["payouts_count"]) == ("closed", PROVIDER, 2)
    assert closed["payouts_total_minor"] == 80_000
    assert ok(market.close(window_id)) == closed
    refused(market.close(window_id, "AIRTEL"), 409, "window_closed_differently")

    payouts = {p["storefront_id"]: p for p in market.payouts(window_id)}
    assert set(payouts) == {paid_shop, failed_shop}  # nothing to pay the idle shop
    assert payouts[paid_shop]["amount_minor"] == 50_000
    assert payouts[paid_shop]["id"] == str(
        settlement.payout_id_of(uuid.UUID(window_id), uuid.UUID(paid_shop))
    )
    assert market.proceeds(paid_shop) == 50_000  # held, not paid yet

    paid = ok(market.resolve(payouts[paid_shop]["id"], "confirm", {"provider_reference": "R1"}))
    assert (paid["state"], paid["provider_reference"]) == ("paid", "R1")
    assert ok(market.resolve(paid["id"], "confirm", {"provider_reference": "R1"})) == paid
    refused(
        market.resolve(paid["id"], "confirm", {"provider_reference": "R2"}),
        409,
        "payout_confirmed_differently",
    )
    refused(
        market.resolve(payouts[failed_shop]["id"], "confirm", {"provider_reference": "R1"}),
        409,
        "provider_reference_used",
    )
    failed = ok(market.resolve(payouts[failed_shop]["id"], "fail", {"reason": "account closed"}))
    assert (failed["state"], failed["failure_reason"]) == ("failed", "account closed")
    refused(
        market.resolve(failed["id"], "confirm", {"provider_reference": "R3"}),
        409,
        "payout_not_pending",
    )
    refused(market.resolve(paid["id"], "fail", {"reason": " "}), 422, "reason_invalid")

    settled = ok(market.operator.request("GET", f"/v1/settlement-windows/{window_id}"))
    assert settled["state"] == "settled" and settled["settled_at"] is not None
    assert (market.proceeds(paid_shop), market.proceeds(failed_shop)) == (0, 30_000)

    report = ok(api.client("auditor").request("GET", f"/v1/settlement-windows/{window_id}/report"))
    assert report["ties"] is True and report["problems"] == []
    assert (report["paid_total_minor"], report["failed_total_minor"]) == (50_000, 30_000)
    assert report["ledger_posted_minor"] == report["clearing_movement_minor"] == 50_000
    assert report["ledger_voided_minor"] == 30_000 and report["pending_total_minor"] == 0
    assert {line["payout_id"] for line in report["lines"]} == {paid["id"], failed["id"]}
    assert all(line["ties"] for line in report["lines"])

    # the failed money waits for the next window
    later = ok(market.open(), 201)["id"]
    assert ok(market.close(later))["payouts_total_minor"] == 30_000
    [again] = market.payouts(later)
    assert (again["storefront_id"], again["amount_minor"]) == (failed_shop, 30_000)
    assert idle_shop not in {p["storefront_id"] for p in market.payouts(later)}
    assert api.ledger.check_integrity().ok


def test_storefronts_see_only_their_own_payouts_and_roles_are_held(api: Harness) -> None:
    market = Market(api, "TZS")
    mine, theirs = market.shop(200_000), market.shop(100_000)
    window_id = ok(market.open(), 201)["id"]
    ok(market.close(window_id))
    shop = market.shops[mine]

    [own] = market.payouts(window_id, who=shop)
    assert (own["storefront_id"], own["amount_minor"]) == (mine, 200_000)
    assert ok(shop.request("GET", f"/v1/payouts/{own['id']}")) == own
    [other] = market.payouts(window_id, who=market.shops[theirs])
    refused(shop.request("GET", f"/v1/payouts/{other['id']}"), 404, "payout_not_found")
    after = ok(
        shop.request(
            "GET",
            f"/v1/settlement-windows/{window_id}/payouts",
            params={"starting_after": own["id"]},
        )
    )
    assert after == {"data": [], "has_more": False}
    assert market.payouts(str(uuid.uuid4()), who=shop) == []  # no window: nothing of its

    for path in (
        "/v1/settlement-windows",
        f"/v1/settlement-windows/{window_id}",
        f"/v1/settlement-windows/{window_id}/report",
    ):
        refused(shop.request("GET", path), 403, "forbidden")
    refused(market.open(who=shop), 403, "forbidden")
    confirm = {"provider_reference": "X"}
    answer = shop.request("POST", f"/v1/payouts/{own['id']}/confirm", json_body=confirm)
    refused(answer, 403, "forbidden")

    agent = api.client("agent")
    refused(agent.request("GET", "/v1/settlement-windows"), 403, "forbidden")
    refused(agent.request("GET", f"/v1/payouts/{own['id']}"), 403, "forbidden")

    auditor = api.client("auditor")
    assert len(market.payouts(window_id, who=auditor)) == 2
    refused(market.close(window_id, who=auditor), 403, "forbidden")
    refused(
        auditor.request("POST", f"/v1/payouts/{own['id']}/fail", json_body={"reason": "no"}),
        403,
        "forbidden",
    )
    assert ok(auditor.request("GET", f"/v1/payouts/{own['id']}"))["state"] == "pending"
    refused(
        market.operator.request("GET", f"/v1/settlement-windows/{uuid.uuid4()}"),
        404,
        "window_not_found",
    )
    refused(market.resolve(str(uuid.uuid4()), "fail", {"reason": "x"}), 404, "payout_not_found")


def test_windows_are_listed_in_pages_and_input_is_strict(api: Harness) -> None:
    market = Market(api, "RWF")
    made = []
    for _ in range(3):
        window_id = ok(market.open(), 201)["id"]
        ok(market.close(window_id))  # no storefronts: settled at once
        made.append(window_id)
    auditor = api.client("auditor")

    def page(**params: str) -> dict[str, Any]:
        found: dict[str, Any] = ok(
            auditor.request("GET", "/v1/settlement-windows", params={"currency": "RWF", **params})
        )
        return found

    first = page(limit="2")
    assert ([w["id"] for w in first["data"]], first["has_more"]) == (made[:2], True)
    rest = page(limit="2", starting_after=made[1])
    assert ([w["id"] for w in rest["data"]], rest["has_more"]) == (made[2:], False)
    assert [w["state"] for w in page(state="settled")["data"]] == ["settled"] * 3
    assert page(state="open")["data"] == []
    for bad in ({"limit": "101"}, {"currency": "rwf"}, {"state": "lost"}):
        answer = auditor.request("GET", "/v1/settlement-windows", params=bad)
        refused(answer, 400, "invalid_parameter")

    for body in (
        {"id": str(uuid.uuid4()), "currency": "rwf"},
        {"id": str(uuid.uuid4()), "currency": "RWF", "state": "settled"},
        {"currency": "RWF"},
    ):
        answer = market.operator.request("POST", "/v1/settlement-windows", json_body=body)
        refused(answer, 422, "validation_failed")
    window_id = ok(market.open(), 201)["id"]
    refused(market.close(window_id, "mpesa"), 422, "validation_failed")
    assert (
        ok(market.operator.request("GET", f"/v1/settlement-windows/{window_id}"))["state"] == "open"
    )


def test_openapi_documents_the_settlement_routes(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = doc["paths"]
    for path, model in {
        "/v1/settlement-windows": "WindowOpen",
        "/v1/settlement-windows/{window_id}/close": "WindowClose",
        "/v1/payouts/{payout_id}/confirm": "PayoutConfirm",
        "/v1/payouts/{payout_id}/fail": "PayoutFail",
    }.items():
        operation = paths[path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(f"/{model}"), path
        assert {"403", "404", "409", "422"} <= set(operation["responses"])
    for path in (
        "/v1/settlement-windows/{window_id}",
        "/v1/settlement-windows/{window_id}/payouts",
        "/v1/settlement-windows/{window_id}/report",
        "/v1/payouts/{payout_id}",
    ):
        assert "get" in paths[path]
    schemas = doc["components"]["schemas"]
    assert {"WindowOut", "PayoutOut", "WindowReportOut", "ReportLineOut"} <= set(schemas)
