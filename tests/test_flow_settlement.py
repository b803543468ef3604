"""Settlement windows: storefronts' released proceeds netted into payouts held towards the
provider, posted when the provider confirms, voided (and paid by the next window) when
it fails; each window's report ties to the ledger. Every story runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import dataclasses
import itertools
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
from ledger.core import currency as iso4217
from ledger.flows import events, fees, orders, parties, settlement
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Role
from ledger.flows.settlement import Payout, PayoutState, Window, WindowState
from tests.conftest import Clock
from tests.consent_helpers import new_phone
from tests.test_flow_order_consent import pay_code_made
from tests.villager_helpers import active_villager

KES = "KES"
MPESA = "MPESA"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class Market:
    """Storefronts of one currency, and an outside account that credits their proceeds
    the way released orders do (the order path is tested on its own below)."""

    led: Ledger
    currency: str
    bank: uuid.UUID
    storefronts: list[uuid.UUID]

    def proceeds(self, storefront: uuid.UUID) -> uuid.UUID:
        return parties.account_id(storefront, Role.PROCEEDS)

    def clearing(self, provider: str = MPESA) -> uuid.UUID:
        platform = parties.platform_id(self.currency)
        return parties.account_id(platform, parties.provider_role(provider))

    def account(self, account_id: uuid.UUID) -> Account:
        [found] = self.led.lookup_accounts([account_id])
        return found

    def release(self, storefront: uuid.UUID, amount: int) -> None:
        transfer = Transfer(
            new_id(), self.bank, self.proceeds(storefront), amount, self.currency, 1
        )
        [result] = self.led.create_transfers([transfer])
        assert result.status == "created"

    def take_back(self, storefront: uuid.UUID, amount: int) -> str:
        """Debit proceeds (as a refund after release does); the core's status."""
        transfer = Transfer(
            new_id(), self.proceeds(storefront), self.bank, amount, self.currency, 1
        )
        [result] = self.led.create_transfers([transfer])
        return str(result.status)

    def posted(self, storefront: uuid.UUID) -> int:
        a = self.account(self.proceeds(storefront))
        return a.credits_posted - a.debits_posted

    def held(self, storefront: uuid.UUID) -> int:
        return self.account(self.proceeds(storefront)).debits_pending

    def available(self, storefront: uuid.UUID) -> int:
        return self.posted(storefront) - self.held(storefront)

    def paid_out(self, provider: str = MPESA) -> int:
        """What payouts took out of the platform's money at the provider."""
        found = self.led.lookup_accounts([self.clearing(provider)])
        return found[0].credits_posted - found[0].debits_posted if found else 0

    def payouts(self, window_id: uuid.UUID) -> dict[uuid.UUID, Payout]:
        return {p.storefront_id: p for p in settlement.list_payouts(self.led, window_id=window_id)}

    def event_types(self, subject_id: uuid.UUID) -> list[str]:
        found = self.led.transact(lambda tx: events.read_events(tx, subject_id=subject_id))
        return [e.type for e in found]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused request must leave as it was."""
        ids = [self.proceeds(s) for s in self.storefronts] + [self.clearing()]
        accounts = [
            (a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in self.led.lookup_accounts(ids)
        ]
        windows = settlement.list_windows(self.led, limit=1000)
        payouts = [settlement.list_payouts(self.led, window_id=w.id) for w in windows]
        count = self.led.transact(lambda tx: tx.one("SELECT COUNT(*) FROM events"))
        return accounts, windows, payouts, count


def make_market(led: Ledger, currency: str = KES, names: tuple[str, ...] = ()) -> Market:
    bank = new_id()
    assert led.create_accounts([Account(bank, currency, 999)])[0].status == "created"
    storefronts = []
    for name in names or ("Duka la Mama", "Mbegu Seeds"):
        storefront = new_id()
        parties.onboard(
            led, party_id=storefront, kind=Kind.STOREFRONT, name=name, currency=currency
        )
        storefronts.append(storefront)
    return Market(led, currency, bank, storefronts)


@pytest.fixture
def market(ledger: Ledger) -> Market:
    return make_market(ledger)


def refused(code: str) -> Any:
    return pytest.raises(Refused, match=f"^{code}:")


def open_and_close(market: Market, provider: str = MPESA) -> uuid.UUID:
    window_id = new_id()
    settlement.open_window(market.led, window_id=window_id, currency=market.currency)
    settlement.close_window(market.led, window_id=window_id, provider=provider)
    return window_id


# -- stories ----------------------------------------------------------------------------------


def test_window_closes_two_storefronts_get_payouts_one_fails_and_its_money_waits_for_the_next(
    market: Market,
) -> None:
    led = market.led
    duka, mbegu = market.storefronts
    first = new_id()
    opened = settlement.open_window(led, window_id=first, currency=KES)
    assert opened.state is WindowState.OPEN and opened.provider is None
    market.release(duka, 150_000)  # KES 1,500.00 released to Duka la Mama
    market.release(mbegu, 80_000)

    closed = settlement.close_window(led, window_id=first, provider=MPESA)
    assert closed.state is WindowState.CLOSED and closed.provider == MPESA
    assert (closed.payouts_count, closed.payouts_total_minor) == (2, 230_000)
    payouts = market.payouts(first)
    assert payouts[duka].amount_minor == payouts[duka].proceeds_before_minor == 150_000
    assert payouts[mbegu].amount_minor == 80_000
    assert all(p.state is PayoutState.PENDING for p in payouts.values())
    # Held, not yet gone: posted proceeds unchanged, nothing available.
    assert (market.posted(duka), market.held(duka), market.available(duka)) == (150_000, 150_000, 0)
    assert market.account(market.clearing()).credits_pending == 230_000
    report = settlement.window_report(led, window_id=first)
    assert report.ties, report.problems
    assert (report.pending_total_minor, report.ledger_held_minor) == (230_000, 230_000)

    paid = settlement.confirm_payout(
        led, payout_id=payouts[duka].id, provider_reference="MPESA-B2C-0001"
    )
    assert paid.state is PayoutState.PAID and paid.provider_reference == "MPESA-B2C-0001"
    assert market.posted(duka) == 0 and market.held(duka) == 0
    assert market.paid_out() == 150_000
    assert settlement.get_window(led, window_id=first).state is WindowState.CLOSED

    failed = settlement.fail_payout(
        led, payout_id=payouts[mbegu].id, reason="account closed at the bank"
    )
    assert failed.state is PayoutState.FAILED
    assert market.available(mbegu) == 80_000 and market.held(mbegu) == 0  # back in proceeds
    settled = settlement.get_window(led, window_id=first)
    assert settled.state is WindowState.SETTLED and settled.settled_at is not None

    report = settlement.window_report(led, window_id=first)
    assert report.ties, report.problems
    assert report.paid_total_minor == report.ledger_posted_minor == 150_000
    assert report.clearing_movement_minor == 150_000
    assert report.failed_total_minor == report.ledger_voided_minor == 80_000
    assert report.pending_total_minor == 0 and report.proceeds_before_total_minor == 230_000
    lines = {line.storefront_id: line for line in report.lines}
    assert (lines[duka].posted_minor, lines[duka].proceeds_after_minor) == (150_000, 0)
    assert (lines[mbegu].voided_minor, lines[mbegu].proceeds_after_minor) == (80_000, 80_000)

    # The next window pays Mbegu's money that waited, and what Duka earned since.
    market.release(duka, 20_000)
    second = open_and_close(market)
    again = market.payouts(second)
    assert again[duka].amount_minor == 20_000 and again[mbegu].amount_minor == 80_000
    for i, payout in enumerate(again.values()):
        settlement.confirm_payout(led, payout_id=payout.id, provider_reference=f"MPESA-B2C-01{i}")
    assert settlement.get_window(led, window_id=second).state is WindowState.SETTLED
    assert market.posted(duka) == market.posted(mbegu) == 0
    assert market.paid_out() == 250_000
    assert settlement.window_report(led, window_id=second).ties

    assert market.event_types(first) == ["window.opened", "window.closed", "window.settled"]
    assert market.event_types(payouts[duka].id) == ["payout.created", "payout.confirmed"]
    assert market.event_types(payouts[mbegu].id) == ["payout.created", "payout.failed"]
    assert led.check_integrity().ok


def test_seller_paid_for_seeds_through_escrow_is_paid_out_at_the_window_close(
    ledger: Ledger, clock: Clock
) -> None:
    """Amina pays 1,200 KES for seeds; the order is released (2% platform fee), and the
    window pays Mbegu Seeds its 1,176 KES through M-Pesa."""
    market = make_market(ledger, names=("Mbegu Seeds",))
    [mbegu] = market.storefronts
    juma = new_id()
    parties.onboard(ledger, party_id=juma, kind=Kind.AGENT, name="Juma", currency=KES)
    # Amina registers at Juma's station and sets her PIN
    villager = active_villager(ledger, agent_id=juma, phone=new_phone(), name="Amina").id
    [funded] = ledger.create_transfers(
        [
            Transfer(
                new_id(), market.bank, parties.account_id(villager, Role.WALLET), 200_000, KES, 1
            )
        ]
    )
    assert funded.status == "created"
    fees.publish_schedule(
        ledger,
        product="order",
        currency=KES,
        effective_from=clock.now - timedelta(days=1),
        rules={"bands": [{"up_to_minor": None, "bps": 200}], "split_bps": {"tax": 1_600}},
    )
    window_id = new_id()
    settlement.open_window(ledger, window_id=window_id, currency=KES)
    order_id = new_id()
    orders.create_order(
        ledger,
        order_id=order_id,
        storefront_id=mbegu,
        currency=KES,
        amount_minor=120_000,
        delivery_method="courier",
        villager_id=villager,
    )
    code = pay_code_made(ledger, villager, order_id, 120_000)  # her pay code, at checkout
    orders.pay_order(
        ledger,
        step_id=new_id(),
        order_id=order_id,
        source=orders.Source.WALLET,
        consent_code=code,
    )
    orders.dispatch_order(ledger, step_id=new_id(), order_id=order_id)
    orders.deliver_order(ledger, step_id=new_id(), order_id=order_id)
    orders.release_order(ledger, step_id=new_id(), order_id=order_id)
    assert market.posted(mbegu) == 117_600

    closed = settlement.close_window(ledger, window_id=window_id, provider=MPESA)
    assert closed.payouts_total_minor == 117_600
    [payout] = market.payouts(window_id).values()
    settlement.confirm_payout(ledger, payout_id=payout.id, provider_reference="MP-77")
    assert market.posted(mbegu) == 0 and market.paid_out() == 117_600
    assert settlement.window_report(ledger, window_id=window_id).ties
    assert ledger.check_integrity().ok


def test_a_storefront_with_nothing_to_pay_gets_no_payout_and_an_empty_window_settles_at_once(
    market: Market,
) -> None:
    duka, mbegu = market.storefronts
    market.release(duka, 5_000)
    window_id = open_and_close(market)
    assert set(market.payouts(window_id)) == {duka}
    [payout] = market.payouts(window_id).values()
    settlement.confirm_payout(market.led, payout_id=payout.id, provider_reference="R1")

    empty = open_and_close(market)
    window = settlement.get_window(market.led, window_id=empty)
    assert window.state is WindowState.SETTLED and window.payouts_count == 0
    assert market.payouts(empty) == {}
    assert market.event_types(empty) == ["window.opened", "window.closed", "window.settled"]
    assert settlement.window_report(market.led, window_id=empty).ties


def test_a_payout_still_pending_is_not_netted_twice_by_the_next_window(market: Market) -> None:
    duka, _ = market.storefronts
    market.release(duka, 10_000)
    first = open_and_close(market)
    market.release(duka, 3_000)
    second = open_and_close(market)
    assert market.payouts(second)[duka].amount_minor == 3_000
    assert market.held(duka) == 13_000 and market.available(duka) == 0
    # Money taken back from proceeds (a refund after release) cannot take held money.
    assert market.take_back(duka, 1) == "exceeds_credits"
    settlement.fail_payout(market.led, payout_id=market.payouts(first)[duka].id, reason="timeout")
    assert market.available(duka) == 10_000
    for window_id in (first, second):
        assert settlement.window_report(market.led, window_id=window_id).ties
    assert market.led.check_integrity().ok


def test_proceeds_that_shrank_while_the_window_closed_wait_for_the_next_window(
    market: Market,
) -> None:
    """The close reads the proceeds, then holds them; a refund after release that takes
    some back in between makes that storefront's hold fail: it gets no payout this time
    (the others do), and the next window pays it."""
    led = market.led
    duka, mbegu = market.storefronts
    market.release(duka, 10_000)
    market.release(mbegu, 6_000)
    window_id = new_id()
    settlement.open_window(led, window_id=window_id, currency=KES)

    def close_reading_stale_proceeds(tx: Any) -> Window:
        read = tx.lookup_accounts

        def stale(ids: list[uuid.UUID]) -> list[Account]:
            return [
                dataclasses.replace(a, credits_posted=a.credits_posted + 1)
                if a.id == market.proceeds(duka)
                else a
                for a in read(ids)
            ]

        tx.lookup_accounts = stale  # as if 1 was taken back after the read
        return settlement.close_window_in(tx, window_id=window_id, provider=MPESA)

    closed = led.transact(close_reading_stale_proceeds)
    assert (closed.payouts_count, closed.payouts_total_minor) == (1, 6_000)
    assert set(market.payouts(window_id)) == {mbegu}
    assert market.available(duka) == 10_000
    assert settlement.window_report(led, window_id=window_id).ties
    assert market.payouts(open_and_close(market))[duka].amount_minor == 10_000
    assert led.check_integrity().ok


def test_one_open_window_per_currency(market: Market, ledger: Ledger) -> None:
    first = new_id()
    settlement.open_window(ledger, window_id=first, currency=KES)
    before = market.snapshot()
    with refused("window_already_open"):
        settlement.open_window(ledger, window_id=new_id(), currency=KES)
    assert market.snapshot() == before
    make_market(ledger, "UGX")
    ugx = settlement.open_window(ledger, window_id=new_id(), currency="UGX")
    assert ugx.state is WindowState.OPEN
    settlement.close_window(ledger, window_id=first, provider=MPESA)
    assert settlement.open_window(ledger, window_id=new_id(), currency=KES).state == "open"


# -- idempotency and refusals -----------------------------------------------------------------


def test_replays_answer_the_same_and_change_nothing(market: Market) -> None:
    led = market.led
    duka, mbegu = market.storefronts
    market.release(duka, 7_000)
    market.release(mbegu, 9_000)
    window_id = new_id()
    opened = settlement.open_window(led, window_id=window_id, currency=KES)
    assert settlement.open_window(led, window_id=window_id, currency=KES) == opened
    closed = settlement.close_window(led, window_id=window_id, provider=MPESA)
    before = market.snapshot()
    assert settlement.close_window(led, window_id=window_id, provider=MPESA) == closed
    assert settlement.open_window(led, window_id=window_id, currency=KES) == closed
    assert market.snapshot() == before

    payouts = market.payouts(window_id)
    paid = settlement.confirm_payout(led, payout_id=payouts[duka].id, provider_reference="R-1")
    failed = settlement.fail_payout(led, payout_id=payouts[mbegu].id, reason="rejected")
    before = market.snapshot()
    assert settlement.confirm_payout(led, payout_id=paid.id, provider_reference="R-1") == paid
    assert settlement.fail_payout(led, payout_id=failed.id, reason="rejected") == failed
    assert market.snapshot() == before


def test_the_same_id_for_another_request_is_a_conflict_and_changes_nothing(
    market: Market,
) -> None:
    led = market.led
    duka, mbegu = market.storefronts
    market.release(duka, 7_000)
    market.release(mbegu, 9_000)
    window_id = open_and_close(market)
    payouts = market.payouts(window_id)
    settlement.confirm_payout(led, payout_id=payouts[duka].id, provider_reference="R-1")
    before = market.snapshot()
    cases: list[tuple[str, Callable[[], object]]] = [
        (
            "window_id_reused",
            lambda: settlement.open_window(led, window_id=window_id, currency="UGX"),
        ),
        (
            "window_closed_differently",
            lambda: settlement.close_window(led, window_id=window_id, provider="AIRTEL"),
        ),
        (
            "payout_confirmed_differently",
            lambda: settlement.confirm_payout(
                led, payout_id=payouts[duka].id, provider_reference="R-2"
            ),
        ),
        (
            "provider_reference_used",
            lambda: settlement.confirm_payout(
                led, payout_id=payouts[mbegu].id, provider_reference="R-1"
            ),
        ),
    ]
    for code, call in cases:
        with pytest.raises(Conflict, match=f"^{code}:"):
            call()
        assert market.snapshot() == before, code


def test_refusals_change_nothing(market: Market) -> None:
    led = market.led
    duka, mbegu = market.storefronts
    market.release(duka, 7_000)
    market.release(mbegu, 9_000)
    window_id = open_and_close(market)
    payouts = market.payouts(window_id)
    settlement.confirm_payout(led, payout_id=payouts[duka].id, provider_reference="R-1")
    settlement.fail_payout(led, payout_id=payouts[mbegu].id, reason="rejected")
    before = market.snapshot()
    with refused("payout_not_pending"):
        settlement.fail_payout(led, payout_id=payouts[duka].id, reason="late failure")
    with refused("payout_not_pending"):
        settlement.confirm_payout(led, payout_id=payouts[mbegu].id, provider_reference="R-9")
    with refused("provider_reference_invalid"):
        settlement.confirm_payout(led, payout_id=payouts[duka].id, provider_reference="  ")
    with refused("reason_invalid"):
        settlement.fail_payout(led, payout_id=payouts[mbegu].id, reason="x" * 501)
    with refused("provider_invalid"):
        settlement.close_window(led, window_id=window_id, provider="m-pesa")
    with refused("currency_not_supported"):
        settlement.open_window(led, window_id=new_id(), currency="XYZ")
    with pytest.raises(NotFound, match=r"^window_not_found:"):
        settlement.close_window(led, window_id=new_id(), provider=MPESA)
    with pytest.raises(NotFound, match=r"^payout_not_found:"):
        settlement.confirm_payout(led, payout_id=new_id(), provider_reference="R-3")
    with pytest.raises(NotFound, match=r"^window_not_found:"):
        settlement.window_report(led, window_id=new_id())
    assert market.snapshot() == before
    assert led.check_integrity().ok


def test_the_database_refuses_a_payout_row_that_breaks_its_rules(market: Market) -> None:
    from ledger import InvariantViolation

    market.release(market.storefronts[0], 1_000)
    window_id = open_and_close(market)
    [payout] = market.payouts(window_id).values()
    for sql in (
        "UPDATE payouts SET state = 'paid' WHERE id = :id",  # paid without a reference
        "UPDATE payouts SET amount_minor = proceeds_before_minor + 1 WHERE id = :id",
        "UPDATE payouts SET state = 'lost' WHERE id = :id",
    ):
        with pytest.raises(InvariantViolation):
            market.led.transact(lambda tx, sql=sql: tx.execute(sql, {"id": payout.id}))
    with pytest.raises(InvariantViolation):  # a second open window of the currency
        market.led.transact(
            lambda tx: tx.execute(
                "INSERT INTO settlement_windows (id, currency, state, payouts_count,"
                " payouts_total_minor, opened_at_us) VALUES (:a, 'KES', 'open', 0, 0, 0),"
                " (:b, 'KES', 'open', 0, 0, 0)",
                {"a": new_id(), "b": new_id()},
            )
        )


def test_windows_and_payouts_are_listed_in_pages(
    market: Market, ledger: Ledger, clock: Clock
) -> None:
    duka, mbegu = market.storefronts
    ids = []
    for _ in range(3):
        clock.advance(3_600)
        market.release(duka, 1_000)
        market.release(mbegu, 2_000)
        ids.append(open_and_close(market))
    open_id = new_id()
    clock.advance(3_600)
    settlement.open_window(ledger, window_id=open_id, currency=KES)
    listed = settlement.list_windows(ledger, currency=KES)
    assert [w.id for w in listed] == [*ids, open_id]
    page = settlement.list_windows(ledger, limit=2, starting_after=ids[0])
    assert [w.id for w in page] == ids[1:]
    assert [w.id for w in settlement.list_windows(ledger, state=WindowState.OPEN)] == [open_id]
    assert settlement.list_windows(ledger, starting_after=new_id()) == []
    assert settlement.list_windows(ledger, currency="UGX") == []
    payouts = settlement.list_payouts(ledger, window_id=ids[0])
    assert len(payouts) == 2 and payouts == sorted(payouts, key=lambda p: p.id)
    rest = settlement.list_payouts(ledger, window_id=ids[0], starting_after=payouts[0].id)
    assert rest == payouts[1:]
    assert settlement.list_payouts(ledger, window_id=ids[0], limit=1) == payouts[:1]
    with pytest.raises(ValueError):
        settlement.list_windows(ledger, limit=0)
    with pytest.raises(ValueError):
        settlement.list_windows(ledger, limit=settlement.WINDOWS_PAGE_MAX + 1)
    assert len(settlement.list_windows(ledger, limit=settlement.WINDOWS_PAGE_MAX)) == 4
    with pytest.raises(NotFound):
        settlement.list_payouts(ledger, window_id=new_id())


# -- the property -----------------------------------------------------------------------------

_CURRENCIES = itertools.cycle(sorted(iso4217.MINOR_DIGITS))
OPERATIONS = ("release", "take_back", "open", "close", "confirm", "fail")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 2), st.integers(1, 50_000)),
        min_size=1,
        max_size=25,
    )
)
def test_any_sequence_of_releases_closes_confirms_and_failures_conserves_money_and_ties(
    ledger: Ledger, steps: list[tuple[str, int, int]]
) -> None:
    # Each example its own currency: its own platform, windows and clearing account.
    market = make_market(ledger, next(_CURRENCIES), ("A", "B", "C"))
    sf = market.storefronts
    available, held = [0, 0, 0], [0, 0, 0]
    released = taken = paid = 0
    open_window: uuid.UUID | None = None
    windows: list[uuid.UUID] = []
    pending: list[Payout] = []
    for operation, index, amount in steps:
        if operation == "release":
            market.release(sf[index], amount)
            available[index] += amount
            released += amount
        elif operation == "take_back":
            status = market.take_back(sf[index], amount)
            assert status == ("created" if amount <= available[index] else "exceeds_credits")
            if status == "created":
                available[index] -= amount
                taken += amount
        elif operation == "open":
            if open_window is None:
                open_window = new_id()
                settlement.open_window(ledger, window_id=open_window, currency=market.currency)
                windows.append(open_window)
            else:
                with refused("window_already_open"):
                    settlement.open_window(ledger, window_id=new_id(), currency=market.currency)
        elif operation == "close" and open_window is not None:
            closed = settlement.close_window(ledger, window_id=open_window, provider=MPESA)
            assert settlement.close_window(ledger, window_id=open_window, provider=MPESA) == closed
            made = market.payouts(open_window)
            assert {s: p.amount_minor for s, p in made.items()} == {
                s: available[i] for i, s in enumerate(sf) if available[i] > 0
            }
            for i in range(3):
                held[i] += available[i]
                available[i] = 0
            pending += made.values()
            open_window = None
        elif operation in ("confirm", "fail") and pending:
            payout = pending.pop(index % len(pending))
            i = sf.index(payout.storefront_id)
            if operation == "confirm":
                ref = f"REF-{payout.id}"
                done = settlement.confirm_payout(
                    ledger, payout_id=payout.id, provider_reference=ref
                )
                assert (
                    settlement.confirm_payout(ledger, payout_id=payout.id, provider_reference=ref)
                    == done
                )
                paid += payout.amount_minor
            else:
                done = settlement.fail_payout(ledger, payout_id=payout.id, reason="failed")
                assert settlement.fail_payout(ledger, payout_id=payout.id, reason="failed") == done
                available[i] += payout.amount_minor
            held[i] -= payout.amount_minor
        for i, s in enumerate(sf):
            assert (market.available(s), market.held(s)) == (available[i], held[i])
    # Conserved: what was released is in proceeds (available or held), paid out, or taken back.
    assert sum(available) + sum(held) + paid + taken == released
    assert market.paid_out() == paid
    for window_id in windows:
        report = settlement.window_report(ledger, window_id=window_id)
        assert report.ties, report.problems
        window = report.window
        if window.state is not WindowState.OPEN:
            still = sum(p.amount_minor for p in pending if p.window_id == window_id)
            assert report.pending_total_minor == still
            assert (window.state is WindowState.SETTLED) == (still == 0)
    assert ledger.check_integrity().ok


# -- concurrency ------------------------------------------------------------------------------


def race(url: str, clock: Clock, calls: list[Callable[[Ledger], object]]) -> list[object]:
    """Run each call in its own thread with its own Ledger, all released at once."""
    barrier = threading.Barrier(len(calls))
    answers: list[object] = []
    lock = threading.Lock()

    def racer(call: Callable[[Ledger], object]) -> None:
        led = open_ledger(url, clock=clock)
        try:
            barrier.wait()
            answer = call(led)
        except Exception as exc:  # collected, then asserted by the test
            answer = exc
        finally:
            led.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=racer, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_racing_closes_of_one_window_make_one_set_of_payouts(market: Market, clock: Clock) -> None:
    """Six operators close the same window at once: the window row lock puts them in a
    line; the first makes the payouts, the others find the window closed and answer it."""
    duka, mbegu = market.storefronts
    market.release(duka, 40_000)
    market.release(mbegu, 25_000)
    window_id = new_id()
    settlement.open_window(market.led, window_id=window_id, currency=KES)

    def close(led: Ledger) -> object:
        return settlement.close_window(led, window_id=window_id, provider=MPESA)

    answers = race(market.led.url, clock, [close] * 6)
    assert all(isinstance(a, Window) for a in answers), answers
    assert len(set(answers)) == 1
    payouts = market.payouts(window_id)
    assert {s: p.amount_minor for s, p in payouts.items()} == {duka: 40_000, mbegu: 25_000}
    assert market.held(duka) == 40_000 and market.held(mbegu) == 25_000
    assert market.event_types(window_id).count("window.closed") == 1
    assert all(market.event_types(p.id) == ["payout.created"] for p in payouts.values())
    assert settlement.window_report(market.led, window_id=window_id).ties
    assert market.led.check_integrity().ok


def test_racing_confirmations_settle_the_window_once(market: Market, clock: Clock) -> None:
    """Each payout confirmed twice, all four at once: each is paid once, and the window is
    settled by whichever came last, exactly once."""
    duka, mbegu = market.storefronts
    market.release(duka, 40_000)
    market.release(mbegu, 25_000)
    window_id = open_and_close(market)
    payouts = list(market.payouts(window_id).values())

    def confirmer(payout: Payout) -> Callable[[Ledger], object]:
        return lambda led: settlement.confirm_payout(
            led, payout_id=payout.id, provider_reference=f"REF-{payout.id}"
        )

    answers = race(market.led.url, clock, [confirmer(p) for p in payouts * 2])
    assert all(isinstance(a, Payout) and a.state is PayoutState.PAID for a in answers), answers
    assert settlement.get_window(market.led, window_id=window_id).state is WindowState.SETTLED
    assert market.event_types(window_id).count("window.settled") == 1
    assert market.paid_out() == 65_000
    assert settlement.window_report(market.led, window_id=window_id).ties
    assert market.led.check_integrity().ok
