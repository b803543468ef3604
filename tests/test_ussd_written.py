"""The rows a process wrote last (ledger.flows.ussd.written) are a guess, never a truth:
a menu step saved through one is saved only if the stored row is still exactly it."""

from __future__ import annotations

from dataclasses import replace

from ledger import Ledger
from ledger.flows.ussd import written
from ledger.flows.ussd.repository import select
from tests.ussd_helpers import Phone, agent, villager

MAIN = (
    "Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)


def test_a_step_on_the_guess_reads_nothing_and_saves_the_row(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 1
    assert written.guess(ledger.url, phone.session_id) == stored  # exactly what is stored


def test_a_stale_guess_is_not_used_another_workers_step_wins(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")  # the language menu
    stale = written.guess(ledger.url, phone.session_id)
    assert stale is not None
    written.forget(ledger.url, phone.session_id)  # another worker answers the next step
    answered = phone.press("0")  # back to the main menu
    before = ledger.transact(lambda tx: select(tx, phone.session_id))
    written.keep(ledger.url, stale)  # this process still believes the session is at "4"
    # The aggregator replays "4*0": on the stale guess it would look like the next step;
    # the stored row differs, so nothing is written and the replay answers the same.
    assert phone.send("4*0") == answered
    assert ledger.transact(lambda tx: select(tx, phone.session_id)) == before


def test_a_guess_that_differs_in_any_column_writes_nothing(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    phone.dial()
    phone.press("4")
    guess = written.guess(ledger.url, phone.session_id)
    assert guess is not None
    for changed in (
        replace(guess, screen_text="CON elsewhere"),
        replace(guess, updated_at_us=guess.updated_at_us - 1),
        replace(guess, pin_verified_at_us=guess.updated_at_us),
        replace(guess, language="sw"),
    ):
        written.keep(ledger.url, changed)
        assert phone.press("0").text == MAIN  # judged on the stored row: English
        after = ledger.transact(lambda tx: select(tx, phone.session_id))
        assert after is not None and after.inputs_seen == len(phone.inputs)
        assert after.language == "en" and after.pin_verified_at_us is None
        phone.press("4")


def test_a_first_step_and_a_menu_step_are_one_transaction_each(ledger: Ledger) -> None:
    """Dialling (find her by phone, store the session) and a menu step (on the guess)
    each open one database transaction, on either engine."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id, (10_000,)))
    store, opened = ledger._store, []
    real = store.transaction

    def counted(work: object) -> object:
        opened.append(1)
        return real(work)  # type: ignore[arg-type]

    store.transaction = counted  # type: ignore[method-assign]
    try:
        assert phone.dial().text == MAIN
        assert len(opened) == 1
        phone.press("4")
        assert len(opened) == 2
    finally:
        del store.transaction
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 1
