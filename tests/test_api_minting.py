"""No tenant can create money or squat an account (issue 11, "Deliver" 1), over signed HTTP
on both engines.

The story: a village with a storefront, an agent, a villager, a second storefront and the
platform. Each tenant holds 10,000 it was lent by an operator in a bounded account of its
own (the legitimate way in). Then every forbidden path is tried, by the storefront and by
the agent: crediting a party's account (its own proceeds or float, a villager's wallet,
another storefront's escrow, the platform's fee income and provider clearing), crediting
an account nobody or an operator opened, debiting an unbounded or debit-normal account of
its own, and opening a future party's or provider's account id before onboarding. Each is
a 4xx with its own code, every balance in the village is unchanged, and the ledger's
integrity check passes. The allowed paths still work.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.local_server import ServerThread
from ledger import Account, AccountFlags, Ledger
from ledger.flows import ownership, parties
from ledger.flows.parties import Role
from tests.test_api_attacks import refused, send
from tests.test_api_harness import (
    FAST_TEST_SETTINGS,
    Harness,
    account_body,
    api,
    api_server,
    funded_pair,
    transfer_body,
)

__all__ = ["api", "api_server"]

KES = "KES"
LENT_MINOR = 10_000
BANK = "KCB"
FLOAT_MINOR = 50_000
BOUNDED = ["debits_must_not_exceed_credits"]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@dataclass
class Tenant:
    client: Client
    party_id: str
    source: str
    """A bounded account of its own holding :data:`LENT_MINOR`."""
    destination: str
    """An account of its own, with no flags."""

    def account(self, role: str) -> str:
        return str(parties.account_id(uuid.UUID(self.party_id), role))


@dataclass
class Village:
    api: Harness
    operator: Client
    shop: Tenant
    agent: Tenant
    other_shop: Tenant
    villager_id: str
    bank: str
    """The operator's own account (no owner but the operator, no flags)."""
    watched: list[str] = field(default_factory=list)

    def tenant(self, role: str) -> Tenant:
        return self.shop if role == "storefront" else self.agent

    def onboard(self, kind: str, party_id: str, **extra: Any) -> httpx.Response:
        body = {"id": party_id, "kind": kind, "name": f"{kind} {party_id[:8]}", "currency": KES}
        return self.operator.request("POST", "/v1/parties", json_body={**body, **extra})

    def top_up(self, agent_id: str, provider: str, amount: int) -> httpx.Response:
        body = {"id": str(uuid.uuid4()), "amount_minor": amount, "provider": provider}
        return self.operator.request("POST", f"/v1/agents/{agent_id}/float-topups", json_body=body)

    def balances(self) -> dict[str, tuple[int, int, int, int]]:
        """Every watched account's four counters."""
        found = self.api.ledger.lookup_accounts([uuid.UUID(a) for a in self.watched])
        assert len(found) == len(self.watched)
        return {
            str(a.id): (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in found
        }


def party_accounts(led: Ledger, party_id: uuid.UUID) -> list[str]:
    found = led.transact(lambda tx: parties.find_party(tx, party_id))
    assert found is not None
    return [str(a) for a in found.accounts.values()]


def tenant(api: Harness, village_operator: Client, role: str) -> Tenant:
    made = api.key(role)
    client = api.client_for(made)
    body = {"id": made["principal_id"], "kind": role, "name": role, "currency": KES}
    ok(village_operator.request("POST", "/v1/parties", json_body=body), 201)
    source, destination, _ = funded_pair(client, LENT_MINOR)
    return Tenant(client, made["principal_id"], source, destination)


@pytest.fixture
def village(api: Harness) -> Village:
    operator = api.client("operator")
    shop, agent, other_shop = (
        tenant(api, operator, r) for r in ("storefront", "agent", "storefront")
    )
    villager_id = str(uuid.uuid4())
    bank = operator.create_account(**account_body())["id"]
    found = Village(api, operator, shop, agent, other_shop, villager_id, bank)
    ok(found.onboard("villager", villager_id, kyc_tier="tier0"), 201)
    ok(found.top_up(agent.party_id, BANK, FLOAT_MINOR), 201)
    platform = parties.platform_id(KES)
    for party in (shop.party_id, agent.party_id, other_shop.party_id, villager_id, platform):
        found.watched += party_accounts(api.ledger, uuid.UUID(str(party)))
    for t in (shop, agent, other_shop):
        found.watched += [t.source, t.destination]
    found.watched.append(bank)
    return found


def unchanged(village: Village, before: dict[str, tuple[int, int, int, int]]) -> None:
    assert village.balances() == before
    assert village.api.ledger.check_integrity().ok


def post(client: Client, transfers: list[dict[str, Any]]) -> httpx.Response:
    return client.request("POST", "/v1/transfers", json_body={"transfers": transfers})


# -- crediting what the rule forbids ------------------------------------------------------

PLATFORM = parties.platform_id(KES)

TARGETS: dict[str, Any] = {
    "storefront-proceeds": lambda v, t: v.shop.account(Role.PROCEEDS),
    "storefront-escrow": lambda v, t: v.shop.account(Role.ESCROW),
    "agent-float": lambda v, t: v.agent.account(Role.FLOAT),
    "agent-commission": lambda v, t: v.agent.account(Role.COMMISSION),
    "villager-wallet": lambda v, t: str(parties.account_id(uuid.UUID(v.villager_id), Role.WALLET)),
    "other-storefront-escrow": lambda v, t: v.other_shop.account(Role.ESCROW),
    "platform-fee-income": lambda v, t: str(parties.account_id(PLATFORM, Role.FEE_INCOME)),
    "platform-provider-clearing": lambda v, t: str(
        parties.account_id(PLATFORM, parties.provider_role(BANK))
    ),
    "operator-account": lambda v, t: v.bank,
    "account-nobody-opened": lambda v, t: str(uuid.uuid4()),
}


@pytest.mark.parametrize("role", ["storefront", "agent"])
@pytest.mark.parametrize("target", list(TARGETS))
def test_a_tenant_cannot_credit_what_the_rule_forbids(
    village: Village, role: str, target: str
) -> None:
    """Money into a party's account moves only through the flows: a raw credit of one
    from the tenant's own funded account is refused, and nothing anywhere changes."""
    attacker = village.tenant(role)
    credit = TARGETS[target](village, attacker)
    before = village.balances()
    answer = post(attacker.client, [transfer_body(attacker.source, credit, 1_000)])
    refused(answer, 422, "credit_account_forbidden")
    assert answer.json()["index"] == 0
    unchanged(village, before)


@pytest.mark.parametrize("role", ["storefront", "agent"])
def test_a_forbidden_credit_later_in_a_batch_writes_nothing_of_the_batch(
    village: Village, role: str
) -> None:
    attacker = village.tenant(role)
    wallet = str(parties.account_id(uuid.UUID(village.villager_id), Role.WALLET))
    before = village.balances()
    answer = post(
        attacker.client,
        [
            transfer_body(attacker.source, attacker.destination, 500),
            transfer_body(attacker.source, wallet, 500, flags=["pending"], timeout_s=60),
        ],
    )
    refused(answer, 422, "credit_account_forbidden")
    assert answer.json()["index"] == 1
    unchanged(village, before)


# -- debiting what the rule forbids -------------------------------------------------------


@pytest.mark.parametrize("role", ["storefront", "agent"])
@pytest.mark.parametrize(
    "flags", [[], ["credits_must_not_exceed_debits"]], ids=["no-flags", "debit-normal"]
)
def test_a_tenant_cannot_debit_an_unbounded_account_of_its_own(
    village: Village, role: str, flags: list[str]
) -> None:
    """The old way to mint: open an account without a limit and pay from it."""
    attacker = village.tenant(role)
    unbounded = attacker.client.create_account(**account_body(flags=flags))["id"]
    village.watched.append(unbounded)
    before = village.balances()
    for credit in (attacker.source, attacker.destination, village.other_shop.destination):
        answer = post(attacker.client, [transfer_body(unbounded, credit, 1_000_000)])
        refused(answer, 422, "debit_account_unbounded")
        assert answer.json()["index"] == 0
    hold = transfer_body(unbounded, attacker.destination, 5, flags=["pending"], timeout_s=60)
    refused(post(attacker.client, [hold]), 422, "debit_account_unbounded")
    unchanged(village, before)


@pytest.mark.parametrize("role", ["storefront", "agent"])
def test_a_tenant_cannot_debit_its_partys_accounts_or_anothers(village: Village, role: str) -> None:
    """A party's accounts are read by their principal but moved only by the flows; another
    tenant's account is answered as if it did not exist."""
    attacker = village.tenant(role)
    own_party = attacker.account(Role.ESCROW if role == "storefront" else Role.FLOAT)
    before = village.balances()
    for debit in (own_party, village.other_shop.source, village.bank):
        answer = post(attacker.client, [transfer_body(debit, attacker.destination, 1_000)])
        refused(answer, 404, "not_found")
        assert answer.json()["index"] == 0
    unchanged(village, before)


# -- squatting a future party's account -----------------------------------------------------


@pytest.mark.parametrize("role", ["storefront", "agent", "operator"])
def test_nobody_opens_an_account_id_the_platform_derives(api: Harness, role: str) -> None:
    """A storefront not yet onboarded knows its principal id, hence its future escrow id;
    the platform's future provider clearing id is derivable too. Both are version 5 UUIDs,
    refused for every role; then onboarding and first use open them unowned."""
    caller = api.client(role)
    future_shop = api.key("storefront")
    escrow = parties.account_id(uuid.UUID(future_shop["principal_id"]), Role.ESCROW)
    provider = f"P{uuid.uuid4().hex[:8].upper()}"
    clearing = parties.account_id(PLATFORM, parties.provider_role(provider))
    for squatted in (
        escrow,
        clearing,
        parties.platform_id(KES),
        uuid.uuid1(),
        uuid.uuid3(uuid.NAMESPACE_DNS, "x"),
    ):
        body = account_body(id=str(squatted), code=int(parties.AccountCode.ESCROW), flags=BOUNDED)
        refused(
            send(caller, "POST", "/v1/accounts", json.dumps(body).encode()),
            422,
            "account_id_reserved",
        )
    assert api.ledger.lookup_accounts([escrow, clearing]) == []

    operator = api.client("operator")
    body = {
        "id": future_shop["principal_id"],
        "kind": "storefront",
        "name": "Duka",
        "currency": KES,
    }
    onboarded = ok(operator.request("POST", "/v1/parties", json_body=body), 201)
    assert onboarded["accounts"]["escrow"] == str(escrow)
    assert api.client_for(future_shop).list_accounts()["data"] == []  # it owns nothing

    agent = api.key("agent")
    body = {"id": agent["principal_id"], "kind": "agent", "name": "Kibanda", "currency": KES}
    ok(operator.request("POST", "/v1/parties", json_body=body), 201)
    top_up = {"id": str(uuid.uuid4()), "amount_minor": 5_000, "provider": provider}
    path = f"/v1/agents/{agent['principal_id']}/float-topups"
    ok(operator.request("POST", path, json_body=top_up), 201)
    [opened] = api.ledger.lookup_accounts([clearing])
    assert opened.debits_posted == 5_000
    assert api.ledger.transact(lambda tx: ownership.owner_of(tx, clearing)) is None
    assert api.ledger.check_integrity().ok


def uuid7() -> uuid.UUID:
    """A version 7 (time-ordered) UUID: Python 3.11 has no ``uuid.uuid7``."""
    unix_ms = time.time_ns() // 1_000_000
    value = (unix_ms << 80) | (0x7 << 76) | (secrets.randbits(12) << 64)
    value |= (0b10 << 62) | secrets.randbits(62)
    return uuid.UUID(int=value)


@pytest.mark.parametrize("make", [uuid.uuid4, uuid7], ids=["v4", "v7"])
def test_random_and_time_ordered_account_ids_are_opened(api: Harness, make: Any) -> None:
    shop = api.client("storefront")
    account_id = make()
    assert account_id.version in (4, 7)
    assert shop.create_account(**account_body(id=str(account_id)))["id"] == str(account_id)


def _legacy_squat(led: Ledger, squatter: str, account: Account) -> None:
    """What a squatter could do before the rule: open the id and be recorded its owner
    (written as the old ``POST /v1/accounts`` wrote it)."""

    def work(tx: Any) -> None:
        tx.create_accounts([account])
        tx.execute(
            "INSERT INTO account_owners (account_id, principal_id, created_at_us)"
            " VALUES (:a, :p, :now)",
            {"a": account.id, "p": uuid.UUID(squatter), "now": tx.now_us},
        )

    led.transact(work)


def test_onboarding_adopts_no_account_a_principal_opened(api: Harness) -> None:
    """Even an id squatted before the rule existed (its owner row written): onboarding
    refuses it (409 account_id_taken) and writes nothing, so the squatter can never move
    escrowed money out of it."""
    operator = api.client("operator")
    shop = api.key("storefront")
    escrow = parties.account_id(uuid.UUID(shop["principal_id"]), Role.ESCROW)
    code, flags = parties.ROLE_ACCOUNTS[Role.ESCROW]
    _legacy_squat(api.ledger, shop["principal_id"], Account(escrow, KES, int(code), flags))
    body = {"id": shop["principal_id"], "kind": "storefront", "name": "Duka", "currency": KES}
    refused(operator.request("POST", "/v1/parties", json_body=body), 409, "account_id_taken")
    found = operator.request("GET", f"/v1/parties/{shop['principal_id']}")
    refused(found, 404, "party_not_found")
    assert api.ledger.check_integrity().ok


def test_a_provider_clearing_id_squatted_before_first_use_is_refused(api: Harness) -> None:
    operator = api.client("operator")
    agent_key, squatter = api.key("agent"), api.key("agent")
    body = {"id": agent_key["principal_id"], "kind": "agent", "name": "Kibanda", "currency": KES}
    ok(operator.request("POST", "/v1/parties", json_body=body), 201)
    provider = f"P{uuid.uuid4().hex[:8].upper()}"
    clearing = parties.account_id(PLATFORM, parties.provider_role(provider))
    _legacy_squat(
        api.ledger,
        squatter["principal_id"],
        Account(clearing, KES, parties.AccountCode.PROVIDER_CLEARING),
    )
    float_id = parties.account_id(uuid.UUID(agent_key["principal_id"]), Role.FLOAT)
    top_up = {"id": str(uuid.uuid4()), "amount_minor": 5_000, "provider": provider}
    path = f"/v1/agents/{agent_key['principal_id']}/float-topups"
    refused(operator.request("POST", path, json_body=top_up), 409, "account_id_taken")
    [float_account] = api.ledger.lookup_accounts([float_id])
    assert float_account.credits_posted == 0
    assert api.ledger.check_integrity().ok


def test_an_unowned_account_with_the_roles_code_and_flags_is_adopted(api: Harness) -> None:
    """An account opened on the ledger itself (no principal's) is the party's to adopt."""
    operator = api.client("operator")
    shop = api.key("storefront")
    proceeds = parties.account_id(uuid.UUID(shop["principal_id"]), Role.PROCEEDS)
    code, flags = parties.ROLE_ACCOUNTS[Role.PROCEEDS]
    api.ledger.create_accounts([Account(proceeds, KES, int(code), flags)])
    body = {"id": shop["principal_id"], "kind": "storefront", "name": "Duka", "currency": KES}
    assert ok(operator.request("POST", "/v1/parties", json_body=body), 201)["accounts"][
        "proceeds"
    ] == str(proceeds)


# -- what stays allowed ---------------------------------------------------------------------


@pytest.mark.parametrize("role", ["storefront", "agent"])
def test_a_tenant_pays_its_own_accounts_and_other_tenants(village: Village, role: str) -> None:
    payer = village.tenant(role)
    payee = village.agent if role == "storefront" else village.shop
    results = ok(
        post(
            payer.client,
            [
                transfer_body(payer.source, payer.destination, 1_000),
                transfer_body(payer.source, payee.destination, 2_000),
                transfer_body(payer.source, payee.source, 3_000),
            ],
        )
    )["results"]
    assert [r["status"] for r in results] == ["created"] * 3
    [source] = village.api.ledger.lookup_accounts([uuid.UUID(payer.source)])
    assert source.credits_posted - source.debits_posted == LENT_MINOR - 6_000
    [received] = village.api.ledger.lookup_accounts([uuid.UUID(payee.destination)])
    assert received.credits_posted == 2_000
    # the bound holds: no more than the account holds leaves it
    [over] = ok(post(payer.client, [transfer_body(payer.source, payer.destination, 4_001)]))[
        "results"
    ]
    assert over["status"] == "exceeds_credits"
    assert village.api.ledger.check_integrity().ok


def test_an_operator_lends_into_a_tenants_bounded_account_at_once(village: Village) -> None:
    """The operator's own account touches no party account: applied directly (200)."""
    results = ok(post(village.operator, [transfer_body(village.bank, village.shop.source, 700)]))
    assert results["results"][0]["status"] == "created"
    [source] = village.api.ledger.lookup_accounts([uuid.UUID(village.shop.source)])
    assert source.credits_posted == LENT_MINOR + 700
    assert AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS in source.flags


# -- a request signed for another host ------------------------------------------------------


def test_a_request_signed_for_another_host_is_refused(api: Harness) -> None:
    shop = api.client("storefront")
    source, destination, _ = funded_pair(shop, 1_000)
    path = "/v1/transfers"
    body = json.dumps({"transfers": [transfer_body(source, destination, 10)]}).encode()
    elsewhere = "http://ledger.elsewhere.example" + path
    headers = shop.signed_headers("POST", elsewhere, body, idempotency_key=str(uuid.uuid4()))
    refused(httpx.post(shop.url(path), content=body, headers=headers), 401, "signature_invalid")
    # signed for this server, but sent naming another Host: the target URI differs
    headers = shop.signed_headers("POST", shop.url(path), body, idempotency_key="h2")
    headers["host"] = "ledger.elsewhere.example"
    refused(httpx.post(shop.url(path), content=body, headers=headers), 401, "signature_invalid")
    [account] = api.ledger.lookup_accounts([uuid.UUID(source)])
    assert account.debits_posted == 0


@pytest.fixture
def behind_proxy(api: Harness) -> Iterator[str]:
    """A second server on the same database that knows its public origin."""
    origin = "https://ledger.village.example"
    settings = dataclasses.replace(FAST_TEST_SETTINGS, public_origin=origin)
    server = ServerThread(create_app(api.db_url, settings=settings)).start()
    try:
        yield server.base_url
    finally:
        server.stop()


def test_behind_a_proxy_only_the_public_origin_is_signed_for(
    api: Harness, behind_proxy: str
) -> None:
    shop = api.client("storefront")
    path = "/v1/accounts"
    origin = "https://ledger.village.example"
    good = shop.signed_headers("GET", origin + path)
    assert httpx.get(behind_proxy + path, headers=good).status_code == 200
    for signed_for, host in (
        (behind_proxy + path, None),
        ("https://ledger.elsewhere.example" + path, "ledger.elsewhere.example"),
    ):
        headers = shop.signed_headers("GET", signed_for)
        if host is not None:
            headers["host"] = host
        refused(httpx.get(behind_proxy + path, headers=headers), 401, "signature_invalid")
