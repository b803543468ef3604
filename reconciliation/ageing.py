"""The ``ageing`` job: open breaks in suspense and in provider clearing accounts, by age.

Ages are whole days from the moment an item became open to the end of the business date
(midnight UTC after it), rounded down: an item parked at 08:00 on the business date is
0 days old, one parked at 08:00 the day before is 1. Buckets: ``0-1``, ``2-7``, ``8-30``
and ``>30`` days. Open items, as of that moment (nothing after it counts):

- ``suspense``: every suspense item parked before it and not reassigned or returned by
  then; its age runs from when it was parked.
- ``clearing``: what each provider clearing account (``provider_clearing:<P>``) holds,
  posted, aged first-in first-out: the balance is made of the newest movements on its
  side (debits for a debit balance, credits for a credit balance), taken newest first
  until they add up to it (the oldest of them only in part); each is an open item aged
  from its transfer. A clearing account at zero has no open item. This is the classic
  open-item ageing of a balance nothing has matched yet, and it needs no statement run.

A clearing item is *in transit*, not a break, while it is open no longer than its
provider's expected settlement time (``recon_settlement_times``, migration 0023: per
provider, with a ``*`` default row; same-day mobile money one day, banks four days);
exactly at that time it is still in transit, a microsecond later it is overdue. A
suspense item is always a break (nobody has claimed the money; someone must act).

Each overdue item is one line of the detail CSV, its kind the bucket (``age 0-1`` ...),
so the run's breaks are the overdue items and the report's chart of breaks by kind is
the ageing chart of what is overdue. The items in transit go to ``in_transit.csv`` (same
columns, kind ``in transit``; written only when there are some, and listed with its
SHA-256 in the summary's ``files``) and the report shows them, not as breaks. Per
currency the summary and report give, for each bucket and overall (every open item)
and for the items in transit and those overdue: items, amount (minor units) and the
amount-weighted age ``floor(sum(amount x age) / sum(amount))`` in days (integer
arithmetic; empty: none). The
sums are aggregated in SQL by currency, source, bucket, age and transit; the products are
taken in Python, whose integers do not overflow. The report shows amounts as money
(``KES 1,250.00``, :mod:`ledger.money`); the CSV and JSON keep minor units.

``--scope`` is ``all`` (default) or a currency code to age only that currency.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows.errors import Refused
from ledger.flows.parties import PROVIDER_CLEARING, AccountCode, provider_role
from ledger.money import format_money
from reconciliation.errors import InputInvalid
from reconciliation.runs import SCOPE_ALL, Findings, snapshot

if TYPE_CHECKING:
    from datetime import date

    from reconciliation.jobs import JobRequest

__all__ = [
    "BUCKETS",
    "DEFAULT_PROVIDER",
    "DETAIL_HEADER",
    "IN_TRANSIT_FILE",
    "JOB",
    "RULE_VERSION",
    "SETTLEMENT_TIME_MAX_S",
    "AgeingRefused",
    "run",
    "set_settlement_time",
    "settlement_times",
    "tables",
]

JOB = "ageing"
RULE_VERSION = 2
"""2: clearing items inside their provider's settlement time are in transit, not breaks."""
DETAIL_HEADER = (
    "kind",
    "source",
    "object_id",
    "reference",
    "currency",
    "amount_minor",
    "age_days",
    "open_since",
)
BUCKETS = ("0-1", "2-7", "8-30", ">30")
"""Bucket labels; an item of ``age`` days is in the first whose upper bound it does not pass."""
_BUCKET_CASE = "CASE WHEN age <= 1 THEN 0 WHEN age <= 7 THEN 1 WHEN age <= 30 THEN 2 ELSE 3 END"
DAY_US = 86_400 * 1_000_000
DEFAULT_PROVIDER = "*"
"""The ``recon_settlement_times`` row for a provider without one of its own."""
SETTLEMENT_TIME_MAX_S = 90 * 86_400
"""The longest settlement time a provider may be given (the table's CHECK says the same)."""
IN_TRANSIT_FILE = "in_transit.csv"
IN_TRANSIT_SHOWN = 100
"""How many items in transit the report lists (all are in ``in_transit.csv``)."""
KIND_IN_TRANSIT = "in transit"


class AgeingRefused(InputInvalid):
    """The request cannot be aged (a scope that is not ``all`` or a currency); nothing
    was written."""

    code = "ageing_scope_invalid"


def _items_sql(currency_filter: bool) -> str:
    """The open items as of ``:as_of``: source, id, reference, currency, amount, since."""
    only = " AND a.currency = :currency" if currency_filter else ""
    suspense_only = " AND s.currency = :currency" if currency_filter else ""
    return (
        "WITH ca AS (SELECT pa.account_id AS id, pa.role AS role, a.currency AS currency"
        " FROM party_account_roles pa JOIN ledger_accounts a ON a.id = pa.account_id"
        f" WHERE a.code = {int(AccountCode.PROVIDER_CLEARING)}{only}),"
        " mv AS (SELECT t.debit_account_id AS account_id, t.id AS tid, t.amount AS amount,"
        "  t.created_at_us AS at, t.seq AS seq, 1 AS sign"
        "  FROM posted_transfers t JOIN ca ON ca.id = t.debit_account_id"
        "  WHERE t.created_at_us < :as_of"
        "  UNION ALL"
        "  SELECT t.credit_account_id, t.id, t.amount, t.created_at_us, t.seq, -1"
        "  FROM posted_transfers t JOIN ca ON ca.id = t.credit_account_id"
        "  WHERE t.created_at_us < :as_of),"
        " bal AS (SELECT account_id, SUM(sign * amount) AS balance FROM mv GROUP BY account_id),"
        " side AS (SELECT mv.account_id AS account_id, mv.tid AS tid, mv.amount AS amount,"
        "  mv.at AS at, bal.balance AS balance,"
        "  SUM(mv.amount) OVER (PARTITION BY mv.account_id ORDER BY mv.at DESC, mv.seq DESC"
        "   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running"
        "  FROM mv JOIN bal ON bal.account_id = mv.account_id"
        "  WHERE bal.balance <> 0 AND mv.sign = CASE WHEN bal.balance > 0 THEN 1 ELSE -1 END),"
        " items AS ("
        "  SELECT 'suspense' AS source, s.id AS object_id,"
        "   s.provider || ' ' || s.provider_reference AS reference, s.currency AS currency,"
        "   s.amount_minor AS amount, s.created_at_us AS at, CAST(NULL AS VARCHAR(40)) AS provider"
        "  FROM suspense_items_view s WHERE s.created_at_us < :as_of"
        f"   AND (s.state = 'parked' OR s.resolved_at_us >= :as_of){suspense_only}"
        "  UNION ALL"
        "  SELECT 'clearing', side.tid,"
        "   ca.role || CASE WHEN side.balance > 0 THEN ' debit' ELSE ' credit' END,"
        "   ca.currency,"
        "   CASE WHEN side.running <= ABS(side.balance) THEN side.amount"
        "    ELSE ABS(side.balance) - (side.running - side.amount) END,"
        f"   side.at, SUBSTR(ca.role, {len(PROVIDER_CLEARING) + 2})"
        "  FROM side JOIN ca ON ca.id = side.account_id"
        "  WHERE side.running - side.amount < ABS(side.balance)),"
        " aged AS (SELECT source, object_id, reference, currency, amount, at,"
        "  (CAST(:as_of AS BIGINT) - at) / CAST(:day AS BIGINT) AS age,"
        "  CASE WHEN items.source = 'clearing' AND CAST(:as_of AS BIGINT) - at"
        "   <= 1000000 * COALESCE(st.settlement_time_s, dflt.settlement_time_s)"
        "   THEN 1 ELSE 0 END AS in_transit"
        "  FROM items"
        "  LEFT JOIN recon_settlement_times st ON st.provider = items.provider"
        "  LEFT JOIN recon_settlement_times dflt ON dflt.provider = :default_provider)"
    )


@dataclass(frozen=True, slots=True)
class _Reading:
    items: list[Row]
    sums: list[Row]


def _read(tx: Tx, as_of_us: int, currency: str | None) -> _Reading:
    sql = _items_sql(currency is not None)
    params: dict[str, Any] = {
        "as_of": as_of_us,
        "day": DAY_US,
        "currency": currency,
        "default_provider": DEFAULT_PROVIDER,
    }
    items = tx.execute(
        f"{sql} SELECT {_BUCKET_CASE}, source, object_id, reference, currency, amount, age, at,"
        " in_transit FROM aged ORDER BY currency, age DESC, at, source, reference",
        params,
    )
    sums = tx.execute(
        f"{sql} SELECT currency, source, {_BUCKET_CASE} AS bucket, age, in_transit, COUNT(*),"
        " SUM(amount) FROM aged GROUP BY currency, source, bucket, age, in_transit"
        " ORDER BY currency, source, age, in_transit",
        params,
    )
    return _Reading(items, sums)


def _scope(scope: str | None) -> str | None:
    if scope is None or scope == SCOPE_ALL:
        return None
    if not iso4217.is_supported(scope):
        raise AgeingRefused(f"--scope is 'all' or a currency code, not {scope!r}")
    return scope


def end_of(day: date) -> int:
    """Microseconds at midnight UTC after ``day``."""
    return to_us(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC))


def _figures(counts: int, amount_minor: int, weighted: int) -> dict[str, int | None]:
    return {
        "items": counts,
        "amount_minor": amount_minor,
        "weighted_age_days": weighted // amount_minor if amount_minor else None,
    }


def _summaries(sums: list[Row]) -> dict[str, Any]:
    """Per currency: per bucket, per source and overall figures (see the docstring)."""
    acc: dict[str, dict[str, list[int]]] = {}
    for currency, source, bucket, age, in_transit, count, amount_minor in sums:
        per = acc.setdefault(str(currency), {})
        transit = "in_transit" if int(in_transit) else "overdue"
        for key in (BUCKETS[int(bucket)], f"source:{source}", "overall", transit):
            cell = per.setdefault(key, [0, 0, 0])
            cell[0] += int(count)
            cell[1] += int(amount_minor)
            cell[2] += int(amount_minor) * int(age)
    out: dict[str, Any] = {}
    for currency, per in sorted(acc.items()):
        empty = [0, 0, 0]
        out[currency] = {
            "buckets": {b: _figures(*per.get(b, empty)) for b in BUCKETS},
            "sources": {
                key.removeprefix("source:"): _figures(*cell)
                for key, cell in sorted(per.items())
                if key.startswith("source:")
            },
            "overall": _figures(*per.get("overall", empty)),
            "in_transit": _figures(*per.get("in_transit", empty)),
            "overdue": _figures(*per.get("overdue", empty)),
        }
    return out


def _line(row: Row) -> tuple[object, ...]:
    kind = KIND_IN_TRANSIT if int(row[8]) else f"age {BUCKETS[int(row[0])]}"
    return (
        kind,
        str(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        int(row[5]),
        int(row[6]),
        from_us(int(row[7])).isoformat(),
    )


def _csv(header: tuple[str, ...], lines: list[tuple[object, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(lines)
    return out.getvalue().encode()


def run(led: Ledger, request: JobRequest) -> Findings:
    """Age the open items as of the end of ``request.business_date``: the overdue ones
    are the breaks, those in transit go to ``in_transit.csv``."""
    currency = _scope(request.scope)
    as_of_us = end_of(request.business_date)
    reading = snapshot(led, lambda tx: _read(tx, as_of_us, currency))
    lines = [_line(row) for row in reading.items]
    detail = [line for line in lines if line[0] != KIND_IN_TRANSIT]
    in_transit = [line for line in lines if line[0] == KIND_IN_TRANSIT]
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    ageing = _summaries(reading.sums)
    files = {IN_TRANSIT_FILE: _csv(DETAIL_HEADER, in_transit)} if in_transit else {}
    state = json.dumps(ageing, sort_keys=True, separators=(",", ":"))
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=currency or SCOPE_ALL,
        rule_version=RULE_VERSION,
        input_sha256=hashlib.sha256(state.encode()).hexdigest(),
        checked=len(lines),
        detail_header=DETAIL_HEADER,
        detail=detail,
        summary={
            "job": JOB,
            "business_date": request.business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "as_of": from_us(as_of_us).isoformat(),
            "buckets": list(BUCKETS),
            "ageing": ageing,
            "breaks_by_kind": by_kind,
            "in_transit_items": len(in_transit),
            "in_transit_shown": [list(line[1:]) for line in in_transit[:IN_TRANSIT_SHOWN]],
            "files": {
                name: {"sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()
            },
        },
        files=files,
    )


def _age_text(figures: dict[str, Any]) -> object:
    age = figures["weighted_age_days"]
    return "" if age is None else age


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Per currency: each bucket, the total, what is in transit and what is overdue, with
    the weighted age; then the items in transit (the first :data:`IN_TRANSIT_SHOWN`)."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for currency, figures in findings.summary["ageing"].items():
        rows: list[tuple[Any, ...]] = [("bucket (days)", "items", "amount", "weighted age (days)")]
        named = [(bucket, figures["buckets"][bucket]) for bucket in BUCKETS]
        named += [
            ("all", figures["overall"]),
            ("in transit (not breaks)", figures["in_transit"]),
            ("overdue (breaks)", figures["overdue"]),
        ]
        for label, f in named:
            money = format_money(f["amount_minor"], currency)
            rows.append((label, f["items"], money, _age_text(f)))
        out.append((f"Ageing of open items ({currency})", rows))
    shown = findings.summary["in_transit_shown"]
    if shown:
        rows = [("source", "reference", "amount", "age (days)", "open since")]
        rows += [
            (source, reference, format_money(int(amount), str(cur)), age, since)
            for source, _object_id, reference, cur, amount, age, since in shown
        ]
        total = findings.summary["in_transit_items"]
        more = (
            f", first {len(shown)} of {total}; all in {IN_TRANSIT_FILE}"
            if total > len(shown)
            else ""
        )
        out.append((f"In transit: inside the provider's settlement time, not breaks{more}", rows))
    return out


def settlement_times(led: Ledger) -> dict[str, int]:
    """Each provider's expected settlement time in seconds (``*``: the default)."""
    rows = led.transact(
        lambda tx: tx.execute(
            "SELECT provider, settlement_time_s FROM recon_settlement_times ORDER BY provider"
        )
    )
    return {str(p): int(s) for p, s in rows}


def set_settlement_time(led: Ledger, *, provider: str, settlement_time_s: int) -> None:
    """Set how long ``provider``'s clearing items may stay open before they are breaks
    (``*`` for the default). :class:`AgeingRefused` for a provider name that is not one
    (``provider_role``'s rule) or a time outside 0 .. :data:`SETTLEMENT_TIME_MAX_S`."""
    if provider != DEFAULT_PROVIDER:
        try:
            provider_role(provider)
        except Refused as exc:
            raise AgeingRefused(f"not a provider name: {provider[:40]!r}") from exc
    if (
        isinstance(settlement_time_s, bool)
        or not isinstance(settlement_time_s, int)
        or not 0 <= settlement_time_s <= SETTLEMENT_TIME_MAX_S
    ):
        raise AgeingRefused(
            f"a settlement time is 0 to {SETTLEMENT_TIME_MAX_S} whole seconds,"
            f" not {settlement_time_s!r}"
        )
    led.transact(
        lambda tx: tx.execute(
            "INSERT INTO recon_settlement_times (provider, settlement_time_s, note)"
            " VALUES (:provider, :s, 'set by an operator')"
            " ON CONFLICT (provider) DO UPDATE SET settlement_time_s = :s,"
            " note = 'set by an operator'",
            {"provider": provider, "s": settlement_time_s},
        )
    )
