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

Each open item is one line of the detail CSV, its kind the bucket (``age 0-1`` ...), so
the report's chart of breaks by kind is the ageing chart. Per currency the summary and
report give, for each bucket and overall: items, amount (minor units) and the
amount-weighted age ``floor(sum(amount x age) / sum(amount))`` in days (integer
arithmetic; empty: none). The sums are aggregated in SQL by currency, source, bucket and
age; the products are taken in Python, whose integers do not overflow.

``--scope`` is ``all`` (default) or a currency code to age only that currency.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ledger import Ledger
from ledger.core import currency as iso4217
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows.parties import AccountCode
from reconciliation.errors import InputInvalid
from reconciliation.runs import SCOPE_ALL, Findings, snapshot

if TYPE_CHECKING:
    from datetime import date

    from reconciliation.jobs import JobRequest

__all__ = ["BUCKETS", "DETAIL_HEADER", "JOB", "RULE_VERSION", "AgeingRefused", "run", "tables"]

JOB = "ageing"
RULE_VERSION = 1
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
        "   s.amount_minor AS amount, s.created_at_us AS at"
        "  FROM suspense_items_view s WHERE s.created_at_us < :as_of"
        f"   AND (s.state = 'parked' OR s.resolved_at_us >= :as_of){suspense_only}"
        "  UNION ALL"
        "  SELECT 'clearing', side.tid,"
        "   ca.role || CASE WHEN side.balance > 0 THEN ' debit' ELSE ' credit' END,"
        "   ca.currency,"
        "   CASE WHEN side.running <= ABS(side.balance) THEN side.amount"
        "    ELSE ABS(side.balance) - (side.running - side.amount) END,"
        "   side.at"
        "  FROM side JOIN ca ON ca.id = side.account_id"
        "  WHERE side.running - side.amount < ABS(side.balance)),"
        " aged AS (SELECT source, object_id, reference, currency, amount, at,"
        "  (CAST(:as_of AS BIGINT) - at) / CAST(:day AS BIGINT) AS age FROM items)"
    )


@dataclass(frozen=True, slots=True)
class _Reading:
    items: list[Row]
    sums: list[Row]


def _read(tx: Tx, as_of_us: int, currency: str | None) -> _Reading:
    sql = _items_sql(currency is not None)
    params: dict[str, Any] = {"as_of": as_of_us, "day": DAY_US, "currency": currency}
    items = tx.execute(
        f"{sql} SELECT {_BUCKET_CASE}, source, object_id, reference, currency, amount, age, at"
        " FROM aged ORDER BY currency, age DESC, at, source, reference",
        params,
    )
    sums = tx.execute(
        f"{sql} SELECT currency, source, {_BUCKET_CASE} AS bucket, age, COUNT(*), SUM(amount)"
        " FROM aged GROUP BY currency, source, bucket, age ORDER BY currency, source, age",
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


def _figures(counts: int, amount: int, weighted: int) -> dict[str, int | None]:
    return {
        "items": counts,
        "amount_minor": amount,
        "weighted_age_days": weighted // amount if amount else None,
    }


def _summaries(sums: list[Row]) -> dict[str, Any]:
    """Per currency: per bucket, per source and overall figures (see the docstring)."""
    acc: dict[str, dict[str, list[int]]] = {}
    for currency, source, bucket, age, count, amount in sums:
        per = acc.setdefault(str(currency), {})
        for key in (BUCKETS[int(bucket)], f"source:{source}", "overall"):
            cell = per.setdefault(key, [0, 0, 0])
            cell[0] += int(count)
            cell[1] += int(amount)
            cell[2] += int(amount) * int(age)
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
        }
    return out


def run(led: Ledger, request: JobRequest) -> Findings:
    """Age the open items as of the end of ``request.business_date``."""
    currency = _scope(request.scope)
    as_of_us = end_of(request.business_date)
    reading = snapshot(led, lambda tx: _read(tx, as_of_us, currency))
    detail: list[tuple[object, ...]] = [
        (
            f"age {BUCKETS[int(row[0])]}",
            str(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            int(row[5]),
            int(row[6]),
            from_us(int(row[7])).isoformat(),
        )
        for row in reading.items
    ]
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    ageing = _summaries(reading.sums)
    state = json.dumps(ageing, sort_keys=True, separators=(",", ":"))
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=currency or SCOPE_ALL,
        rule_version=RULE_VERSION,
        input_sha256=hashlib.sha256(state.encode()).hexdigest(),
        checked=len(detail),
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
        },
    )


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """One table per currency: each bucket and the total, with the weighted age."""
    out: list[tuple[str, list[tuple[Any, ...]]]] = []
    for currency, figures in findings.summary["ageing"].items():
        rows: list[tuple[Any, ...]] = [
            ("bucket (days)", "items", "amount (minor units)", "weighted age (days)")
        ]
        for bucket in BUCKETS:
            f = figures["buckets"][bucket]
            age = f["weighted_age_days"]
            rows.append((bucket, f["items"], f["amount_minor"], "" if age is None else age))
        f = figures["overall"]
        age = f["weighted_age_days"]
        rows.append(("all", f["items"], f["amount_minor"], "" if age is None else age))
        out.append((f"Ageing of open items ({currency})", rows))
    return out
