"""Runs are records: every reconciliation run leaves an immutable row and its files.

A job reads the ledger in one consistent snapshot (:func:`snapshot`: REPEATABLE READ,
READ ONLY on PostgreSQL; SQLite's one transaction is a snapshot already), works out its
findings, then :func:`record` writes the run row (job, business date, scope, rule
version, input SHA-256, counts, status and the JSON summary) in a transaction of its
own. :func:`write_files` lays the run's files out under a folder of the caller's:

``<out>/<job>/<business date>/<run id>/`` with ``summary.json`` (the row's summary),
``detail.csv`` (one line per finding: the source of truth) and ``report.html`` (for
people), and the extra files a job made (:attr:`Findings.files`: the ``pack`` job's
``pack/`` folder). A run is never edited; running a job again for the same date and scope is a
new row with the next ``attempt``.

Where a run read is part of its row (:class:`RunReads`): the primary, or a streaming
replica, and the WAL positions that say what its reads include (``reconciliation.replica``
decides and explains).
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from ledger import InvariantViolation, Ledger
from ledger.core.tx import Tx

T = TypeVar("T")

RUN_FILE_NAMES = ("summary.json", "detail.csv", "report.html")
"""The files every run has; :attr:`Findings.files` may add others beside them."""
STATUS_OK = "ok"
STATUS_BREAKS = "breaks"
SCOPE_ALL = "all"
SOURCE_PRIMARY = "primary"
SOURCE_REPLICA = "replica"


@dataclass(frozen=True, slots=True)
class RunReads:
    """Where a run read the ledger: ``source`` (:data:`SOURCE_PRIMARY` or
    :data:`SOURCE_REPLICA`); ``read_lsn``, the WAL position its reads include everything
    up to (``X/Y``; ``None`` on SQLite); ``close_lsn``, the primary's position the replica
    had to pass (``None`` when no replica was asked)."""

    source: str = SOURCE_PRIMARY
    read_lsn: str | None = None
    close_lsn: str | None = None


PRIMARY_READS = RunReads()
"""A run that read the primary and knows no position (SQLite, runs before 0031)."""


def reads_out(reads: RunReads) -> dict[str, str | None]:
    """Where a run read, as its summary, ``summary.json`` and its report show it."""
    return {"source": reads.source, "read_lsn": reads.read_lsn, "close_lsn": reads.close_lsn}


@dataclass(frozen=True, slots=True)
class Findings:
    """What a job found, before it is recorded."""

    job: str
    business_date: date
    scope: str
    rule_version: int
    input_sha256: str
    checked: int
    detail_header: tuple[str, ...]
    detail: list[tuple[object, ...]]
    summary: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    """Extra files for the run's folder, by relative POSIX path (``pack/MANIFEST.sha256``);
    written after the three every run has, never over them."""

    @property
    def breaks(self) -> int:
        return len(self.detail)


@dataclass(frozen=True, slots=True)
class Run:
    """A recorded run."""

    id: uuid.UUID
    job: str
    business_date: str
    scope: str
    attempt: int
    rule_version: int
    input_sha256: str
    checked: int
    breaks: int
    status: str
    summary: dict[str, Any]
    started_at_us: int
    finished_at_us: int
    reads: RunReads = PRIMARY_READS


def snapshot(led: Ledger, work: Callable[[Tx], T]) -> T:
    """Run ``work`` over one consistent, read-only view of the ledger (inside a running
    transaction, that one's view: its isolation is set already)."""
    nested = led.in_transaction

    def read(tx: Tx) -> T:
        if tx.dialect == "postgresql" and not nested:
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return work(tx)

    return led.transact(read)


def sha256_of(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def record(
    led: Ledger, findings: Findings, *, started_at_us: int, reads: RunReads = PRIMARY_READS
) -> Run:
    """Write the run row for ``findings`` (on ``led``, the primary, whatever ``reads``
    says the job read): the next attempt for its job, date and scope. Its summary (and
    so ``summary.json``) says where the job read, as ``reads``, beside the row's
    ``read_source``, ``read_lsn`` and ``close_lsn``."""
    status = STATUS_OK if findings.breaks == 0 else STATUS_BREAKS
    summary = {
        **findings.summary,
        "checked": findings.checked,
        "breaks": findings.breaks,
        "reads": reads_out(reads),
    }
    run_id = uuid.uuid4()
    day = findings.business_date.isoformat()

    def work(tx: Tx) -> Run:
        row = tx.one(
            "SELECT COALESCE(MAX(attempt), 0) FROM recon_runs"
            " WHERE job = :job AND business_date = :day AND scope = :scope",
            {"job": findings.job, "day": day, "scope": findings.scope},
        )
        attempt = int(row[0] if row else 0) + 1
        run = Run(
            id=run_id,
            job=findings.job,
            business_date=day,
            scope=findings.scope,
            attempt=attempt,
            rule_version=findings.rule_version,
            input_sha256=findings.input_sha256,
            checked=findings.checked,
            breaks=findings.breaks,
            status=status,
            summary={**summary, "run_id": str(run_id), "attempt": attempt, "status": status},
            started_at_us=started_at_us,
            finished_at_us=max(tx.now_us, started_at_us),
            reads=reads,
        )
        tx.execute(
            "INSERT INTO recon_runs (id, job, business_date, scope, attempt, rule_version,"
            " input_sha256, checked, breaks, status, summary, started_at_us, finished_at_us,"
            " read_source, read_lsn, close_lsn)"
            " VALUES (:id, :job, :day, :scope, :attempt, :rule_version, :input, :checked,"
            " :breaks, :status, :summary, :started, :finished, :source, :read_lsn,"
            " :close_lsn)",
            {
                "id": run.id,
                "job": run.job,
                "day": run.business_date,
                "scope": run.scope,
                "attempt": run.attempt,
                "rule_version": run.rule_version,
                "input": run.input_sha256,
                "checked": run.checked,
                "breaks": run.breaks,
                "status": run.status,
                "summary": json.dumps(run.summary, sort_keys=True),
                "started": run.started_at_us,
                "finished": run.finished_at_us,
                "source": reads.source,
                "read_lsn": reads.read_lsn,
                "close_lsn": reads.close_lsn,
            },
        )
        return run

    return led.transact(work)


_RUN_COLUMNS = (
    "id, job, business_date, scope, attempt, rule_version, input_sha256, checked, breaks,"
    " status, summary, started_at_us, finished_at_us, read_source, read_lsn, close_lsn"
)


def _run(row: Sequence[Any]) -> Run:
    return Run(
        id=row[0],
        job=row[1],
        business_date=row[2],
        scope=row[3],
        attempt=int(row[4]),
        rule_version=int(row[5]),
        input_sha256=row[6],
        checked=int(row[7]),
        breaks=int(row[8]),
        status=row[9],
        summary=json.loads(row[10]),
        started_at_us=int(row[11]),
        finished_at_us=int(row[12]),
        reads=RunReads(str(row[13]), row[14], row[15]),
    )


def list_runs(
    led: Ledger, *, job: str | None = None, limit: int = 100, after: Run | None = None
) -> list[Run]:
    """The newest runs first (of one job, if given); ``after`` a run, the ones older than
    it in that order (a keyset cursor: started, attempt, id, all descending)."""
    where = ["job = :job"] if job is not None else []
    params: dict[str, object] = {"job": job, "limit": limit}
    if after is not None:
        where.append(
            "(started_at_us < :at OR (started_at_us = :at AND (attempt < :attempt"
            " OR (attempt = :attempt AND id < :id))))"
        )
        params.update(at=after.started_at_us, attempt=after.attempt, id=after.id)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = led.transact(
        lambda tx: tx.execute(
            f"SELECT {_RUN_COLUMNS} FROM recon_runs {clause}"
            " ORDER BY started_at_us DESC, attempt DESC, id DESC LIMIT :limit",
            params,
        )
    )
    return [_run(row) for row in rows]


def get_run(led: Ledger, run_id: uuid.UUID) -> Run | None:
    row = led.transact(
        lambda tx: tx.one(f"SELECT {_RUN_COLUMNS} FROM recon_runs WHERE id = :id", {"id": run_id})
    )
    return None if row is None else _run(row)


def runs_of_period(tx: Tx, first: date, last: date) -> list[Run]:
    """Every run whose business date is ``first`` .. ``last`` (inclusive), by business
    date, job, scope and attempt."""
    rows = tx.execute(
        f"SELECT {_RUN_COLUMNS} FROM recon_runs"
        " WHERE business_date >= :first AND business_date <= :last"
        " ORDER BY business_date, job, scope, attempt",
        {"first": first.isoformat(), "last": last.isoformat()},
    )
    return [_run(row) for row in rows]


def dates_with_runs(tx: Tx, job: str, scope: str, first: date, last: date) -> set[str]:
    """The business dates (ISO text) in ``first`` .. ``last`` that have a run of ``job``
    over ``scope``."""
    rows = tx.execute(
        "SELECT DISTINCT business_date FROM recon_runs WHERE job = :job"
        " AND scope = :scope AND business_date BETWEEN :first AND :last",
        {"job": job, "scope": scope, "first": first.isoformat(), "last": last.isoformat()},
    )
    return {str(row[0]) for row in rows}


def latest_runs_by_date(
    tx: Tx, job: str, scope: str, first: date, last: date
) -> dict[str, uuid.UUID]:
    """The business dates (ISO text) in ``first`` .. ``last`` that have a run of ``job``
    over ``scope``, each with the id of its last attempt."""
    rows = tx.execute(
        "SELECT business_date, id FROM recon_runs WHERE job = :job AND scope = :scope"
        " AND business_date BETWEEN :first AND :last ORDER BY business_date, attempt",
        {"job": job, "scope": scope, "first": first.isoformat(), "last": last.isoformat()},
    )
    return {str(row[0]): row[1] for row in rows}  # the last attempt of a date wins


def latest_run_id(tx: Tx, job: str, business_date: date, scope: str) -> uuid.UUID | None:
    """The id of the last attempt of ``job`` over ``scope`` for ``business_date``."""
    row = tx.one(
        "SELECT id FROM recon_runs WHERE job = :job AND business_date = :day"
        " AND scope = :scope ORDER BY attempt DESC LIMIT 1",
        {"job": job, "day": business_date.isoformat(), "scope": scope},
    )
    return None if row is None else row[0]


def write_files(out: Path, run: Run, findings: Findings, html: str) -> Path:
    """Write the run's summary, detail and report; the folder they are in."""
    folder = out / run.job / run.business_date / str(run.id)
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "summary.json").write_text(json.dumps(run.summary, indent=2, sort_keys=True) + "\n")
    with (folder / "detail.csv").open("w", newline="") as detail:
        writer = csv.writer(detail, lineterminator="\n")
        writer.writerow(findings.detail_header)
        writer.writerows(findings.detail)
    (folder / "report.html").write_text(html)
    for name, data in sorted(findings.files.items()):
        path = folder.joinpath(*_relative_parts(name))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def _relative_parts(name: str) -> tuple[str, ...]:
    """The parts of an extra file's path; a path that could leave the run's folder, or
    replace one of its three files, is a bug in the job."""
    parts = PurePosixPath(name).parts
    if (
        not parts
        or PurePosixPath(name).is_absolute()
        or any(part in ("", ".", "..") or "\\" in part for part in parts)
        or name in RUN_FILE_NAMES
    ):
        raise InvariantViolation(f"a run's extra file must be a plain relative path: {name!r}")
    return parts
