"""The back office console's pages (``/console/``) in real Chromium, served on each engine
(SQLite and PostgreSQL), walked the way a person uses them, with data made through the
API and the flows:

- the overview shows settlement windows not yet settled and the float alarms as money;
- proposals: a fee schedule and a correction of a villager's wallet proposed over the API
  by one operator are approved in the browser by a second; the second operator's own
  proposal shows approve disabled with the reason in words (and the API refuses the
  forced approval); a rejection needs a reason; an auditor sees no buttons and the API
  refuses a forced approval;
- search finds a villager by phone and a suspense item by the provider's reference; a
  party's page shows its name (markup) as text; an account's history shows balances
  after each transfer as money; a transfer's page; an order's timeline shows its events;
- fee schedules show the band table as money; webhook deliveries list their state.

A screenshot of every page goes to the test's tmp folder (``console-*.png``; copied to
``$VLEDGER_SCREENS_DIR`` only when that is set, as ``tests/test_console_app.py`` does).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

import webhooks
from api.client import Client
from ledger.flows import agent_float, fees, parties, suspense
from ledger.flows.parties import Role
from ledger.money import format_money
from tests.browser import ServedApp
from tests.consent_helpers import new_phone
from tests.test_console_app import XSS, enroll, no_script_ran, ok, raw_minor, save, served_app
from tests.villager_helpers import active_villager

__all__ = ["served_app"]

KES = "KES"
ORDER_RULES: dict[str, Any] = {
    "bands": [
        {"up_to_minor": 100_000, "fixed_minor": 1_000},
        {"up_to_minor": None, "bps": 150, "min_minor": 2_000, "max_minor": 50_000},
    ],
    "split_bps": {"tax": 1_600, "agent_commission": 2_500},
}
NEXT_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200, "min_minor": 1_500}],
    "split_bps": {"tax": 1_600},
}
FAN_OUT_PASSES = 5
HOOKS = webhooks.WebhookSettings(worker_enabled=False, target_networks_allowed=("127.0.0.0/8",))


@dataclass
class World:
    """What the module's pages show: two operators (maker A over the API; B in the
    browser and over the API), a storefront named with markup, an agent with low float,
    a villager with a wallet, an order paid in cash, a suspense item, a webhook endpoint."""

    maker: Client
    checker_id: str
    checker: Client
    shop_id: str
    agent_id: str
    villager_id: str
    phone: str
    order_id: str
    reference: str
    suspense_id: str
    endpoint_id: str
    variance_id: str = ""


def keyed(served_app: ServedApp, role: str) -> tuple[str, Client]:
    made = served_app.key(role)
    return made["principal_id"], Client.from_key_file(
        served_app.base_url, made["key_id"], made["path"]
    )


def onboard(maker: Client, party_id: str, kind: str, name: str) -> None:
    body = {"id": party_id, "kind": kind, "name": name, "currency": KES}
    ok(maker.request("POST", "/v1/parties", json_body=body), 201)


def money_moves(world: World, agent: Client, shop: Client) -> None:
    """The agent's float topped up (operator), a cash-in to the villager, an order paid in
    cash at the agent."""
    topup = {"id": str(uuid.uuid4()), "amount_minor": 600_000, "provider": "KCB"}
    topped = world.maker.request(
        "POST", f"/v1/agents/{world.agent_id}/float-topups", json_body=topup
    )
    ok(topped, 201)
    cash_in = {"id": str(uuid.uuid4()), "villager_id": world.villager_id, "amount_minor": 125_000}
    ok(agent.request("POST", f"/v1/agents/{world.agent_id}/cash-ins", json_body=cash_in), 201)
    order = {"id": world.order_id, "currency": KES, "amount_minor": 80_000,
             "delivery_method": "agent_delivery", "villager_id": world.villager_id}  # fmt: skip
    ok(shop.request("POST", "/v1/orders", json_body=order), 201)
    paid = agent.request("POST", f"/v1/orders/{world.order_id}/pay", json_body={"source": "cash"})
    assert ok(paid)["state"] == "paid"


def short_count(agent: Client, agent_id: str) -> str:
    """The agent counts one KES 1,000 note, short of what its cash account holds (the
    cash-in's and the order's cash): a proposed variance, its comment markup; its id."""
    body = {"counted_at": datetime.now(UTC).isoformat(), "currency": KES,
            "denominations": {"1000": 1}, "comment": XSS}  # fmt: skip
    made = agent.request("POST", f"/v1/agents/{agent_id}/cash-counts", json_body=body)
    variance_id: str = ok(made, 201)["variance"]["id"]
    return variance_id


def make_world(served_app: ServedApp) -> World:
    led = served_app.ledger
    _maker_id, maker = keyed(served_app, "operator")
    checker_id, checker = keyed(served_app, "operator")
    shop_id, shop = keyed(served_app, "storefront")
    agent_id, agent = keyed(served_app, "agent")
    onboard(maker, shop_id, "storefront", XSS)
    onboard(maker, agent_id, "agent", "Baraka's station")
    phone = new_phone()
    villager = active_villager(led, agent_id=uuid.UUID(agent_id), phone=phone, name="Amina")
    reference = f"MP{uuid.uuid4().hex[:10].upper()}"
    world = World(maker, checker_id, checker, shop_id, agent_id, str(villager.id), phone,
                  str(uuid.uuid4()), reference, str(uuid.uuid4()), "")  # fmt: skip
    fees.publish_schedule(led, product="order", currency=KES, rules=ORDER_RULES,
                          effective_from=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    # the endpoint first: it gets only the events after it
    endpoint, _secret = webhooks.create_endpoint(
        led,
        principal_id=uuid.UUID(shop_id),
        url="http://127.0.0.1:9/hook",
        event_types=["order.*"],
        description=XSS,
        settings=HOOKS,
    )
    money_moves(world, agent, shop)
    world.variance_id = short_count(agent, agent_id)
    agent_float.set_float_threshold(led, agent_id=uuid.UUID(agent_id), threshold_minor=900_000)
    suspense.park(led, suspense_id=uuid.UUID(world.suspense_id), currency=KES, provider="MPESA",
                  provider_reference=world.reference, amount_minor=30_000)  # fmt: skip
    window = {"id": str(uuid.uuid4()), "currency": KES}
    ok(maker.request("POST", "/v1/settlement-windows", json_body=window), 201)
    for _ in range(FAN_OUT_PASSES):  # as the worker would, pass after pass
        webhooks.fan_out(led, now_us=int(datetime.now(UTC).timestamp() * 1e6), settings=HOOKS)
    world.endpoint_id = str(endpoint.id)
    shop.close()
    agent.close()
    return world


@pytest.fixture(scope="module")
def world(served_app: ServedApp) -> Iterator[World]:
    made = make_world(served_app)
    try:
        yield made
    finally:
        made.maker.close()
        made.checker.close()


def propose_fees(client: Client, rules: dict[str, Any]) -> str:
    body = {"product": "order", "currency": KES, "rules": rules}
    made = ok(client.request("POST", "/v1/fee-schedules", json_body=body), 202)
    proposal_id: str = made["proposal"]["id"]
    return proposal_id


def correct_wallet(world: World, amount: int) -> str:
    """Operator A pays the villager's wallet from an account of its own: a party's
    account, so a proposal (202) that another operator approves."""
    bank = world.maker.create_account(id=str(uuid.uuid4()), currency=KES, code=999)["id"]
    wallet = str(parties.account_id(uuid.UUID(world.villager_id), Role.WALLET))
    transfer = {"id": str(uuid.uuid4()), "debit_account_id": bank, "credit_account_id": wallet,
                "amount": amount, "currency": KES, "code": 1}  # fmt: skip
    made = world.maker.request("POST", "/v1/transfers", json_body={"transfers": [transfer]})
    proposal_id: str = ok(made, 202)["proposal"]["id"]
    return proposal_id


def enroll_checker(
    page: Page, served_app: ServedApp, world: World, shot: Path | None = None
) -> None:
    """Enroll this browser as operator B (the principal whose file key ``world.checker``
    holds), with a code from the command line's flow call."""
    from ledger.flows import enrollment

    code = enrollment.issue(served_app.ledger, principal_id=uuid.UUID(world.checker_id),
                            issued_by=None).code  # fmt: skip
    page.goto(served_app.url("/console/"))
    page.locator("#code").fill(code)
    if shot is not None:
        save(page, shot, "pages-enroll")
    page.locator("#enroll").click()
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#who")).to_contain_text(f"operator {world.checker_id}")


def test_the_overview_shows_settlement_windows_and_float_alarms_as_money(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    windows = page.locator("#windows")
    expect(windows.locator("tbody tr").first).to_contain_text("open")
    expect(windows).to_contain_text(KES)
    alarms = page.locator("#float-alarms")
    mine = alarms.locator("tbody tr", has_text=world.agent_id)
    # available: topped up, less the cash-in it paid and the order it paid in cash
    expect(mine).to_contain_text(format_money(600_000 - 125_000 - 80_000, KES))
    expect(mine).to_contain_text(format_money(900_000, KES))  # threshold
    expect(alarms).not_to_contain_text(raw_minor(900_000))
    mine.locator("a").click()
    expect(page.locator("h1")).to_have_text("agent: Baraka's station")
    expect(page.locator("#accounts")).to_contain_text("float")
    save(page, tmp_path, "pages-overview")
    assert page_errors == []


def test_a_second_operator_approves_in_the_browser_and_the_maker_cannot(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    fee_id = propose_fees(world.maker, NEXT_RULES)
    wallet_id = correct_wallet(world, 7_500)
    own_id = propose_fees(world.checker, NEXT_RULES | {"split_bps": {"tax": 1_500}})
    doomed_id = propose_fees(world.maker, NEXT_RULES | {"split_bps": {"tax": 1_300}})
    enroll_checker(page, served_app, world, shot=tmp_path)
    page.locator("#menu a", has_text="Proposals").click()
    expect(page.locator("h1")).to_have_text("Proposals")
    fee_card = page.locator(f"#proposal-{fee_id}")
    expect(fee_card).to_contain_text("fee_schedule proposal")
    expect(fee_card.locator(".payload")).to_contain_text("KES 15.00")  # min_minor 1,500
    expect(fee_card.locator(".payload")).to_contain_text("200 bps")
    wallet_card = page.locator(f"#proposal-{wallet_id}")
    expect(wallet_card.locator(".payload")).to_contain_text("KES 75.00")
    expect(wallet_card.locator(".payload")).not_to_contain_text(raw_minor(7_500))

    # the operator's own proposal: approve disabled, the reason in words
    own = page.locator(f"#proposal-{own_id}")
    expect(own.locator("button.approve")).to_be_disabled()
    expect(own.locator(".refusal")).to_have_text(
        "You made this proposal: another operator must approve it (maker-checker)."
    )
    save(page, tmp_path, "pages-proposals")
    forced = page.evaluate(FORCED_APPROVE, own_id)
    assert forced == {"status": 422, "code": "proposal_maker_cannot_decide"}

    fee_card.locator("button.approve").click()
    approved = page.locator(f"#proposal-{fee_id}")
    expect(approved.locator(".decided")).to_have_text("Approved: applied once.")
    expect(approved).to_contain_text("approved")
    expect(approved.locator("button.approve")).to_have_count(0)
    page.locator(f"#proposal-{wallet_id} button.approve").click()
    expect(page.locator(f"#proposal-{wallet_id} .decided")).to_contain_text("Approved")

    # the maker's own has no reject either; another's needs a reason, then nothing applies
    expect(own.locator("button.reject")).to_have_count(0)
    page.reload()
    doomed = page.locator(f"#proposal-{doomed_id}")
    doomed.locator("button.reject").click()
    assert doomed.locator("input.reason").evaluate("(input) => input.validity.valueMissing")
    doomed.locator("input.reason").fill(f"wrong tax {XSS}")
    doomed.locator("button.reject").click()
    rejected = page.locator(f"#proposal-{doomed_id}")
    expect(rejected.locator(".decided")).to_have_text("Rejected: nothing was applied.")
    expect(rejected).to_contain_text(f"wrong tax {XSS}")
    no_script_ran(page)

    decided = {p: ok(world.maker.request("GET", f"/v1/proposals/{p}"))["state"]
               for p in (fee_id, wallet_id, own_id, doomed_id)}  # fmt: skip
    assert decided == {fee_id: "approved", wallet_id: "approved", own_id: "proposed",
                       doomed_id: "rejected"}  # fmt: skip
    preview = ok(world.maker.request("GET", "/v1/fee-schedules/preview?product=order&currency=KES"))
    assert preview["version"] == 2
    assert [e for e in page_errors if "status of 422" not in e] == []


FORCED_APPROVE = """async (id) => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const { signedFetch } = await import("/web/shared/api.js");
  const answer = await signedFetch(await loadIdentity(), "POST",
    `/v1/proposals/${id}/approve`, { json: {}, raw: true });
  return { status: answer.status, code: (await answer.json()).code };
}"""


def test_an_auditor_sees_no_buttons_and_the_api_refuses_a_forced_approval(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    waiting = propose_fees(world.maker, NEXT_RULES | {"split_bps": {"tax": 1_400}})
    enroll(page, served_app, "auditor")
    page.goto(served_app.url("/console/#/proposals"))
    card = page.locator(f"#proposal-{waiting}")
    expect(card).to_contain_text("fee_schedule proposal")
    expect(card.locator(".auditor-note")).to_have_text("Auditors read; operators decide.")
    expect(page.locator("main button.approve")).to_have_count(0)
    expect(page.locator("main button.reject")).to_have_count(0)
    save(page, tmp_path, "pages-proposals-auditor")
    assert page.evaluate(FORCED_APPROVE, waiting) == {"status": 403, "code": "forbidden"}
    state = ok(world.maker.request("GET", f"/v1/proposals/{waiting}"))["state"]
    assert state == "proposed"
    assert [e for e in page_errors if "status of 403" not in e] == []


def test_search_by_phone_and_reference_and_the_pages_they_open(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    page.locator("#menu a", has_text="Search").click()
    expect(page.locator("h1")).to_have_text("Search")
    page.locator("#q").fill(world.phone)
    page.locator("#search").click()
    hit = page.locator("tbody tr")
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text("phone")
    expect(hit).to_contain_text("Amina")
    save(page, tmp_path, "pages-search")

    # the villager's page: phone, state, her wallet's balance as money
    hit.locator("a").click()
    expect(page.locator("h1")).to_have_text("villager: Amina")
    expect(page.locator("#villager")).to_contain_text(world.phone)
    wallet_row = page.locator("#accounts tbody tr", has_text="wallet")
    wallet = parties.account_id(uuid.UUID(world.villager_id), Role.WALLET)
    [now] = served_app.ledger.lookup_accounts([wallet])  # the cash-in, perhaps a correction
    expect(wallet_row).to_contain_text(format_money(now.credits_posted - now.debits_posted, KES))
    save(page, tmp_path, "pages-party")

    # the wallet's history: each transfer with the balance right after it
    wallet_row.locator("a").click()
    expect(page.locator("h1")).to_contain_text("Account ")
    history = page.locator("#history tbody tr")
    expect(history.first).to_contain_text("credit")
    cells = history.first.locator("td")
    expect(cells.nth(4)).to_have_text(format_money(125_000, KES))  # the cash-in
    expect(cells.nth(5)).to_have_text(format_money(125_000, KES))  # the balance after it
    expect(page.locator("#history")).not_to_contain_text("125000")
    expect(page.locator("#account")).to_contain_text("Amina")
    save(page, tmp_path, "pages-account")
    history.first.locator("a.link-transfer").click()
    expect(page.locator("h1")).to_contain_text("Transfer ")
    expect(page.locator("#transfer")).to_contain_text(format_money(125_000, KES))
    save(page, tmp_path, "pages-transfer")

    # a provider's reference finds the suspense item
    page.goto(served_app.url("/console/#/search?q=" + world.reference))
    expect(page.locator("h1")).to_have_text("Search")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("suspense_item")
    expect(page.locator("tbody tr")).to_contain_text(format_money(30_000, KES))
    page.goto(served_app.url("/console/#/search?q=%2B254700000009"))
    expect(page.locator("#no-hits")).to_be_visible()
    assert page_errors == []


def test_a_party_named_with_markup_shows_it_as_text(
    page: Page, served_app: ServedApp, world: World, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    page.goto(served_app.url(f"/console/#/search?q={world.shop_id}"))
    expect(page.locator("h1")).to_have_text("Search")
    expect(page.locator("tbody tr")).to_contain_text(XSS)
    page.locator("tbody tr a").click()
    expect(page.locator("#party-name")).to_have_text(XSS)
    expect(page.locator("h1")).to_have_text(f"storefront: {XSS}")
    no_script_ran(page)
    assert page_errors == []


def test_an_orders_timeline_shows_its_events_with_money(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    page.goto(served_app.url(f"/console/#/search?q={world.order_id}"))
    expect(page.locator("h1")).to_have_text("Search")
    page.locator("tbody tr a").click()
    expect(page.locator("h1")).to_have_text(f"Order {world.order_id}")
    expect(page.locator("#order")).to_contain_text(format_money(80_000, KES))
    expect(page.locator("#order .order-state")).to_have_text("paid")
    expect(page.locator("#timeline .event-type").first).to_have_text("order.paid")
    expect(page.locator("#timeline")).not_to_contain_text(raw_minor(80_000))
    save(page, tmp_path, "pages-order")
    assert page_errors == []


def test_fee_schedules_show_the_band_table_as_money(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    page.locator("#menu a", has_text="Fee schedules").click()
    expect(page.locator("h1")).to_have_text("Fee schedules")
    expect(page.locator("#versions tbody tr").first).to_contain_text("1")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Bands")
    expect(preview.locator("table").first).to_contain_text("KES 0.00")
    expect(preview).to_contain_text("bps")
    expect(preview).not_to_contain_text("100000")
    save(page, tmp_path, "pages-fees")
    page.locator("#currency").fill("UGX")
    page.locator("#show-fees").click()
    expect(page.locator("#no-schedule")).to_contain_text("No schedule of order in UGX")
    assert [e for e in page_errors if "status of 404" not in e] == []


def test_webhook_deliveries_list_their_state(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll(page, served_app, "auditor")
    page.locator("#menu a", has_text="Webhooks").click()
    expect(page.locator("h1")).to_have_text("Webhook deliveries")
    row = page.locator("tbody tr", has_text="http://127.0.0.1:9/hook")
    expect(row).to_contain_text("order.*")
    save(page, tmp_path, "pages-webhooks")
    row.locator("a.deliveries-link").click()
    expect(page.locator("h1")).to_have_text("Deliveries to http://127.0.0.1:9/hook")
    expect(page.locator("#endpoint")).to_contain_text(XSS)
    expect(page.locator("tbody tr").first).to_contain_text("order.paid")
    expect(page.locator("tbody tr").first).to_contain_text("pending")
    no_script_ran(page)
    save(page, tmp_path, "pages-deliveries")
    assert page_errors == []


def test_an_operator_proposes_approving_a_variance_and_another_approves_it(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    enroll_checker(page, served_app, world)
    page.locator("#menu a", has_text="Variances").click()
    expect(page.locator("h1")).to_have_text("Cash-count variances")
    row = page.locator("#variances tbody tr", has_text=world.agent_id)
    expect(row).to_contain_text("short")
    expect(row.locator(".comment")).to_have_text(XSS)
    expect(row).to_contain_text("KES ")
    no_script_ran(page)
    save(page, tmp_path, "pages-variances")
    row.locator("button.propose-approval").click()
    expect(row.locator(".outcome")).to_contain_text("Approval proposed")
    proposal_id = row.locator("a.proposal-link").get_attribute("href").rsplit("/", 1)[1]  # type: ignore[union-attr]
    decided = world.maker.request("POST", f"/v1/proposals/{proposal_id}/approve")
    assert ok(decided)["state"] == "approved"
    page.goto(served_app.url("/console/#/variances?state=approved"))
    done = page.locator("#variances tbody tr", has_text=world.agent_id)
    expect(done).to_contain_text("approved")
    expect(done.locator("a.link-transfer")).to_have_count(1)
    assert page_errors == []


def test_an_operator_uploads_a_statement_and_opens_its_run(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    """The KCB statement shows the agent's KES 6,000.00 deposit (the float top-up) and
    KES 55.00 nobody booked: the run has a break; markup in a line is text on its page."""
    today = datetime.now(UTC).date().isoformat()
    lines = [f"{today},6000.00,DEP1,cash deposit {XSS}", f"{today},55.00,X9,nobody's"]
    data = ("\n".join(["Date,Amount,Ref,Details", *lines]) + "\n").encode()
    enroll_checker(page, served_app, world)
    page.locator("#menu a", has_text="Statements").click()
    expect(page.locator("h1")).to_have_text("Provider statements")
    page.locator("#provider").fill("KCB")
    page.locator("#statement-currency").fill(KES)
    page.locator("#columns").fill("date:Date,amount:Amount,reference:Ref,description:Details")
    page.locator("#opening").fill("0")
    page.locator("#closing").fill("6055.00")
    page.locator("#statement-file").set_input_files(
        {"name": "kcb.csv", "mimeType": "text/csv", "buffer": data}
    )
    save(page, tmp_path, "pages-statements")
    page.locator("#upload").click()
    expect(page.locator("#upload-outcome")).to_contain_text("Reconciled: 1 breaks.")
    page.locator("#statement-run").click()
    expect(page.locator("h1")).to_have_text(f"Run statement for {today}")
    expect(page.locator("#breaks")).to_contain_text("KES 55.00")
    no_script_ran(page)
    assert page_errors == []


def test_an_auditor_has_no_upload_form(page: Page, served_app: ServedApp) -> None:
    enroll(page, served_app, "auditor")
    page.goto(served_app.url("/console/#/statements"))
    expect(page.locator("#auditor-statements")).to_be_visible()
    expect(page.locator("#statement-form")).to_have_count(0)


def test_an_operator_moves_a_suspense_item_and_proposes_returning_another(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    """The parked MPESA payment was the villager's: moved to her wallet. Another, of
    markup, goes back through its provider once a second operator approves; while that
    return waits, moving the item is refused in words and moves nothing."""
    other = uuid.uuid4()
    suspense.park(served_app.ledger, suspense_id=other, currency=KES, provider="AIRTEL",
                  provider_reference=XSS[:40], amount_minor=12_345)  # fmt: skip
    enroll_checker(page, served_app, world)
    page.locator("#menu a", has_text="Suspense").click()
    expect(page.locator("h1")).to_have_text("Suspense queue")
    mine = page.locator("#suspense tbody tr", has_text=world.reference)
    expect(mine).to_contain_text(format_money(30_000, KES))
    markup = page.locator("#suspense tbody tr", has_text="AIRTEL")
    expect(markup.locator(".reference")).to_have_text(XSS[:40])
    no_script_ran(page)
    save(page, tmp_path, "pages-suspense")

    [wallet_before] = served_app.ledger.lookup_accounts(
        [parties.account_id(uuid.UUID(world.villager_id), Role.WALLET)]
    )
    mine.locator("input.to-party").fill(world.villager_id)
    mine.locator("button.reassign").click()
    expect(mine.locator(".outcome")).to_have_text("Moved to whose it was.")
    [wallet_after] = served_app.ledger.lookup_accounts([wallet_before.id])
    assert wallet_after.credits_posted - wallet_before.credits_posted == 30_000

    markup.locator("input.reason").fill("sender asked for it back")
    markup.locator("button.propose-return").click()
    expect(markup.locator(".outcome")).to_contain_text("Return proposed")
    proposal_id = markup.locator("a.proposal-link").get_attribute("href").rsplit("/", 1)[1]  # type: ignore[union-attr]
    # while its return waits, the item cannot be moved to the wallet: refused, in words
    markup.locator("input.to-party").fill(world.villager_id)
    markup.locator("button.reassign").click()
    refusal = markup.locator(".outcome .problem")
    expect(refusal).to_contain_text("Refused (409 suspense_return_proposed)")
    expect(refusal).to_contain_text(f"waits for a second operator ({proposal_id})")
    [wallet_now] = served_app.ledger.lookup_accounts([wallet_before.id])
    assert wallet_now == wallet_after
    save(page, tmp_path, "pages-suspense-return-waits")
    assert ok(world.maker.request("POST", f"/v1/proposals/{proposal_id}/approve"))["state"] == (
        "approved"
    )
    page.goto(served_app.url("/console/#/suspense?state=returned"))
    expect(page.locator("#suspense tbody tr", has_text="AIRTEL")).to_contain_text(
        "returned: sender asked for it back"
    )
    assert [e for e in page_errors if "status of 409" not in e] == []  # the refusal's own log


def test_an_operator_pays_commission_to_floats_and_proposes_a_provider_payout(
    page: Page, served_app: ServedApp, world: World, tmp_path: Path, page_errors: list[str]
) -> None:
    """To the floats: paid at once. Through a provider (money leaving the platform): a
    proposal the other operator approves; the page then lists it, made by the approver."""
    enroll_checker(page, served_app, world)
    page.locator("#menu a", has_text="Commission").click()
    expect(page.locator("h1")).to_have_text("Commission payouts")
    page.locator("#pay-month").fill("2021-02")
    page.locator("#pay").click()
    expect(page.locator("#pay-outcome")).to_have_text("Paid: 0 agents, KES 0.00.")
    page.locator("#pay-month").fill("2021-03")
    page.locator("#pay-to").select_option("provider")
    page.locator("#pay-provider").fill("MPESA")
    page.locator("#pay").click()
    expect(page.locator("#pay-outcome")).to_contain_text("Payout proposed")
    link = page.locator("#pay-outcome a.proposal-link").get_attribute("href") or ""
    proposal_id = link.rsplit("/", 1)[1]
    page.locator("#pay").click()  # the same month again while it waits: refused in words
    expect(page.locator("#pay-outcome")).to_contain_text("commission_payout_proposed")
    listed = ok(world.maker.request("GET", "/v1/commission-payouts", params={"limit": "100"}))
    assert "2021-03" not in [p["month"] for p in listed["data"]]  # nothing paid yet
    approved = ok(world.maker.request("POST", f"/v1/proposals/{proposal_id}/approve"))
    approver_id = approved["decided_by"]
    page.reload()
    row = page.locator("#payouts tbody tr", has_text="2021-03 KES")
    expect(row).to_contain_text("through MPESA")
    expect(row).to_contain_text(approver_id)  # the approver made it
    save(page, tmp_path, "pages-commission")
    row.locator("a.payout-link").click()
    expect(page.locator("h1")).to_have_text("Commission payout 2021-03 KES")
    expect(page.locator("#no-lines")).to_be_visible()
    assert [e for e in page_errors if "status of 409" not in e] == []
