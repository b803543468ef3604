"""The USSD menu's values and limits, and the reading of the aggregator's ``text`` (pure).

``text`` is every input of the session so far joined by ``*`` (empty on the first step),
the PIN included. :func:`parse_text` splits and bounds it; :func:`blanked` puts
:data:`BLANK` where a PIN was typed, and :func:`inputs_sha256` digests the result: the
digest, never the inputs, is what a session keeps to recognise a replayed step.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ledger.flows.errors import Refused

__all__ = [
    "BLANK",
    "INPUTS_MAX",
    "INPUT_LENGTH_MAX",
    "SCREEN_LENGTH_MAX",
    "SESSION_ID_LENGTH_MAX",
    "SESSION_IDLE_S",
    "STATEMENT_MOVEMENTS",
    "TEXT_LENGTH_MAX",
    "Menu",
    "Screen",
    "State",
    "blanked",
    "inputs_sha256",
    "parse_text",
]

SCREEN_LENGTH_MAX = 182
"""The most characters of one screen (after ``CON ``/``END ``): what a handset shows."""
SESSION_IDLE_S = 180
"""A session idle longer than this is over (the networks end theirs sooner)."""
INPUTS_MAX = 40
"""The most inputs one session may carry in ``text``; more answers ``END``."""
INPUT_LENGTH_MAX = 12
"""The longest single input, in characters (a PIN is 4-6 digits, a choice 1-2)."""
TEXT_LENGTH_MAX = INPUTS_MAX * (INPUT_LENGTH_MAX + 1)
"""The longest ``text`` read at all (a longer one is refused before it is split)."""
SESSION_ID_LENGTH_MAX = 100
"""The longest aggregator ``sessionId`` (the ``ussd_sessions`` column's width)."""
STATEMENT_MOVEMENTS = 5
"""How many of the wallet's last movements the mini statement shows."""
BLANK = "#"
"""What stands in for a PIN in the inputs a session digests (``#`` is never an input)."""
_KEYS = frozenset(string.ascii_letters + string.digits + " ")
"""The characters an input may hold at all (a handset's keys; never :data:`BLANK`)."""


@dataclass(frozen=True, slots=True)
class Screen:
    """One answer: ``text`` (at most :data:`SCREEN_LENGTH_MAX` characters) and whether
    the session ends with it (``END``) or waits for an input (``CON``)."""

    text: str
    end: bool

    def __post_init__(self) -> None:
        if len(self.text) > SCREEN_LENGTH_MAX:  # screens are built to fit; this is a bug
            raise ValueError(f"a USSD screen of {len(self.text)} characters")

    @property
    def wire(self) -> str:
        """The callback's body: ``CON text`` or ``END text``."""
        return ("END " if self.end else "CON ") + self.text


class Menu(StrEnum):
    """The screen a session is on (what its next input answers)."""

    MAIN = "main"
    PIN = "pin"
    BALANCE = "balance"
    STATEMENT = "statement"
    PIN_OLD = "pin_old"
    PIN_NEW = "pin_new"
    PIN_CONFIRM = "pin_confirm"
    LANGUAGE = "language"
    WITHDRAW_TILL = "withdraw_till"
    WITHDRAW_AMOUNT = "withdraw_amount"
    WITHDRAW_CONFIRM = "withdraw_confirm"
    ORDERS = "orders"
    ORDER = "order"
    DISPUTE_REASON = "dispute_reason"
    ORDER_REFERENCE = "order_reference"
    ACTIVATE_CODE = "activate_code"
    ACTIVATE_PIN = "activate_pin"
    ACTIVATE_CONFIRM = "activate_confirm"


@dataclass(frozen=True, slots=True)
class State:
    """Where a session is: its menu, the page of a paged screen, the screen the PIN step
    leads to, and the positions (indexes in ``text``) of a PIN change's inputs; for a
    withdrawal code, the agent (found by till number) and the amount in major units; for
    the villager's orders, the ones listed and the one chosen.
    ``pin_at`` is where in ``text`` the PIN that was verified was typed (kept from step to
    step by the service: a code is made with it). Never a PIN: only where one was typed.
    While a pending villager activates her account, ``old_at`` is where the activation
    code was typed and ``new_at`` where the new PIN was (positions, never the digits)."""

    menu: Menu = Menu.MAIN
    page: int = 0
    after: Menu | None = None
    old_at: int | None = None
    new_at: int | None = None
    agent_id: str | None = None
    amount_major: int | None = None
    pin_at: int | None = None
    order_id: str | None = None
    order_ids: tuple[str, ...] = ()
    """The orders the list showed, in its order (a choice ``n`` is ``order_ids[n - 1]``)."""

    def to_json(self) -> dict[str, object]:
        return {
            "menu": self.menu.value,
            "page": self.page,
            "after": None if self.after is None else self.after.value,
            "old_at": self.old_at,
            "new_at": self.new_at,
            "agent_id": self.agent_id,
            "amount_major": self.amount_major,
            "pin_at": self.pin_at,
            "order_id": self.order_id,
            "order_ids": list(self.order_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> State:
        after = data.get("after")
        old_at, new_at, page = data.get("old_at"), data.get("new_at"), data.get("page", 0)
        return cls(
            menu=Menu(str(data["menu"])),
            page=page if isinstance(page, int) else 0,
            after=None if after is None else Menu(str(after)),
            old_at=old_at if isinstance(old_at, int) else None,
            new_at=new_at if isinstance(new_at, int) else None,
            agent_id=_str_or_none(data.get("agent_id")),
            amount_major=_int_or_none(data.get("amount_major")),
            pin_at=_int_or_none(data.get("pin_at")),
            order_id=_str_or_none(data.get("order_id")),
            order_ids=tuple(str(i) for i in ids)
            if isinstance(ids := data.get("order_ids"), list)
            else (),
        )


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_text(text: str) -> list[str]:
    """The inputs of ``text`` (``[]`` for the first step). :class:`Refused`
    ``ussd_text_too_long``, ``ussd_too_many_inputs`` (more than :data:`INPUTS_MAX`),
    ``ussd_input_too_long``, ``ussd_input_not_keys`` (anything but a phone's keys: ASCII
    digits, letters and spaces; an empty input, a bare send, is kept). Which keys a screen
    reads is the menu's rule (:func:`ledger.flows.ussd.menus.keys_fit`): the number keys,
    and letters only where an order reference is typed."""
    if len(text) > TEXT_LENGTH_MAX:
        raise Refused("ussd_text_too_long", f"text is longer than {TEXT_LENGTH_MAX} characters")
    if text == "":
        return []
    inputs = text.split("*")
    if len(inputs) > INPUTS_MAX:
        raise Refused("ussd_too_many_inputs", f"more than {INPUTS_MAX} inputs in one session")
    if not all(_KEYS.issuperset(item) for item in inputs):
        raise Refused("ussd_input_not_keys", "an input is digits, letters and spaces only")
    if any(len(item) > INPUT_LENGTH_MAX for item in inputs):
        raise Refused("ussd_input_too_long", f"an input is at most {INPUT_LENGTH_MAX} keys")
    return inputs


def blanked(inputs: Sequence[str], secret_positions: Iterable[int]) -> list[str]:
    """``inputs`` with :data:`BLANK` where a PIN was typed."""
    secret = set(secret_positions)
    return [BLANK if i in secret else item for i, item in enumerate(inputs)]


def inputs_sha256(blanked_inputs: Sequence[str]) -> str:
    """The SHA-256 (hex) of PIN-less inputs: what a session stores to recognise a step."""
    text = json.dumps(list(blanked_inputs), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
