"""Suspense over signed HTTP, both engines.

The stories: 2,500.00 KES arrives at KCB for a reference nobody knows and is parked. An
auditor lists it; an operator finds it was Wanjiru's and reassigns it to her wallet (the
money is there, read through the API). Another item goes back to its provider: operator
Amina proposes the return (202, nothing moves), she cannot approve it herself, nor can an
auditor or a tenant; Baraka approves and the return transfer exists. Roles, replays, bad
targets, markup and oversized bodies are refused or kept as text, and move nothing.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from api.client import Client
from api.signatures import Sha256Digest
from ledger.flows import events, parties, proposals, suspense
from tests.test_api_attacks import refused, send
from tests.test_api_cash import Counter
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_kyc import approve, kinds_proposed, wallet_minor
from tests.test_api_orders import ok

__all__ = ["api", "api_server"]

KES = "KES"
BANK = "KCB"
ITEM_MINOR = 250_000


def parked(api: Harness, amount: int = ITEM_MINOR, currency: str = KES) -> str:
    """An item parked the way reconciliation parks one (the flow; no route parks)."""
    item = suspense.park(
        api.ledger,
        suspense_id=uuid.uuid4(),
        currency=currency,
        provider=BANK,
        provider_reference=f"REF-{uuid.uuid4().hex[:12]}",
        amount_minor=amount,
        note="unknown account number",
    )
    return str(item.id)


def item(who: Client, item_id: str) -> Any:
    return ok(who.request("GET", f"/v1/suspense/{item_id}"))


def reassign(who: Client, item_id: str, body: Any, **kw: Any) -> httpx.Response:
    return who.request("POST", f"/v1/suspense/{item_id}/reassign", json_body=body, **kw)


def propose_return(who: Client, item_id: str, body: Any, **kw: Any) -> httpx.Response:
    return who.request("POST", f"/v1/suspense/{item_id}/return", json_body=body, **kw)


def returns_of(who: Client, item_id: str) -> list[dict[str, Any]]:
    found = kinds_proposed(who, suspense.SUSPENSE_RETURN)
    return [p for p in found if p["payload"]["suspense_id"] == item_id]


@pytest.fixture
def counter(api: Harness) -> Counter:
    return Counter(api, tier="tier1", float_minor=0)


def test_an_operator_reassigns_a_parked_item_to_the_wallet_it_belonged_to(
    api: Harness, counter: Counter
) -> None:
    operator, auditor = counter.operator, api.client("auditor")
    item_id = parked(api)
    listed = ok(auditor.request("GET", "/v1/suspense", params={"state": "parked", "limit": "100"}))
    assert item_id in [i["id"] for i in listed["data"]]
    shown = item(auditor, item_id)
    assert (shown["state"], shown["amount_minor"], shown["provider"]) == (
        "parked",
        ITEM_MINOR,
        BANK,
    )

    body = {"to_villager_id": counter.villager_id}
    key = str(uuid.uuid4())
    done = ok(reassign(operator, item_id, body, idempotency_key=key))
    assert (done["state"], done["target_party_id"]) == ("reassigned", counter.villager_id)
    assert wallet_minor(operator, counter.villager_id) == ITEM_MINOR
    moved = operator.request("GET", f"/v1/transfers/{done['resolve_transfer_id']}")
    assert ok(moved)["amount"] == ITEM_MINOR

    replay = reassign(operator, item_id, body, idempotency_key=key)
    assert ok(replay) == done and replay.headers["idempotency-replayed"] == "true"
    assert ok(reassign(operator, item_id, body)) == done  # the same request: unchanged
    other = Counter(api, tier="tier1", float_minor=0)
    refused(reassign(operator, item_id, {"to_villager_id": other.villager_id}), 409,
            "suspense_already_resolved")  # fmt: skip
    refused(propose_return(operator, item_id, {"reason": "late"}), 409, "suspense_already_resolved")
    assert wallet_minor(operator, counter.villager_id) == ITEM_MINOR
    assert wallet_minor(operator, other.villager_id) == 0
    listed = ok(auditor.request("GET", "/v1/suspense", params={"state": "parked", "limit": "100"}))
    assert item_id not in [i["id"] for i in listed["data"]]


def test_a_return_waits_for_a_second_operator_then_moves_once(api: Harness) -> None:
    amina, baraka = api.client("operator"), api.client("operator")
    item_id = parked(api)
    made = ok(propose_return(amina, item_id, {"reason": "sender asked for it back"}), 202)
    proposal = made["proposal"]
    assert (proposal["kind"], proposal["state"]) == (suspense.SUSPENSE_RETURN, "proposed")
    assert (proposal["payload"]["amount_minor"], proposal["payload"]["currency"]) == (
        ITEM_MINOR,
        KES,
    )
    assert item(amina, item_id)["state"] == "parked"  # nothing moved yet

    refused(approve(amina, proposal["id"]), 422, "proposal_maker_cannot_decide")
    for outsider in ("auditor", "storefront", "agent"):
        refused(approve(api.client(outsider), proposal["id"]), 403, "forbidden")
    assert item(amina, item_id)["state"] == "parked"

    approved = ok(approve(baraka, proposal["id"]))
    assert approved["result"]["state"] == "returned"
    shown = item(amina, item_id)
    assert (shown["state"], shown["return_reason"]) == ("returned", "sender asked for it back")
    moved = ok(amina.request("GET", f"/v1/transfers/{shown['resolve_transfer_id']}"))
    assert (moved["amount"], moved["currency"], moved["code"]) == (
        ITEM_MINOR,
        KES,
        suspense.RETURN_CODE,
    )
    assert ok(approve(baraka, proposal["id"])) == approved  # once
    found = api.ledger.transact(
        lambda tx: events.read_events(tx, after_seq=0, limit=1000, subject_id=uuid.UUID(item_id))
    )
    assert [e.type for e in found] == [events.SUSPENSE_PARKED, events.SUSPENSE_RETURNED]
    refused(reassign(amina, item_id, {"to_villager_id": str(uuid.uuid4())}), 404,
            "villager_not_found")  # fmt: skip


def test_a_return_proposal_replays_by_key_and_by_id(api: Harness) -> None:
    operator = api.client("operator")
    item_id = parked(api)
    key = str(uuid.uuid4())
    first = ok(propose_return(operator, item_id, {"reason": "dup"}, idempotency_key=key), 202)
    again = propose_return(operator, item_id, {"reason": "dup"}, idempotency_key=key)
    assert ok(again, 202) == first and again.headers["idempotency-replayed"] == "true"
    step = first["proposal"]["id"]  # the id the key made, named in the body
    assert ok(propose_return(operator, item_id, {"id": step, "reason": "dup"}), 202) == first
    refused(propose_return(operator, item_id, {"id": step, "reason": "other"}), 409,
            "proposal_exists_different")  # fmt: skip
    assert [p["id"] for p in returns_of(operator, item_id)] == [step]


def test_a_second_return_is_refused_while_one_waits(api: Harness) -> None:
    """One return per item may wait: not by its maker, another operator, a replay of a
    new key, nor a tenant; once approved, another is refused as resolved."""
    amina, baraka = api.client("operator"), api.client("operator")
    item_id = parked(api)
    made = ok(propose_return(amina, item_id, {"reason": "sender asked"}), 202)["proposal"]
    for who, body in ((amina, {"reason": "sender asked"}), (baraka, {"reason": "bank asked"}),
                      (baraka, {"id": str(uuid.uuid4()), "reason": "bank asked"})):  # fmt: skip
        answer = propose_return(who, item_id, body)
        refused(answer, 409, "suspense_return_proposed")
        assert made["id"] in answer.json()["detail"]  # which one waits, in words
    for outsider in ("storefront", "agent", "auditor"):
        refused(propose_return(api.client(outsider), item_id, {"reason": "x"}), 403, "forbidden")
    assert [p["id"] for p in returns_of(amina, item_id)] == [made["id"]]
    assert item(amina, item_id)["state"] == "parked"

    ok(approve(baraka, made["id"]))
    refused(propose_return(baraka, item_id, {"reason": "again"}), 409,
            "suspense_already_resolved")  # fmt: skip
    assert [p["id"] for p in returns_of(amina, item_id)] == [made["id"]]


def clearing_credits(api: Harness, provider: str = BANK) -> int:
    platform = parties.platform_id(KES)
    [account] = api.ledger.lookup_accounts(
        [parties.account_id(platform, f"provider_clearing:{provider}")]
    )
    return account.credits_posted


def test_a_waiting_return_of_an_item_resolved_since_is_refused_when_approved(
    api: Harness, counter: Counter
) -> None:
    """Two returns made before one-per-item was the rule (through the flow, as an older
    service made them): the first approved moves the money; approving the second is
    422 suspense_not_parked, moves nothing and leaves it proposed, to be rejected."""
    made = api.key("operator")
    amina, amina_id = api.client_for(made), uuid.UUID(made["principal_id"])
    baraka = counter.operator
    item_id = parked(api)
    older = [
        proposals.propose(
            api.ledger,
            proposal_id=uuid.uuid4(),
            kind=suspense.SUSPENSE_RETURN,
            payload={"suspense_id": item_id, "reason": reason},
            proposed_by=amina_id,
        )
        for reason in ("sender asked", "sender asked twice")
    ]
    before = clearing_credits(api)
    ok(approve(baraka, str(older[0].id)))
    assert clearing_credits(api) == before + ITEM_MINOR
    refusals = [
        (baraka, 422, "suspense_not_parked"),  # the replay of an approval, by a checker
        (amina, 422, "proposal_maker_cannot_decide"),
        (api.client("auditor"), 403, "forbidden"),
        (api.client("agent"), 403, "forbidden"),  # a tenant
    ]
    for who, status, code in refusals:
        refused(approve(who, str(older[1].id)), status, code)
    assert clearing_credits(api) == before + ITEM_MINOR  # once
    assert ok(baraka.request("GET", f"/v1/proposals/{older[1].id}"))["state"] == "proposed"
    rejected = baraka.request("POST", f"/v1/proposals/{older[1].id}/reject",
                              json_body={"reason": "returned already"})  # fmt: skip
    assert ok(rejected)["state"] == "rejected"


def test_an_item_whose_return_waits_cannot_be_reassigned_until_the_return_is_rejected(
    api: Harness, counter: Counter
) -> None:
    """Amina proposes returning an item; while it waits, Baraka's reassignment to a
    villager's wallet is 409 suspense_return_proposed (problem+json naming the proposal)
    and moves nothing, replayed by its key or not. Baraka rejects the return; the same
    reassignment (a new request) then moves the item, and the rejected return cannot be
    approved."""
    amina, baraka = api.client("operator"), counter.operator
    item_id = parked(api)
    waiting = ok(propose_return(amina, item_id, {"reason": "unknown"}), 202)["proposal"]
    body = {"to_villager_id": counter.villager_id}
    key = str(uuid.uuid4())
    for who in (baraka, amina, baraka):
        answer = reassign(who, item_id, body, idempotency_key=key if who is baraka else None)
        refused(answer, 409, "suspense_return_proposed")
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert waiting["id"] in answer.json()["detail"]
    assert item(baraka, item_id)["state"] == "parked"
    assert wallet_minor(baraka, counter.villager_id) == 0

    rejected = baraka.request("POST", f"/v1/proposals/{waiting['id']}/reject",
                              json_body={"reason": "the money is a villager's"})  # fmt: skip
    assert ok(rejected)["state"] == "rejected"
    done = ok(reassign(baraka, item_id, body))
    assert (done["state"], done["target_party_id"]) == ("reassigned", counter.villager_id)
    assert wallet_minor(baraka, counter.villager_id) == ITEM_MINOR
    refused(approve(baraka, waiting["id"]), 409, "proposal_not_pending")
    assert item(baraka, item_id)["state"] == "reassigned"


def test_only_operators_write_and_tenants_read_nothing(api: Harness, counter: Counter) -> None:
    item_id = parked(api)
    body = {"to_villager_id": counter.villager_id}
    for role in ("storefront", "agent", "auditor"):
        who = counter.agent if role == "agent" else api.client(role)
        refused(reassign(who, item_id, body), 403, "forbidden")
        refused(propose_return(who, item_id, {"reason": "mine"}), 403, "forbidden")
    for who in (counter.agent, api.client("storefront")):
        refused(who.request("GET", "/v1/suspense"), 403, "forbidden")
        refused(who.request("GET", f"/v1/suspense/{item_id}"), 403, "forbidden")
    operator = counter.operator
    assert item(operator, item_id)["state"] == "parked"
    assert returns_of(operator, item_id) == []
    assert wallet_minor(operator, counter.villager_id) == 0


def test_bad_targets_are_refused_and_move_nothing(api: Harness, counter: Counter) -> None:
    operator = counter.operator
    item_id = parked(api)
    ugx = str(uuid.uuid4())
    party = {"id": ugx, "kind": "villager", "name": "Okello", "currency": "UGX"}
    ok(operator.request("POST", "/v1/parties", json_body=party | {"kyc_tier": "tier0"}), 201)
    shop = api.key("storefront")
    counter.onboard("storefront", shop["principal_id"])
    for body, status, code in [
        ({}, 422, "target_invalid"),
        ({"to_villager_id": counter.villager_id, "to_storefront_id": shop["principal_id"]},
         422, "target_invalid"),
        ({"to_villager_id": ugx}, 422, "currency_mismatch"),
        ({"to_villager_id": counter.agent_id}, 404, "villager_not_found"),
        ({"to_storefront_id": counter.villager_id}, 404, "storefront_not_found"),
        ({"to_villager_id": "not-a-uuid"}, 422, "validation_failed"),
        ({"to_villager_id": counter.villager_id, "state": "reassigned"}, 422, "validation_failed"),
    ]:  # fmt: skip
        refused(reassign(operator, item_id, body), status, code)
    nobody = str(uuid.uuid4())
    refused(reassign(operator, nobody, {"to_villager_id": counter.villager_id}), 404,
            "suspense_not_found")  # fmt: skip
    refused(propose_return(operator, nobody, {"reason": "x"}), 404, "suspense_not_found")
    refused(operator.request("GET", f"/v1/suspense/{nobody}"), 404, "suspense_not_found")
    assert item(operator, item_id)["state"] == "parked"
    assert wallet_minor(operator, counter.villager_id) == 0

    # the storefront it belonged to: its proceeds
    done = ok(reassign(operator, item_id, {"to_storefront_id": shop["principal_id"]}))
    assert done["target_party_id"] == shop["principal_id"]


def test_a_wallet_over_its_tier_maximum_is_refused_and_the_item_stays(api: Harness) -> None:
    counter = Counter(api, tier="tier0", float_minor=0)  # tier0 holds at most 20,000.00
    item_id = parked(api, amount=2_000_001)
    body = {"to_villager_id": counter.villager_id}
    refused(reassign(counter.operator, item_id, body), 422, "limit_exceeded_balance")
    assert item(counter.operator, item_id)["state"] == "parked"
    assert wallet_minor(counter.operator, counter.villager_id) == 0


def test_reasons_are_text_bounded_and_bodies_strict(api: Harness) -> None:
    operator = api.client("operator")
    item_id = parked(api)
    markup = "<script>alert(1)</script>"
    made = propose_return(operator, item_id, {"reason": markup})
    assert made.headers["content-type"] == "application/json"
    assert ok(made, 202)["proposal"]["payload"]["reason"] == markup  # data, never markup
    before = len(returns_of(operator, item_id))
    for body in ({"reason": ""}, {"reason": "x" * 501}, {"reason": 5}, {}, {"reason": "a", "x": 1}):
        refused(propose_return(operator, item_id, body), 422, "validation_failed")
    path = f"/v1/suspense/{item_id}/return"
    refused(send(operator, "POST", path, b'{"reason": "x",}'), 400, "invalid_json")
    huge = json.dumps({"reason": "x" * 1_100_000}).encode()
    refused(send(operator, "POST", path, huge), 413, "body_too_large")
    forged = json.dumps({"to_villager_id": str(uuid.uuid4())}).encode()
    signed = json.dumps({"to_villager_id": str(uuid.uuid4())}).encode()
    edit = {"content-digest": Sha256Digest.create(forged)}
    answer = send(operator, "POST", f"/v1/suspense/{item_id}/reassign", signed, send_body=forged,
                  edit=edit)  # fmt: skip
    refused(answer, 401, "signature_invalid")
    unsigned = httpx.get(operator.url(f"/v1/suspense/{item_id}"))
    refused(unsigned, 401, "signature_missing")
    assert len(returns_of(operator, item_id)) == before
    assert item(operator, item_id)["state"] == "parked"


def test_lists_filter_and_page(api: Harness) -> None:
    auditor = api.client("auditor")
    mine = [parked(api, amount=1_000 + i, currency="TZS") for i in range(3)]
    query = {"currency": "TZS", "provider": BANK, "state": "parked"}
    first = ok(auditor.request("GET", "/v1/suspense", params=query | {"limit": "2"}))
    rest = ok(
        auditor.request(
            "GET",
            "/v1/suspense",
            params=query | {"limit": "2", "starting_after": first["data"][-1]["id"]},
        )
    )
    assert first["has_more"] is True and rest["has_more"] is False
    assert [i["id"] for i in first["data"] + rest["data"]] == mine
    for bad in ({"state": "lost"}, {"limit": "0"}, {"limit": "101"}, {"currency": "tzs"},
                {"provider": "<b>"}, {"starting_after": "x"}):  # fmt: skip
        answer = auditor.request("GET", "/v1/suspense", params=bad)
        refused(answer, 400, "invalid_parameter")


def test_openapi_documents_the_suspense_routes(api: Harness) -> None:
    paths = httpx.get(api.base_url + "/openapi.json").json()["paths"]
    assert "get" in paths["/v1/suspense"] and "get" in paths["/v1/suspense/{suspense_id}"]
    back = paths["/v1/suspense/{suspense_id}/return"]["post"]
    assert "202" in back["responses"]
    assert back["requestBody"]["content"]["application/json"]["example"]["reason"]
    moved = paths["/v1/suspense/{suspense_id}/reassign"]["post"]
    assert moved["requestBody"]["content"]["application/json"]["example"]["to_villager_id"]
