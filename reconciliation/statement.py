"""The ``statement`` job: a provider's statement against its clearing account.

``vledger reconcile statement --scope MPESA --input FILE [--option K=V ...]``. The scope
is the provider (``provider_clearing:<PROVIDER>`` of the platform is the account); the
currency is the statement's (camt.053, MT940) or ``--option currency=KES`` (CSV; given
for another format, it must agree). Formats and the CSV mapping:
:mod:`reconciliation.statement_formats`. Options of the job itself:

- ``tolerance``: the amount tolerance, as decimal text in the currency (``tolerance=50``
  is KES 50.00); default :data:`TOLERANCE_MINOR_DEFAULT` for the currency, else 0;
- ``window_days``: how many days apart a line and a transfer may be dated (default
  :data:`WINDOW_DAYS_DEFAULT`, at most :data:`WINDOW_DAYS_MAX`).

Order of work: the statement is streamed into a staging table while its arithmetic is
summed; **opening + sum(lines) = closing** (and each line's running balance, when the
statement has one) is checked first: a ``statement_arithmetic`` break stops the run
there, nothing is matched. Then :func:`reconciliation.matching.match` runs its passes in
SQL, and the breaks are read back in chunks. The statement's period is the span of its
lines' dates (the business date when it has none); the business date must fall inside it.

Detail kinds (every one is a break; matched lines are counted in the summary):
``statement_arithmetic``, ``amount_break``, ``tie``, ``group_suggestion``,
``statement_only`` (incoming money: "park in suspense"; the job never moves money),
``ledger_only``. The run's ``input_sha256`` is the file's SHA-256.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import Ledger
from ledger.flows import parties
from ledger.flows.errors import Refused
from ledger.money import format_money
from reconciliation import matching
from reconciliation.progress import Progress, Timed
from reconciliation.runs import Findings, sha256_of
from reconciliation.statement_formats import (
    StatementLine,
    StatementReader,
    open_statement,
    to_minor,
)

if TYPE_CHECKING:
    from reconciliation.jobs import JobRequest

JOB = "statement"
RULE_VERSION = 1
DETAIL_HEADER = (
    "kind",
    "line",
    "date",
    "amount_minor",
    "reference",
    "transfer_id",
    "transfer_amount_minor",
    "difference_minor",
    "note",
)
WINDOW_DAYS_DEFAULT = 2
WINDOW_DAYS_MAX = 31
TOLERANCE_MINOR_DEFAULT: dict[str, int] = {
    "KES": 10_000,  # KES 100.00: M-Pesa and bank fees on a transfer stay under it
    "UGX": 5_000,
    "TZS": 200_000,
    "RWF": 2_000,
    "USD": 500,
    "EUR": 500,
}
"""Per-currency amount tolerance in minor units; a currency not here matches exactly."""
TOLERANCE_MINOR_MAX = 2**40
READ_CHUNK_BYTES = 1 << 20
PROGRESS_EVERY_LINES = 10_000
_JOB_OPTIONS = frozenset({"tolerance", "window_days"})


def _settings(request_options: dict[str, str], currency: str) -> tuple[int, int]:
    text = request_options.get("tolerance")
    tolerance = (
        TOLERANCE_MINOR_DEFAULT.get(currency, 0)
        if text is None
        else to_minor(text, currency, where="option tolerance")
    )
    if not 0 <= tolerance <= TOLERANCE_MINOR_MAX:
        raise ValueError(f"option tolerance must be 0..{TOLERANCE_MINOR_MAX} minor units")
    window_text = request_options.get("window_days", str(WINDOW_DAYS_DEFAULT))
    if not window_text.isdigit() or int(window_text) > WINDOW_DAYS_MAX:
        raise ValueError(f"option window_days must be 0..{WINDOW_DAYS_MAX}")
    return tolerance, int(window_text)


def _file_sha256(path: Path) -> str:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK_BYTES):
                yield chunk

    return sha256_of(chunks())


def _provider(request: JobRequest) -> str:
    provider = request.scope
    if not provider:
        raise ValueError("the statement job needs --scope PROVIDER (MPESA, ...)")
    try:
        parties.provider_role(provider)
    except Refused as exc:
        raise ValueError(f"--scope {provider!r}: {exc}") from None
    return provider


def _input_path(request: JobRequest) -> Path:
    if request.input_path is None:
        raise ValueError("the statement job needs --input FILE")
    return Path(request.input_path)


@dataclass(frozen=True, slots=True)
class _Job:
    """What a run knows before it stages anything: the request, the opened statement,
    and the settings its matching takes."""

    request: JobRequest
    provider: str
    digest: str
    reader: StatementReader
    account_id: uuid.UUID
    tolerance_minor: int
    window_days: int

    def balances(self) -> tuple[int, int]:
        """(opening, closing), known once the lines are staged."""
        opening, closing = self.reader.opening_minor, self.reader.closing_minor
        assert opening is not None and closing is not None  # each reader ensures them
        return opening, closing

    def summary(self, line_count: int, lines_sum: int) -> dict[str, Any]:
        """The summary once the lines are staged."""
        reader = self.reader
        opening, closing = self.balances()
        return {
            "job": JOB,
            "business_date": self.request.business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "provider": self.provider,
            "currency": reader.currency,
            "format": reader.format,
            "clearing_account_id": str(self.account_id),
            "statement": {
                "lines": line_count,
                "skipped_not_booked": reader.skipped,
                "opening_minor": opening,
                "lines_sum_minor": lines_sum,
                "closing_minor": closing,
            },
            "tolerance_minor": self.tolerance_minor,
            "window_days": self.window_days,
        }

    def findings(
        self, summary: dict[str, Any], detail: list[tuple[object, ...]], checked: int
    ) -> Findings:
        by_kind: dict[str, int] = {}
        for row in detail:
            by_kind[str(row[0])] = by_kind.get(str(row[0]), 0) + 1
        return Findings(
            job=JOB,
            business_date=self.request.business_date,
            scope=self.provider,
            rule_version=RULE_VERSION,
            input_sha256=self.digest,
            checked=checked,
            detail_header=DETAIL_HEADER,
            detail=detail,
            summary={**summary, "breaks_by_kind": by_kind},
        )


def _open(request: JobRequest) -> _Job:
    """Check the request, open the statement (up to its currency) and settle the options."""
    provider = _provider(request)
    path = _input_path(request)
    options: dict[str, str] = dict(request.options)
    job_options = {k: options.pop(k) for k in list(options) if k in _JOB_OPTIONS}
    digest = _file_sha256(path)
    reader = open_statement(path, options)
    tolerance, window_days = _settings(job_options, reader.currency)
    account_id = parties.account_id(
        parties.platform_id(reader.currency), parties.provider_role(provider)
    )
    return _Job(request, provider, digest, reader, account_id, tolerance, window_days)


def _stage_lines(
    st: matching.Staging, reader: StatementReader, progress: Progress
) -> tuple[int, int]:
    """Stream the statement into ``recon_lines``; [lines, sum of their amounts]."""
    total = [0, 0]

    def counted(lines: Iterator[StatementLine]) -> Iterator[StatementLine]:
        for line in lines:
            total[0] += 1
            total[1] += line.amount_minor
            if total[0] % PROGRESS_EVERY_LINES == 0:
                progress.advance(total[0])
            yield line

    st.load("recon_lines", matching.LINE_COLUMNS, matching.line_rows(counted(reader.lines())))
    progress.advance(total[0])
    return total[0], total[1]


def _period(st: matching.Staging, day: date) -> tuple[date, date]:
    """The span of the lines' dates (the business date when there are none), which must
    hold the business date."""
    period_from, period_to = matching.period_of(st) or (day, day)
    if not period_from <= day <= period_to:
        raise ValueError(
            f"the statement's lines are dated {period_from}..{period_to}, not the business"
            f" date {day}: give --date"
        )
    return period_from, period_to


def run(led: Ledger, request: JobRequest) -> Findings:
    """Reconcile the statement at ``request.input_path`` against ``request.scope``'s
    clearing account; the findings (nothing is recorded here)."""
    job = _open(request)
    reader = job.reader
    progress = Timed(request.progress, "staging lines")
    with matching.open_staging(led.url) as st:
        matching.create_tables(st)
        line_count, lines_sum = _stage_lines(st, reader, progress)
        summary = job.summary(line_count, lines_sum)
        opening, closing = job.balances()
        arithmetic = _arithmetic_break(
            reader.running_break, opening, lines_sum, closing, reader.currency
        )
        if arithmetic is not None:
            summary["matching"] = "not run: the statement's arithmetic does not hold"
            return job.findings(summary, [arithmetic], line_count)
        period_from, period_to = _period(st, request.business_date)
        settings = matching.Settings(
            job.account_id, job.tolerance_minor, job.window_days, period_from, period_to
        )
        matching.match(st, settings, progress.step)
        progress.step("reading breaks")
        counts = matching.counts(st)
        detail = list(matching.detail(st, job.tolerance_minor))
        progress.close()
    transfers = sum(v for k, v in counts.items() if k.startswith("transfers_"))
    summary["period"] = {"from": period_from.isoformat(), "to": period_to.isoformat()}
    summary["counts"] = counts
    summary["matched"] = counts.get("lines_matched", 0)
    summary["seconds"] = progress.seconds
    return job.findings(summary, detail, line_count + transfers)


def _arithmetic_break(
    running: tuple[int, int, int] | None, opening: int, lines_sum: int, closing: int, currency: str
) -> tuple[object, ...] | None:
    if running is not None:
        line_no, expected, stated = running
        return (
            "statement_arithmetic",
            line_no,
            "",
            stated,
            "",
            "",
            expected,
            stated - expected,
            f"running balance: previous balance + amount = {format_money(expected, currency)},"
            f" the statement says {format_money(stated, currency)}; matching not run",
        )
    if opening + lines_sum != closing:
        return (
            "statement_arithmetic",
            "",
            "",
            closing,
            "",
            "",
            opening + lines_sum,
            closing - (opening + lines_sum),
            f"opening {format_money(opening, currency)} + lines"
            f" {format_money(lines_sum, currency)} != closing {format_money(closing, currency)};"
            " matching not run",
        )
    return None


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The report's extra sections: the statement's arithmetic and the outcome counts."""
    s = findings.summary
    statement = s["statement"]
    currency = s["currency"]
    rows: list[tuple[Any, ...]] = [
        ("", "amount"),
        ("opening", format_money(statement["opening_minor"], currency)),
        ("sum of lines", format_money(statement["lines_sum_minor"], currency)),
        ("closing", format_money(statement["closing_minor"], currency)),
        ("lines", statement["lines"]),
    ]
    sections: list[tuple[str, list[tuple[Any, ...]]]] = [
        (f"Statement ({s['provider']}, {s['currency']}, {s['format']})", rows)
    ]
    counts = s.get("counts")
    if counts:
        sections.append(("Outcomes", [("outcome", "count"), *sorted(counts.items())]))
    return sections
