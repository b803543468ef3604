"""Scheduling by business date: each past day reconciled once, however many workers race.

The stories run on the test clock: the first transfer is on 1 June, and "today" is
moved on by hand, so the due dates are known exactly.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from ledger import Account, Ledger, Status, Transfer, open_ledger
from ledger.core.postgres_store import conninfo
from reconciliation import integrity, schedule, tasks
from reconciliation.jobs import JOBS, JobRequest, JobSpec, run_job
from reconciliation.runs import SCOPE_ALL, Findings, Run, list_runs
from reconciliation.schedule import (
    ATTEMPTS_MAX,
    LEASE_S,
    SCHEDULE,
    BackfillFailed,
    backfill,
    claim,
    due_dates,
    first_transfer_date,
    list_claims,
)
from reconciliation.tasks import (
    apply_procrastinate_schema,
    defer_backfill,
    run_pg_worker,
    run_scheduler,
)
from tests.conftest import Clock

KES = "KES"
JOB = integrity.JOB
DAY_S = 86_400
JUNE_1, JUNE_2, JUNE_3, JUNE_4 = (date(2026, 6, d) for d in (1, 2, 3, 4))
WAIT_S = 15.0


def pay_once(led: Ledger) -> None:
    """Two accounts and one transfer, at the clock's time."""
    bank, wallet = uuid.uuid4(), uuid.uuid4()
    created = led.create_accounts([Account(bank, KES, 1), Account(wallet, KES, 1)])
    assert all(r.status is Status.CREATED for r in created)
    [result] = led.create_transfers([Transfer(uuid.uuid4(), bank, wallet, 1_000, KES, 1)])
    assert result.status is Status.CREATED


def today(clock: Clock) -> date:
    return clock.now.date()


def dates(runs: list[Run]) -> list[str]:
    return [run.business_date for run in runs]


def wait_until(check: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {timeout_s} s")
        time.sleep(0.1)


# -- due dates ------------------------------------------------------------------------


def test_due_dates_run_from_the_first_transfer_to_yesterday(ledger: Ledger, clock: Clock) -> None:
    assert first_transfer_date(ledger) is None
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_4) == []  # nothing to reconcile yet

    pay_once(ledger)  # 1 June, 08:00 UTC
    clock.advance(2 * DAY_S)
    pay_once(ledger)

    assert first_transfer_date(ledger) == JUNE_1
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_1) == []  # today is never due
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_2) == [JUNE_1]
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_4) == [JUNE_1, JUNE_2, JUNE_3]
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_4, first_date=JUNE_3) == [JUNE_3]
    assert due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_4, limit=2) == [JUNE_1, JUNE_2]
    assert due_dates(ledger, JOB, "agent-7", today=JUNE_4) == [JUNE_1, JUNE_2, JUNE_3]
    with pytest.raises(ValueError, match="limit"):
        due_dates(ledger, JOB, SCOPE_ALL, today=JUNE_4, limit=0)


def test_the_schedule_names_only_jobs_that_need_no_input(ledger: Ledger, tmp_path: Path) -> None:
    assert [(e.job, e.scope) for e in SCHEDULE] == [(JOB, SCOPE_ALL)]
    assert all(not JOBS[e.job].needs_input for e in SCHEDULE)
    with pytest.raises(ValueError, match="unknown job"):
        backfill(ledger, "nope", SCOPE_ALL, today=JUNE_4, out=tmp_path)


def test_a_job_that_needs_an_input_file_is_refused(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        JOBS, "needy", JobSpec("needy", "needs a file", JOBS[JOB].run, needs_input=True)
    )
    with pytest.raises(ValueError, match="needs an input file"):
        backfill(ledger, "needy", SCOPE_ALL, today=JUNE_4, out=tmp_path)


# -- backfill -------------------------------------------------------------------------


def test_backfill_runs_each_missing_date_once_then_nothing(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay_once(ledger)
    clock.advance(3 * DAY_S)  # 4 June

    runs = backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)

    assert dates(runs) == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert all(r.status == "ok" and r.attempt == 1 and r.scope == SCOPE_ALL for r in runs)
    assert len({r.input_sha256 for r in runs}) == 1  # the same state, read three times
    for run in runs:
        assert (tmp_path / JOB / run.business_date / str(run.id) / "summary.json").is_file()
    claims = list_claims(ledger, job=JOB)
    assert [(c.business_date, c.state, c.attempts) for c in claims] == [
        ("2026-06-01", "done", 1),
        ("2026-06-02", "done", 1),
        ("2026-06-03", "done", 1),
    ]
    assert [c.run_id for c in claims] == [r.id for r in runs]

    assert backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path) == []
    assert len(list_runs(ledger, job=JOB)) == 3

    clock.advance(DAY_S)  # 5 June: 4 June is over
    assert dates(backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)) == [
        "2026-06-04"
    ]


def test_a_date_reconciled_by_hand_is_not_run_again(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay_once(ledger)
    clock.advance(3 * DAY_S)
    run_job(ledger, JOB, JobRequest(JUNE_2), out=tmp_path)  # `vledger reconcile --date`

    assert due_dates(ledger, JOB, SCOPE_ALL, today=today(clock)) == [JUNE_1, JUNE_3]
    runs = backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)
    assert dates(runs) == ["2026-06-01", "2026-06-03"]


def flaky_job(failures: int) -> tuple[JobSpec, list[date]]:
    """A job that raises on its first ``failures`` calls; the dates it was called for."""
    calls: list[date] = []

    def run(_led: Ledger, request: JobRequest) -> Findings:
        calls.append(request.business_date)
        if len(calls) <= failures:
            raise RuntimeError(f"provider unreachable (call {len(calls)})")
        return Findings(
            job="flaky",
            business_date=request.business_date,
            scope=SCOPE_ALL,
            rule_version=1,
            input_sha256="0" * 64,
            checked=1,
            detail_header=("kind",),
            detail=[],
            summary={},
        )

    return JobSpec("flaky", "fails at first", run), calls


def test_a_failed_job_leaves_a_failed_claim_that_the_next_pass_retries(
    ledger: Ledger, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, calls = flaky_job(failures=1)
    monkeypatch.setitem(JOBS, "flaky", spec)
    pay_once(ledger)
    clock.advance(3 * DAY_S)

    with pytest.raises(BackfillFailed) as failed:
        backfill(ledger, "flaky", SCOPE_ALL, today=today(clock), out=tmp_path)

    assert failed.value.business_date == JUNE_1 and failed.value.runs == []
    assert calls == [JUNE_1]  # the pass stopped at the failure: later dates wait
    [claimed] = list_claims(ledger, job="flaky")
    assert (claimed.business_date, claimed.state, claimed.attempts) == ("2026-06-01", "failed", 1)
    assert claimed.error == "RuntimeError: provider unreachable (call 1)"
    assert claimed.run_id is None and list_runs(ledger, job="flaky") == []
    assert due_dates(ledger, "flaky", SCOPE_ALL, today=today(clock)) == [JUNE_1, JUNE_2, JUNE_3]

    runs = backfill(ledger, "flaky", SCOPE_ALL, today=today(clock), out=tmp_path)

    assert dates(runs) == ["2026-06-01", "2026-06-02", "2026-06-03"]
    claims = list_claims(ledger, job="flaky")
    assert [(c.state, c.attempts, c.error) for c in claims] == [
        ("done", 2, None),
        ("done", 1, None),
        ("done", 1, None),
    ]


def test_a_date_that_keeps_failing_is_given_up_after_the_attempt_limit(
    ledger: Ledger, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, calls = flaky_job(failures=10**6)
    monkeypatch.setitem(JOBS, "flaky", spec)
    pay_once(ledger)
    clock.advance(DAY_S)

    for attempt in range(1, ATTEMPTS_MAX + 1):
        with pytest.raises(BackfillFailed):
            backfill(ledger, "flaky", SCOPE_ALL, today=today(clock), out=tmp_path)
        [claimed] = list_claims(ledger, job="flaky")
        assert (claimed.state, claimed.attempts) == ("failed", attempt)

    assert due_dates(ledger, "flaky", SCOPE_ALL, today=today(clock)) == []
    assert backfill(ledger, "flaky", SCOPE_ALL, today=today(clock), out=tmp_path) == []
    assert len(calls) == ATTEMPTS_MAX


def test_an_abandoned_claim_is_retaken_after_its_lease(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay_once(ledger)
    clock.advance(DAY_S)
    dead = claim(ledger, JOB, JUNE_1, SCOPE_ALL)  # a worker that then died
    assert dead is not None and dead.attempts == 1

    assert claim(ledger, JOB, JUNE_1, SCOPE_ALL) is None  # held
    assert due_dates(ledger, JOB, SCOPE_ALL, today=today(clock)) == []
    clock.advance(LEASE_S - 1)
    assert backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path) == []

    clock.advance(2)  # the lease is over
    runs = backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)

    assert dates(runs) == ["2026-06-01"]
    [claimed] = list_claims(ledger, job=JOB)
    assert (claimed.state, claimed.attempts, claimed.run_id) == ("done", 2, runs[0].id)


def test_a_worker_that_died_after_recording_is_not_run_twice(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay_once(ledger)
    clock.advance(DAY_S)
    assert claim(ledger, JOB, JUNE_1, SCOPE_ALL) is not None
    recorded = run_job(ledger, JOB, JobRequest(JUNE_1), out=tmp_path).run  # then it died
    clock.advance(LEASE_S + 1)

    assert backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path) == []
    assert claim(ledger, JOB, JUNE_1, SCOPE_ALL) is None
    [claimed] = list_claims(ledger, job=JOB)
    assert (claimed.state, claimed.run_id) == ("done", recorded.id)
    assert len(list_runs(ledger, job=JOB)) == 1


def test_a_claim_left_claimed_after_its_run_was_recorded_is_settled_by_the_next_pass(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    """A worker killed between writing a date's run row and settling its claim: within
    the lease, nobody retakes the claim, so the next look at the due dates settles it."""
    pay_once(ledger)
    clock.advance(2 * DAY_S)
    assert claim(ledger, JOB, JUNE_1, SCOPE_ALL) is not None
    recorded = run_job(ledger, JOB, JobRequest(JUNE_1), out=tmp_path).run  # then it died
    clock.advance(60)  # well within the lease
    [dangling] = list_claims(ledger, job=JOB)
    assert (dangling.state, dangling.run_id) == ("claimed", None)

    assert due_dates(ledger, JOB, SCOPE_ALL, today=today(clock)) == [JUNE_2]

    [settled] = list_claims(ledger, job=JOB)
    assert (settled.state, settled.run_id, settled.attempts) == ("done", recorded.id, 1)
    assert settled.finished_at_us == settled.claimed_at_us + 60 * 1_000_000
    assert settled.claimed_by == dangling.claimed_by  # settled, not retaken
    clock.advance(60)
    assert due_dates(ledger, JOB, SCOPE_ALL, today=today(clock)) == [JUNE_2]  # idempotent
    assert list_claims(ledger, job=JOB) == [settled]
    runs = backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)
    assert dates(runs) == ["2026-06-02"]
    assert len(list_runs(ledger, job=JOB)) == 2  # 1 June was not run again
    assert {c.state for c in list_claims(ledger, job=JOB)} == {"done"}


def test_a_worker_whose_claim_another_pass_settled_keeps_its_run(
    ledger: Ledger,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Another worker's pass looks at the dates between this worker's run row and its
    settling: it settles the claim with this very run, and this worker counts it settled."""
    pay_once(ledger)
    clock.advance(DAY_S)

    def run_then_another_pass(led: Ledger, job: str, request: JobRequest, **kw: object) -> object:
        done = run_job(led, job, request, **kw)  # type: ignore[arg-type]
        assert due_dates(led, JOB, SCOPE_ALL, today=today(clock)) == []  # the other worker
        [early] = list_claims(led, job=JOB)
        assert (early.state, early.run_id) == ("done", done.run.id)
        return done

    monkeypatch.setattr(schedule, "run_job", run_then_another_pass)
    with caplog.at_level("WARNING", logger="vledger.reconciliation.schedule"):
        runs = backfill(ledger, JOB, SCOPE_ALL, today=today(clock), out=tmp_path)

    assert dates(runs) == ["2026-06-01"]
    [claimed] = list_claims(ledger, job=JOB)
    assert (claimed.state, claimed.run_id) == ("done", runs[0].id)
    assert not [r for r in caplog.records if "claim lost" in r.getMessage()]


# -- PostgreSQL: racing workers and procrastinate ------------------------------------


@pytest.fixture
def pg_ledger(pg_url: str, clock: Clock) -> Iterator[Ledger]:
    led = open_ledger(pg_url, migrate=True, clock=clock)
    try:
        yield led
    finally:
        led.close()


def test_two_workers_racing_run_each_date_once_on_postgresql(
    pg_ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    pay_once(pg_ledger)
    clock.advance(20 * DAY_S)
    start = threading.Barrier(2)
    results: list[list[Run]] = [[], []]
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        try:
            with open_ledger(pg_ledger.url, clock=clock) as led:
                start.wait()
                results[slot] = backfill(
                    led, JOB, SCOPE_ALL, today=today(clock), out=tmp_path / str(slot)
                )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S * 4)
    assert errors == []

    recorded = list_runs(pg_ledger, job=JOB)
    assert sorted(dates(recorded)) == [f"2026-06-{d:02d}" for d in range(1, 21)]  # once each
    assert all(run.attempt == 1 for run in recorded)
    assert sorted(dates(results[0] + results[1])) == sorted(dates(recorded))
    assert {c.state for c in list_claims(pg_ledger, job=JOB)} == {"done"}


def procrastinate_jobs(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute("SELECT task_name, status::text FROM procrastinate_jobs").fetchall()
    return [(str(row[0]), str(row[1])) for row in rows]


def test_the_procrastinate_schema_is_applied_once(pg_url: str) -> None:
    assert apply_procrastinate_schema(pg_url) is True
    assert apply_procrastinate_schema(pg_url) is False
    assert procrastinate_jobs(pg_url) == []


def test_a_procrastinate_worker_runs_a_deferred_backfill_then_stops(
    pg_ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    url = pg_ledger.url
    pay_once(pg_ledger)
    clock.advance(3 * DAY_S)
    assert defer_backfill(url) is True
    assert defer_backfill(url) is False  # one pass waiting is enough
    assert procrastinate_jobs(url) == [("vledger.reconcile.backfill", "todo")]
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            run_pg_worker(url, stop=stop, out=tmp_path, clock=clock, poll_s=0.5)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=serve, name="test-recon-worker")
    started = time.monotonic()
    worker.start()
    try:
        wait_until(lambda: len(list_runs(pg_ledger, job=JOB)) == 3)
        wait_until(lambda: procrastinate_jobs(url) == [])  # done, and deleted as successful
    finally:
        stop.set()
        worker.join(WAIT_S)
    assert not worker.is_alive()
    assert errors == []
    assert time.monotonic() - started < 20
    assert sorted(dates(list_runs(pg_ledger, job=JOB))) == [
        "2026-06-01",
        "2026-06-02",
        "2026-06-03",
    ]


def test_the_scheduler_restarts_a_failed_worker_on_postgresql(
    pg_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "RESTART_S", 0.2)
    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler, args=(pg_url,), kwargs={"stop": stop, "out": tmp_path, "clock": clock}
    )
    scheduler.start()  # the database is not migrated yet: the worker fails, and comes back
    try:
        time.sleep(0.5)
        assert scheduler.is_alive()
        with open_ledger(pg_url, migrate=True, clock=clock) as led:
            pay_once(led)
            clock.advance(DAY_S)
            assert defer_backfill(pg_url) in (True, False)  # False: the restart deferred one
            wait_until(lambda: dates(list_runs(led, job=JOB)) == ["2026-06-01"])
    finally:
        stop.set()
        scheduler.join(WAIT_S)
    assert not scheduler.is_alive()


# -- SQLite: the loop inside the service ----------------------------------------------


def test_the_sqlite_loop_runs_a_pass_and_stops(
    sqlite_url: str, clock: Clock, tmp_path: Path
) -> None:
    with open_ledger(sqlite_url, migrate=True, clock=clock) as led:
        pay_once(led)
        clock.advance(2 * DAY_S)
        stop = threading.Event()
        loop = threading.Thread(
            target=run_scheduler,  # on SQLite: run_sqlite_loop
            args=(sqlite_url,),
            kwargs={"stop": stop, "out": tmp_path, "clock": clock},
        )
        loop.start()
        try:
            wait_until(lambda: len(list_claims(led, job=JOB)) == 2)
            wait_until(lambda: {c.state for c in list_claims(led, job=JOB)} == {"done"})
        finally:
            stop.set()
            loop.join(5)
        assert not loop.is_alive()
        assert sorted(dates(list_runs(led, job=JOB))) == ["2026-06-01", "2026-06-02"]
