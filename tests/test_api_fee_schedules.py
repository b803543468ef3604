"""Fee schedules over signed HTTP, maker-checker, both engines.

The story: operator Amina proposes the KES ``cash_out`` schedule (202, a proposal and a
preview of its bands; nothing published). She cannot approve it herself; operator Baraka
does, and the next cash-out is priced with version 1. Amina proposes version 2, Baraka
approves, and the cash-out after that is priced with version 2. Auditors list and
preview; storefronts and agents are refused; bad rules, markup and oversized bodies are
refused whole and write nothing; an ``effective_at`` in the past is refused.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.client import Client
from ledger.flows import events, fees
from ledger.flows.fees import BANDS_MAX
from tests.test_api_attacks import refused
from tests.test_api_cash import Counter
from tests.test_api_harness import Harness, api, api_server

__all__ = ["api", "api_server"]

KES = "KES"
RACERS = 6
V1_RULES: dict[str, Any] = {
    "bands": [
        {"up_to_minor": 10_000, "fixed_minor": 0},
        {"up_to_minor": 100_000, "fixed_minor": 1_100},
        {"up_to_minor": None, "bps": 100, "min_minor": 1_500, "max_minor": 20_000},
    ],
    "split_bps": {"tax": 1_500, "agent_commission": 2_000},
}
V2_RULES: dict[str, Any] = {"bands": [{"up_to_minor": None, "fixed_minor": 700}]}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def propose(who: Client, body: dict[str, Any], **kw: Any) -> httpx.Response:
    return who.request("POST", "/v1/fee-schedules", json_body=body, **kw)


def approve(who: Client, proposal_id: str) -> httpx.Response:
    return who.request("POST", f"/v1/proposals/{proposal_id}/approve", json_body=None)


def listed(who: Client, product: str, currency: str = KES, **params: Any) -> Any:
    query = {"product": product, "currency": currency, **params}
    return ok(who.request("GET", "/v1/fee-schedules", params=query))


def fee_proposals(who: Client) -> list[dict[str, Any]]:
    found = ok(who.request("GET", "/v1/proposals", params={"limit": 100}))["data"]
    return [p for p in found if p["kind"] == fees.FEE_SCHEDULE]


def published_events(api: Harness) -> list[events.Event]:
    found = api.ledger.transact(lambda tx: events.read_events(tx, after_seq=0, limit=500))
    return [e for e in found if e.type == fees.FEE_SCHEDULE_PUBLISHED]


def unique_product() -> str:
    return f"p_{uuid.uuid4().hex[:12]}"


def test_maker_proposes_another_operator_publishes_and_cash_outs_use_it(api: Harness) -> None:
    counter = Counter(api)
    amina, baraka = counter.operator, api.client("operator")
    ok(counter.cash_in(500_000), 201)
    unpriced = ok(counter.cash_out(50_000), 201)  # no cash_out schedule yet: no fee
    assert (unpriced["fee_version"], unpriced["fee_minor"]) == (None, 0)

    made = ok(propose(amina, {"product": "cash_out", "currency": KES, "rules": V1_RULES}), 202)
    proposal, preview = made["proposal"], made["preview"]
    assert (proposal["kind"], proposal["state"]) == ("fee_schedule", "proposed")
    assert proposal["payload"]["rules"] == V1_RULES
    assert preview["version"] == 0 and len(preview["bands"]) == 3
    by_amount = {q["amount_minor"]: q for q in preview["quotes"]}
    assert by_amount[10_000]["fee_minor"] == 0 and by_amount[10_001]["fee_minor"] == 1_100
    assert by_amount[1_000_000]["fee_minor"] == 10_000  # 1% of 10,000.00
    assert all(type(q["fee_minor"]) is int for q in preview["quotes"])
    assert listed(amina, "cash_out")["data"] == []  # nothing published yet
    assert ok(counter.cash_out(50_000), 201)["fee_version"] is None

    refused(approve(amina, proposal["id"]), 422, "proposal_maker_cannot_decide")
    assert listed(amina, "cash_out")["data"] == []
    for outsider in ("auditor", "storefront", "agent"):
        refused(approve(api.client(outsider), proposal["id"]), 403, "forbidden")

    approved = ok(approve(baraka, proposal["id"]))
    assert approved["state"] == "approved"
    assert approved["result"]["version"] == 1
    [v1] = listed(api.client("auditor"), "cash_out")["data"]
    assert (v1["version"], v1["rules"]) == (1, V1_RULES)
    assert [e.payload["version"] for e in published_events(api)][-1:] == [1]

    first = ok(counter.cash_out(50_000), 201)
    assert (first["fee_version"], first["fee_minor"]) == (1, 1_100)

    again = ok(approve(baraka, proposal["id"]))  # approving twice publishes once
    assert again == approved
    assert len(listed(amina, "cash_out")["data"]) == 1

    second = ok(propose(amina, {"product": "cash_out", "currency": KES, "rules": V2_RULES}), 202)
    ok(approve(baraka, second["proposal"]["id"]))
    assert [v["version"] for v in listed(amina, "cash_out")["data"]] == [1, 2]
    later = ok(counter.cash_out(50_000), 201)
    assert (later["fee_version"], later["fee_minor"]) == (2, 700)
    assert api.ledger.check_integrity().ok


def test_only_operators_propose_and_auditors_read(api: Harness) -> None:
    product = unique_product()
    body = {"product": product, "currency": KES, "rules": V2_RULES}
    for role in ("auditor", "storefront", "agent"):
        refused(propose(api.client(role), body), 403, "forbidden")
    operator = api.client("operator")
    assert all(p["payload"]["product"] != product for p in fee_proposals(operator))
    query = {"product": "order", "currency": KES}
    for role in ("storefront", "agent"):
        who = api.client(role)
        refused(who.request("GET", "/v1/fee-schedules", params=query), 403, "forbidden")
        answer = who.request("GET", "/v1/fee-schedules/preview", params=query)
        refused(answer, 403, "forbidden")
    auditor = api.client("auditor")
    assert listed(auditor, product) == {"data": [], "has_more": False}
    refused(
        auditor.request(
            "GET", "/v1/fee-schedules/preview", params={"product": product, "currency": KES}
        ),
        404,
        "fee_schedule_missing",
    )


def test_a_replayed_propose_answers_the_same_proposal(api: Harness) -> None:
    operator = api.client("operator")
    body = {"product": unique_product(), "currency": KES, "rules": V2_RULES}
    key = str(uuid.uuid4())
    first = ok(propose(operator, body, idempotency_key=key), 202)
    replay = ok(propose(operator, body, idempotency_key=key), 202)
    assert replay == first
    step = str(uuid.uuid4())  # the client's id: the same proposal under any key
    by_id = ok(propose(operator, body | {"id": step}), 202)
    assert by_id["proposal"]["id"] == step
    assert ok(propose(operator, body | {"id": step}), 202)["proposal"] == by_id["proposal"]
    other = {**body, "id": step, "rules": V1_RULES}
    refused(propose(operator, other), 409, "proposal_exists_different")
    mine = [p for p in fee_proposals(operator) if p["payload"]["product"] == body["product"]]
    assert len(mine) == 2


BAD_RULES: list[Any] = [
    {"bands": [{"up_to_minor": 100, "fixed_minor": 1}, {"up_to_minor": 50, "fixed_minor": 2}]},
    {"bands": [{"up_to_minor": None, "bps": 10_001}]},
    {"bands": [{"up_to_minor": None, "fixed_minor": -1}]},
    {"bands": [{"up_to_minor": None, "fixed_minor": "100"}]},
    {"bands": [{"up_to_minor": 100, "fixed_minor": 1}]},  # the last band not open-ended
    {"bands": []},
    {
        "bands": [{"up_to_minor": i + 1, "fixed_minor": 0} for i in range(BANDS_MAX)]
        + [{"up_to_minor": None, "fixed_minor": 0}]
    },
    {
        "bands": [{"up_to_minor": None, "fixed_minor": 1}],
        "split_bps": {"tax": 6_000, "agent_commission": 5_000},
    },
    {"bands": [{"up_to_minor": None, "fixed_minor": 1}], "extra": 1},
    [],
]


@pytest.mark.parametrize("rules", BAD_RULES)
def test_invalid_rules_are_422_and_nothing_is_written(api: Harness, rules: Any) -> None:
    operator = api.client("operator")
    product = unique_product()
    before = len(fee_proposals(operator))
    answer = propose(operator, {"product": product, "currency": KES, "rules": rules})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] in {"fee_rules_invalid", "validation_failed"}
    assert len(fee_proposals(operator)) == before
    assert listed(operator, product)["data"] == []


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"product": "<script>alert(1)</script>"}, 422, "validation_failed"),
        ({"product": "Order"}, 422, "validation_failed"),
        ({"product": "x" * 49}, 422, "validation_failed"),
        ({"currency": "XXQ"}, 422, "currency_not_supported"),
        ({"currency": "kes"}, 422, "validation_failed"),
        ({"effective_at": "2001-01-01T00:00:00Z"}, 422, "effective_at_past"),
        ({"effective_at": "2999-01-01T00:00:00"}, 422, "effective_from_naive"),
        ({"proposed_by": str(uuid.uuid4())}, 422, "validation_failed"),  # mass assignment
    ],
)
def test_bad_fields_are_refused_and_nothing_is_written(
    api: Harness, over: dict[str, Any], status: int, code: str
) -> None:
    operator = api.client("operator")
    before = len(fee_proposals(operator))
    body = {"product": unique_product(), "currency": KES, "rules": V2_RULES, **over}
    refused(propose(operator, body), status, code)
    assert len(fee_proposals(operator)) == before


def test_floats_and_oversized_bodies_are_refused_before_the_flow(api: Harness) -> None:
    operator = api.client("operator")
    before = len(fee_proposals(operator))
    product = unique_product()
    floaty = {"bands": [{"up_to_minor": None, "fixed_minor": 10.5}]}
    answer = propose(operator, {"product": product, "currency": KES, "rules": floaty})
    refused(answer, 400, "invalid_json")  # strict JSON: a fraction is not a JSON integer here
    huge = {"product": product, "currency": KES, "rules": V2_RULES | {"pad": "x" * 1_100_000}}
    refused(propose(operator, huge), 413, "body_too_large")
    assert len(fee_proposals(operator)) == before
    assert listed(operator, product)["data"] == []


def test_a_future_start_is_kept_and_a_passed_one_is_clamped_to_the_approval(
    api: Harness,
) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    product = unique_product()
    future = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    made = ok(
        propose(
            maker,
            {
                "product": product,
                "currency": KES,
                "rules": V2_RULES,
                "effective_at": future.isoformat(),
            },
        ),
        202,
    )
    ok(approve(checker, made["proposal"]["id"]))
    [v1] = listed(maker, product)["data"]
    assert v1["effective_from"] == future.isoformat().replace("+00:00", "Z")
    refused(  # not in effect yet
        maker.request(
            "GET", "/v1/fee-schedules/preview", params={"product": product, "currency": KES}
        ),
        404,
        "fee_schedule_missing",
    )

    soon = datetime.now(UTC) + timedelta(seconds=1)
    made = ok(
        propose(
            maker,
            {
                "product": product,
                "currency": KES,
                "rules": V1_RULES,
                "effective_at": soon.isoformat(),
            },
        ),
        202,
    )
    payload = made["proposal"]["payload"]
    assert payload["effective_at"] is not None
    time.sleep(1.2)  # the start passes before the approval
    approved = ok(approve(checker, made["proposal"]["id"]))
    assert datetime.fromisoformat(approved["result"]["effective_from"]) >= soon
    shown = ok(
        maker.request(
            "GET",
            "/v1/fee-schedules/preview",
            params={"product": product, "currency": KES, "amount_minor": [5_000, 200_000]},
        )
    )
    assert shown["version"] == 2
    assert [(q["amount_minor"], q["fee_minor"]) for q in shown["quotes"]] == [
        (5_000, 0),
        (200_000, 2_000),
    ]


def test_preview_limits(api: Harness) -> None:
    operator = api.client("operator")
    query = {"product": "order", "currency": KES}
    zero = operator.request("GET", "/v1/fee-schedules/preview", params=query | {"amount_minor": 0})
    refused(zero, 400, "invalid_parameter")
    too_many = query | {"amount_minor": list(range(1, fees.PREVIEW_AMOUNTS_MAX + 2))}
    answer = operator.request("GET", "/v1/fee-schedules/preview", params=too_many)
    assert answer.status_code == 400, answer.text
    for bad in ({"product": "<b>x</b>"}, {"product": "x" * 49}, {"currency": "XXQ"}):
        for path in ("/v1/fee-schedules", "/v1/fee-schedules/preview"):
            answer = operator.request("GET", path, params=query | bad)
            assert answer.status_code == 400, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert "<b>" not in answer.text


def test_paging_of_versions(api: Harness) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    product = unique_product()
    for fixed in (1, 2, 3):
        rules = {"bands": [{"up_to_minor": None, "fixed_minor": fixed}]}
        made = ok(propose(maker, {"product": product, "currency": KES, "rules": rules}), 202)
        ok(approve(checker, made["proposal"]["id"]))
    page = listed(maker, product, limit=2)
    assert [v["version"] for v in page["data"]] == [1, 2] and page["has_more"] is True
    rest = listed(maker, product, limit=2, starting_after=2)
    assert [v["version"] for v in rest["data"]] == [3] and rest["has_more"] is False
    assert len(published_events(api)) >= 3


def test_openapi_lists_the_fee_schedule_routes(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = doc["paths"]
    assert "post" in paths["/v1/fee-schedules"] and "get" in paths["/v1/fee-schedules"]
    assert "get" in paths["/v1/fee-schedules/preview"]
    assert "FeeScheduleCreate" in doc["components"]["schemas"]
    assert "202" in paths["/v1/fee-schedules"]["post"]["responses"]


def test_approvals_racing_on_one_schedule_publish_distinct_versions(api: Harness) -> None:
    maker, checker = api.client("operator"), api.client("operator")
    product = unique_product()
    made = [
        ok(
            propose(
                maker,
                {
                    "product": product,
                    "currency": KES,
                    "rules": {"bands": [{"up_to_minor": None, "fixed_minor": i}]},
                },
            ),
            202,
        )["proposal"]["id"]
        for i in range(RACERS)
    ]
    answers: list[httpx.Response] = []

    def go(proposal_id: str) -> None:
        answers.append(approve(checker, proposal_id))

    threads = [threading.Thread(target=go, args=(p,)) for p in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200] * RACERS, [a.text for a in answers]
    versions = [v["version"] for v in listed(maker, product)["data"]]
    assert versions == list(range(1, RACERS + 1))
    assert sorted(a.json()["result"]["version"] for a in answers) == versions
