"""Money only leaves with its owner's say: random days of signed API calls (issue 11).

Each example is a fresh village on the module's server (both engines): two storefronts,
two agents and three villagers registered at the first agent's station, each with keys or
a PIN of its own. Hypothesis draws a sequence of steps, honest and not: float top-ups,
cash-ins, cash-outs and wallet payments of orders (with the villager's code, with none,
with another villager's code, with a code for another agent or order), deliveries,
settlement windows with their payouts confirmed, and raw transfers by a storefront or an
agent that try to credit a wallet, proceeds, float or escrow.

After every step, against the ledger as the auditor reads it:

* what left the platform (cash handed over at the counters, payouts paid) never exceeds
  what came in (float top-ups, cash handed in);
* every wallet holds exactly what the villager's consented steps leave it (so no wallet
  was debited without a valid consent), and nothing is held on it between steps;
* no wallet holds more than its tier's maximum.

Orders pay a 2% fee on release (some of it the agent's commission); no other fee schedule
is published, so cash-ins and cash-outs move exactly their amounts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from api.client import Client
from ledger.flows import fees, villagers
from ledger.flows.consent import Purpose
from ledger.flows.errors import FlowError
from ledger.flows.parties import Role, account_id
from tests.consent_helpers import PIN, issue, new_phone
from tests.test_api_harness import Harness, account_body, api, api_server, transfer_body
from tests.villager_helpers import activation_code

__all__ = ["api", "api_server"]

KES = "KES"
PROVIDER = "MPESA"
TIER0_BALANCE_MAX_MINOR = 2_000_000
"""The seeded tier0 wallet maximum in KES (ledger/flows/limits.py): KES 20,000.00."""
SHOPS, AGENTS, VILLAGERS = 2, 2, 3
OPENING_FLOAT_MINOR = 2_000_000
OPENING_WALLET_MINOR = 400_000
"""Each village opens with these, so that most honest steps have money to move."""
ORDER_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200}],
    "split_bps": {"agent_commission": 2_500},
}


def answer(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json() if response.content else None


def debited(step: str, how: str, accepted: bool, status: int, found: Any) -> bool:
    """Whether a wallet debit was accepted; only the villager's own code may get one
    accepted, and a refusal is a 4xx problem."""
    event(f"{step} {how}: {status} {'' if accepted else found.get('code', '')}")
    if not accepted:
        assert status in (404, 409, 422, 429), found
        return False
    assert how == "own", f"a {step} without the villager's own code went through: {found}"
    return True


@dataclass
class Village:
    """The example's principals, and what the test expects of the money."""

    api: Harness
    operator: Client
    auditor: Client
    shops: list[tuple[uuid.UUID, Client]]
    agents: list[tuple[uuid.UUID, Client]]
    villagers: list[uuid.UUID]
    wallets_minor: dict[uuid.UUID, int] = field(default_factory=dict)
    """Each wallet as the villager's own steps leave it (the model)."""
    in_minor: int = 0
    paid_out_minor: int = 0

    # -- reading the ledger as the auditor does ------------------------------------------

    def counters(self, account: uuid.UUID) -> dict[str, int]:
        status, found = answer(self.auditor.request("GET", f"/v1/accounts/{account}"))
        assert status == 200, found
        return {k: found[k] for k in ("debits_pending", "debits_posted", "credits_posted")}

    def wallet(self, villager_id: uuid.UUID) -> dict[str, int]:
        return self.counters(account_id(villager_id, Role.WALLET))

    def cash_handed_out_minor(self) -> int:
        """Cash the agents' counters paid out: their ``cash`` accounts' posted credits."""
        return sum(
            self.counters(account_id(a, Role.CASH))["credits_posted"] for a, _ in self.agents
        )

    # -- steps ------------------------------------------------------------------------------

    def top_up(self, agent: int, amount_minor: int) -> None:
        agent_id, _ = self.agents[agent]
        body = {"id": str(uuid.uuid4()), "amount_minor": amount_minor, "provider": PROVIDER}
        status, _ = answer(
            self.operator.request("POST", f"/v1/agents/{agent_id}/float-topups", json_body=body)
        )
        assert status == 201
        self.in_minor += amount_minor

    def cash_in(self, agent: int, villager: int, amount_minor: int) -> None:
        agent_id, client = self.agents[agent]
        villager_id = self.villagers[villager]
        body = {"id": str(uuid.uuid4()), "villager_id": str(villager_id)}
        body["amount_minor"] = amount_minor  # type: ignore[assignment]
        status, found = answer(
            client.request("POST", f"/v1/agents/{agent_id}/cash-ins", json_body=body)
        )
        if status == 201:
            self.in_minor += amount_minor
            self.wallets_minor[villager_id] += amount_minor
        else:
            assert status in (404, 409, 422), found

    def code_for(
        self, how: str, villager: int, amount_minor: int, purpose: Purpose, **tied: uuid.UUID
    ) -> str | None:
        """The code a request carries (``how``): the villager's own; none; one another
        villager made for the same step; or the villager's own for another agent (a
        withdrawal) or another amount (a payment)."""
        if how == "none":
            return None
        maker = self.villagers[(villager + 1) % VILLAGERS if how == "other_villager" else villager]
        if how == "other_target" and "agent_id" in tied:
            others = [a for a, _ in self.agents if a != tied["agent_id"]]
            tied = {"agent_id": others[0]}
        elif how == "other_target":
            amount_minor += 1
        try:
            made = issue(
                self.api.ledger,
                villager_id=maker,
                amount_minor=amount_minor,
                purpose=purpose,
                **tied,
            )
        except FlowError:
            return None  # past the maker's tier ceiling: the request goes without a code
        return made.code

    def cash_out(self, agent: int, villager: int, amount_minor: int, how: str) -> None:
        agent_id, client = self.agents[agent]
        villager_id = self.villagers[villager]
        code = self.code_for(how, villager, amount_minor, Purpose.WITHDRAWAL, agent_id=agent_id)
        body: dict[str, Any] = {"id": str(uuid.uuid4()), "villager_id": str(villager_id)}
        body["amount_minor"] = amount_minor
        if code is not None:
            body["consent_code"] = code
        status, found = answer(
            client.request("POST", f"/v1/agents/{agent_id}/cash-outs", json_body=body)
        )
        if not debited("cash-out", how, status == 201, status, found):
            return
        status, found = answer(client.request("POST", f"/v1/cash-outs/{found['id']}/confirm"))
        assert status == 200 and found["state"] == "completed", found
        self.wallets_minor[villager_id] -= amount_minor

    def order(self, shop: int, villager: int, agent: int, amount_minor: int, how: str) -> None:
        _, shop_client = self.shops[shop]
        agent_id, agent_client = self.agents[agent]
        villager_id = self.villagers[villager]
        order_id = uuid.uuid4()
        body = {
            "id": str(order_id),
            "currency": KES,
            "amount_minor": amount_minor,
            "delivery_method": "courier",
            "villager_id": str(villager_id),
            "agent_id": str(agent_id),
        }
        status, found = answer(shop_client.request("POST", "/v1/orders", json_body=body))
        assert status == 201, found
        code = self.code_for(how, villager, amount_minor, Purpose.PAYMENT, order_id=order_id)
        pay: dict[str, Any] = {"source": "wallet"}
        if code is not None:
            pay["consent_code"] = code
        status, found = answer(
            shop_client.request("POST", f"/v1/orders/{order_id}/pay", json_body=pay)
        )
        if not debited("order payment", how, status == 200, status, found):
            return
        self.wallets_minor[villager_id] -= amount_minor
        status, found = answer(shop_client.request("POST", f"/v1/orders/{order_id}/dispatch"))
        assert status == 200, found
        for step in ("deliver", "release"):
            status, found = answer(agent_client.request("POST", f"/v1/orders/{order_id}/{step}"))
            assert status == 200, found
        assert found["state"] == "released", found

    def settle(self) -> None:
        """Close a window and confirm this village's payouts (other examples' shops on the
        same server are paid too; only ours count here)."""
        window_id = str(uuid.uuid4())
        opened = {"id": window_id, "currency": KES}
        status, found = answer(
            self.operator.request("POST", "/v1/settlement-windows", json_body=opened)
        )
        assert status == 201, found
        path = f"/v1/settlement-windows/{window_id}"
        status, found = answer(
            self.operator.request("POST", f"{path}/close", json_body={"provider": PROVIDER})
        )
        assert status == 200, found
        ours = {str(shop_id) for shop_id, _ in self.shops}
        status, page = answer(
            self.auditor.request("GET", f"{path}/payouts", params={"limit": "100"})
        )
        assert status == 200 and not page["has_more"], page
        for payout in page["data"]:
            reference = {"provider_reference": uuid.uuid4().hex[:16]}
            status, found = answer(
                self.operator.request(
                    "POST", f"/v1/payouts/{payout['id']}/confirm", json_body=reference
                )
            )
            assert status == 200, found
            if payout["storefront_id"] in ours:
                self.paid_out_minor += payout["amount_minor"]

    def mint(self, by: str, index: int, target: str) -> None:
        """A raw transfer into a party's account from an unbounded account of the caller."""
        _, client = (self.shops if by == "shop" else self.agents)[index]
        owner = {
            "wallet": self.villagers[0],
            "proceeds": self.shops[0][0],
            "float": self.agents[0][0],
            "escrow": self.shops[1][0],
        }[target]
        source = client.create_account(**account_body())["id"]
        credit = str(account_id(owner, Role(target)))
        status, found = answer(
            client.request(
                "POST", "/v1/transfers", json_body={"transfers": [transfer_body(source, credit, 1)]}
            )
        )
        assert 400 <= status < 500, found

    # -- what must hold after every step -------------------------------------------------

    def check(self) -> None:
        out_minor = self.cash_handed_out_minor() + self.paid_out_minor
        assert out_minor <= self.in_minor, (out_minor, self.in_minor)
        for villager_id in self.villagers:
            wallet = self.wallet(villager_id)
            balance_minor = wallet["credits_posted"] - wallet["debits_posted"]
            assert balance_minor == self.wallets_minor[villager_id], villager_id
            assert wallet["debits_pending"] == 0, villager_id
            assert balance_minor <= TIER0_BALANCE_MAX_MINOR, villager_id


def new_village(api: Harness) -> Village:
    operator, auditor = api.client("operator"), api.client("auditor")

    def tenant(role: str, kind: str) -> tuple[uuid.UUID, Client]:
        made = api.key(role)
        body = {
            "id": made["principal_id"],
            "kind": kind,
            "name": f"{kind} {made['key_id'][:6]}",
            "currency": KES,
        }
        assert operator.request("POST", "/v1/parties", json_body=body).status_code == 201
        return uuid.UUID(made["principal_id"]), api.client_for(made)

    shops = [tenant("storefront", "storefront") for _ in range(SHOPS)]
    agents = [tenant("agent", "agent") for _ in range(AGENTS)]
    village = Village(api, operator, auditor, shops, agents, [])
    _, station = agents[0]
    for n in range(VILLAGERS):
        body = {
            "id": str(uuid.uuid4()),
            "phone": new_phone(),
            "name": f"villager {n}",
            "currency": KES,
            "language": "sw",
        }
        status, found = answer(station.request("POST", "/v1/villagers", json_body=body))
        assert status == 201, found
        villager_id = uuid.UUID(found["id"])
        code = activation_code(api.ledger, villager_id)
        villagers.activate(api.ledger, phone=found["phone"], activation_code=code, pin=PIN)
        village.villagers.append(villager_id)
        village.wallets_minor[villager_id] = 0
    return village


amounts = st.integers(min_value=1, max_value=600_000)
consents = st.sampled_from(["own", "own", "none", "other_villager", "other_target"])
steps = st.one_of(
    st.tuples(st.just("top_up"), st.integers(0, AGENTS - 1), st.integers(1, 3_000_000)),
    st.tuples(
        st.just("cash_in"), st.integers(0, AGENTS - 1), st.integers(0, VILLAGERS - 1), amounts
    ),
    st.tuples(
        st.just("cash_out"),
        st.integers(0, AGENTS - 1),
        st.integers(0, VILLAGERS - 1),
        st.integers(5_000, 600_000),
        consents,
    ),
    st.tuples(
        st.just("order"),
        st.integers(0, SHOPS - 1),
        st.integers(0, VILLAGERS - 1),
        st.integers(0, AGENTS - 1),
        amounts,
        consents,
    ),
    st.tuples(st.just("settle")),
    st.tuples(
        st.just("mint"),
        st.sampled_from(["shop", "agent"]),
        st.integers(0, 1),
        st.sampled_from(["wallet", "proceeds", "float", "escrow"]),
    ),
)


@pytest.fixture(scope="module")
def order_fees(api_server: Harness) -> None:
    """The platform's order schedule (published on the ledger: fee schedules have no route
    yet)."""
    fees.publish_schedule(
        api_server.ledger,
        product="order",
        currency=KES,
        effective_from=datetime.now(UTC) - timedelta(days=1),
        rules=ORDER_RULES,
    )


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(day=st.lists(steps, min_size=4, max_size=14))
def test_no_sequence_of_calls_moves_money_without_its_owner(
    api: Harness, order_fees: None, day: list[tuple[Any, ...]]
) -> None:
    village = new_village(api)
    for agent in range(AGENTS):
        village.top_up(agent, OPENING_FLOAT_MINOR)
    for villager in range(VILLAGERS):
        village.cash_in(0, villager, OPENING_WALLET_MINOR)
    try:
        for step in day:
            getattr(village, step[0])(*step[1:])
            village.check()
    finally:
        api.close_clients()
