"""The station app's screens in real Chromium (Debian's), on a phone (360x640), each walked
as a story and checked through the API after: home's figures (float, cash on hand, open
cash-outs, commission this month, the sync queue, the till number when the route answers)
match the API; a villager registered at tier0 with her activation code sent by SMS (a name
of markup shown as text), found by phone, another agent's villager not found; an order paid
in cash, handed over with the villager's pickup code (a wrong code refused in words) and
released, its escrow paid to the shop as the API shows; a float transfer moves float
between two agents. Both engines: ``served_app`` (from ``tests/test_station_app.py``)
serves the real application on a fresh SQLite file and on a fresh PostgreSQL schema.
Screenshots go to each test's tmp folder (and ``$VLEDGER_SCREENS_DIR`` when set)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from api.client import Client
from ledger.flows import cash, fees
from ledger.money import format_money
from tests.browser import ServedApp
from tests.consent_helpers import consenting_villager, new_phone, withdrawal_code
from tests.test_api_orders import ORDER_RULES
from tests.test_flow_order_consent import pickup_code_sent
from tests.test_station_app import (
    FLOAT_MINOR,
    KES,
    MARKUP,
    boss,
    enroll,
    float_of,
    new_station,
    ok,
    ready,
    served_app,
    shot,
)

__all__ = ["boss", "served_app"]

CASH_IN_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "fixed_minor": 0}],
    "platform_commission": {"bps": 100, "max_minor": 5_000},
}
"""No fee; the platform pays the agent 1% of a cash-in as commission."""
ORDER_MINOR = 45_000
NAME = 'Akinyi "Mama" O\'Neil & (co) &amp;'
"""Quotes and an ampersand: shown as the characters they are."""


def uncaught(page_errors: list[str]) -> list[str]:
    """The page's errors but the browser's own note of a refused request (a 404 till, a
    422 refusal the screen shows in words)."""
    return [e for e in page_errors if not e.startswith("Failed to load resource")]


@pytest.fixture(scope="module")
def commission(served_app: ServedApp) -> None:
    """Fee schedules in effect: cash-ins pay the agent commission; orders are priced."""
    fees.publish_schedule(
        served_app.ledger,
        product="cash_in",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=40),
        rules=CASH_IN_RULES,
    )
    fees.publish_schedule(
        served_app.ledger,
        product="order",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=1),
        rules=ORDER_RULES,
    )


def screen(page: Page, name: str) -> None:
    page.click(f'[data-screen="{name}"]')
    ready(page, name)


def test_home_shows_the_figures_the_api_answers(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    commission: None,
    tmp_path: Path,
    page_errors: list[str],
) -> None:
    station = new_station(served_app, boss)
    agent = uuid.UUID(station.agent_id)
    villager = consenting_villager(served_app.ledger, agent_id=agent)
    body = {"id": str(uuid.uuid4()), "villager_id": str(villager.id), "amount_minor": 60_000}
    ok(boss.request("POST", f"/v1/agents/{agent}/cash-ins", json_body=body), 201)
    code = withdrawal_code(
        served_app.ledger, villager_id=villager.id, agent_id=agent, amount_minor=25_000
    )
    cash.request_cash_out(
        served_app.ledger,
        cash_out_id=uuid.uuid4(),
        agent_id=agent,
        villager_id=villager.id,
        amount_minor=25_000,
        consent_code=code,
    )
    enroll(page, served_app, station, None)
    figures = ok(boss.request("GET", f"/v1/agents/{agent}/station"))
    assert (figures["cash_on_hand_minor"], figures["open_cash_outs"]) == (60_000, 1)
    assert figures["commission_month_minor"] == 600
    expect(page.locator("#cash-on-hand")).to_have_text(format_money(60_000, KES))
    expect(page.locator("#cash-promised")).to_have_text(format_money(25_000, KES))
    expect(page.locator("#open-cash-outs")).to_have_text("1")
    expect(page.locator("#commission-month")).to_have_text(format_money(600, KES))
    month = figures["commission_month"]
    expect(page.get_by_text(f"Commission this month ({month})")).to_be_visible()
    expect(page.locator("#float-available")).to_have_text(
        format_money(float_of(boss, station.agent_id)["available_minor"], KES)
    )
    expect(page.locator("#queue-pending")).to_have_text("0")
    till = boss.request("GET", f"/v1/agents/{agent}/till")
    if till.status_code == 200:
        expect(page.locator("#till-number")).to_have_text(str(till.json()["till_number"]))
    else:
        assert till.status_code == 404
        assert page.locator("#till-number").count() == 0
    shot(page, tmp_path, "home-figures")
    page.click('[data-language="sw"]')
    expect(page.locator("#cash-on-hand")).to_have_text(format_money(60_000, KES))
    expect(page.get_by_text("Pesa taslimu dukani")).to_be_visible()
    shot(page, tmp_path, "home-figures-sw")
    page.click('[data-language="en"]')
    assert uncaught(page_errors) == []


def test_a_villager_is_registered_at_tier0_and_found_by_phone(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path, page_errors: list[str]
) -> None:
    mine, theirs = new_station(served_app, boss), new_station(served_app, boss)
    enroll(page, served_app, mine, None)
    screen(page, "villagers")
    phone = new_phone()
    # markup is refused by the route (a name is printable text without < or >), in words
    page.fill("#new-phone", phone)
    page.fill("#new-name", MARKUP)
    page.click("#register")
    expect(page.locator("#register-outcome")).to_have_text(
        "A name is printable text without < or >."
    )
    assert page.locator("img").count() == 0
    page.fill("#new-name", NAME)
    page.select_option("#new-language", "en")
    page.click("#register")
    expect(page.locator("#registered")).to_contain_text(
        "Her activation code went to her phone by SMS"
    )
    expect(page.locator("#new-villager .name")).to_have_text(NAME)
    villager_id = page.locator("#new-villager-id").inner_text()
    made = ok(boss.request("GET", f"/v1/villagers/{villager_id}"))
    assert (made["agent_id"], made["kyc_tier"], made["state"]) == (
        mine.agent_id,
        "tier0",
        "pending_activation",
    )
    assert (made["name"], made["phone"], made["currency"]) == (NAME, phone, KES)
    shot(page, tmp_path, "villagers-registered")

    page.fill("#find-phone", phone)
    page.click("#find")
    expect(page.locator("#found-villager-id")).to_have_text(villager_id)
    expect(page.locator("#found-villager .name")).to_have_text(NAME)
    # another agent's villager is not found, as a number nobody has
    their_phone = ok(boss.request("GET", f"/v1/villagers/{theirs.villager_id}"))["phone"]
    for number in (their_phone, new_phone()):
        page.fill("#find-phone", number)
        page.click("#find")
        expect(page.locator("#find-outcome")).to_have_text(
            "No villager of this station has that phone number."
        )
    page.fill("#find-phone", "0712")
    page.click("#find")
    expect(page.locator("#find-outcome")).to_have_text(
        "That is not a phone number: start with + and the country code."
    )
    # the same number again is refused in words; oversized input is cut by the fields
    page.fill("#new-phone", phone)
    page.fill("#new-name", "Akinyi")
    page.click("#register")
    expect(page.locator("#register-outcome")).to_have_text(
        "A villager with that phone number is already registered."
    )
    page.fill("#new-name", "x" * 500)
    assert len(page.input_value("#new-name")) == 200
    shot(page, tmp_path, "villagers-find")
    assert page.locator("img").count() == 0
    assert uncaught(page_errors) == []


def storefront(served_app: ServedApp, boss: Client) -> Client:
    made = served_app.key("storefront")
    body = {"id": made["principal_id"], "kind": "storefront", "name": "Duka", "currency": KES}
    ok(boss.request("POST", "/v1/parties", json_body=body), 201)
    return Client.from_key_file(served_app.base_url, made["key_id"], made["path"])


def card(page: Page, where: str, order_id: str) -> Any:
    return page.locator(f'{where} [data-order="{order_id}"]')


def test_an_order_paid_in_cash_is_handed_over_with_the_pickup_code_and_released(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    commission: None,
    tmp_path: Path,
    page_errors: list[str],
) -> None:
    station = new_station(served_app, boss)
    shop = storefront(served_app, boss)
    order: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "currency": KES,
        "amount_minor": ORDER_MINOR,
        "delivery_method": "pickup_point",
        "villager_id": station.villager_id,
    }
    ok(shop.request("POST", "/v1/orders", json_body=order), 201)
    enroll(page, served_app, station, None)
    screen(page, "orders")
    expect(page.locator("#no-orders")).to_be_visible()
    page.fill("#order-id", MARKUP)
    page.click("#find-order")
    expect(page.locator("#order-found")).to_have_text("That is not an order id.")
    page.fill("#order-id", order["id"])
    page.click("#find-order")
    found = card(page, "#order-found", order["id"])
    expect(found.locator(".amount")).to_have_text(format_money(ORDER_MINOR, KES))
    found.locator(".pay-cash").click()
    expect(card(page, "#order-found", order["id"])).to_have_attribute("data-state", "paid")
    paid = ok(boss.request("GET", f"/v1/orders/{order['id']}"))
    assert (paid["state"], paid["payment_source"], paid["agent_id"]) == (
        "paid",
        "cash",
        station.agent_id,
    )
    assert paid["escrow_minor"] == ORDER_MINOR
    assert float_of(boss, station.agent_id)["available_minor"] == FLOAT_MINOR - ORDER_MINOR

    ok(shop.request("POST", f"/v1/orders/{order['id']}/dispatch", json_body={}))
    code = pickup_code_sent(
        served_app.ledger, uuid.UUID(station.villager_id), uuid.UUID(order["id"])
    )
    screen(page, "home")
    screen(page, "orders")
    listed = card(page, "#station-orders", order["id"])
    expect(listed).to_have_attribute("data-state", "dispatched")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    listed.locator(".pickup-code").fill(wrong)
    listed.locator(".hand-over").click()
    expect(listed.locator(".order-outcome")).to_have_text("Wrong pickup code: 2 tries left.")
    listed.locator(".pickup-code").fill("12ab")
    listed.locator(".hand-over").click()
    expect(listed.locator(".order-outcome")).to_have_text(
        "That is not a pickup code: it has 6 digits."
    )
    assert ok(boss.request("GET", f"/v1/orders/{order['id']}"))["state"] == "dispatched"
    shot(page, tmp_path, "orders-wrong-code")
    listed.locator(".pickup-code").fill(code)
    listed.locator(".hand-over").click()
    delivered = card(page, "#station-orders", order["id"])
    expect(delivered).to_have_attribute("data-state", "delivered")
    delivered.locator(".release").click()
    released = card(page, "#station-orders", order["id"])
    expect(released).to_have_attribute("data-state", "released")
    expect(released.locator(".escrow")).to_have_text(format_money(0, KES))
    after = ok(boss.request("GET", f"/v1/orders/{order['id']}"))
    assert (after["state"], after["escrow_minor"], after["released_minor"]) == (
        "released",
        0,
        ORDER_MINOR,
    )
    expect(released.locator(".released")).to_have_text(format_money(ORDER_MINOR, KES))
    shot(page, tmp_path, "orders")
    shop.close()
    assert uncaught(page_errors) == []


def test_a_float_transfer_moves_float_to_another_agent(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path, page_errors: list[str]
) -> None:
    mine, theirs = new_station(served_app, boss), new_station(served_app, boss)
    enroll(page, served_app, mine, None)
    screen(page, "float")
    expect(page.locator("#float-available")).to_have_text(format_money(FLOAT_MINOR, KES))
    expect(page.locator("#my-agent-id")).to_have_text(mine.agent_id)
    for to, amount, said in [
        (mine.agent_id, "10", "That is this station's own id."),
        (MARKUP, "10", "That is not an agent id."),
        (theirs.agent_id, "0", "Type an amount like 1,250 or 1250.50."),
        (theirs.agent_id, "10.001", "Type an amount like 1,250 or 1250.50."),
        (theirs.agent_id, "1000.01", "Your float is too low for that."),
    ]:
        page.fill("#to-agent", to)
        page.fill("#transfer-amount", amount)
        page.click("#check-transfer")
        expect(page.locator("#transfer-outcome")).to_have_text(said)
    page.fill("#to-agent", str(uuid.uuid4()))
    page.fill("#transfer-amount", "1")
    page.click("#check-transfer")
    page.click("#confirm-transfer")
    expect(page.locator("#transfer-outcome")).to_have_text("No agent with that id.")
    page.fill("#to-agent", theirs.agent_id)
    page.fill("#transfer-amount", "300.25")
    page.click("#check-transfer")
    expect(page.locator("#transfer-confirm-text")).to_have_text(
        f"Send KES 300.25 of float to agent {theirs.agent_id}?"
    )
    page.click("#confirm-transfer")
    expect(page.locator("#transfer-done")).to_contain_text("Sent KES 300.25 of float")
    assert float_of(boss, mine.agent_id)["available_minor"] == FLOAT_MINOR - 30_025
    assert float_of(boss, theirs.agent_id)["available_minor"] == FLOAT_MINOR + 30_025
    expect(page.locator("#float-after")).to_have_text(format_money(FLOAT_MINOR - 30_025, KES))
    shot(page, tmp_path, "float")
    page.fill("#transfer-amount", "9" * 500)
    assert len(page.input_value("#transfer-amount")) == 20
    assert uncaught(page_errors) == []


def test_an_agent_asks_for_a_top_up_and_an_operator_approves_it(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path, page_errors: list[str]
) -> None:
    """The float screen asks (a proposal: nothing moves); an operator approves it through
    the API; the float grows once. Bad input is refused in words, markup stays text."""
    station = new_station(served_app, boss)
    enroll(page, served_app, station, None)
    screen(page, "float")
    for amount, provider, said in [
        ("0", "KCB", "Type an amount like 1,250 or 1250.50."),
        ("10", MARKUP, "Type the provider's code, like KCB or MPESA."),
    ]:
        page.fill("#topup-amount", amount)
        page.fill("#topup-provider", provider)
        page.click("#ask-topup")
        expect(page.locator("#topup-outcome")).to_have_text(said)
    page.fill("#topup-amount", "1500")
    page.fill("#topup-provider", "kcb")
    page.click("#ask-topup")
    expect(page.locator("#topup-asked")).to_have_text(
        "Asked for KES 1,500.00 from KCB. The back office approves it once your deposit"
        " is confirmed."
    )
    assert float_of(boss, station.agent_id)["available_minor"] == FLOAT_MINOR  # nothing yet
    listed = ok(boss.request("GET", "/v1/proposals", params={"state": "proposed"}))["data"]
    [asked] = [p for p in listed if p["proposed_by"] == station.agent_id]
    assert (asked["kind"], asked["payload"]["amount_minor"]) == ("float_topup", 150_000)
    ok(boss.request("POST", f"/v1/proposals/{asked['id']}/approve"))
    assert float_of(boss, station.agent_id)["available_minor"] == FLOAT_MINOR + 150_000
    shot(page, tmp_path, "float-topup-request")
    assert uncaught(page_errors) == []
