"""Two operator tasks over signed HTTP, both engines: an agent's guarantee cap and an
order's release extension.

The stories: the platform caps Juma's float at 1,500.00 (his collateral); a top-up that
would pass it is refused and one that fits is taken, then the cap is removed. A
dispatched order's auto-release is pushed 7 days later by an operator, at most 5 times;
the escrow does not move. Agents, storefronts and auditors are refused; replays, bad
input, unknown objects and forged signatures change nothing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.client import Client
from api.signatures import Sha256Digest
from ledger.flows import events, fees, orders
from tests.test_api_attacks import refused, send
from tests.test_api_cash import BANK, Counter
from tests.test_api_harness import Harness, api, api_server
from tests.test_api_kyc import event_types
from tests.test_api_orders import KES, ORDER_RULES, SEEDS_MINOR, Village, new_village, ok

__all__ = ["api", "api_server"]

FLOAT_MINOR = 100_000
CAP_MINOR = 150_000


@pytest.fixture(scope="module", autouse=True)
def fee_schedule(api_server: Harness) -> None:
    fees.publish_schedule(
        api_server.ledger,
        product="order",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=1),
        rules=ORDER_RULES,
    )


def set_cap(who: Client, agent_id: str, cap: Any, **kw: Any) -> httpx.Response:
    body = {"cap_minor": cap}
    return who.request("POST", f"/v1/agents/{agent_id}/guarantee-cap", json_body=body, **kw)


def top_up(counter: Counter, amount: int) -> httpx.Response:
    body = {"id": str(uuid.uuid4()), "amount_minor": amount, "provider": BANK}
    path = f"/v1/agents/{counter.agent_id}/float-topups"
    return counter.operator.request("POST", path, json_body=body)


# -- the guarantee cap --------------------------------------------------------------------------


def test_a_cap_bounds_top_ups_until_it_is_removed(api: Harness) -> None:
    counter = Counter(api, float_minor=FLOAT_MINOR)
    operator = counter.operator
    key = str(uuid.uuid4())
    capped = ok(set_cap(operator, counter.agent_id, CAP_MINOR, idempotency_key=key))
    assert (capped["guarantee_cap_minor"], capped["balance_minor"]) == (CAP_MINOR, FLOAT_MINOR)
    replay = set_cap(operator, counter.agent_id, CAP_MINOR, idempotency_key=key)
    assert ok(replay) == capped and replay.headers["idempotency-replayed"] == "true"
    assert ok(set_cap(operator, counter.agent_id, CAP_MINOR)) == capped  # no change
    changed = [
        t for t in event_types(api, counter.agent_id) if t == events.FLOAT_GUARANTEE_CAP_CHANGED
    ]
    assert len(changed) == 1

    refused(top_up(counter, CAP_MINOR - FLOAT_MINOR + 1), 422, "guarantee_cap_exceeded")
    assert counter.float()["balance_minor"] == FLOAT_MINOR
    ok(top_up(counter, CAP_MINOR - FLOAT_MINOR), 201)  # exactly the cap is allowed
    assert counter.float()["balance_minor"] == CAP_MINOR

    removed = ok(set_cap(operator, counter.agent_id, None))
    assert removed["guarantee_cap_minor"] is None
    ok(top_up(counter, 1), 201)
    assert counter.float()["balance_minor"] == CAP_MINOR + 1
    found = api.ledger.transact(
        lambda tx: events.read_events(
            tx, after_seq=0, limit=1000, subject_id=uuid.UUID(counter.agent_id)
        )
    )
    caps = [e.payload for e in found if e.type == events.FLOAT_GUARANTEE_CAP_CHANGED]
    assert [(p["from_cap_minor"], p["to_cap_minor"]) for p in caps] == [
        (None, CAP_MINOR),
        (CAP_MINOR, None),
    ]


def test_only_operators_set_caps_even_an_agent_its_own(api: Harness) -> None:
    counter = Counter(api, float_minor=0)
    other = Counter(api, float_minor=0)
    for who in (counter.agent, other.agent, api.client("storefront"), api.client("auditor")):
        for cap in (0, 10**12, None):
            refused(set_cap(who, counter.agent_id, cap), 403, "forbidden")
    assert counter.float()["guarantee_cap_minor"] is None
    refused(set_cap(counter.operator, str(uuid.uuid4()), CAP_MINOR), 404, "agent_not_found")
    refused(set_cap(counter.operator, counter.villager_id, CAP_MINOR), 404, "agent_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"cap_minor": -1},
        {"cap_minor": 2**53},
        {"cap_minor": "150000"},
        {"cap_minor": True},
        {},
        {"cap_minor": 1, "agent_id": "00000000-0000-0000-0000-000000000000"},
    ],
)
def test_bad_caps_are_refused_and_change_nothing(api: Harness, body: dict[str, Any]) -> None:
    counter = Counter(api, float_minor=0)
    path = f"/v1/agents/{counter.agent_id}/guarantee-cap"
    refused(counter.operator.request("POST", path, json_body=body), 422, "validation_failed")
    assert counter.float()["guarantee_cap_minor"] is None


def test_cap_bodies_must_be_strict_small_and_signed(api: Harness) -> None:
    counter = Counter(api, float_minor=0)
    operator = counter.operator
    path = f"/v1/agents/{counter.agent_id}/guarantee-cap"
    refused(send(operator, "POST", path, b'{"cap_minor": 1.5}'), 400, "invalid_json")
    huge = json.dumps({"cap_minor": 1, "pad": "x" * 1_100_000}).encode()
    refused(send(operator, "POST", path, huge), 413, "body_too_large")
    signed, forged = b'{"cap_minor": 1}', b'{"cap_minor": 999999999}'
    edit = {"content-digest": Sha256Digest.create(forged)}
    answer = send(operator, "POST", path, signed, send_body=forged, edit=edit)
    refused(answer, 401, "signature_invalid")
    other = Counter(api, float_minor=0)
    moved = send(
        operator, "POST", path, signed, send_path=f"/v1/agents/{other.agent_id}/guarantee-cap"
    )
    refused(moved, 401, "signature_invalid")
    assert counter.float()["guarantee_cap_minor"] is None
    assert other.float()["guarantee_cap_minor"] is None


# -- the release extension ----------------------------------------------------------------------


def extend(who: Client, order_id: str, body: Any, **kw: Any) -> httpx.Response:
    return who.request("POST", f"/v1/orders/{order_id}/extend-release", json_body=body, **kw)


def dispatched(village: Village) -> dict[str, Any]:
    order = village.order()
    ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    found: dict[str, Any] = ok(village.step(village.shop, order["id"], "dispatch"))
    return found


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_operator_pushes_the_release_later_at_most_five_times(api: Harness) -> None:
    village = new_village(api)
    order = dispatched(village)
    key = str(uuid.uuid4())
    later = ok(extend(village.operator, order["id"], {"days": 7}, idempotency_key=key))
    assert at(later["auto_release_at"]) - at(order["auto_release_at"]) == timedelta(days=7)
    assert (later["extensions"], later["state"], later["escrow_minor"]) == (
        1,
        "dispatched",
        SEEDS_MINOR,
    )
    replay = extend(village.operator, order["id"], {"days": 7}, idempotency_key=key)
    assert ok(replay) == later and replay.headers["idempotency-replayed"] == "true"
    step = str(uuid.uuid4())
    by_id = ok(extend(village.operator, order["id"], {"days": 1, "step_id": step}))
    assert ok(extend(village.operator, order["id"], {"days": 1, "step_id": step})) == by_id
    refused(
        extend(village.operator, order["id"], {"days": 2, "step_id": step}), 409, "step_id_reused"
    )
    for _ in range(orders.EXTENSIONS_MAX - 2):
        ok(extend(village.operator, order["id"], {"days": 1}))
    refused(extend(village.operator, order["id"], {"days": 1}), 422, "extensions_exceeded")
    final = ok(village.operator.request("GET", f"/v1/orders/{order['id']}"))
    assert final["extensions"] == orders.EXTENSIONS_MAX
    assert at(final["auto_release_at"]) - at(order["auto_release_at"]) == timedelta(days=7 + 4)
    assert final["escrow_minor"] == SEEDS_MINOR and final["released_minor"] == 0
    assert event_types(api, order["id"]).count(events.ORDER_EXTENDED) == orders.EXTENSIONS_MAX


def test_only_operators_extend_and_bad_requests_change_nothing(api: Harness) -> None:
    village = new_village(api)
    order = dispatched(village)
    for who in (village.shop, village.agent, api.client("auditor"), api.client("storefront")):
        refused(extend(who, order["id"], {"days": 7}), 403, "forbidden")
    for body in ({"days": 0}, {"days": 31}, {"days": "7"}, {"days": 7.0}, {}, {"days": 7, "x": 1}):
        answer = extend(village.operator, order["id"], body)
        assert answer.status_code in (400, 422), answer.text
    refused(extend(village.operator, str(uuid.uuid4()), {"days": 7}), 404, "order_not_found")
    created = village.order()
    refused(extend(village.operator, created["id"], {"days": 7}), 409, "order_timer_not_running")
    huge = json.dumps({"days": 7, "pad": "x" * 1_100_000}).encode()
    refused(send(village.operator, "POST", f"/v1/orders/{order['id']}/extend-release", huge), 413,
            "body_too_large")  # fmt: skip
    unsigned = httpx.post(
        village.operator.url(f"/v1/orders/{order['id']}/extend-release"),
        content=b'{"days": 7}',
        headers={"content-type": "application/json"},
    )
    refused(unsigned, 401, "signature_missing")
    now = ok(village.operator.request("GET", f"/v1/orders/{order['id']}"))
    assert (now["extensions"], now["auto_release_at"]) == (0, order["auto_release_at"])


def test_openapi_documents_both_routes(api: Harness) -> None:
    paths = httpx.get(api.base_url + "/openapi.json").json()["paths"]
    cap = paths["/v1/agents/{agent_id}/guarantee-cap"]["post"]
    assert cap["requestBody"]["content"]["application/json"]["example"] == {"cap_minor": 2_000_000}
    push = paths["/v1/orders/{order_id}/extend-release"]["post"]
    assert push["requestBody"]["content"]["application/json"]["example"] == {"days": 7}
