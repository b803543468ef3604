"""Agents' commission payouts, both engines, as accounting stories: Juma and Wanjiru earn
commission on real cash-ins (their share of the fee and the platform's commission), the
month ends (UTC), an operator pays the month to their floats or through a provider; each
month pays only its own, a retry moves nothing, and the books balance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ledger import Ledger, Transfer
from ledger.flows import agent_float, cash, commission, events, fees, parties
from ledger.flows.commission import Destination, Month
from ledger.flows.errors import NotFound, Refused
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock

KES = "KES"
CASH_IN_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "fixed_minor": 100}],
    "split_bps": {"agent_commission": 5_000},
    "platform_commission": {"bps": 50, "max_minor": 5_000},
}
"""A 1.00 KES fee, half of it to the agent, and 0.5% of the amount from the platform: a
500.00 KES cash-in earns the agent 0.50 + 2.50 = 3.00 KES."""
EARNED_PER_CASH_IN = 300
CASH_IN_MINOR = 50_000


@dataclass
class Village:
    led: Ledger
    clock: Clock

    def at(self, moment: datetime) -> None:
        self.clock.now = moment

    def agent(self, name: str) -> Party:
        agent = parties.onboard(
            self.led, party_id=uuid.uuid4(), kind=Kind.AGENT, name=name, currency=KES
        )
        agent_float.top_up_float(
            self.led, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=10_000_000,
            provider="BANK",
        )  # fmt: skip
        return agent

    def cash_in(self, agent: Party, times: int = 1) -> None:
        villager = parties.onboard(
            self.led, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Otieno", currency=KES,
            kyc_tier="tier1",
        )  # fmt: skip
        for _ in range(times):
            done = cash.cash_in(
                self.led,
                cash_in_id=uuid.uuid4(),
                agent_id=agent.id,
                villager_id=villager.id,
                amount_minor=CASH_IN_MINOR,
            )
            assert (done.fee_minor, done.commission_minor) == (100, EARNED_PER_CASH_IN)

    def balance(self, account_id: uuid.UUID) -> int:
        [found] = self.led.lookup_accounts([account_id])
        return found.credits_posted - found.debits_posted

    def commission(self, agent: Party) -> int:
        return self.balance(agent.account(Role.COMMISSION))

    def float(self, agent: Party) -> int:
        return self.balance(agent.account(Role.FLOAT))

    def events_of(self, event_type: str) -> list[events.Event]:
        found = self.led.transact(lambda tx: events.read_events(tx, limit=1000))
        return [e for e in found if e.type == event_type]


JUNE = datetime(2026, 6, 1, tzinfo=UTC)
JULY = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    clock.now = datetime(2026, 5, 1, tzinfo=UTC)
    fees.publish_schedule(
        ledger, product="cash_in", currency=KES, effective_from=clock.now, rules=CASH_IN_RULES
    )
    return Village(ledger, clock)


def test_june_is_paid_once_to_the_agents_floats(village: Village) -> None:
    juma, wanjiru, idle = village.agent("Juma"), village.agent("Wanjiru"), village.agent("Idle")
    village.at(JUNE + timedelta(days=3))
    village.cash_in(juma, times=2)
    village.cash_in(wanjiru)
    floats_before = {a.id: village.float(a) for a in (juma, wanjiru, idle)}
    assert (village.commission(juma), village.commission(wanjiru)) == (600, 300)

    village.at(JULY + timedelta(hours=9))
    paid = commission.pay_month(village.led, month="2026-06", currency=KES, to="float")
    assert (paid.month, paid.currency, paid.destination, paid.provider) == (
        "2026-06", KES, Destination.FLOAT, None,
    )  # fmt: skip
    assert (paid.lines_count, paid.total_minor) == (2, 900)
    assert paid.id == commission.payout_id_of("2026-06", KES)
    _, lines = commission.payout_lines(village.led, payout_id=paid.id)
    got = {line.agent_id: (line.earned_minor, line.amount_minor) for line in lines}
    assert got == {juma.id: (600, 600), wanjiru.id: (300, 300)}  # nothing for the idle agent
    assert (village.commission(juma), village.commission(wanjiru)) == (0, 0)
    assert village.float(juma) == floats_before[juma.id] + 600
    assert village.float(wanjiru) == floats_before[wanjiru.id] + 300
    assert village.float(idle) == floats_before[idle.id]
    [moved] = village.led.lookup_transfers([lines[0].transfer_id])
    assert (moved.code, moved.amount) == (commission.COMMISSION_PAYOUT_CODE, lines[0].amount_minor)
    assert village.led.check_integrity().ok

    paid_events = village.events_of(events.COMMISSION_PAID)
    assert sorted(e.payload["amount_minor"] for e in paid_events) == [300, 600]
    assert {e.party_id for e in paid_events} == {juma.id, wanjiru.id}
    [made] = village.events_of(events.COMMISSION_PAYOUT_MADE)
    assert (made.payload["total_minor"], made.subject_id) == (900, paid.id)

    # a retry, or a second payout of June through a provider, answers the first: nothing moves
    village.clock.advance(3600)
    assert commission.pay_month(village.led, month="2026-06", currency=KES, to="float") == paid
    again = commission.pay_month(
        village.led, month="2026-06", currency=KES, to="provider", provider="MPESA"
    )
    assert again == paid
    assert village.float(juma) == floats_before[juma.id] + 600
    assert len(village.events_of(events.COMMISSION_PAID)) == 2
    assert village.led.check_integrity().ok


def test_a_month_pays_only_its_own_commission(village: Village) -> None:
    """Cash-ins a microsecond before and exactly at June's start (UTC), and one in July:
    June's payout pays only the one at its start; May's, paid afterwards, the other."""
    juma = village.agent("Juma")
    village.at(JUNE - timedelta(microseconds=1))
    village.cash_in(juma)
    village.at(JUNE)
    village.cash_in(juma, times=2)
    village.at(JULY)
    village.cash_in(juma)  # July's: not June's
    village.at(JULY + timedelta(days=1))
    june = commission.pay_month(village.led, month="2026-06", currency=KES, to=Destination.FLOAT)
    assert (june.lines_count, june.total_minor) == (1, 600)
    assert village.commission(juma) == 600  # May's and July's wait
    may = commission.pay_month(village.led, month="2026-05", currency=KES, to="float")
    assert may.total_minor == 300
    assert village.commission(juma) == 300  # July's
    with pytest.raises(Refused) as refused:
        commission.pay_month(village.led, month="2026-07", currency=KES, to="float")
    assert refused.value.code == "month_not_over"
    village.at(datetime(2026, 8, 1, tzinfo=UTC))
    july = commission.pay_month(village.led, month="2026-07", currency=KES, to="float")
    assert july.total_minor == 300
    assert village.commission(juma) == 0
    assert village.led.check_integrity().ok


def test_the_provider_is_paid_when_the_agents_are_paid_outside(village: Village) -> None:
    juma = village.agent("Juma")
    village.at(JUNE + timedelta(days=10))
    village.cash_in(juma)
    float_before = village.float(juma)
    village.at(JULY)
    clearing = village.led.transact(lambda tx: parties.provider_clearing(tx, KES, "MPESA"))
    clearing_before = village.balance(clearing)
    paid = commission.pay_month(
        village.led, month="2026-06", currency=KES, to="provider", provider="MPESA"
    )
    assert (paid.destination, paid.provider, paid.total_minor) == (
        Destination.PROVIDER, "MPESA", 300,
    )  # fmt: skip
    _, [line] = commission.payout_lines(village.led, payout_id=paid.id)
    assert line.destination_account_id == clearing
    assert village.balance(clearing) == clearing_before + 300
    assert (village.commission(juma), village.float(juma)) == (0, float_before)
    assert village.led.check_integrity().ok


def test_commission_taken_back_in_the_month_is_not_paid(village: Village) -> None:
    """The platform reverses its 2.50 commission on one cash-in in June: June earned
    3.00 + 3.00 - 2.50; and an agent whose June nets to nothing gets no line."""
    juma, wanjiru = village.agent("Juma"), village.agent("Wanjiru")
    village.at(JUNE + timedelta(days=2))
    village.cash_in(juma, times=2)
    village.cash_in(wanjiru)
    expense = parties.account_id(parties.platform_id(KES), Role.COMMISSION_EXPENSE)
    for agent in (juma, wanjiru):
        legs = village.led.account_transfers(agent.account(Role.COMMISSION), limit=10)
        leg = next(t for t in legs if t.debit_account_id == expense)
        reversal = Transfer(
            uuid.uuid4(), agent.account(Role.COMMISSION), expense, 250, KES, fees.FEE_CODE,
            reverses_id=leg.id,
        )  # fmt: skip
        assert [r.status.value for r in village.led.create_transfers([reversal])] == ["created"]
    village.led.create_transfers(
        [Transfer(uuid.uuid4(), wanjiru.account(Role.COMMISSION), expense, 50, KES, 1)]
    )  # whatever took the rest back: wanjiru's June is 300 - 250 - 50 = 0
    village.at(JULY)
    paid = commission.pay_month(village.led, month="2026-06", currency=KES, to="float")
    _, lines = commission.payout_lines(village.led, payout_id=paid.id)
    assert [(x.agent_id, x.amount_minor) for x in lines] == [(juma.id, 350)]
    assert village.commission(juma) == 0 and village.led.check_integrity().ok


def test_the_agent_reads_this_months_commission_and_its_paid_months(village: Village) -> None:
    juma = village.agent("Juma")
    village.at(JUNE + timedelta(days=1))
    village.cash_in(juma)
    village.at(JULY + timedelta(days=1))
    village.cash_in(juma, times=2)
    commission.pay_month(village.led, month="2026-06", currency=KES, to="float")
    seen = commission.agent_commission(village.led, agent_id=juma.id)
    assert (seen.month, seen.currency, seen.earned_this_month_minor, seen.unpaid_minor) == (
        "2026-07", KES, 600, 600,
    )  # fmt: skip
    assert [(p.month, p.amount_minor) for p in seen.paid] == [("2026-06", 300)]
    with pytest.raises(NotFound) as missing:
        commission.agent_commission(village.led, agent_id=uuid.uuid4())
    assert missing.value.code == "agent_not_found"
    with pytest.raises(NotFound):
        commission.get_payout(village.led, payout_id=uuid.uuid4())


def test_payouts_are_listed_by_month(village: Village) -> None:
    village.at(datetime(2026, 9, 1, tzinfo=UTC))
    made = [
        commission.pay_month(village.led, month=m, currency=KES, to="float")
        for m in ("2026-07", "2026-05", "2026-06")
    ]
    assert all(p.lines_count == 0 and p.total_minor == 0 for p in made)  # nobody earned
    listed = commission.list_payouts(village.led, limit=2)
    assert [p.month for p in listed] == ["2026-05", "2026-06"]
    rest = commission.list_payouts(village.led, starting_after=listed[-1].id)
    assert [p.month for p in rest] == ["2026-07"]
    assert commission.list_payouts(village.led, currency="UGX") == []
    assert commission.list_payouts(village.led, starting_after=uuid.uuid4()) == []


@pytest.mark.parametrize(
    ("month", "code"),
    [
        ("2026-13", "month_invalid"),
        ("2026-00", "month_invalid"),
        ("2026-1", "month_invalid"),
        ("26-11", "month_invalid"),
        ("2026-11-01", "month_invalid"),
        ("November", "month_invalid"),
        ("", "month_invalid"),
        (202611, "month_invalid"),
        ("1999-12", "month_invalid"),
        ("2026-06", "month_not_over"),  # the current month
        ("2027-01", "month_not_over"),
    ],
)
def test_a_malformed_or_unfinished_month_is_refused(
    village: Village, month: Any, code: str
) -> None:
    village.at(JUNE + timedelta(days=29, hours=23, minutes=59))
    with pytest.raises(Refused) as refused:
        commission.pay_month(village.led, month=month, currency=KES, to="float")
    assert refused.value.code == code
    assert commission.list_payouts(village.led) == []


@pytest.mark.parametrize(
    ("to", "provider", "currency", "code"),
    [
        ("bank", None, KES, "destination_invalid"),
        ("float", "MPESA", KES, "destination_invalid"),
        ("provider", None, KES, "provider_required"),
        ("provider", "m-pesa", KES, "provider_invalid"),
        ("float", None, "XYZ", "currency_not_supported"),
        ("float", None, "kes", "currency_not_supported"),
    ],
)
def test_a_bad_destination_or_currency_is_refused(
    village: Village, to: str, provider: str | None, currency: str, code: str
) -> None:
    village.at(JULY)
    with pytest.raises(Refused) as refused:
        commission.pay_month(
            village.led, month="2026-06", currency=currency, to=to, provider=provider
        )
    assert refused.value.code == code


def test_month_boundaries_are_utc() -> None:
    june = Month.parse("2026-06")
    assert (june.start, june.end) == (JUNE, JULY)
    assert Month.parse("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    eat = timezone(timedelta(hours=3), "EAT")
    assert Month.of(datetime(2026, 7, 1, 2, 59, tzinfo=eat)).text == "2026-06"  # 23:59 UTC
    assert Month.of(datetime(2026, 7, 1, 3, 0, tzinfo=eat)).text == "2026-07"


# -- the command line: the same flow function -------------------------------------------


def test_vledger_commission_pay_pays_once_and_refuses_in_one_line(
    village: Village, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from vledger.cli import main

    juma = village.agent("Juma")
    village.at(JUNE + timedelta(days=5))
    village.cash_in(juma, times=2)
    argv = ["commission", "pay", "--month", "2026-06", "--currency", KES, "--database", db_url]
    assert main([*argv, "--to", "float"]) == 0
    out = capsys.readouterr().out
    assert "2026-06 KES to float, 1 agents, 600 minor units" in out
    assert f"agent {juma.id}  earned 600  paid 600" in out
    assert village.commission(juma) == 0
    assert main([*argv, "--to", "float"]) == 0  # answers the first
    assert "to float, 1 agents, 600" in capsys.readouterr().out
    this_month = Month.of(datetime.now(UTC)).text
    for bad, said in (
        (["--month", this_month, "--to", "float"], "month_not_over"),
        (["--month", "2026-13", "--to", "float"], "month_invalid"),
        # money out of the platform: two signed operators, never the machine's command
        (["--month", "2026-05", "--to", "provider", "--provider", "MPESA"], "two signed"),
        (["--month", "2026-05", "--to", "provider"], "two signed operators"),
    ):
        assert main(["commission", "pay", "--currency", KES, "--database", db_url, *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vledger commission: ") and len(err.splitlines()) == 1, err
        assert said in err, err
    assert main([*argv, "--to", "bank"]) == 2
    listed = commission.list_payouts(village.led)
    assert [p.month for p in listed] == ["2026-06"]  # May was never paid
    assert village.led.check_integrity().ok
