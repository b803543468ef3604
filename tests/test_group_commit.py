"""Group commit: concurrent callers share one database transaction, and each gets its own
answers back, exactly as if it had called alone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence

import pytest

from ledger import Account, Ledger, Result, Status, Transfer, TransferFlags
from ledger.core.errors import StorageError
from ledger.core.ledger import GroupCommit
from ledger.core.values import BATCH_SIZE_MAX


def transfers(count: int, tag: int) -> list[Transfer]:
    return [
        Transfer(uuid.UUID(int=(tag << 32) | i), uuid.uuid4(), uuid.uuid4(), tag, "KES", 1)
        for i in range(count)
    ]


class RecordingRun:
    """Stands in for the store: records each batch, answers per transfer from its amount."""

    def __init__(self) -> None:
        self.batches: list[list[Transfer]] = []
        self.first_entered = threading.Event()
        self.release_first = threading.Event()

    def __call__(self, batch: Sequence[Transfer]) -> list[Result]:
        self.batches.append(list(batch))
        if len(self.batches) == 1:
            self.first_entered.set()
            assert self.release_first.wait(10)
        if any(t.amount == 13 for t in batch):
            raise StorageError("unlucky batch")
        return [
            Result(i, Status.CREATED if (t.amount or 0) % 2 else Status.EXCEEDS_CREDITS)
            for i, t in enumerate(batch)
        ]


def test_waiting_callers_are_committed_together_and_answered_apart() -> None:
    run = RecordingRun()
    group = GroupCommit(run)
    answers: dict[int, list[Result]] = {}

    def call(tag: int, count: int) -> None:
        answers[tag] = group.submit(transfers(count, tag))

    first = threading.Thread(target=call, args=(1, 2))
    first.start()
    assert run.first_entered.wait(10)
    waiting = [threading.Thread(target=call, args=(tag, tag)) for tag in range(2, 9)]
    for thread in waiting:
        thread.start()
    while len(group._queue) < len(waiting):  # all seven are queued behind the first
        threading.Event().wait(0.001)
    run.release_first.set()
    for thread in [first, *waiting]:
        thread.join(10)
    assert len(run.batches) == 2
    assert len(run.batches[1]) == sum(range(2, 9))
    for tag in range(1, 9):
        count = 2 if tag == 1 else tag
        expected = Status.CREATED if tag % 2 else Status.EXCEEDS_CREDITS
        assert answers[tag] == [Result(i, expected) for i in range(count)]


def test_one_callers_failure_does_not_fail_the_others() -> None:
    run = RecordingRun()
    group = GroupCommit(run)
    outcomes: dict[int, object] = {}

    def call(tag: int) -> None:
        try:
            outcomes[tag] = group.submit(transfers(1, tag))
        except StorageError as exc:
            outcomes[tag] = exc

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert run.first_entered.wait(10)
    others = [threading.Thread(target=call, args=(tag,)) for tag in (12, 13, 14)]
    for thread in others:
        thread.start()
    while len(group._queue) < len(others):
        threading.Event().wait(0.001)
    run.release_first.set()
    for thread in [first, *others]:
        thread.join(10)
    assert isinstance(outcomes[13], StorageError)
    assert outcomes[12] == [Result(0, Status.EXCEEDS_CREDITS)]
    assert outcomes[14] == [Result(0, Status.EXCEEDS_CREDITS)]
    assert outcomes[1] == [Result(0, Status.CREATED)]


def test_a_chain_never_spans_two_callers(ledger: Ledger) -> None:
    bank, shop = uuid.uuid4(), uuid.uuid4()
    ledger.create_accounts([Account(bank, "KES", 1), Account(shop, "KES", 1)])
    open_chain = [Transfer(uuid.uuid4(), bank, shop, 5, "KES", 1, TransferFlags.LINKED)]
    closed = [Transfer(uuid.uuid4(), bank, shop, 7, "KES", 1)]
    results: dict[str, list[Result]] = {}
    barrier = threading.Barrier(2)

    def call(name: str, batch: list[Transfer]) -> None:
        barrier.wait()
        results[name] = ledger.create_transfers(batch)

    threads = [
        threading.Thread(target=call, args=("open", open_chain)),
        threading.Thread(target=call, args=("closed", closed)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results["open"] == [Result(0, Status.LINKED_EVENT_CHAIN_OPEN)]
    assert results["closed"] == [Result(0, Status.CREATED)]
    assert ledger.lookup_accounts([shop])[0].credits_posted == 7


@pytest.mark.parametrize("threads", [8])
def test_many_threads_sharing_one_ledger_each_get_their_answers(
    ledger: Ledger, threads: int
) -> None:
    bank = uuid.uuid4()
    wallets = [uuid.uuid4() for _ in range(threads)]
    ledger.create_accounts([Account(i, "KES", 1) for i in [bank, *wallets]])
    answers: dict[int, list[list[Result]]] = {i: [] for i in range(threads)}
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        barrier.wait()
        for round_ in range(25):
            batch = [Transfer(uuid.uuid4(), bank, wallets[n], 1 + round_, "KES", 1)]
            if round_ % 5 == 0:  # now and then a failing one, which must stay this caller's
                batch.append(Transfer(uuid.uuid4(), bank, uuid.uuid4(), 1, "KES", 1))
            answers[n].append(ledger.create_transfers(batch))

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    for n in range(threads):
        for round_, result in enumerate(answers[n]):
            expected = [Result(0, Status.CREATED)]
            if round_ % 5 == 0:
                expected.append(Result(1, Status.CREDIT_ACCOUNT_NOT_FOUND))
            assert result == expected
    credited = [a.credits_posted for a in ledger.lookup_accounts(wallets)]
    assert credited == [sum(range(1, 26))] * threads
    assert ledger.check_integrity().ok


class GatedRun:
    """Stands in for the store: each batch waits for its own gate to open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.gates: dict[int, threading.Event] = {}

    def gate(self, size: int) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(size, threading.Event())

    def __call__(self, batch: Sequence[Transfer]) -> list[Result]:
        with self.lock:
            self.started.append(len(batch))
        assert self.gate(len(batch)).wait(10)
        return [Result(i, Status.CREATED) for i in range(len(batch))]


def wait_until(check: Callable[[], bool]) -> None:
    for _ in range(10_000):
        if check():
            return
        threading.Event().wait(0.001)
    raise AssertionError("timed out")


def test_a_free_leaders_place_is_taken_while_callers_are_queued() -> None:
    """Two callers' batches that do not fit in one group run side by side as soon as both
    leaders' places are free (the caller first in the queue is woken to lead, and it wakes
    the next one when a place is still free)."""
    run = GatedRun()
    group = GroupCommit(run, leaders_max=2)
    big = BATCH_SIZE_MAX // 2 + 1
    answers: dict[int, list[Result]] = {}

    def call(tag: int, count: int) -> None:
        answers[tag] = group.submit(transfers(count, tag))

    threads = [threading.Thread(target=call, args=(tag, tag)) for tag in (1, 2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sorted(run.started) == [1, 2])  # both leaders busy
    queued = [threading.Thread(target=call, args=(tag, big + tag)) for tag in (3, 4)]
    for thread in queued:
        thread.start()
    wait_until(lambda: len(group._queue) == 2)
    run.gate(1).set()
    run.gate(2).set()
    # Neither big batch may finish, yet both must start: two leaders, one batch each.
    wait_until(lambda: sorted(run.started) == [1, 2, big + 3, big + 4])
    run.gate(big + 3).set()
    run.gate(big + 4).set()
    for thread in [*threads, *queued]:
        thread.join(10)
    for tag, count in ((1, 1), (2, 2), (3, big + 3), (4, big + 4)):
        assert answers[tag] == [Result(i, Status.CREATED) for i in range(count)]
