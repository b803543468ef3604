"""Cross-ledger transfers under a crashing coordinator (``ledger.crossledger``,
``docs/SCALING.md``): two real databases (two SQLite files, or two PostgreSQL schemas),
payments both ways, the coordinator killed before a write reaches the database or right
after it committed (its answer lost), and a fresh coordinator recovering.

Held after every step: customers' money on both ledgers plus the money in flight (read
from the settlement accounts) is the same as at the start; every account the model is
sure of has exactly the model's balance. Held after every completed recovery: each
ledger's ``check_integrity`` is clean, nothing is left in flight, and every intent ended
posted on both sides or voided on its source with no target hold, as the payee decides
(an open wallet takes it; a closed account or an unknown id refuses it).
"""

from __future__ import annotations

import contextlib
import pathlib
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from ledger import (
    Account,
    AccountFlags,
    Ledger,
    Result,
    Status,
    Transfer,
    open_ledger,
)
from ledger.core.errors import MalformedRequest
from ledger.core.tx import Tx
from ledger.crossledger import (
    RECOVERY_PAGE_MAX,
    SOURCE_HOLD,
    SOURCE_POST,
    SOURCE_VOID,
    TARGET_HOLD,
    TARGET_POST,
    Coordinator,
    CrossTransfer,
    LedgerPort,
    Link,
    Outcome,
    State,
    inbound_account_id,
    leg_id,
    open_link,
    outbound_account_id,
    source_hold,
)
from ledger.flows.errors import Conflict, Refused
from ledger.limits import AMOUNT_MAX_MINOR
from tests.conftest import drop_pg_schema, new_pg_schema_url, require_postgres

NAMES = ("east", "west")
CURRENCY = "KES"
LINK = Link("east", "west", CURRENCY)
WALLETS = 5
CLOSED = 2
FUNDING_MINOR = 50_000
MINT_CODE = 1
WALLET_CODE = 101
FUND_CODE = 9
T = TypeVar("T")
RACED_INTENTS = 30


class Crash(Exception):
    """The coordinator's process died here (injected)."""


@dataclass
class CrashPlan:
    """Crash at the ``calls_left``-th write call from now (None: never), before the call
    reaches its database or after it committed."""

    calls_left: int | None = None
    after: bool = False
    crashes: int = 0

    def arm(self, calls_left: int, *, after: bool) -> None:
        self.calls_left, self.after = calls_left, after

    def due(self) -> bool:
        if self.calls_left is None:
            return False
        if self.calls_left > 0:
            self.calls_left -= 1
            return False
        self.calls_left = None
        self.crashes += 1
        return True


class CrashingLedger:
    """A real :class:`Ledger` whose write calls crash when the shared plan says so."""

    def __init__(self, inner: Ledger, plan: CrashPlan) -> None:
        self._inner = inner
        self._plan = plan

    def create_accounts(self, accounts: Sequence[Account]) -> list[Result]:
        return self._inner.create_accounts(accounts)

    def create_transfers(self, transfers: Sequence[Transfer]) -> list[Result]:
        if not self._plan.due():
            return self._inner.create_transfers(transfers)
        if self._plan.after:
            self._inner.create_transfers(transfers)
        raise Crash("coordinator died")

    def lookup_transfers(self, ids: Sequence[uuid.UUID]) -> list[Transfer]:
        return self._inner.lookup_transfers(ids)

    def transact(self, work: Callable[[Tx], T]) -> T:
        return self._inner.transact(work)


# -- the two ledgers ------------------------------------------------------------------


@contextlib.contextmanager
def two_databases(engine: str, folder: pathlib.Path) -> Iterator[list[str]]:
    """Two fresh databases on one engine: east's and west's."""
    if engine == "sqlite":
        yield [f"sqlite:///{folder}/{name}.db" for name in NAMES]
        return
    require_postgres()
    made = [new_pg_schema_url() for _ in NAMES]
    try:
        yield [url for url, _ in made]
    finally:
        for _, schema in made:
            drop_pg_schema(schema)


@dataclass
class World:
    ledgers: dict[str, Ledger]
    wallets: dict[str, list[uuid.UUID]]
    closed: dict[str, list[uuid.UUID]]
    plan: CrashPlan = field(default_factory=CrashPlan)

    def coordinator(self) -> Coordinator:
        """A fresh coordinator process (it remembers nothing), on crashing ledgers."""
        wrapped: dict[str, LedgerPort] = {
            n: CrashingLedger(led, self.plan) for n, led in self.ledgers.items()
        }
        return Coordinator(wrapped, [LINK])


@contextlib.contextmanager
def new_world(engine: str, folder: pathlib.Path) -> Iterator[World]:
    """East and west migrated and linked, each with funded wallets and closed accounts."""
    with two_databases(engine, folder) as urls:
        ledgers = {n: open_ledger(url, migrate=True) for n, url in zip(NAMES, urls, strict=True)}
        try:
            open_link(dict(ledgers), LINK)
            wallets = {n: [uuid.uuid4() for _ in range(WALLETS)] for n in NAMES}
            closed = {n: [uuid.uuid4() for _ in range(CLOSED)] for n in NAMES}
            for name, led in ledgers.items():
                _fund(led, wallets[name], closed[name])
            yield World(ledgers, wallets, closed)
        finally:
            for led in ledgers.values():
                led.close()


@pytest.fixture(params=["sqlite", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[World]:
    """A world of its own for one test."""
    with new_world(request.param, tmp_path) as made:
        yield made


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def shared_world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world for the module's short tests, which each use intents of their own and
    leave nothing in flight (migrating two databases is most of a short test's time)."""
    with new_world(request.param, tmp_path_factory.mktemp("crossledger")) as made:
        yield made


def _fund(led: Ledger, wallets: list[uuid.UUID], closed: list[uuid.UUID]) -> None:
    mint = uuid.uuid4()
    spend_only = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    takes_nothing = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS  # a closed account
    accounts = [Account(mint, CURRENCY, MINT_CODE)]
    accounts += [Account(w, CURRENCY, WALLET_CODE, spend_only) for w in wallets]
    accounts += [Account(c, CURRENCY, WALLET_CODE, takes_nothing) for c in closed]
    assert {r.status for r in led.create_accounts(accounts)} == {Status.CREATED}
    funding = [Transfer(uuid.uuid4(), mint, w, FUNDING_MINOR, CURRENCY, FUND_CODE) for w in wallets]
    assert {r.status for r in led.create_transfers(funding)} == {Status.CREATED}


# -- what the ledgers say -------------------------------------------------------------


def spendable(world: World) -> dict[uuid.UUID, int]:
    """Each customer account's posted balance less what holds reserve on it."""
    found: dict[uuid.UUID, int] = {}
    for name in NAMES:
        ids = world.wallets[name] + world.closed[name]
        for a in world.ledgers[name].lookup_accounts(ids):
            found[a.id] = a.credits_posted - a.debits_posted - a.debits_pending
    return found


def in_flight(world: World) -> int:
    """Money that left a payer's spendable balance and has not reached a payee: per
    direction, the outbound side reserved or posted less the inbound side posted."""
    total = 0
    for source, target in ((LINK.a, LINK.b), (LINK.b, LINK.a)):
        out_id = outbound_account_id(source, target, CURRENCY)
        in_id = inbound_account_id(target, source, CURRENCY)
        [out] = world.ledgers[source].lookup_accounts([out_id])
        [inb] = world.ledgers[target].lookup_accounts([in_id])
        total += out.credits_pending + out.credits_posted - inb.debits_posted
    return total


def legs(world: World, intent: CrossTransfer) -> set[str]:
    """Which legs of the intent exist, on the ledger each belongs to."""
    found: set[str] = set()
    for name, names in (
        (intent.source, (SOURCE_HOLD, SOURCE_POST, SOURCE_VOID)),
        (intent.target, (TARGET_HOLD, TARGET_POST)),
    ):
        ids = {leg_id(intent.intent_id, leg): leg for leg in names}
        found |= {ids[t.id] for t in world.ledgers[name].lookup_transfers(list(ids))}
    return found


POSTED_LEGS = {SOURCE_HOLD, TARGET_HOLD, SOURCE_POST, TARGET_POST}
VOIDED_LEGS = {SOURCE_HOLD, SOURCE_VOID}


# -- the model ------------------------------------------------------------------------


@dataclass
class Model:
    """What must be true, kept apart from the code under test."""

    balance: dict[uuid.UUID, int]
    """Spendable balance of each customer account the model is sure of."""
    total: int
    open_payees: set[uuid.UUID]
    started: dict[uuid.UUID, CrossTransfer] = field(default_factory=dict)
    refused: set[uuid.UUID] = field(default_factory=set)
    unsure: dict[uuid.UUID, CrossTransfer] = field(default_factory=dict)
    """Started intents a crash left somewhere between start and end."""
    ended: dict[State, int] = field(default_factory=lambda: {State.POSTED: 0, State.VOIDED: 0})

    def expected(self, intent: CrossTransfer) -> State:
        return State.POSTED if intent.payee_id in self.open_payees else State.VOIDED

    def unsure_accounts(self) -> set[uuid.UUID]:
        return {a for i in self.unsure.values() for a in (i.payer_id, i.payee_id)}

    def source_hold(self, intent: CrossTransfer) -> bool:
        """The source ledger sees the intent's hold: does it stand (created or exists)?"""
        if intent.intent_id in self.started:
            return True
        if intent.intent_id in self.refused or self.balance[intent.payer_id] < intent.amount_minor:
            self.refused.add(intent.intent_id)  # the core spends the refused id
            return False
        self.balance[intent.payer_id] -= intent.amount_minor
        self.started[intent.intent_id] = intent
        return True

    def end(self, intent: CrossTransfer) -> None:
        """The intent reached its end (a completed call or a completed recovery)."""
        self.unsure.pop(intent.intent_id, None)
        state = self.expected(intent)
        self.ended[state] += 1
        gets = intent.payee_id if state is State.POSTED else intent.payer_id
        if gets in self.balance:  # an unknown payee is in no ledger
            self.balance[gets] += intent.amount_minor


# -- the simulation -------------------------------------------------------------------


@dataclass
class Simulation:
    world: World
    model: Model
    rng: random.Random
    recovered_intents: int = 0
    recoveries: int = 0

    def new_intent(self) -> CrossTransfer | None:
        unsure = self.model.unsure_accounts()
        payers = [(n, a) for n in NAMES for a in self.world.wallets[n] if a not in unsure]
        if not payers:
            return None
        source, payer = self.rng.choice(payers)
        target = next(n for n in NAMES if n != source)
        roll = self.rng.random()
        if roll < 0.7:
            payee = self.rng.choice(self.world.wallets[target])
        elif roll < 0.9:
            payee = self.rng.choice(self.world.closed[target])
        else:
            payee = uuid.uuid4()  # no such account on the target
        have = self.model.balance[payer]
        amount = self.rng.randint(1, max(1, have // 2)) if self.rng.random() < 0.9 else have + 1
        return CrossTransfer(uuid.uuid4(), source, target, payer, payee, amount, CURRENCY)

    def attempt(self, intent: CrossTransfer) -> None:
        """One client call of ``transfer``, perhaps crashing at one of its writes."""
        crash_at = self.rng.randrange(4) if self.rng.random() < 0.4 else None
        if crash_at is not None:
            self.world.plan.arm(crash_at, after=self.rng.random() < 0.5)
        source_seen = crash_at != 0 or self.world.plan.after
        stands = self.model.source_hold(intent) if source_seen else None
        try:
            outcome = self.world.coordinator().transfer(intent)
        except Crash:
            if stands:
                self.model.unsure[intent.intent_id] = intent
            return
        except Refused as refusal:
            assert stands is False, refusal
            return
        finally:
            self.world.plan.calls_left = None
        assert stands is True
        assert outcome.state is self.model.expected(intent)
        self.model.end(intent)

    def recover(self) -> None:
        """Fresh coordinators recover until one gets through (each may crash too)."""
        for tries in range(6):
            if tries < 5 and self.rng.random() < 0.3:
                self.world.plan.arm(self.rng.randrange(6), after=self.rng.random() < 0.5)
            try:
                outcomes = self.world.coordinator().recover()
            except Crash:
                continue
            finally:
                self.world.plan.calls_left = None
            self.after_recovery(outcomes)
            return
        raise AssertionError("no recovery got through")

    def after_recovery(self, outcomes: list[Outcome]) -> None:
        self.recoveries += 1
        for outcome in outcomes:
            intent = self.model.started[outcome.intent_id]
            assert outcome.state is self.model.expected(intent)
        self.recovered_intents += len(outcomes)
        for intent in list(self.model.unsure.values()):
            self.model.end(intent)
        check_resolved(self.world, self.model)

    def step(self) -> None:
        if self.model.unsure and self.rng.random() < 0.3:
            self.recover()
        elif self.model.unsure and self.rng.random() < 0.2:
            self.attempt(self.rng.choice(list(self.model.unsure.values())))  # a client retry
        elif (intent := self.new_intent()) is not None:
            self.attempt(intent)
        else:
            self.recover()
        check_conserved(self.world, self.model)


def check_conserved(world: World, model: Model) -> None:
    seen = spendable(world)
    assert sum(seen.values()) + in_flight(world) == model.total
    unsure = model.unsure_accounts()
    assert {a: b for a, b in seen.items() if a not in unsure} == {
        a: b for a, b in model.balance.items() if a not in unsure
    }


def check_resolved(world: World, model: Model) -> None:
    for name, led in world.ledgers.items():
        assert led.check_integrity().problems == [], name
    assert in_flight(world) == 0
    assert world.coordinator().unfinished() == []
    for intent in model.started.values():
        want = POSTED_LEGS if model.expected(intent) is State.POSTED else VOIDED_LEGS
        assert legs(world, intent) == want, intent
    assert spendable(world) == model.balance


def simulate(world: World, *, seed: int, steps: int) -> Simulation:
    balance = spendable(world)
    open_payees = {w for n in NAMES for w in world.wallets[n]}
    sim = Simulation(world, Model(balance, sum(balance.values()), open_payees), random.Random(seed))
    for _ in range(steps):
        sim.step()
    sim.recover()
    return sim


def check_it_was_a_real_test(sim: Simulation) -> None:
    assert sim.world.plan.crashes >= 10
    assert sim.recovered_intents >= 3, "no recovery ever found an unfinished intent"
    assert sim.model.ended[State.POSTED] >= 10
    assert sim.model.ended[State.VOIDED] >= 5
    assert len(sim.model.refused) >= 1
    assert len(sim.model.started) == sum(sim.model.ended.values())


@pytest.mark.parametrize("seed", [1, 2])
def test_cross_transfers_survive_a_crashing_coordinator(world: World, seed: int) -> None:
    sim = simulate(world, seed=seed, steps=120)
    check_it_was_a_real_test(sim)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12])
def test_cross_transfers_survive_a_crashing_coordinator_long(world: World, seed: int) -> None:
    sim = simulate(world, seed=seed, steps=1000)
    check_it_was_a_real_test(sim)


# -- each crash point, one at a time --------------------------------------------------


def _one_intent(world: World, *, payee_open: bool, amount: int = 700) -> CrossTransfer:
    payee = world.wallets["west"][0] if payee_open else world.closed["west"][0]
    payer = world.wallets["east"][0]
    return CrossTransfer(uuid.uuid4(), "east", "west", payer, payee, amount, CURRENCY)


@pytest.mark.parametrize("payee_open", [True, False], ids=["open_payee", "closed_payee"])
def test_every_crash_point_ends_the_same_way(shared_world: World, payee_open: bool) -> None:
    """The transfer's writes are: source hold, target hold, then post source and post
    target (or void source). A crash before or after each, then a fresh coordinator:
    the same end as a call that never crashed."""
    world = shared_world
    writes = 4 if payee_open else 3
    want = POSTED_LEGS if payee_open else VOIDED_LEGS
    start = spendable(world)
    total = sum(start.values())
    for crash_at in range(writes):
        for after in (False, True):
            intent = _one_intent(world, payee_open=payee_open)
            world.plan.arm(crash_at, after=after)
            with pytest.raises(Crash):
                world.coordinator().transfer(intent)
            assert sum(spendable(world).values()) + in_flight(world) == total
            outcomes = world.coordinator().recover()
            if crash_at == 0 and not after:  # nothing reached a database
                assert outcomes == [] and legs(world, intent) == set()
                continue
            ended_by_the_crashed_call = crash_at == writes - 1 and after
            state = State.POSTED if payee_open else State.VOIDED
            assert [o.state for o in outcomes] == ([] if ended_by_the_crashed_call else [state])
            assert legs(world, intent) == want
            assert in_flight(world) == 0
    moved = 7 * 700 if payee_open else 0  # 7 of the 8 cases reached the source ledger
    after_all = spendable(world)
    assert after_all[world.wallets["east"][0]] == start[world.wallets["east"][0]] - moved
    assert after_all[world.wallets["west"][0]] == start[world.wallets["west"][0]] + moved
    for name, led in world.ledgers.items():
        assert led.check_integrity().problems == [], name


def test_a_replay_answers_as_the_first_call_and_moves_nothing(shared_world: World) -> None:
    world = shared_world
    coordinator = world.coordinator()
    posted = _one_intent(world, payee_open=True)
    voided = _one_intent(world, payee_open=False)
    first = [coordinator.transfer(posted), coordinator.transfer(voided)]
    assert [o.state for o in first] == [State.POSTED, State.VOIDED]
    assert first[1].target_status is Status.EXCEEDS_DEBITS
    before = spendable(world)
    again = [world.coordinator().transfer(posted), world.coordinator().transfer(voided)]
    assert [o.state for o in again] == [State.POSTED, State.VOIDED]
    assert [o.target_status for o in again] == [Status.EXISTS, Status.ID_ALREADY_FAILED]
    assert spendable(world) == before
    assert world.coordinator().recover() == []


def test_a_source_refusal_starts_nothing_and_stays_refused(shared_world: World) -> None:
    world = shared_world
    payer = world.wallets["east"][1]
    too_much = _one_intent(world, payee_open=True, amount=FUNDING_MINOR + 1)
    too_much = CrossTransfer(
        too_much.intent_id, "east", "west", payer, too_much.payee_id, FUNDING_MINOR + 1, CURRENCY
    )
    with pytest.raises(Refused) as refused:
        world.coordinator().transfer(too_much)
    assert refused.value.code == "cross_transfer_refused"
    assert legs(world, too_much) == set()
    # The payer tops up; the same intent id is still refused (the core spent it).
    top_up = CrossTransfer(uuid.uuid4(), "west", "east", world.wallets["west"][1], payer, 10,
                           CURRENCY)  # fmt: skip
    assert world.coordinator().transfer(top_up).state is State.POSTED
    with pytest.raises(Refused):
        world.coordinator().transfer(too_much)
    assert legs(world, too_much) == set()


def test_misuse_is_refused_before_any_write(shared_world: World) -> None:
    world = shared_world
    coordinator = world.coordinator()
    intent = _one_intent(world, payee_open=True)
    unlinked = CrossTransfer(
        intent.intent_id, "east", "west", intent.payer_id, intent.payee_id, 5, "UGX"
    )
    with pytest.raises(Refused) as refused:
        coordinator.transfer(unlinked)
    assert refused.value.code == "cross_link_unknown"
    for amount in (0, AMOUNT_MAX_MINOR + 1):
        bad = CrossTransfer(
            intent.intent_id, "east", "west", intent.payer_id, intent.payee_id, amount, CURRENCY
        )
        with pytest.raises(MalformedRequest):
            coordinator.transfer(bad)
    assert legs(world, intent) == set()
    coordinator.transfer(intent)
    reused = CrossTransfer(
        intent.intent_id, "east", "west", intent.payer_id, intent.payee_id, 701, CURRENCY
    )
    other_payee = CrossTransfer(
        intent.intent_id, "east", "west", intent.payer_id, world.wallets["west"][1], 700, CURRENCY
    )
    for clash in (reused, other_payee):
        with pytest.raises(Conflict) as conflict:
            coordinator.transfer(clash)
        assert conflict.value.code == "cross_intent_reused"
    assert legs(world, intent) == POSTED_LEGS
    assert world.coordinator().transfer(intent).target_status is Status.EXISTS
    with pytest.raises(MalformedRequest):
        Coordinator(dict(world.ledgers), [Link("east", "north", CURRENCY)])


def test_an_overflowing_payee_leaves_the_money_in_flight(world: World) -> None:
    """The one refusal that could change later: the intent waits, nothing is lost."""
    west = world.ledgers["west"]
    mint, full = uuid.uuid4(), uuid.uuid4()
    west.create_accounts([Account(mint, CURRENCY, MINT_CODE), Account(full, CURRENCY, 101)])
    nearly = 2**63 - 1 - 100
    west.create_transfers([Transfer(uuid.uuid4(), mint, full, nearly, CURRENCY, FUND_CODE)])
    intent = CrossTransfer(uuid.uuid4(), "east", "west", world.wallets["east"][2], full, 101,
                           CURRENCY)  # fmt: skip
    before = sum(spendable(world).values())
    outcome = world.coordinator().transfer(intent)
    assert (outcome.state, outcome.target_status) == (State.IN_FLIGHT, Status.OVERFLOWS_CREDITS)
    assert in_flight(world) == 101
    assert sum(spendable(world).values()) + in_flight(world) == before
    assert [o.state for o in world.coordinator().recover()] == [State.IN_FLIGHT]
    assert legs(world, intent) == {SOURCE_HOLD}


def test_recovery_pages_past_its_page_size(world: World) -> None:
    """RECOVERY_PAGE_MAX open intents fit one page; one more needs a second."""
    payer = world.wallets["east"][3]
    payee = world.wallets["west"][3]
    intents = [
        CrossTransfer(uuid.uuid4(), "east", "west", payer, payee, 1, CURRENCY)
        for _ in range(RECOVERY_PAGE_MAX + 1)
    ]
    east = world.ledgers["east"]
    results = east.create_transfers([source_hold(i) for i in intents[:RECOVERY_PAGE_MAX]])
    assert {r.status for r in results} == {Status.CREATED}
    assert len(world.coordinator().unfinished()) == RECOVERY_PAGE_MAX
    assert east.create_transfers([source_hold(intents[-1])])[0].status is Status.CREATED
    found = world.coordinator().unfinished()
    assert [i.intent_id for i in found] == [i.intent_id for i in intents]


def test_coordinators_racing_on_the_same_intents_agree(shared_world: World) -> None:
    """Three coordinators at once (a client's call and two recoveries) finish the same
    intents: each ends once, as its payee decides, and no money moves twice."""
    world = shared_world
    payer = world.wallets["west"][4]
    payees = [world.wallets["east"][4], world.closed["east"][1]]
    intents = [
        CrossTransfer(uuid.uuid4(), "west", "east", payer, payees[i % 2], 100 + i, CURRENCY)
        for i in range(RACED_INTENTS)
    ]
    before = spendable(world)
    coordinator = world.coordinator()
    for intent in intents:
        coordinator.start(intent)
    errors: list[BaseException] = []

    def run(work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    racers = [
        threading.Thread(target=run, args=(lambda: [coordinator.transfer(i) for i in intents],)),
        threading.Thread(target=run, args=(world.coordinator().recover,)),
        threading.Thread(target=run, args=(world.coordinator().recover,)),
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert errors == []
    for i, intent in enumerate(intents):
        assert legs(world, intent) == (POSTED_LEGS if i % 2 == 0 else VOIDED_LEGS)
    posted = sum(i.amount_minor for i in intents[::2])
    after = spendable(world)
    assert after[payer] == before[payer] - posted
    assert after[payees[0]] == before[payees[0]] + posted
    assert after[payees[1]] == before[payees[1]] == 0
    for name, led in world.ledgers.items():
        assert led.check_integrity().problems == [], name
