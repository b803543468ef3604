"""The shape of the house, held by tests (shared/STYLE.md; the counts: ``python -m
tools.shape``):

- every table of the schema has one owner, and only the owner's modules write SQL that
  names it; anyone may read a published view;
- no SQL in ``api/``: routes call flows, flows call their repositories;
- every public exception class descends from ``LedgerError`` (the tree in
  :mod:`ledger.core.errors`);
- no function longer than 70 lines unless a ``# long:`` comment above it says why.
"""

from __future__ import annotations

import pathlib

import pytest

from ledger.core import migrations
from tools import shape


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """name -> 'table' or 'view', from a SQLite file migrated to head."""
    import sqlite3

    path = tmp_path_factory.mktemp("shape") / "schema.db"
    migrations.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')")
        return dict(rows.fetchall())


def _files() -> list[pathlib.Path]:
    return [p for package in shape.PACKAGES for p in shape.sources(package)]


def test_every_table_has_one_owner(schema: dict[str, str]) -> None:
    tables = {name for name, kind in schema.items() if kind == "table"}
    assert tables - shape.OWNERS.keys() == set(), "a new table needs an owner in tools.shape.OWNERS"
    assert shape.OWNERS.keys() - tables == set(), "OWNERS names a table the schema lacks"


def test_only_the_owner_writes_sql_that_names_a_table(schema: dict[str, str]) -> None:
    trespasses = []
    for path in _files():
        module = shape.module_name(path)
        for table in shape.tables(path):
            if schema.get(table) == "table" and not shape.owned_by(module, table):
                trespasses.append(f"{module} names {table}")
    assert sorted(trespasses) == []


def test_the_api_writes_no_sql() -> None:
    assert {str(p): shape.sql_lines(p) for p in shape.sources("api") if shape.sql_lines(p)} == {}


def test_every_public_exception_is_in_the_one_tree() -> None:
    assert shape.exceptions_outside_tree() == []


def test_no_function_is_longer_than_the_gate_unless_it_says_why() -> None:
    unmarked = [
        f"{shape.module_name(p)}.{name} ({length} lines)"
        for p in _files()
        for name, length, marked in shape.long_functions(p)
        if not marked
    ]
    assert unmarked == []


def test_the_gates_can_fail(tmp_path: pathlib.Path) -> None:
    """Each rule finds what it is there to find in a file written to break it."""
    body = "\n".join(f"    x{i} = {i}" for i in range(shape.FUNCTION_LINES_MAX))
    path = tmp_path / "bad.py"
    path.write_text(
        'Q = """SELECT a\n  FROM orders\n WHERE b = 1"""\n'
        f"def long_one() -> None:\n{body}\n"
        f"{shape.LONG_MARK} it reads better whole\n"
        f"def marked_one() -> None:\n{body}\n"
    )
    assert shape.sql_lines(path) == 3
    assert shape.tables(path) == {"orders"}
    assert [(n, m) for n, _, m in shape.long_functions(path)] == [
        ("long_one", False),
        ("marked_one", True),
    ]
