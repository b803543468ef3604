"""Rows of the flow tables as frozen dataclasses: the one place where a repository's row
(a tuple in the order of its SELECT list) becomes a value.

A repository declares one :class:`RowMapper` per table: the dataclass, the SELECT list
and, for the columns that need one, a conversion. A column whose name differs from its
field says so in SQL, ``created_at_us AS created_at``, so the list reads as the query
does. What the two engines answer differently is settled by the conversions here:

- :func:`uuid_of`: psycopg answers :class:`uuid.UUID`; SQLite stores a 16-byte BLOB
  (which :class:`~ledger.core.tx.Tx` already reads back as a UUID); JSON and views may
  carry the text form. All three become a UUID.
- :func:`moment`: ``*_us`` columns are microseconds since 1970 UTC on both engines; a
  ``TIMESTAMP`` read from PostgreSQL is a naive datetime, a ``TIMESTAMPTZ`` an aware one,
  and SQLite answers ISO text. All become an aware UTC datetime (naive means UTC).
- :func:`flag`: SQLite answers 0/1, PostgreSQL ``True``/``False``.
- :func:`blob`: psycopg may answer a ``memoryview`` for ``BYTEA``.
- :func:`from_json`: a JSON text column (or a value the driver already parsed).
- an enum: the ``StrEnum`` class itself is the conversion (``State("open")``).

NULL is never converted. It may only reach a field whose annotation admits ``None``; a
NULL anywhere else means the row breaks its table's contract, which is a bug
(:class:`~ledger.core.errors.InvariantViolation`), not a value to pass on.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from ledger.core.errors import InvariantViolation
from ledger.core.store import from_us

__all__ = [
    "Convert",
    "RowMapper",
    "blob",
    "flag",
    "from_json",
    "moment",
    "written_or_locked",
    "uuid_of",
]

T = TypeVar("T")

Convert = Callable[[Any], Any]
"""Turns one non-NULL column value into its field's value."""

_ITEM = re.compile(
    r"^\s*(?P<column>(?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*)(?:\s+AS\s+(?P<field>[A-Za-z_]\w*))?\s*$",
    re.IGNORECASE,
)
"""One item of a SELECT list: ``column``, ``alias.column``, either with ``AS field``."""


def uuid_of(value: uuid.UUID | bytes | bytearray | memoryview | str) -> uuid.UUID:
    """A UUID from what either engine (or a JSON text) answers for one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return uuid.UUID(bytes=bytes(value))
    return uuid.UUID(value)


def moment(value: int | datetime | str) -> datetime:
    """An aware UTC datetime from microseconds since 1970 or a stored date-time (naive:
    UTC, as PostgreSQL's ``TIMESTAMP`` and SQLite's text are written here)."""
    if isinstance(value, bool):
        raise InvariantViolation("a moment column answered a boolean")
    if isinstance(value, int):
        return from_us(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def flag(value: bool | int) -> bool:
    """A boolean from PostgreSQL's ``bool`` or SQLite's 0/1."""
    if value not in (0, 1):
        raise InvariantViolation(f"a boolean column answered {value!r}")
    return bool(value)


def blob(value: bytes | bytearray | memoryview) -> bytes:
    """Bytes, whatever buffer the driver answered."""
    return bytes(value)


def from_json(value: str | bytes | Any) -> Any:
    """The JSON value of a text column; a value the driver already parsed is kept."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def written_or_locked(found: T | None, what: str) -> T:
    """The value of a row this transaction wrote or locked: it cannot be missing, and
    when it is, that is a bug (:class:`~ledger.core.errors.InvariantViolation`)."""
    if found is None:
        raise InvariantViolation(f"{what} vanished inside its transaction")
    return found


def _admits_none(annotation: Any) -> bool:
    """Whether a field's annotation (a string under postponed evaluation) allows None."""
    text = annotation if isinstance(annotation, str) else repr(annotation)
    if text.strip() in ("Any", "typing.Any"):
        return True
    return re.search(r"\bNone\b|\bOptional\[", text) is not None


class RowMapper(Generic[T]):
    """Maps rows of one SELECT list onto the frozen dataclass ``cls``.

    ``columns`` is the SELECT list (``"id, state, created_at_us AS created_at"``); each
    item names a field of ``cls``, and every field without a default must be named.
    ``convert`` maps field names to a :data:`Convert` applied to non-NULL values.
    Mistakes in the declaration raise at import, not at the first row.
    """

    def __init__(
        self, cls: type[T], columns: str, convert: Mapping[str, Convert] | None = None
    ) -> None:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls!r} is not a dataclass")
        self._cls = cls
        self.columns = " ".join(columns.split())
        """The SELECT list, as given (aliases included)."""
        items = [_item(text) for text in self.columns.split(",")]
        self.fields = tuple(field for _, field in items)
        """The field each column of the list fills, in order."""
        self.stored_columns = ", ".join(column for column, _ in items)
        """The columns without their aliases (for an INSERT naming the same columns)."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        self._convert = dict(convert or {})
        _check_declaration(cls.__name__, known, self.fields, self._convert)
        self._nullable = frozenset(n for n in self.fields if _admits_none(known[n].type))
        self._steps = tuple((n, self._convert.get(n)) for n in self.fields)

    @property
    def width(self) -> int:
        """How many columns the SELECT list has."""
        return len(self.fields)

    def values(self, row: Sequence[Any]) -> dict[str, Any]:
        """The row's field values (converted), by field name."""
        if len(row) != len(self._steps):
            raise InvariantViolation(
                f"{self._cls.__name__}: a row of {len(row)} columns for {len(self._steps)}"
            )
        out: dict[str, Any] = {}
        for (name, convert), value in zip(self._steps, row, strict=True):
            if value is None:
                if name not in self._nullable:
                    raise InvariantViolation(f"{self._cls.__name__}.{name} read NULL")
                out[name] = None
            else:
                out[name] = value if convert is None else convert(value)
        return out

    def __call__(self, row: Sequence[Any]) -> T:
        """The row as a ``cls``."""
        return self._cls(**self.values(row))

    def one(self, row: Sequence[Any] | None) -> T | None:
        """``None`` for no row, else the row as a ``cls``."""
        return None if row is None else self(row)

    def all(self, rows: Iterable[Sequence[Any]]) -> list[T]:
        """Every row as a ``cls``, in order."""
        return [self(row) for row in rows]


def _item(text: str) -> tuple[str, str]:
    """(column, field) of one item of a SELECT list."""
    found = _ITEM.match(text)
    if found is None:
        raise ValueError(f"not a column (or 'column AS field'): {text.strip()!r}")
    column = found["column"]
    return column, found["field"] or column.rsplit(".", 1)[-1]


def _check_declaration(
    name: str,
    known: Mapping[str, dataclasses.Field[Any]],
    fields: Sequence[str],
    convert: Mapping[str, Convert],
) -> None:
    unknown = [f for f in (*fields, *convert) if f not in known]
    if unknown:
        raise ValueError(f"{name} has no field {', '.join(sorted(set(unknown)))}")
    if len(set(fields)) != len(fields):
        raise ValueError(f"{name}: a field is named twice in the SELECT list")
    required = {
        n
        for n, f in known.items()
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    missing = required - set(fields)
    if missing:
        raise ValueError(f"{name}: the SELECT list fills no {', '.join(sorted(missing))}")
