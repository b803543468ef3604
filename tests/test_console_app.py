"""The back office console (``/console/``) in real Chromium, served on each engine (SQLite
and PostgreSQL):
an auditor enrolls with a code an operator issued through the API; the overview shows the
trial balance as money, the integrity status and the last sealed checkpoint; the runs
list shows runs made through the API, pages with the cursor and filters by job; a run
page shows its breaks as money; a tampered run file shows the 409 in words; an auditor
has no "start a job" form, an operator starts one; markup in a run's scope and breaks is
text; the files are served with a strict CSP and no cookies. Screenshots of each page go
to the test's tmp folder, one per page; copied to ``$VLEDGER_SCREENS_DIR/console-*.png`` only
when that is set (``make screens``: ``docs/screens``)."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from api.app import create_app
from api.client import Client
from api.local_server import ServerThread
from api.web.console import CONSOLE_CSP, FILES
from ledger import open_ledger
from ledger.core.store import to_us
from ledger.flows import enrollment, parties, suspense
from ledger.flows.parties import Kind
from ledger.money import format_money
from reconciliation import report
from reconciliation.runs import SOURCE_REPLICA, Findings, RunReads, record, write_files
from reconciliation.seal import seal_pending
from reconciliation.service_key import load_service_key
from tests.browser import BROWSER_TEST_SETTINGS, ServedApp
from tests.conftest import drop_pg_schema
from tests.test_api_harness import fresh_database
from tests.test_station_app import keep_for_readme
from webhooks import WebhookSettings

ROOT = Path(__file__).resolve().parent.parent
XSS = '<img src=x onerror="window.__xss=1">'
DAY = date(2026, 6, 1)
REPLICA_READS = RunReads(SOURCE_REPLICA, read_lsn="0/3000148", close_lsn="0/30000D8")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedApp]:
    """The browser tests' app (tests/browser.py) on each engine, with its reports and
    service key in tmp."""
    tmp = tmp_path_factory.mktemp("console")
    db_url, schema = fresh_database(request.param, tmp)
    led = open_ledger(db_url, migrate=True)
    settings = dataclasses.replace(
        BROWSER_TEST_SETTINGS,
        reports_dir=str(tmp / "reports"),
        service_key_path=str(tmp / "service-key.pem"),
    )
    app = create_app(
        db_url, settings=settings, webhook_settings=WebhookSettings(worker_enabled=False)
    )
    key_dir = tmp / "keys"
    key_dir.mkdir()
    server = ServerThread(app).start()
    FOLDERS[server.base_url] = tmp
    try:
        yield ServedApp(server.base_url, db_url, led, key_dir)
    finally:
        server.stop()
        led.close()
        if schema is not None:
            drop_pg_schema(schema)


FOLDERS: dict[str, Path] = {}
"""Each served app's temporary folder (its reports and service key), by base URL."""


def folder_of(served_app: ServedApp) -> Path:
    return FOLDERS[served_app.base_url]


def client(served_app: ServedApp, role: str) -> Client:
    made = served_app.key(role)
    return Client.from_key_file(served_app.base_url, made["key_id"], made["path"])


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def enroll(page: Page, served_app: ServedApp, role: str, shot: Path | None = None) -> str:
    """Enroll this page's browser as a new ``role`` principal with a code issued by an
    operator over the API (for an operator: at setup, by the command line's flow call; the
    API refuses it); the page then shows the overview. The principal's id."""
    principal = served_app.key(role)["principal_id"]
    if role == "operator":  # an operator's code comes from the command line's flow call
        at_setup = uuid.UUID(principal)
        code = enrollment.issue(served_app.ledger, principal_id=at_setup, issued_by=None).code
    else:
        with client(served_app, "operator") as boss:
            issued = boss.request("POST", "/v1/enrollments", json_body={"principal_id": principal})
        code = ok(issued, 201)["code"]
    page.goto(served_app.url("/console/"))
    expect(page.locator("h1")).to_have_text("Enroll this browser")
    if shot is not None:
        page.locator("#code").fill(code)
        save(page, shot, "enroll")
    page.locator("#code").fill(code)
    page.locator("#enroll").click()
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#who")).to_contain_text(f"{role} {principal}")
    return principal


def save(page: Page, folder: Path, name: str) -> None:
    """A screenshot in the test's folder (copied for the README only when asked)."""
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep_for_readme(path)


def some_activity(served_app: ServedApp, amount: int) -> None:
    """Two accounts, a transfer of ``amount`` KES minor units, the journal sealed, and an
    integrity run made through the API by an operator."""
    with client(served_app, "operator") as boss:
        bank = boss.create_account(id=str(uuid.uuid4()), currency="KES", code=999)["id"]
        shop = boss.create_account(id=str(uuid.uuid4()), currency="KES", code=101)["id"]
        transfer = {"id": str(uuid.uuid4()), "debit_account_id": bank, "currency": "KES",
                    "credit_account_id": shop, "amount": amount, "code": 1}  # fmt: skip
        [moved] = boss.create_transfers([transfer])
        assert moved["status"] == "created", moved
        key = load_service_key(served_app.db_url, folder_of(served_app) / "service-key.pem")
        assert seal_pending(served_app.ledger, key) >= 1
        body = {"job": "integrity", "business_date": DAY.isoformat()}
        made = ok(boss.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
        assert made["status"] == "ok"


def recorded_breaks(served_app: ServedApp) -> str:
    """A statement run with two breaks (amounts in KES minor units) and markup in its
    scope and a note, recorded (as having read a streaming replica at :data:`REPLICA_READS`)
    and written as a job does; its id."""
    findings = Findings(
        job="statement",
        business_date=DAY,
        scope=XSS,
        rule_version=1,
        input_sha256="0" * 64,
        checked=5,
        detail_header=("kind", "currency", "object_id", "expected", "actual", "note"),
        detail=[
            ("unmatched", "KES", "ref-1", 100_000, 0, XSS),
            ("amount", "KES", "ref-2", 250_050, 250_000, "short by fifty cents"),
        ],
        summary={"job": "statement", "breaks_by_kind": {"unmatched": 1, "amount": 1}},
    )
    run = record(
        served_app.ledger,
        findings,
        started_at_us=to_us(served_app.ledger.now()),
        reads=REPLICA_READS,
    )
    out = folder_of(served_app) / "reports"
    write_files(out, run, findings, report.render(run, findings, tables=[]))
    return str(run.id)


def raw_minor(minor: int) -> re.Pattern[str]:
    """The figure in minor units as a page would wrongly show it ('7500' for KES 75.00).

    Not matched inside an id or a hash (a hex digit or a hyphen beside it), which may hold
    those digits by chance."""
    return re.compile(rf"(?<![0-9A-Fa-f-]){minor}(?![0-9A-Fa-f-])")


def no_script_ran(page: Page) -> None:
    assert page.evaluate("() => window.__xss === undefined")
    assert page.locator("main img").count() == 0


def test_an_auditor_enrolls_and_the_overview_shows_money_and_the_seal(
    page: Page,
    served_app: ServedApp,
    tmp_path: Path,
    offsite_requests: list[str],
    page_errors: list[str],
) -> None:
    some_activity(served_app, 12_345)
    suspense.park(served_app.ledger, suspense_id=uuid.uuid4(), currency="KES", provider="MPESA",
                  provider_reference=XSS[:40], amount_minor=30_000)  # fmt: skip
    today = served_app.ledger.now().date().isoformat()
    with client(served_app, "operator") as boss:
        body = {"job": "ageing", "business_date": today}
        ok(boss.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    enroll(page, served_app, "auditor", shot=tmp_path)
    integrity = page.locator("#integrity")
    expect(integrity).to_contain_text("balanced, no breaks")
    expect(integrity).to_contain_text(format_money(12_345, "KES"))  # KES 123.45
    expect(integrity.locator("table")).not_to_contain_text(raw_minor(12_345))
    assert integrity.locator("time").first.get_attribute("title", timeout=1000).endswith(" UTC")  # type: ignore[union-attr]
    expect(page.locator("#checkpoint")).to_contain_text("Block")
    expect(page.locator("#checkpoint dd").first).to_have_text("1")
    expect(page.locator("#recent")).to_contain_text("integrity")
    ageing = page.locator("#ageing")
    # the parked item is overdue (a suspense item is a break), its clearing leg in transit
    overdue = ageing.locator("tbody tr", has_text="overdue (breaks)")
    expect(overdue).to_have_text(re.compile(r"overdue \(breaks\)\s*1\s*KES 300\.00\s*0"))
    expect(ageing.locator("tbody tr").first).to_contain_text("0-1")
    expect(ageing).not_to_contain_text(raw_minor(30_000))
    expect(page.locator("#float-alarms")).to_contain_text("Float alarms")
    save(page, tmp_path, "overview")

    # the key stays in this browser: a reload shows the overview again, no enrollment
    page.reload()
    expect(page.locator("h1")).to_have_text("Overview")
    assert offsite_requests == []
    assert page_errors == []


def test_runs_list_pages_filters_and_a_run_shows_its_breaks_as_text_and_money(
    page: Page,
    served_app: ServedApp,
    tmp_path: Path,
    offsite_requests: list[str],
    page_errors: list[str],
) -> None:
    some_activity(served_app, 500)
    with client(served_app, "operator") as boss:
        for day in ("2026-05-30", "2026-05-31"):
            body = {"job": "ageing", "business_date": day}
            ok(boss.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    run_id = recorded_breaks(served_app)
    enroll(page, served_app, "auditor")
    page.goto(served_app.url("/console/#/runs"))
    expect(page.locator("h1")).to_have_text("Reconciliation runs")
    expect(page.locator("tbody tr").first).to_contain_text("statement")
    expect(page.locator("tbody")).to_contain_text("integrity")
    expect(page.locator(".scope").first).to_have_text(XSS)
    no_script_ran(page)
    save(page, tmp_path, "runs")

    # the filter asks the API for one job
    page.locator("#job-filter").select_option("integrity")
    expect(page).to_have_url(served_app.url("/console/#/runs?job=integrity"))
    expect(page.locator("tbody")).not_to_contain_text("statement")
    expect(page.locator("tbody tr").first).to_contain_text("integrity")

    # pages of two with the cursor: the next page starts after the last run shown
    page.goto(served_app.url("/console/#/runs?limit=2"))
    expect(page.locator("tbody tr")).to_have_count(2)
    first = page.locator("tbody tr").all_inner_texts()
    page.locator("#next-page").click()
    expect(page.locator("#first-page")).to_be_visible()
    second = page.locator("tbody tr").all_inner_texts()
    assert second and not set(first) & set(second)

    page.goto(served_app.url(f"/console/#/runs/{run_id}"))
    expect(page.locator("h1")).to_have_text(f"Run statement for {DAY.isoformat()}")
    breaks = page.locator("#breaks")
    expect(breaks.locator("tbody tr")).to_have_count(2)
    expect(breaks).to_contain_text("KES 1,000.00")
    expect(breaks).to_contain_text("KES 2,500.50")
    expect(breaks).not_to_contain_text("250050")
    expect(breaks.locator("tbody tr").first).to_contain_text(XSS)
    expect(page.locator("#summary")).to_contain_text("unmatched")
    # where the run read: the replica, up to which position, past which close position
    facts = page.locator("dl.facts").first
    expect(facts.locator(".read-source")).to_have_text("a streaming replica")
    expect(facts.locator("dd", has_text="0/3000148")).to_have_count(1)
    expect(facts.locator("dd", has_text="0/30000D8")).to_have_count(1)
    no_script_ran(page)
    save(page, tmp_path, "run")

    # a run through the API read the primary (no replica here)
    with client(served_app, "auditor") as auditor:
        listed = auditor.request("GET", "/v1/reconciliation/runs", params={"job": "ageing"})
        ageing_id = ok(listed)["data"][0]["id"]
    page.goto(served_app.url(f"/console/#/runs/{ageing_id}"))
    facts = page.locator("dl.facts").first
    expect(facts.locator(".read-source")).to_have_text("the primary")
    expect(facts).to_contain_text(re.compile(r"Close LSN\s*none"))
    assert offsite_requests == []
    assert page_errors == []


def test_a_tampered_run_file_shows_the_409_in_words_and_a_sound_one_downloads(
    page: Page, served_app: ServedApp, tmp_path: Path, offsite_requests: list[str]
) -> None:
    some_activity(served_app, 700)
    with client(served_app, "operator") as boss:
        body = {"job": "pack", "business_date": DAY.isoformat()}
        made = ok(boss.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    assert "pack/transfers.csv" in made["files"]
    folder = folder_of(served_app) / "reports" / "pack" / DAY.isoformat() / made["id"]
    (folder / "pack" / "transfers.csv").write_bytes(b"id\nforged\n")

    enroll(page, served_app, "auditor")
    page.goto(served_app.url(f"/console/#/runs/{made['id']}"))
    files = page.locator("#files")
    with page.expect_download() as got:
        files.locator('button[data-file="summary.json"]').click()
    assert json.loads(Path(got.value.path()).read_text())["job"] == "pack"
    expect(files.locator('li:has(button[data-file="summary.json"])')).to_contain_text("Downloaded.")

    files.locator('button[data-file="pack/transfers.csv"]').click()
    changed = files.locator('li:has(button[data-file="pack/transfers.csv"]) .problem')
    expect(changed).to_contain_text("changed after the run recorded it")
    expect(changed).to_contain_text("409 run_file_changed")
    save(page, tmp_path, "run-file-changed")
    assert offsite_requests == []


FORCED = """async (body) => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const { signedFetch } = await import("/web/shared/api.js");
  const answer = await signedFetch(await loadIdentity(), "POST", "/v1/enrollments",
                                   { json: body, raw: true });
  return { status: answer.status, code: (await answer.json()).code };
}"""


def test_an_auditor_has_no_start_form_and_a_forced_write_is_refused(
    page: Page, served_app: ServedApp, page_errors: list[str]
) -> None:
    principal = enroll(page, served_app, "auditor")
    page.goto(served_app.url("/console/#/runs"))
    expect(page.locator("h1")).to_have_text("Reconciliation runs")
    expect(page.locator("main")).to_contain_text("Auditors read; operators start jobs.")
    expect(page.locator("#start-form")).to_have_count(0)
    # an operator's write forced with the auditor's browser key is refused
    forced = page.evaluate(FORCED, {"principal_id": principal})
    assert forced == {"status": 403, "code": "forbidden"}
    assert [e for e in page_errors if "status of 403" not in e] == []  # the refusal's own log


def test_an_operator_starts_a_job_from_the_runs_page(
    page: Page, served_app: ServedApp, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "operator")
    page.goto(served_app.url("/console/#/runs"))
    page.locator("#start-job").select_option("ageing")
    page.locator("#start-date").fill("2026-06-02")
    page.locator("#start").click()
    expect(page.locator("h1")).to_have_text("Run ageing for 2026-06-02")
    run_id = page.url.rsplit("/", 1)[1]
    with client(served_app, "auditor") as auditor:
        got = ok(auditor.request("GET", f"/v1/reconciliation/runs/{run_id}"))
    assert (got["job"], got["business_date"]) == ("ageing", "2026-06-02")
    page.goto(served_app.url("/console/#/runs"))
    expect(page.locator("#start-form")).to_be_visible()
    save(page, tmp_path, "runs-operator")
    assert page_errors == []


NO_ED25519 = """() => {
  const original = crypto.subtle.generateKey.bind(crypto.subtle);
  crypto.subtle.generateKey = (algorithm, ...rest) =>
    (algorithm && algorithm.name === "Ed25519")
      ? Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError"))
      : original(algorithm, ...rest);
}"""


def test_without_webcrypto_ed25519_the_page_says_so(page: Page, served_app: ServedApp) -> None:
    page.add_init_script(f"({NO_ED25519})()")
    page.goto(served_app.url("/console/"))
    expect(page.locator("h1")).to_have_text("This browser cannot hold a back office key")
    expect(page.locator("#unsupported")).to_contain_text("Ed25519")
    expect(page.locator("#code")).to_have_count(0)


def test_a_bad_code_is_refused_in_words_as_text(
    page: Page, served_app: ServedApp, page_errors: list[str]
) -> None:
    page.goto(served_app.url("/console/"))
    page.locator("#code").fill(XSS[:60])
    page.locator("#enroll").click()
    refused = page.locator("#outcome .problem")
    expect(refused).to_contain_text("Refused (")
    expect(page.locator("h1")).to_have_text("Enroll this browser")
    no_script_ran(page)
    assert page.evaluate("async () => (await import('/web/shared/keys.js')).loadIdentity()") is None
    del page_errors  # the refused redeem's 4xx is logged by the browser as a console error


MONEY = """async (cases) => {
  const { loadCurrencies, money } = await import("/web/shared/money.js");
  await loadCurrencies();
  return cases.map(([minor, currency]) => money(BigInt(minor), currency));
}"""


def test_money_js_writes_what_ledger_money_writes(page: Page, served_app: ServedApp) -> None:
    cases = [(125_000, "KES"), (-125_000, "KES"), (0, "KES"), (5, "BHD"), (-5, "BHD"),
             (12_500, "UGX"), (1, "CLF"), (2**63 - 1, "KES"), (-(2**63), "JPY")]  # fmt: skip
    page.goto(served_app.url("/web/shared/money.js"))
    shown = page.evaluate(MONEY, [[str(n), c] for n, c in cases])
    assert shown == [format_money(n, c) for n, c in cases]
    failed = page.evaluate(
        """async () => { const m = await import("/web/shared/money.js");
           try { m.money(1, "XYZ"); return "shown"; } catch (e) { return e.name; } }"""
    )
    assert failed == "RangeError"
    unsafe = page.evaluate(
        "async () => (await import('/web/shared/money.js')).moneyOrNote(2 ** 60, 'KES')"
    )
    assert unsafe.startswith("(not an exact integer")


def test_console_files_have_a_strict_csp_no_cookies_and_only_listed_names(
    served_app: ServedApp,
) -> None:
    for name in ["", *FILES]:
        answer = httpx.get(served_app.url(f"/console/{name}"))
        assert answer.status_code == 200, name
        assert answer.headers["content-security-policy"] == CONSOLE_CSP
        assert "'unsafe-inline'" not in CONSOLE_CSP and "script-src 'self'" in CONSOLE_CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "set-cookie" not in answer.headers
    assert httpx.get(served_app.url("/web/shared/currencies.json")).json()["KES"] == 2
    words = httpx.get(served_app.url("/web/i18n/console/sw.json"))
    assert words.json()["Overview"] == "Muhtasari" and "set-cookie" not in words.headers
    assert words.headers["x-content-type-options"] == "nosniff"
    moved = httpx.get(served_app.url("/console"))
    assert (moved.status_code, moved.headers["location"]) == (308, "/console/")
    for name in ("station.js", "..%2Fconsole.py", "%2e%2e/app.py", "i18n/fr.json", "x" * 5000,
                 "i18n/..%2F..%2Fconsole.json", "app.js%00", "i18n/sw.json", "currencies.json",
                 "money.js", "i18n.js"):  # fmt: skip
        assert httpx.get(served_app.url(f"/console/{name}")).status_code == 404, name


SWAHILI = "() => Object.defineProperty(navigator, 'languages', { get: () => ['sw-KE', 'sw'] })"


def test_a_swahili_browser_reads_the_console_in_swahili(page: Page, served_app: ServedApp) -> None:
    page.add_init_script(f"({SWAHILI})()")
    page.goto(served_app.url("/console/"))
    expect(page.locator("h1")).to_have_text("Sajili kivinjari hiki")
    expect(page.locator("#enroll")).to_have_text("Sajili kivinjari hiki")
    assert page.evaluate("() => document.documentElement.lang") == "sw"


def test_an_agent_key_is_not_let_in_and_a_bad_run_id_is_refused_in_words(
    page: Page, served_app: ServedApp
) -> None:
    agent = served_app.key("agent")["principal_id"]
    parties.onboard(
        served_app.ledger, party_id=uuid.UUID(agent), kind=Kind.AGENT, name=XSS, currency="KES"
    )
    with client(served_app, "operator") as boss:
        issued = boss.request("POST", "/v1/enrollments", json_body={"principal_id": agent})
    page.goto(served_app.url("/console/"))
    page.locator("#code").fill(ok(issued, 201)["code"])
    page.locator("#enroll").click()
    expect(page.locator("h1")).to_have_text("This key is not for the back office")
    expect(page.locator("main .problem")).to_contain_text("a key with the role agent")
    page.goto(served_app.url("/console/#/runs"))
    expect(page.locator("h1")).to_have_text("This key is not for the back office")
    no_script_ran(page)
    page.locator("#forget-wrong").click()
    expect(page.locator("h1")).to_have_text("Enroll this browser")

    enroll(page, served_app, "auditor")
    for bad in ("not-a-run", "x" * 3000):
        page.goto(served_app.url(f"/console/#/runs/{bad}"))
        expect(page.locator("main .problem")).to_contain_text("Refused (4")
