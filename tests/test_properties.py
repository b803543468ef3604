"""Properties of the ledger that hold for any batch, checked straight on both engines.

- a batch never breaks debits == credits (posted and pending) within a currency, nor a
  limit flag;
- replaying a batch changes no account and no transfer, and answers ``exists`` where it
  created, ``id_already_failed`` where it spent the id, and the same refusal elsewhere;
- a linked chain happens entirely or not at all.

Each example opens its own accounts (fresh random ids) in one migrated database per
engine; the clock stands still, so no hold expires.

Knob (environment): ``VLEDGER_PROPERTY_EXAMPLES`` (default 100 per test and engine).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import Account, AccountFlags, Ledger, Result, Status, Transfer, TransferFlags
from ledger import open_ledger as open_ledger_at
from tests.conftest import Clock, drop_pg_schema, new_pg_schema_url, require_postgres
from tests.model import SPENDING

TF = TransferFlags
AF = AccountFlags

EXAMPLES = int(os.environ.get("VLEDGER_PROPERTY_EXAMPLES", "100"))

PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def led(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledger]:
    """One migrated database per engine for this module, on a clock that stands still."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('properties')}/ledger.db"
    else:
        require_postgres()
        url, schema = new_pg_schema_url()
    ledger = open_ledger_at(url, migrate=True, clock=Clock())
    try:
        yield ledger
    finally:
        ledger.close()
        if schema is not None:
            drop_pg_schema(schema)


# -- a small world per example ------------------------------------------------------

ACCOUNT_SHAPES: list[tuple[str, AccountFlags]] = [
    ("KES", AF(0)),  # 0: the bank, free both ways
    ("KES", AF.DEBITS_MUST_NOT_EXCEED_CREDITS),  # 1: a wallet
    ("KES", AF.DEBITS_MUST_NOT_EXCEED_CREDITS),  # 2: a wallet
    ("KES", AF.CREDITS_MUST_NOT_EXCEED_DEBITS),  # 3: a liability that must stay covered
    ("KES", AF(0)),  # 4: a sink
    ("UGX", AF(0)),  # 5
    ("UGX", AF.DEBITS_MUST_NOT_EXCEED_CREDITS),  # 6
]
UNKNOWN = len(ACCOUNT_SHAPES)  # an account index that names no account


@dataclass(frozen=True)
class Spec:
    """One transfer of a batch, drawn before any id exists."""

    kind: str
    debit: int
    credit: int
    amount: int
    amount_none: bool
    hold: int
    code: int
    other_currency: bool
    timeout_s: int
    linked: bool
    replay_of: int | None


CURRENCY_GROUPS = [[0, 1, 2, 3, 4], [5, 6]]


@st.composite
def specs(draw: st.DrawFn, *, safe: bool = False) -> Spec:
    """Mostly two accounts of one currency; ``safe`` ones rarely fail."""
    kinds = ["plain", "plain", "pending", "post"] if safe else ["plain"] * 3 + ["pending", "post"]
    kind = draw(st.sampled_from(kinds if safe else [*kinds, "void"]))
    group = draw(st.sampled_from(CURRENCY_GROUPS))
    debit, credit = draw(st.permutations(group))[:2]
    if safe:
        debit = draw(st.sampled_from([0, 0, 3, 5] if group[0] == 0 else [5]))
        credit = draw(st.sampled_from([i for i in group if i != debit]))
    elif draw(st.integers(0, 9)) == 0:
        debit, credit = draw(st.integers(0, UNKNOWN)), draw(st.integers(0, UNKNOWN))
    if safe:
        amount = draw(st.integers(1, 100))
    else:
        amount = draw(st.one_of(st.integers(1, 300), st.integers(0, 1_000_000)))
    return Spec(
        kind=kind,
        debit=debit,
        credit=credit,
        amount=amount,
        amount_none=draw(st.booleans()),
        hold=draw(st.integers(0, 9)),
        code=1 if safe else draw(st.sampled_from([1] * 9 + [2, 0])),
        other_currency=not safe and draw(st.integers(0, 14)) == 0,
        timeout_s=draw(st.sampled_from([0, 0, 3600])),
        linked=draw(st.integers(0, 3)) == 0,
        replay_of=draw(st.one_of(st.none(), st.none(), st.none(), st.integers(0, 9))),
    )


fundings = st.lists(st.integers(0, 500), min_size=4, max_size=4)
setup_holds = st.lists(
    st.tuples(st.integers(0, UNKNOWN - 1), st.integers(0, UNKNOWN - 1), st.integers(1, 200)),
    max_size=4,
)


class World:
    """Fresh accounts, funded wallets and a few holds; builds transfers from specs."""

    def __init__(self, led: Ledger, funding: list[int], holds: list[tuple[int, int, int]]) -> None:
        self.led = led
        self.accounts = [uuid.uuid4() for _ in ACCOUNT_SHAPES]
        results = led.create_accounts(
            [
                Account(i, currency, 1, flags)
                for i, (currency, flags) in zip(self.accounts, ACCOUNT_SHAPES, strict=True)
            ]
        )
        assert {r.status for r in results} == {Status.CREATED}
        bank, ugx = self.accounts[0], self.accounts[5]
        setup = [
            self.plain(bank, self.accounts[1], funding[0]),
            self.plain(bank, self.accounts[2], funding[1]),
            self.plain(self.accounts[3], bank, funding[2]),
            self.plain(ugx, self.accounts[6], funding[3], "UGX"),
        ]
        setup = [t for t in setup if t.amount]
        self.holds: list[Transfer] = []
        for debit, credit, amount in holds:
            currency = ACCOUNT_SHAPES[debit][0]
            hold = replace(
                self.plain(self.accounts[debit], self.accounts[credit], amount, currency),
                flags=TF.PENDING,
            )
            setup.append(hold)
        answers = led.create_transfers(setup)
        for t, r in zip(setup, answers, strict=True):
            if t.flags & TF.PENDING and r.status == Status.CREATED:
                self.holds.append(t)

    @staticmethod
    def plain(debit: uuid.UUID, credit: uuid.UUID, amount: int, currency: str = "KES") -> Transfer:
        return Transfer(uuid.uuid4(), debit, credit, amount, currency, 1)

    def account(self, index: int) -> uuid.UUID:
        return self.accounts[index] if index < UNKNOWN else uuid.uuid4()

    def build(self, batch_specs: list[Spec]) -> list[Transfer]:
        batch: list[Transfer] = []
        holds = list(self.holds)
        for spec in batch_specs:
            if spec.replay_of is not None and spec.replay_of < len(batch):
                batch.append(batch[spec.replay_of])
                continue
            flags = TF.LINKED if spec.linked else TF(0)
            if spec.kind in ("post", "void"):
                target = holds[spec.hold % len(holds)] if holds else None
                pending_id = target.id if target else uuid.uuid4()
                flags |= TF.POST_PENDING if spec.kind == "post" else TF.VOID_PENDING
                amount = None if spec.amount_none or target is None else spec.amount
                if target is not None and amount is not None and spec.kind == "void":
                    amount = min(amount, target.amount or 1)
                t = Transfer(uuid.uuid4(), None, None, amount, None, spec.code, flags, pending_id)
            else:
                currency = ACCOUNT_SHAPES[spec.debit % UNKNOWN][0]
                if spec.other_currency:
                    currency = "UGX" if currency == "KES" else "KES"
                pending = spec.kind == "pending"
                t = Transfer(
                    uuid.uuid4(),
                    self.account(spec.debit),
                    self.account(spec.credit),
                    spec.amount,
                    currency,
                    spec.code,
                    flags | (TF.PENDING if pending else TF(0)),
                    timeout_s=spec.timeout_s if pending else 0,
                )
                if pending:
                    holds.append(t)
            batch.append(t)
        return batch

    def snapshot(self) -> list[tuple[Any, ...]]:
        return [
            (a.id, a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in self.led.lookup_accounts(self.accounts)
        ]

    def check_money(self) -> None:
        """Debits equal credits per currency, posted and pending; no limit is passed."""
        sums: dict[str, list[int]] = {}
        for a in self.led.lookup_accounts(self.accounts):
            total = sums.setdefault(a.currency, [0, 0, 0, 0])
            total[0] += a.debits_posted
            total[1] += a.credits_posted
            total[2] += a.debits_pending
            total[3] += a.credits_pending
            if a.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert a.debits_pending + a.debits_posted <= a.credits_posted, a
            if a.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert a.credits_pending + a.credits_posted <= a.debits_posted, a
        for currency, (debits, credits, debits_pending, credits_pending) in sums.items():
            assert debits == credits, f"{currency} posted: {debits} != {credits}"
            assert debits_pending == credits_pending, f"{currency} pending differs"


def statuses(results: list[Result]) -> list[Status]:
    assert [r.index for r in results] == list(range(len(results)))
    return [r.status for r in results]


# -- the properties -----------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    funding=fundings,
    holds=setup_holds,
    batch_specs=st.lists(specs(), min_size=1, max_size=12),
)
def test_a_batch_keeps_debits_equal_to_credits(
    led: Ledger, funding: list[int], holds: list[tuple[int, int, int]], batch_specs: list[Spec]
) -> None:
    world = World(led, funding, holds)
    world.check_money()
    batch = world.build(batch_specs)
    answers = statuses(led.create_transfers(batch))
    assert len(answers) == len(batch)
    event(f"created {sum(a == Status.CREATED for a in answers)} of {len(answers)}")
    world.check_money()


@PROPERTY_SETTINGS
@given(
    funding=fundings,
    holds=setup_holds,
    batch_specs=st.lists(specs(), min_size=1, max_size=12),
)
def test_a_replayed_batch_changes_nothing(
    led: Ledger, funding: list[int], holds: list[tuple[int, int, int]], batch_specs: list[Spec]
) -> None:
    world = World(led, funding, holds)
    batch = world.build(batch_specs)
    first = statuses(led.create_transfers(batch))
    accounts = world.snapshot()
    ids = [t.id for t in batch]
    transfers = led.lookup_transfers(ids)
    second = statuses(led.create_transfers(batch))
    assert world.snapshot() == accounts
    assert led.lookup_transfers(ids) == transfers
    for chain in chains(batch):
        was = [first[i] for i in chain]
        now = [second[i] for i in chain]
        if Status.LINKED_EVENT_CHAIN_OPEN in was:
            assert now == was
        elif Status.LINKED_EVENT_FAILED in was:
            # A failed chain fails again, though maybe on another of its transfers: the
            # rest of the batch may have changed what it found (a hold posted meanwhile).
            assert Status.CREATED not in now, f"first {was}, then {now}"
            assert set(now) != {Status.EXISTS}, f"first {was}, then {now}"
        else:
            assert now == [replayed(answer) for answer in was], f"first {was}, then {now}"
    world.check_money()


def chains(batch: list[Transfer]) -> list[range]:
    """The index ranges of the batch's chains (a transfer without LINKED ends one)."""
    found: list[range] = []
    start = 0
    for i, t in enumerate(batch):
        if not t.flags & TF.LINKED or i == len(batch) - 1:
            found.append(range(start, i + 1))
            start = i + 1
    return found


def replayed(answer: Status) -> Status:
    """What a transfer answers the second time, had nothing else changed meanwhile."""
    if answer == Status.CREATED:
        return Status.EXISTS
    if answer in SPENDING:
        return Status.ID_ALREADY_FAILED
    return answer


@PROPERTY_SETTINGS
@given(
    funding=fundings,
    holds=setup_holds,
    chain_specs=st.lists(
        st.one_of(specs(safe=True), specs(safe=True), specs()), min_size=2, max_size=6
    ),
    close=st.sampled_from([True, True, True, False]),
)
def test_a_linked_chain_is_all_or_nothing(
    led: Ledger,
    funding: list[int],
    holds: list[tuple[int, int, int]],
    chain_specs: list[Spec],
    close: bool,
) -> None:
    world = World(led, funding, holds)
    chain = world.build([replace(spec, replay_of=None) for spec in chain_specs])
    last = len(chain) - 1
    chain = [
        replace(t, flags=t.flags | TF.LINKED if i < last or not close else t.flags & ~TF.LINKED)
        for i, t in enumerate(chain)
    ]
    before = world.snapshot()
    answers = statuses(led.create_transfers(chain))
    found = led.lookup_transfers([t.id for t in chain])
    event("open" if not close else "created" if Status.CREATED in answers else "failed")
    if not close:
        assert answers == [Status.LINKED_EVENT_CHAIN_OPEN] * len(chain)
    if answers == [Status.CREATED] * len(chain):
        assert [t.id for t in found] == [t.id for t in chain]
    else:
        assert Status.CREATED not in answers, answers
        if close:
            failing = [a for a in answers if a != Status.LINKED_EVENT_FAILED]
            assert len(failing) == 1, answers
        assert found == []
        assert world.snapshot() == before
    world.check_money()
