"""Agents' commission payouts over signed HTTP, both engines: agents earn commission on
real cash-ins in past months (written through the flows on a ledger whose clock is set
back; the server runs on today's clock), an operator pays a month to floats or through
a provider, a retry moves nothing, and an agent reads only its own commission.

Each test pays its own months (a payout pays every agent of its currency, and the tests
of this module share one database).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.client import Client
from api.problems import FLOW_CODES
from ledger import Ledger, open_ledger
from ledger.flows import agent_float, cash, commission, events, fees, parties
from ledger.flows.commission import Month
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.test_api_cash import api_server
from tests.test_api_harness import Harness, api
from tests.test_api_orders import _RAISED, flow_source, ok, refused

__all__ = ["api", "api_server"]

KES = "KES"
PATH = "/v1/commission-payouts"
CASH_IN_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "fixed_minor": 100}],
    "split_bps": {"agent_commission": 5_000},
    "platform_commission": {"bps": 50, "max_minor": 5_000},
}
EARNED_PER_CASH_IN = 300
"""On a 500.00 KES cash-in: half the 1.00 fee, and 0.5% from the platform."""
XSS = '<script>alert("x")</script>'


def months_ago(n: int) -> Month:
    """The UTC month ``n`` months before today's."""
    now = Month.of(datetime.now(UTC))
    index = now.year * 12 + now.month - 1 - n
    return Month(index // 12, index % 12 + 1)


class Office:
    """The operator, and agents onboarded through the API who earn commission in past
    months through the flows (a ledger on the same database with its clock set back)."""

    def __init__(self, api: Harness, past: Ledger, clock: Clock) -> None:
        self.api, self.past, self.clock = api, past, clock
        self.operator = api.client("operator")
        self.agents: dict[str, Client] = {}

    def agent(self) -> str:
        """An agent principal whose party is onboarded in the past: the core never dates
        a transfer before its accounts' last change, so they must be older than the
        commission they earn."""
        made = self.api.key("agent")
        agent_id = uuid.UUID(made["principal_id"])
        self.clock.now = START
        parties.onboard(self.past, party_id=agent_id, kind=Kind.AGENT, name="Juma", currency=KES)
        self.agents[str(agent_id)] = self.api.client_for(made)
        agent_float.top_up_float(
            self.past, topup_id=uuid.uuid4(), agent_id=agent_id, amount_minor=10_000_000,
            provider="BANK",
        )  # fmt: skip
        return str(agent_id)

    def earn(self, agent_id: str, at: datetime, times: int = 1) -> None:
        self.clock.now = at
        villager = parties.onboard(
            self.past, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Otieno", currency=KES,
            kyc_tier="tier1",
        )  # fmt: skip
        for _ in range(times):
            done = cash.cash_in(
                self.past, cash_in_id=uuid.uuid4(), agent_id=uuid.UUID(agent_id),
                villager_id=villager.id, amount_minor=50_000,
            )  # fmt: skip
            assert done.commission_minor == EARNED_PER_CASH_IN

    def balance(self, agent_id: str, role: Role) -> int:
        [found] = self.api.ledger.lookup_accounts([parties.account_id(uuid.UUID(agent_id), role)])
        return found.credits_posted - found.debits_posted

    def pay(
        self, month: str, to: str = "float", who: Client | None = None, **over: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"month": month, "currency": KES, "to": to, **over}
        return (who or self.operator).request("POST", PATH, json_body=body)


START = months_ago(12).start
"""When the fee schedule takes effect and the agents are onboarded. The tests below earn
commission in months that follow each other in the order the tests run (the platform's
accounts, which every cash-in touches, only move forward in time)."""


@pytest.fixture
def office(api: Harness) -> Iterator[Office]:
    clock = Clock(START)
    past = open_ledger(api.db_url, clock=clock)
    fees.publish_schedule(
        past, product="cash_in", currency=KES, effective_from=clock.now, rules=CASH_IN_RULES
    )
    try:
        yield Office(api, past, clock)
    finally:
        past.close()


def approve(who: Client, proposal_id: str) -> httpx.Response:
    return who.request("POST", f"/v1/proposals/{proposal_id}/approve", json_body=None)


def test_a_provider_payout_waits_for_a_second_operator_and_pays_only_its_month(
    office: Office,
) -> None:
    """Money out of the platform: the maker's request is a proposal showing what it would
    pay; nothing moves until another operator approves it (not the maker, an auditor or a
    tenant); nobody asks for the month meanwhile; the approver is recorded; approving
    again moves nothing. A payout to the floats is one operator's act."""
    earlier, month = months_ago(10), months_ago(9)
    juma = office.agent()
    office.earn(juma, month.start - timedelta(microseconds=1))  # the month before
    office.earn(juma, month.start, times=2)
    clearing = parties.account_id(parties.platform_id(KES), "provider_clearing:AIRTEL")
    checking = office.api.key("operator")
    checker, checker_id = office.api.client_for(checking), checking["principal_id"]

    made = ok(office.pay(month.text, to="provider", provider="AIRTEL"), 202)["proposal"]
    assert (made["kind"], made["state"]) == (commission.COMMISSION_PAYOUT, "proposed")
    shown = {"month": month.text, "currency": KES, "to": "provider", "provider": "AIRTEL"}
    assert made["payload"] == shown | {"agents_count": 1, "total_minor": 600}
    assert office.balance(juma, Role.COMMISSION) == 900  # nothing moved
    refused(approve(office.operator, made["id"]), 422, "proposal_maker_cannot_decide")
    for outsider in (office.api.client("auditor"), office.api.client("storefront"),
                     office.agents[juma]):  # fmt: skip
        refused(approve(outsider, made["id"]), 403, "forbidden")
    for who, body in ((checker, {}), (checker, {"to": "provider", "provider": "MPESA"}),
                      (office.operator, {"to": "provider", "provider": "AIRTEL"})):  # fmt: skip
        refused(office.pay(month.text, who=who, **body), 409, "commission_payout_proposed")
    assert office.balance(juma, Role.COMMISSION) == 900
    listed = ok(office.operator.request("GET", PATH, params={"limit": "100"}))
    assert month.text not in [p["month"] for p in listed["data"]]

    approved = ok(approve(checker, made["id"]))
    result = approved["result"]
    assert (approved["state"], approved["decided_by"], result["made_by"]) == (
        "approved", checker_id, checker_id,
    )  # fmt: skip
    assert (result["lines_count"], result["total_minor"]) == (1, 600)
    paid = ok(office.operator.request("GET", f"{PATH}/{result['payout_id']}"))
    assert (paid["to"], paid["provider"], paid["made_by"]) == ("provider", "AIRTEL", checker_id)
    [line] = [x for x in paid["lines"] if x["agent_id"] == juma]
    assert (line["amount_minor"], line["destination_account_id"]) == (600, str(clearing))
    assert office.balance(juma, Role.COMMISSION) == 300  # the earlier month's waits
    assert ok(approve(checker, made["id"])) == approved  # again: the same, nothing moves
    again = ok(office.pay(month.text, to="provider", provider="AIRTEL"), 201)
    assert again["id"] == paid["id"]
    assert office.balance(juma, Role.COMMISSION) == 300

    before = ok(office.pay(earlier.text), 201)  # to the floats: at once
    assert [x["amount_minor"] for x in before["lines"] if x["agent_id"] == juma] == [300]
    assert office.balance(juma, Role.COMMISSION) == 0
    assert office.api.ledger.check_integrity().ok


def test_an_operator_pays_a_month_to_the_floats_once(office: Office) -> None:
    month = months_ago(8)
    juma, wanjiru, idle = office.agent(), office.agent(), office.agent()
    office.earn(juma, month.start + timedelta(days=3), times=2)
    office.earn(wanjiru, month.end - timedelta(seconds=1))
    floats = {a: office.balance(a, Role.FLOAT) for a in (juma, wanjiru, idle)}

    answer = office.pay(month.text)
    paid = ok(answer, 201)
    assert answer.headers["location"] == f"{PATH}/{paid['id']}"
    assert paid["id"] == str(commission.payout_id_of(month.text, KES))
    assert (paid["month"], paid["to"], paid["provider"], paid["lines_count"]) == (
        month.text, "float", None, 2,
    )  # fmt: skip
    assert paid["total_minor"] == 900 and paid["lines_has_more"] is False
    assert paid["period_start"] == month.start.isoformat().replace("+00:00", "Z")
    got = {x["agent_id"]: (x["earned_minor"], x["amount_minor"]) for x in paid["lines"]}
    assert got == {juma: (600, 600), wanjiru: (300, 300)}
    assert (office.balance(juma, Role.COMMISSION), office.balance(wanjiru, Role.COMMISSION)) == (
        0,
        0,
    )
    assert office.balance(juma, Role.FLOAT) == floats[juma] + 600
    assert office.balance(wanjiru, Role.FLOAT) == floats[wanjiru] + 300
    assert office.balance(idle, Role.FLOAT) == floats[idle]

    # a retry (another key, another destination) answers the first payout; nothing moves
    assert ok(office.pay(month.text, to="provider", provider="MPESA"), 201) == paid
    assert office.balance(juma, Role.FLOAT) == floats[juma] + 600
    assert office.api.ledger.check_integrity().ok
    found = office.api.ledger.transact(lambda tx: events.read_events(tx, limit=1000))
    paid_to = [str(e.party_id) for e in found if e.type == events.COMMISSION_PAID]
    assert sorted(p for p in paid_to if p in (juma, wanjiru, idle)) == sorted([juma, wanjiru])

    auditor = office.api.client("auditor")
    assert ok(auditor.request("GET", f"{PATH}/{paid['id']}")) == paid
    first = ok(auditor.request("GET", f"{PATH}/{paid['id']}", params={"limit": "1"}))
    assert first["lines_has_more"] is True and len(first["lines"]) == 1
    after = first["lines"][0]["agent_id"]
    rest = ok(
        auditor.request(
            "GET", f"{PATH}/{paid['id']}", params={"limit": "1", "starting_after": after}
        )
    )
    assert rest["lines_has_more"] is False
    assert {first["lines"][0]["agent_id"], rest["lines"][0]["agent_id"]} == {juma, wanjiru}
    listed = ok(auditor.request("GET", PATH, params={"currency": KES, "limit": "100"}))
    assert paid["id"] in [p["id"] for p in listed["data"]]

    mine = ok(office.agents[juma].request("GET", f"/v1/agents/{juma}/commission"))
    assert (mine["currency"], mine["earned_this_month_minor"], mine["unpaid_minor"]) == (
        KES, 0, 0,
    )  # fmt: skip
    assert [(p["month"], p["amount_minor"]) for p in mine["paid"]] == [(month.text, 600)]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"month": "this"}, 422, "month_not_over"),
        ({"month": "2026-13"}, 422, "month_invalid"),
        ({"month": "1999-12"}, 422, "month_invalid"),
        ({"month": "Nov 2026"}, 422, "validation_failed"),
        ({"month": XSS}, 422, "validation_failed"),
        ({"month": 202611}, 422, "validation_failed"),
        ({"to": "bank"}, 422, "validation_failed"),
        ({"to": "provider"}, 422, "provider_required"),
        ({"to": "float", "provider": "MPESA"}, 422, "destination_invalid"),
        ({"to": "provider", "provider": XSS}, 422, "validation_failed"),
        ({"currency": "XYZ"}, 422, "currency_not_supported"),
        ({"amount_minor": 1}, 422, "validation_failed"),
    ],
)
def test_bad_payouts_are_refused_and_move_nothing(
    office: Office, body: dict[str, Any], status: int, code: str
) -> None:
    sent = {"month": months_ago(5).text, "currency": KES, "to": "float", **body}
    if sent["month"] == "this":
        sent["month"] = months_ago(0).text
    answer = office.operator.request("POST", PATH, json_body=sent)
    refused(answer, status, code)  # problem+json: markup is JSON text, never a page
    listed = ok(office.operator.request("GET", PATH, params={"limit": "100"}))
    assert months_ago(5).text not in [p["month"] for p in listed["data"]]
    assert months_ago(0).text not in [p["month"] for p in listed["data"]]


def test_only_operators_pay_and_agents_read_only_their_own(office: Office) -> None:
    juma, wanjiru = office.agent(), office.agent()
    month = months_ago(6).text
    for role in ("agent", "storefront", "auditor"):
        refused(office.pay(month, who=office.api.client(role)), 403, "forbidden")
    refused(office.pay(month, who=office.agents[juma]), 403, "forbidden")
    listed = ok(office.operator.request("GET", PATH, params={"limit": "100"}))
    assert month not in [p["month"] for p in listed["data"]]  # nothing was paid

    shop = office.api.client("storefront")
    for path in (PATH, f"{PATH}/{commission.payout_id_of(month, KES)}"):
        refused(shop.request("GET", path), 403, "forbidden")
        refused(office.agents[juma].request("GET", path), 403, "forbidden")
    refused(shop.request("GET", f"/v1/agents/{juma}/commission"), 403, "forbidden")
    refused(
        office.agents[juma].request("GET", f"/v1/agents/{wanjiru}/commission"),
        404,
        "agent_not_found",
    )
    ok(office.operator.request("GET", f"/v1/agents/{wanjiru}/commission"))
    ok(office.api.client("auditor").request("GET", f"/v1/agents/{juma}/commission"))
    refused(
        office.operator.request("GET", f"/v1/agents/{uuid.uuid4()}/commission"),
        404,
        "agent_not_found",
    )
    refused(
        office.operator.request("GET", f"{PATH}/{uuid.uuid4()}"),
        404,
        "commission_payout_not_found",
    )
    refused(
        office.operator.request("GET", PATH, params={"starting_after": "x"}),
        400,
        "invalid_parameter",
    )


def test_unsigned_forged_and_replayed_requests(office: Office) -> None:
    month = months_ago(7).text
    body = {"month": month, "currency": KES, "to": "float"}
    bare = httpx.post(office.api.base_url + PATH, json=body)
    refused(bare, 401, "signature_missing")
    signed = office.operator.request("GET", PATH).request.headers
    forged = dict(signed)
    forged["signature"] = forged["signature"][:-6] + "AAAAA:"
    refused(httpx.get(office.api.base_url + PATH, headers=forged), 401, "signature_invalid")

    first = office.operator.request("POST", PATH, json_body=body, idempotency_key="pay-1")
    again = office.operator.request("POST", PATH, json_body=body, idempotency_key="pay-1")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotency-replayed") == "true"
    assert again.json() == first.json()
    other = {**body, "to": "provider", "provider": "MPESA"}
    refused(
        office.operator.request("POST", PATH, json_body=other, idempotency_key="pay-1"),
        422,
        "idempotency_key_reused",
    )
    huge = {**body, "month": "2026-01" + "0" * 1_100_000}
    refused(office.operator.request("POST", PATH, json_body=huge), 413, "body_too_large")
    # the body went in under an old signature: its digest no longer matches
    request = office.operator.request("POST", PATH, json_body=body).request
    tampered = json.dumps({**body, "month": months_ago(4).text}).encode()
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    answer = httpx.post(office.api.base_url + PATH, content=tampered, headers=headers)
    refused(answer, 401, "digest_mismatch")
    assert months_ago(4).text not in [
        p["month"] for p in ok(office.operator.request("GET", PATH))["data"]
    ]


def test_every_commission_code_has_a_title_and_the_routes_are_documented(api: Harness) -> None:
    raised = set(_RAISED.findall(flow_source("commission.py")))
    assert raised and not raised - set(FLOW_CODES)
    doc = httpx.get(api.base_url + "/openapi.json").json()
    post = doc["paths"][PATH]["post"]
    example = post["requestBody"]["content"]["application/json"]["example"]
    assert example == {"month": "2026-11", "currency": "KES", "to": "float"}
    assert "201" in post["responses"] and "422" in post["responses"]
    for path in (PATH, f"{PATH}/{{payout_id}}", "/v1/agents/{agent_id}/commission"):
        assert "get" in doc["paths"][path], path
        assert doc["paths"][path]["get"]["security"] == [{"httpMessageSignature": []}]


def test_approving_a_payout_of_a_month_paid_since_is_refused_and_moves_nothing(
    office: Office,
) -> None:
    """The machine's command paid the month to the floats while a provider payout waited
    (the command does not see proposals): approving it is 422 commission_month_paid,
    nothing moves, and it can still be rejected."""
    month = months_ago(3)
    juma = office.agent()
    office.earn(juma, month.start + timedelta(days=1))
    made = ok(office.pay(month.text, to="provider", provider="MPESA"), 202)["proposal"]
    floats = commission.pay_month(office.api.ledger, month=month.text, currency=KES, to="float")
    assert floats.total_minor == EARNED_PER_CASH_IN
    checker = office.api.client("operator")
    float_now = office.balance(juma, Role.FLOAT)
    refused(approve(checker, made["id"]), 422, "commission_month_paid")
    assert office.balance(juma, Role.FLOAT) == float_now
    shown = ok(checker.request("GET", f"{PATH}/{floats.id}"))
    assert (shown["to"], shown["made_by"]) == ("float", None)
    assert ok(checker.request("GET", f"/v1/proposals/{made['id']}"))["state"] == "proposed"
    body = {"reason": "paid to the floats already"}
    rejected = checker.request("POST", f"/v1/proposals/{made['id']}/reject", json_body=body)
    assert ok(rejected)["state"] == "rejected"
    assert office.api.ledger.check_integrity().ok
