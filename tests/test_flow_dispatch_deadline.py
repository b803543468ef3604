"""The dispatch deadline: a paid order that is not dispatched in time is cancelled and
refunded by the sweeper. The deadline is per delivery method, in the ``delivery_methods``
table (courier 72 h, pickup_point 72 h, agent_delivery 48 h), counted from payment;
dispatching at the deadline itself is in time, a microsecond later it is not.

Amina (tier0) pays Mbegu Seeds from her wallet with her PIN. Every story runs on SQLite
and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from ledger import Account, Ledger, Transfer
from ledger.core.errors import InvariantViolation
from ledger.core.tx import Tx
from ledger.flows import agent_float, cash, events, fees, orders, parties
from ledger.flows.errors import Refused
from ledger.flows.orders import DeliveryMethod, Order, State
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.villager_helpers import active_villager

KES = "KES"
AMINA_PIN = "2580"
HOUR_S = 3_600
TIER0_BALANCE_MAX_MINOR = 2_000_000


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


@dataclass
class Shop:
    led: Ledger
    clock: Clock
    agent: uuid.UUID
    storefront: uuid.UUID
    amina: uuid.UUID

    def wallet(self) -> int:
        [a] = self.led.lookup_accounts([parties.account_id(self.amina, Role.WALLET)])
        return a.credits_posted - a.debits_posted

    def escrow(self) -> int:
        [a] = self.led.lookup_accounts([parties.account_id(self.storefront, Role.ESCROW)])
        return a.credits_posted - a.debits_posted

    def paid_order(self, amount_minor: int = 120_000, method: str = "courier") -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.storefront,
            currency=KES,
            amount_minor=amount_minor,
            delivery_method=method,
            villager_id=self.amina,
        )
        orders.pay_order_by_pin(
            self.led, step_id=new_id(), order_id=order_id, villager_id=self.amina, pin=AMINA_PIN
        )
        return order_id

    def get(self, order_id: uuid.UUID) -> Order:
        return orders.get_order(self.led, order_id=order_id)

    def order_events(self, order_id: uuid.UUID) -> list[events.Event]:
        return self.led.transact(
            lambda tx: events.read_events(tx, subject_id=order_id, limit=events.EVENTS_PAGE_MAX)
        )

    def receipts(self) -> list[events.Event]:
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=self.amina, limit=events.EVENTS_PAGE_MAX)
        )
        return [e for e in found if e.type == events.WALLET_RECEIPT]

    def top_up_wallet_to(self, balance_minor: int) -> None:
        """Bring Amina's wallet to ``balance_minor`` from an outside account (a test's
        shortcut past the cash-in's daily limit)."""
        bank = uuid.uuid5(self.storefront, "bank")
        self.led.create_accounts([Account(bank, KES, code=7)])
        gap = balance_minor - self.wallet()
        wallet = parties.account_id(self.amina, Role.WALLET)
        debit, credit = (bank, wallet) if gap > 0 else (wallet, bank)
        [result] = self.led.create_transfers(
            [Transfer(new_id(), debit, credit, abs(gap), KES, code=1)]
        )
        assert result.status == "created"


@pytest.fixture
def shop(ledger: Ledger, clock: Clock) -> Shop:
    agent = parties.onboard(
        ledger, party_id=new_id(), kind=Kind.AGENT, name="Juma's station", currency=KES
    )
    agent_float.top_up_float(
        ledger, topup_id=new_id(), agent_id=agent.id, amount_minor=5_000_000, provider="BANK"
    )
    storefront = parties.onboard(
        ledger, party_id=new_id(), kind=Kind.STOREFRONT, name="Mbegu Seeds", currency=KES
    )
    amina = active_villager(
        ledger, agent_id=agent.id, phone="+254712000201", pin=AMINA_PIN, name="Amina"
    )
    cash.cash_in(
        ledger, cash_in_id=new_id(), agent_id=agent.id, villager_id=amina.id, amount_minor=500_000
    )
    return Shop(ledger, clock, agent.id, storefront.id, amina.id)


# -- the terms, in data ----------------------------------------------------------------------


def test_the_seeded_delivery_methods_hold_the_documented_terms(ledger: Ledger) -> None:
    assert orders.get_delivery_methods(ledger) == [
        DeliveryMethod("agent_delivery", 3, 7, 48),
        DeliveryMethod("courier", 7, 14, 72),
        DeliveryMethod("pickup_point", 5, 14, 72),
    ]
    assert {m.name for m in orders.get_delivery_methods(ledger)} == set(orders.DELIVERY_METHODS)


def test_payment_stamps_the_deadline_of_the_order_s_method(shop: Shop) -> None:
    courier = shop.paid_order(method="courier")
    agent_delivery = shop.paid_order(method="agent_delivery")
    assert shop.get(courier).dispatch_deadline_at == shop.clock.now + timedelta(hours=72)
    assert shop.get(agent_delivery).dispatch_deadline_at == shop.clock.now + timedelta(hours=48)


def test_an_operator_changes_a_deadline_for_orders_paid_from_then_on(shop: Shop) -> None:
    before = shop.paid_order(method="courier")
    changed = orders.set_delivery_method(
        shop.led,
        name="courier",
        auto_release_days=7,
        refund_window_days=14,
        dispatch_deadline_hours=24,
    )
    assert changed == DeliveryMethod("courier", 7, 14, 24)
    after = shop.paid_order(method="courier")
    assert shop.get(before).dispatch_deadline_at == shop.clock.now + timedelta(hours=72)
    assert shop.get(after).dispatch_deadline_at == shop.clock.now + timedelta(hours=24)
    shop.clock.advance(24 * HOUR_S + 1)
    assert orders.sweep_orders(shop.led) == 1
    assert shop.get(after).state is State.CANCELLED
    assert shop.get(before).state is State.PAID  # its deadline is the one it was paid under


@pytest.mark.parametrize(
    ("hours", "ok"),
    [(0, False), (1, True), (orders.DISPATCH_DEADLINE_HOURS_MAX, True), (721, False)],
)
def test_a_dispatch_deadline_is_1_to_720_hours(ledger: Ledger, hours: int, ok: bool) -> None:
    def change() -> DeliveryMethod:
        return orders.set_delivery_method(
            ledger,
            name="pickup_point",
            auto_release_days=5,
            refund_window_days=14,
            dispatch_deadline_hours=hours,
        )

    if ok:
        assert change().dispatch_deadline_hours == hours
    else:
        with refused("delivery_terms_invalid"):
            change()
        [pickup] = [m for m in orders.get_delivery_methods(ledger) if m.name == "pickup_point"]
        assert pickup.dispatch_deadline_hours == 72


@pytest.mark.parametrize(
    ("days", "window", "ok"),
    [
        (0, 14, False),
        (1, 0, True),
        (orders.AUTO_RELEASE_DAYS_MAX, orders.REFUND_WINDOW_DAYS_MAX, True),
        (61, 14, False),
        (5, 91, False),
        (5, -1, False),
    ],
)
def test_auto_release_days_and_refund_window_days_have_their_bounds(
    ledger: Ledger, days: int, window: int, ok: bool
) -> None:
    def change() -> DeliveryMethod:
        return orders.set_delivery_method(
            ledger,
            name="pickup_point",
            auto_release_days=days,
            refund_window_days=window,
            dispatch_deadline_hours=72,
        )

    if ok:
        assert (change().auto_release_days, change().refund_window_days) == (days, window)
    else:
        with refused("delivery_terms_invalid"):
            change()


def test_an_unknown_method_is_refused_for_orders_and_for_changes(shop: Shop) -> None:
    with refused("delivery_method_invalid"):
        orders.create_order(
            shop.led,
            order_id=new_id(),
            storefront_id=shop.storefront,
            currency=KES,
            amount_minor=1_000,
            delivery_method="drone",
        )
    with refused("delivery_method_invalid"):
        orders.set_delivery_method(
            shop.led,
            name="drone",
            auto_release_days=1,
            refund_window_days=1,
            dispatch_deadline_hours=1,
        )


def test_the_database_refuses_terms_out_of_range_too(ledger: Ledger) -> None:
    def bad(tx: Tx) -> None:
        tx.execute("UPDATE delivery_methods SET dispatch_deadline_hours = 0 WHERE name = 'courier'")

    with pytest.raises(
        (InvariantViolation, psycopg.errors.CheckViolation),
        match="ck_delivery_methods_dispatch_deadline_hours",
    ):
        ledger.transact(bad)


# -- the sweep -------------------------------------------------------------------------------


def test_a_paid_order_not_dispatched_in_72_hours_is_cancelled_and_refunded(shop: Shop) -> None:
    order_id = shop.paid_order(120_000, "courier")
    assert (shop.wallet(), shop.escrow()) == (380_000, 120_000)
    deadline = shop.get(order_id).dispatch_deadline_at
    assert deadline is not None
    shop.clock.advance(72 * HOUR_S + 1)
    assert orders.sweep_orders(shop.led) == 1
    done = shop.get(order_id)
    assert (done.state, done.refunded_minor, done.escrow_minor) == (State.CANCELLED, 120_000, 0)
    assert (shop.wallet(), shop.escrow()) == (500_000, 0)
    cancelled = shop.order_events(order_id)[-1]
    assert cancelled.type == events.ORDER_CANCELLED
    assert cancelled.party_id == shop.storefront
    assert cancelled.payload["reason"] == orders.DISPATCH_EXPIRED == "dispatch_expired"
    assert cancelled.payload["refunded_now_minor"] == 120_000
    assert cancelled.payload["dispatch_deadline_at"] == deadline.isoformat()
    refund = shop.receipts()[-1]
    assert (refund.payload["movement"], refund.payload["amount_minor"]) == ("credit", 120_000)
    assert refund.payload["reference"]["operation_id"] == str(order_id)
    with refused("order_not_dispatchable"):
        orders.dispatch_order(shop.led, step_id=new_id(), order_id=order_id)
    assert shop.led.check_integrity().ok


def test_an_order_dispatched_in_time_is_not_cancelled(shop: Shop) -> None:
    order_id = shop.paid_order(method="agent_delivery")
    shop.clock.advance(47 * HOUR_S)
    orders.dispatch_order(shop.led, step_id=new_id(), order_id=order_id)
    shop.clock.advance(2 * HOUR_S)  # past the deadline, but dispatched
    assert orders.sweep_orders(shop.led) == 0
    assert shop.get(order_id).state is State.DISPATCHED
    assert (shop.wallet(), shop.escrow()) == (380_000, 120_000)


def test_at_the_deadline_the_order_is_still_in_time_a_microsecond_later_it_is_not(
    shop: Shop,
) -> None:
    order_id = shop.paid_order(method="agent_delivery")
    shop.clock.advance(48 * HOUR_S)
    assert shop.clock.now == shop.get(order_id).dispatch_deadline_at
    assert orders.sweep_orders(shop.led) == 0
    assert shop.get(order_id).state is State.PAID
    shop.clock.now += timedelta(microseconds=1)
    assert orders.sweep_orders(shop.led) == 1
    assert shop.get(order_id).state is State.CANCELLED


def test_a_sweep_run_twice_refunds_once(shop: Shop) -> None:
    order_id = shop.paid_order(120_000)
    shop.clock.advance(73 * HOUR_S)
    assert orders.sweep_orders(shop.led) == 1
    assert orders.sweep_orders(shop.led) == 0
    assert orders.sweep_orders(shop.led, now=shop.clock.now + timedelta(days=30)) == 0
    assert shop.wallet() == 500_000 and shop.get(order_id).refunded_minor == 120_000
    cancels = [e for e in shop.order_events(order_id) if e.type == events.ORDER_CANCELLED]
    assert len(cancels) == 1
    assert len([r for r in shop.receipts() if r.payload["movement"] == "credit"]) == 2
    assert shop.led.check_integrity().ok


def test_a_refund_past_the_kyc_maximum_waits_until_it_fits_exactly(shop: Shop) -> None:
    order_id = shop.paid_order(120_000)
    # Amina's wallet fills up meanwhile: the refund would take her 0.01 past 20,000.00.
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 120_000 + 1)
    before = (shop.wallet(), shop.escrow())
    shop.clock.advance(73 * HOUR_S)
    assert orders.sweep_orders(shop.led) == 0
    assert (shop.wallet(), shop.escrow()) == before
    assert shop.get(order_id).state is State.PAID
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 120_000)  # she spent 0.01
    assert orders.sweep_orders(shop.led) == 1
    assert shop.wallet() == TIER0_BALANCE_MAX_MINOR  # exactly the maximum is allowed
    assert shop.get(order_id).state is State.CANCELLED
    assert shop.led.check_integrity().ok


def test_the_sweep_notes_a_refusal_once_and_cancels_the_next_order(shop: Shop) -> None:
    big = shop.paid_order(120_000)
    small = shop.paid_order(10_000)
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 120_000 + 1)  # room for 119,999
    shop.clock.advance(73 * HOUR_S)
    assert orders.sweep_orders(shop.led) == 1  # the big one is refused, the small one goes
    assert shop.get(big).state is State.PAID
    assert shop.get(small).state is State.CANCELLED
    assert orders.sweep_orders(shop.led) == 0  # still refused: noted once
    [noted] = [e for e in shop.order_events(big) if e.type == events.ORDER_DISPATCH_EXPIRY_REFUSED]
    assert noted.party_id == shop.storefront
    assert noted.payload["code"] == "limit_exceeded_balance"
    assert noted.payload["state"] == "paid"
    assert shop.led.check_integrity().ok


def test_an_order_paid_before_the_deadlines_existed_is_left_alone(shop: Shop) -> None:
    order_id = shop.paid_order()
    shop.led.transact(
        lambda tx: tx.execute(
            "UPDATE orders SET dispatch_deadline_at_us = NULL WHERE id = :id", {"id": order_id}
        )
    )
    shop.clock.advance(30 * 24 * HOUR_S)
    assert orders.sweep_orders(shop.led) == 0
    assert shop.get(order_id).state is State.PAID
    assert shop.get(order_id).dispatch_deadline_at is None


# -- refused orders never starve the ones due after them -------------------------------------


def test_refused_orders_do_not_starve_a_later_one_and_are_retried_once_there_is_room(
    shop: Shop,
) -> None:
    # Three orders of 120,000.00 paid first, one of 10,000.00 an hour later; then Amina's
    # wallet fills to 19,000.00: none of the three refunds fits, the small one does.
    first_three = [shop.paid_order(120_000) for _ in range(3)]
    shop.clock.advance(HOUR_S)
    small = shop.paid_order(10_000)
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 100_000)
    shop.clock.advance(74 * HOUR_S)  # all four are past their deadline
    escrow = shop.escrow()
    assert escrow == 370_000

    sweeps = 0
    while shop.get(small).state is State.PAID:
        sweeps += 1
        assert sweeps <= 2, "the refundable order is reached within ceil(4 / 2) sweeps"
        assert orders.sweep_orders(shop.led, limit=2) == (sweeps == 2)
    assert shop.get(small).state is State.CANCELLED
    assert (shop.wallet(), shop.escrow()) == (TIER0_BALANCE_MAX_MINOR - 90_000, 360_000)
    for order_id in first_three:
        assert shop.get(order_id).state is State.PAID
        [noted] = [
            e for e in shop.order_events(order_id) if e.type == events.ORDER_DISPATCH_EXPIRY_REFUSED
        ]
        assert noted.payload["code"] == "limit_exceeded_balance"

    # Amina spends: room for all three refunds. The refused ones are retried a page of
    # two per retry interval, each within ceil(3 / 2) intervals.
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 360_000)
    interval_s = orders.SWEEP_RETRY_INTERVAL_US // 1_000_000
    moved = [orders.sweep_orders(shop.led, limit=2)]
    shop.clock.advance(interval_s)
    moved.append(orders.sweep_orders(shop.led, limit=2))
    assert sum(moved) == 3 and max(moved) <= 2
    assert [shop.get(o).state for o in first_three] == [State.CANCELLED] * 3
    assert (shop.wallet(), shop.escrow()) == (TIER0_BALANCE_MAX_MINOR, 0)
    assert orders.sweep_orders(shop.led, limit=2) == 0
    assert shop.led.check_integrity().ok


def test_a_refused_order_behind_a_full_page_of_refused_ones_is_retried_in_its_turn(
    shop: Shop,
) -> None:
    # Two orders of 130,000.00 due first, one of 120,000.00 due last; the wallet has room
    # for none of them. All three are noted refused.
    big = [shop.paid_order(130_000) for _ in range(2)]
    shop.clock.advance(HOUR_S)
    last = shop.paid_order(120_000)
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 100_000)
    shop.clock.advance(73 * HOUR_S)
    assert orders.sweep_orders(shop.led, limit=2) == 0
    assert orders.sweep_orders(shop.led, limit=2) == 0
    assert all(
        any(e.type == events.ORDER_DISPATCH_EXPIRY_REFUSED for e in shop.order_events(o))
        for o in [*big, last]
    )
    # Room for exactly the last one: the two big ones, first by deadline, stay refused
    # forever, yet the retry page turns and reaches the last one within ceil(3 / 2)
    # intervals.
    shop.top_up_wallet_to(TIER0_BALANCE_MAX_MINOR - 120_000)
    interval_s = orders.SWEEP_RETRY_INTERVAL_US // 1_000_000
    cancelled = 0
    for _ in range(2):
        shop.clock.advance(interval_s)
        cancelled += orders.sweep_orders(shop.led, limit=2)
    assert cancelled == 1
    assert shop.get(last).state is State.CANCELLED
    assert [shop.get(o).state for o in big] == [State.PAID, State.PAID]
    assert shop.wallet() == TIER0_BALANCE_MAX_MINOR
    assert shop.escrow() == 260_000
    assert shop.led.check_integrity().ok


# -- no dispatch past the deadline -----------------------------------------------------------


def test_a_storefront_dispatches_at_the_deadline_itself(shop: Shop) -> None:
    order_id = shop.paid_order(method="agent_delivery")
    shop.clock.advance(48 * HOUR_S)
    assert shop.clock.now == shop.get(order_id).dispatch_deadline_at
    dispatched = orders.dispatch_order(shop.led, step_id=new_id(), order_id=order_id)
    assert dispatched.state is State.DISPATCHED
    assert dispatched.auto_release_at == shop.clock.now + timedelta(days=3)
    assert (shop.wallet(), shop.escrow()) == (380_000, 120_000)


def test_a_microsecond_past_the_deadline_the_dispatch_is_refused_and_writes_nothing(
    shop: Shop,
) -> None:
    order_id = shop.paid_order(method="agent_delivery")
    before = shop.get(order_id)
    events_before = shop.order_events(order_id)
    shop.clock.advance(48 * HOUR_S)
    shop.clock.now += timedelta(microseconds=1)
    step_id = new_id()
    with refused("dispatch_deadline_passed"):
        orders.dispatch_order(shop.led, step_id=step_id, order_id=order_id)
    assert shop.get(order_id) == before  # still paid, no timer, nothing updated
    assert shop.order_events(order_id) == events_before
    assert (
        shop.led.transact(
            lambda tx: tx.one("SELECT 1 FROM order_steps WHERE id = :id", {"id": step_id})
        )
        is None
    )
    assert (shop.wallet(), shop.escrow()) == (380_000, 120_000)
    # the sweeper does what the storefront no longer may
    assert orders.sweep_orders(shop.led) == 1
    assert shop.get(order_id).state is State.CANCELLED
    assert (shop.wallet(), shop.escrow()) == (500_000, 0)


def test_an_order_without_a_deadline_is_dispatched_any_time(shop: Shop) -> None:
    order_id = shop.paid_order()
    shop.led.transact(
        lambda tx: tx.execute(
            "UPDATE orders SET dispatch_deadline_at_us = NULL WHERE id = :id", {"id": order_id}
        )
    )
    shop.clock.advance(30 * 24 * HOUR_S)
    dispatched = orders.dispatch_order(shop.led, step_id=new_id(), order_id=order_id)
    assert dispatched.state is State.DISPATCHED


def test_releases_the_rules_refuse_do_not_starve_a_later_auto_release(shop: Shop) -> None:
    # The fee is at least 5.00: an order of 4.00 can never be released (fee_exceeds_release).
    fees.publish_schedule(
        shop.led,
        product="order",
        currency=KES,
        effective_from=shop.clock.now,
        rules={"bands": [{"up_to_minor": None, "bps": 200, "min_minor": 500}]},
    )
    tiny = [shop.paid_order(400) for _ in range(3)]
    for order_id in tiny:
        orders.dispatch_order(shop.led, step_id=new_id(), order_id=order_id)
    shop.clock.advance(HOUR_S)
    seeds = shop.paid_order(120_000)
    orders.dispatch_order(shop.led, step_id=new_id(), order_id=seeds)
    shop.clock.advance(7 * 24 * HOUR_S + HOUR_S)  # all four are due to release
    interval_s = orders.SWEEP_RETRY_INTERVAL_US // 1_000_000
    released = 0
    for _ in range(2):  # within ceil(4 / 2) intervals
        released += orders.sweep_orders(shop.led, limit=2)
        shop.clock.advance(interval_s)
    assert released == 1
    assert shop.get(seeds).state is State.RELEASED
    assert [shop.get(o).state for o in tiny] == [State.DISPATCHED] * 3
    assert shop.escrow() == 1_200
    assert shop.led.check_integrity().ok
