"""After ``vledger demo``, every list page of the console has something on it.

The module's service runs on a fresh SQLite database the demo told its day on (over the
signed API, :func:`vledger.demo_http.run_demo_http`, as ``make demo`` does); an auditor
enrolls this browser and opens each page as a newcomer would, in its default view: the
overview's float alarms, proposals waiting, cash-count variances, the suspense queue,
reconciliation runs, webhook endpoints and their deliveries, fee schedules, commission
payouts. Each must show at least one row (a page with nothing would say so in words:
"No proposals here.", "No runs."...). Screenshots of each (``console-demo-*.png``) are
kept for the README when ``$VLEDGER_SCREENS_DIR`` is set.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from api.app import create_app
from api.local_server import ServerThread
from ledger import open_ledger
from tests.browser import BROWSER_TEST_SETTINGS, ServedApp
from tests.test_console_app import enroll, save
from vledger.demo import DEMO_WEBHOOKS, WEBHOOK_URL
from vledger.demo_http import run_demo_http


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The service on a database the demo ran on."""
    tmp = tmp_path_factory.mktemp("demo")
    db_url = f"sqlite:///{tmp}/village.db"
    told = io.StringIO()
    assert run_demo_http(db_url, out=told) == 0, told.getvalue()
    assert told.getvalue().rstrip().endswith("integrity: ok")
    led = open_ledger(db_url)
    app = create_app(db_url, settings=BROWSER_TEST_SETTINGS, webhook_settings=DEMO_WEBHOOKS)
    key_dir = tmp / "keys"
    key_dir.mkdir()
    server = ServerThread(app).start()
    try:
        yield ServedApp(server.base_url, db_url, led, key_dir)
    finally:
        server.stop()
        led.close()


def opened(page: Page, served_app: ServedApp, hash_: str, heading: str) -> None:
    page.goto(served_app.url(f"/console/{hash_}"))
    expect(page.locator("h1")).to_have_text(heading)


def some(rows: Locator) -> None:
    """At least one row (the first is visible)."""
    expect(rows.first).to_be_visible()


def test_every_console_list_page_has_data_after_the_demo(
    page: Page, served_app: ServedApp, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    alarms = page.locator("#float-alarms tbody tr")
    some(alarms)
    expect(alarms.first).to_contain_text("KES 15,000.00")  # Kamau's threshold
    save(page, tmp_path, "demo-overview")

    opened(page, served_app, "#/proposals", "Proposals")  # waiting: the third return
    waiting = page.locator("section.proposal[data-kind='suspense_return']")
    some(waiting)
    expect(waiting.first).to_contain_text("KES 420.00")
    expect(page.locator("main")).not_to_contain_text("null")
    save(page, tmp_path, "demo-proposals")
    opened(page, served_app, "#/proposals?state=approved", "Proposals")
    for kind in ("suspense_return", "variance_approval", "commission_payout"):
        some(page.locator(f"section.proposal[data-kind='{kind}']"))

    opened(page, served_app, "#/variances", "Cash-count variances")  # proposed: Kamau's
    some(page.locator("#variances tbody tr"))
    expect(page.locator("#variances tbody tr").first).to_contain_text("KES 20.00")
    save(page, tmp_path, "demo-variances")
    opened(page, served_app, "#/suspense", "Suspense queue")  # parked: the third deposit
    some(page.locator("#suspense tbody tr"))
    save(page, tmp_path, "demo-suspense")
    opened(page, served_app, "#/runs", "Reconciliation runs")  # the cash counts' runs
    some(page.locator("a.run-link"))
    expect(page.locator("main table")).to_contain_text("cash-count")
    expect(page.locator("main")).not_to_contain_text("null")
    save(page, tmp_path, "demo-runs")

    opened(page, served_app, "#/webhooks", "Webhook deliveries")
    endpoint = page.locator("tbody tr", has_text=WEBHOOK_URL)
    some(endpoint)
    save(page, tmp_path, "demo-webhooks")
    endpoint.first.locator("a.deliveries-link").click()
    expect(page.locator("h1")).to_have_text(f"Deliveries to {WEBHOOK_URL}")
    some(page.locator("tbody tr", has_text="order."))

    opened(page, served_app, "#/fees", "Fee schedules")
    some(page.locator("#versions tbody tr"))
    save(page, tmp_path, "demo-fees")
    opened(page, served_app, "#/commission", "Commission payouts")
    some(page.locator("#payouts tbody tr"))
    save(page, tmp_path, "demo-commission")
    assert page_errors == []
