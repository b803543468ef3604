"""How an SMS is counted and split: the GSM 03.38 7-bit default alphabet, its extension
table, and the UCS-2 fallback. Pure functions, no I/O.

- A text made only of the default alphabet and the extension table is sent in GSM-7:
  one septet per default character, two per extension character (the escape ``0x1B``
  and the character). One message holds :data:`GSM7_SINGLE_MAX` septets; a longer text
  is split into parts of at most :data:`GSM7_PART_MAX` septets (the user data header of
  a concatenated SMS takes the rest), and an extension character is never cut from its
  escape.
- Any other character makes the whole text UCS-2: one message holds
  :data:`UCS2_SINGLE_MAX` UTF-16 code units, parts :data:`UCS2_PART_MAX`; a character
  outside the Basic Multilingual Plane (two code units, a surrogate pair) is never cut.

:func:`split` answers the parts; ``"".join(parts) == text`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENSION",
    "GSM7_PART_MAX",
    "GSM7_SINGLE_MAX",
    "UCS2_PART_MAX",
    "UCS2_SINGLE_MAX",
    "Encoding",
    "Split",
    "encoding_of",
    "split",
    "units",
]

_ESCAPE = "\x1b"
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
"""The 128 characters of the default alphabet in code order (``0x1B`` is the escape to
the extension table, not a character of the text)."""
GSM7_EXTENSION = "\f^{}\\[~]|€"
"""The extension table's characters: each costs two septets."""
_BASIC = frozenset(GSM7_BASIC) - {_ESCAPE}
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7_SINGLE_MAX = 160
GSM7_PART_MAX = 153
UCS2_SINGLE_MAX = 70
UCS2_PART_MAX = 67


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class Split:
    """A text as it goes out: its encoding, its size in that encoding's units and its parts."""

    encoding: Encoding
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    parts: tuple[str, ...]


def _gsm7_cost(char: str) -> int | None:
    if char in _BASIC:
        return 1
    if char in _EXTENSION:
        return 2
    return None


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the default alphabet or its extension table."""
    return Encoding.GSM7 if all(_gsm7_cost(c) is not None for c in text) else Encoding.UCS2


def _cost(char: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        cost = _gsm7_cost(char)
        if cost is None:
            raise ValueError(f"{char!r} is not in the GSM-7 alphabet")
        return cost
    return 2 if ord(char) > 0xFFFF else 1


def units(text: str, encoding: Encoding | None = None) -> int:
    """The size of ``text`` in septets (GSM-7) or UTF-16 code units (UCS-2)."""
    chosen = encoding or encoding_of(text)
    return sum(_cost(c, chosen) for c in text)


def split(text: str) -> Split:
    """The text in one message when it fits, else in parts that each fit (greedy: every
    part but the last is as full as a whole character allows)."""
    encoding = encoding_of(text)
    size = units(text, encoding)
    single, part_max = (
        (GSM7_SINGLE_MAX, GSM7_PART_MAX)
        if encoding is Encoding.GSM7
        else (UCS2_SINGLE_MAX, UCS2_PART_MAX)
    )
    if size <= single:
        return Split(encoding, size, (text,))
    parts: list[str] = []
    start, used = 0, 0
    for index, char in enumerate(text):
        cost = _cost(char, encoding)
        if used + cost > part_max:
            parts.append(text[start:index])
            start, used = index, 0
        used += cost
    parts.append(text[start:])
    return Split(encoding, size, tuple(parts))
