"""The USSD screens, in the villager's language (pure: words from the ``ussd`` catalogs,
money already formatted by the caller).

Every screen fits :data:`~ledger.flows.ussd.model.SCREEN_LENGTH_MAX`; content longer than
one screen is split into pages ending ``98 More`` (when a next page exists) and ``0 Back``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.flows.ussd.model import SCREEN_LENGTH_MAX, Screen
from ledger.i18n import tr

__all__ = [
    "MORE",
    "BACK",
    "Line",
    "ask",
    "ended",
    "language_menu",
    "main_menu",
    "pages",
    "paged",
    "statement_line",
]

MORE = "98"
"""The input that turns to the next page."""
BACK = "0"
"""The input that turns to the previous page, or leaves a screen for the main menu."""
CUT = "..."
"""What ends a text cut to fit (GSM 7-bit has no ellipsis character)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One movement of the mini statement, formatted already."""

    day: str
    """``dd/mm``."""
    movement: str
    """``credit``, ``debit``, ``hold`` or ``release``."""
    amount: str
    balance: str


def _join(*parts: str | None) -> str:
    return "\n".join(p for p in parts if p)


def _fit(text: str) -> str:
    """A screen's text cut to the limit (only a villager-supplied value could be long)."""
    return text if len(text) <= SCREEN_LENGTH_MAX else text[: SCREEN_LENGTH_MAX - len(CUT)] + CUT


def ended(text: str) -> Screen:
    return Screen(_fit(text), end=True)


def ask(language: str, prompt: str, note: str | None = None) -> Screen:
    """A screen waiting for an input: ``note`` (a refusal, a confirmation), then
    ``prompt``."""
    return Screen(_fit(_join(note, prompt)), end=False)


def main_menu(language: str, note: str | None = None) -> Screen:
    menu = tr(
        language,
        "ussd",
        "Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
        "\n5 Withdraw cash\n6 My orders",
    )
    return ask(language, menu, note)


def language_menu(language: str, note: str | None = None) -> Screen:
    menu = tr(language, "ussd", "Choose a language\n1 English\n2 Kiswahili")
    return ask(language, _join(menu, _back(language)), note)


def _back(language: str) -> str:
    return tr(language, "ussd", "0 Back")


def _more(language: str) -> str:
    return tr(language, "ussd", "98 More")


def statement_line(language: str, line: Line) -> str:
    values = {"day": line.day, "amount": line.amount, "balance": line.balance}
    if line.movement == "credit":
        return tr(language, "ussd", "{day} in {amount}, bal {balance}", **values)
    if line.movement == "debit":
        return tr(language, "ussd", "{day} out {amount}, bal {balance}", **values)
    if line.movement == "hold":
        return tr(language, "ussd", "{day} held {amount}, bal {balance}", **values)
    return tr(language, "ussd", "{day} released {amount}, bal {balance}", **values)


def pages(language: str, title: str, lines: Sequence[str]) -> list[str]:
    """``title`` and ``lines`` cut into pages that fit a screen with their footer
    (``98 More`` on all but the last, ``0 Back`` on all). A line is never split; one too
    long to share the first page with the title is cut."""
    more, back = _more(language), _back(language)
    room = SCREEN_LENGTH_MAX - len(more) - len(back) - 2  # two newlines before the footer
    widest = room - len(title) - 1  # any line fits beside the title: no page of a title alone
    found: list[list[str]] = [[title]]
    for given in lines:
        line = given if len(given) <= widest else given[: widest - len(CUT)] + CUT
        if len("\n".join([*found[-1], line])) > room:
            found.append([])
        found[-1].append(line)
    last = len(found) - 1
    return ["\n".join([*body, *([more] if i < last else []), back]) for i, body in enumerate(found)]


def paged(language: str, title: str, lines: Sequence[str], page: int) -> tuple[Screen, int]:
    """The screen of ``page`` (clamped to the pages there are) and that page's index."""
    found = pages(language, title, lines)
    index = min(max(page, 0), len(found) - 1)
    return Screen(found[index], end=False), index
