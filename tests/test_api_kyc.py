"""KYC tiers over signed HTTP, maker-checker, both engines.

The story: Wanjiru is registered at tier0, so a cash-in of 6,000.00 is refused. Operator
Amina proposes tier1 (202: nothing changes); she cannot approve it herself, nor can an
auditor, a storefront or an agent; operator Baraka approves and the same cash-in passes,
its money in her wallet. Lowering her back to tier0 is one operator's act. A tier's
limits are proposed and approved the same way. Roles, replays, bad input, another
tenant's villager and forged signatures are refused and change nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from api.client import Client
from api.signatures import Sha256Digest
from ledger.flows import events, kyc, parties
from ledger.flows.parties import Role
from tests.test_api_attacks import refused, send
from tests.test_api_cash import Counter
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_orders import ok
from tests.test_api_villagers import Station

__all__ = ["api", "api_server"]

KES = "KES"
ABOVE_TIER0_MINOR = 600_000
"""6,000.00 KES: above tier0's 5,000.00 per transaction, within tier1's 70,000.00."""


def approve(who: Client, proposal_id: str) -> httpx.Response:
    return who.request("POST", f"/v1/proposals/{proposal_id}/approve", json_body=None)


def kinds_proposed(who: Client, kind: str) -> list[dict[str, Any]]:
    found = ok(who.request("GET", "/v1/proposals", params={"limit": "100"}))["data"]
    return [p for p in found if p["kind"] == kind]


def event_types(api: Harness, subject_id: str | None = None) -> list[str]:
    subject = None if subject_id is None else uuid.UUID(subject_id)
    found = api.ledger.transact(
        lambda tx: events.read_events(tx, after_seq=0, limit=1000, subject_id=subject)
    )
    return [e.type for e in found]


def set_tier(who: Client, villager_id: str, tier: str, **kw: Any) -> httpx.Response:
    body = {"tier": tier, **kw.pop("extra", {})}
    return who.request("POST", f"/v1/kyc/villagers/{villager_id}/tier", json_body=body, **kw)


def tier_of(who: Client, villager_id: str) -> str:
    found: str = ok(who.request("GET", f"/v1/villagers/{villager_id}"))["kyc_tier"]
    return found


def wallet_minor(who: Client, villager_id: str) -> int:
    """The villager's wallet balance as the API shows it (an operator reads any account)."""
    account = who.get_account(str(parties.account_id(uuid.UUID(villager_id), Role.WALLET)))
    return int(account["credits_posted"]) - int(account["debits_posted"])


def limits_body(tier: str, **over: Any) -> dict[str, Any]:
    body = {
        "currency": KES,
        "tier": tier,
        "per_transaction_max_minor": 1_000_000,
        "daily_max_minor": 2_000_000,
        "balance_max_minor": 4_000_000,
    }
    return {**body, **over}


def propose_limits(who: Client, body: Any, **kw: Any) -> httpx.Response:
    return who.request("POST", "/v1/kyc/tiers", json_body=body, **kw)


def tiers(who: Client, **params: Any) -> Any:
    return ok(who.request("GET", "/v1/kyc/tiers", params={"currency": KES, **params}))


def new_tier() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def counter(api: Harness) -> Counter:
    return Counter(api, tier="tier0")


# -- a villager's tier ------------------------------------------------------------------------


def test_a_raise_waits_for_a_second_operator_then_she_may_move_more(
    api: Harness, counter: Counter
) -> None:
    amina, baraka = counter.operator, api.client("operator")
    villager = counter.villager_id
    refused(counter.cash_in(ABOVE_TIER0_MINOR), 422, "limit_exceeded_per_transaction")

    made = ok(set_tier(amina, villager, "tier1"), 202)["proposal"]
    assert (made["kind"], made["state"]) == (kyc.KYC_TIER, "proposed")
    assert made["payload"] == {"villager_id": villager, "tier": "tier1"}
    assert tier_of(amina, villager) == "tier0"  # nothing changed yet
    refused(counter.cash_in(ABOVE_TIER0_MINOR), 422, "limit_exceeded_per_transaction")

    refused(approve(amina, made["id"]), 422, "proposal_maker_cannot_decide")
    for outsider in ("auditor", "storefront", "agent"):
        refused(approve(api.client(outsider), made["id"]), 403, "forbidden")
    assert tier_of(amina, villager) == "tier0"
    assert events.KYC_TIER_CHANGED not in event_types(api, villager)

    approved = ok(approve(baraka, made["id"]))
    assert approved["state"] == "approved" and approved["decided_by"] != approved["proposed_by"]
    assert approved["result"] == {"villager_id": villager, "currency": KES, "kyc_tier": "tier1"}
    assert tier_of(amina, villager) == "tier1"
    assert event_types(api, villager).count(events.KYC_TIER_CHANGED) == 1
    assert ok(approve(baraka, made["id"])) == approved  # approving twice applies once
    assert event_types(api, villager).count(events.KYC_TIER_CHANGED) == 1

    cashed = ok(counter.cash_in(ABOVE_TIER0_MINOR), 201)
    assert wallet_minor(amina, villager) == ABOVE_TIER0_MINOR - cashed["fee_minor"]


def test_lowering_to_tier0_is_one_operators_act_and_restricts_her(api: Harness) -> None:
    counter = Counter(api, tier="tier1")
    operator, villager = counter.operator, counter.villager_id
    before = len(kinds_proposed(operator, kyc.KYC_TIER))
    changes = event_types(api, villager).count(events.KYC_TIER_CHANGED)
    key = str(uuid.uuid4())
    lowered = ok(set_tier(operator, villager, "tier0", idempotency_key=key))
    assert lowered == {"villager_id": villager, "currency": KES, "kyc_tier": "tier0"}
    replay = set_tier(operator, villager, "tier0", idempotency_key=key)
    assert ok(replay) == lowered and replay.headers["idempotency-replayed"] == "true"
    assert ok(set_tier(operator, villager, "tier0")) == lowered  # the same tier: no change
    assert len(kinds_proposed(operator, kyc.KYC_TIER)) == before  # no proposal was made
    assert event_types(api, villager).count(events.KYC_TIER_CHANGED) == changes + 1
    refused(counter.cash_in(ABOVE_TIER0_MINOR), 422, "limit_exceeded_per_transaction")
    assert wallet_minor(operator, villager) == 0


def test_only_operators_move_villagers_and_agents_register_at_tier0_only(api: Harness) -> None:
    station = Station(api)
    wanjiru = ok(station.register(), 201)
    assert wanjiru["kyc_tier"] == "tier0"
    refused(station.register(kyc_tier="tier2"), 422, "validation_failed")  # no such field
    before = len(kinds_proposed(station.operator, kyc.KYC_TIER))
    for role in ("agent", "storefront", "auditor"):
        who = station.agent if role == "agent" else api.client(role)
        for tier in ("tier0", "tier1", "tier2"):
            refused(set_tier(who, wanjiru["id"], tier), 403, "forbidden")
    assert len(kinds_proposed(station.operator, kyc.KYC_TIER)) == before
    assert tier_of(station.operator, wanjiru["id"]) == "tier0"


def test_a_raise_proposal_is_idempotent_by_key_and_by_id(api: Harness, counter: Counter) -> None:
    operator, villager = counter.operator, counter.villager_id
    key = str(uuid.uuid4())
    first = ok(set_tier(operator, villager, "tier1", idempotency_key=key), 202)
    assert ok(set_tier(operator, villager, "tier1", idempotency_key=key), 202) == first
    refused(
        set_tier(operator, villager, "tier2", idempotency_key=key), 422, "idempotency_key_reused"
    )
    step = str(uuid.uuid4())
    by_id = ok(set_tier(operator, villager, "tier1", extra={"id": step}), 202)["proposal"]
    assert by_id["id"] == step
    again = ok(set_tier(operator, villager, "tier1", extra={"id": step}), 202)["proposal"]
    assert again == by_id
    other = set_tier(operator, villager, "tier2", extra={"id": step})
    refused(other, 409, "proposal_exists_different")
    mine = [
        p for p in kinds_proposed(operator, kyc.KYC_TIER) if p["payload"]["villager_id"] == villager
    ]
    assert len(mine) == 2


@pytest.mark.parametrize(
    ("tier", "extra", "status", "code"),
    [
        ("tier9", {}, 422, "kyc_tier_unknown"),  # no such tier in KES
        ("<script>alert(1)</script>", {}, 422, "validation_failed"),
        ("t" * 33, {}, 422, "validation_failed"),
        ("", {}, 422, "validation_failed"),
        ("tier1", {"proposed_by": str(uuid.uuid4())}, 422, "validation_failed"),
        ("tier1", {"kyc_tier": "tier2"}, 422, "validation_failed"),
    ],
)
def test_bad_tiers_are_refused_and_propose_nothing(
    api: Harness, counter: Counter, tier: str, extra: dict[str, Any], status: int, code: str
) -> None:
    operator = counter.operator
    before = len(kinds_proposed(operator, kyc.KYC_TIER))
    refused(set_tier(operator, counter.villager_id, tier, extra=extra), status, code)
    assert len(kinds_proposed(operator, kyc.KYC_TIER)) == before
    assert tier_of(operator, counter.villager_id) == "tier0"


def test_unknown_villagers_and_other_parties_are_404(api: Harness, counter: Counter) -> None:
    operator = counter.operator
    before = len(kinds_proposed(operator, kyc.KYC_TIER))
    for someone in (str(uuid.uuid4()), counter.agent_id):  # nobody; an agent, not a villager
        for tier in ("tier0", "tier1"):
            refused(set_tier(operator, someone, tier), 404, "villager_not_found")
    answer = operator.request(
        "POST", "/v1/kyc/villagers/not-a-uuid/tier", json_body={"tier": "tier1"}
    )
    assert answer.status_code in (400, 422), answer.text
    assert len(kinds_proposed(operator, kyc.KYC_TIER)) == before


def test_bodies_that_are_not_strict_json_or_too_large_are_refused(
    api: Harness, counter: Counter
) -> None:
    operator = counter.operator
    path = f"/v1/kyc/villagers/{counter.villager_id}/tier"
    refused(send(operator, "POST", path, b'{"tier": "tier1",}'), 400, "invalid_json")
    refused(send(operator, "POST", path, b'{"tier": 1}'), 422, "validation_failed")
    huge = json.dumps({"tier": "tier1", "pad": "x" * 1_100_000}).encode()
    refused(send(operator, "POST", path, huge), 413, "body_too_large")
    assert tier_of(operator, counter.villager_id) == "tier0"


def test_unsigned_forged_and_redirected_requests_are_401(api: Harness, counter: Counter) -> None:
    operator, villager = counter.operator, counter.villager_id
    path = f"/v1/kyc/villagers/{villager}/tier"
    body = json.dumps({"tier": "tier0"}).encode()
    unsigned = httpx.post(
        operator.url(path), content=body, headers={"content-type": "application/json"}
    )
    refused(unsigned, 401, "signature_missing")
    forged = json.dumps({"tier": "tier2"}).encode()
    edit = {"content-digest": Sha256Digest.create(forged)}
    refused(
        send(operator, "POST", path, body, send_body=forged, edit=edit), 401, "signature_invalid"
    )
    other = Counter(api, tier="tier1")
    redirected = send(
        operator, "POST", path, body, send_path=f"/v1/kyc/villagers/{other.villager_id}/tier"
    )
    refused(redirected, 401, "signature_invalid")
    assert tier_of(operator, other.villager_id) == "tier1"
    assert tier_of(operator, villager) == "tier0"
    assert not [
        p for p in kinds_proposed(operator, kyc.KYC_TIER) if p["payload"]["villager_id"] == villager
    ]


# -- a tier's limits ----------------------------------------------------------------------------


def test_new_limits_wait_for_a_second_operator_then_apply(api: Harness) -> None:
    counter = Counter(api, tier="tier0", float_minor=5_000_000)
    amina, baraka, auditor = counter.operator, api.client("operator"), api.client("auditor")
    gold = new_tier()
    made = ok(propose_limits(amina, limits_body(gold)), 202)["proposal"]
    assert (made["kind"], made["payload"]) == (kyc.TIER_LIMITS, limits_body(gold))
    assert gold not in [t["tier"] for t in tiers(auditor)["data"]]
    refused(approve(amina, made["id"]), 422, "proposal_maker_cannot_decide")
    refused(approve(auditor, made["id"]), 403, "forbidden")
    assert ok(approve(baraka, made["id"]))["result"] == limits_body(gold)
    assert limits_body(gold) in tiers(auditor)["data"]

    # Wanjiru raised to the new tier may cash in up to its limits, and no more
    raised = ok(set_tier(amina, counter.villager_id, gold), 202)["proposal"]
    ok(approve(baraka, raised["id"]))
    ok(counter.cash_in(1_000_000), 201)
    refused(counter.cash_in(1_000_001), 422, "limit_exceeded_per_transaction")
    ok(counter.cash_in(1_000_000), 201)
    refused(counter.cash_in(1), 422, "limit_exceeded_daily")
    assert wallet_minor(amina, counter.villager_id) == 2_000_000

    changed = ok(propose_limits(baraka, limits_body(gold, daily_max_minor=3_000_000)), 202)
    ok(approve(amina, changed["proposal"]["id"]))
    ok(counter.cash_in(1_000_000), 201)
    assert wallet_minor(amina, counter.villager_id) == 3_000_000
    found = api.ledger.transact(lambda tx: events.read_events(tx, after_seq=0, limit=1000))
    mine = [
        e.payload
        for e in found
        if e.type == events.KYC_TIER_LIMITS_CHANGED and e.payload["tier"] == gold
    ]
    assert [(p["from"] is None, p["to"]["daily_max_minor"]) for p in mine] == [
        (True, 2_000_000),
        (False, 3_000_000),
    ]


def test_only_operators_propose_limits_and_auditors_read_them(api: Harness) -> None:
    gold = new_tier()
    operator = api.client("operator")
    before = len(kinds_proposed(operator, kyc.TIER_LIMITS))
    for role in ("storefront", "agent", "auditor"):
        refused(propose_limits(api.client(role), limits_body(gold)), 403, "forbidden")
    for role in ("storefront", "agent"):
        answer = api.client(role).request("GET", "/v1/kyc/tiers", params={"currency": KES})
        refused(answer, 403, "forbidden")
    assert len(kinds_proposed(operator, kyc.TIER_LIMITS)) == before
    seeded = {t["tier"]: t for t in tiers(api.client("auditor"))["data"]}
    assert seeded["tier0"] == {
        "currency": KES,
        "tier": "tier0",
        "per_transaction_max_minor": 500_000,
        "daily_max_minor": 1_000_000,
        "balance_max_minor": 2_000_000,
    }


def test_tiers_are_paged_by_name(api: Harness) -> None:
    auditor = api.client("auditor")
    first = tiers(auditor, limit="1")
    assert len(first["data"]) == 1 and first["has_more"] is True
    rest = tiers(auditor, limit="100", starting_after=first["data"][0]["tier"])
    names = [first["data"][0]["tier"]] + [t["tier"] for t in rest["data"]]
    assert names == sorted(names) and {"tier0", "tier1", "tier2"} <= set(names)
    assert rest["has_more"] is False
    for bad in ({"currency": "XXQ"}, {"currency": "kes"}, {"limit": "0"}, {"limit": "101"},
                {"starting_after": "<b>x</b>"}):  # fmt: skip
        answer = auditor.request("GET", "/v1/kyc/tiers", params={"currency": KES, **bad})
        refused(answer, 400, answer.json()["code"])
        assert answer.json()["code"] == "invalid_parameter"
    answer = auditor.request("GET", "/v1/kyc/tiers")
    assert answer.status_code == 400, answer.text


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"per_transaction_max_minor": 3_000_000}, 422, "limit_invalid"),  # above the daily
        ({"daily_max_minor": 0}, 422, "validation_failed"),
        ({"balance_max_minor": 2**53}, 422, "validation_failed"),
        ({"balance_max_minor": "4000000"}, 422, "validation_failed"),
        ({"currency": "XXQ"}, 422, "currency_not_supported"),
        ({"currency": "kes"}, 422, "validation_failed"),
        ({"tier": "<b>gold</b>"}, 422, "validation_failed"),
        ({"proposed_by": str(uuid.uuid4())}, 422, "validation_failed"),
    ],
)
def test_bad_limits_are_refused_and_propose_nothing(
    api: Harness, over: dict[str, Any], status: int, code: str
) -> None:
    operator = api.client("operator")
    before = len(kinds_proposed(operator, kyc.TIER_LIMITS))
    refused(propose_limits(operator, {**limits_body(new_tier()), **over}), status, code)
    assert len(kinds_proposed(operator, kyc.TIER_LIMITS)) == before


def test_a_limits_proposal_replays_and_floats_or_huge_bodies_are_refused(api: Harness) -> None:
    operator = api.client("operator")
    gold = new_tier()
    key = str(uuid.uuid4())
    first = ok(propose_limits(operator, limits_body(gold), idempotency_key=key), 202)
    again = propose_limits(operator, limits_body(gold), idempotency_key=key)
    assert ok(again, 202) == first and again.headers["idempotency-replayed"] == "true"
    before = len(kinds_proposed(operator, kyc.TIER_LIMITS))
    floaty = json.dumps(limits_body(gold)).replace("4000000", "4000000.5").encode()
    refused(send(operator, "POST", "/v1/kyc/tiers", floaty), 400, "invalid_json")
    huge = json.dumps(limits_body(gold) | {"pad": "x" * 1_100_000}).encode()
    refused(send(operator, "POST", "/v1/kyc/tiers", huge), 413, "body_too_large")
    assert len(kinds_proposed(operator, kyc.TIER_LIMITS)) == before


def test_openapi_documents_the_kyc_routes(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = doc["paths"]
    move = paths["/v1/kyc/villagers/{villager_id}/tier"]["post"]
    assert {"200", "202", "403", "404", "422"} <= set(move["responses"])
    body = move["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/KycTierSet") and body["example"]
    propose = paths["/v1/kyc/tiers"]["post"]
    assert "202" in propose["responses"]
    assert propose["requestBody"]["content"]["application/json"]["example"]["tier"] == "tier1"
    assert "get" in paths["/v1/kyc/tiers"]
    assert {"TierLimitsSet", "TierLimitsList", "ProposalMade"} <= set(doc["components"]["schemas"])
