"""Scheduling by business date: every scheduled job reconciles every past day, once.

A business date is a UTC calendar day. For each entry of :data:`SCHEDULE` (a job and a
scope), :func:`due_dates` lists the days from the first business date (the entry's
``start``, else the UTC date of the ledger's first transfer) up to *yesterday* that are
not yet reconciled; :func:`backfill` runs them oldest first. Today is never due: the
day is not over.

Exactly once, even when workers race (two ``vledger worker`` processes on two machines,
a manual call beside the daily task). Before it runs a date, a worker *claims* it: a row
of ``recon_claims`` keyed by (job, business date, scope), written with
``INSERT ... ON CONFLICT DO NOTHING``; the database lets one insert through, and the
loser skips the date. A claim is then

- ``claimed``: a worker is running it (``claimed_at_us``);
- ``done``: its run row is written (``run_id`` names it in ``recon_runs``);
- ``failed``: the job raised; the claim keeps the error and is due again on the next
  pass (retaken by a conditional ``UPDATE``, which also has one winner) until it has
  failed :data:`ATTEMPTS_MAX` times; then it waits for a person, whose manual
  ``vledger reconcile JOB --date D`` writes a run row and so closes the date.

A claim older than :data:`LEASE_S` that is still ``claimed`` belongs to a worker that
died (or to a run longer than the lease, which is why the lease is far longer than any
run): it is due again and may be retaken. The claim's ``token`` fences the late
worker: it can no longer mark the claim done or failed (its run row, if it writes one,
stays, as a further attempt). A date with a run row in ``recon_runs`` is reconciled
whatever its claim says (a manual run counts as well), and the next :func:`due_dates`
settles a claim still ``claimed`` for such a date as ``done`` with the run's id: a
worker killed between writing the run row and marking its claim done leaves no claim
``claimed`` for good (``tests/test_recon_schedule.py``, ``tests/test_faults.py``). That
settling is one conditional ``UPDATE`` per claim (only a ``claimed`` row changes), so it
is idempotent and two workers doing it at once settle it once; the worker still running
the date then finds its claim ``done`` with its own run and counts it as settled.

What "reconciling date D" means. A job reads today's ledger (there is no time travel but
``balance_at``); the run row records D. For ``integrity`` the checks are cumulative: a
clean run started at T shows that every transfer committed up to T, hence everything
of D and before, agrees with itself; the run records that it was made *for* D, and its
``started_at_us`` says *as of when*. Backfilling several past dates in one pass
therefore runs the same checks over (nearly) the same state, and the runs' equal
``input_sha256`` says so. A job whose findings depend on the day (a statement, a cash
count) reads its day from the request.

Adding a job. An entry names a job of :data:`reconciliation.jobs.JOBS` that needs no
input file, and a scope. Jobs that reconcile an outside record (``statement``,
``cash-count``) are not scheduled here: they run when their file arrives. A job per
storefront, provider or agent (``orders``, ``settlement``) gets one entry per scope
(``Scheduled("orders", scope=str(storefront_id))``, or a list built from the parties
table at start-up); ``ageing`` over all suspense and clearing accounts is one entry with
scope ``all``. The scope an entry names is the scope its runs must record.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, timedelta
from enum import StrEnum
from pathlib import Path

from ledger import Ledger
from ledger.core.errors import InvariantViolation
from ledger.core.store import from_us
from ledger.core.tx import Tx
from ledger.limits import LIST_PAGE_SIZE_MAX, US_PER_S
from reconciliation import integrity
from reconciliation.errors import InputInvalid, JobFailed
from reconciliation.jobs import JOBS, JobRequest, run_job
from reconciliation.replica import Replica
from reconciliation.runs import SCOPE_ALL, Run, latest_run_id, latest_runs_by_date

__all__ = [
    "ATTEMPTS_MAX",
    "DUE_DATES_MAX",
    "LEASE_S",
    "SCHEDULE",
    "BackfillFailed",
    "BackfillReport",
    "Claim",
    "ClaimRecord",
    "ClaimState",
    "Scheduled",
    "backfill",
    "backfill_scheduled",
    "claim",
    "due_dates",
    "first_transfer_date",
    "list_claims",
]

log = logging.getLogger("vledger.reconciliation.schedule")

LEASE_S = 3600
"""A claim still ``claimed`` after this long is taken to be abandoned and may be retaken."""
ATTEMPTS_MAX = 5
"""A date whose job failed this many times is no longer retried by the scheduler."""
DUE_DATES_MAX = 366
"""At most this many dates per job and scope in one pass (the oldest); the next pass
goes on where it stopped."""
ERROR_CHARS_MAX = 2000
"""A failed claim keeps at most this much of its error's text."""


class ClaimState(StrEnum):
    """Where a ``recon_claims`` row stands."""

    CLAIMED = "claimed"
    """A worker holds the date (until :data:`LEASE_S` has passed)."""
    DONE = "done"
    """The date has its run."""
    FAILED = "failed"
    """The job raised; retried until :data:`ATTEMPTS_MAX` attempts."""


STATE_CLAIMED = ClaimState.CLAIMED
STATE_DONE = ClaimState.DONE
STATE_FAILED = ClaimState.FAILED


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One job the scheduler runs for every business date, for one scope."""

    job: str
    scope: str = SCOPE_ALL
    start: date | None = None
    """The first business date; ``None``: the UTC date of the ledger's first transfer."""


SCHEDULE: tuple[Scheduled, ...] = (Scheduled(integrity.JOB),)
"""What runs daily. Only jobs that need no input file (see the module's docstring)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A date this worker has won and must now run, mark done, or mark failed."""

    job: str
    business_date: date
    scope: str
    token: uuid.UUID
    attempts: int


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A row of ``recon_claims`` as read back."""

    job: str
    business_date: str
    scope: str
    state: ClaimState
    claimed_by: str
    attempts: int
    claimed_at_us: int
    finished_at_us: int | None
    run_id: uuid.UUID | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    job: str
    scope: str
    error: str
    business_date: date | None = None


@dataclass(slots=True)
class BackfillReport:
    """What one pass over the schedule did: the runs it wrote and what failed."""

    runs: list[Run] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class BackfillFailed(JobFailed):
    """A job raised while backfilling ``business_date``; its claim is marked failed.

    ``runs`` are the runs this pass wrote before it (they stand); the cause is chained.
    """

    code = "backfill_failed"

    def __init__(self, job: str, scope: str, business_date: date, runs: list[Run]) -> None:
        super().__init__(f"{job} ({scope}) failed for {business_date.isoformat()}")
        self.job = job
        self.scope = scope
        self.business_date = business_date
        self.runs = runs


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:200]


def _key(job: str, day: date, scope: str) -> dict[str, object]:
    return {"job": job, "day": day.isoformat(), "scope": scope}


def first_transfer_date(led: Ledger) -> date | None:
    """The UTC date of the first committed transfer, or ``None`` when there is none."""
    row = led.transact(
        lambda tx: tx.one("SELECT created_at_us FROM journal_transfers ORDER BY seq LIMIT 1")
    )
    return None if row is None else from_us(int(row[0])).astimezone(UTC).date()


def due_dates(
    led: Ledger,
    job: str,
    scope: str,
    *,
    today: date,
    first_date: date | None = None,
    limit: int = DUE_DATES_MAX,
) -> list[date]:
    """The business dates from ``first_date`` (default: the first transfer's date) up
    to the day before ``today`` that are not reconciled, oldest first, at most ``limit``.

    Reconciled: a run row exists, or the claim is ``done``, or ``claimed`` within the
    lease, or ``failed`` :data:`ATTEMPTS_MAX` times. A claim still ``claimed`` for a
    date that has a run row is settled ``done`` on the way (:func:`_settle_recorded`).
    """
    if limit < 1:
        raise InputInvalid("limit must be at least 1")
    start = first_date if first_date is not None else first_transfer_date(led)
    last = today - timedelta(days=1)
    if start is None or start > last:
        return []
    closed = led.transact(lambda tx: _closed_dates(tx, job, scope, start, last))
    found: list[date] = []
    day = start
    while day <= last and len(found) < limit:
        if day.isoformat() not in closed:
            found.append(day)
        day += timedelta(days=1)
    return found


def _closed_dates(tx: Tx, job: str, scope: str, first: date, last: date) -> set[str]:
    """The dates in ``first`` .. ``last`` that are reconciled (see :func:`due_dates`);
    settles each ``claimed`` claim whose date has a run row."""
    recorded = latest_runs_by_date(tx, job, scope, first, last)
    closed = set(recorded)
    expired_before_us = tx.now_us - LEASE_S * US_PER_S
    for day, state, attempts, claimed_at_us in tx.execute(
        "SELECT business_date, state, attempts, claimed_at_us FROM recon_claims"
        " WHERE job = :job AND scope = :scope AND business_date BETWEEN :first AND :last"
        " ORDER BY business_date",  # one order of row locks for racing workers
        {"job": job, "scope": scope, "first": first.isoformat(), "last": last.isoformat()},
    ):
        if state == STATE_CLAIMED and str(day) in recorded:
            _settle_recorded(tx, job, str(day), scope, recorded[str(day)])
        if (
            state == STATE_DONE
            or (state == STATE_CLAIMED and int(claimed_at_us) >= expired_before_us)
            or (state == STATE_FAILED and int(attempts) >= ATTEMPTS_MAX)
        ):
            closed.add(str(day))
    return closed


def _settle_recorded(tx: Tx, job: str, day: str, scope: str, run_id: uuid.UUID) -> bool:
    """Mark the claim on ``day`` done with ``run_id``, its date's recorded run, if it is
    still ``claimed``; whether this call settled it. Whoever holds the claim (its token
    is kept), one statement, a no-op once settled."""
    row = tx.one(
        "UPDATE recon_claims SET state = 'done', run_id = :run, error = NULL,"
        " finished_at_us = CASE WHEN claimed_at_us > :now THEN claimed_at_us ELSE :now END"
        " WHERE job = :job AND business_date = :day AND scope = :scope AND state = 'claimed'"
        " RETURNING attempts",
        {"job": job, "day": day, "scope": scope, "run": run_id, "now": tx.now_us},
    )
    return row is not None


def claim(led: Ledger, job: str, day: date, scope: str) -> Claim | None:
    """Take ``day`` for this worker; ``None`` if another worker has it or it is reconciled.

    A new claim is an insert that loses on conflict; a failed claim with attempts left,
    or a ``claimed`` one past its lease, is retaken by an ``UPDATE`` whose condition only
    one worker can meet. The winner that finds a run row already written (its previous
    holder died after recording) marks the claim done and runs nothing.
    """
    token = uuid.uuid4()
    worker = _worker_name()

    def work(tx: Tx) -> Claim | None:
        params = {
            **_key(job, day, scope),
            "token": token,
            "worker": worker,
            "now": tx.now_us,
            "expired_before": tx.now_us - LEASE_S * US_PER_S,
            "attempts_max": ATTEMPTS_MAX,
        }
        won = tx.one(
            "INSERT INTO recon_claims (job, business_date, scope, state, token, claimed_by,"
            " attempts, claimed_at_us) VALUES (:job, :day, :scope, 'claimed', :token,"
            " :worker, 1, :now) ON CONFLICT (job, business_date, scope) DO NOTHING"
            " RETURNING attempts",
            params,
        )
        if won is None:
            won = tx.one(
                "UPDATE recon_claims SET state = 'claimed', token = :token,"
                " claimed_by = :worker, attempts = attempts + 1, claimed_at_us = :now,"
                " finished_at_us = NULL, run_id = NULL, error = NULL"
                " WHERE job = :job AND business_date = :day AND scope = :scope AND"
                " ((state = 'failed' AND attempts < :attempts_max)"
                " OR (state = 'claimed' AND claimed_at_us < :expired_before))"
                " RETURNING attempts",
                params,
            )
        if won is None:
            return None
        recorded = latest_run_id(tx, job, day, scope)
        if recorded is not None:
            _settle_recorded(tx, job, day.isoformat(), scope, recorded)
            return None
        return Claim(job, day, scope, token, int(won[0]))

    return led.transact(work)


def _settle(
    led: Ledger, taken: Claim, state: ClaimState, *, run: Run | None, error: str | None
) -> bool:
    """Mark ``taken`` done or failed; ``False`` when the claim was no longer ours. A
    claim another worker's :func:`due_dates` already settled done with this very run
    (it saw the run row first) is still ours."""

    def work(tx: Tx) -> bool:
        row = tx.one(
            "UPDATE recon_claims SET state = :state, run_id = :run, error = :error,"
            " finished_at_us = CASE WHEN claimed_at_us > :now THEN claimed_at_us"
            " ELSE :now END"
            " WHERE job = :job AND business_date = :day AND scope = :scope"
            " AND token = :token AND (state = 'claimed' OR (state = 'done' AND run_id = :run))"
            " RETURNING attempts",
            {
                **_key(taken.job, taken.business_date, taken.scope),
                "state": state.value,
                "run": None if run is None else run.id,
                "error": error,
                "token": taken.token,
                "now": tx.now_us,
            },
        )
        return row is not None

    ours = led.transact(work)
    if not ours:
        log.warning(
            "claim lost before it was settled (lease expired and retaken)",
            extra={
                "job": taken.job,
                "business_date": taken.business_date.isoformat(),
                "scope": taken.scope,
                "state": state.value,
            },
        )
    return ours


def _run_one(led: Ledger, taken: Claim, out: Path, replica: Replica | None) -> Run:
    request = JobRequest(
        taken.business_date, scope=None if taken.scope == SCOPE_ALL else taken.scope
    )
    try:
        run = run_job(led, taken.job, request, out=out, replica=replica).run
        if run.scope != taken.scope:
            raise InvariantViolation(
                f"the {taken.job} job recorded scope {run.scope!r} for a claim on {taken.scope!r}"
            )
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS_MAX]
        _settle(led, taken, STATE_FAILED, run=None, error=error)
        raise
    _settle(led, taken, STATE_DONE, run=run, error=None)
    return run


def backfill(
    led: Ledger,
    job: str,
    scope: str,
    *,
    today: date,
    out: Path,
    first_date: date | None = None,
    stop: threading.Event | None = None,
    replica: Replica | None = None,
) -> list[Run]:
    """Run ``job`` for every due date (see :func:`due_dates`), oldest first, each at
    most once across all workers; the runs this call wrote. Claims and runs are written
    on ``led``; a job may read ``replica`` (:func:`reconciliation.jobs.run_job`).

    Stops at the first failure: the claim is marked failed and :class:`BackfillFailed`
    is raised (the later dates wait for the next pass, which retries the failed one
    first). Stops between dates when ``stop`` is set; the rest waits for the next pass.
    """
    spec = JOBS.get(job)
    if spec is None:
        raise InputInvalid(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
    if spec.needs_input:
        raise InputInvalid(f"the {job} job needs an input file: it cannot be scheduled")
    runs: list[Run] = []
    for day in due_dates(led, job, scope, today=today, first_date=first_date):
        if stop is not None and stop.is_set():
            break
        taken = claim(led, job, day, scope)
        if taken is None:
            continue
        try:
            runs.append(_run_one(led, taken, out, replica))
        except Exception as exc:
            raise BackfillFailed(job, scope, day, runs) from exc
    return runs


def backfill_scheduled(
    led: Ledger,
    *,
    today: date,
    out: Path,
    schedule: Sequence[Scheduled] = SCHEDULE,
    stop: threading.Event | None = None,
    replica: Replica | None = None,
) -> BackfillReport:
    """One pass: :func:`backfill` for every entry of ``schedule``. An entry that fails
    is logged and reported, and the others still run (its claim keeps the error)."""
    report = BackfillReport()
    for entry in schedule:
        if stop is not None and stop.is_set():
            break
        try:
            report.runs.extend(
                backfill(
                    led,
                    entry.job,
                    entry.scope,
                    today=today,
                    out=out,
                    first_date=entry.start,
                    stop=stop,
                    replica=replica,
                )
            )
        except BackfillFailed as failed:
            report.runs.extend(failed.runs)
            report.failures.append(
                Failure(entry.job, entry.scope, repr(failed.__cause__), failed.business_date)
            )
            log.error("scheduled reconciliation failed: %s", failed, exc_info=failed.__cause__)
        except Exception as exc:  # the database is away, say: log it, do the other entries
            report.failures.append(Failure(entry.job, entry.scope, repr(exc)))
            log.exception("scheduled reconciliation of %s (%s) failed", entry.job, entry.scope)
    return report


def list_claims(
    led: Ledger,
    *,
    job: str | None = None,
    scope: str | None = None,
    limit: int = LIST_PAGE_SIZE_MAX,
) -> list[ClaimRecord]:
    """Claims oldest date first (of one job and scope, if given)."""
    where = []
    if job is not None:
        where.append("job = :job")
    if scope is not None:
        where.append("scope = :scope")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = led.transact(
        lambda tx: tx.execute(
            "SELECT job, business_date, scope, state, claimed_by, attempts, claimed_at_us,"
            f" finished_at_us, run_id, error FROM recon_claims {clause}"
            " ORDER BY business_date, job, scope LIMIT :limit",
            {"job": job, "scope": scope, "limit": limit},
        )
    )
    return [
        ClaimRecord(
            job=row[0],
            business_date=row[1],
            scope=row[2],
            state=ClaimState(row[3]),
            claimed_by=row[4],
            attempts=int(row[5]),
            claimed_at_us=int(row[6]),
            finished_at_us=None if row[7] is None else int(row[7]),
            run_id=row[8],
            error=row[9],
        )
        for row in rows
    ]


def _check_schedule(schedule: Sequence[Scheduled]) -> None:
    for entry in schedule:
        spec = JOBS.get(entry.job)
        if spec is None or spec.needs_input:
            raise InvariantViolation(f"cannot schedule {entry.job!r}: unknown or needs input")


_check_schedule(SCHEDULE)
