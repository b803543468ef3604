"""The station app offline, in real Chromium (Debian's), as an agent uses it on a phone:
the offline allowance set online; the network cut (the context offline AND every request
aborted, the service worker's too, while the server counts what reaches it: nothing);
a cash-in, a cash-out with the villager's offline withdrawal code and a cash-out with
that code again (spent by then) captured as signed records of the offline protocol; a
capture past the allowance refused; a reload offline that keeps the queue; the network
back: the queue syncs by itself, the first answer lost on the way (the records stay
"sent"), sent again: two applied and one exception in words, the money checked through
the API and unchanged by syncing again. Also: a cash-out online with a withdrawal code
(the villager's name has quotes and an ampersand, shown as text), a wrong code refused
in words; a revoked device refused and the app says so, its record kept; a second tab
never syncs at the same time. Both engines. Screenshots as ``tests/test_station_app.py``
takes them."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from api.app import create_app
from api.client import Client
from api.local_server import ServerThread
from api.web import FILES as SHARED_FILES
from api.web import SHARED_PATH
from api.web.station import FILES, STATION_PATH, shell_version
from ledger import open_ledger
from ledger.flows import fees
from ledger.flows.consent import Purpose
from ledger.i18n import LANGUAGES
from ledger.money import format_money
from tests.browser import BROWSER_TEST_SETTINGS, ServedApp
from tests.conftest import drop_pg_schema
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_api_harness import fresh_database
from tests.test_api_orders import ORDER_RULES
from tests.test_flow_order_consent import pickup_code_sent
from tests.test_station_app import CONTROLLED, open_app, ready, shot
from webhooks import WebhookSettings

ROOT = Path(__file__).resolve().parent.parent
KES = "KES"
ORDER_MINOR = 150_000
FLOAT_MINOR = 1_000_000
WALLET_MINOR = 200_000
"""What the operator's cash-in pays into the villager's wallet before the story."""
ALLOWANCE = "500"
MARKUP = 'Akinyi "Mama" O\'Neil & co'
"""A villager's name with the characters markup is made of that the villagers flow lets
through (it refuses ``<`` and ``>``): shown as the characters they are."""
IDENTITY = """async () => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const found = await loadIdentity();
  return { keyId: found.keyId, deviceId: found.deviceId };
}"""


class Counting:
    """The served application, counting each HTTP request that reaches it (its path)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


counted: dict[str, Counting] = {}
"""The counting wrapper of each served app, by base URL."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """tests/browser.py's served app, on each engine, counting the requests it sees."""
    tmp = tmp_path_factory.mktemp("station-offline")
    db_url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(db_url, migrate=True)
        app = Counting(
            create_app(
                db_url,
                settings=BROWSER_TEST_SETTINGS,
                webhook_settings=WebhookSettings(worker_enabled=False),
            )
        )
        (tmp / "keys").mkdir()
        server = ServerThread(app).start()
        counted[server.base_url] = app
        try:
            yield ServedApp(server.base_url, db_url, led, tmp / "keys")
        finally:
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


@pytest.fixture(scope="module")
def boss(served_app: ServedApp) -> Iterator[Client]:
    made = served_app.key("operator")
    client = Client.from_key_file(served_app.base_url, made["key_id"], made["path"])
    yield client
    client.close()


def ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


class Station:
    """An onboarded agent with float, an active villager (PIN set) with money in her
    wallet, and a fresh enrollment code for the agent's phone."""

    def __init__(self, served_app: ServedApp, boss: Client, villager_name: str) -> None:
        self.app = served_app
        self.boss = boss
        self.agent_id = served_app.key("agent")["principal_id"]
        party = {"id": self.agent_id, "kind": "agent", "name": "Duka", "currency": KES}
        ok(boss.request("POST", "/v1/parties", json_body=party), 201)
        top_up = {"id": str(uuid.uuid4()), "amount_minor": FLOAT_MINOR, "provider": "KCB"}
        ok(boss.request("POST", f"/v1/agents/{self.agent_id}/float-topups", json_body=top_up), 201)
        villager = consenting_villager(
            served_app.ledger, agent_id=uuid.UUID(self.agent_id), name=villager_name
        )
        self.villager_id = str(villager.id)
        self.phone: str = ok(boss.request("GET", f"/v1/villagers/{villager.id}"))["phone"]
        paid = {"id": str(uuid.uuid4()), "villager_id": self.villager_id}
        path = f"/v1/agents/{self.agent_id}/cash-ins"
        ok(boss.request("POST", path, json_body={**paid, "amount_minor": WALLET_MINOR}), 201)
        asked = {"principal_id": self.agent_id}
        made = ok(boss.request("POST", "/v1/enrollments", json_body=asked), 201)
        self.code = made["code"]

    def code_for(self, amount_minor: int, purpose: Purpose) -> str:
        return withdrawal_code(
            self.app.ledger,
            villager_id=uuid.UUID(self.villager_id),
            agent_id=uuid.UUID(self.agent_id),
            amount_minor=amount_minor,
            purpose=purpose,
        )

    def wallet(self) -> int:
        villager = ok(self.boss.request("GET", f"/v1/villagers/{self.villager_id}"))
        balance = ok(self.boss.request("GET", f"/v1/accounts/{villager['wallet_id']}/balance"))
        posted: int = balance["balance_posted"]
        return posted

    def listed(self, what: str) -> list[dict[str, Any]]:
        path = f"/v1/agents/{self.agent_id}/{what}?limit=100"
        rows: list[dict[str, Any]] = ok(self.boss.request("GET", path))["data"]
        return rows

    def exceptions(self) -> list[dict[str, Any]]:
        path = f"/v1/offline-exceptions?agent_id={self.agent_id}"
        rows: list[dict[str, Any]] = ok(self.boss.request("GET", path))["data"]
        return rows

    def money(self, device_id: str) -> dict[str, Any]:
        """Everything the story moves, as the API reports it."""
        device = ok(self.boss.request("GET", f"/v1/devices/{device_id}"))
        return {
            "wallet": self.wallet(),
            "float": ok(self.boss.request("GET", f"/v1/agents/{self.agent_id}/float")),
            "allowance": device["allowance_minor"],
            "last_seq": device["last_seq"],
            "cash_ins": self.listed("cash-ins"),
            "cash_outs": self.listed("cash-outs"),
            "exceptions": [(e["seq"], e["reason"]) for e in self.exceptions()],
        }


def enroll(page: Page, served_app: ServedApp, station: Station) -> dict[str, str]:
    open_app(page, served_app)
    ready(page, "enroll")
    page.fill("#code", station.code)
    page.click("#enroll")
    ready(page, "home")
    found: dict[str, str] = page.evaluate(IDENTITY)
    return found


def uncaught(page_errors: list[str]) -> list[str]:
    """The page's errors but the browser's notes of refused requests (a wrong code's
    422, a read the network cut): those are the story's."""
    return [e for e in page_errors if not e.startswith("Failed to load resource")]


def screen(page: Page, name: str) -> None:
    """Open a screen from the menu (again, if it is shown: a fresh form), once drawn."""
    page.evaluate("delete document.getElementById('screen').dataset.ready")
    page.click(f'[data-screen="{name}"]')
    ready(page, name)


def set_allowance(page: Page, amount: str) -> None:
    screen(page, "history")
    page.fill("#allowance", amount)
    page.click("#set-allowance")
    expect(page.locator("#allowance-left")).to_have_text(f"KES {amount}.00")


def capture(page: Page, kind: str, villager_id: str, amount: str, code: str | None) -> None:
    """Fill the cash screen offline and keep the record on the phone."""
    screen(page, kind)
    expect(page.locator("#offline-note")).to_contain_text("No network: this will be kept")
    page.fill("#villager", villager_id)
    page.fill("#amount", amount)
    if code is not None:
        page.fill("#consent-code", code)
    page.click("#check")
    expect(page.locator("#confirm-text")).to_contain_text("on this phone?")
    page.click("#confirm")
    expect(page.locator("#queued")).to_contain_text("Kept on this phone")


def cut_network(page: Page) -> tuple[list[str], Any]:
    """The context offline and every request aborted (the service worker's too)."""
    cut: list[str] = []

    def abort(route: Route) -> None:
        cut.append(route.request.url)
        route.abort("internetdisconnected")

    page.context.route("**/*", abort)
    page.context.set_offline(True)
    return cut, abort


def states(page: Page) -> list[str | None]:
    items = page.locator("#queue li")
    return [items.nth(i).get_attribute("data-state") for i in range(items.count())]


def test_offline_capture_survives_a_reload_and_syncs_exactly_once(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    tmp_path: Path,
    offsite_requests: list[str],
    page_errors: list[str],
) -> None:
    station = Station(served_app, boss, "Akinyi")
    code = station.code_for(10_000, Purpose.OFFLINE_WITHDRAWAL)
    identity = enroll(page, served_app, station)
    set_allowance(page, ALLOWANCE)
    shot(page, tmp_path, "history-online")
    before = station.money(identity["deviceId"])
    assert before["allowance"] == 50_000 and before["last_seq"] == 0
    assert page.evaluate(CONTROLLED) is True, "no service worker controls the page"

    seen = counted[served_app.base_url].paths
    reached = len(seen)
    cut, abort = cut_network(page)
    screen(page, "cash-in")  # offline, a phone number this phone never looked up is unknown
    page.fill("#villager", station.phone)
    page.fill("#amount", "300")
    page.click("#check")
    expect(page.locator("#cash-in-outcome")).to_have_text(
        "With no network, type her id: a phone number is found only online,"
        " or if this phone found her before."
    )
    capture(page, "cash-in", station.villager_id, "300", None)
    expect(page.locator("#queued")).to_contain_text("name not known on this phone")
    expect(page.locator("#allowance-left")).to_have_text("Offline allowance left: KES 200.00")
    shot(page, tmp_path, "cash-in-offline")
    capture(page, "cash-out", station.villager_id, "100", code)
    shot(page, tmp_path, "cash-out-offline")
    capture(page, "cash-out", station.villager_id, "100", code)  # the same code: spent by then
    expect(page.locator("#allowance-left")).to_have_text("Offline allowance left: KES 0.00")
    # past the allowance: refused before any cash changes hands, nothing kept
    page.fill("#amount", "0.01")
    page.click("#check")
    page.click("#confirm")
    expect(page.locator("#cash-out-outcome")).to_have_text(
        "That is more than the offline allowance left (KES 0.00). Nothing was kept."
    )
    screen(page, "history")
    assert states(page) == ["queued"] * 3
    expect(page.locator("#queue-pending")).to_have_text("3")

    page.reload()  # offline: the shell, the enrollment and the queue are all on the phone
    ready(page, "history")
    assert states(page) == ["queued"] * 3
    expect(page.locator("#queue li").first).to_contain_text("Cash in · KES 300.00")
    shot(page, tmp_path, "history-offline")
    assert len(seen) == reached, seen[reached:]  # the server saw nothing meanwhile
    assert any("/v1/" in url for url in cut)  # the worker's reads were tried and cut

    # the first sync's answer is lost on the way: the server applied, the phone never heard
    lost: list[str] = []

    def lose_first(route: Route) -> None:
        if lost:
            route.continue_()
            return
        lost.append(route.fetch().text())
        route.abort("connectionreset")

    page.route("**/v1/devices/*/sync", lose_first)
    page.context.unroute("**/*", abort)
    page.context.set_offline(False)  # the `online` event starts the sync by itself
    expect(page.locator("#last-sync")).to_have_text(
        "The last sync found no network; it runs again when the network is back."
    )
    assert states(page) == ["sent"] * 3 and len(lost) == 1
    after = station.money(identity["deviceId"])
    assert after["last_seq"] == 3 and after["exceptions"] == [(3, "consent_invalid")]

    page.click("#sync-now")  # sent again: each record answers its stored outcome
    expect(page.locator("#sync-outcome")).to_have_text("Sent 3: 2 applied, 1 exceptions.")
    assert states(page) == ["applied", "applied", "exception"]
    expect(page.locator('#queue li[data-state="exception"]')).to_contain_text(
        "Exception: The withdrawal code was not accepted (wrong, already used or voided)."
    )
    expect(page.locator("#allowance-left")).to_have_text("KES 100.00")
    shot(page, tmp_path, "history-synced")
    assert station.money(identity["deviceId"]) == after

    [cash_in] = [c for c in after["cash_ins"] if c["device_id"] == identity["deviceId"]]
    [cash_out] = [c for c in after["cash_outs"] if c["device_id"] == identity["deviceId"]]
    assert (cash_in["amount_minor"], cash_out["amount_minor"]) == (30_000, 10_000)
    assert (cash_out["mode"], cash_out["state"]) == ("one_shot", "completed")
    moved = 30_000 - cash_in["fee_minor"] - cash_out["total_minor"]
    assert after["wallet"] == before["wallet"] + moved
    assert after["allowance"] == 10_000  # 500 - 300 (cash-in) - 100 (the unconsented cash-out)
    assert after["float"]["balance_minor"] < before["float"]["balance_minor"]

    page.click("#sync-now")  # again: nothing left to send, nothing moves
    expect(page.locator("#sync-outcome")).to_have_text("Sent 0: 0 applied, 0 exceptions.")
    page.reload()
    ready(page, "history")
    assert states(page) == ["applied", "applied", "exception"]
    assert station.money(identity["deviceId"]) == after
    assert offsite_requests == [] and uncaught(page_errors) == []


def test_cash_out_online_with_a_code_shows_the_name_as_text(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path, page_errors: list[str]
) -> None:
    station = Station(served_app, boss, MARKUP)
    enroll(page, served_app, station)
    screen(page, "cash-out")
    wallet = station.wallet()
    page.fill("#villager", station.phone)  # found by her phone number at this station
    page.fill("#amount", "200")
    page.fill("#consent-code", "12345")
    page.click("#check")
    expect(page.locator("#cash-out-outcome")).to_have_text("The code is 6 digits.")
    page.fill("#consent-code", "9" * 50)
    assert page.input_value("#consent-code") == "999999"  # cut by the field's limit
    page.click("#check")
    expect(page.locator("#confirm-text")).to_have_text(f"Cash out KES 200.00 to {MARKUP}?")
    page.click("#confirm")
    expect(page.locator("#cash-out-outcome")).to_have_text(
        "The withdrawal code was not accepted (wrong, already used or voided)."
    )
    assert station.listed("cash-outs") == [] and station.wallet() == wallet

    code = station.code_for(20_000, Purpose.WITHDRAWAL)
    page.fill("#consent-code", code)
    page.click("#check")
    page.click("#confirm")
    expect(page.locator("#hand-over-text")).to_have_text(
        f"The code is right. Hand KES 200.00 to {MARKUP} now, then tap Cash handed over."
    )
    [held] = station.listed("cash-outs")
    assert (held["state"], held["amount_minor"]) == ("requested", 20_000)
    page.click("#handed")
    expect(page.locator("#cash-out-done")).to_have_text(f"Handed KES 200.00 to {MARKUP}.")
    [done] = station.listed("cash-outs")
    assert done["state"] == "completed" and done["device_id"] is None
    expect(page.locator("#cash-out-total")).to_have_text(format_money(done["total_minor"], KES))
    assert station.wallet() == wallet - done["total_minor"]
    assert page.locator("img").count() == 0
    shot(page, tmp_path, "cash-out")

    screen(page, "history")
    expect(page.locator(f'#recent li[data-id="{done["id"]}"]')).to_contain_text("Completed")
    expect(page.locator("#queue-empty")).to_have_text("Nothing captured offline.")
    shot(page, tmp_path, "history")
    assert page.locator("img").count() == 0
    assert uncaught(page_errors) == []


def test_a_revoked_device_keeps_its_records_and_the_app_says_so(
    page: Page, served_app: ServedApp, boss: Client
) -> None:
    station = Station(served_app, boss, "Otieno")
    identity = enroll(page, served_app, station)
    set_allowance(page, "50")
    assert page.evaluate(CONTROLLED) is True
    _cut, abort = cut_network(page)
    capture(page, "cash-in", station.villager_id, "20", None)
    ok(boss.request("POST", f"/v1/devices/{identity['deviceId']}/revoke"))
    screen(page, "history")
    page.context.unroute("**/*", abort)
    page.context.set_offline(False)
    revoked = (
        "This phone's offline device was revoked: its records stay here and are not sent."
        " Ask the back office."
    )
    expect(page.locator("#last-sync")).to_have_text(revoked)
    page.click("#sync-now")
    expect(page.locator("#sync-outcome")).to_have_text(revoked)
    assert states(page) == ["sent"]  # kept on the phone, never lost
    ours = [c for c in station.listed("cash-ins") if c["device_id"] == identity["deviceId"]]
    assert ours == [] and station.exceptions() == []


def test_two_tabs_never_sync_at_once(page: Page, served_app: ServedApp, boss: Client) -> None:
    station = Station(served_app, boss, "Baraka")
    enroll(page, served_app, station)
    screen(page, "history")
    other = page.context.new_page()
    other.goto(served_app.url("/station/#/history"))
    ready(other, "history")
    held = other.evaluate(
        """() => new Promise((granted) => navigator.locks.request("vledger-station-sync",
             () => new Promise((done) => { window.release = done; granted(true); })))"""
    )
    assert held is True
    page.click("#sync-now")
    expect(page.locator("#sync-outcome")).to_have_text("Another window of this app is syncing now.")
    other.evaluate("window.release()")
    page.click("#sync-now")
    expect(page.locator("#sync-outcome")).to_have_text("Sent 0: 0 applied, 0 exceptions.")


def test_the_worker_precaches_every_file_of_the_app_by_its_digest(served_app: ServedApp) -> None:
    """The offline shell holds every screen, the queue, the shared modules, the currencies
    and the words in each language (a file missing from the worker's manifest would leave
    the app unable to open with no network), and each digest is the one of the body served
    now: the worker keeps no other (a stale copy from the HTTP cache after an upgrade)."""
    worker = httpx.get(served_app.url(f"{STATION_PATH}/sw.js")).text
    found = re.search(r"^const MANIFEST = (\{.*\});$", worker, re.MULTILINE)
    assert found is not None and "__SHELL_MANIFEST__" not in worker
    manifest: dict[str, str] = json.loads(found.group(1))
    wanted = {f"{STATION_PATH}/{name}" for name in FILES if name not in ("sw.js", "index.html")}
    wanted |= {f"{STATION_PATH}/", f"{SHARED_PATH}/currencies.json"}
    wanted |= {f"{SHARED_PATH}/{name}" for name in SHARED_FILES}
    wanted |= {f"/web/i18n/station/{language}.json" for language in LANGUAGES}
    assert set(manifest) == wanted
    for path, digest in manifest.items():
        assert hashlib.sha256(httpx.get(served_app.url(path)).content).hexdigest() == digest, path
    assert f'const VERSION = "{shell_version()}";' in worker


@pytest.fixture(scope="module")
def order_fees(served_app: ServedApp) -> None:
    """Orders are priced (an order is paid only under a fee schedule)."""
    fees.publish_schedule(
        served_app.ledger,
        product="order",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=1),
        rules=ORDER_RULES,
    )


def dispatched_order(served_app: ServedApp, boss: Client, station: Station) -> tuple[str, str]:
    """An order of the station's villager, paid in cash at the station and dispatched to
    it by the shop: its id and the pickup code the villager was sent."""
    made = served_app.key("storefront")
    party = {"id": made["principal_id"], "kind": "storefront", "name": "Mbegu", "currency": KES}
    ok(boss.request("POST", "/v1/parties", json_body=party), 201)
    order_id = str(uuid.uuid4())
    order = {
        "id": order_id,
        "currency": KES,
        "amount_minor": ORDER_MINOR,
        "delivery_method": "pickup_point",
        "villager_id": station.villager_id,
    }
    with Client.from_key_file(served_app.base_url, made["key_id"], made["path"]) as shop:
        ok(shop.request("POST", "/v1/orders", json_body=order), 201)
        paid = {"source": "cash", "agent_id": station.agent_id}
        ok(boss.request("POST", f"/v1/orders/{order_id}/pay", json_body=paid))
        ok(shop.request("POST", f"/v1/orders/{order_id}/dispatch", json_body={}))
    villager = uuid.UUID(station.villager_id)
    return order_id, pickup_code_sent(served_app.ledger, villager, uuid.UUID(order_id))


def hand_over(page: Page, order_id: str, code: str) -> None:
    """On the orders screen (offline: the list this phone last read), hand the order's
    goods over with the code she typed."""
    screen(page, "orders")
    card = page.locator(f'#station-orders [data-order="{order_id}"]')
    expect(card).to_have_attribute("data-state", "dispatched")
    card.locator(".pickup-code").fill(code)
    card.locator(".hand-over").click()
    expect(card.locator(".order-outcome")).to_have_text(
        f"Kept on this phone: hand-over of order {order_id[:8]}."
        " It will be sent when the network is back."
    )
    expect(card.locator(".hand-over")).to_be_disabled()  # kept once


def test_a_hand_over_offline_is_synced_and_shows_the_order_delivered(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    order_fees: None,
    tmp_path: Path,
    page_errors: list[str],
) -> None:
    station = Station(served_app, boss, "Zawadi")
    order_id, code = dispatched_order(served_app, boss, station)
    identity = enroll(page, served_app, station)
    assert page.evaluate(CONTROLLED) is True, "no service worker controls the page"
    screen(page, "orders")  # online once: the worker keeps the list for offline
    expect(page.locator(f'#station-orders [data-order="{order_id}"]')).to_be_visible()

    seen = counted[served_app.base_url].paths
    reached = len(seen)
    cut, abort = cut_network(page)
    hand_over(page, order_id, f"{(int(code) + 1) % 10**6:06d}")  # she mistyped it
    hand_over(page, order_id, code)
    shot(page, tmp_path, "orders-handover-offline")
    screen(page, "history")
    assert states(page) == ["queued", "queued"]
    expect(page.locator("#queue li").first).to_contain_text("Hand-over · KES 1,500.00")
    expect(page.locator("#queue li").first).to_contain_text(f"Order {order_id[:8]}")
    assert len(seen) == reached, seen[reached:]  # the server saw nothing meanwhile
    assert ok(boss.request("GET", f"/v1/orders/{order_id}"))["state"] == "dispatched"

    page.context.unroute("**/*", abort)
    page.context.set_offline(False)  # the `online` event starts the sync by itself
    expect(page.locator("#last-sync")).to_have_text("Last sync: 1 applied, 1 exceptions.")
    assert states(page) == ["exception", "applied"]
    expect(page.locator('#queue li[data-state="exception"]')).to_contain_text(
        "Exception: The pickup code was wrong: the goods are not recorded as handed over."
    )
    expect(page.locator('#queue li[data-state="applied"]')).to_contain_text(
        "Handed over: the order is delivered"
    )
    shot(page, tmp_path, "history-handover-synced")
    order = ok(boss.request("GET", f"/v1/orders/{order_id}"))
    assert (order["state"], order["escrow_minor"]) == ("delivered", ORDER_MINOR)
    assert [(e["kind"], e["reason"]) for e in station.exceptions()] == [
        ("handover", "pickup_code_invalid")
    ]
    device = ok(boss.request("GET", f"/v1/devices/{identity['deviceId']}"))
    assert device["last_seq"] == 2

    page.click("#sync-now")  # again: nothing left to send, nothing moves
    expect(page.locator("#sync-outcome")).to_have_text("Sent 0: 0 applied, 0 exceptions.")
    screen(page, "orders")
    delivered = page.locator(f'#station-orders [data-order="{order_id}"]')
    expect(delivered).to_have_attribute("data-state", "delivered")
    assert ok(boss.request("GET", f"/v1/orders/{order_id}")) == order
    assert any("/v1/" in url for url in cut)
    assert uncaught(page_errors) == []
