"""Offline capture of cash: a phone's signed cash-ins and cash-outs, synced later, become
cash-ins (drawing the device's allowance) and one-shot cash-outs exactly once; one that
can no longer apply (the wallet, the agent's cash, a KYC limit) becomes an exception."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Ledger
from ledger.flows import agent_float, cash, events, fees, limits, offline, parties
from ledger.flows.cash import CashOutMode, CashOutState
from ledger.flows.offline import RecordKind, RecordState
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.test_flow_cash import CASH_OUT_RULES
from tests.test_flow_offline import KES, Village, fund_float

CASH_IN, CASH_OUT = RecordKind.CASH_IN, RecordKind.CASH_OUT


@pytest.fixture
def village(ledger: Ledger) -> Village:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    villager = parties.onboard(
        ledger,
        party_id=uuid.uuid4(),
        kind=Kind.VILLAGER,
        name="Otieno",
        currency=KES,
        kyc_tier="tier1",
    )
    fund_float(ledger, agent, 3_000_000)
    return Village(
        ledger,
        agent,
        villager,
        Ed25519PrivateKey.generate(),
        uuid.uuid4(),
        datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
    )


def balances(village: Village) -> dict[str, int]:
    wallet = village.account(village.villager.account(Role.WALLET))
    float_ = village.float_
    agent_cash = village.account(village.agent.account(Role.CASH))
    return {
        "wallet": wallet.credits_posted - wallet.debits_posted,
        "float": float_.credits_posted - float_.debits_posted,
        "float_held": float_.debits_pending,
        "cash": agent_cash.debits_posted - agent_cash.credits_posted,
    }


def sync(village: Village, *records: offline.SignedRecord) -> offline.SyncReport:
    return offline.sync(village.led, device_id=village.device_id, records=list(records))


def test_a_cash_in_captured_offline_applies_once_and_draws_the_allowance(
    village: Village,
) -> None:
    village.register(500_000)
    record = village.record(1, 120_000)
    report = sync(village, record)
    [outcome] = report.records
    assert (outcome.state, outcome.reason) == (RecordState.APPLIED, None)
    operation_id = offline.cash_operation_id(record.record.record_id)
    assert outcome.cash_operation_id == operation_id
    done = cash.get_cash_in(village.led, operation_id)
    assert (done.device_id, done.amount_minor, done.villager_id) == (
        village.device_id,
        120_000,
        village.villager.id,
    )
    assert balances(village) == {
        "wallet": 120_000,
        "float": 3_000_000 - 120_000,
        "float_held": 380_000,  # the allowance, less what the cash-in spent
        "cash": 120_000,
    }
    assert offline.get_device(village.led, device_id=village.device_id).allowance_minor == 380_000
    assert limits.get_usage(village.led, villager_id=village.villager.id).cash_in_minor == 120_000
    assert len(village.events_of(events.CASHIN_COMPLETED)) == 1
    # The batch sent again: the same answer, nothing moves.
    before = balances(village)
    again = sync(village, record)
    assert (again.records, again.stored_now) == (report.records, 0)
    assert balances(village) == before
    assert len(village.events_of(events.CASHIN_COMPLETED)) == 1
    assert village.led.check_integrity().ok


def test_a_cash_out_captured_offline_is_a_one_shot_cash_out_with_its_fee(
    village: Village, clock: Clock
) -> None:
    fees.publish_schedule(
        village.led,
        product="cash_out",
        currency=KES,
        effective_from=clock.now,
        rules=CASH_OUT_RULES,
    )
    village.register(500_000)
    report = sync(village, village.record(1, 300_000), village.record(2, 200_000, CASH_OUT))
    assert [r.state for r in report.records] == [RecordState.APPLIED] * 2
    out_id = report.records[1].cash_operation_id
    assert out_id is not None
    done = cash.get_cash_out(village.led, out_id)
    assert (done.mode, done.state, done.device_id, done.fee_minor) == (
        CashOutMode.ONE_SHOT,
        CashOutState.COMPLETED,
        village.device_id,
        3_000,
    )
    assert balances(village) == {
        "wallet": 300_000 - 203_000,
        "float": 3_000_000 - 300_000 + 200_000,
        "float_held": 200_000,  # the cash-out did not touch the allowance
        "cash": 100_000,
    }
    usage = limits.get_usage(village.led, villager_id=village.villager.id)
    assert (usage.cash_in_minor, usage.cash_out_minor) == (300_000, 200_000)
    assert village.led.check_integrity().ok


def test_records_that_no_longer_apply_become_exceptions_and_move_nothing(
    village: Village,
) -> None:
    """The wallet cannot pay; the agent has no cash; below the minimum; tier0's
    per-transaction and daily limits. Each is stored as an exception, visibly."""
    other = parties.onboard(
        village.led, party_id=uuid.uuid4(), kind=Kind.AGENT, name="another shop", currency=KES
    )
    agent_float.top_up_float(
        village.led, topup_id=uuid.uuid4(), agent_id=other.id, amount_minor=900_000, provider="BANK"
    )
    otieno = village.villager.id
    cash.cash_in(
        village.led, cash_in_id=uuid.uuid4(), agent_id=other.id, villager_id=otieno,
        amount_minor=900_000,
    )  # fmt: skip
    cash.cash_out(
        village.led, cash_out_id=uuid.uuid4(), agent_id=other.id, villager_id=otieno,
        amount_minor=600_000,
    )  # fmt: skip
    # The wallet holds 3,000 KES; the other agent holds the cash, this one none; today
    # Otieno cashed in 9,000 and out 6,000; now he is tier0 (5,000 / 10,000 a day).
    limits.set_kyc_tier(village.led, villager_id=village.villager.id, tier="tier0")
    village.register(2_000_000)
    before = balances(village)
    batch = [
        village.record(1, 300_001, CASH_OUT),  # more than the wallet
        village.record(2, 100_000, CASH_OUT),  # this agent holds no cash
        village.record(3, 4_999, CASH_OUT),  # below the 50 KES minimum
        village.record(4, 500_001, CASH_IN),  # over tier0's 5,000 KES a transaction
        village.record(5, 100_001, CASH_IN),  # over tier0's 10,000 KES a day, after 9,000
    ]
    report = sync(village, *batch)
    assert [(r.state, r.reason) for r in report.records] == [
        (RecordState.EXCEPTION, "wallet_short"),
        (RecordState.EXCEPTION, "agent_cash_short"),
        (RecordState.EXCEPTION, "below_minimum"),
        (RecordState.EXCEPTION, "limit_exceeded_per_transaction"),
        (RecordState.EXCEPTION, "limit_exceeded_daily"),
    ]
    assert balances(village) == before
    usage = limits.get_usage(village.led, villager_id=village.villager.id)
    assert (usage.cash_in_minor, usage.cash_out_minor) == (900_000, 600_000)
    assert offline.get_device(village.led, device_id=village.device_id).allowance_minor == 2_000_000
    assert len(offline.list_exceptions(village.led, agent_id=village.agent.id)) == 5
    assert len(village.events_of(events.OFFLINE_EXCEPTION)) == 5
    # What still fits applies; the batch re-sent with it changes nothing more.
    fits = village.record(6, 100_000, CASH_IN)  # exactly the 10,000 of the day
    report = sync(village, *batch, fits)
    assert (report.stored_now, report.applied) == (1, 1)
    after = balances(village)
    assert after["wallet"] == 400_000
    again = sync(village, *batch, fits)
    assert (again.stored_now, again.records) == (0, report.records)
    assert balances(village) == after
    assert village.led.check_integrity().ok


def test_an_offline_cash_in_leaves_the_low_float_alarm_as_it_was(village: Village) -> None:
    """The allowance already held the float an offline cash-in spends: the float available
    is the same before and after, so the alarm neither rings nor re-arms."""
    village.register(100_000)  # available: 2,900,000
    low = agent_float.set_float_threshold(
        village.led, agent_id=village.agent.id, threshold_minor=2_950_000
    )
    assert low.low_armed is False  # already below: waits for the float to come back
    assert sync(village, village.record(1, 50_000)).applied == 1
    status = agent_float.get_float(village.led, agent_id=village.agent.id)
    assert (status.available_minor, status.low_armed) == (2_900_000, False)
    cash.cash_in(
        village.led,
        cash_in_id=uuid.uuid4(),
        agent_id=village.agent.id,
        villager_id=village.villager.id,
        amount_minor=1,
    )
    assert village.events_of(events.FLOAT_LOW) == []
