"""The station app at ``/station/`` in real Chromium (Debian's), as an agent uses it on a
phone (360x640): enroll with a code issued through the API, the home screen's float as
money, a cash-in online checked through the API, a reload that keeps the enrollment
(IndexedDB), the app shell opening with the network cut (service worker), Swahili, markup
in a name shown as text, a browser without Ed25519, another agent's villager, a revoked
device. Both engines: this module's ``served_app`` serves the real application on a fresh
SQLite file and on a fresh PostgreSQL schema. Screenshots go to each test's tmp folder,
one per screen; copied to ``$VLEDGER_SCREENS_DIR/station-*.png`` only when that is set
(``make screens``: ``docs/screens``)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog, Page, Route, ViewportSize, expect

from api.app import create_app
from api.client import Client
from api.local_server import ServerThread
from api.web import FILES as SHARED_FILES
from api.web.station import FILES, STATION_PATH
from ledger import open_ledger
from ledger.money import format_money
from tests.browser import BROWSER_TEST_SETTINGS, ServedApp
from tests.conftest import drop_pg_schema
from tests.test_api_harness import fresh_database
from webhooks import WebhookSettings

ROOT = Path(__file__).resolve().parent.parent
SCREENS_ENV = "VLEDGER_SCREENS_DIR"
"""Where screenshots are copied for the README, when set (``make screens``)."""
KES = "KES"
FLOAT_MINOR = 100_000
MARKUP = "<img src=x onerror=alert(1)>"
CONTROLLED = """async () => {
  const sw = navigator.serviceWorker;
  const claimed = sw.controller ? Promise.resolve() : new Promise(
    (done) => sw.addEventListener("controllerchange", done, { once: true }));
  const late = new Promise((done) => setTimeout(() => done(false), 10000));
  return Promise.race([sw.ready.then(() => claimed).then(() => sw.controller !== null), late]);
}"""
"""Whether a service worker controls the page (false after 10 s without one)."""
PHONE_SIZE: ViewportSize = {"width": 360, "height": 640}


@dataclass
class Station:
    """An onboarded agent with float, a villager at its station and a fresh enrollment code."""

    agent_id: str
    villager_id: str
    code: str


def ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """tests/browser.py's served app, on each engine."""
    tmp = tmp_path_factory.mktemp("station")
    db_url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(db_url, migrate=True)
        app = create_app(
            db_url,
            settings=BROWSER_TEST_SETTINGS,
            webhook_settings=WebhookSettings(worker_enabled=False),
        )
        (tmp / "keys").mkdir()
        server = ServerThread(app).start()
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


def new_station(served_app: ServedApp, boss: Client, name: str = "Duka la Wanjiru") -> Station:
    agent = served_app.key("agent")["principal_id"]
    party = {"id": agent, "kind": "agent", "name": name, "currency": KES}
    ok(boss.request("POST", "/v1/parties", json_body=party), 201)
    top_up = {"id": str(uuid.uuid4()), "amount_minor": FLOAT_MINOR, "provider": "KCB"}
    ok(boss.request("POST", f"/v1/agents/{agent}/float-topups", json_body=top_up), 201)
    villager = {
        "id": str(uuid.uuid4()),
        "agent_id": agent,
        "phone": f"+2547{uuid.uuid4().int % 10**8:08d}",
        "name": 'Akinyi "Mama" O\'Neil & co',
        "currency": KES,
        "language": "en",
    }
    ok(boss.request("POST", "/v1/villagers", json_body=villager), 201)
    code = ok(boss.request("POST", "/v1/enrollments", json_body={"principal_id": agent}), 201)
    return Station(agent, villager["id"], code["code"])


def shot(page: Page, tmp_path: Path, screen: str) -> None:
    """A screenshot in the test's folder, copied to ``$VLEDGER_SCREENS_DIR`` if set."""
    path = tmp_path / f"station-{screen}.png"
    page.screenshot(path=str(path), full_page=True)
    keep_for_readme(path)


def keep_for_readme(path: Path) -> None:
    """Copy a screenshot to ``$VLEDGER_SCREENS_DIR`` when that is set (``make screens``);
    otherwise it stays in the test's folder and the git tree is left alone."""
    if folder := os.environ.get(SCREENS_ENV):
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / path.name)


def open_app(page: Page, served_app: ServedApp) -> None:
    page.set_viewport_size(PHONE_SIZE)
    answer = page.goto(served_app.url(STATION_PATH + "/"))
    assert answer is not None and answer.status == 200


def ready(page: Page, screen: str) -> None:
    expect(page.locator(f'main[data-ready="{screen}"]')).to_be_attached()


def enroll(page: Page, served_app: ServedApp, station: Station, tmp_path: Path | None) -> None:
    open_app(page, served_app)
    ready(page, "enroll")
    page.fill("#code", station.code)
    if tmp_path is not None:
        shot(page, tmp_path, "enroll")
    page.click("#enroll")
    ready(page, "home")


def float_of(boss: Client, agent_id: str) -> dict[str, Any]:
    return ok(boss.request("GET", f"/v1/agents/{agent_id}/float"))


def test_enroll_home_cash_in_reload_and_offline(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    tmp_path: Path,
    offsite_requests: list[str],
    page_errors: list[str],
) -> None:
    dialogs: list[str] = []

    def dialog(opened: Dialog) -> None:
        dialogs.append(opened.message)
        opened.dismiss()

    page.on("dialog", dialog)
    station = new_station(served_app, boss, name=MARKUP)
    enroll(page, served_app, station, tmp_path)
    expect(page.locator("#float-available")).to_have_text("KES 1,000.00")
    expect(page.locator("#float-held")).to_have_text("KES 0.00")
    assert page.locator("#stale").count() == 0
    # the station's name is markup, shown as the characters it is
    expect(page.locator("#station-name")).to_have_text(MARKUP)
    assert page.locator("img").count() == 0
    shot(page, tmp_path, "home")

    page.click('[data-screen="cash-in"]')
    ready(page, "cash-in")
    page.fill("#villager", station.villager_id)
    page.fill("#amount", "250.5")
    page.click("#check")
    expect(page.locator("#confirm-text")).to_have_text(
        'Cash in KES 250.50 for Akinyi "Mama" O\'Neil & co?'
    )
    page.click("#confirm")
    expect(page.locator("#cash-in-done")).to_contain_text("Paid KES 250.50 into the wallet of")
    after = float_of(boss, station.agent_id)
    expect(page.locator("#float-after")).to_have_text(format_money(after["available_minor"], KES))
    assert after["available_minor"] == FLOAT_MINOR - 25_050
    shot(page, tmp_path, "cash-in")
    cash_ins = ok(boss.request("GET", f"/v1/agents/{station.agent_id}/cash-ins"))["data"]
    assert [(c["villager_id"], c["amount_minor"]) for c in cash_ins] == [
        (station.villager_id, 25_050)
    ]
    wallet = ok(boss.request("GET", f"/v1/villagers/{station.villager_id}"))["wallet_id"]
    balance = ok(boss.request("GET", f"/v1/accounts/{wallet}/balance"))
    assert balance["balance_posted"] == 25_050 - cash_ins[0]["fee_minor"]

    # a reload keeps the enrollment (the key is in IndexedDB) and the screen
    page.reload()
    ready(page, "cash-in")
    page.click('[data-screen="home"]')
    ready(page, "home")
    expect(page.locator("#float-available")).to_have_text(
        format_money(after["available_minor"], KES)
    )
    assert dialogs == [] and offsite_requests == [] and page_errors == []

    opens_offline(page, format_money(after["available_minor"], KES))


def opens_offline(page: Page, float_text: str) -> None:
    """After one visit the shell opens with the network cut: every request aborted (the
    service worker's too) and the context offline; the float is the last answer kept."""
    assert page.evaluate(CONTROLLED) is True, "no service worker controls the page"
    cut: list[str] = []

    def abort(route: Route) -> None:
        cut.append(route.request.url)
        route.abort("internetdisconnected")

    page.context.route("**/*", abort)
    page.context.set_offline(True)
    page.reload()
    expect(page.locator("#title")).to_have_text("Village Ledger station")
    ready(page, "home")
    expect(page.locator("#float-available")).to_have_text(float_text)
    expect(page.locator("#stale")).to_contain_text("No network: these are the last figures")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    assert all("/station/" not in url for url in cut), cut
    page.context.set_offline(False)


def test_swahili_switch_and_the_choice_is_kept(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, new_station(served_app, boss), None)
    expect(page.locator('[data-screen="home"]')).to_have_text("Home")
    page.click('[data-language="sw"]')
    expect(page.locator("#title")).to_have_text("Kituo cha Village Ledger")
    expect(page.locator('[data-screen="home"]')).to_have_text("Mwanzo")
    expect(page.locator('[data-screen="cash-in"]')).to_have_text("Weka pesa")
    expect(page.locator("#float-available")).to_have_text("KES 1,000.00")
    assert page.evaluate("document.documentElement.lang") == "sw"
    shot(page, tmp_path, "home-sw")
    page.reload()
    expect(page.locator("#title")).to_have_text("Kituo cha Village Ledger")
    page.click('[data-language="en"]')
    expect(page.locator("#title")).to_have_text("Village Ledger station")
    assert page_errors == []


def test_another_agents_villager_and_bad_amounts_are_refused_and_pay_nothing(
    page: Page, served_app: ServedApp, boss: Client
) -> None:
    mine, theirs = new_station(served_app, boss), new_station(served_app, boss)
    enroll(page, served_app, mine, None)
    page.click('[data-screen="cash-in"]')
    ready(page, "cash-in")
    for villager, amount, said in [
        (theirs.villager_id, "10", "No villager with that id at this station."),
        (mine.villager_id, "10.001", "Type an amount like 1,250 or 1250.50."),
        (mine.villager_id, "0", "Type an amount like 1,250 or 1250.50."),
        (mine.villager_id, "1e3", "Type an amount like 1,250 or 1250.50."),
        (MARKUP, "10", "That is not a villager id."),
    ]:
        page.fill("#villager", villager)
        page.fill("#amount", amount)
        page.click("#check")
        expect(page.locator("#cash-in-outcome")).to_have_text(said)
    # oversized input is cut by the fields' limits
    page.fill("#amount", "9" * 500)
    assert len(page.input_value("#amount")) == 20
    assert page.locator("img").count() == 0
    for station in (mine, theirs):
        cash_ins = ok(boss.request("GET", f"/v1/agents/{station.agent_id}/cash-ins"))["data"]
        assert cash_ins == []
        assert float_of(boss, station.agent_id)["available_minor"] == FLOAT_MINOR


def test_a_wrong_code_says_so_and_enrolls_nothing(page: Page, served_app: ServedApp) -> None:
    open_app(page, served_app)
    ready(page, "enroll")
    page.fill("#code", MARKUP)
    page.click("#enroll")
    expect(page.locator("#outcome")).to_have_text(
        "That code was not accepted. Check it, or ask the back office for a new one."
    )
    page.reload()
    ready(page, "enroll")
    assert page.locator("img").count() == 0
    page.fill("#code", "A" * 5_000)
    assert len(page.input_value("#code")) == 64


def test_a_browser_without_ed25519_gets_a_clear_page(page: Page, served_app: ServedApp) -> None:
    page.add_init_script(
        """(() => {
          const original = crypto.subtle.generateKey.bind(crypto.subtle);
          crypto.subtle.generateKey = (algorithm, ...rest) =>
            (algorithm && algorithm.name === "Ed25519")
              ? Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError"))
              : original(algorithm, ...rest);
        })()"""
    )
    open_app(page, served_app)
    ready(page, "enroll")
    expect(page.locator("#unsupported")).to_contain_text("Chromium 137 or newer")
    assert page.locator("#code").count() == 0


def test_money_in_the_browser_is_formatted_as_the_server_does(
    page: Page, served_app: ServedApp
) -> None:
    open_app(page, served_app)
    ready(page, "enroll")
    cases = [
        (0, "KES"),
        (5, "KES"),
        (125_000, "KES"),
        (-125_000, "KES"),
        (12_500, "UGX"),
        (1_234_567, "BHD"),
        (2**53 - 1, "KES"),
        (2**63 - 1, "TZS"),
    ]
    shown = page.evaluate(
        """async (cases) => {
          const money = await import("/web/shared/money.js");
          await money.loadCurrencies();
          return cases.map(([n, c]) => money.formatMoney(n, c));
        }""",
        [[str(n), c] for n, c in cases],
    )
    assert shown == [format_money(n, c) for n, c in cases]
    parsed = page.evaluate(
        """async () => {
          const money = await import("/web/shared/money.js");
          await money.loadCurrencies();
          return ["1,250.50", "1250", "0.01", "12", "1.5", "-1", "1.234", "", "abc"].map(
            (t, i) => { const r = money.parseAmount(t, i === 4 ? "UGX" : "KES");
                        return r === null ? null : r.toString(); });
        }"""
    )
    assert parsed == ["125050", "125000", "1", "1200", None, None, None, None, None]
    refused = page.evaluate(
        """async () => {
          const money = await import("/web/shared/money.js");
          await money.loadCurrencies();
          return [2 ** 53, 2 ** 60, 1.5, NaN, "1e3", 5].map((n) => {
            try { return money.formatMoney(n, "KES"); } catch (e) { return e.name; } });
        }"""
    )
    assert refused == ["RangeError"] * 5 + ["KES 0.05"]  # never a rounded amount


def test_files_are_served_with_a_strict_policy_and_no_cookie(served_app: ServedApp) -> None:
    paths = [f"{STATION_PATH}/{name}" for name in (*FILES, "")]
    paths += ["/web/i18n/station/sw.json", "/web/shared/currencies.json", "/web/shared/i18n.js"]
    for path in paths:
        answer = httpx.get(served_app.url(path))
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe" not in policy and "http" not in policy
        assert "set-cookie" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
    worker = httpx.get(served_app.url(f"{STATION_PATH}/sw.js")).text
    assert "__SHELL_VERSION__" not in worker and "station-shell-" in worker
    for name in ("station.py", "..%2Fstation.py", "i18n/sw.json", "currencies.json", "x.js",
                 "money.js", "dom.js", "x" * 5000):  # fmt: skip
        assert httpx.get(served_app.url(f"{STATION_PATH}/{name}")).status_code == 404, name
    moved = httpx.get(served_app.url(STATION_PATH))
    assert moved.status_code == 308 and moved.headers["location"] == STATION_PATH + "/"


IDENTITY_KEY = """async () => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  return (await loadIdentity()).keyId;
}"""


def test_a_revoked_device_is_refused_and_the_app_says_so(
    page: Page, served_app: ServedApp, boss: Client
) -> None:
    enroll(page, served_app, new_station(served_app, boss), None)
    expect(page.locator("#float-available")).to_have_text("KES 1,000.00")
    key_id = page.evaluate(IDENTITY_KEY)
    ok(boss.request("POST", f"/v1/keys/{key_id}/revoke"))
    page.reload()
    ready(page, "home")
    expect(page.locator("main .error")).to_have_text(
        "This phone is no longer allowed (its key was revoked or is unknown)."
        " Ask the back office for a new enrollment code."
    )
    assert page.locator("#float-available").count() == 0


def test_home_warns_of_low_float_only_below_the_threshold(
    page: Page, served_app: ServedApp, boss: Client, tmp_path: Path
) -> None:
    station = new_station(served_app, boss)
    path = f"/v1/agents/{station.agent_id}/float-threshold"
    ok(boss.request("POST", path, json_body={"threshold_minor": FLOAT_MINOR}))
    enroll(page, served_app, station, None)
    expect(page.locator("#float-threshold")).to_have_text("KES 1,000.00")
    assert page.locator("#low-float").count() == 0  # available == threshold: not below
    ok(boss.request("POST", path, json_body={"threshold_minor": FLOAT_MINOR + 1}))
    page.reload()
    ready(page, "home")
    expect(page.locator("#low-float")).to_have_text(
        "Float is low: ask for a top-up before villagers need cash."
    )
    shot(page, tmp_path, "home-low-float")


def test_no_module_writes_markup_or_evaluates_text() -> None:
    """Text reaches the page only through textContent (dom.js): no module of the app
    writes HTML from strings or evaluates text as code."""
    sinks = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("]
    sinks += ["new Function", 'setTimeout("', "srcdoc"]
    found = []
    for folder, listed in (("station", FILES), ("shared", SHARED_FILES)):
        files = sorted((ROOT / "api" / "web" / folder).iterdir())
        assert [f.name for f in files] == sorted(listed)
        found += [(f.name, s) for f in files for s in sinks if s in f.read_text()]
    assert found == []


def test_screenshots_stay_in_the_tests_folder_unless_asked_for(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page.set_content("<p>probe</p>")
    asked = tmp_path / "asked"
    monkeypatch.delenv(SCREENS_ENV, raising=False)
    shot(page, tmp_path, "probe")
    taken = tmp_path / "station-probe.png"
    assert taken.stat().st_size > 0 and not asked.exists()
    monkeypatch.setenv(SCREENS_ENV, str(asked))
    shot(page, tmp_path, "probe")
    assert (asked / taken.name).read_bytes() == taken.read_bytes()
