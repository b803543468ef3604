"""The withdrawal code over USSD: the agent's till number, the agent's name shown for
confirmation, the exact amount, then the code, made by
:func:`ledger.flows.consent.make_code_in_session` (the consent flow's code, as
``POST /v1/villagers/{id}/consent-codes`` makes it) on the PIN the session verified once
(not checked a second time). The agent then requests the cash-out with the code
(:func:`ledger.flows.cash.request_cash_out`).

The code is shown once, on the screen that ends the session; the SMS the consent flow
queues says that a code was made (never its digits). The screen is stored in the session
row like every screen, so that a replayed step answers it again without making a second
code; once the session is idle past its timeout (no replay can reach it then),
:func:`ledger.flows.ussd.purge_sessions` overwrites that screen.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ledger.core.tx import Tx
from ledger.flows import consent, parties
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, tills
from ledger.flows.ussd.menus import Note
from ledger.flows.ussd.model import Menu, Screen, State
from ledger.flows.ussd.screens import ask, ended
from ledger.i18n import tr
from ledger.money import exponent, format_money

__all__ = [
    "NAME_SHOWN_MAX",
    "Agent",
    "agent_in",
    "find_in",
    "made_screen",
    "minor",
    "refusal",
    "screen",
]

NAME_SHOWN_MAX = 24
"""The most characters of an agent's name a screen shows (a longer one is cut)."""


@dataclass(frozen=True, slots=True)
class Agent:
    id: uuid.UUID
    name: str
    """Cut to :data:`NAME_SHOWN_MAX`."""
    till: str


def _shown(name: str) -> str:
    return name if len(name) <= NAME_SHOWN_MAX else name[: NAME_SHOWN_MAX - 3] + "..."


def find_in(tx: Tx, till: str, currency: str) -> Agent | None:
    """The agent of till number ``till`` who holds ``currency``, or ``None``."""
    agent_id = tills.agent_of_till_in(tx, till)
    if agent_id is None:
        return None
    party = parties.find_party(tx, agent_id)
    if party is None or party.kind is not Kind.AGENT or party.currency != currency:
        return None
    return Agent(party.id, _shown(party.name), till)


def agent_in(tx: Tx, agent_id: str) -> Agent:
    """The agent a session's state names (found by till number on an earlier step)."""
    found = uuid.UUID(agent_id)
    party = parties.get_party(tx, found, Kind.AGENT)
    return Agent(party.id, _shown(party.name), tills.till_of_in(tx, found))


def minor(amount_major: int, currency: str) -> int:
    """Whole major units typed on the phone (no decimal point on a keypad) in minor units."""
    return amount_major * int(10 ** exponent(currency))


def screen(
    tx: Tx, language: str, state: State, currency: str, note: str | None
) -> tuple[Screen, State]:
    """The screen of a withdrawal step (``state.menu`` one of the withdrawal menus)."""
    back = tr(language, "ussd", "0 Back")
    if state.menu is Menu.WITHDRAW_TILL or state.agent_id is None:
        prompt = tr(language, "ussd", "Withdraw cash\nEnter the agent's till number")
        return ask(language, prompt + "\n" + back, note), State(
            Menu.WITHDRAW_TILL, pin_at=state.pin_at
        )
    agent = agent_in(tx, state.agent_id)
    if state.menu is Menu.WITHDRAW_AMOUNT or state.amount_major is None:
        prompt = tr(
            language,
            "ussd",
            "Agent: {agent}, till {till}\nEnter the amount in {currency}",
            agent=agent.name,
            till=agent.till,
            currency=currency,
        )
        return ask(language, prompt + "\n" + back, note), state
    amount = format_money(minor(state.amount_major, currency), currency)
    prompt = tr(
        language,
        "ussd",
        "Withdraw {amount} at {agent}, till {till}?\n1 Confirm",
        amount=amount,
        agent=agent.name,
        till=agent.till,
    )
    return ask(language, prompt + "\n" + back, note), state


def made_screen(language: str, agent: Agent, issued: consent.IssuedCode, currency: str) -> Screen:
    minutes = consent.CODE_TTL_S // 60
    return ended(
        tr(
            language,
            "ussd",
            "Withdrawal code: {code}\nFor {amount} at {agent}, till {till}. Valid {minutes}"
            " minutes. Tell it only to that agent.",
            code=issued.code,
            amount=format_money(issued.amount_minor, currency),
            agent=agent.name,
            till=agent.till,
            minutes=minutes,
        )
    )


def refusal(language: str, error: Refused, state: State) -> Screen | tuple[State, Note]:
    """What a refused code making shows: a note on the screen to correct, or ``END``."""
    if error.code in ("limit_exceeded_per_transaction", "amount_invalid"):
        return replace_amount(state), Note.OVER_LIMIT
    if error.code in ("currency_mismatch", "party_not_found", "not_found"):
        return State(Menu.WITHDRAW_TILL, pin_at=state.pin_at), Note.TILL_UNKNOWN
    if error.code == "consent_codes_too_many":
        return ended(
            tr(
                language,
                "ussd",
                "You have {count} open withdrawal codes. Use one or let it expire first.",
                count=consent.OPEN_CODES_MAX,
            )
        )
    if error.code in ("pin_locked", "pin_invalid"):
        return ended(tr(language, "ussd", "Your PIN is locked. Visit your agent to unlock it."))
    return ended(tr(language, "ussd", "A code cannot be made now. Please try again later."))


def replace_amount(state: State) -> State:
    return State(Menu.WITHDRAW_AMOUNT, agent_id=state.agent_id, pin_at=state.pin_at)
