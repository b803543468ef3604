"""All SQL of ``ussd_sessions``: one row per aggregator ``sessionId``, never a PIN.

Times are UTC microseconds since 1970 (``*_us``). A step is saved by compare-and-set on
``inputs_seen``, so that two deliveries of one step cannot both move the session on;
:func:`update_if_unchanged` saves a step computed from a row this process wrote before,
in one statement, only if the stored row is still exactly that row: every write of a row
gives it a new random ``write_id`` in the same statement, so a row is the one this process
wrote while its ``write_id`` is the one this process gave it (a write that was rolled
back gave one that no stored row ever holds). The functions that write answer the row as
stored.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, replace

from ledger.core.ledger import Ledger
from ledger.core.rows import RowMapper, flag, from_json
from ledger.core.tx import Tx

__all__ = [
    "SessionRow",
    "delete_idle",
    "forget_ended_screens",
    "insert",
    "select",
    "update",
    "update_if_unchanged",
    "update_if_unchanged_on_loop",
]


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A ``ussd_sessions`` row."""

    session_id: str
    phone: str
    """E.164."""
    villager_id: uuid.UUID
    language: str
    state: dict[str, object]
    """The menu state (:class:`ledger.flows.ussd.menus.State` as JSON)."""
    inputs_seen: int
    secret_positions: list[int]
    """Indexes of the inputs that were PINs (never the digits)."""
    inputs_sha256: str
    pin_verified_at_us: int | None
    screen_text: str
    screen_end: bool
    created_at_us: int
    updated_at_us: int
    write_id: int = 0
    """Random, new at every write of the row (0 for rows older than the column)."""


_SESSION = RowMapper(
    SessionRow,
    "session_id, phone, villager_id, language, state, inputs_seen, secret_positions,"
    " inputs_sha256, pin_verified_at_us, screen_text, screen_end, created_at_us,"
    " updated_at_us, write_id",
    {
        "state": from_json,
        "inputs_seen": int,
        "secret_positions": from_json,
        "pin_verified_at_us": int,
        "screen_end": flag,
        "created_at_us": int,
        "updated_at_us": int,
        "write_id": int,
    },
)

WRITE_ID_BITS = 63
"""A ``write_id`` is a random non-negative BIGINT."""


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def select(tx: Tx, session_id: str, *, lock: bool = False) -> SessionRow | None:
    """The session's row (locked until commit with ``lock``), or ``None``."""
    row = tx.one(
        f"SELECT {_SESSION.columns} FROM ussd_sessions"
        f" WHERE session_id = :id{tx.for_update if lock else ''}",
        {"id": session_id},
    )
    return _SESSION.one(row)


def insert(tx: Tx, row: SessionRow) -> SessionRow | None:
    """Store a new session (created and updated now): the row as stored; ``None`` when
    one with its id exists already (nothing written)."""
    stored = _stamped(replace(row, created_at_us=tx.now_us), tx.now_us)
    written = tx.execute(
        "INSERT INTO ussd_sessions (session_id, phone, villager_id, language, state,"
        " inputs_seen, secret_positions, inputs_sha256, pin_verified_at_us, screen_text,"
        " screen_end, created_at_us, updated_at_us, write_id) VALUES (:id, :phone,"
        " :villager, :language, :state, :seen, :secrets, :sha, :verified, :screen, :end,"
        " :now, :now, :write_id) ON CONFLICT (session_id) DO NOTHING RETURNING session_id",
        {**_step(stored), "phone": row.phone, "villager": row.villager_id},
    )
    return stored if written else None


def _stamped(row: SessionRow, now_us: int) -> SessionRow:
    """``row`` as a write at ``now_us`` stores it: updated now, a new ``write_id``."""
    return replace(row, updated_at_us=now_us, write_id=secrets.randbits(WRITE_ID_BITS))


def _step(row: SessionRow) -> dict[str, object]:
    """The parameters of what a step writes (a new session's row, or the next step)."""
    return {
        "id": row.session_id,
        "language": row.language,
        "state": _json(row.state),
        "seen": row.inputs_seen,
        "secrets": _json(row.secret_positions),
        "sha": row.inputs_sha256,
        "verified": row.pin_verified_at_us,
        "screen": row.screen_text,
        "end": row.screen_end,
        "now": row.updated_at_us,
        "write_id": row.write_id,
    }


_SET_STEP = (
    "UPDATE ussd_sessions SET language = :language, state = :state,"
    " inputs_seen = :seen, secret_positions = :secrets, inputs_sha256 = :sha,"
    " pin_verified_at_us = :verified, screen_text = :screen, screen_end = :end,"
    " updated_at_us = :now, write_id = :write_id WHERE session_id = :id"
)


def update(tx: Tx, row: SessionRow, *, inputs_seen_before: int) -> SessionRow | None:
    """Save the session's next step, only if it is still at ``inputs_seen_before``
    inputs: the row as stored; ``None`` when another delivery moved it on first (nothing
    written)."""
    stored = _stamped(row, tx.now_us)
    written = tx.execute(
        _SET_STEP + " AND inputs_seen = :before RETURNING session_id",
        {**_step(stored), "before": inputs_seen_before},
    )
    return stored if written else None


_UPDATE_IF_UNCHANGED = _SET_STEP + " AND write_id = :was_write_id RETURNING session_id"


def update_if_unchanged(tx: Tx, row: SessionRow, *, was: SessionRow) -> SessionRow | None:
    """Save the session's next step ``row`` only if the stored row is still ``was`` (its
    ``write_id``: no write since; read and written in one statement): the row as
    stored; ``None`` when it is not (nothing written: read it and judge the step again)."""
    stored = _stamped(row, tx.now_us)
    written = tx.execute(_UPDATE_IF_UNCHANGED, {**_step(stored), "was_write_id": was.write_id})
    return stored if written else None


async def update_if_unchanged_on_loop(
    led: Ledger, row: SessionRow, *, was: SessionRow, now_us: int
) -> SessionRow | None:
    """:func:`update_if_unchanged` as one statement alone, awaited on the event loop
    (:meth:`~ledger.core.ledger.Ledger.loop_statement`), the step's time ``now_us``;
    ``None`` when the stored row is not ``was``, or when the ledger runs no statement
    there (nothing ran)."""
    stored = _stamped(row, now_us)
    written = await led.loop_statement(
        _UPDATE_IF_UNCHANGED, {**_step(stored), "was_write_id": was.write_id}
    )
    return stored if written else None


def delete_idle(tx: Tx, *, updated_before_us: int, limit: int) -> int:
    """Delete at most ``limit`` sessions last touched before ``updated_before_us`` (oldest
    first); how many went."""
    gone = tx.execute(
        "DELETE FROM ussd_sessions WHERE session_id IN (SELECT session_id FROM ussd_sessions"
        " WHERE updated_at_us < :before ORDER BY updated_at_us LIMIT :limit)"
        " RETURNING session_id",
        {"before": updated_before_us, "limit": limit},
    )
    return len(gone)


def forget_ended_screens(tx: Tx, *, updated_before_us: int, blank: str, limit: int) -> int:
    """Overwrite with ``blank`` the stored last screen of at most ``limit`` ended sessions
    last touched before ``updated_before_us`` (a withdrawal or pay code's screen holds its
    digits); how many. ``updated_at_us`` is kept."""
    gone = tx.execute(
        "UPDATE ussd_sessions SET screen_text = :blank, write_id = :write_id"
        " WHERE session_id IN (SELECT session_id"
        " FROM ussd_sessions WHERE screen_end = :ended AND screen_text <> :blank"
        " AND updated_at_us < :before ORDER BY updated_at_us LIMIT :limit)"
        " RETURNING session_id",
        {
            "blank": blank,
            "write_id": secrets.randbits(WRITE_ID_BITS),
            "ended": True,
            "before": updated_before_us,
            "limit": limit,
        },
    )
    return len(gone)
