"""Running the schedule: ``procrastinate`` workers on PostgreSQL, a plain loop on SQLite.

:func:`run_scheduler` is what ``vledger worker`` (and the service on SQLite) starts
beside the webhook worker; it returns once ``stop`` is set.

PostgreSQL (:func:`run_pg_worker`). Jobs go through a ``procrastinate`` queue in the
ledger's own database, so any number of ``vledger worker`` processes on any number of
machines share one schedule:

- procrastinate's tables live in the same database, in the schema the URL selects (the
  first schema of its ``search_path``, e.g. ``?options=-csearch_path%3Dvledger``;
  ``public`` otherwise). :func:`apply_procrastinate_schema` creates them when
  ``procrastinate_jobs`` is missing there, under an advisory lock, so that two workers
  starting together apply it once. It does not upgrade them: after upgrading
  procrastinate, apply its migrations (``procrastinate schema --migrations-path``)
  before starting workers.
- one task, :data:`TASK_BACKFILL`, runs :func:`~reconciliation.schedule.backfill_scheduled`
  for today's UTC date; it is periodic (:data:`CRON_DAILY`, 02:00 UTC: every worker
  runs procrastinate's periodic deferrer, and procrastinate's ``periodic_defers`` table
  lets one of them defer each tick) and is also deferred once when a worker starts, so
  that a worker back from an outage catches up at once. ``queueing_lock`` keeps at
  most one such job waiting, ``lock`` lets one run at a time; the claims in
  ``recon_claims`` would keep each date to one run even without them.
- a task whose entries failed raises after the other entries ran, so procrastinate
  marks the job failed (failed jobs are kept; successful ones are deleted). The failed
  dates are retried by the next pass (see :mod:`reconciliation.schedule`).
- a worker killed mid-job (``kill -9``, its machine gone) leaves its job ``doing``,
  holding ``lock``: no later job of the schedule would ever start. Every worker sends a
  heartbeat each :data:`HEARTBEAT_S`; when it starts and every :data:`STALLED_CHECK_S`
  it marks failed the queue's jobs whose worker has been silent for
  :data:`STALLED_AFTER_S` (:func:`fail_stalled_jobs`) and defers a pass, which picks up
  where the dead one stopped (the date it held stays claimed until its claim's lease
  ends, then a pass runs it: each date is still recorded once).

SQLite (:func:`run_sqlite_loop`): one process owns the file, so a loop calls the same
pass every :data:`SQLITE_INTERVAL_S` until stopped.

A read replica (``read_database_url``, PostgreSQL only): the worker opens it read-only
(:func:`ledger.core.replica.open_read_ledger`) beside the primary; claims and runs are
written on the primary, and the jobs read the replica when
:func:`reconciliation.replica.plan_reads` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued, ConnectorException
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager

from ledger import Ledger, open_ledger
from ledger.core.postgres_store import conninfo
from ledger.core.replica import open_read_ledger
from reconciliation.errors import InputInvalid, JobFailed
from reconciliation.replica import Replica
from reconciliation.schedule import BackfillReport, backfill_scheduled

__all__ = [
    "CRON_DAILY",
    "QUEUE",
    "SQLITE_INTERVAL_S",
    "TASK_BACKFILL",
    "ScheduledPassFailed",
    "apply_procrastinate_schema",
    "defer_backfill",
    "fail_stalled_jobs",
    "make_app",
    "run_pass",
    "run_pg_worker",
    "run_scheduler",
    "run_sqlite_loop",
]

log = logging.getLogger("vledger.reconciliation.tasks")

Clock = Callable[[], datetime]

QUEUE = "vledger-reconcile"
TASK_BACKFILL = "vledger.reconcile.backfill"
TASK_DAILY = "vledger.reconcile.daily"
CRON_DAILY = "0 2 * * *"
"""Every day at 02:00 UTC (procrastinate evaluates cron in UTC)."""
BACKFILL_LOCK = "vledger-reconcile-backfill"
SCHEMA_LOCK_KEY = 0x766C65646772_01  # "vledgr" + 1: one schema applier at a time
REPORTS_DIR = Path("reports")
"""Where scheduled runs write their files, as ``vledger reconcile`` does by default."""
SQLITE_INTERVAL_S = 900.0
"""The SQLite loop's pause between passes (dates change once a day; a failed date is
retried this often)."""
WORKER_POLL_S = 5.0
"""procrastinate's fallback poll for new jobs (it also listens for notifications)."""
STOP_POLL_S = 0.2
"""How often the PostgreSQL worker looks at ``stop``."""
SHUTDOWN_GRACEFUL_S = 60.0
"""On stop, how long a running backfill may take to finish before it is abandoned (the
pass itself stops between dates; an abandoned claim is retaken after its lease)."""
HEARTBEAT_S = 10.0
"""How often a running worker tells procrastinate it is alive (``procrastinate_workers``)."""
STALLED_AFTER_S = 30.0
"""A worker whose last heartbeat is older than this is dead: its jobs are failed."""
STALLED_CHECK_S = 10.0
"""How often a worker looks for jobs of dead workers (and once as it starts)."""
POOL_SIZE_MAX = 4
RESTART_S = 30.0
"""On PostgreSQL, how long :func:`run_scheduler` waits before restarting a worker that
failed (the database was away, say)."""


class ScheduledPassFailed(JobFailed):
    """A scheduled pass finished with failed entries (their claims keep the errors)."""

    code = "scheduled_pass_failed"


def _today(led: Ledger) -> datetime:
    return led.now().astimezone(UTC)


def run_pass(
    led: Ledger,
    *,
    out: Path = REPORTS_DIR,
    stop: threading.Event | None = None,
    replica: Replica | None = None,
) -> BackfillReport:
    """One pass over the schedule for the ledger clock's UTC date (what the workers and
    the SQLite loop call; a ``Periodic`` in the service may call it as well)."""
    report = backfill_scheduled(led, today=_today(led).date(), out=out, stop=stop, replica=replica)
    log.info(
        "scheduled reconciliation pass: %d run(s), %d failure(s)",
        len(report.runs),
        len(report.failures),
    )
    return report


# -- PostgreSQL ---------------------------------------------------------------------


def apply_procrastinate_schema(database_url: str) -> bool:
    """Create procrastinate's tables in the URL's schema unless they are there already;
    whether they were created. Safe to run any number of times, concurrently."""
    with psycopg.connect(conninfo(database_url)) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
        row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
        if row is not None and row[0]:
            return False
        conn.execute(SchemaManager.get_schema())
    log.info("procrastinate schema applied")
    return True


def _refuse_to_run() -> None:
    raise RuntimeError("this procrastinate app only defers jobs; run_pg_worker runs them")


def make_app(database_url: str, work: Callable[[], None] = _refuse_to_run) -> procrastinate.App:
    """A procrastinate app on the ledger's database whose tasks call ``work``."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=conninfo(database_url), min_size=1, max_size=POOL_SIZE_MAX
        )
    )

    @app.periodic(cron=CRON_DAILY, periodic_id="daily")
    @app.task(name=TASK_DAILY, queue=QUEUE, lock=BACKFILL_LOCK, queueing_lock=BACKFILL_LOCK)
    def daily(timestamp: int) -> None:
        work()

    @app.task(name=TASK_BACKFILL, queue=QUEUE, lock=BACKFILL_LOCK, queueing_lock=BACKFILL_LOCK)
    def backfill() -> None:
        work()

    return app


def defer_backfill(database_url: str) -> bool:
    """Ask the workers for a pass now; ``False`` if one is already waiting."""
    apply_procrastinate_schema(database_url)
    app = make_app(database_url)
    with app.open():
        try:
            app.configure_task(TASK_BACKFILL).defer()
        except AlreadyEnqueued:
            return False
    return True


async def fail_stalled_jobs(app: procrastinate.App) -> list[int]:
    """Mark failed the schedule's jobs left ``doing`` by a worker silent for
    :data:`STALLED_AFTER_S` (killed mid-job: its job would hold :data:`BACKFILL_LOCK`
    for ever); their ids. Failed, not retried: a retried job goes back to ``todo``, where
    the pass already waiting holds the queueing lock; :func:`_recover` defers a pass."""
    manager = app.job_manager
    stalled = await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=STALLED_AFTER_S)
    failed = []
    for job in stalled:
        if job.id is None:
            continue
        try:
            await manager.finish_job_by_id_async(job.id, status=Status.FAILED, delete_job=False)
        except ConnectorException:
            if await manager.get_job_status_async(job.id) is Status.DOING:
                raise
            continue  # another worker finished it first
        log.warning("job %d (%s) of a dead worker marked failed", job.id, job.task_name)
        failed.append(job.id)
    return failed


async def _recover(app: procrastinate.App) -> None:
    """Now and every :data:`STALLED_CHECK_S`: fail dead workers' jobs, then defer a pass
    (unless one waits already) so that the schedule goes on."""
    while True:
        if await fail_stalled_jobs(app):
            with contextlib.suppress(AlreadyEnqueued):
                await app.configure_task(TASK_BACKFILL).defer_async()
        await asyncio.sleep(STALLED_CHECK_S)


async def _serve(app: procrastinate.App, stop: threading.Event, poll_s: float) -> None:
    async with app.open_async():
        with contextlib.suppress(AlreadyEnqueued):
            await app.configure_task(TASK_BACKFILL).defer_async()
        recovering = asyncio.create_task(_recover(app))
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[QUEUE],
                name="vledger-reconcile",
                concurrency=1,
                install_signal_handlers=False,
                delete_jobs="successful",
                fetch_job_polling_interval=poll_s,
                shutdown_graceful_timeout=SHUTDOWN_GRACEFUL_S,
                update_heartbeat_interval=HEARTBEAT_S,
                stalled_worker_timeout=STALLED_AFTER_S,
            )
        )
        try:
            while not stop.is_set() and not worker.done() and not recovering.done():
                await asyncio.wait({worker, recovering}, timeout=STOP_POLL_S)
        finally:
            recovering.cancel()
            worker.cancel()  # procrastinate takes a cancel as a graceful stop
            done = await asyncio.gather(worker, recovering, return_exceptions=True)
        for outcome in done:  # a task that ended by itself: its error, not silence
            if isinstance(outcome, Exception):
                raise outcome


def run_pg_worker(
    database_url: str,
    *,
    stop: threading.Event,
    out: Path = REPORTS_DIR,
    clock: Clock | None = None,
    poll_s: float = WORKER_POLL_S,
    read_database_url: str | None = None,
) -> None:
    """Run a procrastinate worker for the schedule until ``stop`` is set (its jobs
    reading the replica at ``read_database_url`` when given)."""
    apply_procrastinate_schema(database_url)
    with contextlib.ExitStack() as opened:
        led = opened.enter_context(open_ledger(database_url, clock=clock))
        replica = None
        if read_database_url is not None:
            reads = opened.enter_context(open_read_ledger(read_database_url, clock=clock))
            replica = Replica(reads)

        def work() -> None:
            report = run_pass(led, out=out, stop=stop, replica=replica)
            if report.failures:
                raise ScheduledPassFailed(
                    "; ".join(
                        f"{f.job} ({f.scope}) {f.business_date or ''}: {f.error}"
                        for f in report.failures
                    )
                )

        asyncio.run(_serve(make_app(database_url, work), stop, poll_s))


# -- SQLite -------------------------------------------------------------------------


def run_sqlite_loop(
    database_url: str,
    *,
    stop: threading.Event,
    interval_s: float = SQLITE_INTERVAL_S,
    out: Path = REPORTS_DIR,
    clock: Clock | None = None,
) -> None:
    """A pass over the schedule now and every ``interval_s`` until ``stop`` is set.
    Failures are logged (and kept in their claims) and retried on a later pass."""
    if interval_s <= 0:
        raise InputInvalid("interval_s must be positive")
    with open_ledger(database_url, clock=clock) as led:
        while not stop.is_set():
            try:
                run_pass(led, out=out, stop=stop)
            except Exception:  # the loop must outlive a bad pass: log it, try again later
                log.exception("scheduled reconciliation pass failed")
            stop.wait(interval_s)


def run_scheduler(
    database_url: str,
    *,
    stop: threading.Event,
    out: Path = REPORTS_DIR,
    clock: Clock | None = None,
    read_database_url: str | None = None,
) -> None:
    """Run the reconciliation schedule until ``stop`` is set: a procrastinate worker on
    PostgreSQL (restarted after :data:`RESTART_S` if it fails), the loop on SQLite (which
    has no replica: ``read_database_url`` is refused there before anything runs)."""
    if database_url.startswith("sqlite:///"):
        if read_database_url is not None:
            raise InputInvalid("SQLite has no read replica: drop the read database")
        run_sqlite_loop(database_url, stop=stop, out=out, clock=clock)
        return
    while not stop.is_set():
        try:
            run_pg_worker(
                database_url,
                stop=stop,
                out=out,
                clock=clock,
                read_database_url=read_database_url,
            )
        except Exception:  # PostgreSQL away, say: the worker must come back with it
            log.exception("reconciliation worker stopped; restarting in %.0f s", RESTART_S)
            stop.wait(RESTART_S)
