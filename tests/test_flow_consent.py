"""The villager's consent: no cash-out without a code the villager made or the PIN.

Stories at one agent's counter: Otieno makes a withdrawal code on his phone and tells it
to the agent; the agent's request carries it and the wallet is held, once. Codes that
are wrong, spent, expired, for another agent or amount, guessed too often, or made by
someone else do nothing but refuse, and every refusal leaves every balance as it was.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from ledger import Ledger, open_ledger
from ledger.flows import agent_float, cash, consent, events, limits, parties
from ledger.flows.cash import CashOutState
from ledger.flows.consent import Purpose
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock
from tests.consent_helpers import PIN, consenting_villager, issue, withdrawal_code

KES = "KES"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class Counter:
    """One agent's counter with cash in the till, and the villagers who come to it."""

    led: Ledger
    clock: Clock
    agent: Party

    def villager(self, wallet_minor: int = 500_000, tier: str = "tier1") -> Party:
        made = consenting_villager(self.led, agent_id=self.agent.id, tier=tier)
        if wallet_minor:
            cash.cash_in(
                self.led,
                cash_in_id=new_id(),
                agent_id=self.agent.id,
                villager_id=made.id,
                amount_minor=wallet_minor,
            )
        return made

    def code(self, villager: Party, amount_minor: int, agent: Party | None = None) -> str:
        return withdrawal_code(
            self.led,
            villager_id=villager.id,
            agent_id=(agent or self.agent).id,
            amount_minor=amount_minor,
        )

    def request(
        self,
        villager: Party,
        amount_minor: int,
        code: str | None,
        *,
        agent: Party | None = None,
        caller_id: uuid.UUID | None = None,
        cash_out_id: uuid.UUID | None = None,
    ) -> cash.CashOut:
        return cash.request_cash_out(
            self.led,
            cash_out_id=cash_out_id or new_id(),
            agent_id=(agent or self.agent).id,
            villager_id=villager.id,
            amount_minor=amount_minor,
            consent_code=code,
            caller_id=caller_id,
        )

    def balances(self, *villagers: Party) -> dict[str, int]:
        ids = [v.account(Role.WALLET) for v in villagers]
        ids += [self.agent.account(Role.FLOAT), self.agent.account(Role.CASH)]
        return {
            str(a.id): a.credits_posted - a.debits_posted - a.debits_pending
            for a in self.led.lookup_accounts(ids)
        }

    def events_of(self, event_type: str, party_id: uuid.UUID) -> list[events.Event]:
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=party_id, limit=events.EVENTS_PAGE_MAX)
        )
        return [e for e in found if e.type == event_type]


def _agent(led: Ledger, name: str = "Wanjiru's shop") -> Party:
    agent = parties.onboard(led, party_id=new_id(), kind=Kind.AGENT, name=name, currency=KES)
    agent_float.top_up_float(
        led, topup_id=new_id(), agent_id=agent.id, amount_minor=5_000_000, provider="BANK"
    )
    return agent


@pytest.fixture
def counter(ledger: Ledger, clock: Clock) -> Counter:
    return Counter(ledger, clock, _agent(ledger))


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


# -- a code works once ----------------------------------------------------------------------


def test_otieno_withdraws_1_000_kes_with_the_code_he_made_and_the_code_works_once(
    counter: Counter,
) -> None:
    otieno = counter.villager()
    code = counter.code(otieno, 100_000)
    requested = counter.request(otieno, 100_000, code)
    assert requested.state is CashOutState.REQUESTED
    [wallet] = counter.led.lookup_accounts([otieno.account(Role.WALLET)])
    assert wallet.debits_pending == 100_000
    done = cash.confirm_cash_out(counter.led, cash_out_id=requested.id, agent_id=counter.agent.id)
    assert done.state is CashOutState.COMPLETED
    after = counter.balances(otieno)
    with refused("consent_invalid"):
        counter.request(otieno, 100_000, code)
    assert counter.balances(otieno) == after
    [used] = counter.events_of(consent.CONSENT_USED, otieno.id)
    assert used.payload["used_for"] == str(requested.id)
    assert counter.led.check_integrity().ok


def test_a_replayed_request_answers_the_stored_cash_out_though_its_code_is_spent(
    counter: Counter,
) -> None:
    otieno = counter.villager()
    cash_out_id = new_id()
    code = counter.code(otieno, 100_000)
    first = counter.request(otieno, 100_000, code, cash_out_id=cash_out_id)
    before = counter.balances(otieno)
    assert counter.request(otieno, 100_000, code, cash_out_id=cash_out_id) == first
    assert counter.request(otieno, 100_000, None, cash_out_id=cash_out_id) == first
    assert counter.balances(otieno) == before


def test_without_consent_a_cash_out_is_refused_and_nothing_is_held(counter: Counter) -> None:
    otieno = counter.villager()
    before = counter.balances(otieno)
    with refused("consent_required"):
        counter.request(otieno, 100_000, None)
    with refused("consent_required"):
        cash.cash_out(
            counter.led,
            cash_out_id=new_id(),
            agent_id=counter.agent.id,
            villager_id=otieno.id,
            amount_minor=100_000,
            consent_code=None,
        )
    assert counter.balances(otieno) == before
    assert limits.get_usage(counter.led, villager_id=otieno.id).cash_out_minor == 0
    assert cash.list_cash_outs(counter.led, agent_id=counter.agent.id) == []


def test_eight_agents_racing_with_one_code_make_exactly_one_cash_out(pg_url: str) -> None:
    led = open_ledger(pg_url, migrate=True)
    try:
        counter = Counter(led, Clock(), _agent(led))
        otieno = counter.villager()
        code = counter.code(otieno, 100_000)
        start = threading.Barrier(8)
        outcomes: list[str] = []

        def attempt() -> None:
            start.wait()
            try:
                counter.request(otieno, 100_000, code)
                outcomes.append("held")
            except Refused as refusal:
                outcomes.append(refusal.code)

        threads = [threading.Thread(target=attempt) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["consent_invalid"] * 7 + ["held"]
        assert len(cash.list_cash_outs(led, agent_id=counter.agent.id)) == 1
        [wallet] = led.lookup_accounts([otieno.account(Role.WALLET)])
        assert wallet.debits_pending == 100_000
        assert led.check_integrity().ok
    finally:
        led.close()


# -- codes that do not fit ------------------------------------------------------------------


def test_a_code_lasts_ten_minutes_and_not_a_second_more(counter: Counter) -> None:
    otieno = counter.villager()
    late = counter.code(otieno, 100_000)
    in_time = counter.code(otieno, 50_000)
    counter.clock.advance(consent.CODE_TTL_S - 1)
    counter.request(otieno, 50_000, in_time)
    counter.clock.advance(1)
    before = counter.balances(otieno)
    with refused("consent_expired"):
        counter.request(otieno, 100_000, late)
    assert counter.balances(otieno) == before
    assert len(counter.events_of(consent.CONSENT_EXPIRED, otieno.id)) == 1


def test_a_code_for_another_agent_or_another_amount_is_refused(counter: Counter) -> None:
    otieno = counter.villager()
    other = _agent(counter.led, "another shop")
    code = counter.code(otieno, 100_000)
    before = counter.balances(otieno)
    with refused("consent_invalid"):
        counter.request(otieno, 100_000, code, agent=other)
    with refused("consent_invalid"):
        counter.request(otieno, 100_001, code)
    assert counter.balances(otieno) == before
    counter.request(otieno, 100_000, code)  # two wrong tries do not void it


def test_an_amount_above_the_tiers_per_transaction_maximum_is_refused_when_made(
    counter: Counter,
) -> None:
    amina = counter.villager(tier="tier0")
    tier = limits.get_tier_limits(counter.led, currency=KES, tier="tier0")
    with refused("limit_exceeded_per_transaction"):
        counter.code(amina, tier.per_transaction_max_minor + 1)
    assert counter.events_of(consent.CONSENT_CODE_MADE, amina.id) == []
    assert counter.code(amina, tier.per_transaction_max_minor)


def test_three_wrong_tries_void_the_code_and_the_right_code_then_fails(counter: Counter) -> None:
    otieno = counter.villager()
    code = counter.code(otieno, 100_000)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(consent.WRONG_TRIES_MAX - 1):
        with refused("consent_invalid"):
            counter.request(otieno, 100_000, wrong)
    assert counter.events_of(consent.CONSENT_VOIDED, otieno.id) == []
    with refused("consent_invalid"):
        counter.request(otieno, 100_000, "12a456")  # malformed counts too
    [voided] = counter.events_of(consent.CONSENT_VOIDED, otieno.id)
    assert voided.payload["reason"] == "wrong_tries"
    before = counter.balances(otieno)
    with refused("consent_invalid"):
        counter.request(otieno, 100_000, code)
    assert counter.balances(otieno) == before


def test_the_wrong_tries_of_a_caller_are_rate_limited(counter: Counter) -> None:
    """Each guess lands on a fresh villager (so no code is voided): the caller is
    stopped after CALLER_FAILURES_MAX wrong codes, even with a right one; another
    caller is not."""
    otieno = counter.villager()
    code = counter.code(otieno, 100_000)
    guesser = new_id()
    strangers = [counter.villager(wallet_minor=0) for _ in range(consent.CALLER_FAILURES_MAX)]
    for stranger in strangers[:-1]:
        with refused("consent_invalid"):
            counter.request(stranger, 100_000, "000000", caller_id=guesser)
    # One failure short of the limit: a right code still works for this caller.
    spare = counter.code(otieno, 50_000)
    counter.request(otieno, 50_000, spare, caller_id=guesser)
    with refused("consent_invalid"):
        counter.request(strangers[-1], 100_000, "000000", caller_id=guesser)
    before = counter.balances(otieno)
    with refused("consent_rate_limited"):
        counter.request(otieno, 100_000, code, caller_id=guesser)
    assert counter.balances(otieno) == before
    counter.clock.advance(consent.CALLER_FAILURE_WINDOW_S)  # the window has passed
    counter.request(otieno, 100_000, counter.code(otieno, 100_000), caller_id=guesser)


def test_a_code_is_looked_up_by_villager_and_never_by_digits_alone(
    counter: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Akinyi and Otieno happen to get the same digits; Akinyi's code never moves
    Otieno's money."""
    otieno = counter.villager()
    akinyi = counter.villager()
    monkeypatch.setattr("secrets.randbelow", lambda _: 424_242)
    mine = counter.code(akinyi, 100_000)
    his = counter.code(otieno, 50_000)
    assert mine == his == "424242"
    before = counter.balances(otieno, akinyi)
    with refused("consent_invalid"):
        counter.request(otieno, 100_000, mine)
    assert counter.balances(otieno, akinyi) == before
    counter.request(akinyi, 100_000, mine)
    # Two of Otieno's own codes with the same digits: each works for its own amount.
    assert counter.code(otieno, 70_000) == his
    counter.request(otieno, 70_000, his)
    counter.request(otieno, 50_000, his)


def test_a_villager_keeps_at_most_three_open_codes_of_a_purpose(counter: Counter) -> None:
    otieno = counter.villager()
    for amount in range(consent.OPEN_CODES_MAX):
        counter.code(otieno, 10_000 + amount)
    with refused("consent_codes_too_many"):
        counter.code(otieno, 20_000)
    counter.clock.advance(consent.CODE_TTL_S)
    counter.code(otieno, 20_000)  # the old ones expired


def test_the_code_is_answered_once_and_no_event_carries_its_digits(counter: Counter) -> None:
    otieno = counter.villager()
    issued = issue(
        counter.led, villager_id=otieno.id, agent_id=counter.agent.id, amount_minor=100_000
    )
    assert issued.expires_at == counter.clock.now + timedelta(seconds=consent.CODE_TTL_S)
    counter.request(otieno, 100_000, issued.code)
    found = counter.led.transact(
        lambda tx: events.read_events(tx, subject_id=issued.id, limit=events.EVENTS_PAGE_MAX)
    )
    assert [e.type for e in found] == [consent.CONSENT_CODE_MADE, consent.CONSENT_USED]
    for event in found:
        assert event.party_id == otieno.id
        assert issued.code not in str(event.payload)
    stored = counter.led.transact(
        lambda tx: tx.one(
            "SELECT code_hash, code_salt FROM consent_codes WHERE id = :i", {"i": issued.id}
        )
    )
    assert stored is not None and issued.code.encode() not in bytes(stored[0])
    assert len(bytes(stored[0])) == consent.CODE_HASH_BYTES


# -- the PIN ----------------------------------------------------------------------------------


def test_otieno_starts_a_withdrawal_with_his_pin_and_the_agent_confirms(counter: Counter) -> None:
    otieno = counter.villager()
    started = cash.start_withdrawal(
        counter.led,
        cash_out_id=new_id(),
        villager_id=otieno.id,
        pin=PIN,
        agent_id=counter.agent.id,
        amount_minor=100_000,
    )
    assert started.state is CashOutState.REQUESTED
    cash.confirm_cash_out(counter.led, cash_out_id=started.id, agent_id=counter.agent.id)
    [wallet] = counter.led.lookup_accounts([otieno.account(Role.WALLET)])
    assert wallet.credits_posted - wallet.debits_posted == 400_000
    [given] = counter.events_of(consent.CONSENT_PIN_GIVEN, otieno.id)
    assert given.payload["method"] == "pin"


def test_a_wrong_pin_holds_nothing(counter: Counter) -> None:
    otieno = counter.villager()
    before = counter.balances(otieno)
    with refused("pin_invalid"):
        cash.start_withdrawal(
            counter.led,
            cash_out_id=new_id(),
            villager_id=otieno.id,
            pin="9999",
            agent_id=counter.agent.id,
            amount_minor=100_000,
        )
    with refused("pin_invalid"):
        consent.make_code(
            counter.led,
            villager_id=otieno.id,
            pin="9999",
            purpose=Purpose.WITHDRAWAL,
            amount_minor=100_000,
            agent_id=counter.agent.id,
        )
    assert counter.balances(otieno) == before
    assert cash.list_cash_outs(counter.led, agent_id=counter.agent.id) == []


def test_a_consent_is_for_one_debit_and_cannot_be_forged(counter: Counter) -> None:
    otieno = counter.villager()
    given = consent.by_pin(
        counter.led,
        villager_id=otieno.id,
        pin=PIN,
        purpose=Purpose.WITHDRAWAL,
        amount_minor=100_000,
        agent_id=counter.agent.id,
    )
    forged = consent.Consent(
        otieno.id, Purpose.WITHDRAWAL, 100_000, counter.agent.id, None, None, given.consent_id
    )

    def request(with_consent: consent.Consent) -> cash.CashOut:
        return counter.led.transact(
            lambda tx: cash.request_cash_out_in(
                tx,
                cash_out_id=new_id(),
                agent_id=counter.agent.id,
                villager_id=otieno.id,
                amount_minor=100_000,
                consent=with_consent,
            )
        )

    with refused("consent_invalid"):
        request(forged)
    request(given)
    with refused("consent_invalid"):
        request(given)  # used once
    with refused("consent_purpose_invalid"):
        consent.by_pin(
            counter.led,
            villager_id=otieno.id,
            pin=PIN,
            purpose=Purpose.OFFLINE_WITHDRAWAL,
            amount_minor=100_000,
            agent_id=counter.agent.id,
        )
