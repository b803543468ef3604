"""The station app's reads over signed HTTP, both engines (``api/routes/station.py``):
an agent's station figures (cash on hand, what open cash-outs promise, how many are open,
commission credited this UTC month), the orders naming it (newest first, paged), and one of
its own villagers found by phone. Another agent's figures, orders and villagers answer 404
or nothing; storefronts 403; unsigned, forged and replayed requests 401. The month boundary
of the commission is checked on the flow with a clock moved by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ledger import Ledger
from ledger.flows import agent_float, cash, fees, parties
from ledger.flows.cash.station import month_start, station_figures
from ledger.flows.errors import NotFound
from ledger.flows.parties import Kind
from tests.conftest import Clock
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_api_cash import Counter, api_server
from tests.test_api_harness import Harness, api
from tests.test_api_orders import new_village, ok, refused

__all__ = ["api", "api_server"]

KES = "KES"
CASH_IN_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "fixed_minor": 0}],
    "platform_commission": {"bps": 100, "max_minor": 5_000},
}
"""No fee; the platform pays the agent 1% of each cash-in as commission."""


@pytest.fixture(scope="module")
def commission(api_server: Harness) -> None:
    fees.publish_schedule(
        api_server.ledger,
        product="cash_in",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=40),
        rules=CASH_IN_RULES,
    )


def station(counter: Counter) -> dict[str, Any]:
    found: dict[str, Any] = ok(
        counter.agent.request("GET", f"/v1/agents/{counter.agent_id}/station")
    )
    return found


def test_the_figures_follow_cash_ins_cash_outs_and_commission(
    api: Harness, commission: None
) -> None:
    counter = Counter(api)
    empty = station(counter)
    assert {k: empty[k] for k in ("cash_on_hand_minor", "open_cash_outs")} == {
        "cash_on_hand_minor": 0,
        "open_cash_outs": 0,
    }
    assert empty["commission_month_minor"] == 0 and empty["currency"] == KES
    assert empty["commission_month"] == datetime.now(UTC).strftime("%Y-%m")

    ok(counter.cash_in(50_000), 201)
    ok(counter.cash_in(20_000), 201)
    requested = ok(counter.cash_out(30_000), 201)
    figures = station(counter)
    assert figures["cash_on_hand_minor"] == 70_000
    assert figures["cash_promised_minor"] == 30_000
    assert figures["open_cash_outs"] == 1
    assert figures["commission_month_minor"] == 500 + 200

    ok(counter.step(requested["id"], "confirm"))
    after = station(counter)
    assert (after["cash_on_hand_minor"], after["cash_promised_minor"]) == (40_000, 0)
    assert after["open_cash_outs"] == 0
    # the same figures an operator and an auditor read
    for role in ("operator", "auditor"):
        path = f"/v1/agents/{counter.agent_id}/station"
        assert ok(api.client(role).request("GET", path))["cash_on_hand_minor"] == 40_000


def test_commission_counts_only_this_utc_month(ledger: Ledger, clock: Clock) -> None:
    clock.now = datetime(2026, 10, 31, 23, 59, 59, tzinfo=UTC)
    fees.publish_schedule(
        ledger,
        product="cash_in",
        currency=KES,
        effective_from=clock.now - timedelta(days=1),
        rules=CASH_IN_RULES,
    )
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Duka", currency=KES
    )
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=10**6, provider="KCB"
    )
    villager = consenting_villager(ledger, agent_id=agent.id)

    def cash_in(amount_minor: int) -> None:
        cash.cash_in(
            ledger,
            cash_in_id=uuid.uuid4(),
            agent_id=agent.id,
            villager_id=villager.id,
            amount_minor=amount_minor,
        )

    cash_in(100_000)  # October: 1,000 of commission
    clock.advance(1)  # 00:00:00 UTC on 1 November
    assert month_start(clock.now) == clock.now
    cash_in(30_000)  # November: 300
    figures = station_figures(ledger, agent_id=agent.id)
    assert (figures.commission_month, figures.commission_month_minor) == ("2026-11", 300)
    assert figures.cash_on_hand_minor == 130_000
    clock.now = datetime(2026, 12, 1, tzinfo=UTC) - timedelta(microseconds=1)
    assert station_figures(ledger, agent_id=agent.id).commission_month_minor == 300
    clock.advance(0.000001)
    later = station_figures(ledger, agent_id=agent.id)
    assert (later.commission_month, later.commission_month_minor) == ("2026-12", 0)


def test_a_timed_out_cash_out_is_not_open(ledger: Ledger, clock: Clock) -> None:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Duka", currency=KES
    )
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=10**6, provider="KCB"
    )
    villager = consenting_villager(ledger, agent_id=agent.id)
    cash.cash_in(
        ledger,
        cash_in_id=uuid.uuid4(),
        agent_id=agent.id,
        villager_id=villager.id,
        amount_minor=50_000,
    )
    code = withdrawal_code(ledger, villager_id=villager.id, agent_id=agent.id, amount_minor=20_000)
    cash.request_cash_out(
        ledger,
        cash_out_id=uuid.uuid4(),
        agent_id=agent.id,
        villager_id=villager.id,
        amount_minor=20_000,
        consent_code=code,
    )
    held = station_figures(ledger, agent_id=agent.id)
    assert (held.open_cash_outs, held.cash_promised_minor) == (1, 20_000)
    clock.advance(cash.CASH_OUT_TIMEOUT_S - 1)
    assert station_figures(ledger, agent_id=agent.id).open_cash_outs == 1
    clock.advance(1)  # timed out, not yet swept
    late = station_figures(ledger, agent_id=agent.id)
    assert (late.open_cash_outs, late.cash_promised_minor) == (0, 0)
    assert late.cash_on_hand_minor == 50_000
    with pytest.raises(NotFound, match="agent_not_found"):
        station_figures(ledger, agent_id=uuid.uuid4())


def test_orders_at_the_station_newest_first_and_paged(api: Harness) -> None:
    village = new_village(api)
    made = [village.order(amount=1_000 + i) for i in range(3)]
    for order in made:
        ok(village.step(village.agent, order["id"], "pay", {"source": "cash"}))
    village.order()  # no agent yet: not at the station
    path = f"/v1/agents/{village.agent_id}/orders"
    listed = ok(village.agent.request("GET", path))
    assert [o["id"] for o in listed["data"]] == [o["id"] for o in reversed(made)]
    assert listed["has_more"] is False
    first = ok(village.agent.request("GET", path + "?limit=2"))
    assert first["has_more"] is True and len(first["data"]) == 2
    rest = ok(
        village.agent.request("GET", f"{path}?limit=2&starting_after={first['data'][1]['id']}")
    )
    assert [o["id"] for o in rest["data"]] == [made[0]["id"]] and rest["has_more"] is False
    # a cursor of another agent's order answers nothing
    other = new_village(api)
    theirs = other.order()
    ok(other.step(other.agent, theirs["id"], "pay", {"source": "cash"}))
    assert ok(village.agent.request("GET", f"{path}?starting_after={theirs['id']}"))["data"] == []
    refused(village.agent.request("GET", f"{path}?limit=0"), 400, "invalid_parameter")


def test_an_agent_finds_only_its_own_villager_by_phone(api: Harness) -> None:
    mine, theirs = Counter(api, float_minor=0), Counter(api, float_minor=0)
    villager = ok(mine.agent.request("GET", f"/v1/villagers/{mine.villager_id}"))
    phone = villager["phone"]
    path = f"/v1/agents/{mine.agent_id}/villagers"
    found = ok(mine.agent.request("GET", path, params={"phone": phone}))
    assert [v["id"] for v in found["data"]] == [mine.villager_id]
    # spaces are dropped as at registration
    spaced = f"{phone[:4]} {phone[4:7]} {phone[7:]}"
    assert ok(mine.agent.request("GET", path, params={"phone": spaced}))["data"] == found["data"]
    # another agent's villager and a number nobody has answer alike: nothing
    their_phone = ok(mine.operator.request("GET", f"/v1/villagers/{theirs.villager_id}"))["phone"]
    assert ok(mine.agent.request("GET", path, params={"phone": their_phone}))["data"] == []
    assert ok(mine.agent.request("GET", path, params={"phone": "+254711000000"}))["data"] == []
    refused(
        mine.agent.request("GET", path, params={"phone": "<img src=x>"}), 400, "invalid_parameter"
    )
    too_long = mine.agent.request("GET", path, params={"phone": "+" + "1" * 40})
    assert too_long.status_code in (400, 422), too_long.text
    missing = mine.agent.request("GET", path)
    assert missing.status_code in (400, 422), missing.text


@pytest.mark.parametrize("suffix", ["station", "orders", "villagers?phone=%2B254711000000"])
def test_roles_and_tenancy(api: Harness, suffix: str) -> None:
    mine, theirs = Counter(api, float_minor=0), Counter(api, float_minor=0)
    refused(
        mine.agent.request("GET", f"/v1/agents/{theirs.agent_id}/{suffix}"), 404, "agent_not_found"
    )
    shop = api.client("storefront")
    refused(shop.request("GET", f"/v1/agents/{mine.agent_id}/{suffix}"), 403, "forbidden")
    assert ok(api.client("auditor").request("GET", f"/v1/agents/{mine.agent_id}/{suffix}"))
    unsigned = httpx.get(f"{api.base_url}/v1/agents/{mine.agent_id}/{suffix}")
    assert unsigned.status_code == 401


def test_a_forged_moved_or_stale_signature_is_refused(api: Harness) -> None:
    mine, theirs = Counter(api, float_minor=0), Counter(api, float_minor=0)
    agent = mine.agent
    url = agent.url(f"/v1/agents/{mine.agent_id}/station")
    headers = agent.signed_headers("GET", url)
    assert httpx.get(url, headers=headers).status_code == 200
    # a replayed GET only reads again
    assert httpx.get(url, headers=headers).json()["agent_id"] == mine.agent_id
    forged = {**headers, "signature": headers["signature"][:-6] + "AAAAA="}
    refused(httpx.get(url, headers=forged), 401, "signature_invalid")
    moved = agent.url(f"/v1/agents/{theirs.agent_id}/station")
    assert httpx.get(moved, headers=headers).status_code == 401
    stale = agent.signed_headers("GET", url, created=datetime.now(UTC) - timedelta(hours=1))
    refused(httpx.get(url, headers=stale), 401, "signature_expired")


def test_an_operator_reading_no_agent_gets_404(api: Harness) -> None:
    operator = api.client("operator")
    refused(operator.request("GET", f"/v1/agents/{uuid.uuid4()}/station"), 404, "agent_not_found")
