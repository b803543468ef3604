"""What the reconciliation jobs read and how they refuse, on both engines: the views
migration 0019 publishes for them, the portable SQL over a JSON parameter that the
``orders`` and ``settlement`` jobs share, and the jobs' refusals in the one error tree."""

from __future__ import annotations

import json
import uuid

import pytest

from ledger import Account, Ledger
from ledger.core.tx import Row, Tx
from reconciliation.errors import InputInvalid, ReconciliationError
from reconciliation.portable_sql import array_rows, array_texts, element, uuid_hex

VIEW_COLUMNS = {
    "order_escrow_counters": (
        "id, storefront_id, state, amount_minor, paid_minor, released_minor, refunded_minor,"
        " reversed_minor, dispatched_at_us, created_at_us"
    ),
    "order_escrow_steps": "order_id, storefront_id, kind, legs, created_at_us",
    "suspense_items_view": (
        "id, provider, provider_reference, currency, amount_minor, state, park_transfer_id,"
        " created_at_us, resolved_at_us"
    ),
    "settlement_payouts": (
        "id, window_id, provider, currency, amount_minor, state, provider_reference,"
        " resolve_transfer_id, resolved_at_us"
    ),
}


def test_the_views_the_jobs_read_have_the_columns_they_promise(ledger: Ledger) -> None:
    def read(tx: Tx) -> dict[str, list[Row]]:
        return {
            view: tx.execute(f"SELECT {columns} FROM {view} WHERE 1 = 0")
            for view, columns in VIEW_COLUMNS.items()
        }

    assert ledger.transact(read) == {view: [] for view in VIEW_COLUMNS}


def test_a_json_parameter_reads_as_rows_on_both_engines(ledger: Ledger) -> None:
    pairs = json.dumps([["b", 7], ["a", 5]])

    def read(tx: Tx) -> list[Row]:
        return tx.execute(
            f"SELECT {element(tx, 0)}, CAST({element(tx, 1)} AS BIGINT)"
            f" FROM {array_rows(tx, ':pairs')} ORDER BY 1",
            {"pairs": pairs},
        )

    assert [tuple(row) for row in ledger.transact(read)] == [("a", 5), ("b", 7)]


def test_a_json_array_of_text_is_a_subquery(ledger: Ledger) -> None:
    def read(tx: Tx) -> list[Row]:
        return tx.execute(
            f"SELECT value FROM ({array_texts(tx, ':names')}) x ORDER BY value",
            {"names": json.dumps(["y", "x"])},
        )

    assert [row[0] for row in ledger.transact(read)] == ["x", "y"]
    empty = ledger.transact(
        lambda tx: tx.execute(f"SELECT COUNT(*) FROM ({array_texts(tx, ':n')}) x", {"n": "[]"})
    )
    assert empty[0][0] == 0


def test_a_uuid_column_reads_as_32_hex_digits_on_both_engines(ledger: Ledger) -> None:
    account_id = uuid.uuid4()
    ledger.create_accounts([Account(account_id, "KES", 1)])
    found = ledger.transact(
        lambda tx: tx.one(
            f"SELECT {uuid_hex(tx, 'id')} FROM ledger_accounts WHERE id = :id", {"id": account_id}
        )
    )
    assert found is not None
    assert found[0] == account_id.hex


def _refusals() -> list[type[InputInvalid]]:
    from reconciliation.ageing import AgeingRefused
    from reconciliation.cash_count import CashCountRefused
    from reconciliation.escrow import EscrowRefused
    from reconciliation.payouts import PayoutsRefused

    return [AgeingRefused, CashCountRefused, EscrowRefused, PayoutsRefused]


@pytest.mark.parametrize("refusal", _refusals(), ids=lambda c: c.__name__)
def test_a_jobs_refusal_is_invalid_input_and_still_a_value_error(
    refusal: type[InputInvalid],
) -> None:
    """The API and the CLI answer these as refusals (422, exit 2), as they did when they
    were plain ValueErrors; each names its own code."""
    error = refusal("no such thing")
    assert isinstance(error, InputInvalid)
    assert isinstance(error, ValueError)
    assert str(error) == "no such thing"
    assert isinstance(error, ReconciliationError)
    assert refusal.code not in (InputInvalid.code, ReconciliationError.code)


def test_each_refusal_names_a_code_of_its_own() -> None:
    codes = [refusal.code for refusal in _refusals()]
    assert len(set(codes)) == len(codes)
