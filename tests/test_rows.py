"""ledger.core.rows: the one row -> frozen dataclass mapping, on real rows of both engines.

The rows come from a real table (``suspense_items``, written by its repository) and from
SELECTs of typed literals, so that what each driver answers (UUIDs from BLOBs or native,
``TIMESTAMP`` naive, ``TIMESTAMPTZ`` aware, SQLite text, booleans as 0/1 or bool) meets
the conversions the repositories use."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest

from ledger import Ledger
from ledger.core import rows
from ledger.core.errors import InvariantViolation
from ledger.core.rows import RowMapper, flag, moment
from ledger.core.store import to_us
from ledger.core.tx import Tx
from ledger.flows.suspense import repository as suspense_repository


class Parked(StrEnum):
    PARKED = "parked"
    RETURNED = "returned"


@dataclass(frozen=True, slots=True)
class Item:
    id: uuid.UUID
    amount_minor: int
    state: Parked
    note: str | None
    target_party_id: uuid.UUID | None
    created_at: datetime
    resolved_at: datetime | None


ITEM = RowMapper(
    Item,
    "id, amount_minor, state, note, target_party_id, created_at_us AS created_at,"
    " resolved_at_us AS resolved_at",
    {"id": rows.uuid_of, "state": Parked, "created_at": moment, "resolved_at": moment},
)


def _park(tx: Tx, item_id: uuid.UUID, note: str | None) -> None:
    suspense_repository.insert_parked(
        tx,
        suspense_id=item_id,
        currency="KES",
        provider="mpesa",
        provider_reference=f"ref-{item_id.hex[:12]}",
        amount_minor=12_345,
        note=note,
        park_transfer_id=uuid.uuid4(),
    )


def _read(tx: Tx, item_id: uuid.UUID) -> Item | None:
    return ITEM.one(
        tx.one(f"SELECT {ITEM.columns} FROM suspense_items WHERE id = :id", {"id": item_id})
    )


def test_a_real_row_maps_uuid_enum_moment_and_null(ledger: Ledger) -> None:
    item_id = uuid.uuid4()
    ledger.transact(lambda tx: _park(tx, item_id, None))
    item = ledger.transact(lambda tx: _read(tx, item_id))
    assert item is not None
    assert item.id == item_id and isinstance(item.id, uuid.UUID)
    assert item.amount_minor == 12_345 and isinstance(item.amount_minor, int)
    assert item.state is Parked.PARKED
    assert item.note is None and item.target_party_id is None and item.resolved_at is None
    assert item.created_at.tzinfo is not None
    stored = ledger.transact(
        lambda tx: tx.execute(
            "SELECT created_at_us FROM suspense_items WHERE id = :id", {"id": item_id}
        )
    )
    assert stored == [(to_us(item.created_at),)]


def test_a_resolved_row_fills_the_optional_fields(ledger: Ledger) -> None:
    item_id = uuid.uuid4()

    def park_and_return(tx: Tx) -> None:
        _park(tx, item_id, "<b>markup stays text</b>")
        suspense_repository.mark_returned(tx, item_id, reason="sender", transfer_id=uuid.uuid4())

    ledger.transact(park_and_return)
    item = ledger.transact(lambda tx: _read(tx, item_id))
    assert item is not None
    assert item.state is Parked.RETURNED
    assert item.note == "<b>markup stays text</b>"
    assert item.resolved_at is not None and item.resolved_at >= item.created_at


def test_no_row_is_none_and_all_keeps_order(ledger: Ledger) -> None:
    ids = [uuid.uuid4() for _ in range(3)]

    def park_all(tx: Tx) -> None:
        for item_id in ids:
            _park(tx, item_id, None)

    ledger.transact(park_all)
    got = ledger.transact(
        lambda tx: ITEM.all(
            tx.execute(f"SELECT {ITEM.columns} FROM suspense_items ORDER BY provider_reference")
        )
    )
    by_reference = sorted(ids, key=lambda i: f"ref-{i.hex[:12]}")
    assert [i.id for i in got] == by_reference
    assert ledger.transact(lambda tx: _read(tx, uuid.uuid4())) is None


def test_timestamps_naive_and_aware_become_aware_utc(ledger: Ledger) -> None:
    """PostgreSQL answers TIMESTAMP naive and TIMESTAMPTZ aware; SQLite answers text."""
    text = "2026-12-05 06:30:00.123456"

    def select(tx: Tx) -> tuple[Any, ...]:
        if tx.dialect == "postgresql":
            sql = "SELECT CAST(:t AS TIMESTAMP), CAST(:tz AS TIMESTAMPTZ), true, false"
        else:
            sql = "SELECT :t, :tz, 1, 0"
        row = tx.one(sql, {"t": text, "tz": f"{text}+03:00"})
        assert row is not None
        return row

    naive, aware, yes, no = ledger.transact(select)
    if ledger.transact(lambda tx: tx.dialect) == "postgresql":
        assert isinstance(naive, datetime) and naive.tzinfo is None
        assert isinstance(aware, datetime) and aware.tzinfo is not None
        assert yes is True and no is False
    else:
        assert isinstance(naive, str) and isinstance(aware, str)
        assert (yes, no) == (1, 0)
    expected = datetime(2026, 12, 5, 6, 30, 0, 123456, tzinfo=UTC)
    assert moment(naive) == expected and moment(naive).tzinfo is UTC
    assert moment(aware) == expected - timedelta(hours=3)
    assert moment(aware).utcoffset() == timedelta(0)
    assert flag(yes) is True and flag(no) is False


def test_the_conversions_agree_across_what_drivers_answer() -> None:
    u = uuid.uuid4()
    assert rows.uuid_of(u) is u
    assert rows.uuid_of(u.bytes) == rows.uuid_of(str(u)) == rows.uuid_of(memoryview(u.bytes)) == u
    assert moment(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert moment(1_000_001) == datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC)
    east = datetime(2026, 1, 1, 3, tzinfo=timezone(timedelta(hours=3)))
    assert moment(east) == datetime(2026, 1, 1, tzinfo=UTC)
    assert rows.blob(memoryview(b"\x00\x01")) == b"\x00\x01"
    assert rows.from_json('{"a": [1, 2]}') == {"a": [1, 2]} == rows.from_json({"a": [1, 2]})
    with pytest.raises(InvariantViolation):
        flag(2)
    with pytest.raises(InvariantViolation):
        moment(True)


def test_null_into_a_required_field_is_a_bug_not_a_value() -> None:
    u = uuid.uuid4()
    good = (u, 5, "parked", None, None, 0, None)
    assert ITEM(good) == Item(u, 5, Parked.PARKED, None, None, moment(0), None)
    with pytest.raises(InvariantViolation, match=r"Item\.created_at read NULL"):
        ITEM((u, 5, "parked", None, None, None, None))
    with pytest.raises(InvariantViolation, match=r"Item\.state read NULL"):
        ITEM((u, 5, None, None, None, 0, None))
    with pytest.raises(InvariantViolation, match="a row of 6 columns for 7"):
        ITEM(good[:6])
    with pytest.raises(ValueError):
        ITEM((u, 5, "frozen", None, None, 0, None))


def test_the_declaration_is_checked_at_import() -> None:
    assert ITEM.fields == (
        "id",
        "amount_minor",
        "state",
        "note",
        "target_party_id",
        "created_at",
        "resolved_at",
    )
    assert ITEM.stored_columns.endswith("created_at_us, resolved_at_us")
    assert ITEM.width == 7
    qualified = RowMapper(
        Item,
        "s.id, s.amount_minor AS amount_minor, s.state, note, target_party_id,"
        " s.created_at_us AS created_at, resolved_at_us AS resolved_at",
    )
    assert qualified.fields == ITEM.fields
    assert qualified.stored_columns.startswith("s.id, s.amount_minor, s.state, note")
    with pytest.raises(ValueError, match="no field nope"):
        RowMapper(Item, f"{ITEM.columns}, nope")
    with pytest.raises(ValueError, match="fills no resolved_at"):
        RowMapper(Item, ITEM.columns.rsplit(",", 1)[0])
    with pytest.raises(ValueError, match="no field bogus"):
        RowMapper(Item, ITEM.columns, {"bogus": int})
    with pytest.raises(ValueError, match="not a column"):
        RowMapper(Item, "id; DROP TABLE suspense_items, amount_minor")
    with pytest.raises(ValueError, match="named twice"):
        RowMapper(Item, f"{ITEM.columns}, id")
    with pytest.raises(TypeError):
        RowMapper(int, "id")


def test_a_row_this_transaction_wrote_must_be_there() -> None:
    item = ITEM((uuid.uuid4(), 5, "parked", None, None, 0, None))
    assert rows.written_or_locked(item, "suspense x") is item
    assert rows.written_or_locked(0, "a zero is a value") == 0
    with pytest.raises(InvariantViolation, match="suspense 7 vanished inside its transaction"):
        rows.written_or_locked(None, "suspense 7")
