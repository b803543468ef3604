"""Villagers as principals: an agent registers Wanjiru at the station, she sets her PIN
with the code her phone received, her PIN guards her wallet (three wrong tries lock it),
an unlock makes her set a new one, and a second unlock, a reset or a new SIM holds large
debits for 48 hours. Every story runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import argon2
import pytest

from ledger import Ledger, Transfer
from ledger.core.tx import Tx
from ledger.flows import events, limits, parties, villagers
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.villagers import State, Villager
from ledger.flows.villagers import service as villager_service
from tests.conftest import Clock
from tests.villager_helpers import DEFAULT_PIN, activation_code, active_villager

KES = "KES"
PHONE = "+254712345678"
OTHER_PHONE = "+254722000111"
TIER0_PER_TRANSACTION_MINOR = 500_000  # KES 5,000.00, seeded by migration 0004
OPERATOR = uuid.UUID("00000000-0000-4000-8000-00000000a11c")


@pytest.fixture
def agent(ledger: Ledger) -> uuid.UUID:
    agent_id = uuid.uuid4()
    parties.onboard(ledger, party_id=agent_id, kind=Kind.AGENT, name="Duka la Amani", currency=KES)
    return agent_id


def register(
    led: Ledger, agent: uuid.UUID, *, villager_id: uuid.UUID | None = None, **changes: Any
) -> Villager:
    request: dict[str, Any] = {
        "villager_id": villager_id or uuid.uuid4(),
        "agent_id": agent,
        "phone": PHONE,
        "name": "Wanjiru",
        "currency": KES,
        "language": "sw",
    }
    request.update(changes)
    return villagers.register_villager(led, **request)


def refused(code: str, call: Callable[[], object]) -> FlowError:
    with pytest.raises(FlowError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def villager_events(led: Ledger, villager_id: uuid.UUID) -> list[events.Event]:
    return led.transact(
        lambda tx: events.read_events(tx, party_id=villager_id, limit=events.EVENTS_PAGE_MAX)
    )


def types_of(led: Ledger, villager_id: uuid.UUID) -> list[str]:
    return [e.type for e in villager_events(led, villager_id)]


def lock(led: Ledger, villager_id: uuid.UUID) -> None:
    for _ in range(villagers.PIN_TRIES_MAX):
        with pytest.raises(Refused):
            villagers.verify_pin(led, villager_id=villager_id, pin="9731")


def in_tx(led: Ledger, work: Callable[[Tx], Any]) -> Any:
    return led.transact(work)


# -- registration ---------------------------------------------------------------------------


def test_an_agent_registers_a_villager_whose_code_goes_only_to_her_phone(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = register(ledger, agent, phone="+254 712 345 678")

    assert (wanjiru.phone, wanjiru.state, wanjiru.kyc_tier) == (
        PHONE,
        State.PENDING_ACTIVATION,
        villagers.REGISTRATION_TIER,
    )
    assert (wanjiru.agent_id, wanjiru.language, wanjiru.currency) == (agent, "sw", KES)
    party = in_tx(ledger, lambda tx: parties.get_party(tx, wanjiru.id, Kind.VILLAGER))
    assert party.accounts == {Role.WALLET: wanjiru.wallet_id}
    sent = villager_events(ledger, wanjiru.id)
    assert [e.type for e in sent] == [events.VILLAGER_REGISTERED, events.VILLAGER_ACTIVATION_CODE]
    code_event = sent[1]
    assert code_event.party_id == wanjiru.id
    assert {k: code_event.payload[k] for k in ("phone", "language", "reason")} == {
        "phone": PHONE,
        "language": "sw",
        "reason": "registration",
    }
    code = code_event.payload["code"]
    assert len(code) == villagers.ACTIVATION_CODE_DIGITS and code.isdigit()
    assert code not in repr(wanjiru)  # the agent's answer does not carry it

    active = villagers.activate(ledger, phone=PHONE, activation_code=code, pin="2580")
    assert (active.state, active.pin_tries_left) == (State.ACTIVE, villagers.PIN_TRIES_MAX)
    assert villagers.verify_pin_by_phone(ledger, phone=PHONE, pin="2580").id == wanjiru.id
    refused(
        "activation_code_invalid",
        lambda: villagers.activate(ledger, phone=PHONE, activation_code=code, pin="3691"),
    )


def test_registration_is_idempotent_and_another_request_under_its_id_conflicts(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = register(ledger, agent)
    again = register(ledger, agent, villager_id=wanjiru.id)
    assert again == wanjiru
    assert types_of(ledger, wanjiru.id).count(events.VILLAGER_ACTIVATION_CODE) == 1

    assert isinstance(
        refused(
            "villager_id_reused",
            lambda: register(ledger, agent, villager_id=wanjiru.id, name="Akinyi"),
        ),
        Conflict,
    )
    refused("phone_taken", lambda: register(ledger, agent, phone="+254 712 345 678"))
    onboarded = uuid.uuid4()
    parties.onboard(
        ledger,
        party_id=onboarded,
        kind=Kind.VILLAGER,
        name="Wanjiru",
        currency=KES,
        kyc_tier="tier0",
    )
    refused(
        "villager_id_reused",
        lambda: register(ledger, agent, villager_id=onboarded, phone=OTHER_PHONE),
    )
    assert in_tx(ledger, lambda tx: villagers.get_villager_in(tx, onboarded)) is None


def test_registration_needs_an_agent_of_the_villagers_currency(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    ugx_agent = uuid.uuid4()
    parties.onboard(ledger, party_id=ugx_agent, kind=Kind.AGENT, name="Kampala", currency="UGX")
    newcomer = uuid.uuid4()

    refused("currency_mismatch", lambda: register(ledger, ugx_agent, villager_id=newcomer))
    assert isinstance(
        refused("agent_not_found", lambda: register(ledger, uuid.uuid4(), villager_id=newcomer)),
        NotFound,
    )
    refused(
        "language_not_supported",
        lambda: register(ledger, agent, villager_id=newcomer, language="fr"),
    )
    refused("name_invalid", lambda: register(ledger, agent, villager_id=newcomer, name="<b>W</b>"))
    assert in_tx(ledger, lambda tx: parties.find_party(tx, newcomer)) is None


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+254712345678", "+254712345678"),
        ("+254 712 345 678", "+254712345678"),
        ("+254-712-345-678", "+254712345678"),
        ("+255 754 123 456", "+255754123456"),
    ],
)
def test_a_phone_number_is_stored_as_e164(raw: str, e164: str) -> None:
    assert villagers.normalise_phone(raw) == e164


@pytest.mark.parametrize(
    "raw",
    [
        "0712345678",  # a local number: no country code
        "712345678",
        "+254 712",  # too short to be a number
        "+254712345678<script>",
        "<b>+254712345678</b>",
        "+254" + "7" * (villagers.PHONE_INPUT_LENGTH_MAX - 3),  # one character too long
        "+254 712 345 678\n",
        "",
        "+",
    ],
)
def test_a_phone_number_that_is_not_e164_is_refused(raw: str) -> None:
    refused("phone_invalid", lambda: villagers.normalise_phone(raw))


def test_a_phone_at_the_input_length_limit_is_read(ledger: Ledger, agent: uuid.UUID) -> None:
    padded = "+254" + " " * (villagers.PHONE_INPUT_LENGTH_MAX - 13) + "712345678"
    assert len(padded) == villagers.PHONE_INPUT_LENGTH_MAX
    assert register(ledger, agent, phone=padded).phone == PHONE
    refused("phone_invalid", lambda: register(ledger, agent, phone="0712345678"))


# -- activation -------------------------------------------------------------------------------


@pytest.mark.parametrize("pin", ["0000", "1111", "1234", "4321", "123456", "654321", "98765"])
def test_a_trivially_weak_pin_is_refused_and_the_code_stays_good(
    ledger: Ledger, agent: uuid.UUID, pin: str
) -> None:
    wanjiru = register(ledger, agent)
    code = activation_code(ledger, wanjiru.id)
    refused(
        "pin_too_weak",
        lambda: villagers.activate(ledger, phone=PHONE, activation_code=code, pin=pin),
    )
    assert (
        villagers.activate(ledger, phone=PHONE, activation_code=code, pin="2580").state
        is State.ACTIVE
    )


@pytest.mark.parametrize("pin", ["258", "2580147", "25a0", "٢٥٨٠", " 2580", 2580])
def test_a_pin_is_four_to_six_ascii_digits(pin: Any) -> None:
    refused("pin_format_invalid", lambda: villager_service._check_new_pin(pin))


def test_pins_of_four_and_six_digits_are_taken(ledger: Ledger, agent: uuid.UUID) -> None:
    four = active_villager(ledger, agent_id=agent, phone=PHONE, pin="2580")
    six = active_villager(ledger, agent_id=agent, phone=OTHER_PHONE, pin="258014")
    assert villagers.verify_pin(ledger, villager_id=four.id, pin="2580").state is State.ACTIVE
    assert villagers.verify_pin(ledger, villager_id=six.id, pin="258014").state is State.ACTIVE


def test_three_wrong_activation_codes_void_the_code(ledger: Ledger, agent: uuid.UUID) -> None:
    wanjiru = register(ledger, agent)
    code = activation_code(ledger, wanjiru.id)
    wrong = f"{(int(code) + 1) % 10**8:08d}"

    def try_code(c: str) -> Villager:
        return villagers.activate(ledger, phone=PHONE, activation_code=c, pin="2580")

    assert "2 tries left" in refused("activation_code_invalid", lambda: try_code(wrong)).detail
    assert "1 tries left" in refused("activation_code_invalid", lambda: try_code(wrong)).detail
    refused("activation_code_void", lambda: try_code(wrong))
    refused("activation_code_invalid", lambda: try_code(code))  # the right code, too late
    assert villagers.get_villager(ledger, wanjiru.id).state is State.PENDING_ACTIVATION
    assert types_of(ledger, wanjiru.id).count(events.VILLAGER_ACTIVATION_FAILED) == 3

    villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent)  # a fresh code
    assert try_code(activation_code(ledger, wanjiru.id)).state is State.ACTIVE


def test_an_activation_code_expires(ledger: Ledger, agent: uuid.UUID, clock: Clock) -> None:
    early = register(ledger, agent)
    late = register(ledger, agent, phone=OTHER_PHONE)
    clock.advance(villagers.ACTIVATION_CODE_TTL_S - 1)
    assert (
        villagers.activate(
            ledger, phone=PHONE, activation_code=activation_code(ledger, early.id), pin="2580"
        ).state
        is State.ACTIVE
    )
    clock.advance(1)
    late_code = activation_code(ledger, late.id)
    refused(
        "activation_code_expired",
        lambda: villagers.activate(
            ledger, phone=OTHER_PHONE, activation_code=late_code, pin="2580"
        ),
    )
    refused(
        "activation_code_invalid",
        lambda: villagers.activate(
            ledger, phone=OTHER_PHONE, activation_code=late_code, pin="2580"
        ),
    )


# -- the PIN --------------------------------------------------------------------------------


def test_three_wrong_pins_lock_it_until_it_is_unlocked(ledger: Ledger, agent: uuid.UUID) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)

    def try_pin(pin: str) -> Villager:
        return villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=pin)

    assert "2 tries left" in refused("pin_invalid", lambda: try_pin("9731")).detail
    assert "1 tries left" in refused("pin_invalid", lambda: try_pin("9731")).detail
    assert try_pin(DEFAULT_PIN).pin_tries_left == villagers.PIN_TRIES_MAX  # a right try clears
    refused("pin_invalid", lambda: try_pin("9731"))
    refused("pin_invalid", lambda: try_pin("9731"))
    refused("pin_locked", lambda: try_pin("9731"))
    refused("pin_locked", lambda: try_pin(DEFAULT_PIN))
    refused(
        "pin_locked", lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN)
    )

    assert villagers.get_villager(ledger, wanjiru.id).state is State.LOCKED
    seen = types_of(ledger, wanjiru.id)
    assert seen.count(events.VILLAGER_PIN_FAILED) == 5
    assert seen.count(events.VILLAGER_PIN_VERIFIED) == 1
    assert seen.count(events.VILLAGER_PIN_LOCKED) == 1


def test_a_villager_not_yet_active_has_no_pin_to_check(ledger: Ledger, agent: uuid.UUID) -> None:
    wanjiru = register(ledger, agent)
    refused(
        "villager_not_active",
        lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin="2580"),
    )
    refused(
        "villager_not_found",
        lambda: villagers.verify_pin(ledger, villager_id=uuid.uuid4(), pin="2580"),
    )


def test_an_unlock_forces_a_new_pin_through_a_fresh_code(ledger: Ledger, agent: uuid.UUID) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    refused(
        "villager_not_locked",
        lambda: villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent),
    )
    lock(ledger, wanjiru.id)
    first_code = activation_code(ledger, wanjiru.id)
    other_agent = uuid.uuid4()
    parties.onboard(ledger, party_id=other_agent, kind=Kind.AGENT, name="Other", currency=KES)
    refused(
        "villager_not_found",
        lambda: villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=other_agent),
    )

    unlocked = villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent)

    assert (unlocked.state, unlocked.debit_hold_until) == (State.PENDING_ACTIVATION, None)
    refused(
        "villager_not_active",
        lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN),
    )
    new_code = activation_code(ledger, wanjiru.id)
    assert new_code != first_code
    villagers.activate(ledger, phone=PHONE, activation_code=new_code, pin="3691")
    refused(
        "pin_invalid", lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN)
    )
    assert villagers.verify_pin(ledger, villager_id=wanjiru.id, pin="3691").state is State.ACTIVE
    assert types_of(ledger, wanjiru.id).count(events.VILLAGER_UNLOCKED) == 1


def relock(led: Ledger, villager_id: uuid.UUID, pin: str) -> None:
    villagers.activate(led, phone=PHONE, activation_code=activation_code(led, villager_id), pin=pin)
    lock(led, villager_id)


def test_a_second_unlock_within_30_days_needs_an_operator_and_holds_large_debits(
    ledger: Ledger, agent: uuid.UUID, clock: Clock
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    lock(ledger, wanjiru.id)
    villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent)
    relock(ledger, wanjiru.id, "3691")
    clock.advance(villagers.UNLOCK_WINDOW_S - 1)

    refused(
        "operator_required",
        lambda: villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent),
    )
    held = villagers.unlock(ledger, villager_id=wanjiru.id, operator_id=OPERATOR)

    hold_until_us = clock.now.timestamp() * 1_000_000 + villagers.SIM_SWAP_HOLD_S * 1_000_000
    assert in_tx(ledger, lambda tx: villagers.debit_hold_until_in(tx, wanjiru.id)) == hold_until_us
    assert held.debit_hold_until is not None
    assert_hold(ledger, wanjiru.id, held=True)
    clock.advance(villagers.SIM_SWAP_HOLD_S - 1)
    assert_hold(ledger, wanjiru.id, held=True)
    clock.advance(1)
    assert_hold(ledger, wanjiru.id, held=False)
    assert in_tx(ledger, lambda tx: villagers.debit_hold_until_in(tx, wanjiru.id)) is None


def assert_hold(led: Ledger, villager_id: uuid.UUID, *, held: bool) -> None:
    """At the tier's per-transaction limit a debit passes; one unit above, only without a hold."""
    limit = in_tx(led, lambda tx: limits.tier_limits_in(tx, currency=KES, tier="tier0"))
    assert limit.per_transaction_max_minor == TIER0_PER_TRANSACTION_MINOR

    def check(amount_minor: int) -> None:
        in_tx(
            led,
            lambda tx: villagers.check_debit_allowed_in(
                tx, villager_id=villager_id, amount_minor=amount_minor
            ),
        )

    check(TIER0_PER_TRANSACTION_MINOR)
    if held:
        refused("sim_swap_hold", lambda: check(TIER0_PER_TRANSACTION_MINOR + 1))
    else:
        check(TIER0_PER_TRANSACTION_MINOR + 1)


def test_an_unlock_30_days_after_the_last_is_a_first_unlock_again(
    ledger: Ledger, agent: uuid.UUID, clock: Clock
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    lock(ledger, wanjiru.id)
    villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent)
    relock(ledger, wanjiru.id, "3691")
    clock.advance(villagers.UNLOCK_WINDOW_S)

    again = villagers.unlock(ledger, villager_id=wanjiru.id, agent_id=agent)

    assert (again.state, again.debit_hold_until) == (State.PENDING_ACTIVATION, None)
    assert_hold(ledger, wanjiru.id, held=False)


def test_an_operator_reset_sends_a_new_code_and_holds_large_debits(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    assert_hold(ledger, wanjiru.id, held=False)

    reset = villagers.reset(ledger, villager_id=wanjiru.id, operator_id=OPERATOR)

    assert reset.state is State.PENDING_ACTIVATION
    assert_hold(ledger, wanjiru.id, held=True)
    code_event = [
        e for e in villager_events(ledger, wanjiru.id) if e.type == events.VILLAGER_ACTIVATION_CODE
    ][-1]
    assert code_event.payload["reason"] == "reset"
    villagers.activate(ledger, phone=PHONE, activation_code=code_event.payload["code"], pin="3691")
    assert villagers.verify_pin(ledger, villager_id=wanjiru.id, pin="3691").state is State.ACTIVE


def test_a_new_phone_number_keeps_the_pin_and_holds_large_debits(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    active_villager(ledger, agent_id=agent, phone="+254733000222", name="Akinyi")
    refused(
        "phone_taken",
        lambda: villagers.change_phone(
            ledger, villager_id=wanjiru.id, operator_id=OPERATOR, phone="+254733000222"
        ),
    )
    assert_hold(ledger, wanjiru.id, held=False)

    moved = villagers.change_phone(
        ledger, villager_id=wanjiru.id, operator_id=OPERATOR, phone=OTHER_PHONE
    )

    assert (moved.phone, moved.state) == (OTHER_PHONE, State.ACTIVE)
    assert_hold(ledger, wanjiru.id, held=True)
    assert (
        villagers.verify_pin_by_phone(ledger, phone=OTHER_PHONE, pin=DEFAULT_PIN).id == wanjiru.id
    )
    refused(
        "pin_invalid", lambda: villagers.verify_pin_by_phone(ledger, phone=PHONE, pin=DEFAULT_PIN)
    )
    [changed] = [
        e for e in villager_events(ledger, wanjiru.id) if e.type == events.VILLAGER_PHONE_CHANGED
    ]
    assert (changed.payload["old_phone"], changed.payload["new_phone"]) == (PHONE, OTHER_PHONE)


def test_a_villager_changes_her_pin(ledger: Ledger, agent: uuid.UUID) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    refused(
        "pin_unchanged",
        lambda: villagers.change_pin(
            ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN, new_pin=DEFAULT_PIN
        ),
    )
    refused(
        "pin_too_weak",
        lambda: villagers.change_pin(
            ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN, new_pin="1234"
        ),
    )
    refused(
        "pin_invalid",
        lambda: villagers.change_pin(ledger, villager_id=wanjiru.id, pin="9731", new_pin="3691"),
    )
    assert villagers.get_villager(ledger, wanjiru.id).pin_tries_left == villagers.PIN_TRIES_MAX - 1

    changed = villagers.change_pin(ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN, new_pin="3691")

    assert changed.pin_tries_left == villagers.PIN_TRIES_MAX
    refused(
        "pin_invalid", lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=DEFAULT_PIN)
    )
    assert villagers.verify_pin(ledger, villager_id=wanjiru.id, pin="3691").id == wanjiru.id
    assert events.VILLAGER_PIN_CHANGED in types_of(ledger, wanjiru.id)


def test_a_wrong_try_stays_counted_when_the_callers_work_rolls_back(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    bank = uuid.uuid4()

    def pay_with_pin(pin: str) -> None:
        villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=pin)
        ledger.create_transfers([Transfer(uuid.uuid4(), wanjiru.wallet_id, bank, 1, KES, 1)])

    refused("pin_invalid", lambda: pay_with_pin("9731"))

    assert villagers.get_villager(ledger, wanjiru.id).pin_tries_left == villagers.PIN_TRIES_MAX - 1


# -- secrets ----------------------------------------------------------------------------------


def test_no_pin_code_or_hash_reaches_the_logs_or_the_events(
    ledger: Ledger, agent: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wanjiru = register(ledger, agent)
    code = activation_code(ledger, wanjiru.id)
    villagers.activate(ledger, phone=PHONE, activation_code=code, pin="2580")
    villagers.verify_pin_by_phone(ledger, phone=PHONE, pin="2580")
    refused("pin_invalid", lambda: villagers.verify_pin(ledger, villager_id=wanjiru.id, pin="9731"))
    refused(
        "pin_invalid", lambda: villagers.verify_pin_by_phone(ledger, phone=OTHER_PHONE, pin="9731")
    )

    pin_hash = in_tx(
        ledger,
        lambda tx: tx.one(
            "SELECT pin_hash FROM villagers WHERE party_id = :id", {"id": wanjiru.id}
        ),
    )[0]
    assert pin_hash.startswith("$argon2id$") and "2580" not in pin_hash
    for secret in ("2580", "9731", code, pin_hash, "$argon2"):
        assert secret not in caplog.text
    for event in villager_events(ledger, wanjiru.id):
        text = repr(event.payload)
        assert "2580" not in text and "9731" not in text and "argon2" not in text
        assert (code in text) == (event.type == events.VILLAGER_ACTIVATION_CODE)


def test_an_unknown_phone_takes_the_same_path_as_a_wrong_pin(
    ledger: Ledger, agent: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    active_villager(ledger, agent_id=agent, phone=PHONE)
    verified: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def spy(self: argon2.PasswordHasher, hashed: str | bytes, secret: str | bytes) -> bool:
        verified.append(str(hashed))
        return real_verify(self, hashed, secret)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", spy)

    wrong = refused(
        "pin_invalid", lambda: villagers.verify_pin_by_phone(ledger, phone=PHONE, pin="9731")
    )
    assert len(verified) == 1 and verified[0] != villagers.DUMMY_PIN_HASH
    verified.clear()
    unknown = refused(
        "pin_invalid", lambda: villagers.verify_pin_by_phone(ledger, phone=OTHER_PHONE, pin="9731")
    )
    assert verified == [villagers.DUMMY_PIN_HASH]
    assert (type(unknown), unknown.code, unknown.detail) == (type(wrong), wrong.code, wrong.detail)
    # a second wrong try reads the same too: a count of tries left would tell them apart
    again = refused(
        "pin_invalid", lambda: villagers.verify_pin_by_phone(ledger, phone=PHONE, pin="9731")
    )
    assert again.detail == unknown.detail == "wrong PIN"


def test_the_dummy_hash_costs_what_a_real_pin_hash_costs() -> None:
    assert not villager_service._HASHER.check_needs_rehash(villagers.DUMMY_PIN_HASH)
    assert (
        villager_service._HASHER.hash("2580").split("$")[:4]
        == villagers.DUMMY_PIN_HASH.split("$")[:4]
    )


def test_eight_parallel_wrong_guesses_get_three_tries_and_no_more(
    ledger: Ledger, agent: uuid.UUID
) -> None:
    wanjiru = active_villager(ledger, agent_id=agent, phone=PHONE)
    outcomes: list[str] = []
    guard = threading.Lock()

    def guess(pin: str) -> None:
        try:
            villagers.verify_pin(ledger, villager_id=wanjiru.id, pin=pin)
            code = "ok"
        except FlowError as exc:
            code = exc.code
        with guard:
            outcomes.append(code)

    threads = [threading.Thread(target=guess, args=(f"97{n:02d}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["pin_invalid"] * 2 + ["pin_locked"] * 6
    assert types_of(ledger, wanjiru.id).count(events.VILLAGER_PIN_FAILED) == villagers.PIN_TRIES_MAX
    assert villagers.get_villager(ledger, wanjiru.id).state is State.LOCKED


# -- the command line ---------------------------------------------------------------------------


def test_the_command_line_registers_unlocks_resets_and_rephones(
    ledger: Ledger, db_url: str, agent: uuid.UUID, capsys: pytest.CaptureFixture[str]
) -> None:
    from vledger.cli import main

    base = ["--database", db_url]
    registered = [
        "villagers", "register", "--agent", str(agent), "--phone", "+254 712 345 678",
        "--name", "Wanjiru", "--currency", KES, "--language", "sw",
    ]  # fmt: skip
    assert main([*registered, *base]) == 0
    printed = json.loads(capsys.readouterr().out)
    wanjiru = uuid.UUID(printed["id"])
    assert (printed["phone"], printed["state"]) == (PHONE, "pending_activation")
    assert activation_code(ledger, wanjiru) not in json.dumps(printed)

    villagers.activate(
        ledger, phone=PHONE, activation_code=activation_code(ledger, wanjiru), pin="2580"
    )
    lock(ledger, wanjiru)
    assert main(["villagers", "unlock", str(wanjiru), "--agent", str(agent), *base]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "pending_activation"
    operator = ["--operator", str(OPERATOR)]
    assert main(["villagers", "reset", str(wanjiru), *operator, *base]) == 0
    assert json.loads(capsys.readouterr().out)["debit_hold_until"] is not None
    assert main(["villagers", "phone", str(wanjiru), "--phone", OTHER_PHONE, *operator, *base]) == 0
    assert json.loads(capsys.readouterr().out)["phone"] == OTHER_PHONE


def test_the_command_line_answers_bad_input_in_one_line_with_exit_2(
    ledger: Ledger,
    db_url: str,
    agent: uuid.UUID,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from api.keys import create_key
    from vledger.cli import main

    base = ["--database", db_url]
    local = [
        "villagers", "register", "--agent", str(agent), "--phone", "0712345678",
        "--name", "Wanjiru", "--currency", KES, "--language", "en",
    ]  # fmt: skip
    assert main([*local, *base]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vledger villagers: phone_invalid") and err.count("\n") == 1
    assert main(["villagers", "reset", str(uuid.uuid4()), *base]) == 2  # no --operator
    capsys.readouterr()
    assert main(["villagers", "reset", str(uuid.uuid4()), "--operator", str(OPERATOR), *base]) == 2
    assert capsys.readouterr().err.startswith("vledger villagers: villager_not_found")
    assert main(["villagers", "unlock", "not-a-uuid", "--agent", str(agent), *base]) == 2
    capsys.readouterr()
    shop = create_key(db_url, "storefront", "shop", "ed25519", tmp_path / "shop.key")
    taken = ["--phone", PHONE, "--id", shop["principal_id"]]
    assert main([*local[:4], *taken, *local[6:], *base]) == 2
    assert "no key principal's id" in capsys.readouterr().err
