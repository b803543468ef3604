"""What an input means on each screen (pure): ``choose(state, input)`` is the next step.

The menu tree (``0`` goes back, ``98`` turns a page)::

    main ─ 1 Balance ──────── (PIN once per session) ─ balance
         ─ 2 Mini statement ─ (PIN once per session) ─ statement (paged)
         ─ 3 Change PIN ───── current PIN ─ new PIN ─ new PIN again
         ─ 4 Language ─────── 1 English / 2 Kiswahili
         ─ 5 Withdraw cash ── (PIN once per session) ─ the agent's till number
                              ─ (the agent's name) amount ─ confirm ─ the code (END)
         ─ 6 My orders ────── (PIN once per session) ─ list (paged) ─ an order ─
                              1 pay code / 2 confirm delivered / 3 dispute ─ reason
                              list ─ 99 Order reference ─ the reference (6 characters)
                              ─ her order with it (the same screen and choices as from
                              the list) / several of hers sharing it (a list to choose
                              from) / "no order of yours" (also for another villager's)

A villager still ``pending_activation`` starts elsewhere: the activation code from the
SMS ─ a new PIN ─ the new PIN again ─ (the villagers flow activates her) ─ main, with
the PIN verified for the session.

The PIN is asked before anything that reads money and is verified once per session; a
PIN change asks the current PIN anyway (the flow checks it). An input typed on a PIN
screen is a secret, and so is anything longer than a choice typed on a menu screen (a
PIN typed in the wrong place): :func:`is_secret` tells the service so that it never
stores, logs or digests it.

The list shows her latest orders only; ``99`` (on any page of it) asks for an order's
reference (the order id's first :data:`REFERENCE_DIGITS` hex digits, as the screens show
it and a shop can read it off the order id; any case, spaces ignored) and leads to her
order with it, wherever it is in her history. Letters are read on that screen only
(every other screen takes the number keys: :func:`keys_fit`). A reference is no secret,
but a PIN is digits and may be typed there by mistake: an input of that screen without
a letter and longer than a choice is kept like a PIN. So a 4- or 5-digit PIN is refused
as no reference (a note, the screen again), and a 6-digit one, like an all-digit
reference, is looked up and answered "no order of yours" unless she has an order with
that reference (whose screen names it, as the list does); no screen echoes an input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from ledger.flows.orders import REFERENCE_DIGITS
from ledger.flows.ussd.model import Menu, State
from ledger.flows.ussd.screens import BACK, MORE
from ledger.flows.villagers import ACTIVATION_CODE_DIGITS

__all__ = [
    "CHOICE_LENGTH_MAX",
    "ACTIVATE_MENUS",
    "Activate",
    "ChangePin",
    "FindOrder",
    "FindTill",
    "REFERENCE_DIGITS",
    "MakeWithdrawalCode",
    "OrderAction",
    "Note",
    "SetLanguage",
    "Show",
    "Step",
    "VerifyPin",
    "choose",
    "is_secret",
    "keys_fit",
    "typed_reference",
]

ACTIVATE_MENUS = frozenset({Menu.ACTIVATE_CODE, Menu.ACTIVATE_PIN, Menu.ACTIVATE_CONFIRM})
"""A pending villager's activation: every input there (the code, the PINs) is a secret."""
SECRET_MENUS = frozenset({Menu.PIN, Menu.PIN_OLD, Menu.PIN_NEW, Menu.PIN_CONFIRM}) | ACTIVATE_MENUS
MONEY_MENUS = frozenset({Menu.BALANCE, Menu.STATEMENT})
"""Paged screens that read money."""
WITHDRAW_MENUS = frozenset({Menu.WITHDRAW_TILL, Menu.WITHDRAW_AMOUNT, Menu.WITHDRAW_CONFIRM})
ORDER_MENUS = frozenset({Menu.ORDERS, Menu.ORDER, Menu.DISPUTE_REASON, Menu.ORDER_REFERENCE})
PIN_FIRST = MONEY_MENUS | WITHDRAW_MENUS | ORDER_MENUS
"""Screens that read or move money: only after the PIN was verified in the session."""
AMOUNT_DIGITS_MAX = 9
"""The longest amount typed, in major units (digits): more is no amount a tier allows."""
LANGUAGE_CHOICES = {"1": "en", "2": "sw"}


class Note(StrEnum):
    """A line shown above a screen's prompt."""

    INVALID = "invalid"
    WRONG_PIN = "wrong_pin"
    PIN_FORMAT = "pin_format"
    PINS_DIFFER = "pins_differ"
    PIN_TOO_WEAK = "pin_too_weak"
    PIN_UNCHANGED = "pin_unchanged"
    LANGUAGE_SAVED = "language_saved"
    TILL_UNKNOWN = "till_unknown"
    AMOUNT_INVALID = "amount_invalid"
    OVER_LIMIT = "over_limit"
    ORDER_NOT_NOW = "order_not_now"
    CODE_FORMAT = "code_format"
    PIN_SET = "pin_set"
    REFERENCE_FORMAT = "reference_format"
    ORDER_UNKNOWN = "order_unknown"
    REFERENCE_SHARED = "reference_shared"


@dataclass(frozen=True, slots=True)
class Show:
    """Go to ``state`` and show its screen (with ``note`` above it)."""

    state: State
    note: Note | None = None


@dataclass(frozen=True, slots=True)
class VerifyPin:
    """The input is the PIN: verify it, then show ``after``."""

    after: Menu


@dataclass(frozen=True, slots=True)
class ChangePin:
    """The input confirms the new PIN: the current PIN was typed at ``old_at``, the new
    one at ``new_at`` (indexes of ``text``'s inputs)."""

    old_at: int
    new_at: int


@dataclass(frozen=True, slots=True)
class Activate:
    """The input confirms a pending villager's new PIN: the activation code was typed at
    ``code_at``, the new PIN at ``new_at`` (indexes of ``text``'s inputs)."""

    code_at: int
    new_at: int


@dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str


@dataclass(frozen=True, slots=True)
class FindTill:
    """The input is an agent's till number: find the agent, then ask the amount."""

    till: str


@dataclass(frozen=True, slots=True)
class MakeWithdrawalCode:
    """The villager confirmed: make a withdrawal code for the state's agent and amount."""

    agent_id: str
    amount_major: int


class Action(StrEnum):
    PAY_CODE = "pay_code"
    CONFIRM = "confirm"
    DISPUTE = "dispute"


ORDER_ACTIONS = {"1": Action.PAY_CODE, "2": Action.CONFIRM}
DISPUTE_REASONS = {"1": "not_arrived", "2": "damaged", "3": "wrong_goods"}
"""The reasons a villager can give for a dispute (stored as the dispute's reason)."""


@dataclass(frozen=True, slots=True)
class OrderAction:
    """Run ``action`` on the villager's order ``order_id`` through the orders (or consent)
    flow; ``reason`` for a dispute."""

    action: Action
    order_id: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class FindOrder:
    """The input is an order reference (:func:`typed_reference`): find her order with it."""

    reference: str


Step = (
    Show
    | VerifyPin
    | ChangePin
    | Activate
    | SetLanguage
    | FindTill
    | MakeWithdrawalCode
    | OrderAction
    | FindOrder
)


CHOICE_LENGTH_MAX = 2
"""The longest choice a menu screen takes (``98``). A longer input there is no choice: it
may be the PIN typed in the wrong place, so it is kept like one (blanked)."""


REFERENCE = "99"
"""The list's choice that asks for an order's reference."""
_HEX = frozenset("0123456789ABCDEF")


def is_secret(state: State, choice: str) -> bool:
    """Whether ``choice``, typed on ``state``'s screen, is (or may be) a PIN: anything
    on a PIN screen; anything longer than a choice elsewhere, except an input with a
    letter on the reference screen (a PIN is digits)."""
    if state.menu in SECRET_MENUS:
        return True
    if state.menu is Menu.ORDER_REFERENCE and not choice.replace(" ", "").isdigit():
        return False
    return len(choice) > CHOICE_LENGTH_MAX


def keys_fit(state: State, choice: str) -> bool:
    """Whether ``choice`` (a phone's keys: :func:`~ledger.flows.ussd.model.parse_text`)
    is typed with keys ``state``'s screen reads: the number keys (or a bare send), and
    on the reference screen letters and spaces too."""
    return state.menu is Menu.ORDER_REFERENCE or choice == "" or choice.isdigit()


def typed_reference(choice: str) -> str | None:
    """``choice`` as an order reference (spaces dropped, upper case), or ``None`` if it
    is not :data:`REFERENCE_DIGITS` hex digits."""
    typed = choice.replace(" ", "").upper()
    return typed if len(typed) == REFERENCE_DIGITS and _HEX.issuperset(typed) else None


def _money(menu: Menu, pin_verified: bool) -> Show:
    if pin_verified:
        return Show(State(menu))
    return Show(State(Menu.PIN, after=menu))


def _main(choice: str, pin_verified: bool) -> Show:
    if choice == "1":
        return _money(Menu.BALANCE, pin_verified)
    if choice == "2":
        return _money(Menu.STATEMENT, pin_verified)
    if choice == "3":
        return Show(State(Menu.PIN_OLD))
    if choice == "4":
        return Show(State(Menu.LANGUAGE))
    if choice == "5":
        return _money(Menu.WITHDRAW_TILL, pin_verified)
    if choice == "6":
        return _money(Menu.ORDERS, pin_verified)
    return Show(State(Menu.MAIN), Note.INVALID)


def _withdraw(state: State, choice: str) -> Step:
    """The withdrawal screens: till number, amount (major units), confirm."""
    if choice == BACK:
        return Show(State(Menu.MAIN))
    if state.menu is Menu.WITHDRAW_TILL:
        return FindTill(choice)
    if state.agent_id is None:  # the service sets it with the amount screen
        return Show(State(Menu.WITHDRAW_TILL), Note.INVALID)
    if state.menu is Menu.WITHDRAW_AMOUNT:
        if not (choice.isdigit() and 0 < len(choice) <= AMOUNT_DIGITS_MAX and int(choice) > 0):
            return Show(state, Note.AMOUNT_INVALID)
        return Show(State(Menu.WITHDRAW_CONFIRM, agent_id=state.agent_id, amount_major=int(choice)))
    if choice == "1" and state.amount_major is not None:
        return MakeWithdrawalCode(state.agent_id, state.amount_major)
    return Show(state, Note.INVALID)


def _orders(state: State, choice: str) -> Step:
    """The villager's orders: a numbered list (paged), an order, a dispute's reason, the
    screen that asks for an order's reference."""
    if state.menu is Menu.ORDERS:
        if choice.isdigit() and 1 <= int(choice) <= len(state.order_ids) and choice != MORE:
            chosen = state.order_ids[int(choice) - 1]
            return Show(State(Menu.ORDER, order_id=chosen, order_ids=state.order_ids))
        if choice == REFERENCE and state.order_ids:
            return Show(State(Menu.ORDER_REFERENCE, order_ids=state.order_ids))
        return _paged(state, choice)
    if state.menu is Menu.ORDER_REFERENCE:
        return _reference(state, choice)
    if state.order_id is None:  # the list sets it
        return Show(State(Menu.ORDERS), Note.INVALID)
    back = State(Menu.ORDERS, order_ids=state.order_ids)
    if choice == BACK:
        return Show(back if state.menu is Menu.ORDER else replace(state, menu=Menu.ORDER))
    if state.menu is Menu.ORDER:
        if choice in ORDER_ACTIONS:
            return OrderAction(ORDER_ACTIONS[choice], state.order_id)
        if choice == "3":
            return Show(replace(state, menu=Menu.DISPUTE_REASON))
        return Show(state, Note.INVALID)
    if choice in DISPUTE_REASONS:
        return OrderAction(Action.DISPUTE, state.order_id, DISPUTE_REASONS[choice])
    return Show(state, Note.INVALID)


def _reference(state: State, choice: str) -> Step:
    """The reference screen: ``0`` back to the list, else a reference (or its format)."""
    if choice.replace(" ", "") == BACK:
        return Show(State(Menu.ORDERS, order_ids=state.order_ids))
    typed = typed_reference(choice)
    if typed is None:
        return Show(state, Note.REFERENCE_FORMAT)
    return FindOrder(typed)


def _activate(state: State, choice: str, position: int) -> Step:
    """A pending villager's activation: the code (its form checked here, so that a slip
    costs no counted try), the new PIN, the new PIN again."""
    if state.menu is Menu.ACTIVATE_CODE:
        if not (len(choice) == ACTIVATION_CODE_DIGITS and choice.isdigit()):
            return Show(State(Menu.ACTIVATE_CODE), Note.CODE_FORMAT)
        return Show(State(Menu.ACTIVATE_PIN, old_at=position))
    if state.old_at is None:  # the code screen sets it
        return Show(State(Menu.ACTIVATE_CODE), Note.INVALID)
    if state.menu is Menu.ACTIVATE_PIN:
        return Show(State(Menu.ACTIVATE_CONFIRM, old_at=state.old_at, new_at=position))
    if state.new_at is None:  # the new PIN screen sets it
        return Show(State(Menu.ACTIVATE_PIN, old_at=state.old_at), Note.INVALID)
    return Activate(code_at=state.old_at, new_at=state.new_at)


def _paged(state: State, choice: str) -> Show:
    if choice == MORE:
        return Show(replace(state, page=state.page + 1))
    if choice == BACK:
        return Show(replace(state, page=state.page - 1) if state.page > 0 else State(Menu.MAIN))
    return Show(state, Note.INVALID)


def choose(state: State, choice: str, *, position: int, pin_verified: bool) -> Step:
    """The step that ``choice`` (the input at index ``position`` of ``text``) makes on
    ``state``'s screen."""
    menu = state.menu
    if menu is Menu.MAIN:
        return _main(choice, pin_verified)
    if menu is Menu.PIN:
        return VerifyPin(state.after or Menu.MAIN)
    if menu in ACTIVATE_MENUS:
        return _activate(state, choice, position)
    if menu in MONEY_MENUS:
        return _paged(state, choice)
    if menu in WITHDRAW_MENUS:
        return _withdraw(state, choice)
    if menu in ORDER_MENUS:
        return _orders(state, choice)
    if menu is Menu.PIN_OLD:
        return Show(State(Menu.PIN_NEW, old_at=position))
    if menu is Menu.PIN_NEW:
        return Show(State(Menu.PIN_CONFIRM, old_at=state.old_at, new_at=position))
    if menu is Menu.PIN_CONFIRM:
        if state.old_at is None or state.new_at is None:
            return Show(State(Menu.MAIN), Note.INVALID)
        return ChangePin(old_at=state.old_at, new_at=state.new_at)
    if choice in LANGUAGE_CHOICES:
        return SetLanguage(LANGUAGE_CHOICES[choice])
    if choice == BACK:
        return Show(State(Menu.MAIN))
    return Show(state, Note.INVALID)
