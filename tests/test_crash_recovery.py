"""Kill the ledger's process mid-load (SIGKILL) and check that nothing answered was lost.

``tests/crash_load.py`` runs as a subprocess: 4 threads sharing one ``Ledger`` submit
transfers, linked chains, holds, posts and voids, logging each call's intent before it
and its answers after it. After ``kill -9`` mid-load, the database must hold:

- every transfer logged ``created``, with the accounts, amount, flags and hold it was
  asked for (a post or void: the hold's accounts, the amount posted or released);
- nothing logged as refused, nothing that was never asked for, and every linked chain
  whole or not at all;
- at most one call per thread committed without its answers logged (the kill can fall
  between the commit and the log line);
- a clean ``check_integrity``.

Then the load runs again on the same database for a moment (new ids), exits cleanly,
and everything is checked again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger import Ledger, Status, Transfer, TransferFlags, open_ledger
from tests import crash_load

LOAD_SCRIPT = Path(__file__).with_name("crash_load.py")
THREADS = 4
RESULTS_BEFORE_KILL = 300
STARTUP_TIMEOUT_S = 30.0
RUN_AFTER_LOAD_S = 1.0
RESTART_SECONDS = 1.0

F = TransferFlags
RESOLVING = F.POST_PENDING | F.VOID_PENDING
REFUSALS = {Status.EXCEEDS_CREDITS, Status.LINKED_EVENT_FAILED}


@pytest.fixture(params=["sqlite", "postgres"])
def crash_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database on each engine."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/crash.db"
    else:
        url = request.getfixturevalue("pg_url")
    open_ledger(url, migrate=True).close()
    yield url


@dataclass(frozen=True)
class Intent:
    call: str
    id: uuid.UUID
    flags: TransferFlags
    debit: uuid.UUID | None
    credit: uuid.UUID | None
    amount: int | None
    pending_id: uuid.UUID | None


def _lines(path: Path) -> list[list[str]]:
    """The complete lines of a log (a line cut short by the kill is left out)."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [line.split() for line in complete.splitlines()]


def _uuid(field: str) -> uuid.UUID | None:
    return None if field == "-" else uuid.UUID(field)


def read_logs(log: Path) -> tuple[dict[uuid.UUID, Intent], dict[uuid.UUID, list[Status]]]:
    intents: dict[uuid.UUID, Intent] = {}
    for call, tid, flags, debit, credit, amount, pending in _lines(Path(f"{log}.intent")):
        intents[uuid.UUID(tid)] = Intent(
            call,
            uuid.UUID(tid),
            F(int(flags)),
            _uuid(debit),
            _uuid(credit),
            None if amount == "-" else int(amount),
            _uuid(pending),
        )
    results: dict[uuid.UUID, list[Status]] = defaultdict(list)
    for tid, status in _lines(log):
        results[uuid.UUID(tid)].append(Status(status))
    return intents, results


def all_transfers(led: Ledger) -> dict[uuid.UUID, Transfer]:
    """Every transfer in the database (they all touch one of the load's accounts)."""
    found: dict[uuid.UUID, Transfer] = {}
    for account_id in crash_load.ACCOUNTS:
        after: uuid.UUID | None = None
        while True:
            page = led.account_transfers(account_id, after=after, limit=1000)
            found.update((t.id, t) for t in page)
            if len(page) < 1000:
                break
            after = page[-1].id
    return found


def verify(led: Ledger, logs: list[Path]) -> dict[str, int]:
    """Check the database against the logs of every run so far; some counts for the eye."""
    intents: dict[uuid.UUID, Intent] = {}
    results: dict[uuid.UUID, list[Status]] = defaultdict(list)
    for log in logs:
        more_intents, more_results = read_logs(log)
        intents.update(more_intents)
        for tid, statuses in more_results.items():
            results[tid].extend(statuses)
    stored = all_transfers(led)

    assert set(results) <= set(intents), "an answer was logged for a transfer never asked"
    assert set(stored) <= set(intents), "the database holds a transfer nobody asked for"
    for tid, statuses in results.items():
        if tid in crash_load.FUNDINGS:
            assert statuses[0] in {Status.CREATED, Status.EXISTS}
            assert set(statuses[1:]) <= {Status.EXISTS}
            assert tid in stored
            continue
        (status,) = statuses
        assert status in {Status.CREATED} | REFUSALS, (tid, status)
        if status is not Status.CREATED:
            assert tid not in stored, f"{tid} answered {status} yet is in the database"
            continue
        assert tid in stored, f"{tid} answered created, then lost in the crash"
        t, want = stored[tid], intents[tid]
        assert (t.flags, t.pending_id) == (want.flags, want.pending_id), tid
        if want.flags & RESOLVING:
            assert want.pending_id in stored
            hold = stored[want.pending_id]
            assert (t.debit_account_id, t.credit_account_id) == (
                hold.debit_account_id,
                hold.credit_account_id,
            )
            posts_part = want.flags & F.POST_PENDING and want.amount is not None
            assert t.amount == (want.amount if posts_part else hold.amount), tid
        else:
            assert (t.debit_account_id, t.credit_account_id, t.amount) == (
                want.debit,
                want.credit,
                want.amount,
            ), tid

    calls: dict[str, list[uuid.UUID]] = defaultdict(list)
    for tid, intent in intents.items():
        calls[intent.call].append(tid)
    unanswered = [ids for ids in calls.values() if not any(i in results for i in ids)]
    committed_unlogged = [ids for ids in unanswered if any(i in stored for i in ids)]
    for ids in calls.values():
        in_db = [i in stored for i in ids]
        assert all(in_db) or not any(in_db), f"a linked chain was committed in part: {ids}"
    # Each thread has one call in flight at a time: only those can lack their answers.
    assert len(unanswered) <= THREADS * len(logs), unanswered
    report = led.check_integrity()
    assert report.ok, report.problems
    return {
        "calls": len(calls),
        "created": sum(s == [Status.CREATED] for s in results.values()),
        "stored": len(stored),
        "unanswered": len(unanswered),
        "committed_unlogged": len(committed_unlogged),
    }


def start_load(url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    output = log.with_suffix(".out").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, str(LOAD_SCRIPT), url, str(log), "--threads", str(THREADS), *args],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    finally:
        output.close()


def answered(log: Path) -> int:
    return len(_lines(log))


def test_sigkill_mid_load_loses_nothing_answered(crash_url: str, tmp_path: Path) -> None:
    first = tmp_path / "run1.log"
    proc = start_load(crash_url, first)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while answered(first) < RESULTS_BEFORE_KILL:
            assert proc.poll() is None, first.with_suffix(".out").read_text()
            assert time.monotonic() < deadline, "the load never got going"
            time.sleep(0.05)
        time.sleep(RUN_AFTER_LOAD_S)
        assert proc.poll() is None, first.with_suffix(".out").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    led = open_ledger(crash_url)
    try:
        counts = verify(led, [first])
        assert counts["created"] >= RESULTS_BEFORE_KILL // 2, counts
    finally:
        led.close()

    second = tmp_path / "run2.log"
    proc = start_load(crash_url, second, "--seconds", str(RESTART_SECONDS))
    try:
        assert proc.wait(timeout=60) == 0, second.with_suffix(".out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    led = open_ledger(crash_url)
    try:
        after = verify(led, [first, second])
        assert after["created"] > counts["created"], (counts, after)
        assert after["unanswered"] == counts["unanswered"], "the clean run left calls open"
        print(f"after the kill: {counts}; after the restart: {after}")
    finally:
        led.close()
