"""Money for people: the one place an amount in minor units becomes text, and back.

``format_money(125000, "KES") == "KES 1,250.00"``, ``format_money(12500, "UGX") ==
"UGX 12,500"``, ``format_money(-125000, "KES") == "KES -1,250.00"``: the ISO 4217 code, a
space, a minus sign for a negative amount, the whole units grouped by thousands with
commas, and as many minor digits after a point as the currency's ISO 4217 exponent
(:data:`ledger.core.currency.MINOR_DIGITS`: KES 2, UGX 0, TZS 2, RWF 0, BHD 3, JPY 0).
The sign goes after the code so the code always leads (it lines up in a column). The
exponent is ISO 4217's, not CLDR's: CLDR rounds UGX and TZS to 0 cash digits, ISO 4217
gives UGX 0 and TZS 2, and the ledger stores ISO 4217 minor units.

Integer arithmetic only (``divmod`` by ``10**exponent``): no float, no Decimal rounding,
so every integer round-trips exactly: ``parse_money(format_money(n, c)) == (n, c)``.
The separators are the Kenyan convention in English and Swahili alike (comma for
thousands, point for decimals); USSD, SMS and pages use this module too.

An unknown or badly spelt currency raises :class:`UnknownCurrency`; text
:func:`parse_money` cannot read raises :class:`MoneyTextInvalid` (both
:class:`~ledger.core.errors.MalformedRequest`, so also ``ValueError``).
"""

from __future__ import annotations

import re

from ledger.core.currency import MINOR_DIGITS
from ledger.core.errors import MalformedRequest

__all__ = ["MoneyTextInvalid", "UnknownCurrency", "exponent", "format_money", "parse_money"]

MONEY_TEXT_LENGTH_MAX = 64
"""The longest text :func:`parse_money` reads (an amount of 2**63 is 34 characters)."""

_TEXT = re.compile(r"([A-Z]{3}) (-?)(\d{1,3}(?:,\d{3})*)(?:\.(\d+))?")


class UnknownCurrency(MalformedRequest):
    """The code is not an active ISO 4217 alphabetic code in upper case (``KES``)."""

    code = "currency_unknown"


class MoneyTextInvalid(MalformedRequest):
    """The text is not an amount as :func:`format_money` writes it."""

    code = "money_text_invalid"


def exponent(currency: str) -> int:
    """The ISO 4217 minor-unit exponent of ``currency`` (KES 2, UGX 0, BHD 3)."""
    digits = MINOR_DIGITS.get(currency) if isinstance(currency, str) else None
    if digits is None:
        raise UnknownCurrency(f"unknown currency {currency!r}: an ISO 4217 code such as KES")
    return digits


def format_money(amount_minor: int, currency: str) -> str:
    """``amount_minor`` of ``currency`` as people read it: ``KES 1,250.00``."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise MalformedRequest(f"an amount is an integer of minor units, not {amount_minor!r}")
    digits = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    text = f"{currency} {sign}{whole:,}"
    if digits:
        text += f".{fraction:0{digits}d}"
    return text


def parse_money(text: str) -> tuple[int, str]:
    """The (minor units, currency) that :func:`format_money` wrote as ``text``; the
    fraction must have exactly the currency's exponent of digits."""
    if len(text) > MONEY_TEXT_LENGTH_MAX:
        raise MoneyTextInvalid(f"an amount is at most {MONEY_TEXT_LENGTH_MAX} characters")
    found = _TEXT.fullmatch(text)
    if found is None:
        raise MoneyTextInvalid(f"not an amount like 'KES 1,250.00': {text!r}")
    currency, sign, whole, fraction = found.groups()
    digits = exponent(currency)
    if len(fraction or "") != digits:
        raise MoneyTextInvalid(f"{currency} has {digits} minor digits: {text!r}")
    amount = int(whole.replace(",", "")) * 10**digits + int(fraction or "0")
    return (-amount if sign else amount), currency
