"""Run a reconciliation job end to end: findings, run row, files.

Each job is a :class:`JobSpec` in :data:`JOBS`: a function from the ledger and a
:class:`JobRequest` (business date, an input file, a scope) to :class:`Findings`, and the
extra tables its HTML report shows. :func:`run_job` records the run and writes its files
(and the extra files a job made, like the ``pack`` job's ``pack/`` folder);
``vledger reconcile JOB`` calls it. A job reads the ledger through
:func:`reconciliation.runs.snapshot`, never through ``api/``.

Given a read replica (:class:`reconciliation.replica.Replica`), :func:`run_job` lets a
job that only reads (:attr:`JobSpec.replica_ok`) read there once the replica has replayed
past the primary's position after the job's last business date closed, else the primary
(:func:`reconciliation.replica.plan_reads`); the run row, written on the primary, says
which and at what WAL position.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from datetime import date
from pathlib import Path

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.store import to_us
from ledger.flows import parties
from ledger.flows.errors import Refused
from ledger.limits import AMOUNT_MAX_MINOR as FEE_MAX_MINOR_LIMIT
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
from reconciliation.progress import SILENT, Progress
from reconciliation.replica import Replica, plan_reads
from reconciliation.report_tables import Tables, _integrity_tables
from reconciliation.runs import SCOPE_ALL, Findings, Run, record, write_files
from reconciliation.service_key import service_key_path
from reconciliation.statement_formats import FORMATS


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
    progress: Progress = field(default=SILENT, compare=False)
    """Who is told how far the run has come (:func:`run_job` sets it; jobs that take
    long call its ``step`` and ``advance``)."""


@dataclass(frozen=True, slots=True)
class JobInput:
    """What a job's ``--scope`` or ``--input`` is, and whether the job needs it."""

    metavar: str
    meaning: str
    required: bool = False
    problem: Callable[[str], str | None] = lambda _text: None
    """A first check of a given scope: what is wrong with it, else ``None``."""


def _any(text: str) -> bool:
    del text
    return True


def _provider_problem(text: str) -> str | None:
    try:
        parties.provider_role(text)
    except Refused as exc:
        return str(exc)
    return None


def _uuid_problem(text: str) -> str | None:
    try:
        uuid.UUID(text)
    except ValueError:
        return "not an id (a UUID)"
    return None


def _ageing_scope_problem(text: str) -> str | None:
    ok = text == SCOPE_ALL or iso4217.is_supported(text)
    return None if ok else f"{SCOPE_ALL} or a currency code"


def _pack_scope_problem(text: str) -> str | None:
    return None if text == SCOPE_ALL else f"a pack covers {SCOPE_ALL}"


@dataclass(frozen=True, slots=True)
class JobOption:
    """One ``--option NAME=VALUE`` a job takes: what it means, its default (as shown in
    help; ``None``: no default), and a first check of its text (the job checks again
    with what it knows, like the statement's currency)."""

    name: str
    meaning: str
    default: str | None = None
    valid: Callable[[str], bool] = _any
    rule: str = ""
    """What a valid value is, for the message when :attr:`valid` says no."""


def _whole(high: int) -> Callable[[str], bool]:
    return lambda text: text.isdigit() and int(text) <= high


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == len("YYYY-MM-DD")


def _amount_text(text: str) -> bool:
    return re.fullmatch(r"\+?\d{1,15}(\.\d{1,6})?", text.strip()) is not None


def _evidence(text: str) -> bool:
    kinds = {k.strip() for k in text.split(",")}
    return bool(kinds) and kinds <= escrow.EVIDENCE_KINDS


_CURRENCY = JobOption(
    "currency", "", valid=iso4217.is_supported, rule="an active ISO 4217 code (KES, ...)"
)
_PROVIDER = JobInput(
    "PROVIDER", "the provider (MPESA, ...): upper-case letters, digits, _", True, _provider_problem
)
_STATEMENT_OPTIONS = (
    JobOption(
        "tolerance",
        "how far a line's amount may be from its transfer's, decimal text in the"
        " statement's currency (tolerance=50 is 50.00)",
        "by currency: KES 100.00, UGX 5000, TZS 2000, RWF 2000, USD 5.00, EUR 5.00; else 0",
        _amount_text,
        "a decimal amount of 0 or more, like 50 or 0.50",
    ),
    JobOption(
        "window_days",
        "how many days apart a line and its transfer may be dated",
        str(statement.WINDOW_DAYS_DEFAULT),
        _whole(statement.WINDOW_DAYS_MAX),
        f"a whole number of days 0..{statement.WINDOW_DAYS_MAX}",
    ),
    JobOption(
        "format",
        "the statement's format: " + ", ".join(FORMATS),
        "by the file's extension (.csv, .xml camt.053, .sta or .mt940 MT940)",
        lambda text: text in FORMATS,
        " or ".join(FORMATS),
    ),
    dataclass_replace(
        _CURRENCY,
        meaning="the statement's currency (required for CSV; else must agree with the file)",
    ),
    JobOption(
        "mapping", "a TOML or JSON file holding the CSV options below (options given beside it win)"
    ),
    JobOption(
        "columns",
        "CSV columns: date:Date,amount:Amount[,reference:Ref,description:D,balance:B]"
        " (or credit:C,debit:D instead of amount)",
    ),
    JobOption("date_format", "CSV date format (strptime)", "%Y-%m-%d"),
    JobOption("delimiter", "CSV field delimiter", ","),
    JobOption("decimal", "CSV decimal mark", "."),
    JobOption("thousands", "CSV thousands separator", "none allowed"),
    JobOption("encoding", "CSV file encoding", "utf-8-sig"),
    JobOption("opening", "CSV opening balance, decimal text", "from the balance column"),
    JobOption("closing", "CSV closing balance, decimal text", "from the balance column"),
)
_ORDERS_OPTIONS = (
    JobOption(
        "stale_days",
        "days after delivery an order may still hold its money in escrow",
        str(escrow.STALE_DAYS_DEFAULT),
        _whole(escrow.STALE_DAYS_MAX),
        f"a whole number of days 0..{escrow.STALE_DAYS_MAX}",
    ),
    JobOption(
        "evidence",
        "the step kinds that stand for delivery, comma-separated",
        ",".join(escrow.EVIDENCE_DEFAULT),
        _evidence,
        "step kinds among " + ", ".join(sorted(escrow.EVIDENCE_KINDS)),
    ),
)
_SETTLEMENT_OPTIONS = (
    dataclass_replace(
        _CURRENCY, meaning="the credits' currency", default="the file's currency column"
    ),
    JobOption(
        "from",
        "the first day of payouts matched (YYYY-MM-DD)",
        f"{payouts.LOOKBACK_DAYS_DEFAULT} days before the business date",
        _is_date,
        "a date YYYY-MM-DD",
    ),
    JobOption(
        "fee_max_minor",
        "the largest fee the provider may have kept from a payout, in minor units",
        "0",
        _whole(FEE_MAX_MINOR_LIMIT),
        f"a whole number of minor units 0..{FEE_MAX_MINOR_LIMIT}",
    ),
)
_PACK_OPTIONS = tuple(
    JobOption(
        name,
        f"the {meaning} day of the period packed (YYYY-MM-DD; at most {pack.PERIOD_DAYS_MAX} days)",
        "the business date",
        _is_date,
        "a date YYYY-MM-DD",
    )
    for name, meaning in (("from", "first"), ("to", "last"))
)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job: its function and report tables, and what it takes (shown by ``vledger
    reconcile JOB --help`` and checked by :func:`job_problems` before it runs)."""

    name: str
    summary: str
    run: Callable[[Ledger, JobRequest], Findings]
    tables: Callable[[Findings], Tables] = lambda _findings: []
    input: JobInput | None = None
    """``--input``: ``None`` when the job takes no outside record."""
    scope: JobInput | None = None
    """``--scope``: ``None`` when the job reads the whole ledger."""
    options: tuple[JobOption, ...] = ()
    needs_input: bool = False
    """Whether the job refuses to run without ``--input`` (follows :attr:`input`)."""
    replica_ok: bool = False
    """Whether the job only reads the ledger, so that it may read a replica."""
    last_day: Callable[[JobRequest], date] = lambda request: request.business_date
    """The last business date a request covers (a pack's period may end after its date)."""

    def __post_init__(self) -> None:
        required = self.input is not None and self.input.required
        if self.needs_input and self.input is None:
            object.__setattr__(self, "input", JobInput("FILE", "the outside record", True))
        object.__setattr__(self, "needs_input", self.needs_input or required)


@dataclass(frozen=True, slots=True)
class JobResult:
    run: Run
    folder: Path
    findings: Findings


def _integrity(led: Ledger, request: JobRequest) -> Findings:
    return integrity.run_checks(led, request.business_date, request.progress)


def _pack_last_day(request: JobRequest) -> date:
    return pack.period_of(request).last


JOBS: dict[str, JobSpec] = {
    spec.name: spec
    for spec in (
        JobSpec(
            integrity.JOB,
            "trial balance, counters against transfers, holds, limits, the seal chain",
            _integrity,
            _integrity_tables,
            replica_ok=True,
        ),
        JobSpec(
            "statement",
            "a provider's statement (CSV, camt.053, MT940) against its clearing account",
            statement.run,
            statement.tables,
            input=JobInput(
                "FILE", "the provider's statement: CSV, camt.053 (.xml) or MT940 (.sta)", True
            ),
            scope=_PROVIDER,
            options=_STATEMENT_OPTIONS,
        ),
        JobSpec(
            "cash-count",
            "an agent's counted cash against expected cash-on-hand; over/short proposes a variance",
            cash_count.run,
            cash_count.tables,
            input=JobInput("FILE", "the agent's count (JSON: agent_id, counted_at, ...)", True),
            scope=JobInput(
                "AGENT_ID",
                "the agent; when given, it must be the count's agent",
                problem=_uuid_problem,
            ),
        ),
        JobSpec(
            "orders",
            "a storefront's orders (and its file) against its escrow account",
            escrow.run,
            escrow.tables,
            input=JobInput("FILE", "the storefront's CSV: order_id,amount_minor,state"),
            scope=JobInput(
                "STOREFRONT_ID", "the storefront whose orders are reconciled", True, _uuid_problem
            ),
            options=_ORDERS_OPTIONS,
            replica_ok=True,
        ),
        JobSpec(
            "settlement",
            "settlement payouts against a provider's credits (reference, window id, window total)",
            payouts.run,
            payouts.tables,
            input=JobInput(
                "FILE", "the provider's credits CSV: reference,amount_minor,date[,currency]", True
            ),
            scope=_PROVIDER,
            options=_SETTLEMENT_OPTIONS,
            replica_ok=True,
        ),
        JobSpec(
            "ageing",
            "open items in suspense and provider clearing accounts by age bucket",
            ageing.run,
            ageing.tables,
            scope=JobInput(
                "CURRENCY", "a currency code, or all (the default)", problem=_ageing_scope_problem
            ),
            replica_ok=True,
        ),
        JobSpec(
            pack.JOB,
            "an auditor pack for a period: CSVs, a JSON summary, a Beancount export and a"
            " SHA-256 manifest signed with the service key",
            pack.run,
            pack.tables,
            scope=JobInput(
                "all",
                "all (the default): a pack covers the whole ledger",
                problem=_pack_scope_problem,
            ),
            options=_PACK_OPTIONS,
            replica_ok=True,
            last_day=_pack_last_day,
        ),
    )
}


def job_problems(
    spec: JobSpec, *, input_path: Path | None, scope: str | None, options: dict[str, str]
) -> list[str]:
    """Everything wrong with a request for ``spec`` that can be seen before it runs, all
    at once: ``["statement needs --scope PROVIDER, --input FILE", "option tolerance must
    be ..."]``; empty when nothing is. The job itself checks again what needs the ledger
    or the file (a provider's name, the statement's currency)."""
    missing = [
        f"{flag} {taken.metavar}"
        for flag, taken, given in (
            ("--scope", spec.scope, scope),
            ("--input", spec.input, input_path),
        )
        if taken is not None and taken.required and not given
    ]
    problems = [f"{spec.name} needs {', '.join(missing)}"] if missing else []
    if scope and spec.scope is not None:
        scope_problem = spec.scope.problem(scope)
        if scope_problem is not None:
            problems.append(f"--scope {scope[:PROBLEM_TEXT_MAX]!r}: {scope_problem}")
    if input_path is not None and spec.input is None:
        problems.append(f"{spec.name} takes no --input")
    elif input_path is not None and not input_path.is_file():
        problems.append(f"--input {str(input_path)[:PROBLEM_TEXT_MAX]!r}: no such file")
    known = {option.name: option for option in spec.options}
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = ", ".join(known) or "none"
        names = ", ".join(name[:PROBLEM_TEXT_MAX] for name in unknown)
        problems.append(f"{spec.name} has no option {names} (its options: {takes})")
    for name, value in options.items():
        option = known.get(name)
        if option is not None and not option.valid(value):
            problems.append(
                f"option {name} must be {option.rule}, not {value[:PROBLEM_TEXT_MAX]!r}"
            )
    return problems


PROBLEM_TEXT_MAX = 40
"""The most characters of a given value a problem repeats."""


def run_job(
    led: Ledger,
    job: str,
    request: JobRequest,
    *,
    out: Path,
    progress: Progress | None = None,
    replica: Replica | None = None,
) -> JobResult:
    """Run ``job`` for ``request``; record it (on ``led``) and write its files under
    ``out``, telling ``progress`` (else ``request.progress``) how far it has come. Given
    a ``replica``, a job that only reads reads there when
    :func:`~reconciliation.replica.plan_reads` allows.
    :class:`~reconciliation.errors.InputInvalid` (a ``ValueError``) for an unknown job or
    a missing input file; the job refuses the rest in its own terms (``vledger reconcile``
    asks :func:`job_problems` first, to list every problem at once)."""
    spec = JOBS.get(job)
    if spec is None:
        raise InputInvalid(f"unknown job {job!r}; jobs: {', '.join(JOBS)}")
    if spec.needs_input and request.input_path is None:
        raise InputInvalid(f"the {job} job needs --input FILE")
    if progress is not None:
        request = dataclass_replace(request, progress=progress)
    shown = request.progress
    started_at_us = to_us(led.now())
    if spec.replica_ok and replica is not None:
        shown.step("choosing where to read: the replica once past the close")
    plan = plan_reads(led, replica if spec.replica_ok else None, spec.last_day(request))
    if plan.ledger is not led and request.service_key_path is None:
        # The key is the primary's (found by its URL), whichever database the job reads.
        request = dataclass_replace(request, service_key_path=service_key_path(led.url))
    shown.step("reconciling")
    findings = spec.run(plan.ledger, request)
    shown.step("recording the run")
    run = record(led, findings, started_at_us=started_at_us, reads=plan.reads)
    shown.step("writing the run's files")
    html = report.render(run, findings, tables=spec.tables(findings))
    folder = write_files(out, run, findings, html)
    return JobResult(run, folder, findings)
