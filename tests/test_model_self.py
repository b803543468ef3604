"""The reference model (tests/model.py) checked by hand against CORE_API.md's stories.

These run without a database: they show that the model the stateful test trusts says
what CORE_API says, one small story at a time.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ledger import Account, AccountFlags, Status, Transfer, TransferFlags
from tests.model import ACCOUNT_PRECEDENCE, COUNTER_MAX, TRANSFER_PRECEDENCE, LedgerModel

S = Status
TF = TransferFlags
AF = AccountFlags
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
NO_FLAGS = TransferFlags(0)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Story:
    """A model with three KES accounts: a free source, a limited wallet, and a sink."""

    def __init__(self) -> None:
        self.model = LedgerModel()
        self.now = T0
        self.source, self.wallet, self.sink = new_id(), new_id(), new_id()
        self.limited_credit = new_id()
        self.ugx = new_id()
        answers = self.model.create_accounts(
            [
                Account(self.source, "KES", 1),
                Account(self.wallet, "KES", 1, AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
                Account(self.sink, "KES", 1),
                Account(self.limited_credit, "KES", 1, AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
                Account(self.ugx, "UGX", 1),
            ],
            self.now,
        )
        assert answers == [S.CREATED] * 5

    def transfers(self, *transfers: Transfer) -> list[Status]:
        return self.model.create_transfers(list(transfers), self.now)

    def counters(self, account_id: uuid.UUID) -> tuple[int, int, int, int]:
        (a,) = self.model.lookup_accounts([account_id], self.now)
        return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted

    def move(
        self,
        debit: uuid.UUID | None,
        credit: uuid.UUID | None,
        amount: int | None,
        *,
        flags: TransferFlags = NO_FLAGS,
        pending_id: uuid.UUID | None = None,
        timeout_s: int = 0,
        currency: str | None = "KES",
        code: int = 1,
        transfer_id: uuid.UUID | None = None,
    ) -> Transfer:
        return Transfer(
            id=transfer_id or new_id(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            currency=currency,
            code=code,
            flags=flags,
            pending_id=pending_id,
            timeout_s=timeout_s,
        )

    def resolve(
        self, hold: Transfer, flags: TransferFlags, amount: int | None = None, **kw: object
    ) -> Transfer:
        fields: dict[str, object] = {
            "debit": None,
            "credit": None,
            "currency": None,
            **kw,
        }
        return self.move(
            fields.pop("debit"),  # type: ignore[arg-type]
            fields.pop("credit"),  # type: ignore[arg-type]
            amount,
            flags=flags,
            pending_id=hold.id,
            **fields,  # type: ignore[arg-type]
        )


def test_precedence_lists_name_real_statuses() -> None:
    names = {s.value for s in Status}
    assert set(TRANSFER_PRECEDENCE) <= names
    assert set(ACCOUNT_PRECEDENCE) <= names


# -- accounts -------------------------------------------------------------------------


def test_account_statuses_and_their_order() -> None:
    m = LedgerModel()
    a = new_id()
    both = AF.DEBITS_MUST_NOT_EXCEED_CREDITS | AF.CREDITS_MUST_NOT_EXCEED_DEBITS
    assert m.create_accounts([Account(a, "KES", 1)], T0) == [S.CREATED]
    assert m.create_accounts([Account(a, "KES", 1)], T0) == [S.EXISTS]
    # exists_* outrank the validation statuses, and flags outrank currency and code.
    assert m.create_accounts([Account(a, "XXX", 0, both)], T0) == [S.EXISTS_WITH_DIFFERENT_FLAGS]
    assert m.create_accounts([Account(a, "XXX", 0)], T0) == [S.EXISTS_WITH_DIFFERENT_CURRENCY]
    assert m.create_accounts([Account(a, "KES", 0)], T0) == [S.EXISTS_WITH_DIFFERENT_CODE]
    assert m.create_accounts([Account(a, "KES", 1, AF.LINKED), Account(new_id(), "KES", 1)], T0)[
        0
    ] == (S.EXISTS_WITH_DIFFERENT_FLAGS)
    assert m.create_accounts([Account(new_id(), "XXX", 0, both)], T0) == [
        S.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    ]
    assert m.create_accounts([Account(new_id(), "XXX", 0)], T0) == [S.CODE_MUST_NOT_BE_ZERO]
    assert m.create_accounts([Account(new_id(), "kes", 1)], T0) == [S.CURRENCY_NOT_SUPPORTED]
    assert m.create_accounts([Account(new_id(), "HRK", 1)], T0) == [S.CURRENCY_NOT_SUPPORTED]


def test_account_chains() -> None:
    m = LedgerModel()
    a, b, c = new_id(), new_id(), new_id()
    answers = m.create_accounts(
        [Account(a, "KES", 1, AF.LINKED), Account(b, "KES", 0), Account(c, "KES", 1)], T0
    )
    assert answers == [S.LINKED_EVENT_FAILED, S.CODE_MUST_NOT_BE_ZERO, S.CREATED]
    assert [x.id for x in m.lookup_accounts([a, b, c], T0)] == [c]
    answers = m.create_accounts([Account(a, "KES", 1), Account(b, "KES", 1, AF.LINKED)], T0)
    assert answers == [S.CREATED, S.LINKED_EVENT_CHAIN_OPEN]
    assert [x.id for x in m.lookup_accounts([a, b], T0)] == [a]


# -- plain transfers, limits, spent ids -----------------------------------------------


def test_plain_transfer_moves_posted_counters_and_records_history() -> None:
    st = Story()
    t = st.move(st.source, st.wallet, 100)
    assert st.transfers(t) == [S.CREATED]
    assert st.counters(st.source) == (0, 100, 0, 0)
    assert st.counters(st.wallet) == (0, 0, 0, 100)
    assert st.model.balance_at(st.wallet, T0) == (0, 100)
    assert st.model.balance_at(st.wallet, T0 - timedelta(microseconds=1)) == (0, 0)
    assert st.model.balance_at(new_id(), T0) is None
    assert st.model.account_transfers(st.wallet) == [t.id]
    (back,) = st.model.lookup_transfers([t.id, new_id()])
    assert (back.amount, back.currency, back.created_at) == (100, "KES", T0)


def test_limit_counts_pending_and_spends_the_id() -> None:
    st = Story()
    assert st.transfers(st.move(st.source, st.wallet, 100)) == [S.CREATED]
    hold = st.move(st.wallet, st.sink, 60, flags=TF.PENDING)
    assert st.transfers(hold) == [S.CREATED]
    over = st.move(st.wallet, st.sink, 41)
    assert st.transfers(over) == [S.EXCEEDS_CREDITS]
    assert st.transfers(over) == [S.ID_ALREADY_FAILED]
    assert st.transfers(st.move(st.wallet, st.sink, 40)) == [S.CREATED]
    # Mirror flag on the credit side.
    bad = st.move(st.source, st.limited_credit, 1)
    assert st.transfers(bad) == [S.EXCEEDS_DEBITS]
    assert st.transfers(bad) == [S.ID_ALREADY_FAILED]


def test_spending_statuses_and_not_spending_ones() -> None:
    st = Story()
    unknown = st.move(new_id(), st.sink, 1)
    assert st.transfers(unknown) == [S.DEBIT_ACCOUNT_NOT_FOUND]
    assert st.transfers(replace(unknown, flags=TF(0))) == [S.ID_ALREADY_FAILED]
    unknown2 = st.move(st.source, new_id(), 1)
    assert st.transfers(unknown2) == [S.CREDIT_ACCOUNT_NOT_FOUND]
    assert st.transfers(unknown2) == [S.ID_ALREADY_FAILED]
    no_hold = st.move(None, None, None, flags=TF.POST_PENDING, pending_id=new_id())
    assert st.transfers(no_hold) == [S.PENDING_TRANSFER_NOT_FOUND]
    assert st.transfers(no_hold) == [S.ID_ALREADY_FAILED]
    # A validation failure does not spend: fixed, the same id goes through.
    tid = new_id()
    assert st.transfers(st.move(st.source, st.sink, 0, transfer_id=tid)) == [
        S.AMOUNT_MUST_NOT_BE_ZERO
    ]
    assert st.transfers(st.move(st.source, st.sink, 5, transfer_id=tid)) == [S.CREATED]


def test_transfer_validation_order() -> None:
    st = Story()
    both = TF.PENDING | TF.POST_PENDING
    t = st.move(st.source, st.source, 0, flags=both, code=0, pending_id=new_id(), timeout_s=5)
    assert st.transfers(t) == [S.FLAGS_ARE_MUTUALLY_EXCLUSIVE]
    t = st.move(st.source, st.source, 0, code=0, pending_id=new_id(), timeout_s=5)
    assert st.transfers(t) == [S.ACCOUNTS_MUST_BE_DIFFERENT]
    t = st.move(st.source, st.sink, 0, code=0, pending_id=new_id(), timeout_s=5)
    assert st.transfers(t) == [S.PENDING_ID_MUST_BE_ZERO]
    t = st.move(None, None, 0, flags=TF.VOID_PENDING, code=0, timeout_s=5)
    assert st.transfers(t) == [S.PENDING_ID_MUST_NOT_BE_ZERO]
    tid = new_id()
    t = st.move(None, None, 0, flags=TF.POST_PENDING, pending_id=tid, transfer_id=tid, timeout_s=5)
    assert st.transfers(t) == [S.PENDING_ID_MUST_BE_DIFFERENT]
    t = st.move(None, None, 0, flags=TF.POST_PENDING, pending_id=new_id(), timeout_s=5, code=0)
    assert st.transfers(t) == [S.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER]
    t = st.move(st.source, st.sink, 1, timeout_s=5)
    assert st.transfers(t) == [S.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER]
    t = st.move(new_id(), new_id(), 0, code=0)
    assert st.transfers(t) == [S.AMOUNT_MUST_NOT_BE_ZERO]
    t = st.move(new_id(), new_id(), 1, code=0)
    assert st.transfers(t) == [S.CODE_MUST_NOT_BE_ZERO]
    t = st.move(new_id(), new_id(), 1, currency="XXX")
    assert st.transfers(t) == [S.DEBIT_ACCOUNT_NOT_FOUND]
    t = st.move(st.source, st.ugx, 1, currency="XXX")
    assert st.transfers(t) == [S.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY]
    t = st.move(st.source, st.sink, 1, currency="UGX")
    assert st.transfers(t) == [S.CURRENCY_MUST_MATCH_ACCOUNTS]
    t = st.move(st.source, st.sink, 1, currency="XXX")
    assert st.transfers(t) == [S.CURRENCY_MUST_MATCH_ACCOUNTS]


def test_malformed_raises_and_changes_nothing() -> None:
    st = Story()
    good = st.move(st.source, st.sink, 1)
    with pytest.raises(ValueError):
        st.transfers(good, st.move(st.source, st.sink, -1))
    with pytest.raises(ValueError):
        st.transfers(good, st.move(st.source, st.sink, 2**63))
    with pytest.raises(ValueError):
        st.transfers(good, st.move(None, st.sink, 1))
    with pytest.raises(ValueError):
        st.transfers(good, st.move(st.source, st.sink, 1, currency=None))
    assert st.model.lookup_transfers([good.id]) == []
    assert st.transfers(good) == [S.CREATED]


# -- overflow -------------------------------------------------------------------------


def test_overflow_on_both_sides_counts_pending() -> None:
    st = Story()
    assert st.transfers(st.move(st.source, st.sink, COUNTER_MAX - 10)) == [S.CREATED]
    assert st.transfers(st.move(st.source, st.ugx, 1, currency="KES")) == [
        S.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY
    ]
    assert st.transfers(st.move(st.source, st.wallet, 11)) == [S.OVERFLOWS_DEBITS]
    assert st.transfers(st.move(st.wallet, st.sink, 11)) == [S.OVERFLOWS_CREDITS]
    assert st.transfers(st.move(st.source, st.wallet, 5, flags=TF.PENDING)) == [S.CREATED]
    assert st.transfers(st.move(st.source, st.wallet, 6)) == [S.OVERFLOWS_DEBITS]
    assert st.transfers(st.move(st.source, st.wallet, 5)) == [S.CREATED]
    assert st.counters(st.source) == (5, COUNTER_MAX - 5, 0, 0)
    # Overflow outranks the limit check, and does not spend the id.
    t = st.move(st.wallet, st.sink, COUNTER_MAX)
    assert st.transfers(t) == [S.OVERFLOWS_CREDITS]
    assert st.transfers(t) == [S.OVERFLOWS_CREDITS]


# -- holds ----------------------------------------------------------------------------


def test_partial_post_releases_the_rest_and_reads_back_the_hold() -> None:
    st = Story()
    hold = st.move(st.source, st.sink, 100, flags=TF.PENDING, code=7)
    assert st.transfers(hold) == [S.CREATED]
    assert st.counters(st.source) == (100, 0, 0, 0)
    post = st.resolve(hold, TF.POST_PENDING, 30, code=2)
    assert st.transfers(post) == [S.CREATED]
    assert st.counters(st.source) == (0, 30, 0, 0)
    assert st.counters(st.sink) == (0, 0, 0, 30)
    (back,) = st.model.lookup_transfers([post.id])
    assert (back.debit_account_id, back.credit_account_id, back.amount, back.currency) == (
        st.source,
        st.sink,
        30,
        "KES",
    )
    assert back.code == 2
    assert st.transfers(st.resolve(hold, TF.VOID_PENDING)) == [S.PENDING_TRANSFER_ALREADY_POSTED]
    assert st.transfers(st.resolve(hold, TF.POST_PENDING)) == [S.PENDING_TRANSFER_ALREADY_POSTED]
    assert st.model.account_transfers(st.sink) == [hold.id, post.id]


def test_post_and_void_checks_in_order() -> None:
    st = Story()
    hold = st.move(st.source, st.sink, 100, flags=TF.PENDING)
    plain = st.move(st.source, st.sink, 1)
    assert st.transfers(hold, plain) == [S.CREATED, S.CREATED]
    post = TF.POST_PENDING
    assert st.transfers(st.resolve(plain, post)) == [S.PENDING_TRANSFER_NOT_PENDING]
    # Accounts given must be the hold's; unknown accounts are not looked up.
    assert st.transfers(st.resolve(hold, post, debit=new_id(), credit=new_id())) == [
        S.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    ]
    assert st.transfers(st.resolve(hold, post, debit=st.source, credit=st.wallet)) == [
        S.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
    ]
    assert st.transfers(st.resolve(hold, post, currency="UGX", amount=101)) == [
        S.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY
    ]
    assert st.transfers(st.resolve(hold, post, amount=101)) == [S.EXCEEDS_PENDING_TRANSFER_AMOUNT]
    assert st.transfers(st.resolve(hold, TF.VOID_PENDING, amount=101)) == [
        S.EXCEEDS_PENDING_TRANSFER_AMOUNT
    ]
    void = st.resolve(hold, TF.VOID_PENDING, debit=st.source, credit=st.sink, currency="KES")
    assert st.transfers(void) == [S.CREATED]
    assert st.counters(st.source) == (0, 1, 0, 0)
    (back,) = st.model.lookup_transfers([void.id])
    assert back.amount == 100
    assert st.transfers(st.resolve(hold, post)) == [S.PENDING_TRANSFER_ALREADY_VOIDED]


def test_expiry_on_the_clock_then_by_the_sweeper() -> None:
    st = Story()
    assert st.transfers(st.move(st.source, st.wallet, 100)) == [S.CREATED]
    hold = st.move(st.wallet, st.sink, 100, flags=TF.PENDING, timeout_s=60)
    assert st.transfers(hold) == [S.CREATED]
    assert st.transfers(st.move(st.wallet, st.sink, 1)) == [S.EXCEEDS_CREDITS]
    st.now = T0 + timedelta(seconds=59)
    assert st.counters(st.wallet) == (100, 0, 0, 100)
    assert st.model.expire_pending(st.now) == 0
    st.now = T0 + timedelta(seconds=60)
    # Expired on the clock: no longer counted, and not postable, before any sweep.
    assert st.counters(st.wallet) == (0, 0, 0, 100)
    assert st.transfers(st.resolve(hold, TF.POST_PENDING)) == [S.PENDING_TRANSFER_EXPIRED]
    assert st.transfers(st.move(st.wallet, st.sink, 1)) == [S.CREATED]
    assert st.model.expire_pending(st.now) == 1
    assert st.model.expire_pending(st.now) == 0
    assert st.transfers(st.resolve(hold, TF.VOID_PENDING)) == [S.PENDING_TRANSFER_EXPIRED]
    assert st.model.expiry_horizon() is None


def test_expire_pending_at_an_earlier_moment() -> None:
    st = Story()
    short = st.move(st.source, st.sink, 1, flags=TF.PENDING, timeout_s=10)
    long = st.move(st.source, st.sink, 1, flags=TF.PENDING, timeout_s=100)
    forever = st.move(st.source, st.sink, 1, flags=TF.PENDING)
    assert st.transfers(short, long, forever) == [S.CREATED] * 3
    assert st.model.expiry_horizon() == T0 + timedelta(seconds=100)
    assert st.model.expire_pending(T0 + timedelta(seconds=50)) == 1
    assert st.model.expire_pending(T0 + timedelta(seconds=500)) == 1
    assert st.counters(st.source) == (1, 0, 0, 0)


# -- idempotency ----------------------------------------------------------------------


def test_exists_fields_in_order() -> None:
    st = Story()
    t = st.move(st.source, st.sink, 10, flags=TF.PENDING, timeout_s=5, code=3)
    assert st.transfers(t) == [S.CREATED]

    def again(**changes: object) -> Status:
        fields = {
            "id": t.id,
            "debit_account_id": t.debit_account_id,
            "credit_account_id": t.credit_account_id,
            "amount": t.amount,
            "currency": t.currency,
            "code": t.code,
            "flags": t.flags,
            "pending_id": t.pending_id,
            "timeout_s": t.timeout_s,
            **changes,
        }
        (answer,) = st.transfers(Transfer(**fields))  # type: ignore[arg-type]
        return answer

    assert again() == S.EXISTS
    assert again(currency="UGX") == S.EXISTS  # currency is not compared
    assert again(flags=TF(0), code=0) == S.EXISTS_WITH_DIFFERENT_FLAGS
    linked_too = replace(t, flags=TF.PENDING | TF.LINKED)
    assert st.transfers(linked_too, st.move(st.source, st.sink, 1))[0] == (
        S.EXISTS_WITH_DIFFERENT_FLAGS
    )
    assert again(pending_id=new_id(), timeout_s=0) == S.EXISTS_WITH_DIFFERENT_PENDING_ID
    assert again(timeout_s=6, amount=0) == S.EXISTS_WITH_DIFFERENT_TIMEOUT
    assert again(debit_account_id=st.wallet, code=9) == S.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    assert again(credit_account_id=st.wallet, amount=1) == (
        S.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    )
    assert again(amount=11, code=0) == S.EXISTS_WITH_DIFFERENT_AMOUNT
    assert again(code=4) == S.EXISTS_WITH_DIFFERENT_CODE


def test_post_replay_compares_none_with_the_holds_values() -> None:
    st = Story()
    hold = st.move(st.source, st.sink, 100, flags=TF.PENDING)
    full = st.move(st.source, st.sink, 100, flags=TF.PENDING)
    assert st.transfers(hold, full) == [S.CREATED, S.CREATED]
    partial = st.resolve(hold, TF.POST_PENDING, 30)
    assert st.transfers(partial) == [S.CREATED]
    same = st.resolve(hold, TF.POST_PENDING, 30, debit=st.source, transfer_id=partial.id)
    assert st.transfers(same) == [S.EXISTS]
    # None means the hold's amount (100), which is not the 30 posted.
    none_amount = st.resolve(hold, TF.POST_PENDING, None, transfer_id=partial.id)
    assert st.transfers(none_amount) == [S.EXISTS_WITH_DIFFERENT_AMOUNT]
    post_all = st.resolve(full, TF.POST_PENDING, None)
    assert st.transfers(post_all) == [S.CREATED]
    given = st.resolve(full, TF.POST_PENDING, 100, credit=st.sink, transfer_id=post_all.id)
    assert st.transfers(given) == [S.EXISTS]
    other_credit = st.resolve(full, TF.POST_PENDING, 100, credit=st.wallet, transfer_id=post_all.id)
    assert st.transfers(other_credit) == [S.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID]


def test_void_replay_compares_the_amount_asked() -> None:
    """A void releases (and reads back) the whole hold whatever amount it gave; a replay
    is compared with the amount it gave (None: the hold's), so a replay answers exists."""
    st = Story()
    hold = st.move(st.source, st.sink, 100, flags=TF.PENDING)
    other = st.move(st.source, st.sink, 100, flags=TF.PENDING)
    assert st.transfers(hold, other) == [S.CREATED, S.CREATED]
    void = st.resolve(hold, TF.VOID_PENDING, 15)
    assert st.transfers(void) == [S.CREATED]
    assert [t.amount for t in st.model.lookup_transfers([void.id])] == [100]
    assert st.counters(st.source) == (100, 0, 0, 0)
    assert st.transfers(void) == [S.EXISTS]
    for amount in (16, None, 100):
        assert st.transfers(replace(void, amount=amount)) == [S.EXISTS_WITH_DIFFERENT_AMOUNT]
    void_all = st.resolve(other, TF.VOID_PENDING, None)
    assert st.transfers(void_all) == [S.CREATED]
    assert st.transfers(replace(void_all, amount=100)) == [S.EXISTS]
    assert st.transfers(replace(void_all, amount=15)) == [S.EXISTS_WITH_DIFFERENT_AMOUNT]


def test_same_id_twice_in_one_call() -> None:
    st = Story()
    t = st.move(st.source, st.sink, 10)
    assert st.transfers(t, t) == [S.CREATED, S.EXISTS]
    bad = st.move(st.wallet, st.sink, 10)
    assert st.transfers(bad, bad) == [S.EXCEEDS_CREDITS, S.ID_ALREADY_FAILED]
    # A hold created earlier in the call can be posted later in it.
    hold = st.move(st.source, st.sink, 10, flags=TF.PENDING)
    assert st.transfers(hold, st.resolve(hold, TF.POST_PENDING)) == [S.CREATED, S.CREATED]


# -- linked chains --------------------------------------------------------------------


def test_chain_fails_as_a_whole_and_spends_only_the_failing_id() -> None:
    st = Story()
    first = st.move(st.source, st.sink, 10, flags=TF.LINKED)
    second = st.move(st.wallet, st.sink, 10, flags=TF.LINKED)
    third = st.move(st.source, st.sink, 10)
    after = st.move(st.source, st.sink, 1)
    answers = st.transfers(first, second, third, after)
    assert answers == [S.LINKED_EVENT_FAILED, S.EXCEEDS_CREDITS, S.LINKED_EVENT_FAILED, S.CREATED]
    assert st.counters(st.source) == (0, 1, 0, 0)
    assert st.transfers(first, third) == [S.CREATED, S.CREATED]
    assert st.transfers(replace(second, flags=TF(0))) == [S.ID_ALREADY_FAILED]


def test_chain_rolls_back_holds_and_posts() -> None:
    st = Story()
    hold = st.move(st.source, st.sink, 10, flags=TF.PENDING)
    assert st.transfers(hold) == [S.CREATED]
    post = st.resolve(hold, TF.POST_PENDING | TF.LINKED)
    bad = st.move(st.source, st.sink, 0)
    assert st.transfers(post, bad) == [S.LINKED_EVENT_FAILED, S.AMOUNT_MUST_NOT_BE_ZERO]
    assert st.counters(st.source) == (10, 0, 0, 0)
    assert st.transfers(st.resolve(hold, TF.VOID_PENDING)) == [S.CREATED]


def test_open_chain_answers_chain_open_and_applies_nothing() -> None:
    st = Story()
    ok = st.move(st.source, st.sink, 1)
    linked = st.move(st.source, st.sink, 1, flags=TF.LINKED)
    bad = st.move(new_id(), st.sink, 1, flags=TF.LINKED)
    answers = st.transfers(ok, linked, bad)
    assert answers == [S.CREATED, S.LINKED_EVENT_CHAIN_OPEN, S.LINKED_EVENT_CHAIN_OPEN]
    assert st.model.lookup_transfers([linked.id, bad.id]) == []
    # Nothing was spent either.
    assert st.transfers(replace(bad, flags=TF(0))) == [S.DEBIT_ACCOUNT_NOT_FOUND]


def test_exists_in_a_chain() -> None:
    st = Story()
    a = st.move(st.source, st.sink, 5, flags=TF.LINKED)
    b = st.move(st.source, st.sink, 6)
    assert st.transfers(a, b) == [S.CREATED, S.CREATED]
    # A full replay: exists, exists.
    assert st.transfers(a, b) == [S.EXISTS, S.EXISTS]
    # The first exists keeps its status; a later failure only fails the chain.
    over = st.move(st.wallet, st.sink, 1)
    assert st.transfers(a, over) == [S.EXISTS, S.LINKED_EVENT_FAILED]
    assert st.transfers(over) == [S.EXCEEDS_CREDITS]  # not spent by the chain
    # New then existing: the new one is not applied.
    new = st.move(st.source, st.sink, 7, flags=TF.LINKED)
    assert st.transfers(new, b) == [S.LINKED_EVENT_FAILED, S.EXISTS]
    assert st.model.lookup_transfers([new.id]) == []
    # An error before any exists keeps its status (and spends its id).
    unknown = st.move(new_id(), st.sink, 1, flags=TF.LINKED)
    assert st.transfers(unknown, b) == [S.DEBIT_ACCOUNT_NOT_FOUND, S.LINKED_EVENT_FAILED]
    assert st.transfers(replace(unknown, flags=TF(0))) == [S.ID_ALREADY_FAILED]
    # An exists_with_different_* is an error like any other.
    changed = st.move(st.source, st.sink, 99, flags=TF.LINKED, transfer_id=a.id)
    assert st.transfers(changed, b) == [S.EXISTS_WITH_DIFFERENT_AMOUNT, S.LINKED_EVENT_FAILED]
