"""Offline capture of cash: a phone's signed cash-ins and cash-outs, synced later, become
cash-ins (drawing the device's allowance) and one-shot cash-outs exactly once; one that
can no longer apply (the agent's cash, a KYC limit) becomes an exception. A cash-out
needs the villager's offline withdrawal code, which held its amount when it was made;
one without a valid code is an exception charged to the agent, never to the wallet."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import Ledger
from ledger.flows import (
    agent_float,
    cash,
    consent,
    events,
    fees,
    limits,
    offline,
    parties,
    timers,
)
from ledger.flows.cash import CashOutMode, CashOutState
from ledger.flows.consent import Purpose
from ledger.flows.offline import RecordKind, RecordState
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_flow_cash import CASH_OUT_RULES
from tests.test_flow_offline import KES, Village, fund_float

CASH_IN, CASH_OUT = RecordKind.CASH_IN, RecordKind.CASH_OUT


@pytest.fixture
def village(ledger: Ledger) -> Village:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    villager = consenting_villager(ledger, agent_id=agent.id, tier="tier1")
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


def offline_code(village: Village, amount_minor: int, agent: Party | None = None) -> str:
    """The offline withdrawal code Otieno makes for the agent (it holds the amount)."""
    return withdrawal_code(
        village.led,
        villager_id=village.villager.id,
        agent_id=(agent or village.agent).id,
        amount_minor=amount_minor,
        purpose=Purpose.OFFLINE_WITHDRAWAL,
    )


def cash_out_record(
    village: Village, seq: int, amount_minor: int, code: str | None
) -> offline.SignedRecord:
    """A version 2 cash-out record carrying ``code``."""
    return village.record(seq, amount_minor, CASH_OUT, version=2, consent_code=code)


def cash_in_online(village: Village, amount_minor: int, agent: Party | None = None) -> None:
    cash.cash_in(
        village.led,
        cash_in_id=uuid.uuid4(),
        agent_id=(agent or village.agent).id,
        villager_id=village.villager.id,
        amount_minor=amount_minor,
    )


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
    cash_in_online(village, 300_000)
    code = offline_code(village, 200_000)
    record = cash_out_record(village, 1, 200_000, code)
    report = sync(village, record)
    assert [r.state for r in report.records] == [RecordState.APPLIED]
    out_id = report.records[0].cash_operation_id
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
        "float_held": 500_000,  # the cash-out did not touch the allowance
        "cash": 100_000,
    }
    usage = limits.get_usage(village.led, villager_id=village.villager.id)
    assert (usage.cash_in_minor, usage.cash_out_minor) == (300_000, 200_000)
    # The batch re-sent: the same answer, nothing moves, the code is not tried again.
    before = balances(village)
    again = sync(village, record)
    assert (again.records, again.stored_now) == (report.records, 0)
    assert balances(village) == before
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
        amount_minor=600_000, consent_code=offline_code(village, 600_000, other),
    )  # fmt: skip
    # The wallet holds 3,000 KES; the other agent holds the cash, this one none; today
    # Otieno cashed in 9,000 and out 6,000; now he is tier0 (5,000 / 10,000 a day).
    limits.set_kyc_tier(village.led, villager_id=village.villager.id, tier="tier0")
    village.register(2_000_000)
    held = offline_code(village, 100_000)  # holds 1,000 KES of the 3,000 now
    before = balances(village)
    batch = [
        village.record(1, 300_001, CASH_OUT),  # version 1: no code
        cash_out_record(village, 2, 100_000, held),  # this agent holds no cash
        cash_out_record(village, 3, 4_999, "000000"),  # no such code
        village.record(4, 500_001, CASH_IN),  # over tier0's 5,000 KES a transaction
        village.record(5, 100_001, CASH_IN),  # over tier0's 10,000 KES a day, after 9,000
    ]
    report = sync(village, *batch)
    assert [(r.state, r.reason) for r in report.records] == [
        (RecordState.EXCEPTION, "consent_required"),
        (RecordState.EXCEPTION, "agent_cash_short"),
        (RecordState.EXCEPTION, "consent_invalid"),
        (RecordState.EXCEPTION, "limit_exceeded_per_transaction"),
        (RecordState.EXCEPTION, "limit_exceeded_daily"),
    ]
    assert balances(village) == before  # this agent held no cash to charge
    usage = limits.get_usage(village.led, villager_id=village.villager.id)
    assert (usage.cash_in_minor, usage.cash_out_minor) == (900_000, 700_000)
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


# -- consent for an offline cash-out ----------------------------------------------------------


def wallet_held(village: Village) -> int:
    return village.account(village.villager.account(Role.WALLET)).debits_pending


def test_an_offline_withdrawal_code_holds_its_amount_when_made_and_sync_posts_it_once(
    village: Village,
) -> None:
    village.register(500_000)
    cash_in_online(village, 300_000)
    code = offline_code(village, 120_000)
    assert wallet_held(village) == 120_000  # held on the wallet the moment it is made
    assert limits.get_usage(village.led, villager_id=village.villager.id).cash_out_minor == 120_000
    first = cash_out_record(village, 1, 120_000, code)
    reused = cash_out_record(village, 2, 120_000, code)  # the same code, captured again
    report = sync(village, first, reused)
    assert [(r.state, r.reason) for r in report.records] == [
        (RecordState.APPLIED, None),
        (RecordState.EXCEPTION, "consent_invalid"),
    ]
    b = balances(village)
    assert (b["wallet"], wallet_held(village)) == (180_000, 0)  # posted once, held no more
    # The second hand-over had no consent: the agent carries it, against the allowance.
    assert b["cash"] == 300_000 - 120_000 - 120_000
    assert offline.get_device(village.led, device_id=village.device_id).allowance_minor == 380_000
    again = sync(village, first, reused)
    assert (again.records, again.stored_now) == (report.records, 0)
    assert balances(village) == b
    assert village.led.check_integrity().ok


def test_a_bad_code_is_an_exception_charged_to_the_allowance_and_the_wallet_is_untouched(
    village: Village,
) -> None:
    village.register(500_000)
    cash_in_online(village, 400_000)
    code = offline_code(village, 100_000)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    before = balances(village)
    report = sync(
        village,
        cash_out_record(village, 1, 100_000, wrong),  # a wrong digit
        village.record(2, 50_000, CASH_OUT),  # version 1: no code at all
        cash_out_record(village, 3, 70_000, None),  # version 2 without a code
    )
    assert [r.reason for r in report.records] == [
        "consent_invalid",
        "consent_required",
        "consent_required",
    ]
    after = balances(village)
    assert after["wallet"] == before["wallet"] == 400_000
    assert wallet_held(village) == 100_000  # Otieno's own code still holds, unused
    assert after["float"] == before["float"]  # the float earns nothing for that cash
    assert after["cash"] == before["cash"] - 220_000  # the cash that left the till
    assert offline.get_device(village.led, device_id=village.device_id).allowance_minor == 280_000
    charged = [e.payload["charged_minor"] for e in village.events_of(events.OFFLINE_EXCEPTION)]
    assert charged == [100_000, 50_000, 70_000]
    assert all(code not in str(e.payload) for e in village.events_of(events.OFFLINE_EXCEPTION))
    assert village.led.check_integrity().ok


def test_an_offline_code_lasts_24_hours_and_then_gives_the_wallet_back(
    village: Village, clock: Clock
) -> None:
    village.register(500_000)
    cash_in_online(village, 400_000)
    code = offline_code(village, 100_000)
    clock.advance(consent.OFFLINE_CODE_TTL_S)
    assert wallet_held(village) == 0  # the core's hold lapsed with the code
    report = sync(village, cash_out_record(village, 1, 100_000, code))
    assert [r.reason for r in report.records] == ["consent_expired"]
    assert balances(village)["wallet"] == 400_000
    assert consent.sweep_codes(village.led) == 0  # the sync's check expired it already
    made_on = limits.get_usage(village.led, villager_id=village.villager.id, day=date(2026, 6, 1))
    assert made_on.cash_out_minor == 0  # the day the code was made got its amount back


def test_three_wrong_offline_codes_void_the_code_and_release_its_hold(village: Village) -> None:
    village.register(500_000)
    cash_in_online(village, 400_000)
    code = offline_code(village, 100_000)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    batch = [cash_out_record(village, seq, 100_000, wrong) for seq in (1, 2, 3)]
    assert [r.reason for r in sync(village, *batch).records] == ["consent_invalid"] * 3
    assert wallet_held(village) == 0
    assert limits.get_usage(village.led, villager_id=village.villager.id).cash_out_minor == 0
    late = sync(village, *batch, cash_out_record(village, 4, 100_000, code))
    assert late.records[-1].reason == "consent_invalid"
    assert balances(village)["wallet"] == 400_000
    assert village.led.check_integrity().ok


def test_the_sweeper_expires_an_unused_offline_code_and_gives_its_day_back(
    village: Village, clock: Clock
) -> None:
    cash_in_online(village, 400_000)
    offline_code(village, 100_000)
    clock.advance(consent.OFFLINE_CODE_TTL_S - 1)
    assert consent.sweep_codes(village.led) == 0
    assert wallet_held(village) == 100_000
    clock.advance(1)
    assert timers.sweep_all(village.led)["consent codes expired"] == 1
    assert consent.sweep_codes(village.led) == 0
    assert wallet_held(village) == 0
    made_on = limits.get_usage(village.led, villager_id=village.villager.id, day=date(2026, 6, 1))
    assert made_on.cash_out_minor == 0
    [expired] = [
        e
        for e in village.led.transact(
            lambda tx: events.read_events(tx, party_id=village.villager.id, limit=1000)
        )
        if e.type == consent.CONSENT_EXPIRED
    ]
    assert expired.payload["purpose"] == "offline_withdrawal"
    with pytest.raises(ValueError):
        consent.sweep_codes(village.led, limit=0)
    assert village.led.check_integrity().ok


def test_a_phones_wrong_codes_count_against_its_agents_rate_limit(village: Village) -> None:
    """Guessing through signed records is no faster than over the API: after
    CALLER_FAILURES_MAX wrong codes (for a villager with no code, so none is voided) even
    Otieno's right code waits, and the agent carries that hand-over too."""
    village.register(500_000)
    cash_in_online(village, 400_000)
    code = offline_code(village, 50_000)
    stranger = consenting_villager(village.led, agent_id=village.agent.id, name="Juma")
    guesses = [
        village.record(
            seq, 5_000, CASH_OUT, version=2, consent_code="000000", villager_id=stranger.id
        )
        for seq in range(1, consent.CALLER_FAILURES_MAX + 1)
    ]
    late = cash_out_record(village, consent.CALLER_FAILURES_MAX + 1, 50_000, code)
    report = sync(village, *guesses, late)
    reasons = [r.reason for r in report.records]
    assert reasons == ["consent_invalid"] * consent.CALLER_FAILURES_MAX + ["consent_rate_limited"]
    assert wallet_held(village) == 50_000  # Otieno's code is still his, unused
    assert balances(village)["wallet"] == 400_000
    assert balances(village)["cash"] == 400_000 - 10 * 5_000 - 50_000  # charged to the agent
