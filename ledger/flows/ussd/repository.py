"""All SQL of ``ussd_sessions``: one row per aggregator ``sessionId``, never a PIN.

Times are UTC microseconds since 1970 (``*_us``). A step is saved by compare-and-set on
``inputs_seen``, so that two deliveries of one step cannot both move the session on;
:func:`update_if_unchanged` saves a step computed from a row this process wrote before,
in one statement, only if the stored row is still exactly that row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

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


_SESSION = RowMapper(
    SessionRow,
    "session_id, phone, villager_id, language, state, inputs_seen, secret_positions,"
    " inputs_sha256, pin_verified_at_us, screen_text, screen_end, created_at_us,"
    " updated_at_us",
    {
        "state": from_json,
        "inputs_seen": int,
        "secret_positions": from_json,
        "pin_verified_at_us": int,
        "screen_end": flag,
        "created_at_us": int,
        "updated_at_us": int,
    },
)


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


def insert(tx: Tx, row: SessionRow) -> bool:
    """Store a new session; ``False`` when one with its id exists already (nothing
    written)."""
    written = tx.execute(
        "INSERT INTO ussd_sessions (session_id, phone, villager_id, language, state,"
        " inputs_seen, secret_positions, inputs_sha256, pin_verified_at_us, screen_text,"
        " screen_end, created_at_us, updated_at_us) VALUES (:id, :phone, :villager,"
        " :language, :state, :seen, :secrets, :sha, :verified, :screen, :end, :now, :now)"
        " ON CONFLICT (session_id) DO NOTHING RETURNING session_id",
        {**_step(row, tx.now_us), "phone": row.phone, "villager": row.villager_id},
    )
    return bool(written)


def _step(row: SessionRow, now_us: int) -> dict[str, object]:
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
        "now": now_us,
    }


def update(tx: Tx, row: SessionRow, *, inputs_seen_before: int) -> bool:
    """Save the session's next step, only if it is still at ``inputs_seen_before``
    inputs; ``False`` when another delivery moved it on first (nothing written)."""
    written = tx.execute(
        "UPDATE ussd_sessions SET language = :language, state = :state,"
        " inputs_seen = :seen, secret_positions = :secrets, inputs_sha256 = :sha,"
        " pin_verified_at_us = :verified, screen_text = :screen, screen_end = :end,"
        " updated_at_us = :now WHERE session_id = :id AND inputs_seen = :before"
        " RETURNING session_id",
        {**_step(row, tx.now_us), "before": inputs_seen_before},
    )
    return bool(written)


_UPDATE_IF_UNCHANGED = (
    "UPDATE ussd_sessions SET language = :language, state = :state,"
    " inputs_seen = :seen, secret_positions = :secrets, inputs_sha256 = :sha,"
    " pin_verified_at_us = :verified, screen_text = :screen, screen_end = :end,"
    " updated_at_us = :now WHERE session_id = :id AND phone = :was_phone"
    " AND villager_id = :was_villager AND language = :was_language"
    " AND state = :was_state AND inputs_seen = :was_seen"
    " AND secret_positions = :was_secrets AND inputs_sha256 = :was_sha"
    " AND COALESCE(pin_verified_at_us, -1) = :was_verified"
    " AND screen_text = :was_screen AND screen_end = :was_end"
    " AND created_at_us = :was_created AND updated_at_us = :was_updated"
    " RETURNING session_id"
)


def update_if_unchanged(tx: Tx, row: SessionRow, *, was: SessionRow) -> bool:
    """Save the session's next step ``row`` only if the stored row is still ``was`` in
    every column (a compare-and-set on the whole row, read and written in one statement);
    ``False`` when it is not (nothing written: read it and judge the step again)."""
    return bool(tx.execute(_UPDATE_IF_UNCHANGED, {**_step(row, tx.now_us), **_was(was)}))


async def update_if_unchanged_on_loop(
    led: Ledger, row: SessionRow, *, was: SessionRow, now_us: int
) -> bool | None:
    """:func:`update_if_unchanged` as one statement alone, awaited on the event loop
    (:meth:`~ledger.core.ledger.Ledger.loop_statement`), the step's time ``now_us``;
    ``None`` when the ledger runs no statement there (nothing ran)."""
    written = await led.loop_statement(_UPDATE_IF_UNCHANGED, {**_step(row, now_us), **_was(was)})
    return None if written is None else bool(written)


def _was(row: SessionRow) -> dict[str, object]:
    return {
        "was_phone": row.phone,
        "was_villager": row.villager_id,
        "was_language": row.language,
        "was_state": _json(row.state),
        "was_seen": row.inputs_seen,
        "was_secrets": _json(row.secret_positions),
        "was_sha": row.inputs_sha256,
        "was_verified": -1 if row.pin_verified_at_us is None else row.pin_verified_at_us,
        "was_screen": row.screen_text,
        "was_end": row.screen_end,
        "was_created": row.created_at_us,
        "was_updated": row.updated_at_us,
    }


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
        "UPDATE ussd_sessions SET screen_text = :blank WHERE session_id IN (SELECT session_id"
        " FROM ussd_sessions WHERE screen_end = :ended AND screen_text <> :blank"
        " AND updated_at_us < :before ORDER BY updated_at_us LIMIT :limit)"
        " RETURNING session_id",
        {"blank": blank, "ended": True, "before": updated_before_us, "limit": limit},
    )
    return len(gone)
