"""A read ledger on a PostgreSQL streaming replica, and the WAL positions that say how
far it has come.

:func:`open_read_ledger` opens a :class:`~ledger.core.ledger.Ledger` on the replica's URL
with ``default_transaction_read_only=on`` in the connection's options, so every session
on it refuses writes (``cannot execute INSERT in a read-only transaction``, a
:class:`~ledger.core.errors.StorageError`) even where the server would take them: a bug
cannot move money through it. Money is never read or written there; reconciliation
jobs, reports, packs and auditors' reads are (see ``reconciliation.replica`` for when a
job may use it).

Positions (LSNs) are handled as :class:`Lsn`, an ``int`` printed the way PostgreSQL
prints ``pg_lsn`` (``0/3000148``): :func:`primary_lsn` is the primary's WAL insert
position, :func:`replay_lsn` the replica's ``pg_last_wal_replay_lsn()``. A replica whose
replay position is at or past a primary position ``P`` has replayed the commit of every
transaction that committed on the primary before ``P`` was read, so a snapshot taken
there afterwards sees all of them.

SQLite has no replica: :func:`open_read_ledger` refuses a ``sqlite:///`` URL.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ledger.core.errors import MalformedRequest
from ledger.core.ledger import POSTGRES_PREFIXES, Clock, Ledger, check_url, open_ledger

__all__ = [
    "READ_DATABASE_ENV",
    "READ_ONLY_OPTION",
    "Lsn",
    "check_read_url",
    "is_replica",
    "open_read_ledger",
    "primary_lsn",
    "read_only_url",
    "replay_lsn",
]

READ_DATABASE_ENV = "VLEDGER_READ_DATABASE"
"""The read-only database URL (a streaming replica of ``VLEDGER_DATABASE``); unset: every
read goes to the primary."""
READ_ONLY_OPTION = "-c default_transaction_read_only=on"
"""Added to the URL's ``options``: each session's transactions are read-only."""
LSN_HALF_BITS = 32


class Lsn(int):
    """A WAL position: a 64-bit integer, printed as PostgreSQL prints ``pg_lsn``."""

    @classmethod
    def parse(cls, text: str) -> Lsn:
        """``"0/3000148"`` as an :class:`Lsn`; ``ValueError`` for anything else."""
        high, slash, low = text.partition("/")
        if not slash or not high or not low:
            raise ValueError(f"not a WAL position (X/Y in hex): {text!r}")
        return cls((int(high, 16) << LSN_HALF_BITS) | int(low, 16))

    def __str__(self) -> str:
        return f"{int(self) >> LSN_HALF_BITS:X}/{int(self) & ((1 << LSN_HALF_BITS) - 1):X}"


def read_only_url(url: str) -> str:
    """``url`` with :data:`READ_ONLY_OPTION` added to its ``options`` (kept: the
    ``search_path`` and anything else given there)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for name, value in query if name == "options"]
    rest = [(name, value) for name, value in query if name != "options"]
    options = " ".join([*given, READ_ONLY_OPTION])
    return urlunsplit(
        parts._replace(query=urlencode([*rest, ("options", options)], quote_via=quote))
    )


def check_read_url(url: str, *, primary_url: str | None = None) -> None:
    """Refuse a read database that cannot be a replica (before touching anything):
    :class:`MalformedRequest` unless ``url`` is PostgreSQL's, and so is ``primary_url``
    when given."""
    check_url(url)
    if not url.startswith(POSTGRES_PREFIXES) or not (
        primary_url is None or primary_url.startswith(POSTGRES_PREFIXES)
    ):
        raise MalformedRequest(
            "a read database is a PostgreSQL streaming replica of a PostgreSQL primary:"
            " SQLite has none"
        )


def open_read_ledger(url: str, *, clock: Clock | None = None) -> Ledger:
    """A read-only :class:`Ledger` on the PostgreSQL database at ``url`` (a streaming
    replica of the primary; migrated through the primary). :class:`MalformedRequest`
    for a URL that is not PostgreSQL's."""
    check_read_url(url)
    return open_ledger(read_only_url(url), clock=clock)


def _position(led: Ledger, expression: str) -> Lsn | None:
    row = led.transact(lambda tx: tx.one(f"SELECT ({expression})::text"))
    return None if row is None or row[0] is None else Lsn.parse(str(row[0]))


def primary_lsn(led: Ledger) -> Lsn:
    """The primary's WAL insert position now: at or past the commit record of every
    transaction committed before this call (asynchronous commits included, whose WAL may
    not be flushed yet)."""
    found = _position(led, "pg_current_wal_insert_lsn()")
    if found is None:
        raise MalformedRequest("pg_current_wal_insert_lsn() answered nothing")
    return found


def replay_lsn(led: Ledger) -> Lsn | None:
    """How far the replica has replayed the primary's WAL; ``None`` when ``led`` is not
    on a replica in recovery (``pg_last_wal_replay_lsn()`` is NULL there)."""
    return _position(led, "pg_last_wal_replay_lsn()")


def is_replica(led: Ledger) -> bool:
    """Whether ``led`` is on a server in recovery (a standby)."""
    row = led.transact(lambda tx: tx.one("SELECT pg_is_in_recovery()"))
    return bool(row is not None and row[0])
