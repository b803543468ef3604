"""Run a reconciliation job end to end: findings, run row, files.

Each job is a :class:`JobSpec` in :data:`JOBS`: a function from the ledger and a
:class:`JobRequest` (business date, an input file, a scope) to :class:`Findings`, and the
extra tables its HTML report shows. :func:`run_job` records the run and writes its files
(and the extra files a job made, like the ``pack`` job's ``pack/`` folder);
``vledger reconcile JOB`` calls it. A job reads the ledger through
:func:`reconciliation.runs.snapshot`, never through ``api/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ledger import Ledger
from ledger.core.store import to_us
from reconciliation import (
    ageing,
    cash_count,
    escrow,
    integrity,
    pack,
    payouts,
    report,
    statement,
)
from reconciliation.errors import InputInvalid
from reconciliation.report_tables import Tables, _integrity_tables
from reconciliation.runs import Findings, Run, record, write_files


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What a run is asked to reconcile."""

    business_date: date
    input_path: Path | None = None
    """The outside record (a provider statement, a cash count ...), when the job needs one."""
    scope: str | None = None
    """What part of the ledger: a provider, an agent, a storefront (job-specific)."""
    options: dict[str, str] = field(default_factory=dict)
    """Job-specific settings given as ``--option NAME=VALUE`` (a column mapping ...)."""
    service_key_path: Path | None = None
    """The service key's file, for a job that signs (``pack``): the service's setting;
    without it the key is found as ``vledger seal`` finds it."""


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    summary: str
    run: Callable[[Ledger, JobRequest], Findings]
    tables: Callable[[Findings], Tables] = lambda _findings: []
    needs_input: bool = False


@dataclass(frozen=True, slots=True)
class JobResult:
    run: Run
    folder: Path
    findings: Findings


def _integrity(led: Ledger, request: JobRequest) -> Findings:
    return integrity.run_checks(led, request.business_date)


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            integrity.JOB,
            "trial balance, counters against transfers, holds, limits, the seal chain",
            _integrity,
            _integrity_tables,
        ),
        JobSpec(
            "statement",
            "a provider's statement (CSV, camt.053, MT940) against its clearing account",
            statement.run,
            statement.tables,
            needs_input=True,
        ),
        JobSpec(
            "cash-count",
            "an agent's counted cash against expected cash-on-hand; over/short proposes a variance",
            cash_count.run,
            cash_count.tables,
            needs_input=True,
        ),
        JobSpec(
            "orders",
            "a storefront's orders (and its file) against its escrow account",
            escrow.run,
            escrow.tables,
        ),
        JobSpec(
            "settlement",
            "settlement payouts against a provider's credits (reference, window id, window total)",
            payouts.run,
            payouts.tables,
            needs_input=True,
        ),
        JobSpec(
            "ageing",
            "open items in suspense and provider clearing accounts by age bucket",
            ageing.run,
            ageing.tables,
        ),
        JobSpec(
            pack.JOB,
            "an auditor pack for a period: CSVs, a JSON summary, a Beancount export and a"
            " SHA-256 manifest signed with the service key",
            pack.run,
            pack.tables,
        ),
    )
}


def run_job(led: Ledger, job: str, request: JobRequest, *, out: Path) -> JobResult:
    """Run ``job`` for ``request``; record it and write its files under ``out``.
    :class:`~reconciliation.errors.InputInvalid` (a ``ValueError``) for an unknown job or
    a missing input file."""
    spec = JOBS.get(job)
    if spec is None:
        raise InputInvalid(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
    if spec.needs_input and request.input_path is None:
        raise InputInvalid(f"the {job} job needs --input FILE")
    started_at_us = to_us(led.now())
    findings = spec.run(led, request)
    run = record(led, findings, started_at_us=started_at_us)
    html = report.render(run, findings, tables=spec.tables(findings))
    folder = write_files(out, run, findings, html)
    return JobResult(run, folder, findings)
