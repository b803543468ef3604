"""Statement matching in SQL over whole sets: staging tables and the staged passes.

A run works on a :class:`Staging`: one connection of its own to the ledger's database
(psycopg on PostgreSQL, ``sqlite3`` on SQLite), in one transaction that reads one
snapshot (REPEATABLE READ on PostgreSQL; a read transaction on SQLite's WAL) and is
**rolled back** at the end, never committed: the only rows it writes are in its own
temporary tables. Statement lines are staged with ``COPY`` on PostgreSQL and
``executemany`` in chunks on SQLite; results are read back in chunks of
:data:`FETCH_CHUNK_ROWS`. No query runs per line.

Tables (temporary, gone with the connection):

- ``recon_lines``: the statement, one row per line (day = days since 1970-01-01).
- ``recon_ledger``: the transfers that touch the provider's clearing account in the
  statement's period widened by the date window, posted money only (a pending hold and
  its void are not money at the provider), signed as the provider sees them (the
  clearing account debited = money into the provider account = positive), each with the
  provider's reference the ledger holds for it: a payout's ``provider_reference`` (the
  transfer that posted it), a suspense item's (the transfer that parked it), else the
  transfer's metadata ``provider_reference``; and its batch (metadata ``window_id``, a
  settlement window).

Passes, in order; each line and each transfer is paired at most once:

1. **reference**: a line and a transfer with the same reference pair when that
   reference occurs once on each side; ``matched`` when the amounts agree, else
   ``amount_break`` with the difference. A reference shared by more than one line or
   transfer is a ``tie``: all of them are flagged, none is paired.
2. **amount and date**: open lines and transfers of the same direction whose amounts
   differ by at most the currency's tolerance and whose days differ by at most the
   window, and whose references do not contradict (both present and different never
   pair). A candidate's score is (amount difference, day difference), compared in that
   order. A pair is taken when each is the other's only best candidate; when a line or a
   transfer has two or more best candidates equally good, all of them are flagged
   ``tie`` and none is paired. Repeated (at most :data:`AMOUNT_ROUNDS_MAX` rounds) so
   that a line whose best transfer went to a better line can take its next best. Exact
   amounts are paired first, then amounts within the tolerance.
   ``matched`` when equal, else ``amount_break`` (a fee, usually).
3. **group sums** (suggestions only, nothing is paired): an open line whose amount is
   within tolerance of the sum of two or more open transfers of one day and direction,
   or of one settlement window; and open lines of one day and direction that sum to an
   open transfer. Such lines are ``group_suggestion``; the transfers stay
   ``ledger_only`` with a note naming the line.

What is left: lines are ``statement_only`` (incoming money is proposed for suspense),
transfers inside the statement's period are ``ledger_only`` (those only in the widened
margin belong to a neighbouring statement and are not breaks).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import psycopg

from ledger.core.ledger import POSTGRES_PREFIXES, SQLITE_PREFIX
from ledger.core.postgres_store import conninfo
from ledger.core.tx import pyformat
from reconciliation.statement_formats import StatementLine

__all__ = [
    "AMOUNT_ROUNDS_MAX",
    "FETCH_CHUNK_ROWS",
    "Staging",
    "day_number",
    "match",
    "open_staging",
]

US_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)
FETCH_CHUNK_ROWS = 10_000
STAGE_CHUNK_ROWS = 10_000
AMOUNT_ROUNDS_MAX = 4
SCORE_DAY_WEIGHT = 1000
"""Score = amount difference x this + day difference: amount first (window < this)."""
TIE_PAIRS_LISTED_MAX = 100_000
"""Tie pairs listed in the detail (one reference shared by n lines and m transfers is
n x m pairs); every tied line and transfer is counted in the summary either way."""


def day_number(day: date) -> int:
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


class Staging:
    """One connection, one transaction that is never committed, and its temp tables."""

    def __init__(self, dialect: str, conn: psycopg.Connection[Any] | sqlite3.Connection) -> None:
        self.dialect = dialect
        self._conn = conn

    def _sql(self, sql: str) -> str:
        return pyformat(sql) if self.dialect == "postgresql" else sql

    def param(self, value: uuid.UUID) -> Any:
        return value if self.dialect == "postgresql" else value.bytes

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement; the rows it changed."""
        cursor = self._conn.execute(self._sql(sql), dict(params or {}))
        return int(cursor.rowcount)

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...]:
        row = self._conn.execute(self._sql(sql), dict(params or {})).fetchone()
        if row is None:
            raise LookupError(f"no row from {sql[:60]!r}")
        return tuple(row)

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> Iterator[tuple[Any, ...]]:
        """A query's rows, fetched :data:`FETCH_CHUNK_ROWS` at a time."""
        if isinstance(self._conn, psycopg.Connection):
            with self._conn.cursor(name=f"recon_{uuid.uuid4().hex[:12]}") as cursor:
                cursor.itersize = FETCH_CHUNK_ROWS
                cursor.execute(self._sql(sql), dict(params or {}))
                while chunk := cursor.fetchmany(FETCH_CHUNK_ROWS):
                    yield from (tuple(row) for row in chunk)
            return
        lite = self._conn.execute(sql, dict(params or {}))
        while chunk := lite.fetchmany(FETCH_CHUNK_ROWS):
            yield from (tuple(row) for row in chunk)

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Fill ``table``: COPY on PostgreSQL, executemany in chunks on SQLite."""
        if isinstance(self._conn, psycopg.Connection):
            with (
                self._conn.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            return
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        chunk: list[Sequence[Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= STAGE_CHUNK_ROWS:
                self._conn.executemany(sql, chunk)
                chunk.clear()
        if chunk:
            self._conn.executemany(sql, chunk)

    def analyze(self, table: str) -> None:
        self.execute(f"ANALYZE {table}")

    def transfer_id(self, value: Any) -> str:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=bytes(value)))

    def metadata(self, key: str) -> str:
        """SQL for a transfer's metadata value at ``key`` (NULL when absent)."""
        if self.dialect == "postgresql":
            return (
                f"CASE WHEN t.metadata LIKE '%\"{key}\"%' THEN (t.metadata::jsonb ->> '{key}') END"
            )
        return f"json_extract(t.metadata, '$.{key}')"


@contextmanager
def open_staging(url: str) -> Iterator[Staging]:
    """A :class:`Staging` on the ledger at ``url``; rolled back and closed on exit."""
    if url.startswith(SQLITE_PREFIX):
        lite = sqlite3.connect(
            url.removeprefix(SQLITE_PREFIX).split("?", 1)[0], isolation_level=None
        )
        try:
            lite.execute("PRAGMA busy_timeout = 5000")
            lite.execute("PRAGMA temp_store = FILE")
            lite.execute("BEGIN")
            yield Staging("sqlite", lite)
        finally:
            if lite.in_transaction:
                lite.execute("ROLLBACK")
            lite.close()
        return
    if not url.startswith(POSTGRES_PREFIXES):
        raise ValueError(f"unsupported database URL {url.split(':', 1)[0]!r}")
    pg = psycopg.connect(conninfo(url), autocommit=False)
    try:
        pg.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        # Server-side memory of this one session (temp tables, sorts, hashes).
        pg.execute("SET LOCAL temp_buffers = '128MB'")
        pg.execute("SET LOCAL work_mem = '64MB'")
        yield Staging("postgresql", pg)
    finally:
        pg.rollback()
        pg.close()


# -- the passes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    account_id: uuid.UUID
    tolerance_minor: int
    window_days: int
    period_from: date
    period_to: date
    """Inclusive."""


def create_tables(st: Staging) -> None:
    ident = "UUID" if st.dialect == "postgresql" else "BLOB"
    # Room on each page, so that marking a row paired rewrites it in place (a HOT update:
    # no index entry) on PostgreSQL.
    roomy = " WITH (fillfactor = 50)" if st.dialect == "postgresql" else ""
    st.execute(
        "CREATE TEMP TABLE recon_lines (line_no BIGINT PRIMARY KEY, day INTEGER NOT NULL,"
        " amount_minor BIGINT NOT NULL, reference TEXT, description TEXT, outcome TEXT,"
        f" seq BIGINT, pass INTEGER, difference_minor BIGINT, note TEXT){roomy}"
    )
    st.execute(
        f"CREATE TEMP TABLE recon_ledger (seq BIGINT PRIMARY KEY, transfer_id {ident} NOT NULL,"
        " day INTEGER NOT NULL, amount_minor BIGINT NOT NULL, reference TEXT, batch TEXT,"
        f" in_period INTEGER NOT NULL, outcome TEXT, line_no BIGINT, note TEXT){roomy}"
    )
    st.execute(
        "CREATE TEMP TABLE recon_ties (line_no BIGINT NOT NULL, seq BIGINT NOT NULL,"
        " pass INTEGER NOT NULL, difference_minor BIGINT NOT NULL)"
    )
    st.execute(
        "CREATE TEMP TABLE recon_suggestions (line_no BIGINT, seq BIGINT, kind TEXT NOT NULL,"
        " group_key TEXT NOT NULL, members BIGINT NOT NULL, total_minor BIGINT NOT NULL,"
        " difference_minor BIGINT NOT NULL)"
    )


LINE_COLUMNS = ("line_no", "day", "amount_minor", "reference", "description")


def line_rows(lines: Iterable[StatementLine]) -> Iterator[tuple[Any, ...]]:
    for line in lines:
        yield (
            line.line_no,
            day_number(line.booked_on),
            line.amount_minor,
            line.reference,
            line.description,
        )


def stage_ledger(st: Staging, settings: Settings) -> None:
    """The ledger side: posted transfers (the core's ``posted_transfers``: a hold and its
    void are not money at the provider) on the clearing account in the widened period."""
    start = day_number(settings.period_from) - settings.window_days
    end = day_number(settings.period_to) + settings.window_days + 1
    st.execute(
        "INSERT INTO recon_ledger (seq, transfer_id, day, amount_minor, reference, batch,"
        " in_period)"
        " SELECT t.seq, t.id, t.created_at_us / :us_per_day,"
        " CASE WHEN t.debit_account_id = :account THEN t.amount ELSE -t.amount END,"
        " COALESCE(p.provider_reference, s.provider_reference,"
        f" {st.metadata('provider_reference')}), {st.metadata('window_id')},"
        " CASE WHEN t.created_at_us >= :period_from AND t.created_at_us < :period_to"
        " THEN 1 ELSE 0 END"
        " FROM posted_transfers t"
        " LEFT JOIN settlement_payouts p ON p.resolve_transfer_id = t.id"
        " LEFT JOIN suspense_items_view s ON s.park_transfer_id = t.id"
        " WHERE (t.debit_account_id = :account OR t.credit_account_id = :account)"
        " AND t.created_at_us >= :start AND t.created_at_us < :end",
        {
            "account": st.param(settings.account_id),
            "us_per_day": US_PER_DAY,
            "start": start * US_PER_DAY,
            "end": end * US_PER_DAY,
            "period_from": day_number(settings.period_from) * US_PER_DAY,
            "period_to": (day_number(settings.period_to) + 1) * US_PER_DAY,
        },
    )
    # No index beyond the keys: pass 1 hash-joins whole sets, pass 2 indexes its own
    # compact table of what is still open.
    st.analyze("recon_ledger")
    st.analyze("recon_lines")


def pass_reference(st: Staging) -> None:
    st.execute(
        "CREATE TEMP TABLE recon_by_reference AS"
        " SELECT l.line_no, g.seq, l.amount_minor - g.amount_minor AS difference_minor,"
        " COUNT(*) OVER (PARTITION BY l.reference) AS pairs"
        " FROM recon_lines l JOIN recon_ledger g ON g.reference = l.reference"
    )
    _pair(st, "SELECT line_no, seq, difference_minor FROM recon_by_reference WHERE pairs = 1", 1)
    _tie(st, "SELECT line_no, seq, difference_minor FROM recon_by_reference WHERE pairs > 1", 1)
    st.execute("DROP TABLE recon_by_reference")
    # Most rows changed: plans from here on need the new picture.
    st.analyze("recon_ledger")
    st.analyze("recon_lines")


def _pair(st: Staging, select: str, number: int) -> int:
    """Pair the (line_no, seq, difference_minor) rows ``select`` answers."""
    st.execute(f"CREATE TEMP TABLE recon_new AS {select}")
    st.analyze("recon_new")  # a few rows, usually: index lookups, not whole scans
    paired = st.execute(
        "UPDATE recon_lines AS l SET seq = n.seq, pass = :pass,"
        " difference_minor = n.difference_minor,"
        " outcome = CASE WHEN n.difference_minor = 0 THEN 'matched' ELSE 'amount_break' END"
        " FROM recon_new n WHERE n.line_no = l.line_no",
        {"pass": number},
    )
    st.execute(
        "UPDATE recon_ledger AS g SET outcome = 'paired', line_no = n.line_no"
        " FROM recon_new n WHERE n.seq = g.seq"
    )
    st.execute("DROP TABLE recon_new")
    return paired


def _tie(st: Staging, select: str, number: int) -> int:
    """Flag every line and transfer of the (line_no, seq, difference_minor) rows."""
    before = st.one("SELECT COUNT(*) FROM recon_ties")[0]
    st.execute(
        f"INSERT INTO recon_ties (line_no, seq, difference_minor, pass)"
        f" SELECT line_no, seq, difference_minor, :pass FROM ({select}) x",
        {"pass": number},
    )
    flagged = int(st.one("SELECT COUNT(*) FROM recon_ties")[0]) - int(before)
    if flagged:
        st.execute(
            "UPDATE recon_lines SET outcome = 'tie', pass = :pass"
            " WHERE outcome IS NULL AND line_no IN (SELECT line_no FROM recon_ties)",
            {"pass": number},
        )
        st.execute(
            "UPDATE recon_ledger SET outcome = 'tie'"
            " WHERE outcome IS NULL AND seq IN (SELECT seq FROM recon_ties)"
        )
    return flagged


def pass_amount(st: Staging, settings: Settings) -> None:
    """Exact amounts first, then within the tolerance: an exact candidate always scores
    better than any other, so this is the same ranking with far fewer candidates."""
    _amount_rounds(st, 0, settings.window_days)
    if settings.tolerance_minor:
        _amount_rounds(st, settings.tolerance_minor, settings.window_days)


CANDIDATES_PER_SIDE = 2
"""PostgreSQL: the nearest amounts above and below a line taken as its candidates (with
every transfer tied with the last of them on amount, so equal candidates are never cut
apart); rebuilt each round. SQLite (the small, embedded case) takes every candidate."""


def _candidates(st: Staging, tolerance_minor: int, window_days: int) -> None:
    params = {
        "weight": SCORE_DAY_WEIGHT,
        "tolerance": tolerance_minor,
        "window": window_days,
        "k": CANDIDATES_PER_SIDE,
    }
    score = (
        "l.amount_minor - g.amount_minor AS difference_minor,"
        " ABS(l.amount_minor - g.amount_minor) * :weight + ABS(l.day - g.day) AS score"
    )
    agree = (
        "g.day BETWEEN l.day - :window AND l.day + :window"
        " AND (l.reference IS NULL OR g.reference IS NULL)"
        " AND (l.amount_minor > 0) = (g.amount_minor > 0)"
    )
    if st.dialect != "postgresql" or tolerance_minor == 0:
        st.execute(
            f"CREATE TEMP TABLE recon_candidates AS SELECT l.line_no, g.seq, {score}"
            " FROM recon_lines l JOIN recon_open g ON g.amount_minor"
            " BETWEEN l.amount_minor - :tolerance AND l.amount_minor + :tolerance"
            f" AND {agree} WHERE l.outcome IS NULL",
            params,
        )
        st.analyze("recon_candidates")
        return
    nearest = (
        "(SELECT g.seq, g.amount_minor, g.day FROM recon_open g"
        " WHERE g.amount_minor BETWEEN {low} AND {high} AND " + agree + " ORDER BY"
        " g.amount_minor {order} FETCH FIRST :k ROWS WITH TIES)"
    )
    above = nearest.format(low="l.amount_minor", high="l.amount_minor + :tolerance", order="ASC")
    below = nearest.format(
        low="l.amount_minor - :tolerance", high="l.amount_minor - 1", order="DESC"
    )
    st.execute(
        f"CREATE TEMP TABLE recon_candidates AS SELECT l.line_no, g.seq, {score}"
        f" FROM recon_lines l CROSS JOIN LATERAL ({above} UNION ALL {below}) g"
        " WHERE l.outcome IS NULL",
        params,
    )
    st.analyze("recon_candidates")


def _amount_rounds(st: Staging, tolerance_minor: int, window_days: int) -> None:
    st.execute(
        "CREATE TEMP TABLE recon_open AS SELECT seq, amount_minor, day, reference"
        " FROM recon_ledger WHERE outcome IS NULL"
    )
    st.execute("CREATE INDEX recon_open_amount ON recon_open (amount_minor, day)")
    st.analyze("recon_open")
    rebuild = st.dialect == "postgresql" and tolerance_minor > 0
    for round_number in range(AMOUNT_ROUNDS_MAX):
        if round_number == 0 or rebuild:
            _candidates(st, tolerance_minor, window_days)
        st.execute(
            "CREATE TEMP TABLE recon_best AS"
            " SELECT line_no, seq, difference_minor,"
            " SUM(mutual) OVER (PARTITION BY line_no) AS per_line,"
            " SUM(mutual) OVER (PARTITION BY seq) AS per_transfer, mutual"
            " FROM (SELECT c.line_no, c.seq, c.difference_minor,"
            " CASE WHEN RANK() OVER (PARTITION BY c.line_no ORDER BY c.score) = 1"
            " AND RANK() OVER (PARTITION BY c.seq ORDER BY c.score) = 1 THEN 1 ELSE 0 END"
            " AS mutual"
            " FROM recon_candidates c"
            " JOIN recon_lines l ON l.line_no = c.line_no AND l.outcome IS NULL"
            " JOIN recon_open g ON g.seq = c.seq) ranked"
        )
        st.analyze("recon_best")
        paired = _pair(
            st,
            "SELECT line_no, seq, difference_minor FROM recon_best"
            " WHERE mutual = 1 AND per_line = 1 AND per_transfer = 1",
            2,
        )
        tied = _tie(
            st,
            "SELECT line_no, seq, difference_minor FROM recon_best"
            " WHERE mutual = 1 AND (per_line > 1 OR per_transfer > 1)",
            2,
        )
        # every mutual best was either paired or tied: its transfer is no longer open
        st.execute(
            "DELETE FROM recon_open WHERE seq IN (SELECT seq FROM recon_best WHERE mutual = 1)"
        )
        st.execute("DROP TABLE recon_best")
        st.analyze("recon_open")
        if rebuild:
            st.execute("DROP TABLE recon_candidates")
        if not paired and not tied:
            break
    if not rebuild:
        st.execute("DROP TABLE recon_candidates")
    st.execute("DROP TABLE recon_open")


def pass_groups(st: Staging, settings: Settings) -> None:
    params = {"tolerance": settings.tolerance_minor, "window": settings.window_days}
    sign = "CASE WHEN amount_minor > 0 THEN '+' ELSE '-' END"
    st.execute(
        "CREATE TEMP TABLE recon_groups AS"
        f" SELECT 'day' AS kind, CAST(day AS TEXT) || {sign} AS group_key, MIN(day) AS day,"
        " CAST(SUM(amount_minor) AS BIGINT) AS total_minor, COUNT(*) AS members"
        " FROM recon_ledger WHERE outcome IS NULL"
        f" GROUP BY day, {sign} HAVING COUNT(*) >= 2"
        " UNION ALL"
        " SELECT 'window', batch, MAX(day), CAST(SUM(amount_minor) AS BIGINT), COUNT(*)"
        " FROM recon_ledger WHERE outcome IS NULL AND batch IS NOT NULL"
        " GROUP BY batch HAVING COUNT(*) >= 2"
    )
    st.execute("CREATE INDEX recon_groups_total ON recon_groups (total_minor)")
    st.execute(
        "INSERT INTO recon_suggestions (line_no, seq, kind, group_key, members, total_minor,"
        " difference_minor)"
        " SELECT l.line_no, NULL, gr.kind, gr.group_key, gr.members, gr.total_minor,"
        " l.amount_minor - gr.total_minor"
        " FROM recon_lines l JOIN recon_groups gr"
        " ON gr.total_minor BETWEEN l.amount_minor - :tolerance AND l.amount_minor + :tolerance"
        " AND gr.day BETWEEN l.day - :window AND l.day + :window"
        " WHERE l.outcome IS NULL",
        params,
    )
    st.execute(
        "CREATE TEMP TABLE recon_line_groups AS"
        f" SELECT CAST(day AS TEXT) || {sign} AS group_key, MIN(day) AS day,"
        " CAST(SUM(amount_minor) AS BIGINT) AS total_minor, COUNT(*) AS members"
        " FROM recon_lines WHERE outcome IS NULL"
        f" GROUP BY day, {sign} HAVING COUNT(*) >= 2"
    )
    st.execute(
        "INSERT INTO recon_suggestions (line_no, seq, kind, group_key, members, total_minor,"
        " difference_minor)"
        " SELECT NULL, g.seq, 'lines', lg.group_key, lg.members, lg.total_minor,"
        " lg.total_minor - g.amount_minor"
        " FROM recon_ledger g JOIN recon_line_groups lg"
        " ON lg.total_minor BETWEEN g.amount_minor - :tolerance AND g.amount_minor + :tolerance"
        " AND lg.day BETWEEN g.day - :window AND g.day + :window"
        " WHERE g.outcome IS NULL",
        params,
    )
    # Lines in a suggestion are no longer proposed for suspense; transfers stay open.
    st.execute(
        "UPDATE recon_lines SET outcome = 'group_suggestion', pass = 3"
        " WHERE outcome IS NULL AND line_no IN"
        " (SELECT line_no FROM recon_suggestions WHERE line_no IS NOT NULL)"
    )
    st.execute(
        "UPDATE recon_lines SET outcome = 'group_suggestion', pass = 3"
        f" WHERE outcome IS NULL AND CAST(day AS TEXT) || {sign} IN"
        " (SELECT group_key FROM recon_suggestions WHERE kind = 'lines')"
    )
    st.execute(
        "UPDATE recon_ledger AS g SET note = 'in a suggested group for statement line '"
        " || CAST(s.line_no AS TEXT)"
        " FROM recon_suggestions s"
        " WHERE g.outcome IS NULL AND s.line_no IS NOT NULL AND ("
        f" (s.kind = 'day' AND s.group_key = CAST(g.day AS TEXT) || "
        f"{sign.replace('amount_minor', 'g.amount_minor')})"
        " OR (s.kind = 'window' AND s.group_key = g.batch))"
    )


def match(st: Staging, settings: Settings, step: Callable[[str], None]) -> None:
    """Stage the ledger side and run the three passes over the staged statement."""
    step("ledger side")
    stage_ledger(st, settings)
    step("pass 1: reference")
    pass_reference(st)
    step("pass 2: amount and date")
    pass_amount(st, settings)
    step("pass 3: group sums")
    pass_groups(st, settings)


# -- results ------------------------------------------------------------------------------


def counts(st: Staging) -> dict[str, int]:
    """Lines by outcome (and ``ledger_*`` for the transfers)."""
    found: dict[str, int] = {}
    for outcome, number in st.rows(
        "SELECT COALESCE(outcome, 'statement_only'), COUNT(*) FROM recon_lines GROUP BY 1"
    ):
        found[f"lines_{outcome}"] = int(number)
    for outcome, in_period, number in st.rows(
        "SELECT COALESCE(outcome, 'open'), in_period, COUNT(*) FROM recon_ledger GROUP BY 1, 2"
    ):
        key = f"transfers_{outcome}" + ("" if in_period else "_outside_period")
        found[key] = found.get(key, 0) + int(number)
    for number_pass, number in st.rows(
        "SELECT pass, COUNT(*) FROM recon_lines WHERE outcome IN ('matched', 'amount_break')"
        " GROUP BY pass"
    ):
        found[f"paired_by_pass_{number_pass}"] = int(number)
    return found


DetailRow = tuple[object, ...]


def _amount_breaks(st: Staging, tolerance_minor: int) -> Iterator[DetailRow]:
    for line_no, day, amount, reference, transfer, t_amount, difference, number in st.rows(
        "SELECT l.line_no, l.day, l.amount_minor, l.reference, g.transfer_id, g.amount_minor,"
        " l.difference_minor, l.pass FROM recon_lines l JOIN recon_ledger g ON g.seq = l.seq"
        " WHERE l.outcome = 'amount_break' ORDER BY l.line_no"
    ):
        how = "same reference" if number == 1 else "amount within tolerance, date in window"
        beyond = abs(difference) > tolerance_minor
        note = f"{how}; " + (
            "difference beyond the tolerance: check" if beyond else "difference (a fee?)"
        )
        yield (
            "amount_break",
            line_no,
            day_of(day).isoformat(),
            amount,
            reference or "",
            st.transfer_id(transfer),
            t_amount,
            difference,
            note,
        )


def _ties(st: Staging) -> Iterator[DetailRow]:
    for line_no, day, amount, reference, transfer, t_amount, difference, number in st.rows(
        "SELECT t.line_no, l.day, l.amount_minor, l.reference, g.transfer_id, g.amount_minor,"
        " t.difference_minor, t.pass FROM recon_ties t"
        " JOIN recon_lines l ON l.line_no = t.line_no JOIN recon_ledger g ON g.seq = t.seq"
        " ORDER BY t.line_no, g.seq LIMIT :listed",
        {"listed": TIE_PAIRS_LISTED_MAX},
    ):
        why = "the same reference" if number == 1 else "equally good amount and date"
        yield (
            "tie",
            line_no,
            day_of(day).isoformat(),
            amount,
            reference or "",
            st.transfer_id(transfer),
            t_amount,
            difference,
            f"{why}: flagged, not guessed; decide by hand",
        )


def _day_group(key: str) -> str:
    """A day group's key (``<day number><+ or ->``) in words: ``2026-06-01 (in)``."""
    return f"{day_of(int(key[:-1])).isoformat()} ({'in' if key.endswith('+') else 'out'})"


def _line_suggestion(
    line_no: object, line: tuple[Any, ...], kind: str, key: str, members: int, total: int
) -> DetailRow:
    """A statement line that may be a group of open transfers (a day's or a window's)."""
    l_day, l_amount, l_ref, difference = line
    what = (
        f"the {members} open transfers of settlement window {key}"
        if kind == "window"
        else f"the {members} open transfers of {_day_group(key)}"
    )
    return (
        "group_suggestion",
        line_no,
        day_of(l_day).isoformat(),
        l_amount,
        l_ref or "",
        "",
        total,
        difference,
        f"suggestion only: this line may be {what} (sum {total})",
    )


def _transfer_suggestion(
    transfer_id: str, key: str, members: int, total: int, difference: int
) -> DetailRow:
    """An open transfer that may be the sum of a day's open lines."""
    return (
        "group_suggestion",
        "",
        day_of(int(key[:-1])).isoformat(),
        total,
        "",
        transfer_id,
        total - difference,
        difference,
        f"suggestion only: the {members} open lines of {_day_group(key)} may be this transfer",
    )


def _group_suggestions(st: Staging) -> Iterator[DetailRow]:
    for (
        line_no,
        seq,
        kind,
        key,
        members,
        total,
        difference,
        l_day,
        l_amount,
        l_ref,
        g_id,
    ) in st.rows(
        "SELECT s.line_no, s.seq, s.kind, s.group_key, s.members, s.total_minor,"
        " s.difference_minor, l.day, l.amount_minor, l.reference, g.transfer_id"
        " FROM recon_suggestions s"
        " LEFT JOIN recon_lines l ON l.line_no = s.line_no"
        " LEFT JOIN recon_ledger g ON g.seq = s.seq"
        " ORDER BY s.line_no, s.seq, s.kind, s.group_key"
    ):
        if seq is None:
            line = (l_day, l_amount, l_ref, difference)
            yield _line_suggestion(line_no, line, kind, key, members, total)
        else:
            yield _transfer_suggestion(st.transfer_id(g_id), key, members, total, difference)


def _statement_only(st: Staging) -> Iterator[DetailRow]:
    for line_no, day, amount, reference, description in st.rows(
        "SELECT line_no, day, amount_minor, reference, description FROM recon_lines"
        " WHERE outcome IS NULL ORDER BY line_no"
    ):
        note = (
            "park in suspense: provider money no transfer claims"
            if amount > 0
            else "money out of the provider account with no transfer: investigate"
        )
        if description:
            note += f" ({description})"
        yield (
            "statement_only",
            line_no,
            day_of(day).isoformat(),
            amount,
            reference or "",
            "",
            "",
            "",
            note,
        )


def _ledger_only(st: Staging) -> Iterator[DetailRow]:
    for transfer, day, amount, reference, note in st.rows(
        "SELECT transfer_id, day, amount_minor, reference, note FROM recon_ledger"
        " WHERE outcome IS NULL AND in_period = 1 ORDER BY seq"
    ):
        yield (
            "ledger_only",
            "",
            day_of(day).isoformat(),
            "",
            reference or "",
            st.transfer_id(transfer),
            amount,
            "",
            note or "no statement line: not yet at the provider, or the provider missed it",
        )


def detail(st: Staging, tolerance_minor: int) -> Iterator[DetailRow]:
    """The breaks, kind by kind: (kind, line, date, amount_minor, reference, transfer_id,
    transfer_amount_minor, difference_minor, note)."""
    yield from _amount_breaks(st, tolerance_minor)
    yield from _ties(st)
    yield from _group_suggestions(st)
    yield from _statement_only(st)
    yield from _ledger_only(st)


def period_of(st: Staging) -> tuple[date, date] | None:
    row = st.one("SELECT MIN(day), MAX(day) FROM recon_lines")
    if row[0] is None:
        return None
    return day_of(int(row[0])), day_of(int(row[1]))
