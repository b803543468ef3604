"""Order escrow: paid into the storefront's escrow, released on delivery (split into the
seller's proceeds, the agent's commission and the platform's fee), refunded on cancel or
a lost dispute, auto-released by the sweeper, refunded after release within the window.
Every story runs on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Account, Ledger, Transfer, open_ledger
from ledger.core.errors import MalformedRequest
from ledger.flows import events, fees, orders, parties, pickup
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.orders import Decision, Order, Source, State
from ledger.flows.orders.service import of_villager_by_id_prefix_in
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock
from tests.consent_helpers import new_phone
from tests.test_flow_order_consent import pay_code_made, pickup_code_sent
from tests.villager_helpers import active_villager

KES = "KES"
DAY_S = 86_400

ORDER_RULES: dict[str, Any] = {
    "bands": [{"up_to_minor": None, "bps": 200}],  # 2% of what is released
    "split_bps": {"tax": 1_600, "agent_commission": 2_500},
}
SEEDS_MINOR = 120_000  # KES 1,200.00


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class Village:
    led: Ledger
    clock: Clock
    storefront: uuid.UUID
    villager: uuid.UUID
    agent: uuid.UUID
    bank: uuid.UUID
    """An outside account the test funds wallets and floats from (no limits)."""

    def account(self, party: uuid.UUID, role: str) -> uuid.UUID:
        return parties.account_id(party, role)

    def platform(self, role: str) -> uuid.UUID:
        return parties.account_id(parties.platform_id(KES), role)

    def credit_balance(self, account: uuid.UUID) -> int:
        [a] = self.led.lookup_accounts([account])
        return a.credits_posted - a.debits_posted

    def debit_balance(self, account: uuid.UUID) -> int:
        [a] = self.led.lookup_accounts([account])
        return a.debits_posted - a.credits_posted

    def fund(self, account: uuid.UUID, amount: int) -> None:
        [r] = self.led.create_transfers([Transfer(new_id(), self.bank, account, amount, KES, 1)])
        assert r.status == "created"

    @property
    def wallet(self) -> int:
        return self.credit_balance(self.account(self.villager, Role.WALLET))

    @property
    def escrow(self) -> int:
        return self.credit_balance(self.account(self.storefront, Role.ESCROW))

    @property
    def proceeds(self) -> int:
        return self.credit_balance(self.account(self.storefront, Role.PROCEEDS))

    @property
    def float(self) -> int:
        return self.credit_balance(self.account(self.agent, Role.FLOAT))

    @property
    def cash_on_hand(self) -> int:
        return self.debit_balance(self.account(self.agent, Role.CASH))

    @property
    def commission(self) -> int:
        return self.credit_balance(self.account(self.agent, Role.COMMISSION))

    @property
    def fee_income(self) -> int:
        return self.credit_balance(self.platform(Role.FEE_INCOME))

    @property
    def tax(self) -> int:
        return self.credit_balance(self.platform(Role.TAX_PAYABLE))

    def balances(self) -> tuple[int, ...]:
        return (
            self.wallet,
            self.escrow,
            self.proceeds,
            self.float,
            self.cash_on_hand,
            self.commission,
            self.fee_income,
            self.tax,
        )

    def order(
        self,
        amount: int = SEEDS_MINOR,
        *,
        method: str = "courier",
        agent: bool = True,
        villager: bool = True,
    ) -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.storefront,
            currency=KES,
            amount_minor=amount,
            delivery_method=method,
            villager_id=self.villager if villager else None,
            agent_id=self.agent if agent else None,
        )
        return order_id

    def pay_code(self, order_id: uuid.UUID) -> str:
        """The pay code Amina made on her phone for the order and its amount."""
        order = self.get(order_id)
        return pay_code_made(self.led, self.villager, order_id, order.amount_minor)

    def pay(self, order_id: uuid.UUID, source: Source = Source.WALLET) -> Order:
        """Paid from her wallet with her pay code (the storefront's checkout), or in cash."""
        code = self.pay_code(order_id) if source is Source.WALLET else None
        return orders.pay_order(
            self.led, step_id=new_id(), order_id=order_id, source=source, consent_code=code
        )

    def dispatch(self, order_id: uuid.UUID) -> Order:
        return orders.dispatch_order(self.led, step_id=new_id(), order_id=order_id)

    def deliver(self, order_id: uuid.UUID, amount: int | None = None) -> Order:
        """Handed over; at a station, Amina shows the pickup code she was sent."""
        order = self.get(order_id)
        code = None
        if pickup.needed(order.delivery_method, order.villager_id):
            code = pickup_code_sent(self.led, self.villager, order_id)
        return orders.deliver_order(
            self.led, step_id=new_id(), order_id=order_id, amount_minor=amount, pickup_code=code
        )

    def release(self, order_id: uuid.UUID) -> Order:
        return orders.release_order(self.led, step_id=new_id(), order_id=order_id)

    def get(self, order_id: uuid.UUID) -> Order:
        return orders.get_order(self.led, order_id=order_id)

    def event_types(self, order_id: uuid.UUID) -> list[str]:
        """The order's events for the storefront (a pickup code goes to the villager)."""
        found = self.led.transact(lambda tx: events.read_events(tx, subject_id=order_id))
        assert all(
            e.party_id == self.storefront or e.type == pickup.PICKUP_CODE_EVENT for e in found
        )
        return [e.type for e in found if e.party_id == self.storefront]


def make_village(led: Ledger, clock: Clock, *, publish: bool = True) -> Village:
    storefront, villager, agent, bank = new_id(), new_id(), new_id(), new_id()
    parties.onboard(
        led, party_id=storefront, kind=Kind.STOREFRONT, name="Mbegu Seeds", currency=KES
    )
    parties.onboard(led, party_id=agent, kind=Kind.AGENT, name="Juma", currency=KES)
    # Amina registers at Juma's station and sets her PIN: she can consent to payments
    active_villager(led, agent_id=agent, phone=new_phone(), villager_id=villager, name="Amina")
    assert led.create_accounts([Account(bank, KES, 999)])[0].status == "created"
    if publish:
        fees.publish_schedule(
            led,
            product="order",
            currency=KES,
            effective_from=clock.now - timedelta(days=1),
            rules=ORDER_RULES,
        )
    village = Village(led, clock, storefront, villager, agent, bank)
    village.fund(village.account(villager, Role.WALLET), 200_000)
    village.fund(village.account(agent, Role.FLOAT), 500_000)
    return village


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return make_village(ledger, clock)


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


# -- paying ----------------------------------------------------------------------------------


def test_villager_pays_1200_kes_for_seeds_from_her_wallet_it_is_held_in_escrow(
    village: Village,
) -> None:
    order_id = village.order()
    assert village.get(order_id).state is State.CREATED
    paid = village.pay(order_id)
    assert paid.state is State.PAID and paid.payment_source is Source.WALLET
    assert paid.paid_minor == SEEDS_MINOR and paid.escrow_minor == SEEDS_MINOR
    assert village.wallet == 80_000
    assert village.escrow == SEEDS_MINOR
    assert village.event_types(order_id) == [events.ORDER_PAID]
    assert village.led.check_integrity().ok


def test_villager_pays_cash_at_the_agent_float_goes_to_escrow_and_cash_on_hand_grows(
    village: Village,
) -> None:
    order_id = village.order(villager=False)
    paid = village.pay(order_id, Source.CASH)
    assert paid.payment_source is Source.CASH
    assert village.float == 500_000 - SEEDS_MINOR
    assert village.cash_on_hand == SEEDS_MINOR
    assert village.escrow == SEEDS_MINOR
    assert village.wallet == 200_000
    assert village.led.check_integrity().ok


def test_a_wallet_too_short_for_the_order_is_refused_and_nothing_moves(village: Village) -> None:
    order_id = village.order(250_000)
    before = village.balances()
    with refused("wallet_short"):
        village.pay(order_id)
    assert village.balances() == before
    assert village.get(order_id).state is State.CREATED
    assert village.event_types(order_id) == []


def test_cash_needs_an_agent_and_float(village: Village) -> None:
    order_id = village.order(agent=False)
    with refused("agent_required"):
        village.pay(order_id, Source.CASH)
    big = village.order(600_000, villager=False)
    with refused("float_short"):
        village.pay(big, Source.CASH)
    assert village.float == 500_000 and village.cash_on_hand == 0


# -- delivery and release ------------------------------------------------------------------


def test_delivered_seller_gets_1176_agent_earns_6_platform_keeps_the_rest_of_the_2pct_fee(
    village: Village,
) -> None:
    order_id = village.order()
    village.pay(order_id)
    dispatched = village.dispatch(order_id)
    assert dispatched.auto_release_at == village.clock.now + timedelta(days=7)
    assert village.deliver(order_id).state is State.DELIVERED
    released = village.release(order_id)
    assert released.state is State.RELEASED
    assert released.released_minor == SEEDS_MINOR and released.escrow_minor == 0
    assert released.auto_release_at is None
    assert released.refund_until == village.clock.now + timedelta(days=14)
    assert village.escrow == 0
    assert village.proceeds == 117_600  # KES 1,176.00
    assert village.commission == 600  # 25% of the KES 24.00 fee
    assert village.tax == 384  # 16% of the fee
    assert village.fee_income == 1_416  # the rest
    assert village.proceeds + village.commission + village.tax + village.fee_income == SEEDS_MINOR
    assert village.event_types(order_id) == [
        events.ORDER_PAID,
        events.ORDER_DISPATCHED,
        events.ORDER_DELIVERED,
        events.ORDER_RELEASED,
    ]
    assert village.led.check_integrity().ok


def test_without_an_agent_the_agent_share_is_platform_income(village: Village) -> None:
    order_id = village.order(agent=False)
    village.pay(order_id)
    village.dispatch(order_id)
    village.release(order_id)  # the villager confirms receipt before the delivery report
    assert village.proceeds == 117_600
    assert village.commission == 0
    assert village.fee_income == 1_416 + 600
    assert village.led.check_integrity().ok


def test_partial_delivery_releases_the_delivered_part(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    part = village.deliver(order_id, 40_000)
    assert part.state is State.DISPATCHED  # the rest is still on its way, timer running
    assert part.released_minor == 40_000 and part.escrow_minor == 80_000
    assert village.proceeds == 39_200 and village.escrow == 80_000
    assert village.deliver(order_id).state is State.DELIVERED  # the rest arrived
    village.release(order_id)
    assert village.proceeds == 117_600 and village.escrow == 0
    assert village.commission + village.tax + village.fee_income == 2_400
    with refused("amount_exceeds_escrow"):
        other = village.order(10_000)
        village.pay(other)
        village.dispatch(other)
        village.deliver(other, 10_001)
    assert village.led.check_integrity().ok


def test_a_release_without_a_fee_schedule_is_refused_and_nothing_moves(
    ledger: Ledger, clock: Clock
) -> None:
    village = make_village(ledger, clock, publish=False)
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    before = village.balances()
    with refused("fee_schedule_missing"):
        village.release(order_id)
    assert village.balances() == before
    assert village.get(order_id).state is State.DISPATCHED


# -- timers ----------------------------------------------------------------------------------


def test_an_undisputed_order_auto_releases_7_days_after_dispatch(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.clock.advance(7 * DAY_S - 1)
    assert orders.sweep_orders(village.led) == 0
    assert village.get(order_id).state is State.DISPATCHED
    village.clock.advance(1)
    assert orders.sweep_orders(village.led) == 1
    assert village.get(order_id).state is State.RELEASED
    assert village.proceeds == 117_600
    assert orders.sweep_orders(village.led) == 0  # nothing left to do
    assert village.led.check_integrity().ok


def test_the_sweeper_goes_on_past_an_order_it_cannot_release(ledger: Ledger, clock: Clock) -> None:
    village = make_village(ledger, clock, publish=False)
    order_id = village.order(method="agent_delivery")
    village.pay(order_id)
    village.dispatch(order_id)
    clock.advance(3 * DAY_S)
    assert orders.sweep_orders(ledger) == 0  # no schedule yet: refused, stays due
    fees.publish_schedule(
        ledger, product="order", currency=KES, effective_from=clock.now, rules=ORDER_RULES
    )
    assert orders.sweep_orders(ledger) == 1
    assert village.get(order_id).state is State.RELEASED


def test_a_dispute_pauses_the_timer_and_withdrawing_it_resumes_it(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.clock.advance(2 * DAY_S)
    disputed = orders.dispute_order(
        village.led, step_id=new_id(), order_id=order_id, reason="seeds are mouldy"
    )
    assert disputed.state is State.DISPUTED and disputed.auto_release_at is None
    assert disputed.timer_remaining_us == 5 * DAY_S * 1_000_000
    village.clock.advance(30 * DAY_S)
    assert orders.sweep_orders(village.led) == 0
    with refused("order_disputed"):
        orders.refund_order(village.led, step_id=new_id(), order_id=order_id)
    resumed = orders.resolve_dispute(
        village.led, step_id=new_id(), order_id=order_id, decision=Decision.RESUME
    )
    assert resumed.state is State.DISPATCHED
    assert resumed.auto_release_at == village.clock.now + timedelta(days=5)
    village.clock.advance(5 * DAY_S)
    assert orders.sweep_orders(village.led) == 1
    assert village.get(order_id).state is State.RELEASED


def test_a_dispute_won_by_the_villager_refunds_her_wallet(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    orders.dispute_order(village.led, step_id=new_id(), order_id=order_id, reason="never came")
    done = orders.resolve_dispute(
        village.led, step_id=new_id(), order_id=order_id, decision=Decision.REFUND
    )
    assert done.state is State.REFUNDED and done.refunded_minor == SEEDS_MINOR
    assert village.wallet == 200_000 and village.escrow == 0 and village.proceeds == 0
    assert village.event_types(order_id)[-2:] == [
        events.ORDER_DISPUTE_RESOLVED,
        events.ORDER_REFUNDED,
    ]
    assert village.led.check_integrity().ok


def test_a_dispute_won_by_the_storefront_releases(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.deliver(order_id)
    orders.dispute_order(village.led, step_id=new_id(), order_id=order_id, reason="wrong seeds")
    done = orders.resolve_dispute(
        village.led, step_id=new_id(), order_id=order_id, decision=Decision.RELEASE
    )
    assert done.state is State.RELEASED and village.proceeds == 117_600
    assert village.led.check_integrity().ok


def test_an_extension_pushes_the_timer(village: Village) -> None:
    order_id = village.order(method="agent_delivery")  # 3 days
    village.pay(order_id)
    with refused("order_timer_not_running"):
        orders.extend_auto_release(village.led, step_id=new_id(), order_id=order_id, days=2)
    village.dispatch(order_id)
    extended = orders.extend_auto_release(village.led, step_id=new_id(), order_id=order_id, days=2)
    assert extended.auto_release_at == village.clock.now + timedelta(days=5)
    assert extended.extensions == 1
    assert events.ORDER_EXTENDED in village.event_types(order_id)
    with refused("extension_invalid"):
        orders.extend_auto_release(village.led, step_id=new_id(), order_id=order_id, days=31)
    village.clock.advance(3 * DAY_S)
    assert orders.sweep_orders(village.led) == 0
    village.clock.advance(2 * DAY_S)
    assert orders.sweep_orders(village.led) == 1


def test_extensions_are_limited(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    for _ in range(orders.EXTENSIONS_MAX):
        orders.extend_auto_release(village.led, step_id=new_id(), order_id=order_id, days=1)
    with refused("extensions_exceeded"):
        orders.extend_auto_release(village.led, step_id=new_id(), order_id=order_id, days=1)
    assert village.get(order_id).auto_release_at == village.clock.now + timedelta(days=12)


# -- cancel and refund ---------------------------------------------------------------------


def test_cancel_before_dispatch_refunds_the_wallet(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    done = orders.cancel_order(village.led, step_id=new_id(), order_id=order_id)
    assert done.state is State.CANCELLED and done.refunded_minor == SEEDS_MINOR
    assert village.wallet == 200_000 and village.escrow == 0
    unpaid = village.order()
    assert (
        orders.cancel_order(village.led, step_id=new_id(), order_id=unpaid).state is State.CANCELLED
    )
    assert village.led.check_integrity().ok


def test_cancelling_a_cash_order_hands_the_cash_back_through_the_agent(village: Village) -> None:
    order_id = village.order(villager=False)
    village.pay(order_id, Source.CASH)
    orders.cancel_order(village.led, step_id=new_id(), order_id=order_id)
    assert village.float == 500_000 and village.cash_on_hand == 0 and village.escrow == 0
    assert village.led.check_integrity().ok


def test_cancel_after_dispatch_is_refused_and_changes_nothing(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    before, order = village.balances(), village.get(order_id)
    with refused("order_not_cancellable"):
        orders.cancel_order(village.led, step_id=new_id(), order_id=order_id)
    assert village.balances() == before and village.get(order_id) == order


def test_a_partial_refund_before_release_comes_from_escrow(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    part = orders.refund_order(
        village.led, step_id=new_id(), order_id=order_id, amount_minor=20_000
    )
    assert part.state is State.DISPATCHED and part.escrow_minor == 100_000
    assert village.wallet == 100_000
    village.release(order_id)
    assert village.proceeds == 98_000  # 1,000.00 less 2%
    assert village.led.check_integrity().ok


def test_refund_after_release_within_the_window_reverses_from_the_seller_proceeds(
    village: Village,
) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.deliver(order_id, 20_000)  # part released at delivery
    village.deliver(order_id)
    village.release(order_id)
    village.clock.advance(10 * DAY_S)
    step_id = new_id()
    done = orders.refund_order(village.led, step_id=step_id, order_id=order_id, after_release=True)
    assert done.state is State.REFUNDED
    assert done.released_minor == 0 and done.reversed_minor == SEEDS_MINOR
    assert done.refunded_minor == SEEDS_MINOR and done.escrow_minor == 0
    assert village.wallet == 200_000
    assert (village.proceeds, village.commission, village.tax, village.fee_income) == (0, 0, 0, 0)
    assert village.escrow == 0
    # Every reversal names the release leg it gives back.
    escrow = village.account(village.storefront, Role.ESCROW)
    moved = village.led.account_transfers(escrow, limit=100)
    reversals = [t for t in moved if t.code == orders.REVERSAL_CODE]
    assert reversals and all(t.reverses_id is not None for t in reversals)
    reversed_ = village.led.lookup_transfers([t.reverses_id for t in reversals if t.reverses_id])
    assert sorted(t.amount or 0 for t in reversed_) == sorted(t.amount or 0 for t in reversals)
    assert sum(t.amount or 0 for t in reversals) == SEEDS_MINOR
    assert village.led.check_integrity().ok


def test_refund_after_the_window_is_refused(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.release(order_id)
    village.clock.advance(14 * DAY_S + 1)
    before = village.balances()
    with refused("refund_window_closed"):
        orders.refund_order(village.led, step_id=new_id(), order_id=order_id, after_release=True)
    assert village.balances() == before
    assert village.get(order_id).state is State.RELEASED


def test_refund_after_release_is_refused_when_the_proceeds_were_paid_out(
    village: Village,
) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.release(order_id)
    payout = Transfer(
        new_id(), village.account(village.storefront, Role.PROCEEDS), village.bank, 117_600, KES, 1
    )
    assert village.led.create_transfers([payout])[0].status == "created"
    before = village.balances()
    with refused("proceeds_short"):
        orders.refund_order(village.led, step_id=new_id(), order_id=order_id, after_release=True)
    assert village.balances() == before
    assert village.led.check_integrity().ok


def test_a_cash_payer_refunded_after_release_gets_cash_back_from_the_agent(
    village: Village,
) -> None:
    order_id = village.order(villager=False)
    village.pay(order_id, Source.CASH)
    village.dispatch(order_id)
    village.release(order_id)
    assert village.commission == 600
    orders.refund_order(village.led, step_id=new_id(), order_id=order_id, after_release=True)
    assert village.float == 500_000 and village.cash_on_hand == 0
    assert village.commission == 0 and village.proceeds == 0
    assert village.led.check_integrity().ok


# -- idempotency and refusals ------------------------------------------------------------------


def test_a_replay_answers_the_same_and_changes_nothing(village: Village) -> None:
    order_id, step_id = new_id(), new_id()
    args: dict[str, Any] = {
        "order_id": order_id,
        "storefront_id": village.storefront,
        "currency": KES,
        "amount_minor": SEEDS_MINOR,
        "delivery_method": "courier",
        "villager_id": village.villager,
    }
    created = orders.create_order(village.led, **args)
    assert orders.create_order(village.led, **args) == created
    with pytest.raises(Conflict):
        orders.create_order(village.led, **{**args, "amount_minor": 1})
    code = village.pay_code(order_id)
    first = orders.pay_order(
        village.led, step_id=step_id, order_id=order_id, source=Source.WALLET, consent_code=code
    )
    village.dispatch(order_id)
    before = village.balances()
    again = orders.pay_order(  # the spent code is not looked at again
        village.led, step_id=step_id, order_id=order_id, source=Source.WALLET, consent_code=code
    )
    assert again == first  # the answer the step gave, though the order has moved on
    assert village.balances() == before
    assert village.event_types(order_id) == [events.ORDER_PAID, events.ORDER_DISPATCHED]
    with pytest.raises(Conflict):
        orders.pay_order(village.led, step_id=step_id, order_id=order_id, source=Source.CASH)
    with pytest.raises(Conflict):  # a step id belongs to one step
        orders.release_order(village.led, step_id=step_id, order_id=order_id)
    release_step = new_id()
    released = orders.release_order(village.led, step_id=release_step, order_id=order_id)
    after = village.balances()
    assert orders.release_order(village.led, step_id=release_step, order_id=order_id) == released
    assert village.balances() == after
    assert village.led.check_integrity().ok


@pytest.mark.parametrize(
    ("stage", "operation", "code"),
    [
        ("created", "dispatch", "order_not_dispatchable"),
        ("created", "deliver", "order_not_deliverable"),
        ("created", "release", "order_not_releasable"),
        ("created", "refund", "order_not_refundable"),
        ("paid", "pay", "order_not_payable"),
        ("paid", "release", "order_not_releasable"),
        ("paid", "resolve", "order_not_disputed"),
        ("paid", "refund_after", "order_not_released"),
        ("released", "refund", "order_released"),
        ("released", "dispute", "order_not_disputable"),
        ("released", "release", "order_not_releasable"),
        ("released", "cancel", "order_not_cancellable"),
        ("cancelled", "pay", "order_not_payable"),
    ],
)
def test_a_step_in_the_wrong_state_is_refused_and_changes_nothing(
    village: Village, stage: str, operation: str, code: str
) -> None:
    order_id = village.order()
    if stage in ("paid", "released"):
        village.pay(order_id)
    if stage == "released":
        village.dispatch(order_id)
        village.release(order_id)
    if stage == "cancelled":
        orders.cancel_order(village.led, step_id=new_id(), order_id=order_id)
    led, step = village.led, new_id()
    calls = {
        "pay": lambda: orders.pay_order(led, step_id=step, order_id=order_id, source=Source.WALLET),
        "dispatch": lambda: orders.dispatch_order(led, step_id=step, order_id=order_id),
        "deliver": lambda: orders.deliver_order(led, step_id=step, order_id=order_id),
        "release": lambda: orders.release_order(led, step_id=step, order_id=order_id),
        "cancel": lambda: orders.cancel_order(led, step_id=step, order_id=order_id),
        "refund": lambda: orders.refund_order(led, step_id=step, order_id=order_id),
        "refund_after": lambda: orders.refund_order(
            led, step_id=step, order_id=order_id, after_release=True
        ),
        "dispute": lambda: orders.dispute_order(led, step_id=step, order_id=order_id, reason="x"),
        "resolve": lambda: orders.resolve_dispute(
            led, step_id=step, order_id=order_id, decision=Decision.REFUND
        ),
    }
    before, order, seen = village.balances(), village.get(order_id), village.event_types(order_id)
    with refused(code):
        calls[operation]()
    assert village.balances() == before
    assert village.get(order_id) == order
    assert village.event_types(order_id) == seen


def test_bad_requests_are_refused(village: Village) -> None:
    with refused("delivery_method_invalid"):
        village.order(method="drone")
    with refused("amount_invalid"):
        village.order(0)
    with pytest.raises(NotFound):
        village.get(new_id())
    with pytest.raises(NotFound):
        village.pay(new_id())
    other = new_id()
    parties.onboard(village.led, party_id=other, kind=Kind.STOREFRONT, name="Duka", currency="UGX")
    with refused("currency_mismatch"):
        orders.create_order(
            village.led,
            order_id=new_id(),
            storefront_id=other,
            currency="UGX",
            amount_minor=1_000,
            delivery_method="courier",
            villager_id=village.villager,
        )


def test_orders_list_in_pages(village: Village) -> None:
    made = []
    for _ in range(5):
        made.append(village.order(1_000))
        village.clock.advance(1)
    first = orders.list_orders(village.led, storefront_id=village.storefront, limit=2)
    assert [o.id for o in first] == made[:2]
    rest = orders.list_orders(
        village.led, storefront_id=village.storefront, after=first[-1].id, limit=10
    )
    assert [o.id for o in rest] == made[2:]
    assert orders.list_orders(village.led, storefront_id=village.storefront, after=new_id()) == []
    with pytest.raises(ValueError):
        orders.list_orders(village.led, storefront_id=village.storefront, limit=1_001)


def test_a_villager_s_orders_by_id_prefix_are_exactly_that_range_of_ids(
    village: Village,
) -> None:
    """The prefix read behind her USSD order reference: exactly the ids that begin with
    the digits (both ends of the range in, the neighbours out), only hers, newest first."""
    baraka = new_id()
    active_villager(
        village.led, agent_id=village.agent, phone=new_phone(), villager_id=baraka, name="Baraka"
    )

    def made(hex_id: str, villager: uuid.UUID = village.villager) -> uuid.UUID:
        village.clock.advance(1)
        order_id = uuid.UUID(hex_id)
        orders.create_order(
            village.led,
            order_id=order_id,
            storefront_id=village.storefront,
            currency=KES,
            amount_minor=1_000,
            delivery_method="courier",
            villager_id=villager,
            agent_id=village.agent,
        )
        return order_id

    def read(prefix: Any, villager: uuid.UUID = village.villager, limit: Any = 9) -> list[Any]:
        found = village.led.transact(
            lambda tx: of_villager_by_id_prefix_in(
                tx, villager_id=villager, id_prefix_hex=prefix, limit=limit
            )
        )
        return [o.id for o in found]

    prefix = uuid.uuid4().hex[:5] + "7"
    below = made(prefix[:-1] + "6" + "f" * 26)
    lowest = made(prefix + "0" * 26)
    theirs = made(prefix + "1" * 26, baraka)
    highest = made(prefix + "f" * 26)
    above = made(prefix[:-1] + "8" + "0" * 26)
    assert read(prefix) == [highest, lowest]
    assert read(prefix.upper()) == [highest, lowest]
    assert read(prefix, limit=1) == [highest]
    assert read(prefix[:-1]) == [above, highest, lowest, below]
    assert read(prefix[:-1] + "9") == []
    assert read(lowest.hex) == [lowest] and read(lowest.hex[:-1] + "1") == []
    assert read(prefix, baraka) == [theirs]
    for bad in ("", "g", "12-4", " 1", "7" * 33, 7, None):
        with pytest.raises(MalformedRequest):
            read(bad)
    for limit in (0, 1_001, "9"):
        with pytest.raises(MalformedRequest):
            read(prefix, limit=limit)


# -- properties --------------------------------------------------------------------------------

OPERATIONS = (
    *["forward"] * 8,  # moves the order on along its happy path (see below)
    "pay_wallet",
    "pay_cash",
    "dispatch",
    "deliver_part",
    "deliver",
    "release",
    "dispute",
    "resolve_refund",
    "resolve_release",
    "resolve_resume",
    "extend",
    "cancel",
    "refund_part",
    "refund",
    "refund_after",
    "wait_and_sweep",
)


def step_call(
    led: Ledger,
    operation: str,
    step: uuid.UUID,
    order_id: uuid.UUID,
    part: int,
    code: str | None = None,
) -> Callable[[], Order]:
    """One order operation of the property test, ready to run (and to run again); a wallet
    payment carries ``code``, the pay code the villager made."""
    calls: dict[str, Callable[[], Order]] = {
        "pay_wallet": lambda: orders.pay_order(
            led, step_id=step, order_id=order_id, source=Source.WALLET, consent_code=code
        ),
        "pay_cash": lambda: orders.pay_order(
            led, step_id=step, order_id=order_id, source=Source.CASH
        ),
        "dispatch": lambda: orders.dispatch_order(led, step_id=step, order_id=order_id),
        "deliver_part": lambda: orders.deliver_order(
            led, step_id=step, order_id=order_id, amount_minor=part
        ),
        "deliver": lambda: orders.deliver_order(led, step_id=step, order_id=order_id),
        "release": lambda: orders.release_order(led, step_id=step, order_id=order_id),
        "dispute": lambda: orders.dispute_order(
            led, step_id=step, order_id=order_id, reason="late"
        ),
        "extend": lambda: orders.extend_auto_release(led, step_id=step, order_id=order_id, days=1),
        "cancel": lambda: orders.cancel_order(led, step_id=step, order_id=order_id),
        "refund_part": lambda: orders.refund_order(
            led, step_id=step, order_id=order_id, amount_minor=part
        ),
        "refund": lambda: orders.refund_order(led, step_id=step, order_id=order_id),
        "refund_after": lambda: orders.refund_order(
            led, step_id=step, order_id=order_id, after_release=True
        ),
    }
    for decision in Decision:
        calls[f"resolve_{decision.value}"] = lambda d=decision: orders.resolve_dispute(
            led, step_id=step, order_id=order_id, decision=d
        )
    return calls[operation]


def platform_share(village: Village) -> int:
    """What this storefront's escrow paid the platform's fee accounts, net of reversals."""
    escrow = village.account(village.storefront, Role.ESCROW)
    platform = {village.platform(r) for r in (Role.FEE_INCOME, Role.TAX_PAYABLE, Role.ROUNDING)}
    total, after = 0, None
    while page := village.led.account_transfers(escrow, after=after, limit=1_000):
        for t in page:
            if t.debit_account_id == escrow and t.credit_account_id in platform:
                total += t.amount or 0
            if t.credit_account_id == escrow and t.debit_account_id in platform:
                total -= t.amount or 0
        after = page[-1].id
    return total


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    amounts=st.lists(st.integers(1_000, 150_000), min_size=1, max_size=3),
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(OPERATIONS), st.integers(1, 99)),
        min_size=4,
        max_size=24,
    ),
)
def test_any_sequence_of_order_steps_keeps_escrow_equal_to_paid_less_released_and_refunded(
    ledger: Ledger, clock: Clock, amounts: list[int], steps: list[tuple[int, str, int]]
) -> None:
    village = make_village(ledger, clock, publish=False)
    if not ledger.transact(
        lambda tx: tx.one("SELECT 1 FROM fee_schedules WHERE product = 'order'")
    ):
        fees.publish_schedule(
            ledger,
            product="order",
            currency=KES,
            effective_from=clock.now - timedelta(days=1),
            rules=ORDER_RULES,
        )
    village.fund(village.account(village.villager, Role.WALLET), 1_000_000)
    ids = [village.order(a) for a in amounts]
    for index, chosen, percent in steps:
        order_id = ids[index % len(ids)]
        order = village.get(order_id)
        part = max(1, order.escrow_minor * percent // 100)
        step = new_id()
        operation = chosen
        if chosen == "forward":
            operation = {
                State.CREATED: "pay_wallet" if percent % 2 else "pay_cash",
                State.PAID: "dispatch",
                State.DISPATCHED: "dispute"
                if percent > 85
                else ("deliver_part" if percent < 50 else "deliver"),
                State.DELIVERED: "dispute" if percent > 85 else "release",
                State.DISPUTED: ("resolve_refund", "resolve_release", "resolve_resume")[
                    percent % 3
                ],
                State.RELEASED: "refund_after" if percent < 20 else "wait_and_sweep",
            }.get(order.state, "wait_and_sweep")
        if operation == "wait_and_sweep":
            clock.advance(percent * DAY_S // 10)
            orders.sweep_orders(ledger)
        else:
            # Amina makes a pay code for an order she can pay (not for a refusal to come)
            code = (
                village.pay_code(order_id)
                if (operation == "pay_wallet" and order.state is State.CREATED)
                else None
            )
            call = step_call(ledger, operation, step, order_id, part, code)
            try:
                answer = call()
            except Refused:
                pass
            else:  # the same step again answers the same and changes nothing
                before = village.balances()
                assert call() == answer
                assert village.balances() == before
        now = [village.get(i) for i in ids]
        # Escrow holds exactly what the orders say is still in it.
        assert village.escrow == sum(o.escrow_minor for o in now)
        assert all(o.paid_minor - o.released_minor - o.refunded_minor >= 0 for o in now)
        # What left escrow on release is all somewhere: seller, agent, platform; no more.
        # (The platform's accounts are shared with earlier examples, whose orders a sweep
        # here may release: its share is read off this storefront's escrow legs.)
        released = sum(o.released_minor for o in now)
        assert village.proceeds + village.commission + platform_share(village) == released
        # The payers got back exactly what was refunded.
        wallet_paid = sum(
            o.paid_minor - o.refunded_minor for o in now if o.payment_source == "wallet"
        )
        cash_paid = sum(o.paid_minor - o.refunded_minor for o in now if o.payment_source == "cash")
        assert village.wallet == 1_200_000 - wallet_paid
        assert village.float == 500_000 - cash_paid and village.cash_on_hand == cash_paid
    assert ledger.check_integrity().ok


# -- concurrency -------------------------------------------------------------------------------


def test_racing_release_and_refund_of_one_order_exactly_one_wins(
    village: Village, clock: Clock
) -> None:
    """Eight threads: four release the order, four refund it, all at once. The order row
    lock puts them in a line; the first wins, the seven after it find it released or
    refunded and are refused. The escrow account's limit flag would stop a second
    payout even if they did not."""
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    village.deliver(order_id)
    barrier = threading.Barrier(8)
    answers: list[object] = []
    lock = threading.Lock()

    def racer(i: int) -> None:
        led = open_ledger(village.led.url, clock=clock)
        try:
            barrier.wait()
            if i % 2:
                answer: object = orders.release_order(led, step_id=new_id(), order_id=order_id)
            else:
                answer = orders.refund_order(led, step_id=new_id(), order_id=order_id)
        except FlowError as exc:
            answer = exc
        except Exception as exc:  # collected, then asserted below
            answer = exc
        finally:
            led.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [a for a in answers if isinstance(a, Order)]
    losers = [a for a in answers if isinstance(a, Refused)]
    assert len(winners) == 1 and len(losers) == 7, answers
    assert {a.code for a in losers} <= {
        "order_not_releasable",
        "order_released",
        "order_not_refundable",
    }
    final = village.get(order_id)
    assert final.escrow_minor == 0 and village.escrow == 0
    if final.state is State.RELEASED:
        assert village.proceeds == 117_600 and village.wallet == 80_000
    else:
        assert final.state is State.REFUNDED
        assert village.proceeds == 0 and village.wallet == 200_000
    assert village.led.check_integrity().ok


def test_the_database_keeps_the_order_counters_and_the_history(village: Village) -> None:
    from ledger import InvariantViolation

    order_id = village.order()
    village.pay(order_id)
    with pytest.raises(InvariantViolation):  # more out of escrow than was paid in
        village.led.transact(
            lambda tx: tx.execute(
                "UPDATE orders SET released_minor = 100000, refunded_minor = 20001 WHERE id = :id",
                {"id": order_id},
            )
        )
    with pytest.raises(InvariantViolation):
        village.led.transact(
            lambda tx: tx.execute(
                "UPDATE orders SET state = 'lost' WHERE id = :id", {"id": order_id}
            )
        )
    with pytest.raises(InvariantViolation):  # history is immutable
        village.led.transact(
            lambda tx: tx.execute("DELETE FROM order_steps WHERE order_id = :id", {"id": order_id})
        )
    assert village.get(order_id).state is State.PAID


def test_a_release_smaller_than_its_fee_is_refused(village: Village) -> None:
    fees.publish_schedule(
        village.led,
        product="order",
        currency=KES,
        effective_from=village.clock.now,
        rules={"bands": [{"up_to_minor": None, "bps": 200, "min_minor": 500}]},
    )
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    with refused("fee_exceeds_release"):
        village.deliver(order_id, 499)
    assert village.deliver(order_id, 500).released_minor == 500  # all of it is fee
    assert village.proceeds == 0 and village.fee_income + village.commission + village.tax == 500


def test_partial_deliveries_are_limited(village: Village) -> None:
    order_id = village.order()
    village.pay(order_id)
    village.dispatch(order_id)
    for _ in range(orders.PARTIAL_DELIVERIES_MAX):
        village.deliver(order_id, 100)
    with refused("partial_deliveries_exceeded"):
        village.deliver(order_id, 100)
    assert village.deliver(order_id).state is State.DELIVERED  # the rest, in one
    village.release(order_id)
    orders.refund_order(village.led, step_id=new_id(), order_id=order_id, after_release=True)
    assert village.wallet == 200_000 and village.proceeds == 0
    assert village.led.check_integrity().ok


def test_a_sweep_releases_at_most_its_limit(village: Village) -> None:
    made = [village.order(10_000, method="pickup_point") for _ in range(3)]
    for order_id in made:
        village.pay(order_id)
        village.dispatch(order_id)
    village.clock.advance(5 * DAY_S)
    assert orders.sweep_orders(village.led, limit=2) == 2
    assert orders.sweep_orders(village.led, limit=2) == 1
    assert all(village.get(o).state is State.RELEASED for o in made)
    with pytest.raises(ValueError):
        orders.sweep_orders(village.led, limit=0)
