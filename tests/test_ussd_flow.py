"""The villager's USSD menu as stories on both engines: Otieno dials in, checks his balance
and his last movements after typing his PIN once, changes his PIN, switches to Swahili.
The PIN is never stored or logged, a replayed step changes nothing twice, an idle session
ends after 180 s, and every bad input answers END and moves nothing."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid

import pytest

from ledger import Ledger, LedgerError, StorageError
from ledger.flows import events, ussd, villagers
from ledger.flows.errors import Refused
from ledger.flows.ussd import Screen
from ledger.flows.ussd.repository import SessionRow, insert, select
from ledger.flows.villagers import Language, State
from tests.conftest import Clock
from tests.ussd_helpers import PIN, Phone, agent, new_phone, villager, wallet_minor

MAIN = (
    "Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)
MAIN_SW = (
    "Village Ledger\n1 Salio\n2 Taarifa fupi\n3 Badilisha PIN\n4 Lugha\n5 Toa pesa\n6 Oda zangu"
)


def con(text: str) -> Screen:
    return Screen(text, end=False)


def end(text: str) -> Screen:
    return Screen(text, end=True)


def pin_events(led: Ledger, party_id: object, event_type: str) -> int:
    found = led.transact(
        lambda tx: events.read_events(tx, party_id=party_id, limit=events.EVENTS_PAGE_MAX)  # type: ignore[arg-type]
    )
    return sum(1 for e in found if e.type == event_type)


def test_otieno_sees_his_balance_after_his_pin_and_not_before(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id, (100_000, 25_000))
    phone = Phone.of(ledger, otieno)
    assert phone.dial() == con(MAIN)
    assert phone.press("1") == con("Enter your PIN")
    balance = con("Balance: KES 1,250.00\nAvailable: KES 1,250.00\n0 Back")
    assert phone.press(PIN) == balance
    assert phone.press("7") == con("That is not a choice here.\n" + balance.text)
    assert phone.press("0") == con(MAIN)
    assert phone.press("1") == balance  # the PIN once per session
    assert pin_events(ledger, otieno.id, events.VILLAGER_PIN_VERIFIED) == 1
    assert wallet_minor(ledger, otieno) == (125_000, 125_000)


def test_the_mini_statement_pages_the_last_five_movements(ledger: Ledger) -> None:
    amounts = (10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000)
    otieno = villager(ledger, agent(ledger).id, amounts)
    phone = Phone.of(ledger, otieno)
    phone.dial()
    assert phone.press("2") == con("Enter your PIN")
    day = ledger.now().strftime("%d/%m")  # the test clock stays at 08:00 UTC, 11:00 Nairobi
    first = phone.press(PIN)
    assert first == con(
        "Mini statement\n"
        f"{day} in KES 700.00, bal KES 2,800.00\n"
        f"{day} in KES 600.00, bal KES 2,100.00\n"
        f"{day} in KES 500.00, bal KES 1,500.00\n"
        f"{day} in KES 400.00, bal KES 1,000.00\n"
        "98 More\n0 Back"
    )
    assert len(first.text) <= 182
    assert phone.press("98") == con(f"{day} in KES 300.00, bal KES 600.00\n0 Back")
    assert phone.press("98") == con(f"{day} in KES 300.00, bal KES 600.00\n0 Back")  # last page
    assert phone.press("0") == first
    assert phone.press("0") == con(MAIN)


def test_an_empty_wallet_has_no_movements(ledger: Ledger) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id))
    phone.dial()
    phone.press("2")
    assert phone.press(PIN) == con("Mini statement\nNo movements yet.\n0 Back")


def test_otieno_changes_his_pin_and_a_weak_or_mistyped_one_is_refused(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id)
    phone = Phone.of(ledger, otieno)
    phone.dial()
    assert phone.press("3") == con("Enter your current PIN")
    assert phone.press("111111") == con("Enter a new PIN (4 to 6 digits)")
    assert phone.press("4821") == con("Enter the new PIN again")
    assert phone.press("4821") == con("Wrong PIN.\nEnter your current PIN")
    assert villagers.get_villager(ledger, otieno.id).pin_tries_left == 2
    phone.press(PIN)
    phone.press("1234")
    weak = "Too easy to guess: not one digit repeated or a straight run."
    assert phone.press("1234") == con(f"{weak}\nEnter a new PIN (4 to 6 digits)")
    phone.press("4821")
    assert phone.press("4829") == con("The two new PINs differ.\nEnter a new PIN (4 to 6 digits)")
    phone.press(PIN)
    assert phone.press(PIN) == con(
        "The new PIN must differ from the PIN.\nEnter a new PIN (4 to 6 digits)"
    )
    phone.press("4821")
    assert phone.press("4821") == end("Your PIN is changed. Use the new PIN from now on.")
    assert villagers.verify_pin(ledger, villager_id=otieno.id, pin="4821").pin_tries_left == 3
    assert phone.press("1") == end("This session is over. Please dial again.")


def test_otieno_switches_to_swahili_and_the_next_session_speaks_it(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id, (50_000,))
    phone = Phone.of(ledger, otieno)
    phone.dial()
    assert phone.press("4") == con("Choose a language\n1 English\n2 Kiswahili\n0 Back")
    assert phone.press("2") == con("Lugha imehifadhiwa.\n" + MAIN_SW)
    assert villagers.get_villager(ledger, otieno.id).language is Language.SW
    again = Phone(ledger, phone.phone)
    assert again.dial() == con(MAIN_SW)
    assert again.press("1") == con("Weka PIN yako")
    assert again.press(PIN) == con("Salio: KES 500.00\nInayopatikana: KES 500.00\n0 Rudi")
    again.press("0")
    again.press("4")
    assert again.press("1") == con("Language saved.\n" + MAIN)


def test_the_pin_is_in_no_session_column_and_no_log_record(
    ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    otieno = villager(ledger, agent(ledger).id, (10_000,))
    phone = Phone.of(ledger, otieno)
    phone.dial()
    phone.press("1")
    phone.press(PIN)
    phone.press("0")
    phone.press(PIN)  # typed on the main menu by mistake: no choice, kept like a PIN
    for key in ("3", PIN, "482193", "482193"):
        phone.press(key)
    rows = ledger.transact(lambda tx: tx.execute("SELECT * FROM ussd_sessions"))
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert PIN not in stored and "482193" not in stored
    row = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert row is not None and row.secret_positions == [1, 3, 5, 6, 7]  # where, never what
    assert caplog.records, "the steps were logged"
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert PIN not in text and "482193" not in text


def test_a_replayed_step_answers_the_same_and_runs_nothing_twice(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id, (10_000,))
    phone = Phone.of(ledger, otieno)
    assert phone.dial() == phone.send("") == con(MAIN)
    phone.press("1")
    wrong = phone.press("000111")
    assert wrong == con("Wrong PIN.\nEnter your PIN")
    assert phone.send("1*000111") == wrong
    assert villagers.get_villager(ledger, otieno.id).pin_tries_left == 2  # counted once
    shown = phone.press(PIN)
    assert phone.send(f"1*000111*{PIN}") == shown
    assert pin_events(ledger, otieno.id, events.VILLAGER_PIN_VERIFIED) == 1
    # an earlier step, or a step that skips one, is out of order: nothing moves
    assert phone.send("1") == end("This session is over. Please dial again.")
    assert phone.send(f"1*000111*{PIN}*0*1") == end("This session is over. Please dial again.")
    row = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert row is not None and row.inputs_seen == 3 and row.screen_text == shown.text


def test_a_session_idle_180_s_goes_on_and_181_s_is_over(ledger: Ledger, clock: Clock) -> None:
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id))
    phone.dial()
    clock.advance(180)
    assert phone.press("4") == con("Choose a language\n1 English\n2 Kiswahili\n0 Back")
    clock.advance(181)
    assert phone.press("0") == end("Your session timed out. Please dial again.")
    row = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert row is not None and row.inputs_seen == 1  # nothing saved


def test_three_wrong_pins_lock_and_end(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id, (10_000,))
    phone = Phone.of(ledger, otieno)
    phone.dial()
    phone.press("1")
    assert phone.press("1111") == con("Wrong PIN.\nEnter your PIN")
    assert phone.press("12") == con("A PIN is 4 to 6 digits.\nEnter your PIN")  # not counted
    assert phone.press("2222") == con("Wrong PIN.\nEnter your PIN")
    locked = end("Your PIN is locked. Visit your agent to unlock it.")
    assert phone.press("3333") == locked
    assert villagers.get_villager(ledger, otieno.id).state is State.LOCKED
    assert Phone.of(ledger, otieno).dial() == locked
    assert wallet_minor(ledger, otieno) == (10_000, 10_000)


def test_bad_input_answers_end_and_moves_nothing(ledger: Ledger) -> None:
    shop = agent(ledger)
    otieno = villager(ledger, shop.id, (10_000,))
    unknown = Phone(ledger, new_phone())
    assert unknown.dial() == end("This number is not registered. Visit an agent to register.")
    assert Phone(ledger, "<b>not a phone</b>").dial() == unknown.dial()
    assert ledger.transact(lambda tx: select(tx, unknown.session_id)) is None
    phone = Phone.of(ledger, otieno)
    phone.dial()
    digits_only = end("Only the number keys work here. Please dial again.")
    assert phone.send("1*<script>") == digits_only
    assert phone.send("1*12#") == digits_only
    too_many = end("Too many keys in one session. Please dial again.")
    assert phone.send("*".join(["1"] * 1000)) == too_many
    assert phone.send("1" * (ussd.INPUT_LENGTH_MAX + 1)) == too_many
    assert phone.send("*".join(["1"] * ussd.INPUTS_MAX)) == end(
        "This session is over. Please dial again."
    )  # within the limits, but not the next step
    assert phone.press("1") == con("Enter your PIN")  # the session is as it was
    forged = ussd.answer(ledger, session_id="<x>", phone=phone.phone, text="")
    assert forged == end("The service cannot answer now. Please try again later.")
    stolen = ussd.answer(ledger, session_id=phone.session_id, phone=new_phone(), text="1*1")
    assert stolen == end("The service cannot answer now. Please try again later.")
    assert Phone(ledger, phone.phone).send("1") == end("This session is over. Please dial again.")
    assert wallet_minor(ledger, otieno) == (10_000, 10_000)


def test_a_villager_not_yet_active_is_asked_for_the_sms_code(ledger: Ledger) -> None:
    shop = agent(ledger)
    made = villagers.register_villager(
        ledger,
        villager_id=uuid.uuid4(),
        agent_id=shop.id,
        phone=new_phone(),
        name="Akinyi",
        currency="KES",
        language="sw",
    )
    assert Phone(ledger, made.phone).dial() == con(
        "Karibu Village Ledger.\nWeka msimbo wa kuanzisha uliotumwa kwako kwa SMS"
    )


def test_the_database_refuses_a_screen_longer_than_182_characters(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id)
    row = SessionRow(
        session_id="ATUid_long",
        phone="+254720000000",
        villager_id=otieno.id,
        language="en",
        state={"menu": "main"},
        inputs_seen=0,
        secret_positions=[],
        inputs_sha256="0" * 64,
        pin_verified_at_us=None,
        screen_text="x" * 183,
        screen_end=False,
        created_at_us=0,
        updated_at_us=0,
    )
    with pytest.raises(LedgerError):
        ledger.transact(lambda tx: insert(tx, row))
    fitting = dataclasses.replace(row, screen_text="x" * 182)
    assert ledger.transact(lambda tx: insert(tx, fitting))
    assert not ledger.transact(lambda tx: insert(tx, fitting))  # one row per sessionId


def test_two_deliveries_of_one_pin_step_at_once_count_one_try(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id)
    phone = Phone.of(ledger, otieno)
    phone.dial()
    phone.press("1")
    start = threading.Barrier(3)
    answers: list[Screen] = []

    def deliver() -> None:
        start.wait()
        answers.append(phone.send("1*000111"))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [con("Wrong PIN.\nEnter your PIN")] * 3
    assert villagers.get_villager(ledger, otieno.id).pin_tries_left == 2  # one try, not three
    assert pin_events(ledger, otieno.id, events.VILLAGER_PIN_FAILED) == 1


def test_deliveries_of_a_first_step_at_once_store_one_session(ledger: Ledger) -> None:
    """The aggregator sends a session's first step three times at once: one session row
    is stored (the others meet it and answer its screen), and the walk goes on."""
    phone = Phone.of(ledger, villager(ledger, agent(ledger).id))
    start = threading.Barrier(3)
    answers: list[Screen] = []

    def deliver() -> None:
        start.wait()
        answers.append(phone.send(""))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [con(MAIN)] * 3
    stored = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert stored is not None and stored.inputs_seen == 0
    after = phone.press("4")
    assert not after.end and after.text.startswith("Choose a language\n1 English")


def test_a_step_that_fails_is_given_back_and_a_retry_runs_it(ledger: Ledger) -> None:
    otieno = villager(ledger, agent(ledger).id, (10_000,))
    phone = Phone.of(ledger, otieno)
    phone.dial()
    phone.press("1")
    real = villagers.verify_pin_by_phone

    def broken(*_args: object, **_kw: object) -> object:
        raise StorageError("the database went away")

    villagers.verify_pin_by_phone = broken  # type: ignore[assignment]
    try:
        with pytest.raises(StorageError):
            phone.send(f"1*{PIN}")
    finally:
        villagers.verify_pin_by_phone = real  # type: ignore[assignment]
    row = ledger.transact(lambda tx: select(tx, phone.session_id))
    assert row is not None and row.inputs_seen == 1 and row.screen_text == "Enter your PIN"
    assert phone.send(f"1*{PIN}") == con("Balance: KES 100.00\nAvailable: KES 100.00\n0 Back")


def test_sessions_idle_a_day_are_purged_in_batches(ledger: Ledger, clock: Clock) -> None:
    otieno = villager(ledger, agent(ledger).id)
    old = [Phone.of(ledger, otieno) for _ in range(3)]
    for phone in old:
        phone.dial()
    clock.advance(ussd.PURGE_AFTER_S - 1)
    recent = Phone.of(ledger, otieno)
    recent.dial()
    assert ussd.purge_sessions(ledger) == 0  # a day less a second: all stay
    clock.advance(2)
    assert ussd.purge_sessions(ledger, limit=2) == 2
    assert ussd.purge_sessions(ledger, limit=2) == 1
    assert ussd.purge_sessions(ledger) == 0
    assert ledger.transact(lambda tx: select(tx, recent.session_id)) is not None
    assert all(ledger.transact(lambda tx, p=p: select(tx, p.session_id)) is None for p in old)
    for bad in (0, ussd.PURGE_BATCH_MAX + 1):
        with pytest.raises(Refused):
            ussd.purge_sessions(ledger, limit=bad)
