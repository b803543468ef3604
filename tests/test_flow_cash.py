"""Cash at the agent's counter: cash-in pays the wallet from the agent's float, cash-out
holds the wallet and the agent's cash until the agent confirms; fees, commissions,
minimums, timeouts, idempotency, and the properties that keep money where it belongs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.flows import agent_float, cash, events, fees, limits, parties
from ledger.flows.cash import CashOutMode, CashOutState
from ledger.flows.consent import Purpose
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock
from tests.consent_helpers import consenting_villager, withdrawal_code

KES = "KES"

CASH_IN_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "fixed_minor": 0}],
    "platform_commission": {"bps": 50, "max_minor": 5_000},
}
CASH_OUT_RULES: dict[str, Any] = {
    "bands": [
        {"up_to_minor": 10_000, "fixed_minor": 0},
        {"up_to_minor": 50_000, "fixed_minor": 1_100},
        {"up_to_minor": None, "bps": 150, "min_minor": 1_500, "max_minor": 20_000},
    ],
    "split_bps": {"tax": 1_500, "agent_commission": 3_333},
}


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# -- a village: one platform, agents, villagers ---------------------------------------------


@dataclass
class Village:
    led: Ledger
    clock: Clock
    registrar: Party | None = None
    """The station where the villagers were registered (made on first use)."""

    def agent(self, float_minor: int = 0, name: str = "Wanjiru's shop") -> Party:
        agent = parties.onboard(
            self.led, party_id=new_id(), kind=Kind.AGENT, name=name, currency=KES
        )
        if float_minor:
            agent_float.top_up_float(
                self.led,
                topup_id=new_id(),
                agent_id=agent.id,
                amount_minor=float_minor,
                provider="BANK",
            )
        return agent

    def villager(self, tier: str = "tier1", name: str = "Otieno") -> Party:
        """A villager registered at a station, with a PIN: she can consent to cash-outs."""
        if self.registrar is None:
            self.registrar = self.agent(name="the registering station")
        return consenting_villager(self.led, agent_id=self.registrar.id, tier=tier, name=name)

    def unregistered(self, tier: str, name: str = "Otieno") -> Party:
        """A villager party alone (cash-ins need no consent)."""
        return parties.onboard(
            self.led, party_id=new_id(), kind=Kind.VILLAGER, name=name, currency=KES, kyc_tier=tier
        )

    def publish(self, product: str, rules: dict[str, Any]) -> int:
        return fees.publish_schedule(
            self.led, product=product, currency=KES, effective_from=self.clock.now, rules=rules
        )

    def cash_in(self, agent: Party, villager: Party, amount_minor: int) -> cash.CashIn:
        return cash.cash_in(
            self.led,
            cash_in_id=new_id(),
            agent_id=agent.id,
            villager_id=villager.id,
            amount_minor=amount_minor,
        )

    def code(
        self,
        agent: Party,
        villager: Party,
        amount_minor: int,
        purpose: Purpose = Purpose.WITHDRAWAL,
    ) -> str:
        """The withdrawal code the villager makes for this agent and amount."""
        return withdrawal_code(
            self.led,
            villager_id=villager.id,
            agent_id=agent.id,
            amount_minor=amount_minor,
            purpose=purpose,
        )

    def request(self, agent: Party, villager: Party, amount_minor: int) -> cash.CashOut:
        """The agent requests a cash-out with the code the villager made for it."""
        return cash.request_cash_out(
            self.led,
            cash_out_id=new_id(),
            agent_id=agent.id,
            villager_id=villager.id,
            amount_minor=amount_minor,
            consent_code=self.code(agent, villager, amount_minor),
        )

    def one_shot(
        self,
        agent: Party,
        villager: Party,
        amount_minor: int,
        cash_out_id: uuid.UUID | None = None,
    ) -> cash.CashOut:
        """A one-shot cash-out with the offline withdrawal code the villager made (which
        holds the amount when it is made)."""
        code = self.code(agent, villager, amount_minor, Purpose.OFFLINE_WITHDRAWAL)
        return cash.cash_out(
            self.led,
            cash_out_id=cash_out_id or new_id(),
            agent_id=agent.id,
            villager_id=villager.id,
            amount_minor=amount_minor,
            consent_code=code,
        )

    def balances(self, agent: Party, villager: Party) -> dict[str, int]:
        """Net balances on each account's normal side, and what is held."""
        platform = parties.platform_id(KES)
        ids = {
            "wallet": villager.account(Role.WALLET),
            "float": agent.account(Role.FLOAT),
            "cash": agent.account(Role.CASH),
            "cash_control": agent.account(Role.CASH_CONTROL),
            "commission": agent.account(Role.COMMISSION),
            "fee_income": parties.account_id(platform, Role.FEE_INCOME),
            "tax": parties.account_id(platform, Role.TAX_PAYABLE),
            "rounding": parties.account_id(platform, Role.ROUNDING),
            "commission_expense": parties.account_id(platform, Role.COMMISSION_EXPENSE),
        }
        found = {a.id: a for a in self.led.lookup_accounts(list(ids.values()))}
        out: dict[str, int] = {}
        for name, account_id in ids.items():
            a = found[account_id]
            debit_normal = name in ("cash", "commission_expense")
            out[name] = (
                a.debits_posted - a.credits_posted
                if debit_normal
                else a.credits_posted - a.debits_posted
            )
        out["wallet_held"] = found[ids["wallet"]].debits_pending
        out["cash_promised"] = found[ids["cash"]].credits_pending
        out["float_incoming"] = found[ids["float"]].credits_pending
        return out

    def events_of(self, event_type: str, subject_id: uuid.UUID | None = None) -> list[events.Event]:
        found = self.led.transact(
            lambda tx: events.read_events(tx, subject_id=subject_id, limit=1000)
        )
        return [e for e in found if e.type == event_type]


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return Village(ledger, clock)


def refused(code: str) -> Any:
    """``with refused("float_short"):`` expects that refusal."""

    class _Check:
        def __enter__(self) -> None:
            return None

        def __exit__(self, kind: object, exc: object, tb: object) -> bool:
            assert isinstance(exc, Refused), f"expected Refused({code!r}), got {exc!r}"
            assert exc.code == code, f"expected {code!r}, got {exc.code!r}: {exc.detail}"
            return True

    return _Check()


# -- cash-in ------------------------------------------------------------------------------


def test_villager_hands_1_200_kes_to_the_agent_and_the_float_pays_the_wallet(
    village: Village,
) -> None:
    agent = village.agent(float_minor=1_000_000)
    otieno = village.villager()
    done = village.cash_in(agent, otieno, 120_000)
    assert (done.amount_minor, done.fee_minor, done.commission_minor, done.fee_version) == (
        120_000,
        0,
        0,
        None,
    )
    b = village.balances(agent, otieno)
    assert (b["wallet"], b["float"], b["cash"], b["cash_control"]) == (
        120_000,
        880_000,
        120_000,
        120_000,
    )
    assert b["commission"] == 0  # no cash_in schedule in effect: no commission
    [event] = village.events_of(events.CASHIN_COMPLETED, done.id)
    assert event.party_id == agent.id and event.payload["amount_minor"] == 120_000
    assert cash.get_cash_in(village.led, done.id) == done
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_in_minor == 120_000
    assert village.led.check_integrity().ok


def test_the_platform_pays_the_agent_half_a_percent_on_a_cash_in(village: Village) -> None:
    version = village.publish("cash_in", CASH_IN_RULES)
    agent = village.agent(float_minor=1_000_000)
    otieno = village.villager()
    done = village.cash_in(agent, otieno, 120_000)
    assert (done.commission_minor, done.fee_version) == (600, version)
    b = village.balances(agent, otieno)
    assert (b["wallet"], b["float"], b["commission"], b["commission_expense"]) == (
        120_000,
        880_000,
        600,
        600,
    )
    assert village.led.check_integrity().ok


def test_a_cash_in_schedule_with_a_fee_takes_it_out_of_the_wallet(village: Village) -> None:
    village.publish(
        "cash_in",
        {"bands": [{"up_to_minor": None, "fixed_minor": 100}], "split_bps": {"tax": 1_000}},
    )
    agent = village.agent(float_minor=1_000_000)
    otieno = village.villager()
    done = village.cash_in(agent, otieno, 50_000)
    assert done.fee_minor == 100
    b = village.balances(agent, otieno)
    assert (b["wallet"], b["fee_income"], b["tax"], b["float"]) == (49_900, 90, 10, 950_000)
    with refused("fee_exceeds_amount"):
        village.cash_in(agent, otieno, 100)
    assert village.led.check_integrity().ok


def test_a_cash_in_replayed_answers_the_same_and_another_request_conflicts(
    village: Village,
) -> None:
    agent = village.agent(float_minor=1_000_000)
    otieno = village.villager()
    cash_in_id = new_id()
    kwargs: dict[str, Any] = {"agent_id": agent.id, "villager_id": otieno.id}
    first = cash.cash_in(village.led, cash_in_id=cash_in_id, amount_minor=70_000, **kwargs)
    before = village.balances(agent, otieno)
    again = cash.cash_in(village.led, cash_in_id=cash_in_id, amount_minor=70_000, **kwargs)
    assert again == first
    assert village.balances(agent, otieno) == before
    assert len(village.events_of(events.CASHIN_COMPLETED, cash_in_id)) == 1
    with pytest.raises(Conflict) as conflict:
        cash.cash_in(village.led, cash_in_id=cash_in_id, amount_minor=70_001, **kwargs)
    assert conflict.value.code == "cash_in_id_reused"
    assert village.balances(agent, otieno) == before


def test_refused_cash_ins_change_nothing(village: Village) -> None:
    agent = village.agent(float_minor=100_000)
    otieno = village.villager()
    stranger = village.agent(name="another shop")
    before = village.balances(agent, otieno)
    with refused("float_short"):
        village.cash_in(agent, otieno, 100_001)
    with refused("amount_invalid"):
        village.cash_in(agent, otieno, 0)
    with pytest.raises(NotFound):
        village.cash_in(agent, stranger, 100)  # an agent is not a villager
    ugandan = parties.onboard(
        village.led, party_id=new_id(), kind=Kind.VILLAGER, name="Okello", currency="UGX",
        kyc_tier="tier1",
    )  # fmt: skip
    with refused("currency_mismatch"):
        village.cash_in(agent, ugandan, 100)
    unknown_tier = village.unregistered(tier="basic")
    with refused("kyc_tier_unknown"):
        village.cash_in(agent, unknown_tier, 100)
    assert village.balances(agent, otieno) == before
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_in_minor == 0
    assert village.events_of(events.CASHIN_COMPLETED) == []
    # The refused ids were not spent: the same cash-in goes through once float arrives.
    assert village.led.check_integrity().ok


def test_a_cash_in_refused_for_float_goes_through_with_the_same_id_after_a_top_up(
    village: Village,
) -> None:
    agent = village.agent(float_minor=50_000)
    otieno = village.villager()
    cash_in_id = new_id()
    kwargs: dict[str, Any] = {
        "cash_in_id": cash_in_id,
        "agent_id": agent.id,
        "villager_id": otieno.id,
        "amount_minor": 80_000,
    }
    with refused("float_short"):
        cash.cash_in(village.led, **kwargs)
    agent_float.top_up_float(
        village.led, topup_id=new_id(), agent_id=agent.id, amount_minor=50_000, provider="BANK"
    )
    assert cash.cash_in(village.led, **kwargs).amount_minor == 80_000
    assert village.balances(agent, otieno)["float"] == 20_000


# -- cash-out, two-phase --------------------------------------------------------------------


def _funded(village: Village, wallet_minor: int = 1_000_000) -> tuple[Party, Party]:
    """An agent holding ``wallet_minor`` of cash, and a villager whose wallet holds it."""
    agent = village.agent(float_minor=2_000_000)
    otieno = village.villager(tier="tier2")
    village.cash_in(agent, otieno, wallet_minor)
    return agent, otieno


def test_villager_withdraws_2_000_kes_the_agent_confirms_and_the_fee_is_split(
    village: Village,
) -> None:
    village.publish("cash_out", CASH_OUT_RULES)
    agent, otieno = _funded(village)
    requested = village.request(agent, otieno, 200_000)
    assert (requested.state, requested.mode, requested.fee_minor) == (
        CashOutState.REQUESTED,
        CashOutMode.TWO_PHASE,
        3_000,
    )
    assert requested.expires_at == village.clock.now + timedelta(seconds=cash.CASH_OUT_TIMEOUT_S)
    held = village.balances(agent, otieno)
    assert (held["wallet"], held["wallet_held"], held["cash"], held["cash_promised"]) == (
        1_000_000,
        203_000,
        1_000_000,
        200_000,
    )
    assert len(village.events_of(events.CASHOUT_RESERVED, requested.id)) == 1

    village.clock.advance(60)
    done = cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    assert done.state is CashOutState.COMPLETED
    assert done.resolved_at == village.clock.now
    b = village.balances(agent, otieno)
    assert (b["wallet"], b["wallet_held"]) == (1_000_000 - 203_000, 0)
    assert (b["float"], b["float_incoming"]) == (2_000_000 - 1_000_000 + 200_000, 0)
    assert (b["cash"], b["cash_control"], b["cash_promised"]) == (800_000, 800_000, 0)
    # 3,000 = tax 450 + agent 999 + platform 1,550 + rounding 1
    assert (b["tax"], b["commission"], b["fee_income"], b["rounding"]) == (450, 999, 1_550, 1)
    [event] = village.events_of(events.CASHOUT_COMPLETED, requested.id)
    assert event.payload["fee_minor"] == 3_000 and event.party_id == agent.id
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 200_000
    assert village.led.check_integrity().ok


def test_the_fee_quoted_at_request_is_the_fee_paid_at_confirmation(village: Village) -> None:
    village.publish("cash_out", CASH_OUT_RULES)
    agent, otieno = _funded(village)
    requested = village.request(agent, otieno, 200_000)
    village.publish("cash_out", {"bands": [{"up_to_minor": None, "fixed_minor": 9_999}]})
    done = cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    assert done.fee_minor == 3_000
    assert village.balances(agent, otieno)["wallet"] == 1_000_000 - 203_000


def test_without_a_cash_out_schedule_a_withdrawal_is_free(village: Village) -> None:
    agent, otieno = _funded(village)
    requested = village.request(agent, otieno, 100_000)
    assert (requested.fee_minor, requested.fee_version) == (0, None)
    cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    assert village.balances(agent, otieno)["wallet"] == 900_000
    assert village.led.check_integrity().ok


def test_a_withdrawal_below_50_kes_is_refused_and_50_kes_is_taken(village: Village) -> None:
    assert cash.minimum_cash_out_minor(KES) == 5_000
    assert cash.minimum_cash_out_minor("UGX") == 500
    assert cash.minimum_cash_out_minor("USD") == 100  # not listed: one major unit
    agent, otieno = _funded(village)
    with refused("below_minimum"):
        village.request(agent, otieno, 4_999)
    assert village.request(agent, otieno, 5_000).amount_minor == 5_000


def test_a_withdrawal_the_wallet_cannot_pay_with_its_fee_is_refused(village: Village) -> None:
    village.publish("cash_out", CASH_OUT_RULES)
    agent, otieno = _funded(village, wallet_minor=100_000)
    before = village.balances(agent, otieno)
    with refused("wallet_short"):
        village.request(agent, otieno, 100_000)  # + 1,500 fee
    assert village.balances(agent, otieno) == before
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 0
    assert village.request(agent, otieno, 98_500).fee_minor == 1_500


def test_an_agent_cannot_promise_cash_it_has_already_promised(village: Village) -> None:
    """Expected cash-on-hand: the cash account less what open cash-outs promised."""
    agent, otieno = _funded(village, wallet_minor=300_000)
    rich = village.villager(tier="tier2", name="Akinyi")
    other_agent = village.agent(float_minor=1_000_000, name="another shop")
    village.cash_in(other_agent, rich, 1_000_000)  # the other agent holds this cash
    first = village.request(agent, rich, 200_000)
    before = village.balances(agent, otieno)
    with refused("agent_cash_short"):
        village.request(agent, otieno, 100_001)  # 300,000 of cash, 200,000 promised
    assert village.balances(agent, otieno) == before
    village.request(agent, otieno, 100_000)
    # A cancelled promise frees the cash again.
    cash.cancel_cash_out(village.led, cash_out_id=first.id, reason="changed her mind")
    village.request(agent, rich, 200_000)
    assert village.led.check_integrity().ok


def test_a_cancelled_cash_out_gives_the_money_and_the_daily_limit_back(village: Village) -> None:
    village.publish("cash_out", CASH_OUT_RULES)
    agent, otieno = _funded(village)
    before = village.balances(agent, otieno)
    requested = village.request(agent, otieno, 200_000)
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 200_000
    cancelled = cash.cancel_cash_out(village.led, cash_out_id=requested.id, reason="no cash")
    assert (cancelled.state, cancelled.reason) == (CashOutState.CANCELLED, "no cash")
    assert village.balances(agent, otieno) == before
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 0
    # Cancelling again answers the same; confirming now is refused.
    assert cash.cancel_cash_out(village.led, cash_out_id=requested.id) == cancelled
    with refused("cash_out_cancelled"):
        cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    [event] = village.events_of(events.CASHOUT_CANCELLED, requested.id)
    assert event.payload["reason"] == "no cash"
    assert village.led.check_integrity().ok


def test_a_cash_out_nobody_confirms_expires_and_the_sweep_records_it(village: Village) -> None:
    agent, otieno = _funded(village)
    before = village.balances(agent, otieno)
    requested = village.request(agent, otieno, 200_000)
    village.clock.advance(cash.CASH_OUT_TIMEOUT_S - 1)
    assert cash.sweep_cash_outs(village.led) == 0
    assert village.balances(agent, otieno)["wallet_held"] == 200_000
    village.clock.advance(1)
    # The core no longer counts the holds; confirming is refused.
    assert village.balances(agent, otieno) == before
    with refused("cash_out_expired"):
        cash.confirm_cash_out(village.led, cash_out_id=requested.id, agent_id=agent.id)
    assert cash.sweep_cash_outs(village.led) == 1
    assert cash.sweep_cash_outs(village.led) == 0
    expired = cash.get_cash_out(village.led, requested.id)
    assert (expired.state, expired.resolved_at) == (CashOutState.EXPIRED, village.clock.now)
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 0
    assert len(village.events_of(events.CASHOUT_EXPIRED, requested.id)) == 1
    assert cash.cancel_cash_out(village.led, cash_out_id=requested.id) == expired
    assert village.balances(agent, otieno) == before
    assert village.led.expire_pending() == 0  # the sweep wrote the voids
    assert village.led.check_integrity().ok


def test_the_sweep_after_the_core_expired_the_holds_and_a_late_cancel(village: Village) -> None:
    agent, otieno = _funded(village)
    first = village.request(agent, otieno, 100_000)
    second = village.request(agent, otieno, 100_000)
    village.clock.advance(cash.CASH_OUT_TIMEOUT_S)
    assert village.led.expire_pending() == 4
    late = cash.cancel_cash_out(village.led, cash_out_id=first.id)
    assert late.state is CashOutState.EXPIRED
    assert cash.sweep_cash_outs(village.led, limit=1) == 1
    assert cash.get_cash_out(village.led, second.id).state is CashOutState.EXPIRED
    assert limits.get_usage(village.led, villager_id=otieno.id).cash_out_minor == 0
    with pytest.raises(ValueError):
        cash.sweep_cash_outs(village.led, limit=0)
    assert village.led.check_integrity().ok


def test_cash_out_steps_replay_and_refuse_what_no_longer_applies(village: Village) -> None:
    agent, otieno = _funded(village)
    cash_out_id = new_id()
    kwargs: dict[str, Any] = {
        "cash_out_id": cash_out_id,
        "agent_id": agent.id,
        "villager_id": otieno.id,
        "consent_code": None,  # a replay answers before any consent is looked at
    }
    code = village.code(agent, otieno, 100_000)
    requested = cash.request_cash_out(
        village.led, amount_minor=100_000, **{**kwargs, "consent_code": code}
    )
    assert cash.request_cash_out(village.led, amount_minor=100_000, **kwargs) == requested
    with pytest.raises(Conflict):
        cash.request_cash_out(village.led, amount_minor=100_001, **kwargs)
    with pytest.raises(Conflict):
        cash.cash_out(village.led, amount_minor=100_000, **kwargs)  # one-shot, same id
    other = village.agent(name="another shop")
    with refused("agent_mismatch"):
        cash.confirm_cash_out(village.led, cash_out_id=cash_out_id, agent_id=other.id)
    done = cash.confirm_cash_out(village.led, cash_out_id=cash_out_id, agent_id=agent.id)
    after = village.balances(agent, otieno)
    assert cash.confirm_cash_out(village.led, cash_out_id=cash_out_id, agent_id=agent.id) == done
    assert cash.request_cash_out(village.led, amount_minor=100_000, **kwargs) == done
    assert village.balances(agent, otieno) == after
    with refused("cash_out_completed"):
        cash.cancel_cash_out(village.led, cash_out_id=cash_out_id)
    with pytest.raises(NotFound):
        cash.confirm_cash_out(village.led, cash_out_id=new_id(), agent_id=agent.id)
    assert len(village.events_of(events.CASHOUT_COMPLETED, cash_out_id)) == 1


def test_a_one_shot_cash_out_posts_at_once(village: Village) -> None:
    village.publish("cash_out", CASH_OUT_RULES)
    agent, otieno = _funded(village)
    done = village.one_shot(agent, otieno, 200_000)
    assert (done.mode, done.state, done.fee_minor, done.expires_at) == (
        CashOutMode.ONE_SHOT,
        CashOutState.COMPLETED,
        3_000,
        None,
    )
    b = village.balances(agent, otieno)
    assert (b["wallet"], b["cash"], b["commission"]) == (797_000, 800_000, 999)
    with refused("cash_out_completed"):
        cash.cancel_cash_out(village.led, cash_out_id=done.id)
    with refused("wallet_short"):  # the code cannot hold 797,000 and its fee
        village.one_shot(agent, otieno, 797_000)
    assert village.led.check_integrity().ok


def test_an_agent_lists_its_cash_outs_by_cursor_and_state(village: Village) -> None:
    agent, otieno = _funded(village)
    made = []
    for _ in range(5):
        made.append(village.request(agent, otieno, 10_000))
        village.clock.advance(1)
    cash.confirm_cash_out(village.led, cash_out_id=made[1].id, agent_id=agent.id)
    page = cash.list_cash_outs(village.led, agent_id=agent.id, limit=2)
    rest = cash.list_cash_outs(village.led, agent_id=agent.id, after=page[-1].id)
    assert [c.id for c in page + rest] == [c.id for c in made]
    completed = cash.list_cash_outs(village.led, agent_id=agent.id, state=CashOutState.COMPLETED)
    assert [c.id for c in completed] == [made[1].id]
    assert cash.list_cash_outs(village.led, agent_id=new_id()) == []
    assert cash.list_cash_outs(village.led, agent_id=agent.id, after=new_id()) == []
    assert len(cash.list_cash_ins(village.led, agent_id=agent.id)) == 1
    with pytest.raises(ValueError):
        cash.list_cash_outs(village.led, agent_id=agent.id, limit=cash.PAGE_MAX + 1)
    with pytest.raises(NotFound):
        cash.get_cash_out(village.led, new_id())


# -- properties ---------------------------------------------------------------------------

OPERATIONS = ("cash_in", "request", "confirm", "cancel", "one_shot", "wait")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.integers(1, 3), st.integers(0, 9)),
        min_size=1,
        max_size=12,
    )
)
def test_any_sequence_of_cash_operations_keeps_money_and_limits(
    ledger: Ledger, clock: Clock, steps: list[tuple[str, int, int]]
) -> None:
    """Whatever a villager and an agent do (tier0: 5,000 a transaction, 10,000 a day),
    e-money only moves between the wallet, the float and the fee accounts; the agent's
    cash equals cash taken less cash paid; nothing is negative; no day passes a limit."""
    village = Village(ledger, clock)
    tier = limits.get_tier_limits(ledger, currency=KES, tier="tier0")
    start_float = 3_000_000
    agent = village.agent(float_minor=start_float)
    amina = village.villager(tier="tier0", name="Amina")
    open_ids: list[uuid.UUID] = []
    cash_taken = cash_paid = 0
    for operation, size, pick in steps:
        amount = size * 200_000  # 2,000 .. 6,000 KES: the third is over the per-transaction limit
        try:
            if operation == "cash_in":
                village.cash_in(agent, amina, amount)
                cash_taken += amount
            elif operation == "request":
                open_ids.append(village.request(agent, amina, amount).id)
            elif operation == "one_shot":
                village.one_shot(agent, amina, amount)
                cash_paid += amount
            elif operation in ("confirm", "cancel") and open_ids:
                target = open_ids.pop(pick % len(open_ids))
                if operation == "confirm":
                    cash.confirm_cash_out(ledger, cash_out_id=target, agent_id=agent.id)
                    cash_paid += cash.get_cash_out(ledger, target).amount_minor
                else:
                    cash.cancel_cash_out(ledger, cash_out_id=target)
            elif operation == "wait":
                clock.advance(pick * 200)
                cash.sweep_cash_outs(ledger)
        except Refused as refusal:
            assert refusal.code in {
                "float_short",
                "wallet_short",
                "agent_cash_short",
                "limit_exceeded_per_transaction",
                "limit_exceeded_daily",
                "limit_exceeded_balance",
                "cash_out_expired",
                "consent_codes_too_many",  # codes of refused cash-outs stay open a while
            }, refusal
        b = village.balances(agent, amina)
        assert b["wallet"] + b["float"] == start_float  # no fee schedule: nothing else
        assert b["cash"] == b["cash_control"] == cash_taken - cash_paid >= 0
        assert b["cash"] - b["cash_promised"] >= 0
        assert b["wallet"] - b["wallet_held"] >= 0
        assert b["wallet"] <= tier.balance_max_minor
        usage = limits.get_usage(ledger, villager_id=amina.id)
        assert usage.cash_in_minor <= tier.daily_max_minor
        assert usage.cash_out_minor <= tier.daily_max_minor
    assert ledger.check_integrity().ok
