"""Run a reconciliation job end to end: snapshot, findings, run row, files.

``vledger reconcile JOB`` calls :func:`run_job`. Jobs so far: ``integrity``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ledger import Ledger
from ledger.core.store import to_us
from reconciliation import integrity, report
from reconciliation.runs import Findings, Run, record, write_files

JOBS = (integrity.JOB,)


@dataclass(frozen=True, slots=True)
class JobResult:
    run: Run
    folder: Path
    findings: Findings


def _integrity_tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    header: tuple[Any, ...] = (
        "currency",
        "accounts",
        "debits posted",
        "credits posted",
        "debits pending",
        "credits pending",
    )
    rows: list[tuple[Any, ...]] = [header]
    for currency, t in findings.summary["trial_balance"].items():
        rows.append(
            (
                currency,
                t["accounts"],
                t["debits_posted"],
                t["credits_posted"],
                t["debits_pending"],
                t["credits_pending"],
            )
        )
    return [("Trial balance (minor units)", rows)]


def run_job(led: Ledger, job: str, *, business_date: date, out: Path) -> JobResult:
    """Run ``job`` for ``business_date``; record it and write its files under ``out``."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
    started_at_us = to_us(led.now())
    findings = integrity.run_checks(led, business_date)
    tables = _integrity_tables(findings)
    run = record(led, findings, started_at_us=started_at_us)
    folder = write_files(out, run, findings, report.render(run, findings, tables=tables))
    return JobResult(run, folder, findings)
