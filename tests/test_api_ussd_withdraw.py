"""A withdrawal code over the USSD callback (real HTTP, both engines): Otieno types
Wanjiru's till number, sees her name, the exact amount, gets a code; Wanjiru's cash-out
with it succeeds once; a replayed step makes no second code. A wrong till number, an
agent of another currency, an amount over the tier limit, a non-amount: a clear screen,
no code, no money moved. A long name with markup is cut and sent as plain text."""

from __future__ import annotations

import re
import uuid

import pytest

from ledger import Ledger
from ledger.flows import cash, consent, events, parties, villagers
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, Party, tills
from tests.test_api_ussd import Aggregator, aggregator, session
from tests.ussd_helpers import PIN, agent, villager, wallet_minor

__all__ = ["aggregator"]  # the fixture, imported for pytest

SCREEN_MAX = 182 + len("CON ")
MAIN = (
    "CON Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)
TILL_PROMPT = "Withdraw cash\nEnter the agent's till number\n0 Back"


def till_of(led: Ledger, party: Party) -> str:
    return led.transact(lambda tx: tills.till_of_in(tx, party.id))


def codes_made(led: Ledger, villager_id: uuid.UUID) -> int:
    found = led.transact(
        lambda tx: events.read_events(tx, party_id=villager_id, limit=events.EVENTS_PAGE_MAX)
    )
    return sum(1 for e in found if e.type == consent.CONSENT_CODE_MADE)


def dial(agg: Aggregator, *cash_ins_minor: int) -> tuple[Party, Party, str]:
    """Wanjiru (an agent with float) and Otieno (her villager, paid in), his phone."""
    wanjiru = agent(agg.led)
    otieno = villager(agg.led, wanjiru.id, cash_ins_minor)
    return wanjiru, otieno, villagers.get_villager(agg.led, otieno.id).phone


class Walk:
    """One session: :meth:`press` sends every input so far, as the aggregator does."""

    def __init__(self, agg: Aggregator, phone: str) -> None:
        self.agg, self.phone, self.sid, self.inputs = agg, phone, session(), list[str]()
        first = self.send()
        assert first == MAIN

    def send(self) -> str:
        answered = self.agg.post(self.sid, self.phone, "*".join(self.inputs))
        assert answered.status_code == 200
        assert answered.headers["content-type"] == "text/plain; charset=utf-8"
        assert len(answered.text) <= SCREEN_MAX
        return answered.text

    def press(self, key: str) -> str:
        self.inputs.append(key)
        return self.send()


def test_otieno_makes_a_withdrawal_code_at_a_till_and_wanjiru_pays_out_once(
    aggregator: Aggregator,
) -> None:
    wanjiru, otieno, phone = dial(aggregator, 150_000)
    till = till_of(aggregator.led, wanjiru)
    assert re.fullmatch(r"[1-9]\d{5}", till)
    walk = Walk(aggregator, phone)
    assert walk.press("5") == "CON Enter your PIN"
    assert walk.press(PIN) == "CON " + TILL_PROMPT
    assert walk.press(till) == (
        f"CON Agent: Wanjiru's shop, till {till}\nEnter the amount in KES\n0 Back"
    )
    assert walk.press("500") == (
        f"CON Withdraw KES 500.00 at Wanjiru's shop, till {till}?\n1 Confirm\n0 Back"
    )
    made = walk.press("1")
    found = re.fullmatch(
        rf"END Withdrawal code: (\d{{6}})\nFor KES 500\.00 at Wanjiru's shop, till {till}\."
        r" Valid 10 minutes\. Tell it only to that agent\.",
        made,
    )
    assert found is not None, made
    assert walk.send() == made  # the aggregator replays the step: the same screen
    assert walk.send() == made
    assert codes_made(aggregator.led, otieno.id) == 1
    assert wallet_minor(aggregator.led, otieno) == (150_000, 150_000)  # a code holds nothing

    code = found.group(1)
    asked = cash.request_cash_out(
        aggregator.led,
        cash_out_id=uuid.uuid4(),
        agent_id=wanjiru.id,
        villager_id=otieno.id,
        amount_minor=50_000,
        consent_code=code,
    )
    done = cash.confirm_cash_out(aggregator.led, cash_out_id=asked.id, agent_id=wanjiru.id)
    posted, available = wallet_minor(aggregator.led, otieno)
    assert posted == available == 150_000 - 50_000 - done.fee_minor
    with pytest.raises(Refused) as again:  # the code is spent
        cash.request_cash_out(
            aggregator.led,
            cash_out_id=uuid.uuid4(),
            agent_id=wanjiru.id,
            villager_id=otieno.id,
            amount_minor=50_000,
            consent_code=code,
        )
    assert again.value.code == "consent_invalid"
    assert wallet_minor(aggregator.led, otieno) == (posted, available)


def test_a_wrong_till_or_another_currency_s_agent_is_no_agent(aggregator: Aggregator) -> None:
    led = aggregator.led
    _wanjiru, otieno, phone = dial(aggregator, 20_000)
    kampala = parties.onboard(
        led, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Kampala shop", currency="UGX"
    )
    free = next(
        t
        for t in (f"{n}" for n in range(100_000, 999_999, 7_919))
        if led.transact(lambda tx, t=t: tills.agent_of_till_in(tx, t)) is None  # type: ignore[misc]
    )
    walk = Walk(aggregator, phone)
    walk.press("5")
    walk.press(PIN)
    unknown = "CON No agent has that till number.\n" + TILL_PROMPT
    for wrong in (free, till_of(led, kampala), "12345", "0" + free[1:], "1234567"):
        assert walk.press(wrong) == unknown, wrong
    assert walk.press("0") == MAIN
    assert codes_made(led, otieno.id) == 0
    assert wallet_minor(led, otieno) == (20_000, 20_000)


def test_an_amount_over_the_tier_limit_or_no_amount_makes_no_code(aggregator: Aggregator) -> None:
    led = aggregator.led
    wanjiru, otieno, phone = dial(aggregator, 20_000)
    till = till_of(led, wanjiru)
    walk = Walk(aggregator, phone)
    walk.press("5")
    walk.press(PIN)
    ask_amount = f"Agent: Wanjiru's shop, till {till}\nEnter the amount in KES\n0 Back"
    assert walk.press(till) == "CON " + ask_amount
    typo = "CON Type the amount in whole units, digits only.\n" + ask_amount
    assert walk.press("0000") == typo
    assert walk.press("") == typo
    assert walk.press("1234567890") == typo  # more digits than any tier allows
    assert walk.press("70001").startswith("CON Withdraw KES 70,001.00 at Wanjiru's shop")
    assert walk.press("1") == "CON That amount is above your limit.\n" + ask_amount
    assert walk.press("70000").startswith("CON Withdraw KES 70,000.00")  # the limit itself
    assert walk.press("7") == (
        f"CON That is not a choice here.\nWithdraw KES 70,000.00 at Wanjiru's shop,"
        f" till {till}?\n1 Confirm\n0 Back"
    )
    assert walk.press("0") == MAIN
    assert codes_made(led, otieno.id) == 0
    assert wallet_minor(led, otieno) == (20_000, 20_000)


def test_an_agent_s_long_name_with_markup_is_cut_and_plain(aggregator: Aggregator) -> None:
    led = aggregator.led
    wanjiru, _otieno, phone = dial(aggregator, 20_000)
    odd = parties.onboard(
        led,
        party_id=uuid.uuid4(),
        kind=Kind.AGENT,
        name="<script>alert(1)</script> & the longest shop name in the valley",
        currency="KES",
    )
    walk = Walk(aggregator, phone)
    walk.press("5")
    walk.press(PIN)
    shown = walk.press(till_of(led, odd))
    assert shown.startswith("CON Agent: <script>alert(1)</scr..., till ")
    assert till_of(led, wanjiru) != till_of(led, odd)


def test_a_swahili_villager_walks_the_withdrawal_in_swahili(aggregator: Aggregator) -> None:
    led = aggregator.led
    wanjiru, otieno, phone = dial(aggregator, 150_000)
    villagers.set_language(led, villager_id=otieno.id, language="sw")
    till = till_of(led, wanjiru)
    sid = session()
    screens = [
        aggregator.post(sid, phone, text).text
        for text in ("", "5", f"5*{PIN}", f"5*{PIN}*{till}", f"5*{PIN}*{till}*250")
    ]
    assert screens[0].endswith("\n5 Toa pesa\n6 Oda zangu")
    assert screens[2] == "CON Toa pesa\nWeka namba ya till ya wakala\n0 Rudi"
    assert screens[4].startswith("CON Toa KES 250.00 kwa Wanjiru's shop, till ")
    made = aggregator.post(sid, phone, f"5*{PIN}*{till}*250*1").text
    assert made.startswith("END Namba ya kutoa pesa: ")
    assert all(len(s) <= SCREEN_MAX for s in [*screens, made])
    assert codes_made(led, otieno.id) == 1


def test_the_code_s_screen_is_forgotten_once_the_session_is_over(aggregator: Aggregator) -> None:
    from ledger.flows import ussd
    from ledger.flows.ussd.repository import select

    led = aggregator.led
    wanjiru, _otieno, phone = dial(aggregator, 20_000)
    walk = Walk(aggregator, phone)
    for key in ("5", PIN, till_of(led, wanjiru), "100"):
        walk.press(key)
    made = walk.press("1")
    code = re.search(r"code: (\d{6})", made)
    assert code is not None
    aggregator.clock.advance(ussd.SESSION_IDLE_S - 1)
    ussd.purge_sessions(led)
    assert walk.send() == made  # still replayable: kept
    aggregator.clock.advance(2)
    ussd.purge_sessions(led)
    row = led.transact(lambda tx: select(tx, walk.sid))
    assert row is not None and code.group(1) not in row.screen_text
    assert walk.send() == "END Your session timed out. Please dial again."
