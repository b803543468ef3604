"""A procrastinate job left ``doing`` by a dead worker does not stop the schedule.

A worker killed mid-job (``kill -9``) leaves its job ``doing``, holding the schedule's
lock, so no later pass would start (issue 18). Here the dead worker is made by hand: a
worker registered in ``procrastinate_workers`` that fetched a job, its heartbeat then set
back in the database past :data:`~reconciliation.tasks.STALLED_AFTER_S`. The killed
``vledger worker`` itself is in ``tests/test_faults.py``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import psycopg
import pytest

from ledger import Account, Ledger, Status, Transfer, open_ledger
from ledger.core.postgres_store import conninfo
from reconciliation import integrity
from reconciliation.runs import list_runs
from reconciliation.tasks import (
    BACKFILL_LOCK,
    QUEUE,
    STALLED_AFTER_S,
    TASK_BACKFILL,
    apply_procrastinate_schema,
    fail_stalled_jobs,
    make_app,
    run_pg_worker,
)
from tests.conftest import Clock

DAY_S = 86_400
WAIT_S = 20.0


@pytest.fixture
def pg_ledger(pg_url: str, clock: Clock) -> Iterator[Ledger]:
    led = open_ledger(pg_url, migrate=True, clock=clock)
    apply_procrastinate_schema(pg_url)
    try:
        yield led
    finally:
        led.close()


def jobs(url: str) -> dict[int, str]:
    with psycopg.connect(conninfo(url)) as conn:
        rows = conn.execute("SELECT id, status::text FROM procrastinate_jobs").fetchall()
    return {int(row[0]): str(row[1]) for row in rows}


def silence(url: str, worker_id: int, seconds: float) -> None:
    """Move the worker's last heartbeat ``seconds`` back, as if it had died then."""
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = last_heartbeat - %s::interval"
            " WHERE id = %s",
            (f"{seconds} seconds", worker_id),
        )


async def started_job(app: procrastinate.App, lock: str) -> tuple[int, int]:
    """A backfill job under ``lock``, fetched (``doing``) by a newly registered worker:
    (worker id, job id)."""
    worker_id = await app.job_manager.register_worker()
    job_id = await app.configure_task(TASK_BACKFILL, lock=lock, queueing_lock=lock).defer_async()
    job = await app.job_manager.fetch_job([QUEUE], worker_id)
    assert job is not None and job.id == job_id
    return worker_id, job_id


def test_only_the_jobs_of_a_silent_worker_are_failed(pg_ledger: Ledger) -> None:
    url = pg_ledger.url

    async def story() -> tuple[list[int], list[int], int, int]:
        async with make_app(url).open_async() as app:
            dead, dead_job = await started_job(app, BACKFILL_LOCK)
            _alive, alive_job = await started_job(app, "test-another-lock")
            silence(url, dead, STALLED_AFTER_S - 5)  # quiet, not yet dead
            early = await fail_stalled_jobs(app)
            silence(url, dead, 10)  # now past STALLED_AFTER_S
            failed = await fail_stalled_jobs(app)
            assert await fail_stalled_jobs(app) == []  # once
            return early, failed, dead_job, alive_job

    early, failed, dead_job, alive_job = asyncio.run(story())
    assert early == []
    assert failed == [dead_job]
    assert jobs(url) == {dead_job: "failed", alive_job: "doing"}


def pay_once(led: Ledger) -> None:
    bank, wallet = uuid.uuid4(), uuid.uuid4()
    led.create_accounts([Account(bank, "KES", 1), Account(wallet, "KES", 1)])
    [result] = led.create_transfers([Transfer(uuid.uuid4(), bank, wallet, 1_000, "KES", 1)])
    assert result.status is Status.CREATED


def test_a_worker_started_after_a_dead_one_finishes_the_schedule(
    pg_ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    url = pg_ledger.url
    pay_once(pg_ledger)
    clock.advance(3 * DAY_S)

    async def dead_worker() -> int:
        async with make_app(url).open_async() as app:
            worker_id, job_id = await started_job(app, BACKFILL_LOCK)
            silence(url, worker_id, STALLED_AFTER_S + 1)
            return job_id

    dead_job = asyncio.run(dead_worker())
    done = {dead_job: "failed"}  # kept as failed; the pass after it deleted as done
    stop = threading.Event()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            run_pg_worker(url, stop=stop, out=tmp_path, clock=clock, poll_s=0.5)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=serve, name="test-recon-worker")
    worker.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while len(list_runs(pg_ledger, job=integrity.JOB)) < 3 or jobs(url) != done:
            assert time.monotonic() < deadline, (list_runs(pg_ledger), jobs(url))
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(WAIT_S)
    assert not worker.is_alive()
    assert errors == []
    runs = list_runs(pg_ledger, job=integrity.JOB)
    assert sorted(run.business_date for run in runs) == ["2026-06-01", "2026-06-02", "2026-06-03"]
