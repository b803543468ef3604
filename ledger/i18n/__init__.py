"""Villager-facing words: gettext catalogs (``.po`` files) in English and Swahili.

Every text a villager reads (a USSD screen, an SMS) is a message in a catalog
``ledger/i18n/<language>/<domain>.po``, read directly with Babel (no compile step), one
domain per channel (:data:`DOMAINS`). Code names a message by its English text, the
``msgid``, through :func:`tr`::

    tr("sw", "ussd", "Your balance is {balance}", balance=format_money(12500, "KES"))

Placeholders are ``str.format`` names; the values are formatted before (money with
:func:`ledger.money.format_money`, times in the villager's zone). The English catalog
holds every ``msgid`` too, so that a message missing from it is a bug the tests find
(``tests/test_i18n.py`` extracts every ``tr(...)`` call from the sources with Babel and
checks each language has it, translated, with the same placeholders). At run time a
message missing from a catalog falls back to its English text, and is logged once.

Values are plain text: :func:`tr` removes control characters from them, so a name
cannot break a USSD screen or an SMS.
"""

from __future__ import annotations

import logging
import string
import unicodedata
from functools import cache
from pathlib import Path

import phonenumbers
from babel.messages.pofile import read_po
from phonenumbers import timezone as phone_zones

from ledger.core.errors import MalformedRequest

__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAINS",
    "LANGUAGES",
    "catalog",
    "placeholders",
    "tr",
    "zone_of_phone",
]

LANGUAGES = ("en", "sw")
"""The languages a villager may choose (``villagers.language``)."""
DEFAULT_LANGUAGE = "en"
DOMAINS = ("ussd", "sms", "console", "station")
"""One catalog per channel."""

_HERE = Path(__file__).parent
_log = logging.getLogger("vledger.i18n")


@cache
def catalog(language: str, domain: str) -> dict[str, str]:
    """``msgid -> text`` of one catalog (untranslated entries left out)."""
    if language not in LANGUAGES or domain not in DOMAINS:
        raise MalformedRequest(f"no catalog {language!r}/{domain!r}")
    with (_HERE / language / f"{domain}.po").open("rb") as handle:
        found = read_po(handle, locale=language, domain=domain)
    return {str(m.id): str(m.string) for m in found if m.id and m.string and not m.fuzzy}


@cache
def _missing_once(language: str, domain: str, msgid: str) -> None:
    _log.error("i18n: %s/%s has no %r; English shown", language, domain, msgid)


def placeholders(text: str) -> frozenset[str]:
    """The ``{name}`` placeholders of a message."""
    return frozenset(name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name)


def _plain(value: object) -> str:
    text = str(value)
    return "".join(c for c in text if unicodedata.category(c)[0] != "C")


def tr(language: str, domain: str, msgid: str, /, **values: object) -> str:
    """``msgid`` in ``language`` (English when the language is unknown), filled with
    ``values``."""
    chosen = language if language in LANGUAGES else DEFAULT_LANGUAGE
    text = catalog(chosen, domain).get(msgid)
    if text is None:
        _missing_once(chosen, domain, msgid)
        text = msgid
    return text.format(**{name: _plain(value) for name, value in values.items()})


def zone_of_phone(phone: str, default: str = "UTC") -> str:
    """The time zone a person's times are shown in: their phone's country's zone when it
    has exactly one (Kenya: ``Africa/Nairobi``), else ``default``. USSD screens and SMS
    both ask here."""
    try:
        found = phone_zones.time_zones_for_number(phonenumbers.parse(phone))
    except phonenumbers.NumberParseException:
        return default
    if len(found) == 1 and found[0] != phone_zones.UNKNOWN_TIMEZONE:
        return str(found[0])
    return default
