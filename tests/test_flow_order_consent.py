"""An order moves the villager's money only with her say, and its goods go only to her.

Wallet payments need the villager's consent: a pay code she made for that order and its
exact amount, carried by the storefront's (or agent's) request, or her PIN. Orders handed
over at a station (a pickup point, the agent's own station) need the pickup code she was
sent when the order was dispatched. Every story runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from ledger import Account, Ledger, Transfer, open_ledger
from ledger.core.tx import Tx
from ledger.flows import consent, events, fees, orders, parties, pickup
from ledger.flows.consent import Purpose
from ledger.flows.errors import Refused
from ledger.flows.orders import Order, Source, State
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.villager_helpers import DEFAULT_PIN, active_villager

KES = "KES"
SEEDS_MINOR = 120_000  # KES 1,200.00
ORDER_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200}],
    "split_bps": {"tax": 1_600, "agent_commission": 2_500},
}
AMINA_PHONE, BARAKA_PHONE = "+254712000001", "+254712000002"
AMINA_PIN, BARAKA_PIN = DEFAULT_PIN, "1397"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def sent_to(led: Ledger, villager_id: uuid.UUID, event_type: str) -> list[events.Event]:
    """The events of ``event_type`` addressed to the villager (her SMS), oldest first."""

    def read(tx: Tx) -> list[events.Event]:
        found: list[events.Event] = []
        after = 0
        while page := events.read_events(
            tx, after_seq=after, limit=events.EVENTS_PAGE_MAX, party_id=villager_id
        ):
            found += [e for e in page if e.type == event_type]
            after = page[-1].seq
        return found

    return led.transact(read)


def pickup_codes_sent(led: Ledger, villager_id: uuid.UUID, order_id: uuid.UUID) -> list[str]:
    """The pickup codes the villager's phone got for the order, oldest first."""
    return [
        str(e.payload["code"])
        for e in sent_to(led, villager_id, pickup.PICKUP_CODE_EVENT)
        if e.payload["order_id"] == str(order_id)
    ]


def pickup_code_sent(led: Ledger, villager_id: uuid.UUID, order_id: uuid.UUID) -> str:
    """The newest pickup code the villager got for the order (what she shows the agent)."""
    codes = pickup_codes_sent(led, villager_id, order_id)
    assert codes, f"no pickup code was sent to {villager_id} for {order_id}"
    return codes[-1]


def pay_code_made(
    led: Ledger,
    villager_id: uuid.UUID,
    order_id: uuid.UUID,
    amount_minor: int,
    pin: str = DEFAULT_PIN,
) -> str:
    """The pay code the villager made on her phone, with her PIN, for the order."""
    return consent.make_code(
        led,
        villager_id=villager_id,
        pin=pin,
        purpose=Purpose.PAYMENT,
        amount_minor=amount_minor,
        order_id=order_id,
    ).code


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


@dataclass
class Station:
    """Mbegu Seeds sells to Amina and Baraka, who collect at Juma's station."""

    led: Ledger
    clock: Clock
    storefront: uuid.UUID
    agent: uuid.UUID
    amina: uuid.UUID
    baraka: uuid.UUID
    bank: uuid.UUID

    def balance(self, party: uuid.UUID, role: str) -> int:
        [a] = self.led.lookup_accounts([parties.account_id(party, role)])
        return a.credits_posted - a.debits_posted

    def balances(self) -> dict[str, int]:
        return {
            "amina": self.balance(self.amina, Role.WALLET),
            "amina_held": self.held(self.amina),
            "baraka": self.balance(self.baraka, Role.WALLET),
            "escrow": self.balance(self.storefront, Role.ESCROW),
            "proceeds": self.balance(self.storefront, Role.PROCEEDS),
            "float": self.balance(self.agent, Role.FLOAT),
        }

    def held(self, villager: uuid.UUID) -> int:
        [a] = self.led.lookup_accounts([parties.account_id(villager, Role.WALLET)])
        return a.debits_pending

    def order(
        self,
        amount: int = SEEDS_MINOR,
        *,
        method: str = "pickup_point",
        villager: uuid.UUID | None = None,
        named: bool = True,
    ) -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.storefront,
            currency=KES,
            amount_minor=amount,
            delivery_method=method,
            villager_id=(villager or self.amina) if named else None,
            agent_id=self.agent,
        )
        return order_id

    def pay_cash(self, order_id: uuid.UUID) -> Order:
        return orders.pay_order(self.led, step_id=new_id(), order_id=order_id, source=Source.CASH)

    def dispatch(self, order_id: uuid.UUID, step_id: uuid.UUID | None = None) -> Order:
        return orders.dispatch_order(self.led, step_id=step_id or new_id(), order_id=order_id)

    def deliver(
        self,
        order_id: uuid.UUID,
        code: str | None = None,
        amount: int | None = None,
        step_id: uuid.UUID | None = None,
    ) -> Order:
        return orders.deliver_order(
            self.led,
            step_id=step_id or new_id(),
            order_id=order_id,
            amount_minor=amount,
            pickup_code=code,
        )

    def get(self, order_id: uuid.UUID) -> Order:
        return orders.get_order(self.led, order_id=order_id)

    def sent_to(self, villager: uuid.UUID, event_type: str) -> list[events.Event]:
        return sent_to(self.led, villager, event_type)

    def pickup_codes(self, villager: uuid.UUID, order_id: uuid.UUID) -> list[str]:
        return pickup_codes_sent(self.led, villager, order_id)

    def wrong_tries(self, order_id: uuid.UUID) -> list[tuple[str, int]]:
        rows = self.led.transact(
            lambda tx: tx.execute(
                "SELECT state, tries_wrong FROM pickup_codes WHERE order_id = :o"
                " ORDER BY created_at_us, id",
                {"o": order_id},
            )
        )
        return [(str(r[0]), int(r[1])) for r in rows]


def make_station(led: Ledger, clock: Clock) -> Station:
    storefront, agent, bank = new_id(), new_id(), new_id()
    parties.onboard(
        led, party_id=storefront, kind=Kind.STOREFRONT, name="Mbegu Seeds", currency=KES
    )
    parties.onboard(led, party_id=agent, kind=Kind.AGENT, name="Juma", currency=KES)
    amina = active_villager(led, agent_id=agent, phone=AMINA_PHONE, pin=AMINA_PIN, name="Amina")
    baraka = active_villager(led, agent_id=agent, phone=BARAKA_PHONE, pin=BARAKA_PIN, name="Baraka")
    assert led.create_accounts([Account(bank, KES, 999)])[0].status == "created"
    fees.publish_schedule(
        led,
        product="order",
        currency=KES,
        effective_from=clock.now - timedelta(days=1),
        rules=ORDER_RULES,
    )
    station = Station(led, clock, storefront, agent, amina.id, baraka.id, bank)
    for account, amount in (
        (parties.account_id(amina.id, Role.WALLET), 200_000),
        (parties.account_id(baraka.id, Role.WALLET), 200_000),
        (parties.account_id(agent, Role.FLOAT), 1_000_000),
    ):
        [r] = led.create_transfers([Transfer(new_id(), bank, account, amount, KES, 1)])
        assert r.status == "created"
    return station


@pytest.fixture
def station(ledger: Ledger, clock: Clock) -> Station:
    return make_station(ledger, clock)


# -- pickup codes ------------------------------------------------------------------------------


def test_an_order_dispatched_to_a_pickup_point_sends_amina_her_pickup_code(
    station: Station,
) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    assert station.pickup_codes(station.amina, order_id) == []  # not before dispatch
    dispatched = station.dispatch(order_id)

    [sms] = station.sent_to(station.amina, pickup.PICKUP_CODE_EVENT)
    assert (sms.party_id, sms.subject_id) == (station.amina, order_id)
    assert sms.payload["order_id"] == str(order_id)
    assert sms.payload["storefront_name"] == "Mbegu Seeds"
    code = sms.payload["code"]
    assert isinstance(code, str) and len(code) == pickup.CODE_DIGITS and code.isdigit()
    assert dispatched.auto_release_at is not None
    assert sms.payload["valid_until"] == dispatched.auto_release_at.isoformat()
    # the storefront's own events never carry it, nor does the table
    shop_events = station.led.transact(
        lambda tx: events.read_events(tx, party_id=station.storefront, limit=1000)
    )
    assert all("code" not in e.payload for e in shop_events)
    stored = station.led.transact(
        lambda tx: tx.execute(
            "SELECT salt, code_hash FROM pickup_codes WHERE order_id = :o", {"o": order_id}
        )
    )
    assert len(stored) == 1 and code.encode() not in bytes(stored[0][1])
    assert station.pickup_codes(station.baraka, order_id) == []


def test_a_courier_order_and_an_order_of_no_villager_have_no_pickup_code(
    station: Station,
) -> None:
    courier = station.order(method="courier")
    anonymous = station.order(method="agent_delivery", named=False)
    for order_id in (courier, anonymous):
        station.pay_cash(order_id)
        station.dispatch(order_id)
        assert station.deliver(order_id).state is State.DELIVERED  # handed over as before
    assert station.sent_to(station.amina, pickup.PICKUP_CODE_EVENT) == []
    assert station.wrong_tries(courier) == station.wrong_tries(anonymous) == []


@pytest.mark.parametrize("method", sorted(pickup.HANDOVER_METHODS))
def test_the_hand_over_needs_the_code_and_with_it_delivers_and_releases_as_before(
    station: Station, method: str
) -> None:
    order_id = station.order(method=method)
    station.pay_cash(order_id)
    station.dispatch(order_id)
    before, order = station.balances(), station.get(order_id)
    with refused("pickup_code_required"):
        station.deliver(order_id)
    assert station.balances() == before and station.get(order_id) == order

    [code] = station.pickup_codes(station.amina, order_id)
    delivered = station.deliver(order_id, code)
    assert delivered.state is State.DELIVERED
    assert station.wrong_tries(order_id) == [("used", 0)]
    released = orders.release_order(station.led, step_id=new_id(), order_id=order_id)
    assert released.state is State.RELEASED
    fee = SEEDS_MINOR * 200 // 10_000
    assert station.balance(station.storefront, Role.PROCEEDS) == SEEDS_MINOR - fee
    assert station.balance(station.storefront, Role.ESCROW) == 0
    assert station.led.check_integrity().ok


def test_three_wrong_codes_void_it_and_the_storefront_sends_a_new_one(station: Station) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    [code] = station.pickup_codes(station.amina, order_id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    before = station.balances()
    with refused("pickup_code_invalid"):
        station.deliver(order_id, wrong)
    # the step was refused, yet the wrong try was committed
    assert station.wrong_tries(order_id) == [("open", 1)]
    with refused("pickup_code_invalid"):
        station.deliver(order_id, wrong)
    assert station.wrong_tries(order_id) == [("open", 2)]
    with refused("pickup_code_invalid"):
        station.deliver(order_id, wrong)
    assert station.wrong_tries(order_id) == [("void", 3)]
    with refused("pickup_code_invalid"):  # the right code, too late
        station.deliver(order_id, code)
    assert station.balances() == before and station.get(order_id).state is State.DISPATCHED

    timer = station.get(order_id).auto_release_at
    station.clock.advance(3_600)  # Amina phones the shop; an hour later:
    again = station.dispatch(order_id)  # the storefront re-sends: a new code, same timer
    assert (again.state, again.auto_release_at) == (State.DISPATCHED, timer)
    old, new = station.pickup_codes(station.amina, order_id)
    assert old == code
    assert station.wrong_tries(order_id) == [("void", 3), ("open", 0)]
    assert station.deliver(order_id, new).state is State.DELIVERED


def test_a_resent_code_voids_the_one_before_and_codes_per_order_are_limited(
    station: Station,
) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    for _ in range(pickup.ISSUES_PER_ORDER_MAX - 1):
        station.dispatch(order_id)
    codes = station.pickup_codes(station.amina, order_id)
    assert len(codes) == pickup.ISSUES_PER_ORDER_MAX
    with refused("pickup_codes_exceeded"):
        station.dispatch(order_id)
    assert len(station.pickup_codes(station.amina, order_id)) == pickup.ISSUES_PER_ORDER_MAX
    if codes[0] != codes[-1]:
        with refused("pickup_code_invalid"):  # the first code was replaced
            station.deliver(order_id, codes[0])
    assert station.deliver(order_id, codes[-1]).state is State.DELIVERED


def test_a_dispatch_step_replayed_sends_no_new_code(station: Station) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    step = new_id()
    first = station.dispatch(order_id, step)
    assert station.dispatch(order_id, step) == first
    assert len(station.pickup_codes(station.amina, order_id)) == 1


def test_barakas_code_does_not_collect_aminas_order(station: Station) -> None:
    aminas = station.order()
    barakas = station.order(villager=station.baraka)
    for order_id in (aminas, barakas):
        station.pay_cash(order_id)
        station.dispatch(order_id)
    [barakas_code] = station.pickup_codes(station.baraka, barakas)
    assert station.pickup_codes(station.baraka, aminas) == []
    [aminas_code] = station.pickup_codes(station.amina, aminas)
    if barakas_code != aminas_code:
        with refused("pickup_code_invalid"):
            station.deliver(aminas, barakas_code)
    assert station.get(aminas).state is State.DISPATCHED
    assert station.deliver(barakas, barakas_code).state is State.DELIVERED
    assert station.deliver(aminas, aminas_code).state is State.DELIVERED


def test_a_partial_hand_over_keeps_the_code_for_the_rest(station: Station) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    [code] = station.pickup_codes(station.amina, order_id)
    with refused("pickup_code_required"):
        station.deliver(order_id, amount=40_000)
    part = station.deliver(order_id, code, 40_000)
    assert (part.state, part.released_minor) == (State.DISPATCHED, 40_000)
    assert station.wrong_tries(order_id) == [("open", 0)]
    assert station.deliver(order_id, code).state is State.DELIVERED
    assert station.wrong_tries(order_id) == [("used", 0)]


def test_a_replayed_delivery_answers_as_before_without_the_code(station: Station) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    [code] = station.pickup_codes(station.amina, order_id)
    step = new_id()
    first = station.deliver(order_id, code, step_id=step)
    before = station.balances()
    assert station.deliver(order_id, code, step_id=step) == first  # the code is used now
    assert station.deliver(order_id, None, step_id=step) == first
    assert station.balances() == before


@pytest.mark.parametrize("code", ["12345", "1234567", "12a456", "١٢٣٤٥٦"])
def test_a_malformed_pickup_code_is_refused_and_not_counted(station: Station, code: str) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    with refused("pickup_code_invalid"):
        station.deliver(order_id, code)
    assert station.wrong_tries(order_id) == [("open", 0)]


def test_a_code_is_no_use_once_its_order_is_refunded(station: Station) -> None:
    order_id = station.order()
    station.pay_cash(order_id)
    station.dispatch(order_id)
    [code] = station.pickup_codes(station.amina, order_id)
    orders.refund_order(station.led, step_id=new_id(), order_id=order_id)
    with refused("order_not_deliverable"):
        station.deliver(order_id, code)
    assert station.wrong_tries(order_id) == [("open", 0)]  # not a guess: nothing counted


# -- consent to wallet payments ----------------------------------------------------------------


def pay_code(
    station: Station,
    order_id: uuid.UUID,
    amount: int = SEEDS_MINOR,
    *,
    villager: uuid.UUID | None = None,
    pin: str = AMINA_PIN,
) -> str:
    """The pay code the villager made on her phone (with her PIN) for an order."""
    return pay_code_made(station.led, villager or station.amina, order_id, amount, pin)


def pay_wallet(
    station: Station,
    order_id: uuid.UUID,
    code: str | None,
    step_id: uuid.UUID | None = None,
    led: Ledger | None = None,
) -> Order:
    """The storefront's checkout pays the order from the wallet with the code it was given."""
    return orders.pay_order(
        led or station.led,
        step_id=step_id or new_id(),
        order_id=order_id,
        source=Source.WALLET,
        consent_code=code,
        caller_id=station.storefront,
    )


def test_a_storefronts_wallet_payment_without_a_code_is_refused_and_nothing_is_held(
    station: Station,
) -> None:
    order_id = station.order()
    before = station.balances()
    with refused("consent_required"):
        pay_wallet(station, order_id, None)
    with refused("consent_required"):  # the agent, too
        orders.pay_order(
            station.led,
            step_id=new_id(),
            order_id=order_id,
            source=Source.WALLET,
            agent_id=station.agent,
        )
    assert station.balances() == before and station.balances()["amina_held"] == 0
    assert station.get(order_id).state is State.CREATED


def test_with_aminas_pay_code_for_the_order_and_its_amount_it_pays_once(
    station: Station,
) -> None:
    order_id = station.order()
    code = pay_code(station, order_id)
    step = new_id()
    paid = pay_wallet(station, order_id, code, step)
    assert (paid.state, paid.payment_source, paid.paid_minor) == (
        State.PAID,
        Source.WALLET,
        SEEDS_MINOR,
    )
    after = station.balances()
    assert after["amina"] == 200_000 - SEEDS_MINOR and after["escrow"] == SEEDS_MINOR
    # the checkout retries: the same step answers the same, the spent code is not looked at
    assert pay_wallet(station, order_id, code, step) == paid
    with refused("order_not_payable"):
        pay_wallet(station, order_id, code)
    assert station.balances() == after
    used = station.sent_to(station.amina, consent.CONSENT_USED)
    assert [e.payload["used_for"] for e in used] == [str(order_id)]
    assert station.led.check_integrity().ok


def test_a_code_for_another_order_or_another_amount_is_refused(station: Station) -> None:
    seeds, hoe = station.order(), station.order()
    before = station.balances()
    with refused("consent_invalid"):
        pay_wallet(station, seeds, pay_code(station, hoe))
    with refused("consent_invalid"):
        pay_wallet(station, seeds, pay_code(station, seeds, SEEDS_MINOR - 1))
    with refused("consent_invalid"):  # Baraka's code for the order is not Amina's consent
        pay_wallet(
            station, seeds, pay_code(station, seeds, villager=station.baraka, pin=BARAKA_PIN)
        )
    assert station.balances() == before
    assert station.get(seeds).state is State.CREATED
    # her right code still pays: two wrong tries left it open
    assert pay_wallet(station, seeds, pay_code(station, seeds)).state is State.PAID


def test_three_wrong_pay_codes_void_hers(station: Station) -> None:
    order_id = station.order()
    code = pay_code(station, order_id)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(consent.WRONG_TRIES_MAX):
        with refused("consent_invalid"):
            pay_wallet(station, order_id, wrong)
    with refused("consent_invalid"):
        pay_wallet(station, order_id, code)
    assert station.balances()["amina"] == 200_000


def test_amina_pays_with_her_pin_and_a_wrong_pin_moves_nothing(station: Station) -> None:
    order_id = station.order()
    before = station.balances()
    with refused("pin_invalid"):
        orders.pay_order_by_pin(
            station.led, step_id=new_id(), order_id=order_id, villager_id=station.amina, pin="9753"
        )
    with refused("consent_invalid"):  # Baraka's PIN pays no order of Amina's
        orders.pay_order_by_pin(
            station.led,
            step_id=new_id(),
            order_id=order_id,
            villager_id=station.baraka,
            pin=BARAKA_PIN,
        )
    assert station.balances() == before
    step = new_id()
    paid = orders.pay_order_by_pin(
        station.led, step_id=step, order_id=order_id, villager_id=station.amina, pin=AMINA_PIN
    )
    assert paid.state is State.PAID and station.balances()["amina"] == 200_000 - SEEDS_MINOR
    again = orders.pay_order_by_pin(
        station.led, step_id=step, order_id=order_id, villager_id=station.amina, pin=AMINA_PIN
    )
    assert again == paid and station.balances()["amina"] == 200_000 - SEEDS_MINOR


def test_a_cash_payment_at_the_agent_needs_no_wallet_consent(station: Station) -> None:
    order_id = station.order()
    paid = station.pay_cash(order_id)
    assert (paid.state, paid.payment_source) == (State.PAID, Source.CASH)
    assert station.balances()["amina"] == 200_000


def test_eight_racing_pays_with_one_code_pay_once(pg_url: str, clock: Clock) -> None:
    """Eight checkout retries with one pay code, each its own step, at once on PostgreSQL:
    the order's lock and the code's single use let exactly one through."""
    led = open_ledger(pg_url, migrate=True, clock=clock)
    try:
        station = make_station(led, clock)
        order_id = station.order()
        code = pay_code(station, order_id)
        barrier = threading.Barrier(8)
        answers: list[object] = []
        lock = threading.Lock()

        def racer() -> None:
            mine = open_ledger(pg_url, clock=clock)
            try:
                barrier.wait()
                answer: object = pay_wallet(station, order_id, code, led=mine)
            except Refused as exc:
                answer = exc
            finally:
                mine.close()
            with lock:
                answers.append(answer)

        threads = [threading.Thread(target=racer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [a for a in answers if isinstance(a, Order)]
        losers = [a for a in answers if isinstance(a, Refused)]
        assert len(winners) == 1 and len(losers) == 7, answers
        assert {a.code for a in losers} <= {"order_not_payable", "consent_invalid"}
        assert station.balances()["amina"] == 200_000 - SEEDS_MINOR
        assert station.balances()["escrow"] == SEEDS_MINOR
        assert led.check_integrity().ok
    finally:
        led.close()


def test_the_agent_cannot_skip_the_code_by_releasing_early(station: Station) -> None:
    """Releasing a dispatched station order would pay the seller without the hand-over:
    her confirmation there is the delivery with her code."""
    order_id = station.order(method="agent_delivery")
    station.pay_cash(order_id)
    station.dispatch(order_id)
    before = station.balances()
    with refused("pickup_code_required"):
        orders.release_order(station.led, step_id=new_id(), order_id=order_id)
    assert station.balances() == before and station.get(order_id).state is State.DISPATCHED
    station.deliver(order_id, pickup_code_sent(station.led, station.amina, order_id))
    released = orders.release_order(station.led, step_id=new_id(), order_id=order_id)
    assert released.state is State.RELEASED
    # the timer still releases an order nobody collected (the storefront's due)
    uncollected = station.order()
    station.pay_cash(uncollected)
    station.dispatch(uncollected)
    station.clock.advance(5 * 86_400)
    assert orders.sweep_orders(station.led) >= 1
    assert station.get(uncollected).state is State.RELEASED
