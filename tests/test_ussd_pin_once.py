"""The PIN is verified once per USSD session: a withdrawal or pay code made later in the
session runs no second argon2 verify (the consent flow's make_code_in_session), and is
refused when the PIN was locked elsewhere since (three wrong tries on another session)."""

from __future__ import annotations

import re

import pytest

from ledger import Ledger
from ledger.flows.parties import tills
from ledger.flows.villagers import service as villager_service
from tests.ussd_helpers import PIN, Phone, agent, villager


def test_a_withdrawal_code_checks_no_pin_a_second_time(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanjiru = agent(ledger)
    phone = Phone.of(ledger, villager(ledger, wanjiru.id, (100_000,)))
    till = ledger.transact(lambda tx: tills.till_of_in(tx, wanjiru.id))
    verifies: list[str] = []
    real = villager_service._matches
    monkeypatch.setattr(
        villager_service, "_matches", lambda h, s: verifies.append("v") or real(h, s)
    )
    phone.dial()
    phone.press("5")
    phone.press(PIN)
    assert verifies == ["v"]  # the session's one PIN check
    phone.press(till)
    phone.press("500")
    made = phone.press("1")
    assert made.end and re.search(r"Withdrawal code: \d{6}", made.text), made
    assert verifies == ["v"]  # the code made on the session's verified PIN


def test_a_pin_locked_since_makes_no_code(ledger: Ledger) -> None:
    wanjiru = agent(ledger)
    otieno = villager(ledger, wanjiru.id, (100_000,))
    phone = Phone.of(ledger, otieno)
    till = ledger.transact(lambda tx: tills.till_of_in(tx, wanjiru.id))
    phone.dial()
    phone.press("5")
    phone.press(PIN)
    phone.press(till)
    phone.press("500")
    elsewhere = Phone(ledger, phone.phone)
    elsewhere.dial()
    elsewhere.press("1")
    for _ in range(3):
        elsewhere.press("000000" if PIN != "000000" else "111111")
    made = phone.press("1")
    assert made.end and "Your PIN is locked" in made.text, made
    assert "Withdrawal code" not in made.text
