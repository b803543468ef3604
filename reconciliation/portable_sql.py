"""SQL fragments that read the same on SQLite and PostgreSQL: a JSON array passed as one
parameter, read as rows, and UUID columns compared as text.

The ``orders`` and ``settlement`` jobs pass an outside file (the storefront's orders, the
provider's credits) to one SQL statement as a single JSON parameter, so that matching
runs over whole sets in the database, with no query per line. Each function answers a
fragment for the transaction's engine (``tx.dialect``); none takes user text: ``source``
and ``column`` are SQL the caller wrote (a ``:name`` parameter or a column).
"""

from __future__ import annotations

from ledger.core.tx import Tx

__all__ = ["array_rows", "array_texts", "element", "uuid_hex"]


def array_rows(tx: Tx, source: str) -> str:
    """A FROM item ``j`` with one row per element of the JSON array ``source``."""
    if tx.dialect == "postgresql":
        return f"jsonb_array_elements(CAST({source} AS jsonb)) AS j(value)"
    return f"json_each({source}) AS j"


def element(tx: Tx, index: int) -> str:
    """Element ``index`` of the array ``j.value``, as text (or a number on SQLite)."""
    if tx.dialect == "postgresql":
        return f"(j.value ->> {index})"
    return f"json_extract(j.value, '$[{index}]')"


def array_texts(tx: Tx, source: str) -> str:
    """A subquery of the strings of the JSON array ``source`` (column ``value``)."""
    if tx.dialect == "postgresql":
        return f"SELECT value FROM jsonb_array_elements_text(CAST({source} AS jsonb))"
    return f"SELECT value FROM json_each({source})"


def uuid_hex(tx: Tx, column: str) -> str:
    """A UUID column as 32 lower-case hex digits (the one text form both engines give)."""
    if tx.dialect == "postgresql":
        return f"replace(CAST({column} AS text), '-', '')"
    return f"lower(hex({column}))"
