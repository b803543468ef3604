"""A villager registered by an agent activates her PIN over the USSD callback (real HTTP,
both engines): the code read from her ``villager.activation_code`` outbox event, a new
PIN, the PIN again -> active, and the session goes on to her balance. A wrong code (tries
left shown, counted once even when replayed), an expired code, a void code, a weak PIN,
PINs that differ, a code of the wrong form; the code and the PINs in no session column
and no log record; an unknown or locked phone answers as before."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from api.app import create_app
from api.local_server import ServerThread
from api.settings import Settings
from ledger import Ledger, open_ledger
from ledger.core.tx import Tx
from ledger.flows import events, villagers
from ledger.flows.errors import Refused
from ledger.flows.ussd import SCREEN_LENGTH_MAX, repository
from ledger.flows.ussd.model import BLANK, inputs_sha256
from ledger.flows.villagers import ACTIVATION_CODE_DIGITS, ACTIVATION_CODE_TTL_S
from ledger.flows.villagers import State as VillagerState
from tests.conftest import Clock, drop_pg_schema
from tests.test_api_harness import FAST_TEST_SETTINGS, fresh_database
from tests.ussd_helpers import agent, new_phone, villager
from tests.villager_helpers import activation_code

SECRET = "aggregator-" + uuid.uuid4().hex
AGGREGATOR = "10.1.2.3"
NEW_PIN = "739146"
OTHER_PIN = "481592"
ASK_CODE = "Enter the activation code sent to you by SMS"
ASK_PIN = "Enter a new PIN (4 to 6 digits)"
AGAIN = "Enter the new PIN again"
MAIN = (
    "Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)
BALANCE = "CON Balance: KES 0.00\nAvailable: KES 0.00\n0 Back"


@dataclass
class Aggregator:
    led: Ledger
    clock: Clock
    base: str

    def post(self, session_id: str, phone: str, text: str) -> str:
        form = {
            "sessionId": session_id,
            "serviceCode": "*384*55#",
            "phoneNumber": phone,
            "networkCode": "63902",
            "text": text,
        }
        sent = httpx.post(
            f"{self.base}/ussd/africastalking/{SECRET}",
            data=form,
            headers={"X-Forwarded-For": AGGREGATOR},
            timeout=30,
        )
        assert sent.status_code == 200
        assert sent.text[:4] in ("CON ", "END ")
        assert len(sent.text) - 4 <= SCREEN_LENGTH_MAX
        return sent.text

    def keys(self, session_id: str, phone: str, done: str, *keys: str) -> str:
        """Press ``keys`` one step at a time after the inputs ``done``; the last screen."""
        inputs = done.split("*") if done else []
        shown = ""
        for key in keys:
            inputs.append(key)
            shown = self.post(session_id, phone, "*".join(inputs))
        return shown

    def pending(self, language: str = "en") -> tuple[uuid.UUID, str, str]:
        """A villager just registered by an agent: (id, phone, the code her SMS holds)."""
        made = villagers.register_villager(
            self.led,
            villager_id=uuid.uuid4(),
            agent_id=agent(self.led).id,
            phone=new_phone(),
            name="Akinyi",
            currency="KES",
            language=language,
        )
        assert made.state is VillagerState.PENDING_ACTIVATION
        return made.id, made.phone, activation_code(self.led, made.id)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def aggregator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Aggregator]:
    url, schema = fresh_database(request.param, tmp_path_factory.mktemp("ussd_act"))
    clock = Clock()
    try:
        led = open_ledger(url, migrate=True, clock=clock)
        settings: Settings = dataclasses.replace(
            FAST_TEST_SETTINGS,
            clock=clock,
            ussd_secrets=(SECRET,),
            ussd_source_networks=("10.0.0.0/8",),
            ussd_trusted_proxies=("127.0.0.1",),
        )
        with ServerThread(create_app(url, settings=settings)) as server:
            yield Aggregator(led, clock, server.base_url)
        led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def _wrong(code: str) -> str:
    """A well-formed code that is not ``code``."""
    return ("0" if code[0] != "0" else "1") + code[1:]


def session() -> str:
    return f"ATUid_{uuid.uuid4().hex}"


def _events(led: Ledger, villager_id: uuid.UUID, event_type: str) -> list[events.Event]:
    def read(tx: Tx) -> list[events.Event]:
        page = events.read_events(
            tx, after_seq=0, limit=events.EVENTS_PAGE_MAX, party_id=villager_id
        )
        return [e for e in page if e.type == event_type]

    return led.transact(read)


def _state(led: Ledger, villager_id: uuid.UUID) -> VillagerState:
    return villagers.get_villager(led, villager_id).state


def test_she_activates_with_the_sms_code_and_goes_on_to_her_balance(
    aggregator: Aggregator,
) -> None:
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    assert post(sid, phone, "") == f"CON Welcome to Village Ledger.\n{ASK_CODE}"
    assert post(sid, phone, code) == f"CON {ASK_PIN}"
    assert post(sid, phone, f"{code}*{NEW_PIN}") == f"CON {AGAIN}"
    assert _state(aggregator.led, akinyi) is VillagerState.PENDING_ACTIVATION
    done = post(sid, phone, f"{code}*{NEW_PIN}*{NEW_PIN}")
    assert done == f"CON Your PIN is set.\n{MAIN}"
    assert _state(aggregator.led, akinyi) is VillagerState.ACTIVE
    # the PIN is verified for this session: the balance is shown without asking it again
    assert post(sid, phone, f"{code}*{NEW_PIN}*{NEW_PIN}*1") == BALANCE
    verified = villagers.verify_pin(aggregator.led, villager_id=akinyi, pin=NEW_PIN)
    assert verified.state is VillagerState.ACTIVE
    # a new session is an active villager's: the main menu, the PIN asked before money
    again = session()
    assert post(again, phone, "") == f"CON {MAIN}"
    assert post(again, phone, "1") == "CON Enter your PIN"
    assert post(again, phone, f"1*{NEW_PIN}") == BALANCE


def test_she_activates_in_swahili(aggregator: Aggregator) -> None:
    akinyi, phone, code = aggregator.pending("sw")
    sid, post = session(), aggregator.post
    first = post(sid, phone, "")
    assert first == "CON Karibu Village Ledger.\nWeka msimbo wa kuanzisha uliotumwa kwako kwa SMS"
    wrong = _wrong(code)
    shown = aggregator.keys(sid, phone, "", wrong, NEW_PIN, NEW_PIN)
    assert shown.startswith("CON Msimbo si sahihi. Majaribio yaliyobaki: 2.\n")
    done = aggregator.keys(sid, phone, f"{wrong}*{NEW_PIN}*{NEW_PIN}", code, NEW_PIN, NEW_PIN)
    assert done.startswith("CON PIN yako imewekwa.\n")
    assert _state(aggregator.led, akinyi) is VillagerState.ACTIVE


def test_a_wrong_code_shows_the_tries_left_counted_once_even_replayed(
    aggregator: Aggregator,
) -> None:
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    wrong = _wrong(code)
    post(sid, phone, "")
    first = f"{wrong}*{NEW_PIN}*{NEW_PIN}"
    shown = aggregator.keys(sid, phone, "", wrong, NEW_PIN, NEW_PIN)
    assert shown == f"CON Wrong code. Tries left: 2.\n{ASK_CODE}"
    assert post(sid, phone, first) == shown  # the aggregator retries: the same, no new try
    assert len(_events(aggregator.led, akinyi, events.VILLAGER_ACTIVATION_FAILED)) == 1
    assert _state(aggregator.led, akinyi) is VillagerState.PENDING_ACTIVATION
    second = f"{first}*{wrong}*{NEW_PIN}*{NEW_PIN}"
    shown = aggregator.keys(sid, phone, first, wrong, NEW_PIN, NEW_PIN)
    assert shown == f"CON Wrong code. Tries left: 1.\n{ASK_CODE}"
    done = aggregator.keys(sid, phone, second, code, NEW_PIN, NEW_PIN)
    assert done == f"CON Your PIN is set.\n{MAIN}"
    assert _state(aggregator.led, akinyi) is VillagerState.ACTIVE


def test_the_third_wrong_code_voids_it(aggregator: Aggregator) -> None:
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    wrong = _wrong(code)
    post(sid, phone, "")
    last = aggregator.keys(sid, phone, "", *[wrong, NEW_PIN, NEW_PIN] * 3)
    assert last == "END Too many wrong codes: the code is void. Visit your agent."
    # the right code no longer works either
    again = session()
    post(again, phone, "")
    ended = aggregator.keys(again, phone, "", code, NEW_PIN, NEW_PIN)
    assert ended == f"CON Wrong code.\n{ASK_CODE}"
    assert _state(aggregator.led, akinyi) is VillagerState.PENDING_ACTIVATION


def test_an_expired_code_ends_the_session(aggregator: Aggregator) -> None:
    akinyi, phone, code = aggregator.pending()
    aggregator.clock.advance(ACTIVATION_CODE_TTL_S + 1)
    sid, post = session(), aggregator.post
    post(sid, phone, "")
    shown = aggregator.keys(sid, phone, "", code, NEW_PIN, NEW_PIN)
    assert shown == "END Your code has expired. Visit your agent for a new one."
    assert _state(aggregator.led, akinyi) is VillagerState.PENDING_ACTIVATION


def test_a_weak_pin_pins_that_differ_and_a_malformed_code_ask_again(
    aggregator: Aggregator,
) -> None:
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    post(sid, phone, "")
    form = f"The code from the SMS is {ACTIVATION_CODE_DIGITS} digits."
    assert post(sid, phone, "12") == f"CON {form}\n{ASK_CODE}"
    text = f"12*{code}*1234*1234"
    weak = "Too easy to guess: not one digit repeated or a straight run."
    assert aggregator.keys(sid, phone, "12", code, "1234", "1234") == f"CON {weak}\n{ASK_PIN}"
    text += "*99"
    assert post(sid, phone, text) == f"CON {AGAIN}"
    text += "*99"
    assert post(sid, phone, text) == f"CON A PIN is 4 to 6 digits.\n{ASK_PIN}"
    differ = aggregator.keys(sid, phone, text, NEW_PIN, OTHER_PIN)
    assert differ == f"CON The two new PINs differ.\n{ASK_PIN}"
    text += f"*{NEW_PIN}*{OTHER_PIN}"
    assert _state(aggregator.led, akinyi) is VillagerState.PENDING_ACTIVATION
    assert _events(aggregator.led, akinyi, events.VILLAGER_ACTIVATION_FAILED) == []
    set_pin = aggregator.keys(sid, phone, text, OTHER_PIN, OTHER_PIN)
    assert set_pin == f"CON Your PIN is set.\n{MAIN}"
    villagers.verify_pin(aggregator.led, villager_id=akinyi, pin=OTHER_PIN)
    with pytest.raises(Refused):
        villagers.verify_pin(aggregator.led, villager_id=akinyi, pin=NEW_PIN)


def test_a_replayed_last_step_activates_once(aggregator: Aggregator) -> None:
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    post(sid, phone, "")
    text = f"{code}*{NEW_PIN}*{NEW_PIN}"
    first = aggregator.keys(sid, phone, "", code, NEW_PIN, NEW_PIN)
    assert post(sid, phone, text) == first == f"CON Your PIN is set.\n{MAIN}"
    assert len(_events(aggregator.led, akinyi, events.VILLAGER_ACTIVATED)) == 1
    # another session replaying the same keys: she is active now, no code is asked
    assert post(session(), phone, "") == f"CON {MAIN}"


def test_the_code_and_pins_are_in_no_session_column_and_no_log_record(
    aggregator: Aggregator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    akinyi, phone, code = aggregator.pending()
    sid, post = session(), aggregator.post
    wrong = _wrong(code)
    post(sid, phone, "")
    # "12": a slip on the code screen; short, but every key typed there is kept as a secret
    text = f"12*{wrong}*{OTHER_PIN}*{OTHER_PIN}*{code}*{NEW_PIN}*{NEW_PIN}*1"
    for n in range(1, 9):
        post(sid, phone, "*".join(text.split("*")[:n]))
    assert _state(aggregator.led, akinyi) is VillagerState.ACTIVE
    (row,) = aggregator.led.transact(
        lambda tx: tx.execute("SELECT * FROM ussd_sessions WHERE session_id = :id", {"id": sid})
    )
    stored = " ".join(str(value) for value in row)
    for secret in (code, wrong, NEW_PIN, OTHER_PIN):
        assert secret not in stored
    assert sid in stored  # the row is there and was read
    # the digest, too, is of the inputs with the code and both PINs blanked (an 8-digit
    # code's digest would be guessed in seconds)
    kept = aggregator.led.transact(lambda tx: repository.select(tx, sid))
    assert kept is not None and kept.secret_positions == [0, 1, 2, 3, 4, 5, 6]
    assert kept.inputs_sha256 == inputs_sha256([BLANK] * 7 + ["1"])
    records = [r for r in caplog.records if r.name != "httpx"]  # httpx: this test's client
    assert any("ussd: villager activated" in r.getMessage() for r in records)
    for record in records:
        said = f"{record.getMessage()} {record.__dict__}"
        for secret in (code, NEW_PIN, OTHER_PIN):
            assert secret not in said, record.getMessage()


def test_an_unknown_or_locked_phone_answers_as_before(aggregator: Aggregator) -> None:
    post = aggregator.post
    unknown = post(session(), new_phone(), "")
    assert unknown == "END This number is not registered. Visit an agent to register."
    otieno = villager(aggregator.led, agent(aggregator.led).id)
    phone = villagers.get_villager(aggregator.led, otieno.id).phone
    for wrong in ("1111", "2222", "3333"):
        with pytest.raises(Refused):
            villagers.verify_pin(aggregator.led, villager_id=otieno.id, pin=wrong)
    locked = post(session(), phone, "")
    assert locked == "END Your PIN is locked. Visit your agent to unlock it."
