"""The session rows this process wrote last: a guess that saves a read, never a truth.

A menu step that only reads (most steps) is judged against the row this process wrote at
the session's previous step and saved by :func:`~ledger.flows.ussd.repository.update_if_unchanged`:
one statement that writes only if the stored row still carries that row's ``write_id`` (a
random 63-bit id every write of the row draws afresh, so a row no longer stored, or never
committed, is never matched). When it is not (another worker answered a step, a step was
given back, the row was purged, or this process never saw the session), nothing is
written and the step is judged again on the row read under lock. So the callback stays
stateless across workers: what is kept here only ever spares the read. Rows hold no PIN
(they are what the table holds).

Bounded: at most :data:`ROWS_KEPT_MAX` rows, the least recently written dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ledger.flows.ussd.repository import SessionRow

__all__ = ["ROWS_KEPT_MAX", "forget", "guess", "keep"]

ROWS_KEPT_MAX = 4_096
"""The most session rows kept (a few hundred bytes each: about a megabyte at most)."""

_rows: OrderedDict[tuple[str, str], SessionRow] = OrderedDict()
_lock = threading.Lock()


def guess(database: str, session_id: str) -> SessionRow | None:
    """The row this process last wrote for ``session_id`` on ``database``, or ``None``."""
    with _lock:
        return _rows.get((database, session_id))


def keep(database: str, row: SessionRow) -> None:
    """Remember ``row`` as stored (its ``write_id`` the one the write drew)."""
    key = (database, row.session_id)
    with _lock:
        _rows[key] = row
        _rows.move_to_end(key)
        while len(_rows) > ROWS_KEPT_MAX:
            _rows.popitem(last=False)


def forget(database: str, session_id: str) -> None:
    """Drop the guess for ``session_id`` (it did not match the stored row)."""
    with _lock:
        _rows.pop((database, session_id), None)
