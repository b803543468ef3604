"""Issue 13: onboarding a villager through ``POST /v1/parties`` checks its KYC tier.

A tier names a row of ``kyc_tiers`` in the villager's currency (migration 0004 seeds
``tier0``, ``tier1`` and ``tier2`` in KES, UGX and TZS; an operator adds others with
:func:`ledger.flows.limits.set_tier_limits`). A villager in a tier without limits could do
no cash operation, so onboarding refuses it up front: 422 ``kyc_tier_unknown``, nothing
written (no party, no account, no platform of a new currency). Over signed HTTP, on SQLite
and PostgreSQL, with the attacks every route gets: the wrong role, another tenant's
party, markup and oversized text.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from ledger.flows import limits, parties
from ledger.flows.parties import Role
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import ok, refused

__all__ = ["api", "api_server"]

KES = "KES"
SEEDED_TIERS = ("tier0", "tier1", "tier2")
SEEDED_CURRENCIES = ("KES", "UGX", "TZS")
TIER_LENGTH_MAX = 32
"""``PartyCreate.kyc_tier``'s bound (api/schemas.py) and the table's column."""


def villager_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": "villager",
        "name": "Wanjiru",
        "currency": KES,
        "kyc_tier": "tier0",
    }
    body.update(over)
    return body


def onboard(api: Harness, body: dict[str, Any], role: str = "operator") -> httpx.Response:
    return api.client(role).request("POST", "/v1/parties", json_body=body)


def assert_nothing_written(api: Harness, party_id: str) -> None:
    """No party row, and none of its accounts on the core."""
    found = uuid.UUID(party_id)
    assert parties.read_party(api.ledger, found) is None
    assert api.ledger.lookup_accounts([parties.account_id(found, Role.WALLET)]) == []
    operator = api.client("operator")
    refused(operator.request("GET", f"/v1/parties/{party_id}"), 404, "party_not_found")


def test_a_villager_in_a_tier_with_no_limits_is_refused_and_nothing_is_written(
    api: Harness,
) -> None:
    gold = villager_body(kyc_tier="gold")
    problem = refused(onboard(api, gold), 422, "kyc_tier_unknown")
    assert "gold" in problem["detail"] and KES in problem["detail"]
    assert_nothing_written(api, gold["id"])

    # USD is an active currency but has no tiers: not even tier0, and its platform party
    # (made on a currency's first onboarding) is not made either.
    assert parties.read_party(api.ledger, parties.platform_id("USD")) is None
    dollar = villager_body(currency="USD")
    refused(onboard(api, dollar), 422, "kyc_tier_unknown")
    assert_nothing_written(api, dollar["id"])
    assert parties.read_party(api.ledger, parties.platform_id("USD")) is None

    # The tier's name is matched exactly: tier0 exists, TIER0 and "tier0 " do not.
    for near in ("TIER0", "tier0 ", "tier3"):
        near_miss = villager_body(kyc_tier=near)
        refused(onboard(api, near_miss), 422, "kyc_tier_unknown")
        assert_nothing_written(api, near_miss["id"])


@pytest.mark.parametrize("currency", SEEDED_CURRENCIES)
def test_one_operator_onboards_at_tier0_and_a_higher_tier_needs_a_second(
    api: Harness, currency: str
) -> None:
    body = villager_body(currency=currency, kyc_tier="tier0")
    made = ok(onboard(api, body), 201)
    assert (made["id"], made["kyc_tier"], made["currency"]) == (body["id"], "tier0", currency)
    assert set(made["accounts"]) == {"wallet"}
    read = ok(api.client("operator").request("GET", f"/v1/parties/{body['id']}"))
    assert read == made
    for tier in SEEDED_TIERS[1:]:  # a raise is maker-checker: POST /v1/kyc/villagers/{id}/tier
        higher = villager_body(currency=currency, kyc_tier=tier)
        refused(onboard(api, higher), 422, "kyc_tier_needs_approval")
        assert_nothing_written(api, higher["id"])
    # ... and the party made at tier0 cannot be "onboarded again" into a higher tier.
    refused(onboard(api, {**body, "kyc_tier": "tier1"}), 409, "party_exists_different")
    assert ok(api.client("operator").request("GET", f"/v1/parties/{body['id']}")) == made


def test_a_tier_an_operator_adds_is_accepted_from_then_on(api: Harness) -> None:
    body = villager_body(kyc_tier="coop_gold")
    refused(onboard(api, body), 422, "kyc_tier_unknown")
    assert_nothing_written(api, body["id"])
    limits.set_tier_limits(
        api.ledger,
        currency=KES,
        tier="coop_gold",
        per_transaction_max_minor=10_000,
        daily_max_minor=20_000,
        balance_max_minor=50_000,
    )
    # Known now, and still above tier0: one operator cannot onboard into it.
    refused(onboard(api, body), 422, "kyc_tier_needs_approval")
    assert_nothing_written(api, body["id"])
    # ... in KES only: the same tier name in UGX still has no limits.
    refused(
        onboard(api, villager_body(currency="UGX", kyc_tier="coop_gold")), 422, "kyc_tier_unknown"
    )


def test_the_tier_check_comes_after_the_caller_and_the_other_fields(api: Harness) -> None:
    """A wrong role learns nothing about tiers; a bad currency or name is named as such."""
    for role in ("storefront", "agent", "auditor"):
        body = villager_body(kyc_tier="gold")
        refused(onboard(api, body, role), 403, "forbidden")
        assert_nothing_written(api, body["id"])
    refused(onboard(api, villager_body(currency="XXX")), 422, "currency_not_supported")
    refused(onboard(api, villager_body(name="", kyc_tier="gold")), 422, "validation_failed")
    no_tier = villager_body()
    del no_tier["kyc_tier"]
    refused(onboard(api, no_tier), 422, "kyc_tier_invalid")
    assert_nothing_written(api, no_tier["id"])


def test_markup_and_oversized_tiers_are_refused_as_data(api: Harness) -> None:
    markup = villager_body(kyc_tier="<script>alert(1)</script>")
    answer = onboard(api, markup)
    refused(answer, 422, "kyc_tier_unknown")
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert_nothing_written(api, markup["id"])
    for tier in ("t" * (TIER_LENGTH_MAX + 1), "t" * 10_000, ""):
        body = villager_body(kyc_tier=tier)
        refused(onboard(api, body), 422, "validation_failed")
        assert_nothing_written(api, body["id"])
    longest = "t" * TIER_LENGTH_MAX  # at the bound: well formed, only unknown
    refused(onboard(api, villager_body(kyc_tier=longest)), 422, "kyc_tier_unknown")


def test_another_tenant_cannot_read_the_villager_and_nobody_reads_a_refused_one(
    api: Harness,
) -> None:
    body = villager_body(kyc_tier="tier0")
    ok(onboard(api, body), 201)
    for role in ("storefront", "agent"):
        stranger = api.client(role)
        refused(stranger.request("GET", f"/v1/parties/{body['id']}"), 404, "party_not_found")
    refused_body = villager_body(kyc_tier="gold")
    refused(onboard(api, refused_body), 422, "kyc_tier_unknown")
    auditor = api.client("auditor")
    assert ok(auditor.request("GET", f"/v1/parties/{body['id']}"))["kyc_tier"] == "tier0"
    refused(auditor.request("GET", f"/v1/parties/{refused_body['id']}"), 404, "party_not_found")
