"""The real ledger beside a plain Python model (tests/model.py), compared after every step.

A hypothesis ``RuleBasedStateMachine`` creates accounts, submits batches of transfers
(plain, holds, posts, voids, reversals, linked chains, replays, refusals), moves the clock and runs
the expiry sweeper, on a real SQLite file and on a real PostgreSQL schema. After every
step it compares each call's answers, every account's four counters, every transfer it
touched, and checks the money invariants on what the ledger itself answers.

One database per engine for the module: each example opens a new ``Ledger`` on it with its
own clock and uses fresh random ids, so examples never see each other's accounts.
``expire_pending`` sweeps the whole database, so every example runs in a time window of
its own, later than every hold of the examples before it could expire.

Knobs (environment): ``VLEDGER_STATEFUL_EXAMPLES`` (default 100), ``VLEDGER_STATEFUL_STEPS``
(default 30); ``pytest --hypothesis-seed=N`` replays a run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger import Account, AccountFlags, Ledger, Result, Status, Transfer, TransferFlags
from ledger import open_ledger as open_ledger_at
from tests.conftest import Clock, drop_pg_schema, new_pg_schema_url, require_postgres
from tests.model import (
    COUNTER_MAX,
    LIMIT_FLAGS,
    RESOLVING,
    LedgerModel,
    check_transfer_args,
    is_resolving,
)

TF = TransferFlags
AF = AccountFlags

EXAMPLES = int(os.environ.get("VLEDGER_STATEFUL_EXAMPLES", "100"))
STEPS = int(os.environ.get("VLEDGER_STATEFUL_STEPS", "30"))

TIMEOUT_S_MAX_HERE = 7200
"""The longest hold timeout this test draws; every example's holds expire within it."""

CURRENCIES = ["KES", "KES", "KES", "UGX", "TZS"]
CURRENCIES_BAD = ["XXX", "kes", "HRK", "EURO"]
CODES = st.integers(1, 3)


@dataclass(frozen=True)
class Mix:
    """How a batch is drawn: kinds (repeats weigh more), and one in how many is linked."""

    kinds: tuple[str, ...]
    linked_one_in: int


MIXED = Mix(
    ("plain",) * 5
    + ("pending",) * 3
    + ("post",) * 2
    + ("void", "reverse", "replay", "altered", "odd"),
    10,
)
HOLDS = Mix(("plain",) + ("pending",) * 3 + ("post",) * 3 + ("void",) * 2 + ("odd",), 12)
CHAINS = Mix(("plain",) * 3 + ("pending", "post", "void", "reverse", "replay", "altered", "odd"), 2)
REPLAYS = Mix(("plain", "pending", "post", "reverse") + ("replay",) * 3 + ("altered",) * 3, 10)
REVERSALS = Mix(("plain",) * 2 + ("pending", "post") + ("reverse",) * 5 + ("replay",), 4)

# Every example starts later than every hold of the earlier ones could expire (see
# ``teardown``), so that ``expire_pending`` (which sweeps the whole database) only ever
# finds holds of the running example.
_next_start: list[datetime] = [datetime(2026, 6, 1, 8, 0, tzinfo=UTC)]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One migrated database per engine for this module; a ledger stays open on it."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('stateful')}/ledger.db"
    else:
        require_postgres()
        url, schema = new_pg_schema_url()
    keeper = open_ledger_at(url, migrate=True)
    try:
        yield url
    finally:
        keeper.close()
        if schema is not None:
            drop_pg_schema(schema)


# -- views: what is compared --------------------------------------------------------


def account_view(a: Account) -> tuple[Any, ...]:
    return (
        a.id,
        a.currency,
        a.code,
        a.flags,
        a.debits_pending,
        a.debits_posted,
        a.credits_pending,
        a.credits_posted,
        a.created_at,
    )


def transfer_view(t: Transfer) -> tuple[Any, ...]:
    return (
        t.id,
        t.debit_account_id,
        t.credit_account_id,
        t.amount,
        t.currency,
        t.code,
        t.flags,
        t.pending_id,
        t.timeout_s,
        t.reverses_id,
        t.created_at,
    )


def statuses(results: list[Result]) -> list[Status]:
    assert [r.index for r in results] == list(range(len(results)))
    return [r.status for r in results]


def describe(transfers: list[Transfer]) -> str:
    lines = []
    for i, t in enumerate(transfers):
        lines.append(
            f"  [{i}] id={str(t.id)[:8]} {t.flags!r} dr={str(t.debit_account_id)[:8]} "
            f"cr={str(t.credit_account_id)[:8]} amount={t.amount} {t.currency} code={t.code} "
            f"pending_id={str(t.pending_id)[:8]} timeout_s={t.timeout_s}"
            f" reverses_id={str(t.reverses_id)[:8]}"
        )
    return "\n".join(lines)


# -- the machine ----------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """One example: a fresh set of accounts on a fresh clock, the ledger beside the model."""

    url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(_next_start[0])
        self.led: Ledger = open_ledger_at(self.url, migrate=False, clock=self.clock)
        self.model = LedgerModel()
        self.account_ids: dict[uuid.UUID, None] = {}
        """Every account id submitted, created or not (an ordered set)."""
        self.submitted: list[Transfer] = []
        """Every transfer submitted, in order, created or not (replays come from here)."""
        self.transfer_ids: dict[uuid.UUID, None] = {}
        self.moments: list[datetime] = [self.clock.now]
        self.unknown_id = uuid.uuid4()

    def teardown(self) -> None:
        # Sweep this example's timed holds so no later example's expire_pending sees them.
        horizon = self.clock.now + timedelta(seconds=TIMEOUT_S_MAX_HERE + 1)
        try:
            self.led.expire_pending(horizon)
        finally:
            self.led.close()
            _next_start[0] = horizon + timedelta(seconds=1)

    # -- drawing ------------------------------------------------------------------------

    def created_accounts(self) -> list[uuid.UUID]:
        return list(self.model.state.accounts)

    def draw_account(self, data: st.DataObject) -> uuid.UUID:
        created = self.created_accounts()
        choice = data.draw(st.integers(0, 39), label="account choice")
        if choice == 0 or not created:
            return uuid.uuid4()  # unknown
        if choice == 1:
            return data.draw(st.sampled_from(list(self.account_ids)), label="any account")
        return data.draw(st.sampled_from(created), label="account")

    def draw_pair(self, data: st.DataObject) -> tuple[uuid.UUID, uuid.UUID]:
        """Mostly two different accounts of one currency; sometimes anything."""
        debit = self.draw_account(data)
        choice = data.draw(st.integers(0, 19), label="pair choice")
        if choice == 0:
            return debit, self.draw_account(data)
        if choice == 1:
            return debit, debit
        currency = self.currency_of(debit)
        partners = [
            a.id
            for a in self.model.state.accounts.values()
            if a.currency == currency and a.id != debit
        ]
        if not partners:
            return debit, self.draw_account(data)
        return debit, data.draw(st.sampled_from(partners), label="partner")

    def currency_of(self, account_id: uuid.UUID | None) -> str:
        a = self.model.state.accounts.get(account_id) if account_id else None
        return a.currency if a is not None else "KES"

    def draw_currency(self, data: st.DataObject, usual: str) -> str:
        choice = data.draw(st.integers(0, 29), label="currency choice")
        if choice == 0:
            return data.draw(st.sampled_from(CURRENCIES_BAD))
        if choice == 1:
            return data.draw(st.sampled_from(CURRENCIES))
        return usual

    def draw_amount(self, data: st.DataObject) -> int:
        choice = data.draw(st.integers(0, 59), label="amount choice")
        if choice == 0:
            return 0
        if choice <= 4:
            return data.draw(st.sampled_from([COUNTER_MAX, COUNTER_MAX - 1, 2**62, 2**62 + 1]))
        if choice <= 9:
            return data.draw(st.integers(1, 100_000))
        return data.draw(st.integers(1, 200))

    def draw_code(self, data: st.DataObject) -> int:
        return 0 if data.draw(st.integers(0, 39)) == 0 else data.draw(CODES)

    def draw_timeout(self, data: st.DataObject) -> int:
        choice = data.draw(st.integers(0, 9), label="timeout choice")
        if choice < 4:
            return 0
        if choice < 8:
            return data.draw(st.integers(1, 120))
        return data.draw(st.integers(1, TIMEOUT_S_MAX_HERE))

    def draw_movement(self, data: st.DataObject, *, pending: bool) -> Transfer:
        debit, credit = self.draw_pair(data)
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=self.draw_amount(data),
            currency=self.draw_currency(data, self.currency_of(debit)),
            code=self.draw_code(data),
            flags=TF.PENDING if pending else TF(0),
            timeout_s=self.draw_timeout(data) if pending else 0,
        )

    def draw_resolve(self, data: st.DataObject, batch: list[Transfer], *, post: bool) -> Transfer:
        seen = self.submitted + batch
        live = set(self.model.state.holds)
        holds = [t for t in seen if t.flags & TF.PENDING]
        live_holds = [t for t in holds if t.id in live] or holds
        others = [t for t in seen if not t.flags & TF.PENDING]
        choice = data.draw(st.integers(0, 19), label="hold choice")
        hold: Transfer | None = None
        if choice == 0 or not (holds or others):
            pending_id = uuid.uuid4()
        elif (choice == 1 and others) or not holds:
            pending_id = data.draw(st.sampled_from(others)).id
        else:
            hold = data.draw(st.sampled_from(live_holds if choice > 5 else holds), label="hold")
            pending_id = hold.id
        hold_amount = hold.amount if hold is not None and hold.amount else 100
        choice = data.draw(st.integers(0, 19), label="resolve amount choice")
        amount: int | None
        if choice < (8 if post else 14):
            amount = None
        elif choice < 12:
            amount = hold_amount
        elif choice < 16 and hold_amount > 1:
            amount = data.draw(st.integers(1, hold_amount - 1))
        elif choice < 18:
            amount = min(hold_amount + 1, COUNTER_MAX)
        elif choice < 19:
            amount = 0
        else:
            amount = data.draw(st.integers(1, 200))
        debit = credit = None
        currency = None
        choice = data.draw(st.integers(0, 9), label="resolve accounts choice")
        if hold is not None and choice >= 5:
            debit, credit = hold.debit_account_id, hold.credit_account_id
        if hold is not None and choice == 9:
            debit, credit = credit, debit
        if choice == 4:
            debit = self.draw_account(data)
        if choice == 8:
            credit = self.draw_account(data)
        choice = data.draw(st.integers(0, 9), label="resolve currency choice")
        if hold is not None and choice >= 5:
            currency = hold.currency
        if choice == 4:
            currency = data.draw(st.sampled_from(CURRENCIES + CURRENCIES_BAD))
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            currency=currency,
            code=self.draw_code(data),
            flags=TF.POST_PENDING if post else TF.VOID_PENDING,
            pending_id=pending_id,
        )

    def draw_reversal_target(
        self, data: st.DataObject, batch: list[Transfer]
    ) -> tuple[uuid.UUID, uuid.UUID | None, uuid.UUID | None, int]:
        """What a reversal names: (id, its debit and credit accounts, what is left of it).

        Mostly a created transfer of posted money; sometimes a hold, a void or a
        reversal, a plain transfer earlier in the same batch, or an unknown id."""
        model = self.model
        created = list(model.state.transfers.values())
        posted = [t for t in created if model.posted_money(t) > 0]
        unposted = [t for t in created if model.posted_money(t) == 0]
        in_batch = [t for t in batch if not t.flags & (TF.PENDING | RESOLVING)]
        choice = data.draw(st.integers(0, 19), label="reversal target choice")
        if choice <= 2 and in_batch:
            t = data.draw(st.sampled_from(in_batch), label="target in the batch")
            return t.id, t.debit_account_id, t.credit_account_id, t.amount or 1
        if choice <= 5 and unposted:
            target = data.draw(st.sampled_from(unposted), label="unposted target")
        elif choice > 0 and (posted or created):
            target = data.draw(st.sampled_from(posted or created), label="posted target")
        else:
            return uuid.uuid4(), None, None, 100
        left = model.reversible(target)
        return target.id, target.debit_account_id, target.credit_account_id, left

    def draw_reverse(self, data: st.DataObject, batch: list[Transfer]) -> Transfer:
        """A reversal: mostly the target's accounts swapped, for some or all of what is left."""
        flags_choice = data.draw(st.integers(0, 19), label="reversal flags choice")
        target_id, target_debit, target_credit, left = self.draw_reversal_target(data, batch)
        if flags_choice == 1:  # a post or void naming a transfer to reverse
            resolve = self.draw_resolve(data, batch, post=data.draw(st.booleans()))
            return replace(resolve, reverses_id=target_id)
        debit, credit = self.draw_pair(data)
        choice = data.draw(st.integers(0, 19), label="reversal accounts choice")
        if target_debit is not None and target_credit is not None:
            if choice == 1:  # the same way as the target
                debit, credit = target_debit, target_credit
            elif choice == 2:  # back to the target's debit account, but from elsewhere
                credit = target_debit
            elif choice > 2:
                debit, credit = target_credit, target_debit
        choice = data.draw(st.integers(0, 19), label="reversal amount choice")
        if choice < 6 and left > 0:
            amount = left
        elif choice < 12 and left > 1:
            amount = data.draw(st.integers(1, left - 1))
        elif choice < 15:
            amount = min(max(left, 0) + 1, COUNTER_MAX)
        elif choice < 16:
            amount = 0
        else:
            amount = self.draw_amount(data)
        return Transfer(
            id=uuid.uuid4(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount,
            currency=self.draw_currency(data, self.currency_of(debit)),
            code=self.draw_code(data),
            flags=TF.PENDING if flags_choice == 0 else TF(0),
            reverses_id=target_id,
        )

    def draw_replay(self, data: st.DataObject, batch: list[Transfer], *, alter: bool) -> Transfer:
        seen = self.submitted + batch
        if not seen:
            return self.draw_movement(data, pending=False)
        t = data.draw(st.sampled_from(seen), label="replayed")
        if not alter:
            return t
        field = data.draw(
            st.sampled_from(
                [
                    "flags",
                    "linked",
                    "pending_id",
                    "timeout",
                    "debit",
                    "credit",
                    "amount",
                    "code",
                    "currency",
                    "reverses_id",
                ]
            ),
            label="altered field",
        )
        changed = t
        if field == "flags":
            if is_resolving(t.flags):
                changed = replace(t, flags=t.flags ^ (TF.POST_PENDING | TF.VOID_PENDING))
            else:
                changed = replace(t, flags=t.flags ^ TF.PENDING)
        elif field == "linked":
            changed = replace(t, flags=t.flags ^ TF.LINKED)
        elif field == "pending_id":
            changed = replace(t, pending_id=uuid.uuid4())
        elif field == "timeout":
            changed = replace(t, timeout_s=t.timeout_s - 1 if t.timeout_s else 1)
        elif field == "debit":
            changed = replace(t, debit_account_id=self.draw_account(data))
        elif field == "credit":
            changed = replace(t, credit_account_id=self.draw_account(data))
        elif field == "amount":
            amount = 1 if t.amount is None else min(t.amount + 1, COUNTER_MAX)
            changed = replace(t, amount=amount)
        elif field == "code":
            changed = replace(t, code=t.code % 3 + 1)
        elif field == "reverses_id":
            other = data.draw(st.sampled_from([None, *(s.id for s in seen)]), label="reverses")
            changed = replace(t, reverses_id=other if other != t.reverses_id else uuid.uuid4())
        else:
            changed = replace(t, currency=data.draw(st.sampled_from(CURRENCIES)))
        try:
            check_transfer_args(changed)
        except ValueError:
            return t
        return changed

    def draw_odd(self, data: st.DataObject, batch: list[Transfer]) -> Transfer:
        """A transfer refused for its shape (or one that would be, but for precedence)."""
        base = self.draw_movement(data, pending=data.draw(st.booleans()))
        defect = data.draw(
            st.sampled_from(
                [
                    "exclusive",
                    "pending_id_on_movement",
                    "timeout_on_plain",
                    "same_accounts",
                    "zero_code",
                    "zero_amount",
                    "post_without_pending_id",
                    "post_of_itself",
                    "timeout_on_post",
                    "other_currencies",
                ]
            ),
            label="defect",
        )
        if defect == "exclusive":
            extra = data.draw(st.sampled_from([TF.POST_PENDING, TF.VOID_PENDING]))
            return replace(base, flags=base.flags | extra | TF.PENDING, pending_id=uuid.uuid4())
        if defect == "pending_id_on_movement":
            seen = [t.id for t in self.submitted + batch] or [uuid.uuid4()]
            return replace(base, pending_id=data.draw(st.sampled_from(seen)))
        if defect == "timeout_on_plain":
            return replace(base, flags=TF(0), timeout_s=data.draw(st.integers(1, 100)))
        if defect == "same_accounts":
            return replace(base, credit_account_id=base.debit_account_id)
        if defect == "zero_code":
            return replace(base, code=0)
        if defect == "zero_amount":
            return replace(base, amount=0)
        resolve = self.draw_resolve(data, batch, post=data.draw(st.booleans()))
        if defect == "post_without_pending_id":
            return replace(resolve, pending_id=None)
        if defect == "post_of_itself":
            return replace(resolve, pending_id=resolve.id)
        if defect == "timeout_on_post":
            return replace(resolve, timeout_s=data.draw(st.integers(1, 100)))
        # Accounts of two currencies, if this example has them.
        by_currency: dict[str, list[uuid.UUID]] = {}
        for a in self.model.state.accounts.values():
            by_currency.setdefault(a.currency, []).append(a.id)
        if len(by_currency) < 2:
            return base
        first, second = data.draw(
            st.lists(st.sampled_from(sorted(by_currency)), min_size=2, max_size=2, unique=True)
        )
        return replace(
            base,
            debit_account_id=data.draw(st.sampled_from(by_currency[first])),
            credit_account_id=data.draw(st.sampled_from(by_currency[second])),
            currency=data.draw(st.sampled_from([first, second])),
        )

    def draw_transfer(self, data: st.DataObject, batch: list[Transfer], mix: Mix) -> Transfer:
        kind = data.draw(st.sampled_from(mix.kinds), label="kind")
        if kind == "plain":
            t = self.draw_movement(data, pending=False)
        elif kind == "pending":
            t = self.draw_movement(data, pending=True)
        elif kind == "post":
            t = self.draw_resolve(data, batch, post=True)
        elif kind == "void":
            t = self.draw_resolve(data, batch, post=False)
        elif kind == "reverse":
            t = self.draw_reverse(data, batch)
        elif kind == "replay":
            return self.draw_replay(data, batch, alter=False)
        elif kind == "altered":
            return self.draw_replay(data, batch, alter=True)
        else:
            t = self.draw_odd(data, batch)
        if data.draw(st.integers(1, mix.linked_one_in), label="linked") == 1:
            t = replace(t, flags=t.flags | TF.LINKED)
        return t

    def draw_batch(self, data: st.DataObject, mix: Mix) -> list[Transfer]:
        count = data.draw(st.integers(1, 6), label="transfers")
        batch: list[Transfer] = []
        for _ in range(count):
            batch.append(self.draw_transfer(data, batch, mix))
        last = batch[-1]
        if last.flags & TF.LINKED and data.draw(st.integers(0, 3), label="leave open") > 0:
            batch[-1] = replace(last, flags=last.flags & ~TF.LINKED)
        return batch

    # -- steps --------------------------------------------------------------------------

    def submit_accounts(self, accounts: list[Account]) -> None:
        now = self.clock.now
        want = self.model.create_accounts(accounts, now)
        got = statuses(self.led.create_accounts(accounts))
        for answer in set(want):
            event(f"account {answer}")
        for a in accounts:
            self.account_ids[a.id] = None
        assert got == want, f"create_accounts at {now}: ledger {got}, model {want}"

    def submit_transfers(self, batch: list[Transfer]) -> None:
        now = self.clock.now
        self.submitted.extend(batch)
        for t in batch:
            self.transfer_ids[t.id] = None
            if t.pending_id is not None:
                self.transfer_ids[t.pending_id] = None
        want = self.model.create_transfers(batch, now)
        got = statuses(self.led.create_transfers(batch))
        for answer in set(want):
            event(f"transfer {answer}")
        if now != self.moments[-1]:
            self.moments.append(now)
        assert got == want, (
            f"create_transfers at {now}:\n{describe(batch)}\n  ledger {got}\n  model  {want}"
        )

    @initialize()
    def open_accounts(self) -> None:
        """Free sources, wallets (limited both ways), a sink, and a UGX pair."""
        self.submit_accounts(
            [
                Account(uuid.uuid4(), "KES", 1),
                Account(uuid.uuid4(), "KES", 1),
                Account(uuid.uuid4(), "KES", 2, AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
                Account(uuid.uuid4(), "KES", 2, AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
                Account(uuid.uuid4(), "KES", 2, AF.CREDITS_MUST_NOT_EXCEED_DEBITS),
                Account(uuid.uuid4(), "KES", 3),
                Account(uuid.uuid4(), "UGX", 1),
                Account(uuid.uuid4(), "UGX", 2, AF.DEBITS_MUST_NOT_EXCEED_CREDITS),
            ]
        )

    @rule(data=st.data())
    def create_accounts(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(1, 4), label="accounts")
        accounts: list[Account] = []
        flag_choices = [
            AF(0),
            AF(0),
            AF.DEBITS_MUST_NOT_EXCEED_CREDITS,
            AF.CREDITS_MUST_NOT_EXCEED_DEBITS,
        ]
        for _ in range(count):
            choice = data.draw(st.integers(0, 19), label="account kind")
            if choice < 3 and self.account_ids:
                earlier = data.draw(st.sampled_from(list(self.account_ids)))
                known = self.model.state.accounts.get(earlier)
                a = (
                    Account(earlier, "KES", 1)
                    if known is None
                    else Account(earlier, known.currency, known.code, known.flags)
                )
                if choice == 1:
                    a = replace(a, code=a.code % 3 + 1)
                elif choice == 2:
                    a = replace(a, currency=data.draw(st.sampled_from(CURRENCIES)))
            else:
                flags = data.draw(st.sampled_from(flag_choices))
                if choice == 3:
                    flags = LIMIT_FLAGS
                a = Account(
                    uuid.uuid4(),
                    data.draw(st.sampled_from(CURRENCIES_BAD))
                    if choice == 4
                    else (data.draw(st.sampled_from(CURRENCIES))),
                    0 if choice == 5 else data.draw(CODES),
                    flags,
                )
            if data.draw(st.integers(0, 4), label="linked account") == 0:
                a = replace(a, flags=a.flags | AF.LINKED)
            accounts.append(a)
        self.submit_accounts(accounts)

    # Four flavours of batch: hypothesis turns rules off at random per example (swarm
    # testing), so each flavour is a rule of its own, and some transfers are always on.

    @rule(data=st.data())
    def create_transfers(self, data: st.DataObject) -> None:
        self.submit_transfers(self.draw_batch(data, MIXED))

    @rule(data=st.data())
    def create_holds_posts_voids(self, data: st.DataObject) -> None:
        self.submit_transfers(self.draw_batch(data, HOLDS))

    @rule(data=st.data())
    def create_chains(self, data: st.DataObject) -> None:
        self.submit_transfers(self.draw_batch(data, CHAINS))

    @rule(data=st.data())
    def create_replays(self, data: st.DataObject) -> None:
        self.submit_transfers(self.draw_batch(data, REPLAYS))

    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        """Reversals of earlier transfers (and of ones earlier in the batch), in parts, in
        full, one unit too many, the wrong way round, of holds, voids and reversals."""
        self.submit_transfers(self.draw_batch(data, REVERSALS))

    @precondition(lambda self: bool(self.submitted))
    @rule(data=st.data())
    def replay_a_batch(self, data: st.DataObject) -> None:
        """Resubmit a run of earlier transfers as they were (a full replay of a chain)."""
        start = data.draw(st.integers(0, len(self.submitted) - 1), label="replay from")
        length = data.draw(st.integers(1, 6), label="replay length")
        self.submit_transfers(self.submitted[start : start + length])

    @rule(data=st.data())
    def malformed_batch(self, data: st.DataObject) -> None:
        """A malformed transfer raises ValueError, and the good ones beside it are not applied."""
        good = self.draw_movement(data, pending=False)
        bad = data.draw(
            st.sampled_from(
                [
                    replace(good, id=uuid.uuid4(), amount=-1),
                    replace(good, id=uuid.uuid4(), amount=2**63),
                    replace(good, id=uuid.uuid4(), debit_account_id=None),
                    replace(good, id=uuid.uuid4(), currency=None),
                ]
            ),
            label="malformed",
        )
        batch = [good, bad] if data.draw(st.booleans()) else [bad, good]
        with pytest.raises(ValueError):
            self.model.create_transfers(batch, self.clock.now)
        with pytest.raises(ValueError):
            self.led.create_transfers(batch)
        self.transfer_ids[good.id] = None

    @rule(seconds=st.one_of(st.integers(0, 3), st.integers(1, 5000), st.sampled_from([59, 60])))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(data=st.data())
    def advance_to_an_expiry(self, data: st.DataObject) -> None:
        """Move the clock to just before, at, or just after a hold's expiry moment."""
        now = self.clock.now
        moments = sorted(
            expires_at
            for hold_id in self.model.state.holds
            if (expires_at := self.model.state.transfers[hold_id].expires_at) is not None
            and expires_at > now
        )
        if not moments:
            return
        moment = data.draw(st.sampled_from(moments), label="expiry")
        offset = data.draw(st.sampled_from([-1, 0, 0, 1]), label="offset_s")
        target = moment + timedelta(seconds=offset)
        if target > now:
            self.clock.now = target

    @rule(back_s=st.one_of(st.none(), st.integers(0, 120)))
    def expire_pending(self, back_s: int | None) -> None:
        now = self.clock.now if back_s is None else self.clock.now - timedelta(seconds=back_s)
        least = self.model.expire_pending_least(now)
        most = self.model.expire_pending(now)
        got = self.led.expire_pending(None if back_s is None else now)
        event(f"expire_pending voided {min(got, 2)}{'+' if got >= 2 else ''}")
        assert least <= got <= most, f"expire_pending({now}): ledger {got}, model {least}..{most}"

    @precondition(lambda self: bool(self.model.state.accounts))
    @rule(data=st.data())
    def check_history(self, data: st.DataObject) -> None:
        """account_transfers, page by page, and balance_at at moments of this example."""
        account_id = data.draw(st.sampled_from(self.created_accounts()), label="account")
        limit = data.draw(st.integers(1, 4), label="page size")
        pages: list[uuid.UUID] = []
        after: uuid.UUID | None = None
        for _ in range(1000):
            page = self.led.account_transfers(account_id, after=after, limit=limit)
            assert len(page) <= limit
            pages.extend(t.id for t in page)
            if len(page) < limit:
                break
            after = page[-1].id
        known = [i for i in pages if i in self.transfer_ids]
        assert known == self.model.account_transfers(account_id), "account_transfers order"
        assert self.led.account_transfers(account_id, after=uuid.uuid4()) == []
        moment = data.draw(st.sampled_from(self.moments), label="moment")
        for at in (moment - timedelta(microseconds=1), moment, self.clock.now):
            found = self.led.balance_at(account_id, at)
            assert found is not None
            got = (found.debits_posted, found.credits_posted)
            assert got == self.model.balance_at(account_id, at), f"balance_at({at})"
        assert self.led.balance_at(self.unknown_id, self.clock.now) is None

    # -- after every step ---------------------------------------------------------------

    @invariant()
    def accounts_match_the_model(self) -> None:
        ids = [*self.account_ids, self.unknown_id]
        got = self.led.lookup_accounts(ids)
        want = self.model.lookup_accounts(ids, self.clock.now)
        assert [account_view(a) for a in got] == [account_view(a) for a in want], (
            f"accounts at {self.clock.now}"
        )
        # The money invariants, on the ledger's own answer.
        sums: dict[str, list[int]] = {}
        for a in got:
            total = sums.setdefault(a.currency, [0, 0, 0, 0])
            total[0] += a.debits_posted
            total[1] += a.credits_posted
            total[2] += a.debits_pending
            total[3] += a.credits_pending
            if a.flags & AF.DEBITS_MUST_NOT_EXCEED_CREDITS:
                assert a.debits_pending + a.debits_posted <= a.credits_posted, a
            if a.flags & AF.CREDITS_MUST_NOT_EXCEED_DEBITS:
                assert a.credits_pending + a.credits_posted <= a.debits_posted, a
            assert max(
                a.debits_pending + a.debits_posted, a.credits_pending + a.credits_posted
            ) <= (COUNTER_MAX), a
        for currency, (debits, credits, debits_pending, credits_pending) in sums.items():
            assert debits == credits, f"{currency}: posted debits {debits} != credits {credits}"
            assert debits_pending == credits_pending, f"{currency}: pending debits != credits"

    @invariant()
    def transfers_match_the_model(self) -> None:
        ids = [*self.transfer_ids, self.unknown_id]
        got = self.led.lookup_transfers(ids)
        want = self.model.lookup_transfers(ids)
        assert [transfer_view(t) for t in got] == [transfer_view(t) for t in want]
        resolved = [t.pending_id for t in got if is_resolving(t.flags)]
        assert len(resolved) == len(set(resolved)), "a hold resolved twice"


def machine_settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )


def test_ledger_matches_the_model(engine_url: str) -> None:
    class Machine(LedgerMachine):
        url = engine_url

    run_state_machine_as_test(Machine, settings=machine_settings())


def test_a_replayed_post_naming_a_hold_nobody_made_is_answered_as_the_ledger_does(
    ledger: Ledger,
) -> None:
    """Found by the machine above: a post sent again with another ``pending_id``, one
    no transfer has, is ``exists_with_different_pending_id``; the model once looked that
    hold up (KeyError) to fill in the accounts and amount, which never matter there."""
    model = LedgerModel()
    now = ledger.now()
    accounts = [Account(uuid.uuid4(), "KES", 1), Account(uuid.uuid4(), "KES", 1)]
    assert [r.status for r in ledger.create_accounts(accounts)] == model.create_accounts(
        accounts, now
    )
    hold = Transfer(uuid.uuid4(), accounts[0].id, accounts[1].id, 100, "KES", 1, TF.PENDING)
    post = Transfer(uuid.uuid4(), None, None, None, "KES", 1, TF.POST_PENDING, pending_id=hold.id)
    for batch in ([hold], [post], [replace(post, pending_id=uuid.uuid4())]):
        got = [r.status for r in ledger.create_transfers(batch)]
        assert got == model.create_transfers(batch, now)
    assert got == [Status.EXISTS_WITH_DIFFERENT_PENDING_ID]
