"""Cash at the agent's counter and the agent's float over signed HTTP, both engines.

The stories: the platform confirms an agent's bank deposit as float; a villager cashes in,
then cashes out in two phases (requested, the cash handed over, confirmed); a cash-out is
cancelled; refusals (float short, a KYC limit, below the minimum) are problem+json with
their code and change nothing; retries are safe by Idempotency-Key and by operation id;
agents see only their own (404), other roles are refused (403).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.problems import API_CODES, FLOW_CODE_ALIASES, FLOW_CODES, STATE_CODES
from api.settings import Settings
from ledger import open_ledger
from ledger.flows import cash, parties
from ledger.flows.parties import Role
from tests.conftest import drop_pg_schema
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_api_harness import FAST_TEST_SETTINGS, Harness, ServerThread, api, fresh_database
from tests.test_api_orders import _RAISED, _SHORT, EXPOSED_FLOWS, flow_source, ok, refused

__all__ = ["api", "api_server"]

KES = "KES"
BANK = "KCB"
FLOAT_MINOR = 1_000_000
QUIET_SETTINGS: Settings = dataclasses.replace(
    FAST_TEST_SETTINGS, sweep_interval_s=None, seal_interval_s=None
)
"""The harness's settings with no sweeper or sealer: these tests move the clock by hand."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """The harness's server, without the background threads."""
    tmp = tmp_path_factory.mktemp("cash")
    url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(url, migrate=True)
        server = ServerThread(create_app(url, settings=QUIET_SETTINGS)).start()
        (tmp / "keys").mkdir()
        try:
            yield Harness(url, server.base_url, led, tmp / "keys")
        finally:
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


class Counter:
    """An agent topped up by the platform, a villager of ``tier`` registered at its
    station (with a PIN, so that she can make withdrawal codes), and their operator."""

    def __init__(self, api: Harness, tier: str = "tier1", float_minor: int = FLOAT_MINOR) -> None:
        self.api = api
        self.operator = api.client("operator")
        made = api.key("agent")
        self.agent = api.client_for(made)
        self.agent_id = made["principal_id"]
        self.onboard("agent", self.agent_id)
        villager = consenting_villager(api.ledger, agent_id=uuid.UUID(self.agent_id), tier=tier)
        self.villager_id = str(villager.id)
        if float_minor:
            self.top_up(float_minor)

    def onboard(self, kind: str, party_id: str, **extra: Any) -> None:
        body = {"id": party_id, "kind": kind, "name": kind, "currency": KES, **extra}
        ok(self.operator.request("POST", "/v1/parties", json_body=body), 201)

    def top_up(self, amount: int, who: Client | None = None) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "amount_minor": amount, "provider": BANK}
        answer = (who or self.operator).request(
            "POST", f"/v1/agents/{self.agent_id}/float-topups", json_body=body
        )
        if who is None:
            ok(answer, 201)
        return answer

    def cash_in(self, amount: int, op_id: str | None = None, **kw: Any) -> httpx.Response:
        body = {"id": op_id or str(uuid.uuid4()), "villager_id": self.villager_id}
        body["amount_minor"] = amount
        return self.agent.request(
            "POST", f"/v1/agents/{self.agent_id}/cash-ins", json_body=body, **kw
        )

    def code(self, amount: int) -> str:
        """A withdrawal code the villager made for this agent and ``amount``."""
        return withdrawal_code(
            self.api.ledger,
            villager_id=uuid.UUID(self.villager_id),
            agent_id=uuid.UUID(self.agent_id),
            amount_minor=amount,
        )

    def cash_out(self, amount: int, who: Client | None = None, **extra: Any) -> httpx.Response:
        """A cash-out request, with a code the villager made for it unless ``extra``
        names one (``consent_code=None`` sends none)."""
        body = {"id": str(uuid.uuid4()), "villager_id": self.villager_id, "amount_minor": amount}
        if "consent_code" not in extra:
            body["consent_code"] = self.code(amount)
        elif extra["consent_code"] is None:
            del extra["consent_code"]
        return (who or self.agent).request(
            "POST", f"/v1/agents/{self.agent_id}/cash-outs", json_body={**body, **extra}
        )

    def step(
        self, cash_out_id: str, action: str, body: Any = None, who: Client | None = None
    ) -> httpx.Response:
        return (who or self.agent).request(
            "POST", f"/v1/cash-outs/{cash_out_id}/{action}", json_body=body
        )

    def balance(self, party_id: str, role: str) -> int:
        [found] = self.api.ledger.lookup_accounts([parties.account_id(uuid.UUID(party_id), role)])
        return found.credits_posted - found.debits_posted

    def wallet(self) -> int:
        return self.balance(self.villager_id, Role.WALLET)

    def float(self) -> dict[str, Any]:
        found: dict[str, Any] = ok(self.agent.request("GET", f"/v1/agents/{self.agent_id}/float"))
        return found


@pytest.fixture
def counter(api: Harness) -> Counter:
    return Counter(api)


# -- the stories ----------------------------------------------------------------------------


def test_a_cash_in_then_a_two_phase_cash_out_confirmed(counter: Counter) -> None:
    topped = counter.float()
    assert (topped["balance_minor"], topped["available_minor"]) == (FLOAT_MINOR, FLOAT_MINOR)

    made = ok(counter.cash_in(100_000), 201)
    assert (made["agent_id"], made["villager_id"], made["amount_minor"]) == (
        counter.agent_id,
        counter.villager_id,
        100_000,
    )
    assert (made["fee_minor"], made["fee_version"]) == (0, None)  # no cash_in schedule
    assert counter.wallet() == 100_000
    assert counter.float()["balance_minor"] == FLOAT_MINOR - 100_000

    requested = ok(counter.cash_out(30_000), 201)
    assert (requested["state"], requested["mode"], requested["total_minor"]) == (
        "requested",
        "two_phase",
        30_000,
    )
    assert requested["expires_at"] is not None
    assert counter.wallet() == 100_000  # held, not moved yet
    [wallet] = counter.api.ledger.lookup_accounts(
        [parties.account_id(uuid.UUID(counter.villager_id), Role.WALLET)]
    )
    assert wallet.debits_pending == 30_000

    confirmed = ok(counter.step(requested["id"], "confirm"))
    assert (confirmed["state"], confirmed["resolved_at"] is not None) == ("completed", True)
    assert counter.wallet() == 70_000
    assert counter.float()["balance_minor"] == FLOAT_MINOR - 70_000
    again = ok(counter.step(requested["id"], "confirm", {}))  # a retry with a new key
    assert again == confirmed

    outs = ok(counter.agent.request("GET", f"/v1/agents/{counter.agent_id}/cash-outs"))
    assert [c["id"] for c in outs["data"]] == [requested["id"]] and outs["has_more"] is False
    done = ok(
        counter.agent.request(
            "GET", f"/v1/agents/{counter.agent_id}/cash-outs", params={"state": "completed"}
        )
    )
    assert len(done["data"]) == 1
    ins = ok(counter.agent.request("GET", f"/v1/agents/{counter.agent_id}/cash-ins"))
    assert [c["id"] for c in ins["data"]] == [made["id"]]
    assert ok(counter.agent.request("GET", f"/v1/cash-ins/{made['id']}")) == made
    read = ok(counter.agent.request("GET", f"/v1/cash-outs/{requested['id']}"))
    assert read == confirmed
    assert counter.api.ledger.check_integrity().ok


def test_a_cancelled_cash_out_gives_everything_back(counter: Counter) -> None:
    ok(counter.cash_in(50_000), 201)
    requested = ok(counter.cash_out(20_000), 201)
    cancelled = ok(counter.step(requested["id"], "cancel", {"reason": "changed her mind"}))
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "changed her mind")
    [wallet] = counter.api.ledger.lookup_accounts(
        [parties.account_id(uuid.UUID(counter.villager_id), Role.WALLET)]
    )
    assert (wallet.debits_pending, counter.wallet()) == (0, 50_000)
    assert ok(counter.step(requested["id"], "cancel")) == cancelled  # empty body, replayed
    refused(counter.step(requested["id"], "confirm"), 409, "cash_out_cancelled")

    by_operator = ok(counter.cash_out(10_000), 201)  # an operator cancels too
    assert ok(counter.step(by_operator["id"], "cancel", who=counter.operator))["state"] == (
        "cancelled"
    )
    assert ok(counter.step(by_operator["id"], "cancel"))["reason"] == "cancelled"


# -- refusals: a code, and nothing changed --------------------------------------------------


def test_refusals_are_problems_and_change_nothing(api: Harness) -> None:
    poor = Counter(api, tier="tier0", float_minor=40_000)
    short = refused(poor.cash_in(50_000), 422, "float_short")
    assert short["title"] == FLOW_CODES["float_short"]
    assert (poor.wallet(), poor.float()["balance_minor"]) == (0, 40_000)

    ok(poor.top_up(1_000_000), 201)
    limit = refused(poor.cash_in(600_000), 422, "limit_exceeded_per_transaction")
    assert "tier0" in limit["detail"]
    ok(poor.cash_in(30_000), 201)
    refused(poor.cash_out(100), 422, "below_minimum")
    refused(poor.cash_out(40_000), 422, "wallet_short")
    refused(poor.cash_out(10_000, timeout_s=30), 422, "validation_failed")  # the timeout's limits
    assert poor.wallet() == 30_000
    assert ok(poor.agent.request("GET", f"/v1/agents/{poor.agent_id}/cash-outs"))["data"] == []
    assert poor.float()["balance_minor"] == 1_040_000 - 30_000

    refused(poor.step(str(uuid.uuid4()), "confirm"), 404, "cash_out_not_found")
    stranger = poor.agent.request(
        "POST",
        f"/v1/agents/{poor.agent_id}/cash-ins",
        json_body={"id": str(uuid.uuid4()), "villager_id": str(uuid.uuid4()), "amount_minor": 1},
    )
    refused(stranger, 404, "villager_not_found")
    assert api.ledger.check_integrity().ok


@pytest.mark.parametrize(
    "over",
    [
        {"amount_minor": "1000"},
        {"amount_minor": True},
        {"amount_minor": 0},
        {"amount_minor": 2**53},
        {"agent_id": "6d1c1a8e-2b7f-4c3d-9e0a-5f4b3c2d1e0f"},
        {"fee_minor": 0},
        {"id": "not-a-uuid"},
    ],
)
def test_bad_input_and_mass_assignment_are_422(counter: Counter, over: dict[str, Any]) -> None:
    body = {"id": str(uuid.uuid4()), "villager_id": counter.villager_id, "amount_minor": 1_000}
    answer = counter.agent.request(
        "POST", f"/v1/agents/{counter.agent_id}/cash-ins", json_body={**body, **over}
    )
    refused(answer, 422, "validation_failed")
    assert counter.wallet() == 0


def test_a_float_amount_is_400(counter: Counter) -> None:
    answer = counter.agent.request(
        "POST",
        f"/v1/agents/{counter.agent_id}/cash-ins",
        json_body={
            "id": str(uuid.uuid4()),
            "villager_id": counter.villager_id,
            "amount_minor": 1e3,
        },
    )
    refused(answer, 400, "invalid_json")


# -- retries --------------------------------------------------------------------------------


def test_replays_by_idempotency_key_and_by_operation_id_move_money_once(
    counter: Counter,
) -> None:
    op_id = str(uuid.uuid4())
    first = counter.cash_in(25_000, op_id, idempotency_key="till-1")
    replayed = counter.cash_in(25_000, op_id, idempotency_key="till-1")
    assert replayed.headers["idempotency-replayed"] == "true"
    assert replayed.json() == ok(first, 201)
    # days later, the key forgotten: the phone resends the operation with a new key
    later = ok(counter.cash_in(25_000, op_id, idempotency_key="till-2"), 201)
    assert later == first.json()
    assert counter.wallet() == 25_000
    refused(counter.cash_in(26_000, op_id), 409, "cash_in_id_reused")
    refused(counter.cash_in(26_000, op_id, idempotency_key="till-1"), 422, "idempotency_key_reused")

    body = {
        "id": str(uuid.uuid4()),
        "villager_id": counter.villager_id,
        "amount_minor": 10_000,
        "consent_code": counter.code(10_000),
    }
    path = f"/v1/agents/{counter.agent_id}/cash-outs"
    requested = ok(counter.agent.request("POST", path, json_body=body), 201)
    again = ok(counter.agent.request("POST", path, json_body=body), 201)
    assert again == requested
    [wallet] = counter.api.ledger.lookup_accounts(
        [parties.account_id(uuid.UUID(counter.villager_id), Role.WALLET)]
    )
    assert wallet.debits_pending == 10_000
    assert len(cash.list_cash_outs(counter.api.ledger, agent_id=uuid.UUID(counter.agent_id))) == 1

    top_up = {"id": str(uuid.uuid4()), "amount_minor": 5_000, "provider": BANK}
    top_path = f"/v1/agents/{counter.agent_id}/float-topups"
    ok(counter.operator.request("POST", top_path, json_body=top_up), 201)
    ok(counter.operator.request("POST", top_path, json_body=top_up), 201)
    refused(
        counter.operator.request("POST", top_path, json_body={**top_up, "amount_minor": 6_000}),
        409,
        "topup_id_reused",
    )
    assert counter.float()["balance_minor"] == FLOAT_MINOR + 5_000 - 25_000


# -- who may --------------------------------------------------------------------------------


def test_agents_see_only_their_own_and_other_roles_are_refused(counter: Counter) -> None:
    api = counter.api
    ok(counter.cash_in(40_000), 201)
    requested = ok(counter.cash_out(10_000), 201)
    other = Counter(api)
    out_path = f"/v1/cash-outs/{requested['id']}"

    # another agent: as if nothing existed
    refused(other.agent.request("GET", out_path), 404, "cash_out_not_found")
    refused(other.step(requested["id"], "confirm"), 404, "cash_out_not_found")
    refused(other.step(requested["id"], "cancel"), 404, "cash_out_not_found")
    for method, suffix in (
        ("GET", "cash-ins"),
        ("GET", "cash-outs"),
        ("GET", "float"),
        ("POST", "cash-ins"),
        ("POST", "cash-outs"),
        ("POST", "float-transfers"),
    ):
        body = None if method == "GET" else {"id": str(uuid.uuid4())}
        answer = other.agent.request(
            method, f"/v1/agents/{counter.agent_id}/{suffix}", json_body=body
        )
        refused(answer, 404, "agent_not_found")
    assert ok(counter.agent.request("GET", out_path))["state"] == "requested"

    # a storefront: wrong role everywhere
    shop = api.client("storefront")
    refused(shop.request("GET", out_path), 403, "forbidden")
    refused(shop.request("GET", f"/v1/agents/{counter.agent_id}/float"), 403, "forbidden")
    refused(counter.cash_out(10_000, who=shop), 403, "forbidden")
    refused(counter.step(requested["id"], "confirm", who=shop), 403, "forbidden")

    # an auditor reads everything and writes nothing
    auditor = api.client("auditor")
    assert ok(auditor.request("GET", out_path))["id"] == requested["id"]
    listed = ok(auditor.request("GET", f"/v1/agents/{counter.agent_id}/cash-ins"))
    assert len(listed["data"]) == 1
    refused(counter.step(requested["id"], "cancel", who=auditor), 403, "forbidden")
    refused(counter.top_up(1_000, who=auditor), 403, "forbidden")

    # only the platform confirms a deposit as float: not the agent itself
    refused(counter.top_up(1_000, who=counter.agent), 403, "forbidden")

    # an operator acts for any agent
    confirmed = ok(counter.step(requested["id"], "confirm", who=counter.operator))
    assert confirmed["state"] == "completed"
    assert ok(counter.cash_out(10_000, who=counter.operator), 201)["agent_id"] == counter.agent_id


def test_float_transfers_between_agents_and_the_threshold(counter: Counter) -> None:
    other = Counter(counter.api, float_minor=0)
    path = f"/v1/agents/{counter.agent_id}/float-transfers"
    body = {"id": str(uuid.uuid4()), "to_agent_id": other.agent_id, "amount_minor": 300_000}
    moved = ok(counter.agent.request("POST", path, json_body=body), 201)
    assert (moved["from_agent_id"], moved["to_agent_id"], moved["amount_minor"]) == (
        counter.agent_id,
        other.agent_id,
        300_000,
    )
    assert other.float()["balance_minor"] == 300_000
    assert ok(counter.agent.request("POST", path, json_body=body), 201) == moved  # by its id
    assert counter.float()["balance_minor"] == FLOAT_MINOR - 300_000

    too_much = {**body, "id": str(uuid.uuid4()), "amount_minor": FLOAT_MINOR}
    refused(counter.agent.request("POST", path, json_body=too_much), 422, "float_short")
    to_self = {**body, "id": str(uuid.uuid4()), "to_agent_id": counter.agent_id}
    refused(counter.agent.request("POST", path, json_body=to_self), 422, "agents_must_differ")
    assert counter.float()["balance_minor"] == FLOAT_MINOR - 300_000

    threshold = f"/v1/agents/{counter.agent_id}/float-threshold"
    armed = ok(counter.agent.request("POST", threshold, json_body={"threshold_minor": 100_000}))
    assert (armed["low_threshold_minor"], armed["low_armed"]) == (100_000, True)
    cleared = ok(counter.agent.request("POST", threshold, json_body={"threshold_minor": None}))
    assert cleared["low_threshold_minor"] is None
    refused(counter.agent.request("POST", threshold, json_body={}), 422, "validation_failed")


def test_paging_of_cash_ins(counter: Counter) -> None:
    made = [ok(counter.cash_in(1_000 + i), 201)["id"] for i in range(3)]
    path = f"/v1/agents/{counter.agent_id}/cash-ins"
    first = ok(counter.agent.request("GET", path, params={"limit": "2"}))
    assert ([c["id"] for c in first["data"]], first["has_more"]) == (made[:2], True)
    rest = ok(counter.agent.request("GET", path, params={"limit": "2", "starting_after": made[1]}))
    assert ([c["id"] for c in rest["data"]], rest["has_more"]) == (made[2:], False)
    refused(counter.agent.request("GET", path, params={"limit": "101"}), 400, "invalid_parameter")
    refused(counter.agent.request("GET", path, params={"limit": "0"}), 400, "invalid_parameter")
    assert len(ok(counter.agent.request("GET", path, params={"limit": "100"}))["data"]) == 3
    refused(
        counter.agent.request(
            "GET", f"/v1/agents/{counter.agent_id}/cash-outs", params={"state": "lost"}
        ),
        400,
        "invalid_parameter",
    )


# -- the catalogue and the document ---------------------------------------------------------

CASH_FLOWS = (
    "cash.py",
    "consent.py",
    "agent_float.py",
    "settlement.py",
    "limits.py",
    "timers.py",
)
FORMATTED_CODES = {
    "cash_out_cancelled",  # cash: f"cash_out_{state.value}"
    "cash_out_expired",
    "provider_reference_invalid",  # settlement: f"{name}_invalid"
    "reason_invalid",
}


def test_every_code_the_cash_and_settlement_flows_raise_has_a_title() -> None:
    raised = set(FORMATTED_CODES)
    for name in (*EXPOSED_FLOWS, *CASH_FLOWS):
        text = flow_source(name)
        raised |= set(_RAISED.findall(text))
        raised |= {a or b for a, b in _SHORT.findall(text)}
    answered = {FLOW_CODE_ALIASES.get(code, code) for code in raised}
    internal = {"effective_from_naive", "fee_rules_invalid", "product_invalid"}
    missing = answered - set(FLOW_CODES) - internal
    assert not missing, f"add these to api.problems.FLOW_CODES: {sorted(missing)}"
    assert not set(FLOW_CODES) & set(API_CODES)
    assert {"cash_out_expired", "payout_not_pending", "window_already_open"} <= STATE_CODES
    assert set(FLOW_CODES) >= STATE_CODES


def test_openapi_documents_the_cash_routes(api: Harness) -> None:
    doc = httpx.get(api.base_url + "/openapi.json").json()
    paths = doc["paths"]
    writes = {
        "/v1/agents/{agent_id}/cash-ins": "CashInCreate",
        "/v1/agents/{agent_id}/cash-outs": "CashOutCreate",
        "/v1/agents/{agent_id}/float-topups": "FloatTopUpCreate",
        "/v1/agents/{agent_id}/float-transfers": "FloatTransferCreate",
        "/v1/cash-outs/{cash_out_id}/confirm": "CashOutConfirm",
        "/v1/cash-outs/{cash_out_id}/cancel": "CashOutCancel",
    }
    for path, model in writes.items():
        operation = paths[path]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith(f"/{model}"), path
        assert {"403", "404", "409", "422"} <= set(operation["responses"]), path
    assert paths["/v1/cash-outs/{cash_out_id}/cancel"]["post"]["requestBody"]["required"] is False
    for path in ("/v1/agents/{agent_id}/float", "/v1/cash-outs/{cash_out_id}"):
        assert "get" in paths[path]
    codes = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
    assert {"float_short", "cash_out_expired", "limit_exceeded_daily"} <= set(codes)
    schemas = doc["components"]["schemas"]
    assert schemas["CashInCreate"]["additionalProperties"] is False
    assert "CashOutOut" in schemas and "FloatOut" in schemas
