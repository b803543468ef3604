"""KYC limits: per-transaction, daily (cash-in and cash-out counted apart, per UTC day)
and wallet balance, by tier and currency; kept when agents race on one wallet."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import date

import pytest

from ledger import Account, Ledger, Transfer, open_ledger
from ledger.flows import cash, events, limits, orders, parties, suspense
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.test_flow_cash import Village, new_id, refused
from tests.villager_helpers import DEFAULT_PIN, active_villager


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return Village(ledger, clock)


def test_the_seeded_tiers_hold_the_documented_figures(ledger: Ledger) -> None:
    got = {
        (currency, tier): limits.get_tier_limits(ledger, currency=currency, tier=tier)
        for currency in ("KES", "UGX", "TZS")
        for tier in ("tier0", "tier1", "tier2")
    }
    kes0 = got["KES", "tier0"]
    assert (kes0.per_transaction_max_minor, kes0.daily_max_minor, kes0.balance_max_minor) == (
        500_000,
        1_000_000,
        2_000_000,
    )
    kes2 = got["KES", "tier2"]
    assert (kes2.per_transaction_max_minor, kes2.daily_max_minor, kes2.balance_max_minor) == (
        25_000_000,
        50_000_000,
        100_000_000,
    )
    assert got["UGX", "tier1"].per_transaction_max_minor == 2_000_000
    for currency in ("KES", "UGX", "TZS"):
        tiers = [got[currency, t] for t in ("tier0", "tier1", "tier2")]
        for low, high in itertools.pairwise(tiers):
            assert low.per_transaction_max_minor < high.per_transaction_max_minor
            assert low.daily_max_minor < high.daily_max_minor
            assert low.balance_max_minor < high.balance_max_minor
    with refused("kyc_tier_unknown"):
        limits.get_tier_limits(ledger, currency="USD", tier="tier0")


def test_5_000_kes_passes_the_tier0_transaction_limit_and_5_000_01_does_not(
    village: Village,
) -> None:
    agent = village.agent(float_minor=5_000_000)
    amina = village.villager(tier="tier0", name="Amina")
    with refused("limit_exceeded_per_transaction"):
        village.cash_in(agent, amina, 500_001)
    village.cash_in(agent, amina, 500_000)
    with refused("limit_exceeded_per_transaction"):
        village.request(agent, amina, 500_001)
    village.request(agent, amina, 500_000)
    assert village.led.check_integrity().ok


def test_the_daily_limit_counts_cash_in_and_cash_out_apart_and_resets_at_utc_midnight(
    village: Village,
) -> None:
    village.clock.now = village.clock.now.replace(hour=23, minute=0)
    agent = village.agent(float_minor=5_000_000)
    amina = village.villager(tier="tier0", name="Amina")
    village.cash_in(agent, amina, 500_000)
    village.cash_in(agent, amina, 500_000)  # 10,000 KES today: the daily limit
    with refused("limit_exceeded_daily"):
        village.cash_in(agent, amina, 1)
    village.request(agent, amina, 500_000)  # cash-out has its own 10,000 KES
    village.request(agent, amina, 500_000)
    with refused("limit_exceeded_daily"):
        village.request(agent, amina, 5_000)
    usage = limits.get_usage(village.led, villager_id=amina.id)
    assert (usage.cash_in_minor, usage.cash_out_minor) == (1_000_000, 1_000_000)
    village.clock.advance(3600)  # 00:00 UTC: a new day
    village.cash_in(agent, amina, 1_000)
    today = limits.get_usage(village.led, villager_id=amina.id)
    assert (today.day, today.cash_in_minor, today.cash_out_minor) == (date(2026, 6, 2), 1_000, 0)
    yesterday = limits.get_usage(village.led, villager_id=amina.id, day=date(2026, 6, 1))
    assert yesterday.cash_in_minor == 1_000_000


def test_a_wallet_may_not_hold_more_than_its_tier_allows(village: Village) -> None:
    agent = village.agent(float_minor=5_000_000)
    amina = village.villager(tier="tier0", name="Amina")
    village.cash_in(agent, amina, 500_000)
    village.cash_in(agent, amina, 500_000)
    village.clock.advance(86_400)
    village.cash_in(agent, amina, 500_000)
    village.cash_in(agent, amina, 400_000)
    village.clock.advance(86_400)
    before = village.balances(agent, amina)
    with refused("limit_exceeded_balance"):
        village.cash_in(agent, amina, 100_001)  # 20,000 KES is the most she may hold
    assert village.balances(agent, amina) == before
    assert limits.get_usage(village.led, villager_id=amina.id).cash_in_minor == 0
    village.cash_in(agent, amina, 100_000)
    assert village.balances(agent, amina)["wallet"] == 2_000_000


# -- the maximum balance holds on every credit of a wallet, not only a cash-in ---------------

TIER0_BALANCE_MAX_MINOR = 2_000_000  # KES 20,000.00


def fill_wallet_to(led: Ledger, villager: uuid.UUID, balance_minor: int) -> None:
    """Bring the wallet to ``balance_minor`` from an outside account (a test's shortcut
    past the cash-in's daily limit; the core does not know KYC tiers)."""
    bank, wallet = uuid.uuid5(villager, "bank"), parties.account_id(villager, Role.WALLET)
    led.create_accounts([Account(bank, "KES", code=7)])
    [a] = led.lookup_accounts([wallet])
    gap = balance_minor - (a.credits_posted - a.debits_posted)
    debit, credit = (bank, wallet) if gap > 0 else (wallet, bank)
    [result] = led.create_transfers([Transfer(new_id(), debit, credit, abs(gap), "KES", code=1)])
    assert result.status == "created"


def wallet_of(led: Ledger, villager: uuid.UUID) -> int:
    [a] = led.lookup_accounts([parties.account_id(villager, Role.WALLET)])
    return a.credits_posted - a.debits_posted


def receipts_of(led: Ledger, villager: uuid.UUID) -> list[events.Event]:
    found = led.transact(lambda tx: events.read_events(tx, party_id=villager, limit=1000))
    return [e for e in found if e.type == events.WALLET_RECEIPT]


def test_an_order_refund_past_the_wallet_maximum_is_refused_and_stays_refundable(
    village: Village,
) -> None:
    agent = village.agent(float_minor=1_000_000)
    shop = parties.onboard(
        village.led, party_id=new_id(), kind=Kind.STOREFRONT, name="Mbegu Seeds", currency="KES"
    )
    amina = active_villager(village.led, agent_id=agent.id, phone="+254712000301", name="Amina")
    village.cash_in(agent, amina, 200_000)
    order_id = new_id()
    orders.create_order(
        village.led, order_id=order_id, storefront_id=shop.id, currency="KES",
        amount_minor=120_000, delivery_method="courier", villager_id=amina.id,
    )  # fmt: skip
    orders.pay_order_by_pin(
        village.led, step_id=new_id(), order_id=order_id, villager_id=amina.id, pin=DEFAULT_PIN
    )
    fill_wallet_to(village.led, amina.id, TIER0_BALANCE_MAX_MINOR - 120_000 + 1)
    receipts = len(receipts_of(village.led, amina.id))
    escrow = parties.account_id(shop.id, Role.ESCROW)
    [held] = village.led.lookup_accounts([escrow])
    for refund in (
        lambda: orders.cancel_order(village.led, step_id=new_id(), order_id=order_id),
        lambda: orders.refund_order(village.led, step_id=new_id(), order_id=order_id),
    ):
        with refused("limit_exceeded_balance"):
            refund()
    assert wallet_of(village.led, amina.id) == TIER0_BALANCE_MAX_MINOR - 120_000 + 1
    assert village.led.lookup_accounts([escrow]) == [held]
    assert orders.get_order(village.led, order_id=order_id).state is orders.State.PAID
    assert len(receipts_of(village.led, amina.id)) == receipts  # no receipt for a refusal
    fill_wallet_to(village.led, amina.id, TIER0_BALANCE_MAX_MINOR - 120_000)
    done = orders.refund_order(village.led, step_id=new_id(), order_id=order_id)
    assert done.state is orders.State.REFUNDED
    assert wallet_of(village.led, amina.id) == TIER0_BALANCE_MAX_MINOR  # exactly: allowed
    assert village.led.check_integrity().ok


def test_a_suspense_reassignment_past_the_wallet_maximum_is_refused_and_stays_parked(
    village: Village,
) -> None:
    amina = village.villager(tier="tier0", name="Amina")
    item_id = new_id()
    suspense.park(
        village.led, suspense_id=item_id, currency="KES", provider="MPESA",
        provider_reference="QK7X2 AMINA", amount_minor=100_000,
    )  # fmt: skip
    fill_wallet_to(village.led, amina.id, TIER0_BALANCE_MAX_MINOR - 100_000 + 1)
    platform_suspense = parties.account_id(parties.platform_id("KES"), Role.SUSPENSE)
    [parked] = village.led.lookup_accounts([platform_suspense])
    with refused("limit_exceeded_balance"):
        suspense.reassign(village.led, suspense_id=item_id, to_villager_id=amina.id)
    assert wallet_of(village.led, amina.id) == TIER0_BALANCE_MAX_MINOR - 100_000 + 1
    assert village.led.lookup_accounts([platform_suspense]) == [parked]
    item = suspense.get_suspense(village.led, suspense_id=item_id)
    assert item.state is suspense.SuspenseState.PARKED
    assert receipts_of(village.led, amina.id) == []
    fill_wallet_to(village.led, amina.id, TIER0_BALANCE_MAX_MINOR - 100_000)
    suspense.reassign(village.led, suspense_id=item_id, to_villager_id=amina.id)
    assert wallet_of(village.led, amina.id) == TIER0_BALANCE_MAX_MINOR  # exactly: allowed
    assert village.led.check_integrity().ok


def test_the_maximum_counts_a_credit_of_a_villager_on_a_higher_tier_by_that_tier(
    village: Village,
) -> None:
    baraka = village.villager(tier="tier1", name="Baraka")  # KES 300,000.00 at most
    item_id = new_id()
    suspense.park(
        village.led, suspense_id=item_id, currency="KES", provider="MPESA",
        provider_reference="QK7X3 BARAKA", amount_minor=TIER0_BALANCE_MAX_MINOR + 1,
    )  # fmt: skip
    suspense.reassign(village.led, suspense_id=item_id, to_villager_id=baraka.id)
    assert wallet_of(village.led, baraka.id) == TIER0_BALANCE_MAX_MINOR + 1


def test_moving_a_villager_up_a_tier_raises_their_limits(village: Village) -> None:
    agent = village.agent(float_minor=5_000_000)
    amina = village.villager(tier="tier0", name="Amina")
    with refused("limit_exceeded_per_transaction"):
        village.cash_in(agent, amina, 600_000)
    moved = limits.set_kyc_tier(village.led, villager_id=amina.id, tier="tier1")
    assert moved.kyc_tier == "tier1"
    village.cash_in(agent, amina, 600_000)
    [event] = village.events_of(events.KYC_TIER_CHANGED, amina.id)
    assert (event.payload["from_tier"], event.payload["to_tier"]) == ("tier0", "tier1")
    assert limits.set_kyc_tier(village.led, villager_id=amina.id, tier="tier1") == moved
    assert len(village.events_of(events.KYC_TIER_CHANGED, amina.id)) == 1
    with refused("kyc_tier_unknown"):
        limits.set_kyc_tier(village.led, villager_id=amina.id, tier="tier9")
    with refused("kyc_tier_invalid"):
        limits.set_kyc_tier(village.led, villager_id=amina.id, tier="tier 1")
    with pytest.raises(NotFound):
        limits.set_kyc_tier(village.led, villager_id=agent.id, tier="tier1")


def test_an_operator_adds_a_tier_in_a_currency_that_had_none(village: Village) -> None:
    usd = parties.onboard(
        village.led, party_id=new_id(), kind=Kind.VILLAGER, name="Ann", currency="USD",
        kyc_tier="basic",
    )  # fmt: skip
    added = limits.set_tier_limits(
        village.led,
        currency="USD",
        tier="basic",
        per_transaction_max_minor=10_000,
        daily_max_minor=20_000,
        balance_max_minor=50_000,
    )
    assert limits.get_tier_limits(village.led, currency="USD", tier="basic") == added
    changed = limits.set_tier_limits(
        village.led,
        currency="USD",
        tier="basic",
        per_transaction_max_minor=20_000,
        daily_max_minor=20_000,
        balance_max_minor=50_000,
    )
    assert changed.per_transaction_max_minor == 20_000
    assert usd.kyc_tier == "basic"
    for bad in (
        {"per_transaction_max_minor": 30_000, "daily_max_minor": 20_000},
        {"per_transaction_max_minor": 0, "daily_max_minor": 20_000},
    ):
        with pytest.raises(Refused):
            limits.set_tier_limits(
                village.led, currency="USD", tier="basic", balance_max_minor=1, **bad
            )
    with refused("currency_not_supported"):
        limits.set_tier_limits(
            village.led,
            currency="XXX",
            tier="basic",
            per_transaction_max_minor=1,
            daily_max_minor=1,
            balance_max_minor=1,
        )


@pytest.mark.parametrize("scenario", ["daily_limit", "wallet"])
def test_eight_cash_outs_of_one_wallet_through_two_agents_at_once(
    village: Village, clock: Clock, scenario: str
) -> None:
    """Eight requests of 3,000 KES race through two agents. Daily limit: the villager is
    tier0 (10,000 KES a day) with 20,000 KES in the wallet: exactly three pass. Wallet:
    tier1 with 10,000 KES in the wallet: exactly three pass. Neither the daily limit nor
    the wallet is ever passed (PostgreSQL: eight transactions on the usage row and the
    wallet at once)."""
    agents = [village.agent(float_minor=3_000_000, name=f"shop {i}") for i in range(2)]
    amina = village.villager(tier="tier2", name="Amina")
    wallet_minor = 2_000_000 if scenario == "daily_limit" else 1_000_000
    village.cash_in(agents[0], amina, wallet_minor)
    village.cash_in(agents[1], village.villager(tier="tier2", name="Juma"), 2_000_000)
    limits.set_kyc_tier(
        village.led, villager_id=amina.id, tier="tier0" if scenario == "daily_limit" else "tier1"
    )
    answers: list[object] = []
    barrier = threading.Barrier(8)

    def racer(i: int) -> None:
        led = open_ledger(village.led.url, clock=clock)
        try:
            barrier.wait()
            answers.append(  # Amina starts each with her PIN at one of the two agents
                cash.start_withdrawal(
                    led,
                    cash_out_id=uuid.uuid4(),
                    villager_id=amina.id,
                    pin=DEFAULT_PIN,
                    agent_id=agents[i % 2].id,
                    amount_minor=300_000,
                )
            )
        except Exception as exc:  # collected, then asserted below
            answers.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    passed = [a for a in answers if isinstance(a, cash.CashOut)]
    codes = {a.code for a in answers if isinstance(a, Refused)}
    assert len(passed) == 3, answers
    assert len(answers) == 8 and all(isinstance(a, (cash.CashOut, Refused)) for a in answers)
    assert codes == {"limit_exceeded_daily" if scenario == "daily_limit" else "wallet_short"}
    usage = limits.get_usage(village.led, villager_id=amina.id)
    assert usage.cash_out_minor == 900_000
    b = village.balances(agents[0], amina)
    assert b["wallet_held"] == 900_000 <= b["wallet"]
    for c in passed:
        cash.confirm_cash_out(village.led, cash_out_id=c.id, agent_id=c.agent_id)
    assert village.balances(agents[0], amina)["wallet"] == wallet_minor - 900_000
    assert village.led.check_integrity().ok
