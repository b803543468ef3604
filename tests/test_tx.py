"""``Ledger.transact``: a flow's own rows and its transfers commit together, on both
engines; and parties onboard idempotently with their accounts."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from ledger import Account, AccountFlags, Ledger, Status, Transfer, open_ledger
from ledger.core.tx import Tx, pyformat
from ledger.flows import events, parties
from ledger.flows.errors import Conflict, Refused
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock

KES = "KES"


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def open_pair(led: Ledger, limited: bool = True) -> tuple[uuid.UUID, uuid.UUID]:
    a, b = new_id(), new_id()
    flags = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS if limited else AccountFlags(0)
    assert [r.status for r in led.create_accounts([Account(a, KES, 1, flags)])] == ["created"]
    assert [r.status for r in led.create_accounts([Account(b, KES, 1)])] == ["created"]
    return a, b


def assert_refused_left_nothing(
    led: Ledger, wallet: uuid.UUID, transfers: list[Transfer], refused: set[int], before: int = 0
) -> None:
    """The wallet got the transfers of the callers not in ``refused`` (on ``before``) and
    each of those wrote its one event; the refused callers' transfers and events are gone."""
    kept = [t for i, t in enumerate(transfers) if i not in refused]
    assert led.lookup_accounts([wallet])[0].credits_posted == before + sum(t.amount for t in kept)
    for i, transfer in enumerate(transfers):
        written = led.transact(
            lambda tx, subject=transfer.id: events.read_events(tx, subject_id=subject)
        )
        assert len(written) == (0 if i in refused else 1)
        assert len(led.lookup_transfers([transfer.id])) == (0 if i in refused else 1)
    assert led.check_integrity().ok


def test_pyformat_keeps_casts_and_percent_signs() -> None:
    assert pyformat("SELECT :a::uuid, '5%' WHERE x = :b_2") == (
        "SELECT %(a)s::uuid, '5%%' WHERE x = %(b_2)s"
    )


def test_rows_and_transfers_commit_together(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    transfer = Transfer(new_id(), funding, wallet, 500, KES, 1)

    def work(tx: Tx) -> list[Status]:
        results = tx.create_transfers([transfer])
        events.emit(tx, "test.moved", {"amount_minor": 500}, subject_id=transfer.id)
        return [r.status for r in results]

    assert ledger.transact(work) == [Status.CREATED]
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 500
    got = ledger.transact(lambda tx: events.read_events(tx, subject_id=transfer.id))
    assert [(e.type, e.payload) for e in got] == [("test.moved", {"amount_minor": 500})]
    assert ledger.check_integrity().ok


def test_raising_rolls_back_rows_and_transfers(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    transfer = Transfer(new_id(), funding, wallet, 500, KES, 1)

    def work(tx: Tx) -> None:
        assert [r.status for r in tx.create_transfers([transfer])] == [Status.CREATED]
        events.emit(tx, "test.moved", {}, subject_id=transfer.id)
        raise Refused("test_refusal", "changed my mind")

    with pytest.raises(Refused):
        ledger.transact(work)
    assert ledger.lookup_transfers([transfer.id]) == []
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 0
    assert ledger.transact(lambda tx: events.read_events(tx, subject_id=transfer.id)) == []
    # The id was never spent: it can be created now.
    assert [r.status for r in ledger.create_transfers([transfer])] == [Status.CREATED]


def test_transfers_in_a_transaction_see_earlier_ones_and_keep_limits(ledger: Ledger) -> None:
    wallet, sink = open_pair(ledger)
    funding = new_id()
    ledger.create_accounts([Account(funding, KES, 1)])

    def work(tx: Tx) -> list[Status]:
        first = tx.create_transfers([Transfer(new_id(), funding, wallet, 100, KES, 1)])
        second = tx.create_transfers([Transfer(new_id(), wallet, sink, 150, KES, 1)])
        third = tx.create_transfers([Transfer(new_id(), wallet, sink, 100, KES, 1)])
        [account] = tx.lookup_accounts([wallet])
        assert account.debits_posted == 100
        return [r.status for r in first + second + third]

    assert ledger.transact(work) == [Status.CREATED, Status.EXCEEDS_CREDITS, Status.CREATED]
    assert ledger.check_integrity().ok


def test_open_chain_at_the_end_answers_chain_open(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    from ledger import TransferFlags

    linked = Transfer(new_id(), funding, wallet, 1, KES, 1, TransferFlags.LINKED)
    statuses = ledger.transact(lambda tx: [r.status for r in tx.create_transfers([linked])])
    assert statuses == [Status.LINKED_EVENT_CHAIN_OPEN]


def test_malformed_transfer_raises_value_error_and_writes_nothing(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    bad = Transfer(new_id(), funding, wallet, -1, KES, 1)
    with pytest.raises(ValueError):
        ledger.transact(lambda tx: tx.create_transfers([bad]))
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 0


def test_flow_rows_that_must_not_change_are_refused(ledger: Ledger) -> None:
    from ledger import InvariantViolation

    ledger.transact(lambda tx: events.emit(tx, "test.kept", {}))
    with pytest.raises(InvariantViolation):
        ledger.transact(lambda tx: tx.execute("UPDATE events SET type = 'test.changed'"))
    with pytest.raises(InvariantViolation):
        ledger.transact(lambda tx: tx.execute("DELETE FROM events"))
    assert [e.type for e in ledger.transact(events.read_events)] == ["test.kept"]


# -- parties ------------------------------------------------------------------------------


def test_onboarding_a_villager_opens_a_wallet_and_the_platform(ledger: Ledger) -> None:
    villager_id = new_id()
    villager = parties.onboard(
        ledger, party_id=villager_id, kind=Kind.VILLAGER, name="Amina", currency=KES,
        kyc_tier="basic",
    )  # fmt: skip
    assert villager.kind is Kind.VILLAGER and set(villager.accounts) == {Role.WALLET}
    [wallet] = ledger.lookup_accounts([villager.account(Role.WALLET)])
    assert wallet.code == parties.AccountCode.WALLET
    assert wallet.flags == AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    platform = ledger.transact(lambda tx: parties.get_party(tx, parties.platform_id(KES)))
    assert set(platform.accounts) == set(parties.KIND_ROLES[Kind.PLATFORM])
    # A replay answers the same party and changes nothing.
    again = parties.onboard(
        ledger, party_id=villager_id, kind=Kind.VILLAGER, name="Amina", currency=KES,
        kyc_tier="basic",
    )  # fmt: skip
    assert again == villager
    with pytest.raises(Conflict):
        parties.onboard(ledger, party_id=villager_id, kind=Kind.AGENT, name="Amina", currency=KES)


def test_onboarding_refuses_bad_input_and_writes_nothing(ledger: Ledger) -> None:
    party_id = new_id()
    with pytest.raises(Refused) as refused:
        parties.onboard(ledger, party_id=party_id, kind=Kind.AGENT, name="Juma", currency="KSH")
    assert refused.value.code == "currency_not_supported"
    with pytest.raises(Refused):
        parties.onboard(
            ledger, party_id=party_id, kind=Kind.AGENT, name="Juma", currency=KES, kyc_tier="x"
        )
    assert ledger.transact(lambda tx: parties.find_party(tx, party_id)) is None
    assert ledger.lookup_accounts([parties.account_id(party_id, Role.FLOAT)]) == []


def test_provider_clearing_accounts_open_once(ledger: Ledger) -> None:
    first = ledger.transact(lambda tx: parties.provider_clearing(tx, KES, "MPESA"))
    second = ledger.transact(lambda tx: parties.provider_clearing(tx, KES, "MPESA"))
    assert first == second
    with pytest.raises(Refused):
        ledger.transact(lambda tx: parties.provider_clearing(tx, KES, "m-pesa"))


def test_racing_onboardings_of_one_party_make_one(ledger: Ledger, clock: Clock) -> None:
    """Eight threads onboard the same agent at once (PostgreSQL: eight transactions race on
    the same keys; the losers rerun and find the winner's rows)."""
    party_id = new_id()
    answers: list[object] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        led = open_ledger(ledger.url, clock=clock)
        try:
            barrier.wait()
            answers.append(
                parties.onboard(led, party_id=party_id, kind=Kind.AGENT, name="Juma", currency=KES)
            )
        except Exception as exc:  # collected, then asserted below
            answers.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(a, parties.Party) for a in answers), answers
    assert len({a.accounts[Role.FLOAT] for a in answers if isinstance(a, parties.Party)}) == 1
    assert ledger.check_integrity().ok


# -- transactions nest ----------------------------------------------------------------


def test_a_transact_inside_a_transact_is_a_savepoint(ledger: Ledger) -> None:
    """The inner one's writes commit with the outer one; an inner refusal the outer
    catches rolls back the inner writes only."""
    funding, wallet = open_pair(ledger, limited=False)
    kept = Transfer(new_id(), funding, wallet, 100, KES, 1)
    undone = Transfer(new_id(), funding, wallet, 7, KES, 1)

    def refused_inner(tx: Tx) -> None:
        assert [r.status for r in tx.create_transfers([undone])] == [Status.CREATED]
        events.emit(tx, "test.undone", {}, subject_id=undone.id)
        raise Refused("test_refusal", "inner changed its mind")

    def outer(tx: Tx) -> int:
        ledger.transact(lambda inner: inner.create_transfers([kept]))
        with pytest.raises(Refused):
            ledger.transact(refused_inner)
        # inside the transaction, the ledger's reads see its own writes
        return ledger.lookup_accounts([wallet])[0].credits_posted

    assert ledger.transact(outer) == 100
    assert [t.id for t in ledger.lookup_transfers([kept.id, undone.id])] == [kept.id]
    assert ledger.transact(lambda tx: events.read_events(tx, subject_id=undone.id)) == []
    assert ledger.check_integrity().ok


def test_ledger_writes_inside_a_transact_roll_back_with_it(ledger: Ledger) -> None:
    """``create_accounts`` and ``create_transfers`` called on the ledger while a
    ``transact`` runs join it: nothing of them stays when it raises."""
    funding, wallet = open_pair(ledger, limited=False)
    account = Account(new_id(), KES, 1)
    transfer = Transfer(new_id(), funding, wallet, 500, KES, 1)

    def work(tx: Tx) -> None:
        assert [r.status for r in ledger.create_accounts([account])] == [Status.CREATED]
        assert [r.status for r in ledger.create_transfers([transfer])] == [Status.CREATED]
        raise Refused("test_refusal", "changed my mind")

    with pytest.raises(Refused):
        ledger.transact(work)
    assert ledger.lookup_accounts([account.id]) == []
    assert ledger.lookup_transfers([transfer.id]) == []
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 0


def test_another_thread_does_not_join_a_running_transact(ledger: Ledger) -> None:
    """Joining is per context: a thread started inside a ``transact`` writes on its own
    (and commits even though the first transaction then rolls back)."""
    funding, wallet = open_pair(ledger, limited=False)
    elsewhere = Transfer(new_id(), funding, wallet, 3, KES, 1)
    results: list[Status] = []
    thread = threading.Thread(
        target=lambda: results.extend(r.status for r in ledger.create_transfers([elsewhere]))
    )

    def work(tx: Tx) -> None:
        tx.execute("SELECT 1")
        thread.start()
        if ledger.dialect == "postgresql":
            thread.join()  # on SQLite it waits for this transaction's write lock
        raise Refused("test_refusal", "roll back")

    with pytest.raises(Refused):
        ledger.transact(work)
    thread.join(timeout=10)
    assert results == [Status.CREATED]
    assert [t.id for t in ledger.lookup_transfers([elsewhere.id])] == [elsewhere.id]


# -- concurrent transactions commit as one group ---------------------------------------


class CountingTransactions:
    """Counts the database transactions the ledger's store opens while installed."""

    def __init__(self, led: Ledger) -> None:
        self.store = led._store
        self.count = 0
        self._real = self.store.transaction

        def counted(work: object) -> object:
            self.count += 1
            return self._real(work)  # type: ignore[arg-type]

        self.store.transaction = counted  # type: ignore[method-assign]

    def remove(self) -> None:
        del self.store.transaction


def test_concurrent_grouped_transactions_share_commits_and_a_refusal_is_its_own(
    ledger: Ledger,
) -> None:
    """Sixteen callers at once while the first holds its transaction: they run in fewer
    database transactions than callers; the refused ones' writes roll back alone."""
    funding, wallet = open_pair(ledger, limited=False)
    callers = 16
    transfers = [Transfer(new_id(), funding, wallet, 10 + i, KES, 1) for i in range(callers)]
    refused = {i for i in range(callers) if i % 5 == 3}
    answers: dict[int, object] = {}
    first_inside = threading.Event()

    def call(i: int) -> None:
        def work(tx: Tx) -> list[Status]:
            if i == 0:
                first_inside.set()
                threading.Event().wait(0.3)  # the others queue meanwhile
            done = [r.status for r in ledger.create_transfers([transfers[i]])]
            events.emit(tx, "test.grouped", {"i": i}, subject_id=transfers[i].id)
            if i in refused:
                raise Refused("test_refusal", f"caller {i} changed its mind")
            return done

        try:
            answers[i] = ledger.transact_grouped(work)
        except Refused as exc:
            answers[i] = exc.code

    counting = CountingTransactions(ledger)
    try:
        first = threading.Thread(target=call, args=(0,))
        first.start()
        assert first_inside.wait(10)
        others = [threading.Thread(target=call, args=(i,)) for i in range(1, callers)]
        for thread in others:
            thread.start()
        for thread in [first, *others]:
            thread.join(timeout=30)
    finally:
        counting.remove()
    assert answers == {
        i: "test_refusal" if i in refused else [Status.CREATED] for i in range(callers)
    }
    assert counting.count < callers  # grouped: fewer transactions than callers
    assert_refused_left_nothing(ledger, wallet, transfers, refused)


def test_a_bug_in_one_grouped_transaction_does_not_fail_the_others(ledger: Ledger) -> None:
    funding, wallet = open_pair(ledger, limited=False)
    transfers = [Transfer(new_id(), funding, wallet, 100, KES, 1) for _ in range(6)]
    answers: dict[int, object] = {}
    gate = threading.Barrier(6)

    def call(i: int) -> None:
        def work(tx: Tx) -> Status:
            [result] = tx.create_transfers([transfers[i]])
            if i == 2:
                raise RuntimeError("a bug")
            return result.status

        gate.wait()
        try:
            answers[i] = ledger.transact_grouped(work)
        except RuntimeError as exc:
            answers[i] = str(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == {i: "a bug" if i == 2 else Status.CREATED for i in range(6)}
    assert ledger.lookup_accounts([wallet])[0].credits_posted == 500
    assert ledger.lookup_transfers([transfers[2].id]) == []
    assert ledger.check_integrity().ok


def _grouped_calls(
    led: Ledger, transfers: list[Transfer], refused: set[int], ran: list[int]
) -> dict[int, object]:
    """Each transfer by its own caller through ``transact_grouped``, at once. The first
    callers hold every writer (one each) until all the others are queued, so that those
    run as one group; callers in ``refused`` raise a refusal after writing; ``ran`` gets
    each work's run."""
    answers: dict[int, object] = {}
    grouped = led._transacts
    holders = grouped._leaders_max
    inside = [threading.Event() for _ in range(holders)]
    release = threading.Event()

    def call(i: int) -> None:
        def work(tx: Tx) -> Status:
            ran.append(i)
            if i < holders:
                inside[i].set()
                assert release.wait(10)
            [result] = tx.create_transfers([transfers[i]])
            events.emit(tx, "test.grouped", {"i": i}, subject_id=transfers[i].id)
            if i in refused:
                raise Refused("test_refusal", f"caller {i} changed its mind")
            return result.status

        try:
            answers[i] = led.transact_grouped(work)
        except Refused as exc:
            answers[i] = exc.code

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(transfers))]
    for i in range(holders):
        threads[i].start()
        assert inside[i].wait(10)
    for thread in threads[holders:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(grouped._queue) < len(transfers) - holders:  # the rest wait as one group
        assert time.monotonic() < deadline
        time.sleep(0.005)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_a_group_that_refuses_nothing_runs_without_savepoints(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Works that refuse nothing share one transaction and no savepoint each; a refusal
    rolls that pass back and the group runs again with a savepoint each: the refused
    work's writes are gone, the others' kept once."""
    from ledger.core import ledger as core_ledger

    savepoints: list[int] = []
    real = core_ledger._in_savepoint

    def counted(store: object, tx: Tx, work: object) -> object:
        savepoints.append(1)
        return real(store, tx, work)  # type: ignore[arg-type]

    monkeypatch.setattr(core_ledger, "_in_savepoint", counted)
    funding, wallet = open_pair(ledger, limited=False)
    plain = [Transfer(new_id(), funding, wallet, 10 + i, KES, 1) for i in range(8)]
    ran: list[int] = []
    answers = _grouped_calls(ledger, plain, set(), ran)
    assert answers == {i: Status.CREATED for i in range(8)}
    assert savepoints == [] and sorted(ran) == list(range(8))  # each ran once, plainly

    mixed = [Transfer(new_id(), funding, wallet, 100 + i, KES, 1) for i in range(8)]
    ran.clear()
    answers = _grouped_calls(ledger, mixed, {5}, ran)
    assert answers == {i: "test_refusal" if i == 5 else Status.CREATED for i in range(8)}
    assert len(savepoints) >= 2  # the group's second pass: a savepoint each
    assert ran.count(5) == 2 and len(ran) > 8  # its group ran twice
    assert_refused_left_nothing(ledger, wallet, mixed, {5}, before=sum(t.amount for t in plain))
