"""Reversals (``reverses_id``): a correction moves back money an earlier transfer posted.

Told as a shop's refunds: a villager pays the shop, the shop gives some or all of it back
by reversing the payment. The ledger checks, in CORE_API's order, that the reversal is
plain, that its target exists and moved posted money, that it swaps the target's
accounts, and that it takes no more than the target posted less every earlier reversal.

Every test runs on a real SQLite file and on a real PostgreSQL schema; the race runs on
PostgreSQL, where eight writers truly meet inside the database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from ledger import (
    Account,
    AccountFlags,
    Ledger,
    Result,
    Status,
    Transfer,
    TransferFlags,
    open_ledger,
)
from tests.conftest import Clock, require_postgres
from tests.test_schema import Raw

KES = "KES"
UGX = "UGX"
S = Status
F = TransferFlags
LIMITED = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
PAYMENT = 1_000
REFUND_CODE = 9


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def statuses(results: list[Result]) -> list[Status]:
    assert [r.index for r in results] == list(range(len(results)))
    return [r.status for r in results]


@dataclass
class Shop:
    """A bank, a villager's wallet (never below zero), and a shop's till (no limit)."""

    led: Ledger
    bank: uuid.UUID
    wallet: uuid.UUID
    till: uuid.UUID
    payment: uuid.UUID
    """The villager's payment of PAYMENT to the shop: what the tests reverse."""

    def pay(self, amount: int, *, id: uuid.UUID | None = None, flags: F = F(0)) -> Transfer:
        return Transfer(id or new_id(), self.wallet, self.till, amount, KES, 1, flags)

    def refund(
        self,
        amount: int,
        *,
        of: uuid.UUID | None = None,
        id: uuid.UUID | None = None,
        flags: F = F(0),
    ) -> Transfer:
        """The shop gives ``amount`` back: till to wallet, naming what it reverses."""
        return Transfer(
            id=id or new_id(),
            debit_account_id=self.till,
            credit_account_id=self.wallet,
            amount=amount,
            currency=KES,
            code=REFUND_CODE,
            flags=flags,
            reverses_id=self.payment if of is None else of,
        )

    def submit(self, *transfers: Transfer) -> list[Status]:
        return statuses(self.led.create_transfers(list(transfers)))

    def balances(self) -> tuple[int, int]:
        """(wallet, till): what each holds, posted."""
        wallet, till = self.led.lookup_accounts([self.wallet, self.till])
        return (
            wallet.credits_posted - wallet.debits_posted,
            till.credits_posted - till.debits_posted,
        )

    def counters(self) -> list[tuple[int, int, int, int]]:
        return [
            (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in self.led.lookup_accounts([self.bank, self.wallet, self.till])
        ]


def open_shop(led: Ledger) -> Shop:
    bank, wallet, till = new_id(), new_id(), new_id()
    results = led.create_accounts(
        [Account(bank, KES, 1), Account(wallet, KES, 2, LIMITED), Account(till, KES, 3)]
    )
    assert statuses(results) == [S.CREATED] * 3
    shop = Shop(led, bank, wallet, till, new_id())
    assert shop.submit(
        Transfer(new_id(), bank, wallet, 5_000, KES, 1), shop.pay(PAYMENT, id=shop.payment)
    ) == [S.CREATED, S.CREATED]
    assert shop.balances() == (4_000, PAYMENT)
    return shop


@pytest.fixture
def shop(ledger: Ledger) -> Shop:
    return open_shop(ledger)


def assert_clean(led: Ledger) -> None:
    report = led.check_integrity()
    assert report.ok, report.problems


# -- the amount ------------------------------------------------------------------------


def test_partial_refunds_add_up_to_the_payment_and_one_unit_more_is_refused(shop: Shop) -> None:
    assert shop.submit(shop.refund(300)) == [S.CREATED]
    assert shop.submit(shop.refund(450)) == [S.CREATED]
    assert shop.balances() == (4_750, 250)
    before = shop.counters()
    assert shop.submit(shop.refund(251)) == [S.EXCEEDS_REVERSIBLE_AMOUNT]
    assert shop.counters() == before
    assert shop.submit(shop.refund(250)) == [S.CREATED]
    assert shop.balances() == (5_000, 0)
    assert shop.submit(shop.refund(1)) == [S.EXCEEDS_REVERSIBLE_AMOUNT]
    assert shop.balances() == (5_000, 0)
    assert_clean(shop.led)


def test_a_whole_refund_reads_back_naming_the_payment(shop: Shop) -> None:
    refund = shop.refund(PAYMENT)
    assert shop.submit(refund) == [S.CREATED]
    (stored,) = shop.led.lookup_transfers([refund.id])
    assert (stored.reverses_id, stored.amount, stored.debit_account_id) == (
        shop.payment,
        PAYMENT,
        shop.till,
    )
    assert shop.balances() == (5_000, 0)


def test_refunds_earlier_in_the_same_batch_count(shop: Shop) -> None:
    assert shop.submit(shop.refund(600), shop.refund(401), shop.refund(400)) == [
        S.CREATED,
        S.EXCEEDS_REVERSIBLE_AMOUNT,
        S.CREATED,
    ]
    assert shop.balances() == (5_000, 0)
    assert_clean(shop.led)


def test_a_payment_and_its_refunds_in_one_batch(shop: Shop) -> None:
    second, third = new_id(), new_id()
    # The refunds name a payment written by the same batch (on PostgreSQL, by the same
    # INSERT: the database's guard sees the rows written before them).
    assert shop.submit(
        shop.pay(700, id=second),
        shop.refund(300, of=second),
        shop.refund(400, of=second),
        shop.refund(1, of=second),
    ) == [S.CREATED, S.CREATED, S.CREATED, S.EXCEEDS_REVERSIBLE_AMOUNT]
    assert shop.balances() == (4_000, PAYMENT)
    # A chain that refunds all and then fails gives it back: the refund after it passes.
    assert shop.submit(
        shop.pay(700, id=third),
        shop.refund(700, of=third, flags=F.LINKED),
        shop.refund(1, of=third),
        shop.refund(700, of=third),
    ) == [S.CREATED, S.LINKED_EVENT_FAILED, S.EXCEEDS_REVERSIBLE_AMOUNT, S.CREATED]
    assert shop.balances() == (4_000, PAYMENT)
    assert_clean(shop.led)


def test_a_failed_chain_takes_nothing_of_the_payment(shop: Shop) -> None:
    failing = Transfer(new_id(), shop.bank, new_id(), 5, KES, 1)
    # The chain fails on its second transfer: its refund of 700 never happened ...
    assert shop.submit(shop.refund(700, flags=F.LINKED), failing, shop.refund(PAYMENT)) == [
        S.LINKED_EVENT_FAILED,
        S.CREDIT_ACCOUNT_NOT_FOUND,
        S.CREATED,
    ]
    # ... so all of the payment could be refunded, later in the same batch.
    assert shop.balances() == (5_000, 0)
    assert_clean(shop.led)


def test_a_failed_chain_in_an_earlier_call_takes_nothing_either(shop: Shop) -> None:
    short = Transfer(new_id(), shop.wallet, shop.bank, 1_000_000, KES, 1)
    before = shop.counters()
    assert shop.submit(shop.refund(PAYMENT, flags=F.LINKED), short) == [
        S.LINKED_EVENT_FAILED,
        S.EXCEEDS_CREDITS,
    ]
    assert shop.counters() == before
    assert shop.submit(shop.refund(PAYMENT)) == [S.CREATED]
    assert shop.balances() == (5_000, 0)


def test_a_post_of_a_hold_is_reversed_up_to_what_it_posted(shop: Shop) -> None:
    hold, post = new_id(), new_id()
    assert shop.submit(shop.pay(900, id=hold, flags=F.PENDING)) == [S.CREATED]
    posted = Transfer(post, None, None, 600, None, 1, F.POST_PENDING, pending_id=hold)
    assert shop.submit(posted) == [S.CREATED]
    assert shop.balances() == (3_400, 1_600)
    before = shop.counters()
    assert shop.submit(shop.refund(601, of=post)) == [S.EXCEEDS_REVERSIBLE_AMOUNT]
    assert shop.submit(shop.refund(600, of=hold)) == [S.REVERSAL_TARGET_NOT_POSTED]
    assert shop.counters() == before
    assert shop.submit(shop.refund(600, of=post)) == [S.CREATED]
    assert shop.balances() == (4_000, PAYMENT)
    assert_clean(shop.led)


# -- each status, and that a refused refund moves nothing ----------------------------------


def test_a_reversal_must_be_plain(shop: Shop) -> None:
    hold = new_id()
    assert shop.submit(shop.pay(100, id=hold, flags=F.PENDING)) == [S.CREATED]
    before = shop.counters()
    post = Transfer(new_id(), None, None, None, None, 1, F.POST_PENDING, pending_id=hold)
    void = replace(post, id=new_id(), flags=F.VOID_PENDING)
    assert (
        shop.submit(
            shop.refund(10, flags=F.PENDING),
            replace(post, reverses_id=shop.payment),
            replace(void, reverses_id=shop.payment),
        )
        == [S.REVERSAL_MUST_BE_PLAIN] * 3
    )
    assert shop.counters() == before
    # Without reverses_id the same post resolves the hold, which is still open.
    assert shop.submit(post) == [S.CREATED]


def test_a_reversal_of_nothing_is_not_found_and_spends_its_id(shop: Shop) -> None:
    before = shop.counters()
    refund = shop.refund(10, of=new_id())
    assert shop.submit(refund) == [S.REVERSAL_NOT_FOUND]
    assert shop.counters() == before
    # The id is spent: naming the real payment now changes nothing.
    assert shop.submit(replace(refund, reverses_id=shop.payment)) == [S.ID_ALREADY_FAILED]
    assert shop.counters() == before
    assert shop.led.lookup_transfers([refund.id]) == []


def test_only_posted_money_can_be_reversed(shop: Shop, clock: Clock) -> None:
    hold, voided, void, expiring, first_refund = (new_id() for _ in range(5))
    assert (
        shop.submit(
            shop.pay(100, id=hold, flags=F.PENDING),
            shop.pay(100, id=voided, flags=F.PENDING),
            Transfer(void, None, None, None, None, 1, F.VOID_PENDING, pending_id=voided),
            replace(shop.pay(100, id=expiring, flags=F.PENDING), timeout_s=60),
            shop.refund(100, id=first_refund),
        )
        == [S.CREATED] * 5
    )
    clock.advance(61)
    assert shop.led.expire_pending() == 1
    (expiry,) = [t for t in shop.led.account_transfers(shop.till) if t.pending_id == expiring]
    before = shop.counters()
    # A hold, a void, an expiry's void and a refund itself moved no posted money.
    assert (
        shop.submit(
            shop.refund(50, of=hold),
            shop.refund(50, of=void),
            shop.refund(50, of=expiry.id),
            Transfer(new_id(), shop.wallet, shop.till, 50, KES, 1, reverses_id=first_refund),
        )
        == [S.REVERSAL_TARGET_NOT_POSTED] * 4
    )
    assert shop.counters() == before


def test_a_reversal_must_swap_the_accounts(shop: Shop, ledger: Ledger) -> None:
    other = new_id()
    assert statuses(ledger.create_accounts([Account(other, KES, 3)])) == [S.CREATED]
    before = shop.counters()
    same_way = Transfer(new_id(), shop.wallet, shop.till, 10, KES, 1, reverses_id=shop.payment)
    from_elsewhere = replace(shop.refund(10), debit_account_id=other)
    to_elsewhere = replace(shop.refund(10), credit_account_id=other)
    assert (
        shop.submit(same_way, from_elsewhere, to_elsewhere) == [S.REVERSAL_MUST_SWAP_ACCOUNTS] * 3
    )
    assert shop.counters() == before


def test_a_reversal_obeys_the_limit_flags_like_any_transfer(ledger: Ledger) -> None:
    bank, wallet, till = new_id(), new_id(), new_id()
    ledger.create_accounts(
        [Account(bank, KES, 1), Account(wallet, KES, 2, LIMITED), Account(till, KES, 3, LIMITED)]
    )
    shop = Shop(ledger, bank, wallet, till, new_id())
    payout = Transfer(new_id(), till, bank, 800, KES, 1)
    funded = Transfer(new_id(), bank, wallet, PAYMENT, KES, 1)
    assert shop.submit(funded, shop.pay(PAYMENT, id=shop.payment), payout) == [S.CREATED] * 3
    # More than the payment: refused as such, before the till's limit is looked at.
    assert shop.submit(shop.refund(PAYMENT + 1)) == [S.EXCEEDS_REVERSIBLE_AMOUNT]
    # The shop paid out 800 of the 1,000: a refund of more than the 200 left overdraws it.
    refund = shop.refund(201)
    assert shop.submit(refund) == [S.EXCEEDS_CREDITS]
    assert shop.submit(replace(refund, amount=200)) == [S.ID_ALREADY_FAILED]
    assert shop.submit(shop.refund(200)) == [S.CREATED]
    assert shop.balances() == (200, 0)


# -- precedence ------------------------------------------------------------------------


def test_account_and_currency_statuses_come_before_the_reversal_statuses(shop: Shop) -> None:
    nowhere = new_id()
    assert shop.submit(
        replace(shop.refund(10, of=nowhere), debit_account_id=new_id()),
        replace(shop.refund(10, of=nowhere), credit_account_id=new_id()),
        replace(shop.refund(10, of=nowhere, flags=F.PENDING), currency=UGX),
    ) == [
        S.DEBIT_ACCOUNT_NOT_FOUND,
        S.CREDIT_ACCOUNT_NOT_FOUND,
        S.CURRENCY_MUST_MATCH_ACCOUNTS,
    ]


def test_the_reversal_statuses_in_their_order(shop: Shop) -> None:
    hold = new_id()
    assert shop.submit(shop.pay(100, id=hold, flags=F.PENDING)) == [S.CREATED]
    wrong_way = Transfer(new_id(), shop.wallet, shop.till, 10**6, KES, 1)
    assert shop.submit(
        # must be plain, before its target is looked up
        shop.refund(10**6, of=new_id(), flags=F.PENDING),
        # not found, before anything about a target
        replace(wrong_way, id=new_id(), reverses_id=new_id()),
        # not posted, before the accounts are compared
        replace(wrong_way, id=new_id(), reverses_id=hold),
        # accounts, before the amount
        replace(wrong_way, id=new_id(), reverses_id=shop.payment),
        # and the amount
        shop.refund(PAYMENT + 1),
    ) == [
        S.REVERSAL_MUST_BE_PLAIN,
        S.REVERSAL_NOT_FOUND,
        S.REVERSAL_TARGET_NOT_POSTED,
        S.REVERSAL_MUST_SWAP_ACCOUNTS,
        S.EXCEEDS_REVERSIBLE_AMOUNT,
    ]


def test_reversal_statuses_come_before_the_hold_statuses(shop: Shop) -> None:
    # A post naming no hold and no transfer: reversal_must_be_plain outranks
    # pending_transfer_not_found (a plain transfer, the only kind a reversal may be, never
    # names a hold, so reversal_not_found and pending_transfer_not_found never meet).
    post = Transfer(
        new_id(),
        None,
        None,
        None,
        None,
        1,
        F.POST_PENDING,
        pending_id=new_id(),
        reverses_id=new_id(),
    )
    assert shop.submit(post) == [S.REVERSAL_MUST_BE_PLAIN]
    # reversal_must_be_plain spends no id; pending_transfer_not_found does.
    assert shop.submit(replace(post, reverses_id=None)) == [S.PENDING_TRANSFER_NOT_FOUND]
    assert shop.submit(post) == [S.ID_ALREADY_FAILED]


def test_a_replayed_refund_answers_exists_and_moves_nothing_twice(shop: Shop) -> None:
    refund = shop.refund(PAYMENT)
    assert shop.submit(refund) == [S.CREATED]
    assert shop.submit(refund) == [S.EXISTS]
    assert shop.submit(refund, refund) == [S.EXISTS, S.EXISTS]
    assert shop.balances() == (5_000, 0)


def test_reverses_id_is_compared_last_on_a_replay(shop: Shop) -> None:
    second = new_id()
    refund = shop.refund(100)
    assert shop.submit(shop.pay(100, id=second), refund) == [S.CREATED, S.CREATED]
    assert shop.submit(
        replace(refund, reverses_id=second),
        replace(refund, reverses_id=None),
        replace(refund, reverses_id=second, code=1),
        replace(refund, reverses_id=second, amount=99),
        replace(shop.pay(100, id=second), reverses_id=shop.payment),
    ) == [
        S.EXISTS_WITH_DIFFERENT_REVERSES_ID,
        S.EXISTS_WITH_DIFFERENT_REVERSES_ID,
        S.EXISTS_WITH_DIFFERENT_CODE,
        S.EXISTS_WITH_DIFFERENT_AMOUNT,
        S.EXISTS_WITH_DIFFERENT_REVERSES_ID,
    ]
    assert shop.balances() == (4_000, PAYMENT)


# -- the database's own guard ----------------------------------------------------------


def test_the_database_refuses_a_raw_reversal_the_ledger_would_refuse(shop: Shop) -> None:
    raw = Raw(shop.led.url)
    try:
        insert = (
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency,"
            " code, flags, timeout_s, reverses_id, created_at_us, debit_account_debits_posted,"
            " debit_account_credits_posted, credit_account_debits_posted,"
            " credit_account_credits_posted) VALUES (?, ?, ?, ?, 'KES', 9, ?, 0, ?, 1, 0, 0, 0, 0)"
        )

        def row(
            debit: uuid.UUID, credit: uuid.UUID, amount: int, flags: int = 0
        ) -> tuple[object, ...]:
            return (
                raw.id(new_id()),
                raw.id(debit),
                raw.id(credit),
                amount,
                flags,
                raw.id(shop.payment),
            )

        assert "plain" in raw.refuses(insert, row(shop.till, shop.wallet, 1, F.PENDING.value))
        assert "swapped" in raw.refuses(insert, row(shop.wallet, shop.till, 1))
        assert "left" in raw.refuses(insert, row(shop.till, shop.wallet, PAYMENT + 1))
        unknown = (*row(shop.till, shop.wallet, 1)[:5], raw.id(new_id()))
        assert "posted money" in raw.refuses(insert, unknown)
        assert raw.execute("SELECT count(*) FROM transfers WHERE reverses_id IS NOT NULL") == [(0,)]
    finally:
        raw.close()
    assert_clean(shop.led)


def test_the_integrity_check_finds_a_reversal_written_around_the_guard(shop: Shop) -> None:
    raw = Raw(shop.led.url)
    try:
        raw.execute(
            "DROP TRIGGER transfers_reversal_checked" + ("" if raw.sqlite else " ON transfers")
        )
        # The same way as the payment, and for more than it: both rules break.
        raw.execute(
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency,"
            " code, flags, timeout_s, reverses_id, created_at_us, debit_account_debits_posted,"
            " debit_account_credits_posted, credit_account_debits_posted,"
            " credit_account_credits_posted) VALUES (?, ?, ?, ?, 'KES', 9, 0, 0, ?, 1, 0, 0, 0, 0)",
            (
                raw.id(new_id()),
                raw.id(shop.wallet),
                raw.id(shop.till),
                PAYMENT + 1,
                raw.id(shop.payment),
            ),
        )
    finally:
        raw.close()
    problems = " | ".join(shop.led.check_integrity().problems)
    assert "reversal that does not move back posted money of its target" in problems
    assert f"transfer reversed by more than it posted: {shop.payment}" in problems


def test_the_sum_of_earlier_reversals_is_an_index_lookup(shop: Shop) -> None:
    raw = Raw(shop.led.url)
    try:
        sql = "SELECT SUM(amount) FROM transfers WHERE reverses_id = ?"
        if raw.sqlite:
            plan = raw.execute("EXPLAIN QUERY PLAN " + sql, (raw.id(shop.payment),))
        else:
            raw.execute("SET enable_seqscan = off")  # a tiny table: ask what it could use
            plan = raw.execute("EXPLAIN " + sql, (raw.id(shop.payment),))
        assert "ix_transfers_reverses_id" in " ".join(str(line) for line in plan)
    finally:
        raw.close()


# -- racing refunds on PostgreSQL --------------------------------------------------------

RACERS = 8
RACE_SHARE_PCT = 60
RACE_TIMEOUT_S = 120.0


@pytest.fixture(params=["own-connections", "shared-ledger"])
def racing(request: pytest.FixtureRequest, pg_url: str) -> Iterator[list[Ledger]]:
    """Eight ledgers on one PostgreSQL schema.

    ``own-connections``: each on its own URL (an application_name apart), so each has its
    own store and connections, and the eight transactions meet inside PostgreSQL, on its
    row locks. ``shared-ledger``: one ledger shared, whose group commit may put several
    refunds into one batch."""
    require_postgres()
    keeper = open_ledger(pg_url, migrate=True)
    if request.param == "shared-ledger":
        ledgers = [keeper] * RACERS
    else:
        ledgers = [open_ledger(f"{pg_url}&application_name=racer{i}") for i in range(RACERS)]
    try:
        yield ledgers
    finally:
        for led in {id(led): led for led in [keeper, *ledgers]}.values():
            led.close()


def test_racing_refunds_of_one_payment_exactly_one_wins(racing: list[Ledger]) -> None:
    shop = open_shop(racing[0])
    refunds = [shop.refund(PAYMENT * RACE_SHARE_PCT // 100) for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    answers: dict[int, Status] = {}
    errors: list[BaseException] = []

    def racer(i: int) -> None:
        try:
            barrier.wait(RACE_TIMEOUT_S)
            (answers[i],) = statuses(racing[i].create_transfers([refunds[i]]))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RACE_TIMEOUT_S)
    assert not errors, errors
    assert sorted(answers.values()) == sorted(
        [S.CREATED] + [S.EXCEEDS_REVERSIBLE_AMOUNT] * (RACERS - 1)
    )
    winners = shop.led.lookup_transfers([r.id for r in refunds])
    assert [t.amount for t in winners] == [PAYMENT * RACE_SHARE_PCT // 100]
    assert shop.balances() == (4_000 + 600, PAYMENT - 600)
    assert_clean(shop.led)
