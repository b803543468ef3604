"""`vledger demo`: one village day through the flows, on any ledger database.

Two storefronts, two agents and three villagers in Kenya shillings: fee schedules in
data, float top-ups and an agent-to-agent float transfer with the low-float alarm,
cash-ins (one refused by a KYC limit), four escrowed orders (released with the fee
split, paid in cash and delivered in part with a dispute over the rest, cancelled,
auto-released by the sweeper), a replayed request, cash-outs (confirmed, cancelled,
timed out, one below the minimum), an agent's phone syncing a signed offline batch
(one record becomes an exception, and the batch re-sent changes nothing), provider
money parked in suspense and reassigned, and two settlement windows (a payout fails,
and the next window pays it). Then the balances, the events the day wrote, and the
integrity check, whose ``integrity: ok`` is the last line.

Every run uses fresh ids, so it runs again and again on the same database. The demo
checks each answer against the one it expects and answers 0 only when all hold and the
integrity check is clean. Timers are run by the sweepers *as of* a later moment (five
days on for the orders, past the timeout for the cash-out); nothing is stamped in the
future, because the ledger's clock is the wall clock.

Amounts are ``int`` minor units throughout; they are formatted with integer arithmetic.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import Ledger, open_ledger
from ledger.core import currency as iso4217
from ledger.flows import (
    agent_float,
    cash,
    events,
    fees,
    offline,
    orders,
    parties,
    settlement,
    suspense,
)
from ledger.flows.errors import FlowError
from ledger.flows.parties import Kind, Party, Role

CURRENCY = "KES"
PROVIDER = "BANK"
"""The bank where agents deposit cash for float and storefronts are paid out."""

FEE_SCHEDULES: dict[str, dict[str, Any]] = {
    # 2% of an order, at least KES 10, at most KES 500; 16% of the fee is tax and a
    # fifth goes to the agent who took a cash payment.
    "order": {
        "bands": [{"up_to_minor": None, "bps": 200, "min_minor": 1_000, "max_minor": 50_000}],
        "split_bps": {"tax": 1_600, "agent_commission": 2_000},
    },
    # Cash-in is free for the villager; the platform pays the agent 0.5% (at most KES 50).
    "cash_in": {
        "bands": [{"up_to_minor": None, "fixed_minor": 0}],
        "platform_commission": {"bps": 50, "max_minor": 5_000},
    },
    # Cash-out: KES 30 up to KES 1,000, then 1% (at most KES 300); half to the agent.
    "cash_out": {
        "bands": [
            {"up_to_minor": 100_000, "fixed_minor": 3_000},
            {"up_to_minor": None, "bps": 100, "min_minor": 3_000, "max_minor": 30_000},
        ],
        "split_bps": {"tax": 1_600, "agent_commission": 5_000},
    },
}

ORDER_AUTO_RELEASE_AFTER = timedelta(days=5, seconds=1)
"""The sweeper runs as of this long after dispatch (pickup points release after 5 days)."""


def format_amount(amount_minor: int, currency: str = CURRENCY) -> str:
    """``123456`` -> ``KES 1,234.56``; integer arithmetic only."""
    digits = iso4217.minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**digits)
    text = f"{major:,}"
    if digits:
        text += f".{minor:0{digits}d}"
    return f"{currency} {sign}{text}"


def kes(major: int) -> int:
    """Whole shillings in minor units (cents)."""
    return major * 100


class UnexpectedAnswer(Exception):
    """The ledger answered a demo step otherwise than the demo expects."""


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class VillageDay:
    """The parties of one demo run and the steps it takes on a ledger."""

    led: Ledger
    out: TextIO
    people: dict[str, Party] = field(default_factory=dict)

    # -- helpers ------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.out)

    def expect(self, what: str, got: object, want: object) -> None:
        if got != want:
            raise UnexpectedAnswer(f"{what}: got {got!r}, expected {want!r}")

    @contextmanager
    def refused(self, what: str, code: str) -> Iterator[None]:
        """The step inside must be refused with ``code`` and change nothing."""
        before = self.led.check_integrity()
        try:
            yield
        except FlowError as exc:
            self.expect(f"{what}: refusal", exc.code, code)
            self.say(f"{what}: refused, {exc.code}")
            self.expect(f"{what}: integrity", self.led.check_integrity().ok, before.ok)
            return
        raise UnexpectedAnswer(f"{what}: went through, expected refusal {code}")

    def balance(self, who: str, role: str) -> int:
        """The posted balance of a party's account, on its normal side."""
        party = self.people[who]
        [account] = self.led.lookup_accounts([party.account(role)])
        if role == Role.CASH:
            return account.debits_posted - account.credits_posted
        return account.credits_posted - account.debits_posted

    # -- the day ------------------------------------------------------------------

    def onboard(self) -> None:
        cast = [
            ("Mbegu Seeds", Kind.STOREFRONT, None),
            ("Duka Solar", Kind.STOREFRONT, None),
            ("Wanjiru's shop", Kind.AGENT, None),
            ("Kamau's kiosk", Kind.AGENT, None),
            ("Amina", Kind.VILLAGER, "tier1"),
            ("Baraka", Kind.VILLAGER, "tier1"),
            ("Chebet", Kind.VILLAGER, "tier0"),
        ]
        for name, kind, tier in cast:
            self.people[name] = parties.onboard(
                self.led,
                party_id=new_id(),
                kind=kind,
                name=name,
                currency=CURRENCY,
                kyc_tier=tier,
            )
        self.say(
            "onboarded 2 storefronts (Mbegu Seeds, Duka Solar), 2 agents (Wanjiru's shop,"
            " Kamau's kiosk), 3 villagers (Amina and Baraka tier1, Chebet tier0)"
        )
        published = []
        for product, rules in FEE_SCHEDULES.items():
            if not self._schedule_in_effect(product):
                fees.publish_schedule(
                    self.led,
                    product=product,
                    currency=CURRENCY,
                    effective_from=self.led.now() - timedelta(seconds=1),
                    rules=rules,
                )
                published.append(product)
        self.say(
            f"fee schedules published: {', '.join(published)}"
            if published
            else "fee schedules already in effect: order, cash_in, cash_out"
        )

    def _schedule_in_effect(self, product: str) -> bool:
        try:
            self.led.transact(
                lambda tx: fees.schedule_in_effect(tx, product=product, currency=CURRENCY)
            )
        except FlowError:
            return False
        return True

    def float_morning(self) -> None:
        wanjiru, kamau = self.people["Wanjiru's shop"], self.people["Kamau's kiosk"]
        for agent, amount in ((wanjiru, kes(50_000)), (kamau, kes(10_000))):
            agent_float.top_up_float(
                self.led,
                topup_id=new_id(),
                agent_id=agent.id,
                amount_minor=amount,
                provider=PROVIDER,
            )
            self.say(f"{agent.name} deposits {format_amount(amount)} at the bank: float topped up")
        agent_float.set_float_threshold(self.led, agent_id=kamau.id, threshold_minor=kes(8_000))
        self.say(f"{kamau.name} sets a low-float alarm at {format_amount(kes(8_000))}")

    def cash_ins(self) -> None:
        for villager, agent, amount in (
            ("Amina", "Wanjiru's shop", kes(12_000)),
            ("Baraka", "Wanjiru's shop", kes(8_000)),
            ("Chebet", "Kamau's kiosk", kes(3_000)),
        ):
            done = cash.cash_in(
                self.led,
                cash_in_id=new_id(),
                agent_id=self.people[agent].id,
                villager_id=self.people[villager].id,
                amount_minor=amount,
            )
            self.say(
                f"cash-in: {villager} hands {format_amount(amount)} to {agent};"
                f" wallet credited, agent earns {format_amount(done.commission_minor)}"
            )
        kamau = self.people["Kamau's kiosk"]
        rang = self._events_of(events.FLOAT_LOW, kamau.id)
        self.expect("low-float alarm", len(rang), 1)
        self.say(f"float.low: {kamau.name}'s float is down to {format_amount(kes(7_000))}")
        agent_float.transfer_float(
            self.led,
            transfer_id=new_id(),
            from_agent_id=self.people["Wanjiru's shop"].id,
            to_agent_id=kamau.id,
            amount_minor=kes(5_000),
        )
        status = agent_float.get_float(self.led, agent_id=kamau.id)
        self.expect("alarm re-armed", status.low_armed, True)
        self.say(
            f"Wanjiru's shop passes {format_amount(kes(5_000))} of float to {kamau.name}:"
            f" float {format_amount(status.available_minor)}, alarm re-armed"
        )
        with self.refused(
            f"cash-in of {format_amount(kes(6_000))} for Chebet (tier0)",
            "limit_exceeded_per_transaction",
        ):
            cash.cash_in(
                self.led,
                cash_in_id=new_id(),
                agent_id=kamau.id,
                villager_id=self.people["Chebet"].id,
                amount_minor=kes(6_000),
            )

    def _order(
        self, shop: str, villager: str, amount: int, method: str, agent: str | None = None
    ) -> uuid.UUID:
        order_id = new_id()
        orders.create_order(
            self.led,
            order_id=order_id,
            storefront_id=self.people[shop].id,
            currency=CURRENCY,
            amount_minor=amount,
            delivery_method=method,
            villager_id=self.people[villager].id,
            agent_id=self.people[agent].id if agent else None,
        )
        return order_id

    def _step(
        self, act: Callable[..., orders.Order], order_id: uuid.UUID, **kw: Any
    ) -> orders.Order:
        return act(self.led, step_id=new_id(), order_id=order_id, **kw)

    def orders_of_the_day(self) -> uuid.UUID:
        # 1. Seeds paid from the wallet, delivered, released: the fee splits three ways.
        seeds = self._order("Mbegu Seeds", "Amina", kes(1_200), "courier")
        pay_step = new_id()
        orders.pay_order(self.led, step_id=pay_step, order_id=seeds, source=orders.Source.WALLET)
        self.say(
            f"order 1: Amina pays Mbegu Seeds {format_amount(kes(1_200))} from her wallet:"
            " held in escrow"
        )
        again = orders.pay_order(
            self.led, step_id=pay_step, order_id=seeds, source=orders.Source.WALLET
        )
        self.expect(
            "replayed payment", (again.state, again.paid_minor), (orders.State.PAID, kes(1_200))
        )
        self.expect("wallet after replay", self.balance("Amina", Role.WALLET), kes(12_000 - 1_200))
        self.say(
            "order 1: the same payment sent again (same step id): the same answer, nothing moved"
        )
        self._step(orders.dispatch_order, seeds)
        self._step(orders.deliver_order, seeds)
        released = self._step(orders.release_order, seeds)
        self.expect("order 1 state", released.state, orders.State.RELEASED)
        seller = self.balance("Mbegu Seeds", Role.PROCEEDS)
        self.say(
            f"order 1 delivered and released: seller {format_amount(seller)},"
            " the 2% fee split into tax and platform income"
        )

        # 2. A solar lamp paid in cash at the agent; half delivered, a dispute over the rest.
        lamp = self._order("Duka Solar", "Baraka", kes(4_500), "agent_delivery", "Wanjiru's shop")
        self._step(orders.pay_order, lamp, source=orders.Source.CASH)
        self.say(
            f"order 2: Baraka pays Duka Solar {format_amount(kes(4_500))} in cash at Wanjiru's shop"
        )
        self._step(orders.dispatch_order, lamp)
        part = self._step(orders.deliver_order, lamp, amount_minor=kes(3_000))
        self.expect("order 2 released part", part.released_minor, kes(3_000))
        self.say(
            f"order 2: the lamp arrives, the panel does not: {format_amount(kes(3_000))} released"
        )
        self._step(orders.dispute_order, lamp, reason="solar panel missing")
        refunded = self._step(orders.resolve_dispute, lamp, decision=orders.Decision.REFUND)
        self.expect("order 2 refunded", refunded.refunded_minor, kes(1_500))
        self.say(
            f"order 2: Baraka disputes the missing panel; resolved for him:"
            f" {format_amount(kes(1_500))} back in cash through the agent"
        )

        # 3. Cancelled before dispatch: the hold goes back whole.
        hoe = self._order("Mbegu Seeds", "Amina", kes(900), "courier")
        self._step(orders.pay_order, hoe, source=orders.Source.WALLET)
        cancelled = self._step(orders.cancel_order, hoe)
        self.expect("order 3 state", cancelled.state, orders.State.CANCELLED)
        self.say(
            f"order 3: Amina orders a hoe for {format_amount(kes(900))}, then cancels:"
            " escrow voided"
        )

        # 4. A pickup-point order nobody confirms: the sweeper releases it after 5 days.
        beans = self._order("Mbegu Seeds", "Chebet", kes(500), "pickup_point")
        self._step(orders.pay_order, beans, source=orders.Source.WALLET)
        self._step(orders.dispatch_order, beans)
        with self.refused("order 4 paid a second time (a new step id)", "order_not_payable"):
            self._step(orders.pay_order, beans, source=orders.Source.WALLET)
        return beans

    def sweep_orders(self, beans: uuid.UUID) -> None:
        as_of = self.led.now() + ORDER_AUTO_RELEASE_AFTER
        released = orders.sweep_orders(self.led, now=as_of)
        order = orders.get_order(self.led, order_id=beans)
        self.expect("order 4 auto-released", order.state, orders.State.RELEASED)
        self.say(
            f"sweeper as of 5 days later: {released} order(s) auto-released,"
            " Chebet's beans among them"
        )

    def cash_outs(self) -> None:
        wanjiru, kamau = self.people["Wanjiru's shop"], self.people["Kamau's kiosk"]
        baraka = cash.request_cash_out(
            self.led,
            cash_out_id=new_id(),
            agent_id=wanjiru.id,
            villager_id=self.people["Baraka"].id,
            amount_minor=kes(2_000),
        )
        done = cash.confirm_cash_out(self.led, cash_out_id=baraka.id, agent_id=wanjiru.id)
        self.expect("cash-out confirmed", done.state, cash.CashOutState.COMPLETED)
        self.say(
            f"cash-out: Baraka asks Wanjiru's shop for {format_amount(kes(2_000))}"
            f" (fee {format_amount(done.fee_minor)}): held, cash handed over, confirmed"
        )
        amina = cash.request_cash_out(
            self.led,
            cash_out_id=new_id(),
            agent_id=wanjiru.id,
            villager_id=self.people["Amina"].id,
            amount_minor=kes(1_000),
        )
        cancelled = cash.cancel_cash_out(self.led, cash_out_id=amina.id, reason="changed her mind")
        self.expect("cash-out cancelled", cancelled.state, cash.CashOutState.CANCELLED)
        self.say(
            f"cash-out: Amina asks Wanjiru's shop for {format_amount(kes(1_000))}, then"
            " cancels: hold voided"
        )
        chebet = cash.request_cash_out(
            self.led,
            cash_out_id=new_id(),
            agent_id=kamau.id,
            villager_id=self.people["Chebet"].id,
            amount_minor=kes(1_000),
        )
        assert chebet.expires_at is not None  # a requested cash-out always has one
        expired = cash.sweep_cash_outs(self.led, now=chebet.expires_at + timedelta(seconds=1))
        state = cash.get_cash_out(self.led, chebet.id).state
        self.expect("cash-out expired", state, cash.CashOutState.EXPIRED)
        self.say(
            f"cash-out: Chebet asks Kamau's kiosk for {format_amount(kes(1_000))} and never"
            f" comes; the sweeper past the timeout: {expired} expired, hold voided"
        )
        with self.refused(f"cash-out of {format_amount(kes(20))}", "below_minimum"):
            cash.request_cash_out(
                self.led,
                cash_out_id=new_id(),
                agent_id=kamau.id,
                villager_id=self.people["Chebet"].id,
                amount_minor=kes(20),
            )

    def offline_batch(self) -> None:
        wanjiru = self.people["Wanjiru's shop"]
        phone = Ed25519PrivateKey.generate()
        device_id = new_id()
        offline.register_device(
            self.led,
            device_id=device_id,
            agent_id=wanjiru.id,
            public_key=phone.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            allowance_minor=kes(5_000),
        )
        self.say(
            f"Wanjiru's phone registers its Ed25519 key; offline allowance"
            f" {format_amount(kes(5_000))} held on her float"
        )
        captured = self.led.now().replace(microsecond=0)
        batch = [
            ("Amina", offline.RecordKind.CASH_IN, kes(1_000)),
            ("Baraka", offline.RecordKind.CASH_OUT, kes(500)),
            ("Chebet", offline.RecordKind.CASH_IN, kes(4_500)),  # more than is left
        ]
        signed = [
            offline.sign_record(
                phone,
                offline.OfflineRecord(
                    record_id=new_id(),
                    device_id=device_id,
                    agent_id=wanjiru.id,
                    villager_id=self.people[who].id,
                    kind=kind,
                    amount_minor=amount,
                    currency=CURRENCY,
                    seq=seq,
                    captured_at=captured + timedelta(minutes=seq),
                ),
            )
            for seq, (who, kind, amount) in enumerate(batch, start=1)
        ]
        report = offline.sync(self.led, device_id=device_id, records=signed)
        self.expect("offline applied", report.applied, 2)
        self.expect("offline exceptions", report.exceptions, 1)
        reasons = [r.reason for r in report.records if r.reason]
        self.say(
            f"offline batch of 3 signed records synced: {report.applied} applied,"
            f" {report.exceptions} exception ({', '.join(reasons)}) kept for reconciliation"
        )
        again = offline.sync(self.led, device_id=device_id, records=signed)
        self.expect("offline re-sent", (again.stored_now, again.replayed), (0, 3))
        self.say("the same batch sent again: 0 stored, 3 already known; nothing moved")

    def suspense(self) -> None:
        item = suspense.park(
            self.led,
            suspense_id=new_id(),
            currency=CURRENCY,
            provider=PROVIDER,
            provider_reference=f"DEP-{uuid.uuid4().hex[:10].upper()}",
            amount_minor=kes(750),
            note="deposit with no wallet number",
        )
        self.say(
            f"{format_amount(item.amount_minor)} arrives at the bank with reference"
            f" {item.provider_reference} and no wallet: parked in suspense"
        )
        moved = suspense.reassign(
            self.led, suspense_id=item.id, to_villager_id=self.people["Amina"].id
        )
        self.say(f"an operator finds it is Amina's: reassigned to her wallet ({moved.state})")

    def settle(self) -> None:
        duka = self.people["Duka Solar"].id
        first = self._close_window()
        failed = 0
        for payout in settlement.list_payouts(self.led, window_id=first.id):
            if payout.storefront_id == duka:
                settlement.fail_payout(
                    self.led, payout_id=payout.id, reason="account number rejected"
                )
                failed = payout.amount_minor
            else:
                settlement.confirm_payout(
                    self.led, payout_id=payout.id, provider_reference=f"PAY-{payout.id.hex[:12]}"
                )
        self.expect("Duka Solar's payout failed", failed > 0, True)
        report = settlement.window_report(self.led, window_id=first.id)
        self.expect("window 1 ties", report.ties, True)
        self.say(
            f"settlement window 1 closed: {len(report.lines)} payout(s),"
            f" {format_amount(report.paid_total_minor)} paid,"
            f" Duka Solar's {format_amount(failed)} failed; report ties to the ledger"
        )
        second = self._close_window()
        for payout in settlement.list_payouts(self.led, window_id=second.id):
            settlement.confirm_payout(
                self.led, payout_id=payout.id, provider_reference=f"PAY-{payout.id.hex[:12]}"
            )
        report = settlement.window_report(self.led, window_id=second.id)
        self.expect("window 2 ties", report.ties, True)
        self.expect("window 2 pays Duka Solar", report.paid_total_minor >= failed, True)
        self.say(
            f"settlement window 2 closed: Duka Solar's {format_amount(failed)} paid now;"
            f" {report.window.state}, report ties"
        )

    def _close_window(self) -> settlement.Window:
        open_now = settlement.list_windows(
            self.led, currency=CURRENCY, state=settlement.WindowState.OPEN
        )
        window_id = open_now[0].id if open_now else new_id()
        if not open_now:
            settlement.open_window(self.led, window_id=window_id, currency=CURRENCY)
        return settlement.close_window(self.led, window_id=window_id, provider=PROVIDER)

    def _events_of(self, kind: str | None, party_id: uuid.UUID) -> list[events.Event]:
        """The party's events (of one kind, if given); a demo party has fewer than a page."""
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=party_id, limit=events.EVENTS_PAGE_MAX)
        )
        return [e for e in found if kind is None or e.type == kind]

    def print_balances(self) -> None:
        rows = [
            ("Amina", "wallet", Role.WALLET),
            ("Baraka", "wallet", Role.WALLET),
            ("Chebet", "wallet", Role.WALLET),
            ("Wanjiru's shop", "float", Role.FLOAT),
            ("Wanjiru's shop", "cash on hand", Role.CASH),
            ("Wanjiru's shop", "commission", Role.COMMISSION),
            ("Kamau's kiosk", "float", Role.FLOAT),
            ("Kamau's kiosk", "cash on hand", Role.CASH),
            ("Mbegu Seeds", "proceeds", Role.PROCEEDS),
            ("Duka Solar", "proceeds", Role.PROCEEDS),
        ]
        self.say("balances (posted):")
        lines = [
            (f"{who} {what}", format_amount(self.balance(who, role))) for who, what, role in rows
        ]
        width = max(len(name) for name, _ in lines)
        number = max(len(amount) for _, amount in lines)
        for name, amount in lines:
            self.say(f"  {name:<{width}}  {amount:>{number}}")

    def print_events(self) -> None:
        counts: dict[str, int] = {}
        for party in self.people.values():
            for event in self._events_of(None, party.id):
                counts[event.type] = counts.get(event.type, 0) + 1
        shown = ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items()))
        self.say(f"events in the outbox for today's parties: {shown}")


def run_demo(url: str, out: TextIO | None = None) -> int:
    """Run the village day on the ledger at ``url``; answer the process exit code.

    0: every step answered as expected and the integrity check is clean (the last line
    printed is ``integrity: ok``); 1: otherwise, with the reason printed.
    """
    out = out or sys.stdout
    led = open_ledger(url, migrate=True)
    try:
        print(f"Village Ledger demo: one village day on {led.dialect}", file=out)
        day = VillageDay(led, out)
        try:
            day.onboard()
            day.float_morning()
            day.cash_ins()
            beans = day.orders_of_the_day()
            day.cash_outs()
            day.offline_batch()
            day.suspense()
            day.sweep_orders(beans)
            day.settle()
            day.print_balances()
            day.print_events()
        except (UnexpectedAnswer, FlowError) as exc:
            print(f"demo failed: {exc}", file=out)
            return 1
        report = led.check_integrity()
        if not report.ok:
            print("integrity: FAILED", file=out)
            for problem in report.problems:
                print(f"  {problem}", file=out)
            return 1
        print("integrity: ok", file=out)
        return 0
    finally:
        led.close()
