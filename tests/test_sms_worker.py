"""SMS receipts and alerts sent by the worker to a fake Africa's Talking gateway (a real
HTTP server on 127.0.0.1), on SQLite and PostgreSQL.

Juma's station (KES) banks Amina (English) and Baraka (Swahili)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import agent_float, cash, consent, events, orders, parties, pickup, villagers
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind
from ledger.flows.ussd import Screen
from ledger.money import format_money
from sms import delivery, repository
from sms.contacts import set_agent_contact
from sms.encoding import GSM7_SINGLE_MAX, units
from sms.render import CODE_MASK, NAME_SHOWN_MAX
from sms.repository import Message, MessageState
from sms.settings import SmsSettings, gateway_from_env
from sms.worker import start_sms_worker
from tests.conftest import Clock
from tests.sms_gateway_fake import API_KEY, SENDER, USERNAME, FakeGateway, serve
from tests.ussd_helpers import Phone
from tests.villager_helpers import activation_code

PIN = "2580"
AMINA, BARAKA, JUMA_PHONE = "+254712000101", "+254712000102", "+254722000900"
SETTINGS = SmsSettings(backoff_base_s=30.0, jitter_ratio=0.2, attempts_max=4)


def mid_jitter() -> float:
    return 0.5  # the backoff's nominal value: 30 s, 60 s, 120 s


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    yield from serve(FakeGateway())


@dataclass
class Village:
    led: Ledger
    clock: Clock
    agent: uuid.UUID
    amina: uuid.UUID
    baraka: uuid.UUID

    def send(self, fake: FakeGateway | None) -> int:
        return delivery.send_due(
            self.led,
            now=self.clock(),
            gateway=None if fake is None else fake.gateway(),
            settings=SETTINGS,
            rand=mid_jitter,
        )

    def messages(self) -> list[Message]:
        return self.led.transact(
            lambda tx: repository.messages_after(tx, after_seq=0, state=None, limit=500)
        )

    def message(self, phone: str, starts: str) -> Message:
        [found] = [m for m in self.messages() if m.phone == phone and m.text.startswith(starts)]
        return found

    def cash_in(self, villager: uuid.UUID, amount_minor: int) -> None:
        cash.cash_in(
            self.led,
            cash_in_id=uuid.uuid4(),
            agent_id=self.agent,
            villager_id=villager,
            amount_minor=amount_minor,
        )


def villager(led: Ledger, agent: uuid.UUID, phone: str, name: str, language: str) -> uuid.UUID:
    done = villagers.register_villager(
        led,
        villager_id=uuid.uuid4(),
        agent_id=agent,
        phone=phone,
        name=name,
        currency="KES",
        language=language,
    )
    code = activation_code(led, done.id)
    villagers.activate(led, phone=phone, activation_code=code, pin=PIN)
    return done.id


def make_village(ledger: Ledger, clock: Clock, agent_name: str = "Juma's station") -> Village:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name=agent_name, currency="KES"
    )
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=5_000_000, provider="BANK"
    )
    amina = villager(ledger, agent.id, AMINA, "Amina", "en")
    baraka = villager(ledger, agent.id, BARAKA, "Baraka", "sw")
    return Village(ledger, clock, agent.id, amina, baraka)


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return make_village(ledger, clock)


def test_a_cash_in_gives_amina_an_english_receipt_and_baraka_a_swahili_one(
    village: Village, fake: FakeGateway
) -> None:
    village.cash_in(village.amina, 120_000)
    village.cash_in(village.baraka, 250_050)
    village.send(fake)
    # 08:00 UTC is 11:00 in Nairobi: a Kenyan phone's zone
    assert (
        "Received KES 1,200.00 from Juma's station on 01/06/2026 11:00. New balance KES 1,200.00."
        in fake.messages(AMINA)
    )
    assert (
        "Umepokea KES 2,500.50 kutoka kwa Juma's station tarehe 01/06/2026 11:00."
        " Salio jipya ni KES 2,500.50." in fake.messages(BARAKA)
    )
    seen = fake.seen[0]
    assert seen.headers["apiKey"] == API_KEY and seen.headers["Accept"] == "application/json"
    assert seen.form["username"] == USERNAME and seen.form["from"] == SENDER
    assert seen.path == "/version1/messaging"
    sent = village.message(BARAKA, "Umepokea")
    assert (sent.state, sent.language, sent.parts, sent.encoding) == ("sent", "sw", 1, "gsm7")
    assert sent.gateway_status_code == 101 and sent.gateway_status == "Success"
    assert sent.gateway_cost == "KES 0.8000" and (sent.gateway_message_id or "").startswith("ATX")
    assert sent.attempts == 1


def test_the_activation_code_goes_to_the_villagers_own_phone_masked_for_operators(
    village: Village, fake: FakeGateway
) -> None:
    village.send(fake)
    code = activation_code(village.led, village.baraka)
    [text] = [t for t in fake.messages(BARAKA) if t.startswith("Namba yako ya kuanzisha")]
    assert code in text and "Muda wake utaisha 02/06/2026 11:00." in text
    assert not any(code in t for t in fake.messages(AMINA))
    row = village.message(BARAKA, "Namba yako")
    assert code not in row.text_shown and "******" in row.text_shown
    assert row.state == "sent" and row.text == row.text_shown  # the code not kept once sent
    codes = [activation_code(village.led, v) for v in (village.amina, village.baraka)]

    def without_codes(message: str) -> str:  # a random code may hold the PIN's digits
        for sent_code in codes:
            message = message.replace(sent_code, "<code>")
        return message

    assert all(PIN not in without_codes(s.form["message"]) for s in fake.seen)  # no PIN


def test_failures_are_retried_with_backoff_and_every_attempt_recorded(
    village: Village, fake: FakeGateway
) -> None:
    village.send(fake)  # the activation codes
    fake.script[AMINA] = [(500, 0), (201, 500)]  # HTTP 500, then a recipient 500
    village.cash_in(village.amina, 10_000)
    assert village.send(fake) == 1
    row = village.message(AMINA, "Received")
    assert (row.state, row.attempts, row.last_error) == ("queued", 1, "HTTP 500")
    first_us = int(village.clock().timestamp() * 1_000_000)
    assert row.next_attempt_at is not None
    assert (row.next_attempt_at - village.clock()).total_seconds() == 30.0
    village.clock.advance(29)
    assert village.send(fake) == 0  # not due yet
    village.clock.advance(1)
    assert village.send(fake) == 1
    row = village.message(AMINA, "Received")
    assert row.state == "queued" and row.last_error == "recipient 500: InternalServerError"
    assert row.next_attempt_at is not None
    assert (row.next_attempt_at - village.clock()).total_seconds() == 60.0
    village.clock.advance(60)
    assert village.send(fake) == 1
    row = village.message(AMINA, "Received")
    assert (row.state, row.attempts, row.last_error) == ("sent", 3, None)
    attempts = village.led.transact(lambda tx: repository.attempts_of(tx, row.id))
    assert [(a[0] - first_us, a[1], a[2]) for a in attempts] == [
        (0, 500, None),
        (30_000_000, 201, 500),
        (90_000_000, 201, 101),
    ]
    assert fake.messages(AMINA).count(row.text) == 3


def test_no_answer_is_retried_until_attempts_max_then_failed(
    village: Village, fake: FakeGateway
) -> None:
    dead = fake.gateway()
    dead = type(dead)("http://127.0.0.1:9/version1/messaging", dead.username, dead.api_key)
    village.cash_in(village.amina, 10_000)
    for _ in range(SETTINGS.attempts_max):
        delivery.send_due(
            village.led, now=village.clock(), gateway=dead, settings=SETTINGS, rand=mid_jitter
        )
        village.clock.advance(3600)
    row = village.message(AMINA, "Received")
    assert (row.state, row.attempts) == ("failed", SETTINGS.attempts_max)
    assert row.next_attempt_at is None and "ConnectError" in (row.last_error or "")
    attempts = village.led.transact(lambda tx: repository.attempts_of(tx, row.id))
    assert [a[1] for a in attempts] == [None] * SETTINGS.attempts_max


@pytest.mark.parametrize("refusal", [(400, 0), (201, 403)], ids=["http-400", "recipient-403"])
def test_a_refused_number_fails_at_once_and_does_not_block_the_others(
    village: Village, fake: FakeGateway, refusal: tuple[int, int]
) -> None:
    village.send(fake)
    fake.script[AMINA] = [refusal]
    village.cash_in(village.amina, 10_000)
    village.cash_in(village.baraka, 20_000)
    assert village.send(fake) == 2
    refused = village.message(AMINA, "Received")
    assert (refused.state, refused.attempts, refused.next_attempt_at) == ("failed", 1, None)
    assert village.message(BARAKA, "Umepokea").state == "sent"
    village.clock.advance(24 * 3600)
    assert village.send(fake) == 0  # a refusal is not retried


def test_no_gateway_sends_nothing_keeps_messages_queued_and_logs_once(
    village: Village, fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    assert gateway_from_env({"VLEDGER_SMS_URL": fake.url, "VLEDGER_SMS_USERNAME": "u"}) is None
    found = gateway_from_env(
        {
            "VLEDGER_SMS_URL": fake.url,
            "VLEDGER_SMS_USERNAME": "u",
            "VLEDGER_SMS_API_KEY": "at_secret_9f3",
        }
    )
    assert found is not None and found.sender_id is None and "at_secret_9f3" not in repr(found)
    delivery._no_gateway_logged.clear()
    village.cash_in(village.amina, 10_000)
    with caplog.at_level(logging.WARNING):
        assert village.send(None) == 0
        village.clock.advance(60)
        assert village.send(None) == 0
    assert fake.seen == []
    warned = [r for r in caplog.records if "no gateway set" in r.getMessage()]
    assert len(warned) == 1
    states = {m.state for m in village.messages()}
    assert states == {MessageState.QUEUED} and len(village.messages()) == 3


def test_a_replayed_pass_sends_nothing_twice(village: Village, fake: FakeGateway) -> None:
    village.cash_in(village.amina, 10_000)
    village.send(fake)
    sent = len(fake.seen)
    assert sent == 3  # two activation codes, one receipt
    village.led.transact(lambda tx: repository.move_cursor(tx, 0, 0))  # the cursor lost
    village.clock.advance(3600)
    assert village.send(fake) == 0
    assert len(fake.seen) == sent and len(village.messages()) == sent


def test_markup_and_control_characters_in_a_name_cannot_break_the_message(
    ledger: Ledger, clock: Clock, fake: FakeGateway
) -> None:
    village = make_village(
        ledger, clock, agent_name="<b>Juma</b>\x1b[31m\r\n{balance}%s" + "x" * 80
    )
    village.cash_in(village.amina, 10_000)
    village.send(fake)
    [text] = [t for t in fake.messages(AMINA) if t.startswith("Received")]
    assert text == (
        "Received KES 100.00 from <b>Juma</b>[31m{balance}%sxxxx on 01/06/2026 11:00."
        " New balance KES 100.00."
    )
    assert not any(c in text for c in "\x1b\r\n")


def test_agents_get_low_float_and_cash_out_requested_at_their_contact_phone(
    village: Village, fake: FakeGateway
) -> None:
    led = village.led
    set_agent_contact(led, agent_id=village.agent, phone="+254 722 000 900", language="sw")
    agent_float.set_float_threshold(led, agent_id=village.agent, threshold_minor=4_950_000)
    village.cash_in(village.baraka, 100_000)  # float 5,000,000 -> 4,900,000: low
    code = consent.make_code(
        led,
        villager_id=village.baraka,
        pin=PIN,
        purpose=consent.Purpose.WITHDRAWAL,
        amount_minor=50_000,
        agent_id=village.agent,
    ).code
    cash.request_cash_out(
        led,
        cash_out_id=uuid.uuid4(),
        agent_id=village.agent,
        villager_id=village.baraka,
        amount_minor=50_000,
        consent_code=code,
    )
    village.send(fake)
    juma = fake.messages(JUMA_PHONE)
    assert (
        "Float iko chini: KES 49,000.00 inapatikana, chini ya kiwango chako cha tahadhari"
        " KES 49,500.00. Ongeza float mapema." in juma
    )
    assert any(t.startswith("Baraka anaomba kutoa KES 500.00 kwenye kituo chako.") for t in juma)
    baraka = fake.messages(BARAKA)
    assert any(t.startswith("Namba ya kutoa pesa ya KES 500.00 imetengenezwa.") for t in baraka)
    assert not any(code in t for s in fake.seen for t in [s.form["message"]])
    assert any(t.startswith("KES 500.00 imezuiliwa") or "imezuiliwa" in t for t in baraka)


def shop_named(led: Ledger, name: str = "Mbegu Seeds") -> uuid.UUID:
    """A storefront of that name."""
    made = parties.onboard(
        led, party_id=uuid.uuid4(), kind=Kind.STOREFRONT, name=name, currency="KES"
    )
    return made.id


def new_order(
    led: Ledger,
    shop: uuid.UUID,
    villager_id: uuid.UUID,
    *,
    method: str = "courier",
    agent_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """An order of KES 1,200.00 for the villager from ``shop``."""
    order_id = uuid.uuid4()
    orders.create_order(
        led,
        order_id=order_id,
        storefront_id=shop,
        currency="KES",
        amount_minor=120_000,
        delivery_method=method,
        villager_id=villager_id,
        agent_id=agent_id,
    )
    return order_id


def order_paid_by_code_delivered_refunded(
    village: Village, villager_id: uuid.UUID, shop: uuid.UUID
) -> uuid.UUID:
    """An order of 1,200.00 that the villager pays with a pay code made for it, then
    delivered and refunded."""
    led = village.led
    order_id = new_order(led, shop, villager_id)
    code = consent.make_code(
        led,
        villager_id=villager_id,
        pin=PIN,
        purpose=consent.Purpose.PAYMENT,
        amount_minor=120_000,
        order_id=order_id,
    ).code
    orders.pay_order(
        led,
        step_id=uuid.uuid4(),
        order_id=order_id,
        source=orders.Source.WALLET,
        consent_code=code,
    )
    orders.dispatch_order(led, step_id=uuid.uuid4(), order_id=order_id)
    orders.deliver_order(led, step_id=uuid.uuid4(), order_id=order_id)
    orders.refund_order(led, step_id=uuid.uuid4(), order_id=order_id)
    return order_id


def test_an_order_delivered_then_refunded_tells_the_villager_in_her_language(
    village: Village, fake: FakeGateway
) -> None:
    led = village.led
    shop = shop_named(led)
    village.cash_in(village.amina, 200_000)
    village.cash_in(village.baraka, 200_000)
    hers = orders.order_reference(
        order_paid_by_code_delivered_refunded(village, village.amina, shop)
    )
    his = orders.order_reference(
        order_paid_by_code_delivered_refunded(village, village.baraka, shop)
    )
    village.send(fake)
    amina, baraka = fake.messages(AMINA), fake.messages(BARAKA)
    assert f"Your order {hers} from Mbegu Seeds was delivered: KES 1,200.00." in amina
    assert (
        f"Your order {hers} from Mbegu Seeds was refunded: KES 1,200.00 back to your wallet."
        in amina
    )
    assert any(t.startswith(f"A pay code for KES 1,200.00, order {hers}, was made.") for t in amina)
    assert f"Oda yako {his} kutoka Mbegu Seeds imefikishwa: KES 1,200.00." in baraka
    assert (
        f"Oda yako {his} kutoka Mbegu Seeds imerejeshewa pesa: KES 1,200.00 zimerudi kwenye"
        " pochi yako." in baraka
    )
    assert any(
        t.startswith(f"Namba ya kulipa ya KES 1,200.00, oda {his}, imetengenezwa.") for t in baraka
    )
    assert any(t.startswith("Umelipa KES 1,200.00 kwa Mbegu Seeds") for t in baraka)
    assert not any(his in t for t in amina) and not any(hers in t for t in baraka)


def test_the_reference_in_her_order_sms_is_the_one_the_ussd_menu_takes(
    village: Village, fake: FakeGateway
) -> None:
    led = village.led
    shop = shop_named(led)
    village.cash_in(village.amina, 200_000)
    order_id = order_paid_by_code_delivered_refunded(village, village.amina, shop)
    village.send(fake)
    texts = [t for t in fake.messages(AMINA) if t.startswith(("Your order", "A pay code"))]
    assert len(texts) == 3
    found = {m.group(1) for t in texts for m in [re.search(r"order ([0-9A-F]{6})\b", t)] if m}
    assert found == {orders.order_reference(order_id)}
    (typed,) = found
    phone = Phone(led, AMINA)
    phone.dial()
    phone.press("6")
    assert phone.press(PIN).text.startswith("My orders\n99 Order reference")
    assert phone.press("99").text.startswith("Enter the order reference")
    screen = Screen(f"Order {typed}: KES 1,200.00, refunded\n0 Back", end=False)
    assert phone.press(typed.lower()) == screen  # as she types it, any case


def test_her_pickup_code_comes_by_sms_masked_for_operators_and_opens_the_hand_over(
    village: Village, fake: FakeGateway
) -> None:
    """Orders collected at the station: dispatching one sends its villager the pickup
    code, in her language, with the order's reference and until when it holds; operators
    see the code masked and it is not kept once sent; the code in the SMS is the one the
    station's hand-over takes."""
    led = village.led
    shop = shop_named(led)
    ordered = {}
    for villager_id in (village.amina, village.baraka):
        order_id = new_order(led, shop, villager_id, method="pickup_point", agent_id=village.agent)
        orders.pay_order(led, step_id=uuid.uuid4(), order_id=order_id, source=orders.Source.CASH)
        orders.dispatch_order(led, step_id=uuid.uuid4(), order_id=order_id)
        ordered[villager_id] = order_id
    village.send(fake)
    hers, his = (orders.order_reference(ordered[v]) for v in (village.amina, village.baraka))
    [text] = [t for t in fake.messages(AMINA) if t.startswith("Pickup code")]
    found = re.fullmatch(
        rf"Pickup code for order {hers} from Mbegu Seeds: (\d{{{pickup.CODE_DIGITS}}}), until"
        r" \d\d/\d\d/\d{4} \d\d:\d\d\. Show it to the agent when you collect\."
        r" Never share it otherwise\.",
        text,
    )
    assert found is not None, text
    code = found.group(1)
    [sw] = [t for t in fake.messages(BARAKA) if t.startswith("Namba ya kuchukua")]
    assert sw.startswith(f"Namba ya kuchukua oda {his} kutoka Mbegu Seeds: ")
    assert not any(code in t for t in fake.messages(BARAKA))
    row = village.message(AMINA, "Pickup code")
    assert code not in row.text_shown and CODE_MASK * len(code) in row.text_shown
    assert row.state == "sent" and row.text == row.text_shown  # the code not kept once sent
    assert units(text) <= GSM7_SINGLE_MAX and units(sw) <= GSM7_SINGLE_MAX
    handed = orders.deliver_order(
        led, step_id=uuid.uuid4(), order_id=ordered[village.amina], pickup_code=code
    )
    assert handed.state is orders.State.DELIVERED


@pytest.mark.parametrize("language", ["en", "sw"])
def test_the_longest_order_sms_is_one_gsm7_message(
    village: Village, fake: FakeGateway, language: str
) -> None:
    """The widest shop name the renderer lets through (:data:`NAME_SHOWN_MAX` characters of
    two septets each) and the largest amount: each order SMS is still one message."""
    led = village.led
    shop = shop_named(led, "€" * (NAME_SHOWN_MAX + 10))
    villager_id = village.amina if language == "en" else village.baraka
    order_id = new_order(led, shop, villager_id)
    widest = orders.AMOUNT_MAX_MINOR
    about = {"order_id": str(order_id), "storefront_id": str(shop), "currency": "KES"}

    def emit(tx: Tx) -> None:  # the amounts no wallet tier allows a real order
        events.emit(tx, events.ORDER_DELIVERED, {**about, "delivered_minor": widest})
        events.emit(tx, events.ORDER_REFUNDED, {**about, "refunded_now_minor": widest})
        made = {
            **about,
            "purpose": "payment",
            "amount_minor": widest,
            "expires_at": "2026-06-01T08:10:00+00:00",
        }
        events.emit(tx, consent.CONSENT_CODE_MADE, made, party_id=villager_id)

    led.transact(emit)
    village.send(fake)
    ref = orders.order_reference(order_id)
    sent = [m for m in village.messages() if ref in m.text]
    assert len(sent) == 3 and {m.language for m in sent} == {language}
    for message in sent:
        assert format_money(widest, "KES") in message.text
        assert (message.encoding, message.parts) == ("gsm7", 1), message.text
        assert units(message.text) <= GSM7_SINGLE_MAX
        assert message.text in fake.messages(message.phone)
    widest_name = [m for m in sent if "€" in m.text]
    assert len(widest_name) == 2 and all("€" * NAME_SHOWN_MAX in m.text for m in widest_name)


def test_the_served_worker_runs_only_with_a_gateway_and_sends_in_its_thread(
    village: Village, fake: FakeGateway
) -> None:
    assert start_sms_worker(village.led, {}) is None
    env = {
        "VLEDGER_SMS_URL": fake.url,
        "VLEDGER_SMS_USERNAME": USERNAME,
        "VLEDGER_SMS_API_KEY": "k",
    }
    village.cash_in(village.amina, 10_000)
    worker = start_sms_worker(village.led, env)
    assert worker is not None
    try:
        deadline = time.monotonic() + 30
        while len(fake.seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert len(fake.seen) == 3 and all(s.form["username"] == USERNAME for s in fake.seen)
    assert {m.state for m in village.messages()} == {MessageState.SENT}


def test_an_event_that_cannot_be_rendered_is_skipped_and_logged_not_a_stall(
    village: Village, fake: FakeGateway, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(tx: Tx) -> None:
        events.emit(tx, events.WALLET_RECEIPT, {"movement": "credit"}, party_id=village.amina)

    village.led.transact(broken)
    village.cash_in(village.amina, 10_000)
    with caplog.at_level(logging.ERROR):
        village.send(fake)
    assert any(t.startswith("Received KES 100.00") for t in fake.messages(AMINA))
    assert any("cannot be rendered, skipped: KeyError" in r.getMessage() for r in caplog.records)
    cursor = village.led.transact(repository.lock_cursor)
    last = village.led.transact(lambda tx: events.read_events(tx, limit=500))[-1].seq
    assert cursor == last


def test_a_locked_pin_is_told_and_a_name_outside_gsm7_makes_a_two_part_ucs2_message(
    ledger: Ledger, clock: Clock, fake: FakeGateway
) -> None:
    village = make_village(ledger, clock, agent_name="Duka la Mama ✓")
    for _ in range(villagers.PIN_TRIES_MAX):
        with pytest.raises(Refused):
            villagers.verify_pin(ledger, villager_id=village.baraka, pin="1357")
    village.cash_in(village.amina, 10_000)
    village.send(fake)
    assert (
        "PIN yako imefungwa baada ya majaribio 3 yasiyo sahihi. Mtembelee wakala wako aifungue."
        in fake.messages(BARAKA)
    )
    receipt = village.message(AMINA, "Received")
    assert (receipt.encoding, receipt.parts, receipt.state) == ("ucs2", 2, "sent")
    assert "Duka la Mama ✓" in receipt.text and receipt.text in fake.messages(AMINA)
