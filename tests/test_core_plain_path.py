"""Plain transfers decided inside PostgreSQL (migration 0033) answer as the engine does.

``PostgresStore`` sends a batch of up to ``PLAIN_BATCH_MAX`` plain transfers to
``vledger_create_plain_transfers`` (one round trip) and every other batch through the
Python engine. Here the two paths run side by side on two PostgreSQL schemas on one
clock: the same batches must give the same answers, and leave the same rows in
``accounts``, ``transfers`` (every column, the balances after each transfer included)
and ``transfer_failures``. Also: which batches take which path, a due hold handing the
batch back to the engine (which voids it first), and racing resubmissions of one id.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from ledger.core import postgres_store
from ledger.core.engine import expiry_void_id
from ledger.core.store import to_us
from ledger.core.values import COUNTER_MAX
from tests.conftest import (
    Clock,
    drop_pg_schema,
    new_pg_schema_url,
    pg_conninfo,
    require_postgres,
)

AF = AccountFlags
KES, UGX = "KES", "UGX"

ENGINE_ONLY = 0
"""``PLAIN_BATCH_MAX`` that sends every batch through the Python engine."""


class Pair:
    """Two migrated schemas on one clock: ``fast`` decides plain batches in the database,
    ``engine`` always in Python."""

    def __init__(self, fast_url: str, engine_url: str) -> None:
        self.clock = Clock()
        self.fast_url, self.engine_url = fast_url, engine_url
        self.fast = open_ledger(fast_url, migrate=True, clock=self.clock)
        self.engine = open_ledger(engine_url, migrate=True, clock=self.clock)

    def both(self, call: Callable[[Ledger], list[Result]]) -> tuple[list[Result], list[Result]]:
        fast = call(self.fast)
        saved = postgres_store.PLAIN_BATCH_MAX
        postgres_store.PLAIN_BATCH_MAX = ENGINE_ONLY
        try:
            engine = call(self.engine)
        finally:
            postgres_store.PLAIN_BATCH_MAX = saved
        return fast, engine

    def transfers(self, batch: Sequence[Transfer]) -> tuple[list[Result], list[Result]]:
        return self.both(lambda led: led.create_transfers(batch))

    def accounts(self, batch: Sequence[Account]) -> tuple[list[Result], list[Result]]:
        return self.both(lambda led: led.create_accounts(batch))

    def close(self) -> None:
        self.fast.close()
        self.engine.close()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    require_postgres()
    (fast_url, fast_schema), (engine_url, engine_schema) = new_pg_schema_url(), new_pg_schema_url()
    found = Pair(fast_url, engine_url)
    try:
        yield found
    finally:
        found.close()
        drop_pg_schema(fast_schema)
        drop_pg_schema(engine_schema)


def rows(url: str, sql: str, ids: Sequence[uuid.UUID]) -> list[tuple[Any, ...]]:
    with psycopg.connect(pg_conninfo(url)) as conn:
        return conn.execute(sql, (list(ids),)).fetchall()


TRANSFER_ROWS = (
    "SELECT id, debit_account_id, credit_account_id, amount, amount_requested, currency, code,"
    " flags, pending_id, timeout_s, expires_at_us, reverses_id, metadata, created_at_us,"
    " debit_account_debits_posted, debit_account_credits_posted,"
    " credit_account_debits_posted, credit_account_credits_posted"
    " FROM transfers WHERE id = ANY(%s) ORDER BY seq"
)
FAILURE_ROWS = (
    "SELECT id, status, created_at_us FROM transfer_failures WHERE id = ANY(%s) ORDER BY id"
)
ACCOUNT_ROWS = (
    "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted, timestamp_us"
    " FROM accounts WHERE id = ANY(%s) ORDER BY id"
)


def assert_same_rows(pair: Pair, accounts: Sequence[uuid.UUID], ids: Sequence[uuid.UUID]) -> None:
    for sql, named in ((TRANSFER_ROWS, ids), (FAILURE_ROWS, ids), (ACCOUNT_ROWS, accounts)):
        assert rows(pair.fast_url, sql, named) == rows(pair.engine_url, sql, named), sql


# -- the two paths side by side --------------------------------------------------------

ACCOUNT_KINDS = (
    (AF.DEBITS_MUST_NOT_EXCEED_CREDITS, KES),
    (AF.CREDITS_MUST_NOT_EXCEED_DEBITS, KES),
    (AF(0), KES),
    (AF(0), KES),
    (AF(0), UGX),
)
"""The accounts of one example: each limit flag, two without limits, another currency."""
UNKNOWN = len(ACCOUNT_KINDS)
"""An account index that names no account."""

AMOUNTS = st.one_of(
    st.integers(0, 50),
    st.sampled_from([0, 1, 100, COUNTER_MAX // 2, COUNTER_MAX - 10, COUNTER_MAX]),
)
ROOM, ROOM_PLUS_ONE = "room", "room+1"
"""Amounts drawn as markers: exactly what the limited side has left, or one more."""


@st.composite
def plain_transfer(draw: st.DrawFn) -> dict[str, Any]:
    """A plain transfer by account and id index (the id pool lets ids repeat), or a
    replay of an earlier transfer of the example with some fields altered."""
    if draw(st.integers(0, 3)) == 0:
        return {
            "replay": draw(st.integers(0, 1000)),
            "alter": draw(st.sets(st.sampled_from(["amount", "code", "debit", "timeout_s"]))),
        }
    return {
        "id": draw(st.integers(0, 11)),
        "debit": draw(st.integers(0, UNKNOWN)),
        "credit": draw(st.integers(0, UNKNOWN)),
        "amount": draw(st.one_of(AMOUNTS, st.sampled_from([ROOM, ROOM_PLUS_ONE]))),
        "currency": draw(st.sampled_from([KES, KES, KES, UGX, "kes", "EURO", "K\u00e9S"])),
        "code": draw(st.sampled_from([1, 1, 2, 0])),
        "timeout_s": draw(st.sampled_from([0, 0, 0, 0, 30])),
        "metadata": draw(st.sampled_from([None, None, {}, {"note": 'a "quoted" \\ \u00fc'}])),
    }


BATCHES = st.lists(st.lists(plain_transfer(), min_size=1, max_size=6), min_size=1, max_size=5)


def room(led: Ledger, debit: uuid.UUID, credit: uuid.UUID) -> int:
    """What a transfer from ``debit`` to ``credit`` may move before a limit refuses it."""
    found = {a.id: a for a in led.lookup_accounts([debit, credit])}
    if (dr := found.get(debit)) and dr.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS:
        return dr.credits_posted - dr.debits_posted - dr.debits_pending
    if (cr := found.get(credit)) and cr.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
        return cr.debits_posted - cr.credits_posted - cr.credits_pending
    return 1


class Example:
    """Turns drawn transfers into :class:`Transfer` values for one example's accounts."""

    def __init__(self, led: Ledger) -> None:
        self.led = led
        self.accounts = [uuid.uuid4() for _ in range(UNKNOWN + 1)]
        self.ids = [uuid.uuid4() for _ in range(12)]
        self.built: list[Transfer] = []

    def transfer(self, drawn: dict[str, Any]) -> Transfer:
        if "replay" in drawn and self.built:
            return self.replay(self.built[drawn["replay"] % len(self.built)], drawn["alter"])
        if "replay" in drawn:
            drawn = {"id": 0, "debit": 2, "credit": 3, "amount": 1, "currency": KES, "code": 1}
        debit, credit = self.accounts[drawn["debit"]], self.accounts[drawn["credit"]]
        amount = drawn["amount"]
        if amount in (ROOM, ROOM_PLUS_ONE):
            amount = max(room(self.led, debit, credit), 1) + (amount == ROOM_PLUS_ONE)
        built = Transfer(
            id=self.ids[drawn["id"]],
            debit_account_id=debit,
            credit_account_id=credit,
            amount=min(amount, COUNTER_MAX),
            currency=drawn["currency"],
            code=drawn["code"],
            timeout_s=drawn.get("timeout_s", 0),
            metadata=drawn.get("metadata"),
        )
        self.built.append(built)
        return built

    def replay(self, earlier: Transfer, alter: set[str]) -> Transfer:
        changes: dict[str, Any] = {}
        if "amount" in alter:
            changes["amount"] = (earlier.amount or 0) + 1 if earlier.amount != COUNTER_MAX else 1
        if "code" in alter:
            changes["code"] = earlier.code % 3 + 1
        if "debit" in alter:
            changes["debit_account_id"] = self.accounts[UNKNOWN]
        if "timeout_s" in alter:
            changes["timeout_s"] = 30
        return dataclasses.replace(earlier, **changes)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=BATCHES, funding=st.lists(AMOUNTS, min_size=len(ACCOUNT_KINDS)))
def test_plain_batches_answer_and_write_as_the_engine_does(
    pair: Pair, batches: list[list[dict[str, Any]]], funding: list[int]
) -> None:
    example = Example(pair.engine)
    accounts = example.accounts
    fast, engine = pair.both(
        lambda led: led.create_accounts(
            [Account(accounts[n], cur, 1, flags) for n, (flags, cur) in enumerate(ACCOUNT_KINDS)]
        )
    )
    assert fast == engine
    # Funding from the unlimited KES account gives the limited ones room (or overflows).
    for n, amount in enumerate(funding[:UNKNOWN]):
        if ACCOUNT_KINDS[n][1] == KES and n != 2:
            fund = Transfer(uuid.uuid4(), accounts[2], accounts[n], max(amount, 1), KES, 1)
            fast, engine = pair.transfers([fund])
            assert fast == engine
    for batch in batches:
        pair.clock.advance(0.001)
        transfers = [example.transfer(drawn) for drawn in batch]
        assert postgres_store.plain_batch(transfers) is not None
        fast, engine = pair.transfers(transfers)
        assert fast == engine
    assert_same_rows(pair, accounts, example.ids)


def test_limits_at_their_edge_and_replays_differing_in_several_fields(pair: Pair) -> None:
    """Exactly the room is created and one more refused, on either limit; a replay that
    differs in amount and code answers the first of them in CORE_API's order."""
    low, high, free = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pair.both(
        lambda led: led.create_accounts(
            [
                Account(low, KES, 1, AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
                Account(high, KES, 1, AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
                Account(free, KES, 1),
            ]
        )
    )
    first = Transfer(uuid.uuid4(), free, low, 70, KES, 1)
    batches = [
        [first, Transfer(uuid.uuid4(), high, free, 40, KES, 1)],
        [
            Transfer(uuid.uuid4(), low, free, 71, KES, 1),
            Transfer(uuid.uuid4(), free, high, 41, KES, 1),
        ],
        [
            Transfer(uuid.uuid4(), low, free, 70, KES, 1),
            Transfer(uuid.uuid4(), free, high, 40, KES, 1),
        ],
        [dataclasses.replace(first, amount=71, code=2), dataclasses.replace(first, code=2)],
    ]
    answers = []
    for batch in batches:
        fast, engine = pair.transfers(batch)
        assert fast == engine
        answers.append([r.status for r in fast])
    assert answers == [
        [Status.CREATED, Status.CREATED],
        [Status.EXCEEDS_CREDITS, Status.EXCEEDS_DEBITS],
        [Status.CREATED, Status.CREATED],
        [Status.EXISTS_WITH_DIFFERENT_AMOUNT, Status.EXISTS_WITH_DIFFERENT_CODE],
    ]
    assert_same_rows(pair, [low, high, free], [t.id for b in batches for t in b])


def test_replays_of_other_kinds_answer_as_the_engine_does(pair: Pair) -> None:
    """An id that exists as a hold, a post or a reversal, resubmitted as a plain transfer."""
    a, b = uuid.uuid4(), uuid.uuid4()
    hold, post, original, reversal = (uuid.uuid4() for _ in range(4))
    setup = [
        [Account(a, KES, 1), Account(b, KES, 1)],
    ]
    for accounts in setup:
        fast, engine = pair.accounts(accounts)
        assert fast == engine
    history = [
        Transfer(hold, a, b, 50, KES, 1, flags=TransferFlags.PENDING),
        Transfer(
            post, None, None, None, None, 1, flags=TransferFlags.POST_PENDING, pending_id=hold
        ),
        Transfer(original, a, b, 40, KES, 1),
        Transfer(reversal, b, a, 10, KES, 1, reverses_id=original),
    ]
    fast, engine = pair.both(lambda led: led.create_transfers(history))
    assert fast == engine == [Result(i, Status.CREATED) for i in range(4)]
    replays = [
        Transfer(hold, a, b, 50, KES, 1),
        Transfer(post, a, b, 50, KES, 1),
        Transfer(reversal, b, a, 10, KES, 1),
        Transfer(original, a, b, 40, KES, 1),
    ]
    assert postgres_store.plain_batch(replays) is not None
    fast, engine = pair.both(lambda led: led.create_transfers(replays))
    assert [r.status for r in fast] == [
        Status.EXISTS_WITH_DIFFERENT_FLAGS,
        Status.EXISTS_WITH_DIFFERENT_FLAGS,
        Status.EXISTS_WITH_DIFFERENT_REVERSES_ID,
        Status.EXISTS,
    ]
    assert fast == engine
    assert_same_rows(pair, [a, b], [hold, post, original, reversal])


# -- which path ------------------------------------------------------------------------


def plain(**changes: Any) -> Transfer:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "debit_account_id": uuid.uuid4(),
        "credit_account_id": uuid.uuid4(),
        "amount": 5,
        "currency": KES,
        "code": 1,
    }
    fields.update(changes)
    return Transfer(**fields)


@pytest.mark.parametrize(
    ("batch", "decided_in_database"),
    [
        ([plain()], True),
        ([plain(metadata={"k": "\u00fc"}), plain(timeout_s=5), plain(amount=0)], True),
        ([plain()] * postgres_store.PLAIN_BATCH_MAX, True),
        ([plain()] * (postgres_store.PLAIN_BATCH_MAX + 1), False),
        ([], False),
        ([plain(), plain(flags=TransferFlags.LINKED)], False),
        ([plain(flags=TransferFlags.PENDING, timeout_s=5)], False),
        ([plain(pending_id=uuid.uuid4())], False),
        ([plain(reverses_id=uuid.uuid4())], False),
        ([plain(currency="K\x00S")], False),
        ([plain(metadata={"k": "\ud800"})], False),
    ],
)
def test_which_batches_are_decided_in_the_database(
    batch: list[Transfer], decided_in_database: bool
) -> None:
    assert (postgres_store.plain_batch(batch) is not None) is decided_in_database


def test_a_plain_batch_takes_one_statement_and_others_the_engine(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine_batches: list[int] = []
    run_engine = postgres_store.PostgresStore._apply_with_engine

    def counted(self: postgres_store.PostgresStore, *args: Any) -> Any:
        engine_batches.append(len(args[0]))
        return run_engine(self, *args)

    monkeypatch.setattr(postgres_store.PostgresStore, "_apply_with_engine", counted)
    a, b = uuid.uuid4(), uuid.uuid4()
    pair.fast.create_accounts([Account(a, KES, 1), Account(b, KES, 1)])
    assert pair.fast.create_transfers([plain(debit_account_id=a, credit_account_id=b)]) == [
        Result(0, Status.CREATED)
    ]
    assert engine_batches == []
    held = plain(debit_account_id=a, credit_account_id=b, flags=TransferFlags.PENDING)
    assert pair.fast.create_transfers([held]) == [Result(0, Status.CREATED)]
    assert engine_batches == [1]


def test_a_due_hold_hands_the_batch_back_and_is_voided_first(pair: Pair) -> None:
    """The function writes nothing and answers NULL; the engine voids the hold, then
    decides: the hold's amount is free again for the transfer."""
    a, b = uuid.uuid4(), uuid.uuid4()
    pair.fast.create_accounts(
        [Account(a, KES, 1, AF.DEBITS_MUST_NOT_EXCEED_CREDITS), Account(b, KES, 1)]
    )
    pair.fast.create_transfers([plain(debit_account_id=b, credit_account_id=a, amount=100)])
    hold = plain(
        debit_account_id=a,
        credit_account_id=b,
        amount=100,
        flags=TransferFlags.PENDING,
        timeout_s=10,
    )
    assert pair.fast.create_transfers([hold]) == [Result(0, Status.CREATED)]
    spend = plain(debit_account_id=a, credit_account_id=b, amount=100)
    assert pair.fast.create_transfers([spend]) == [Result(0, Status.EXCEEDS_CREDITS)]

    pair.clock.advance(10)
    later = plain(debit_account_id=a, credit_account_id=b, amount=100)
    params = postgres_store.plain_batch([later])
    assert params is not None
    now_us = to_us(pair.clock())
    with psycopg.connect(pg_conninfo(pair.fast_url), autocommit=True) as conn:
        found = conn.execute(postgres_store.DECIDE_PLAIN, {**params, "now": now_us}).fetchone()
    assert found is not None and found[1] is None
    assert pair.fast.lookup_transfers([later.id]) == []

    assert pair.fast.create_transfers([later]) == [Result(0, Status.CREATED)]
    void = pair.fast.lookup_transfers([expiry_void_id(hold.id)])
    assert [t.pending_id for t in void] == [hold.id]
    assert pair.fast.check_integrity().ok


def race(ledgers: Sequence[Ledger], transfer: Transfer, threads_n: int) -> list[Status]:
    """``threads_n`` threads submit ``transfer`` at once, spread over ``ledgers``."""
    answers: list[Status] = []
    start = threading.Barrier(threads_n)

    def submit(led: Ledger) -> None:
        start.wait()
        answers.extend(r.status for r in led.create_transfers([transfer]))

    threads = [
        threading.Thread(target=submit, args=(ledgers[k % len(ledgers)],)) for k in range(threads_n)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_one_id_raced_from_many_connections_is_created_once(pair: Pair) -> None:
    """Eight threads on four stores (four pools, eight writers) submit one transfer id at
    once: one ``created``, the rest ``exists``."""
    a, b = uuid.uuid4(), uuid.uuid4()
    pair.fast.create_accounts([Account(a, KES, 1), Account(b, KES, 1)])
    ledgers = [
        open_ledger(f"{pair.fast_url}&application_name=race{k}", clock=pair.clock) for k in range(4)
    ]
    try:
        for _ in range(5):
            raced = plain(debit_account_id=a, credit_account_id=b, amount=1)
            answers = race(ledgers, raced, 8)
            assert sorted(answers) == sorted([Status.CREATED] + [Status.EXISTS] * 7)
    finally:
        for led in ledgers:
            led.close()
    (account,) = pair.fast.lookup_accounts([b])
    assert account.credits_posted == 5
    assert pair.fast.check_integrity().ok


def test_the_clock_stamps_rows_no_earlier_than_the_accounts_last_change(pair: Pair) -> None:
    """A clock that went back: the batch is stamped at the accounts' latest change, on
    both paths alike."""
    a, b = uuid.uuid4(), uuid.uuid4()
    fast, engine = pair.both(
        lambda led: led.create_accounts([Account(a, KES, 1), Account(b, KES, 1)])
    )
    first, second = (
        plain(debit_account_id=a, credit_account_id=b),
        plain(debit_account_id=b, credit_account_id=a),
    )
    pair.both(lambda led: led.create_transfers([first]))
    pair.clock.now -= timedelta(seconds=30)
    fast, engine = pair.both(lambda led: led.create_transfers([second]))
    assert fast == engine == [Result(0, Status.CREATED)]
    pair.clock.now += timedelta(seconds=30)
    (one, two) = pair.fast.lookup_transfers([first.id, second.id])
    assert two.created_at == one.created_at
    assert_same_rows(pair, [a, b], [first.id, second.id])
