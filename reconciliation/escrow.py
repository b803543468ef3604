"""The ``orders`` job: a storefront's orders against its escrow account, in one snapshot.

``--scope`` is the storefront's id (required). Every check is one SQL statement over
the storefront's whole set of orders, steps and escrow transfers; each finding is a line
of the detail CSV (``kind, order_id, expected_minor, actual_minor, note``):

- ``order_differs``: an order's counters (``paid``, ``released`` net of reversals,
  ``refunded``, ``reversed``) differ from the escrow transfers its steps made (each step
  records its legs; a leg is joined to the core's transfer by id). Expected is the ledger
  (transfers), actual the order row.
- ``leg_unmatched``: a step's escrow leg with no such transfer, or another amount.
- ``transfer_unexplained``: an escrow transfer no step of the storefront's orders made.
- ``escrow_total``: the escrow account's posted balance (credits less debits) differs
  from the sum over orders of ``paid - released - refunded``.
- ``delivered_not_released``: an order ``delivered`` (all of it) whose last delivery step
  is more than ``stale_days`` (``--option stale_days=N``, default
  :data:`STALE_DAYS_DEFAULT`) before the end of the business date and still holds its
  money in escrow (its timer, or the sweeper, should have released it).
- ``released_without_delivery``: an order that released money but was never dispatched,
  or has no step that stands for delivery. Which steps stand for it is
  ``--option evidence=KIND[,KIND]`` (default ``deliver,release,auto_release,resolve``:
  the delivery itself, the villager's own confirmation through the agent, the timer the
  storefront and villager agreed to, an operator's dispute decision); ``evidence=deliver``
  flags every release not preceded by a delivery step.

With ``--input FILE``, the storefront's own view (CSV with the header
``order_id,amount_minor,state``, amounts in minor units of the storefront's currency,
states as the ledger names them, one line per order, at most :data:`FILE_ROWS_MAX`) is
matched against the order rows by id in SQL (the file is passed as one JSON parameter):
``file_only`` (not in the ledger), ``ledger_only`` (not in the file), ``amount_differs``,
``state_differs``. The run's ``input_sha256`` is the file's, or the SHA-256 of nothing.

The end of the business date (midnight UTC after it) is the moment ages are measured
from; order rows hold their current state, so a run reconciles the ledger as it is.
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
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.flows import parties
from ledger.flows.orders import State
from ledger.flows.parties import Kind, Role
from ledger.limits import AMOUNT_MAX_MINOR
from ledger.money import format_money
from reconciliation.errors import InputInvalid
from reconciliation.portable_sql import array_rows, element, uuid_hex
from reconciliation.runs import Findings, snapshot

if TYPE_CHECKING:
    from reconciliation.jobs import JobRequest

__all__ = ["DETAIL_HEADER", "JOB", "RULE_VERSION", "EscrowRefused", "run", "tables"]

JOB = "orders"
RULE_VERSION = 1
DETAIL_HEADER = ("kind", "order_id", "expected_minor", "actual_minor", "note")

STALE_DAYS_DEFAULT = 14
STALE_DAYS_MAX = 3650
EVIDENCE_DEFAULT = ("deliver", "release", "auto_release", "resolve")
EVIDENCE_KINDS = frozenset({"deliver", "release", "auto_release", "resolve"})
FILE_ROWS_MAX = 1_000_000
FILE_BYTES_MAX = 128 * 1024 * 1024
DAY_US = 86_400 * 1_000_000
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class EscrowRefused(InputInvalid):
    """The request cannot be reconciled (no storefront, a bad option or file); nothing
    was written."""

    code = "orders_input_invalid"


# -- the input --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Options:
    stale_days: int
    evidence: tuple[str, ...]


def _options(given: dict[str, str]) -> _Options:
    unknown = set(given) - {"stale_days", "evidence"}
    if unknown:
        raise EscrowRefused(f"unknown options for orders: {', '.join(sorted(unknown))}")
    text = given.get("stale_days", str(STALE_DAYS_DEFAULT))
    if not text.isdigit() or not 0 <= int(text) <= STALE_DAYS_MAX:
        raise EscrowRefused(f"stale_days is a whole number of days 0..{STALE_DAYS_MAX}")
    evidence = tuple(
        k.strip() for k in given.get("evidence", ",".join(EVIDENCE_DEFAULT)).split(",")
    )
    if not evidence or not set(evidence) <= EVIDENCE_KINDS:
        raise EscrowRefused(f"evidence is a list of step kinds among {sorted(EVIDENCE_KINDS)}")
    return _Options(int(text), evidence)


_STATES = frozenset(s.value for s in State)


def parse_orders_file(data: bytes) -> list[tuple[str, int, str]]:
    """(order id as 32 hex digits, amount_minor, state) per line of the storefront's CSV."""
    if len(data) > FILE_BYTES_MAX:
        raise EscrowRefused(f"an orders file is at most {FILE_BYTES_MAX} bytes")
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["order_id", "amount_minor", "state"]:
            raise EscrowRefused("an orders file starts with the header order_id,amount_minor,state")
        rows: list[tuple[str, int, str]] = []
        seen: set[str] = set()
        for number, line in enumerate(reader, start=2):
            if not line:
                continue
            if len(line) != 3:
                raise EscrowRefused(f"line {number}: three fields expected")
            try:
                order = uuid.UUID(line[0].strip()).hex
            except ValueError:
                raise EscrowRefused(f"line {number}: order_id is not a UUID") from None
            amount = line[1].strip()
            if not amount.isdigit() or not 1 <= int(amount) <= AMOUNT_MAX_MINOR:
                raise EscrowRefused(f"line {number}: amount_minor is a whole number of minor units")
            state = line[2].strip()
            if state not in _STATES:
                raise EscrowRefused(f"line {number}: state {state!r} is not an order state")
            if order in seen:
                raise EscrowRefused(f"line {number}: order {line[0]} is listed twice")
            seen.add(order)
            rows.append((order, int(amount), state))
            if len(rows) > FILE_ROWS_MAX:
                raise EscrowRefused(f"an orders file has at most {FILE_ROWS_MAX} lines")
    except UnicodeDecodeError:
        raise EscrowRefused("an orders file is UTF-8 CSV") from None
    except csv.Error as exc:
        raise EscrowRefused(f"the orders file is not CSV: {exc}") from None
    return rows


def _storefront(scope: str | None) -> uuid.UUID:
    if scope is None:
        raise EscrowRefused("the orders job needs --scope STOREFRONT_ID")
    try:
        return uuid.UUID(scope)
    except ValueError:
        raise EscrowRefused(f"--scope {scope!r} is not a storefront id") from None


def end_of(day: date) -> int:
    """Microseconds at midnight UTC after ``day``: the moment a run measures ages from."""
    return to_us(datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC))


# -- the checks -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Reader:
    """The storefront's queries, each over the whole set, in the run's snapshot."""

    tx: Tx
    storefront: uuid.UUID
    escrow: uuid.UUID

    @property
    def params(self) -> dict[str, Any]:
        return {"sf": self.storefront, "escrow": self.escrow, "escrow_hex": self.escrow.hex}

    def legs(self) -> str:
        """Every leg the storefront's order steps recorded (the step's own record)."""
        tx = self.tx
        return (
            "SELECT s.order_id AS order_id, "
            f"{element(tx, 0)} AS grp, replace({element(tx, 1)}, '-', '') AS tid, "
            f"replace({element(tx, 2)}, '-', '') AS debit, "
            f"replace({element(tx, 3)}, '-', '') AS credit, "
            f"CAST({element(tx, 4)} AS BIGINT) AS amount "
            f"FROM order_escrow_steps s, {array_rows(tx, 's.legs')} WHERE s.storefront_id = :sf"
        )

    def escrow_transfers(self) -> str:
        """The escrow account's posted transfers: hex id, amount, +1 credit / -1 debit."""
        return (
            f"SELECT {uuid_hex(self.tx, 't.id')} AS tid, t.id AS id, t.amount AS amount,"
            " t.code AS code, CASE WHEN t.credit_account_id = :escrow THEN 1 ELSE -1 END AS sign"
            " FROM posted_transfers t"
            " WHERE (t.debit_account_id = :escrow OR t.credit_account_id = :escrow)"
        )

    def order_breaks(self) -> list[Row]:
        """Orders whose counters differ from the escrow transfers their steps made."""
        return self.tx.execute(
            f"WITH legs AS ({self.legs()}), esc AS ({self.escrow_transfers()}),"
            " m AS (SELECT l.order_id AS order_id,"
            "  SUM(CASE WHEN l.grp = 'payment' AND e.sign = 1 THEN e.amount ELSE 0 END) AS paid,"
            "  SUM(CASE WHEN l.grp = 'release' AND e.sign = -1 THEN e.amount ELSE 0 END)"
            "   AS released,"
            "  SUM(CASE WHEN l.grp = 'refund' AND e.sign = -1 THEN e.amount ELSE 0 END)"
            "   AS refunded,"
            "  SUM(CASE WHEN l.grp = 'reversal' AND e.sign = 1 THEN e.amount ELSE 0 END)"
            "   AS reversed"
            "  FROM legs l JOIN esc e ON e.tid = l.tid GROUP BY l.order_id)"
            " SELECT o.id, o.paid_minor, o.released_minor, o.refunded_minor, o.reversed_minor,"
            " COALESCE(m.paid, 0), COALESCE(m.released, 0) - COALESCE(m.reversed, 0),"
            " COALESCE(m.refunded, 0), COALESCE(m.reversed, 0)"
            " FROM order_escrow_counters o LEFT JOIN m ON m.order_id = o.id"
            " WHERE o.storefront_id = :sf"
            " AND (o.paid_minor <> COALESCE(m.paid, 0)"
            "  OR o.released_minor <> COALESCE(m.released, 0) - COALESCE(m.reversed, 0)"
            "  OR o.refunded_minor <> COALESCE(m.refunded, 0)"
            "  OR o.reversed_minor <> COALESCE(m.reversed, 0))"
            " ORDER BY o.created_at_us, o.id",
            self.params,
        )

    def unmatched_legs(self) -> list[Row]:
        """Escrow legs of steps with no transfer of that id on escrow, or another amount."""
        return self.tx.execute(
            f"WITH legs AS ({self.legs()}), esc AS ({self.escrow_transfers()})"
            " SELECT l.order_id, l.tid, l.amount, e.amount FROM legs l"
            " LEFT JOIN esc e ON e.tid = l.tid"
            " WHERE (l.debit = :escrow_hex OR l.credit = :escrow_hex)"
            " AND (e.tid IS NULL OR e.amount <> l.amount)"
            " ORDER BY l.order_id, l.tid",
            self.params,
        )

    def unexplained_transfers(self) -> list[Row]:
        """Escrow transfers no step of the storefront's orders made."""
        return self.tx.execute(
            f"WITH legs AS ({self.legs()}), esc AS ({self.escrow_transfers()})"
            " SELECT e.id, e.sign * e.amount, e.code FROM esc e"
            " WHERE NOT EXISTS (SELECT 1 FROM legs l WHERE l.tid = e.tid) ORDER BY e.tid",
            self.params,
        )

    def totals(self) -> Row:
        """(escrow posted balance, sum over orders of paid - released - refunded, orders)."""
        row = self.tx.one(
            "SELECT (SELECT credits_posted - debits_posted FROM ledger_accounts"
            "  WHERE id = :escrow),"
            " (SELECT COALESCE(SUM(paid_minor - released_minor - refunded_minor), 0)"
            "  FROM order_escrow_counters WHERE storefront_id = :sf),"
            " (SELECT COUNT(*) FROM order_escrow_counters WHERE storefront_id = :sf),"
            " (SELECT COUNT(*) FROM posted_transfers t WHERE"
            "  t.debit_account_id = :escrow OR t.credit_account_id = :escrow)",
            self.params,
        )
        assert row is not None  # an aggregate answers one row
        return row

    def by_state(self) -> list[Row]:
        return self.tx.execute(
            "SELECT state, COUNT(*), SUM(paid_minor - released_minor - refunded_minor)"
            " FROM order_escrow_counters WHERE storefront_id = :sf"
            " GROUP BY state ORDER BY state",
            self.params,
        )

    def stale(self, stale_before_us: int) -> list[Row]:
        """Delivered orders whose last delivery step is at or before ``stale_before_us``."""
        return self.tx.execute(
            "SELECT o.id, o.paid_minor - o.released_minor - o.refunded_minor,"
            " MAX(s.created_at_us) FROM order_escrow_counters o"
            " JOIN order_escrow_steps s ON s.order_id = o.id AND s.kind = 'deliver'"
            " WHERE o.storefront_id = :sf AND o.state = 'delivered'"
            " AND o.paid_minor - o.released_minor - o.refunded_minor > 0"
            " GROUP BY o.id, o.paid_minor, o.released_minor, o.refunded_minor"
            " HAVING MAX(s.created_at_us) <= :before ORDER BY MAX(s.created_at_us), o.id",
            {**self.params, "before": stale_before_us},
        )

    def released_without_delivery(self, evidence: tuple[str, ...]) -> list[Row]:
        kinds = ", ".join(f"'{k}'" for k in evidence if k in EVIDENCE_KINDS)
        return self.tx.execute(
            "SELECT o.id, o.released_minor, o.dispatched_at_us FROM order_escrow_counters o"
            " WHERE o.storefront_id = :sf AND o.released_minor > 0"
            " AND (o.dispatched_at_us IS NULL OR NOT EXISTS (SELECT 1 FROM order_escrow_steps s"
            f"  WHERE s.order_id = o.id AND s.kind IN ({kinds})))"
            " ORDER BY o.created_at_us, o.id",
            self.params,
        )

    def file_breaks(self, rows: list[tuple[str, int, str]]) -> list[Row]:
        """The storefront's file against the order rows: (file id, amount, state, ledger
        id, amount, state); one side empty for an order only one of them has."""
        tx = self.tx
        return tx.execute(
            f"WITH f AS (SELECT {element(tx, 0)} AS oid,"
            f" CAST({element(tx, 1)} AS BIGINT) AS amount,"
            f" {element(tx, 2)} AS state FROM {array_rows(tx, ':file')}),"
            f" o AS (SELECT {uuid_hex(tx, 'id')} AS oid, amount_minor AS amount, state"
            "  FROM order_escrow_counters WHERE storefront_id = :sf)"
            " SELECT f.oid, f.amount, f.state, o.oid, o.amount, o.state"
            " FROM f LEFT JOIN o ON o.oid = f.oid"
            " WHERE o.oid IS NULL OR o.amount <> f.amount OR o.state <> f.state"
            " UNION ALL"
            " SELECT NULL, NULL, NULL, o.oid, o.amount, o.state"
            " FROM o WHERE NOT EXISTS (SELECT 1 FROM f WHERE f.oid = o.oid)"
            " ORDER BY 4, 1",
            {**self.params, "file": json.dumps(rows, separators=(",", ":"))},
        )


@dataclass(frozen=True, slots=True)
class _Reading:
    currency: str
    totals: Row
    by_state: list[Row]
    orders: list[Row]
    legs: list[Row]
    unexplained: list[Row]
    stale: list[Row]
    released: list[Row]
    file: list[Row]


def _read(
    tx: Tx,
    storefront_id: uuid.UUID,
    options: _Options,
    stale_before_us: int,
    file_rows: list[tuple[str, int, str]] | None,
) -> _Reading:
    storefront = parties.find_party(tx, storefront_id)
    if storefront is None or storefront.kind is not Kind.STOREFRONT:
        raise EscrowRefused(f"no storefront {storefront_id}")
    reader = _Reader(tx, storefront.id, storefront.account(Role.ESCROW))
    return _Reading(
        currency=storefront.currency,
        totals=reader.totals(),
        by_state=reader.by_state(),
        orders=reader.order_breaks(),
        legs=reader.unmatched_legs(),
        unexplained=reader.unexplained_transfers(),
        stale=reader.stale(stale_before_us),
        released=reader.released_without_delivery(options.evidence),
        file=[] if file_rows is None else reader.file_breaks(file_rows),
    )


def _uuid_text(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(uuid.UUID(hex=str(value)))


DetailLine = tuple[object, ...]
"""One line of the detail CSV (:data:`DETAIL_HEADER`)."""

_COUNTERS = ("paid", "released", "refunded", "reversed")


def _order_lines(reading: _Reading) -> list[DetailLine]:
    lines: list[DetailLine] = []
    for row in reading.orders:
        differing = [
            f"{name} {row[5 + i]} in the ledger, {row[1 + i]} on the order"
            for i, name in enumerate(_COUNTERS)
            if row[1 + i] != row[5 + i]
        ]
        ledger_escrow = int(row[5]) - int(row[6]) - int(row[7])
        order_escrow = int(row[1]) - int(row[2]) - int(row[3])
        lines.append(
            ("order_differs", str(row[0]), ledger_escrow, order_escrow, "; ".join(differing))
        )
    return lines


def _leg_lines(reading: _Reading) -> list[DetailLine]:
    return [
        (
            "leg_unmatched",
            str(row[0]),
            "" if row[3] is None else int(row[3]),
            int(row[2]),
            f"leg {_uuid_text(row[1])}: "
            + ("no such escrow transfer" if row[3] is None else "another amount"),
        )
        for row in reading.legs
    ]


def _unexplained_lines(reading: _Reading) -> list[DetailLine]:
    return [
        (
            "transfer_unexplained",
            "",
            0,
            int(row[1]),
            f"escrow transfer {row[0]} (code {row[2]}) made by no order step",
        )
        for row in reading.unexplained
    ]


def _total_lines(reading: _Reading) -> list[DetailLine]:
    balance, orders_escrow = int(reading.totals[0] or 0), int(reading.totals[1] or 0)
    if balance == orders_escrow:
        return []
    return [
        (
            "escrow_total",
            "",
            balance,
            orders_escrow,
            "escrow balance differs from the sum over orders of paid - released - refunded",
        )
    ]


def _stale_lines(reading: _Reading, options: _Options) -> list[DetailLine]:
    return [
        (
            "delivered_not_released",
            str(row[0]),
            0,
            int(row[1]),
            f"delivered {from_us(int(row[2])).isoformat()}, more than {options.stale_days} days"
            " before the end of the business date, still in escrow",
        )
        for row in reading.stale
    ]


def _released_lines(reading: _Reading) -> list[DetailLine]:
    return [
        (
            "released_without_delivery",
            str(row[0]),
            0,
            int(row[1]),
            "never dispatched" if row[2] is None else "no step stands for its delivery",
        )
        for row in reading.released
    ]


def _file_lines(reading: _Reading) -> list[DetailLine]:
    lines: list[DetailLine] = []
    for row in reading.file:
        if row[3] is None:
            lines.append(
                ("file_only", _uuid_text(row[0]), "", int(row[1]), "in the file, not the ledger")
            )
            continue
        if row[0] is None:
            lines.append(
                ("ledger_only", _uuid_text(row[3]), int(row[4]), "", "in the ledger, not the file")
            )
            continue
        if int(row[1]) != int(row[4]):
            lines.append(("amount_differs", _uuid_text(row[3]), int(row[4]), int(row[1]), "amount"))
        if row[2] != row[5]:
            lines.append(
                (
                    "state_differs",
                    _uuid_text(row[3]),
                    "",
                    "",
                    f"{row[5]} in the ledger, {row[2]} in the file",
                )
            )
    return lines


def _detail(reading: _Reading, options: _Options) -> list[DetailLine]:
    """Every finding, kind by kind in the order the module docstring lists them."""
    return [
        *_order_lines(reading),
        *_leg_lines(reading),
        *_unexplained_lines(reading),
        *_total_lines(reading),
        *_stale_lines(reading, options),
        *_released_lines(reading),
        *_file_lines(reading),
    ]


def run(led: Ledger, request: JobRequest) -> Findings:
    """Reconcile the storefront ``request.scope``'s orders with its escrow (and its file)."""
    storefront_id = _storefront(request.scope)
    options = _options(request.options)
    file_rows: list[tuple[str, int, str]] | None = None
    input_sha256 = _EMPTY_SHA256
    if request.input_path is not None:
        data = request.input_path.read_bytes()
        input_sha256 = hashlib.sha256(data).hexdigest()
        file_rows = parse_orders_file(data)
    as_of_us = end_of(request.business_date)
    stale_before_us = as_of_us - options.stale_days * DAY_US
    reading = snapshot(
        led, lambda tx: _read(tx, storefront_id, options, stale_before_us, file_rows)
    )
    detail = _detail(reading, options)
    by_kind: dict[str, int] = {}
    for line in detail:
        by_kind[str(line[0])] = by_kind.get(str(line[0]), 0) + 1
    orders_count, transfers_count = int(reading.totals[2]), int(reading.totals[3])
    return Findings(
        job=JOB,
        business_date=request.business_date,
        scope=str(storefront_id),
        rule_version=RULE_VERSION,
        input_sha256=input_sha256,
        checked=orders_count + transfers_count + (0 if file_rows is None else len(file_rows)),
        detail_header=DETAIL_HEADER,
        detail=detail,
        summary={
            "job": JOB,
            "business_date": request.business_date.isoformat(),
            "rule_version": RULE_VERSION,
            "storefront_id": str(storefront_id),
            "currency": reading.currency,
            "as_of": from_us(as_of_us).isoformat(),
            "stale_days": options.stale_days,
            "evidence": list(options.evidence),
            "orders": orders_count,
            "escrow_transfers": transfers_count,
            "file_rows": None if file_rows is None else len(file_rows),
            "escrow_balance_minor": int(reading.totals[0] or 0),
            "orders_escrow_minor": int(reading.totals[1] or 0),
            "by_state": {
                str(row[0]): {"orders": int(row[1]), "escrow_minor": int(row[2] or 0)}
                for row in reading.by_state
            },
            "breaks_by_kind": by_kind,
        },
    )


def tables(findings: Findings) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Orders by state with what they hold in escrow, and the escrow tie-out."""
    s = findings.summary
    currency = str(s["currency"])
    states: list[tuple[Any, ...]] = [("state", "orders", "in escrow")]
    states += [
        (k, v["orders"], format_money(v["escrow_minor"], currency))
        for k, v in s["by_state"].items()
    ]
    tie: list[tuple[Any, ...]] = [
        ("escrow account balance", "orders: paid - released - refunded", "difference"),
        (
            format_money(s["escrow_balance_minor"], currency),
            format_money(s["orders_escrow_minor"], currency),
            format_money(s["escrow_balance_minor"] - s["orders_escrow_minor"], currency),
        ),
    ]
    return [(f"Orders by state ({s['currency']})", states), ("Escrow tie-out", tie)]
