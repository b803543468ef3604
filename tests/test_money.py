"""ledger.money: minor units to text for people and back, by integer arithmetic, with the
ISO 4217 exponent of each currency."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core.currency import MINOR_DIGITS
from ledger.core.errors import LedgerError, MalformedRequest
from ledger.limits import AMOUNT_MAX_MINOR
from ledger.money import (
    MoneyTextInvalid,
    UnknownCurrency,
    exponent,
    format_money,
    parse_money,
)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (125_000, "KES", "KES 1,250.00"),
        (12_500, "UGX", "UGX 12,500"),
        (-125_000, "KES", "KES -1,250.00"),
        (14_447_600, "KES", "KES 144,476.00"),
        (0, "KES", "KES 0.00"),
        (5, "KES", "KES 0.05"),
        (-5, "KES", "KES -0.05"),
        (0, "UGX", "UGX 0"),
        (1_000_000, "TZS", "TZS 10,000.00"),
        (999, "RWF", "RWF 999"),
        (1_000, "RWF", "RWF 1,000"),
        (199, "USD", "USD 1.99"),
        (1_234_567, "EUR", "EUR 12,345.67"),
        (100, "NGN", "NGN 1.00"),
        (100, "GHS", "GHS 1.00"),
        (100, "ZAR", "ZAR 1.00"),
        (2_500, "XOF", "XOF 2,500"),
        (1_000_000, "JPY", "JPY 1,000,000"),
        (1_234_567, "BHD", "BHD 1,234.567"),
        (1, "KWD", "KWD 0.001"),
        (AMOUNT_MAX_MINOR, "KES", "KES 90,071,992,547,409.91"),
    ],
)
def test_amounts_read_as_money(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text
    assert parse_money(text) == (amount, currency)


def test_the_exponent_is_iso_4217_not_cldr_cash_digits() -> None:
    # CLDR gives UGX and TZS 0 cash digits; ISO 4217 (what the ledger stores) gives 0 and 2
    assert [exponent(c) for c in ("KES", "UGX", "TZS", "RWF", "BHD", "JPY")] == [2, 0, 2, 0, 3, 0]


@pytest.mark.parametrize("currency", ["XYZ", "kes", "", "KESH", "XAU", " KES"])
def test_an_unknown_currency_is_a_clear_error_in_the_tree(currency: str) -> None:
    with pytest.raises(UnknownCurrency, match="unknown currency") as raised:
        format_money(100, currency)
    assert isinstance(raised.value, MalformedRequest) and isinstance(raised.value, LedgerError)
    assert raised.value.code == "currency_unknown"


@pytest.mark.parametrize("amount", [1.5, "100", None, True])
def test_an_amount_that_is_not_an_integer_is_refused(amount: object) -> None:
    with pytest.raises(MalformedRequest, match="integer of minor units"):
        format_money(amount, "KES")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "KES 1,250.0",  # one minor digit short
        "KES 1,250",  # KES has two
        "UGX 12,500.00",  # UGX has none
        "KES 1250.00",  # ungrouped
        "KES 1,25.00",
        "1,250.00 KES",
        "KES  1,250.00",
        "KES +1,250.00",
        "KES 1,250.00 ",
        "KES 1" + ",000" * 30 + ".00",  # longer than the limit
    ],
)
def test_text_that_is_not_formatted_money_is_refused(text: str) -> None:
    with pytest.raises(MoneyTextInvalid):
        parse_money(text)


def test_parse_refuses_an_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        parse_money("ABC 1.00")


@given(
    st.integers(min_value=-AMOUNT_MAX_MINOR, max_value=AMOUNT_MAX_MINOR),
    st.sampled_from(sorted(MINOR_DIGITS)),
)
def test_parsing_the_formatted_text_gives_the_integer_back(amount: int, currency: str) -> None:
    text = format_money(amount, currency)
    assert parse_money(text) == (amount, currency)
    whole, _, fraction = text.removeprefix(f"{currency} ").lstrip("-").partition(".")
    assert len(fraction) == MINOR_DIGITS[currency]
    assert int(whole.replace(",", "")) == abs(amount) // 10 ** MINOR_DIGITS[currency]
