"""The ``settlement`` job: payouts of settlement windows against a provider's credits.

``--scope`` is the provider (``MPESA``); ``--input FILE`` its list of credits, CSV with
the header ``reference,amount_minor,date`` and optionally ``currency`` (else
``--option currency=XXX``): one line per credit the provider made, ``amount_minor`` in
minor units, ``date`` ``YYYY-MM-DD``, ``reference`` the provider's reference (may be
empty), at most :data:`FILE_ROWS_MAX` lines.

A credit pays either one payout (its reference is the one :func:`confirm_payout
<ledger.flows.settlement.confirm_payout>` recorded) or a whole window (the sum of the
window's paid payouts less the provider's fees). The payouts in play are the provider's
``paid`` payouts confirmed before the end of the business date. Matching is staged, each
stage one SQL statement over the whole set (the credits passed as one JSON parameter),
later stages seeing only what earlier ones left:

1. **reference**: the credit's reference is a payout's provider reference;
2. **window id**: the credit's reference is a window's id (windows none of whose
   payouts matched in stage 1; the window's total is its paid payouts' sum);
3. **window total**: same currency and an amount between the window's total less
   ``--option fee_max_minor=N`` (default 0) and the total; a credit or a window with more
   than one candidate is a ``tie``, flagged with its candidates, never guessed.

Findings (``kind, reference, matched_id, expected_minor, actual_minor, note``; expected is
the ledger's payout or window total, actual the credit): ``amount_differs`` (matched,
another amount: the difference is the provider's fee, or worse), ``tie`` (several
candidates, or several credits naming one payout or window), ``credit_without_payout``,
``payout_without_credit`` (a paid payout confirmed on or after ``--option from=DATE``,
default :data:`LOOKBACK_DAYS_DEFAULT` days before the business date, that no credit
covers; an older one is outside this run's period). Pending payouts are shown in the
summary (in flight), not as breaks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows import parties
from ledger.flows.errors import Refused
from ledger.limits import AMOUNT_MAX_MINOR, REFERENCE_LENGTH_MAX
from ledger.limits import AMOUNT_MAX_MINOR as FEE_MAX_MINOR_LIMIT
from ledger.money import format_money
from reconciliation.errors import InputInvalid
from reconciliation.portable_sql import array_rows, array_texts, element, uuid_hex
from reconciliation.runs import Findings, snapshot

if TYPE_CHECKING:
    from reconciliation.jobs import JobRequest

__all__ = ["DETAIL_HEADER", "JOB", "RULE_VERSION", "Credit", "PayoutsRefused", "run", "tables"]

JOB = "settlement"
RULE_VERSION = 1
DETAIL_HEADER = ("kind", "reference", "matched_id", "expected_minor", "actual_minor", "note")

LOOKBACK_DAYS_DEFAULT = 30
FILE_ROWS_MAX = 1_000_000
FILE_BYTES_MAX = 128 * 1024 * 1024


class PayoutsRefused(InputInvalid):
    """The request cannot be reconciled (no provider, a bad option or credit file);
    nothing was written."""

    code = "settlement_input_invalid"


@dataclass(frozen=True, slots=True)
class Credit:
    """One line of the provider's credit list (minor units of ``currency``)."""

    index: int
    reference: str | None
    amount_minor: int
    currency: str
    day: date


# -- the input ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Options:
    currency: str | None
    from_day: date | None
    fee_max_minor: int


def _options(given: dict[str, str]) -> _Options:
    unknown = set(given) - {"currency", "from", "fee_max_minor"}
    if unknown:
        raise PayoutsRefused(f"unknown options for settlement: {', '.join(sorted(unknown))}")
    currency = given.get("currency")
    if currency is not None and not iso4217.is_supported(currency):
        raise PayoutsRefused(f"currency {currency!r} is not an active ISO 4217 code")
    from_day = None
    if "from" in given:
        try:
            from_day = date.fromisoformat(given["from"])
        except ValueError:
            raise PayoutsRefused("from is a date YYYY-MM-DD") from None
    fee = given.get("fee_max_minor", "0")
    if not fee.isdigit() or int(fee) > FEE_MAX_MINOR_LIMIT:
        raise PayoutsRefused("fee_max_minor is a whole number of minor units")
    return _Options(currency, from_day, int(fee))


def parse_credits(data: bytes, currency: str | None) -> list[Credit]:
    """The credits of the provider's CSV (see the module docstring)."""
    if len(data) > FILE_BYTES_MAX:
        raise PayoutsRefused(f"a credit file is at most {FILE_BYTES_MAX} bytes")
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        header = [h.strip() for h in next(reader, [])]
        if sorted(header) not in (
            ["amount_minor", "date", "reference"],
            ["amount_minor", "currency", "date", "reference"],
        ):
            raise PayoutsRefused(
                "a credit file starts with the header reference,amount_minor,date[,currency]"
            )
        if "currency" not in header and currency is None:
            raise PayoutsRefused("the credit file has no currency column: give --option currency=")
        at = {name: header.index(name) for name in header}
        credits: list[Credit] = []
        for number, line in enumerate(reader, start=2):
            if not line:
                continue
            if len(line) != len(header):
                raise PayoutsRefused(f"line {number}: {len(header)} fields expected")
            credits.append(_credit(number, line, at, currency, len(credits)))
            if len(credits) > FILE_ROWS_MAX:
                raise PayoutsRefused(f"a credit file has at most {FILE_ROWS_MAX} lines")
    except UnicodeDecodeError:
        raise PayoutsRefused("a credit file is UTF-8 CSV") from None
    except csv.Error as exc:
        raise PayoutsRefused(f"the credit file is not CSV: {exc}") from None
    return credits


def _credit(
    number: int, line: list[str], at: dict[str, int], currency: str | None, index: int
) -> Credit:
    reference = line[at["reference"]].strip() or None
    if reference is not None and len(reference) > REFERENCE_LENGTH_MAX:
        raise PayoutsRefused(f"line {number}: a reference is at most {REFERENCE_LENGTH_MAX}")
    amount = line[at["amount_minor"]].strip()
    if not amount.isdigit() or not 1 <= int(amount) <= AMOUNT_MAX_MINOR:
        raise PayoutsRefused(f"line {number}: amount_minor is a whole number of minor units")
    code = line[at["currency"]].strip() if "currency" in at else currency
    if code is None or not iso4217.is_supported(code):
        raise PayoutsRefused(f"line {number}: currency {code!r} is not an ISO 4217 code")
    try:
        day = date.fromisoformat(line[at["date"]].strip())
    except ValueError:
        raise PayoutsRefused(f"line {number}: date is YYYY-MM-DD") from None
    return Credit(index, reference, int(amount), code, day)


def _provider(scope: str | None) -> str:
    if scope is None:
        raise PayoutsRefused("the settlement job needs --scope PROVIDER")
    try:
        parties.provider_role(scope)
    except Refused as exc:
        raise PayoutsRefused(f"--scope {scope!r}: {exc.detail}") from None
    return scope


def _midnight_after(day: date) -> int:
    return to_us(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC))


# -- matching -----------------------------------------------------------------------------------


@dataclass
class _State:
    """What earlier stages used: credit indexes, payout and window ids (hex)."""

    credits: set[int]
    payouts: set[str]
    windows: set[str]

    def params(self) -> dict[str, str]:
        return {
            "used_credits": json.dumps(sorted(str(i) for i in self.credits)),
            "used_payouts": json.dumps(sorted(self.payouts)),
            "used_windows": json.dumps(sorted(self.windows)),
        }


@dataclass(frozen=True, slots=True)
class _Reader:
    tx: Tx
    provider: str
    as_of_us: int
    credits_json: str

    def base(self) -> str:
        """The CTEs ``c`` (credits) and ``p`` (the provider's paid payouts in play)."""
        tx = self.tx
        return (
            f"WITH c AS (SELECT CAST({element(tx, 0)} AS INTEGER) AS i,"
            f" {element(tx, 1)} AS reference,"
            f" CAST({element(tx, 2)} AS BIGINT) AS amount, {element(tx, 3)} AS currency"
            f" FROM {array_rows(tx, ':credits')}),"
            f" p AS (SELECT id, {uuid_hex(tx, 'id')} AS pid, window_id,"
            f" {uuid_hex(tx, 'window_id')} AS wid, currency, amount_minor, provider_reference,"
            " resolved_at_us FROM settlement_payouts WHERE provider = :provider"
            " AND state = 'paid' AND resolved_at_us < :as_of),"
            " cr AS (SELECT * FROM c WHERE CAST(c.i AS TEXT) NOT IN"
            f" ({array_texts(tx, ':used_credits')})),"
            " pr AS (SELECT * FROM p WHERE p.pid NOT IN"
            f" ({array_texts(tx, ':used_payouts')})"
            f" AND p.wid NOT IN ({array_texts(tx, ':used_windows')})),"
            " w AS (SELECT window_id, wid, currency, SUM(amount_minor) AS total,"
            " COUNT(*) AS n FROM pr WHERE wid NOT IN (SELECT wid FROM p WHERE pid IN"
            f" ({array_texts(tx, ':used_payouts')})) GROUP BY window_id, wid, currency)"
        )

    def params(self, state: _State, **extra: object) -> dict[str, Any]:
        return {
            "credits": self.credits_json,
            "provider": self.provider,
            "as_of": self.as_of_us,
            **state.params(),
            **extra,
        }

    def by_reference(self, state: _State) -> list[Row]:
        return self.tx.execute(
            f"{self.base()} SELECT c.i, p.pid, p.wid, p.currency, p.amount_minor"
            " FROM cr c JOIN pr p ON p.provider_reference = c.reference ORDER BY c.i",
            self.params(state),
        )

    def by_window_id(self, state: _State) -> list[Row]:
        return self.tx.execute(
            f"{self.base()} SELECT c.i, w.wid, w.wid, w.currency, w.total"
            " FROM cr c JOIN w ON w.wid = replace(lower(c.reference), '-', '') ORDER BY c.i",
            self.params(state),
        )

    def by_total(self, state: _State, fee_max_minor: int) -> list[Row]:
        """Candidate (credit, window) pairs by amount; ties are found by :func:`_settle`."""
        return self.tx.execute(
            f"{self.base()}, pairs AS (SELECT c.i AS i, w.wid AS wid, w.currency AS currency,"
            " w.total AS total FROM cr c JOIN w ON w.currency = c.currency"
            " AND c.amount <= w.total AND c.amount >= w.total - :fee_max)"
            " SELECT i, wid, wid, currency, total FROM pairs ORDER BY i, wid",
            self.params(state, fee_max=fee_max_minor),
        )

    def unmatched_payouts(self, state: _State, from_us_: int) -> list[Row]:
        return self.tx.execute(
            f"{self.base()} SELECT id, window_id, currency, amount_minor, resolved_at_us"
            " FROM pr WHERE resolved_at_us >= :from_us ORDER BY resolved_at_us, pid",
            self.params(state, from_us=from_us_),
        )

    def totals(self, from_us_: int) -> Row:
        row = self.tx.one(
            "SELECT"
            " (SELECT COUNT(*) FROM settlement_payouts WHERE provider = :provider"
            "  AND state = 'paid' AND resolved_at_us >= :from_us AND resolved_at_us < :as_of),"
            " (SELECT COALESCE(SUM(amount_minor), 0) FROM settlement_payouts"
            "  WHERE provider = :provider"
            "  AND state = 'paid' AND resolved_at_us >= :from_us AND resolved_at_us < :as_of),"
            " (SELECT COUNT(*) FROM settlement_payouts WHERE provider = :provider"
            "  AND state = 'pending'),"
            " (SELECT COALESCE(SUM(amount_minor), 0) FROM settlement_payouts"
            "  WHERE provider = :provider AND state = 'pending')",
            {"provider": self.provider, "from_us": from_us_, "as_of": self.as_of_us},
        )
        assert row is not None  # an aggregate answers one row
        return row


@dataclass
class _Outcome:
    detail: list[tuple[object, ...]]
    matched: dict[str, int]
    fees_minor: int


def _uuid_text(hex_text: object) -> str:
    return str(uuid.UUID(hex=str(hex_text)))


def _settle(
    outcome: _Outcome,
    state: _State,
    stage: str,
    rows: list[Row],
    credits: list[Credit],
    *,
    window: bool,
) -> None:
    """Apply one stage's candidate rows ``(credit, matched id, window id, currency,
    expected)``: one-to-one pairs match; a credit or target named more than once is a tie."""
    by_credit: dict[int, list[Row]] = {}
    by_target: dict[str, list[Row]] = {}
    for row in rows:
        by_credit.setdefault(int(row[0]), []).append(row)
        by_target.setdefault(str(row[1]), []).append(row)
    for index, found in sorted(by_credit.items()):
        credit = credits[index]
        targets = {str(r[1]) for r in found}
        unique = len(found) == 1 and len(by_target[str(found[0][1])]) == 1
        state.credits.add(index)
        if not unique:
            if window:
                state.windows.update(targets)
            else:
                state.payouts.update(targets)
            outcome.detail.append(
                (
                    "tie",
                    credit.reference or "",
                    "",
                    "",
                    credit.amount_minor,
                    f"{stage}: candidates "
                    + ", ".join(_uuid_text(t) for t in sorted(targets))
                    + "; not guessed",
                )
            )
            continue
        row = found[0]
        target, expected = str(row[1]), int(row[4])
        if window:
            state.windows.add(str(row[2]))
        else:
            state.payouts.add(target)
        outcome.matched[stage] = outcome.matched.get(stage, 0) + 1
        if (credit.amount_minor, credit.currency) == (expected, str(row[3])):
            continue
        what = "window" if window else "payout"
        if credit.currency != str(row[3]):
            note = f"{stage}: credit in {credit.currency}, {what} in {row[3]}"
        elif credit.amount_minor < expected:
            outcome.fees_minor += expected - credit.amount_minor
            note = f"{stage}: fee {expected - credit.amount_minor} ({what} less credit)"
        else:
            note = f"{stage}: credit {credit.amount_minor - expected} more than the {what}"
        outcome.detail.append(
            (
                "amount_differs",
                credit.reference or "",
                _uuid_text(target),
                expected,
                credit.amount_minor,
                note,
            )
        )


@dataclass(frozen=True, slots=True)
class _Reading:
    outcome: _Outcome
    used_credits: set[int]
    unmatched_payouts: list[Row]
    totals: Row


def _read(
    tx: Tx,
    provider: str,
    credits: list[Credit],
    options: _Options,
    as_of_us: int,
    from_us_: int,
) -> _Reading:
    credits_json = json.dumps(
        [[c.index, c.reference, c.amount_minor, c.currency] for c in credits],
        separators=(",", ":"),
    )
    reader = _Reader(tx, provider, as_of_us, credits_json)
    state = _State(set(), set(), set())
    outcome = _Outcome([], {}, 0)
    _settle(outcome, state, "reference", reader.by_reference(state), credits, window=False)
    _settle(outcome, state, "window id", reader.by_window_id(state), credits, window=True)
    _settle(
        outcome,
        state,
        "window total",
        reader.by_total(state, options.fee_max_minor),
        credits,
        window=True,
    )
    return _Reading(
        outcome,
        state.credits,
        reader.unmatched_payouts(state, from_us_),
        reader.totals(from_us_),
    )


def run(led: Ledger, request: JobRequest) -> Findings:
    """Match the provider ``request.scope``'s credits (``request.input_path``) to payouts."""
    provider = _provider(request.scope)
    options = _options(request.options)
    if request.input_path is None:
        raise PayoutsRefused("the settlement job needs --input FILE (the provider's credits)")
    data = request.input_path.read_bytes()
    credits = parse_credits(data, options.currency)
    as_of_us = _midnight_after(request.business_date)
    from_day = options.from_day or request.business_date - timedelta(days=LOOKBACK_DAYS_DEFAULT)
    from_us_ = to_us(datetime.combine(from_day, time(0), tzinfo=UTC))
    reading = snapshot(led, lambda tx: _read(tx, provider, credits, options, as_of_us, from_us_))
    outcome = reading.outcome
    detail = list(outcome.detail)
    for credit in credits:
        if credit.index not in reading.used_credits:
            detail.append(
                (
                    "credit_without_payout",
                    credit.reference or "",
                    "",
                    "",
                    credit.amount_minor,
                    f"{credit.currency} credit of {credit.day.isoformat()} matches no payout",
                )
            )
    for row in reading.unmatched_payouts:
        detail.append(
            (
                "payout_without_credit",
                "",
                str(row[0]),
                int(row[3]),
                "",
                f"{row[2]} payout of window {row[1]} paid {from_us(int(row[4])).isoformat()}",
            )
        )
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    paid_count, paid_total, pending_count, pending_total = (int(v) for v in reading.totals)
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=provider,
        rule_version=RULE_VERSION,
        input_sha256=hashlib.sha256(data).hexdigest(),
        checked=len(credits) + paid_count,
        detail_header=DETAIL_HEADER,
        detail=detail,
        summary={
            "job": JOB,
            "business_date": request.business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "provider": provider,
            "currency": _one_currency(options, credits),
            "from": from_day.isoformat(),
            "as_of": from_us(as_of_us).isoformat(),
            "credits": len(credits),
            "credits_total_minor": sum(c.amount_minor for c in credits),
            "payouts_paid": paid_count,
            "payouts_paid_total_minor": paid_total,
            "payouts_pending": pending_count,
            "payouts_pending_total_minor": pending_total,
            "matched_by_stage": outcome.matched,
            "fees_minor": outcome.fees_minor,
            "fee_max_minor": options.fee_max_minor,
            "breaks_by_kind": by_kind,
        },
    )


def _one_currency(options: _Options, credits: list[Credit]) -> str | None:
    """The run's one currency (``--option currency``, or the credits' only one), for the
    report's money; None when the credits mix currencies."""
    if options.currency is not None:
        return options.currency
    found = {credit.currency for credit in credits}
    return found.pop() if len(found) == 1 else None


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Credits matched per stage, and the totals on each side (as money when the run
    has one currency, else in minor units)."""
    s = findings.summary
    currency = s.get("currency")

    def money(amount_minor: int) -> object:
        return amount_minor if currency is None else format_money(amount_minor, currency)

    stages: list[tuple[Any, ...]] = [("stage", "credits matched")]
    stages += [
        (stage, s["matched_by_stage"].get(stage, 0))
        for stage in ("reference", "window id", "window total")
    ]
    totals: list[tuple[Any, ...]] = [
        ("", "count", "minor units" if currency is None else "amount"),
        ("credits in the file", s["credits"], money(s["credits_total_minor"])),
        (
            f"payouts paid since {s['from']}",
            s["payouts_paid"],
            money(s["payouts_paid_total_minor"]),
        ),
        (
            "payouts still pending (in flight)",
            s["payouts_pending"],
            money(s["payouts_pending_total_minor"]),
        ),
        ("fees (payout less credit)", "", money(s["fees_minor"])),
    ]
    return [("Matching by stage", stages), (f"Provider {s['provider']}", totals)]
