"""The villager's USSD menu: sessions, the PIN once per session, read-only menus.

An aggregator (Africa's Talking) calls the service back for every step of a dialled
session with ``sessionId``, ``phoneNumber`` and ``text`` (every input so far joined by
``*``, empty on the first step). :func:`answer` (:func:`answer_async` on an event loop)
returns the step's :class:`Screen`: its text (at most :data:`SCREEN_LENGTH_MAX`
characters, in the villager's language from the ``ussd`` catalogs) and whether the
session ends (``END``) or waits (``CON``).

Menus: balance (posted and available) and the mini statement (the last
:data:`STATEMENT_MOVEMENTS` wallet receipts, paged with ``98 More`` / ``0 Back``) after
the PIN, verified once per session; change PIN (current, new, again: the villagers
flow's rules); language (English, Kiswahili); withdraw cash (the agent's till number,
her name shown, the exact amount, then a withdrawal code made by the consent flow with
the session's verified PIN: :mod:`~ledger.flows.ussd.withdraw`); my orders (her latest, or any
of hers by the reference she types; a pay code, confirm delivered, which releases
escrow, and a dispute, through the orders and consent flows:
:mod:`~ledger.flows.ussd.my_orders`). Money moves only through those flows, as a
claimed step: a replayed step answers the stored screen and moves nothing twice.

A villager still ``pending_activation`` (registered by an agent, no PIN yet) is asked for
the activation code from her SMS, a new PIN and the PIN again; ``villagers.activate``
checks them (a wrong code is counted there and committed, the screen shows the tries
left; an expired or void code ends the session) and she goes on to the main menu with the
PIN verified for the session. The code and both PINs are secrets like the PIN.

Modules: :mod:`~ledger.flows.ussd.model` (values, limits, reading ``text``),
:mod:`~ledger.flows.ussd.menus` (what an input means, pure),
:mod:`~ledger.flows.ussd.screens` (the words, pure), :mod:`~ledger.flows.ussd.service`
(the step; :func:`purge_sessions` deletes sessions idle a day),
:mod:`~ledger.flows.ussd.repository` (``ussd_sessions``, all its SQL),
:mod:`~ledger.flows.ussd.written` (the rows this process wrote last: a guess that spares
a menu step's read, checked by the step's one statement).
"""

from ledger.flows.ussd.model import (
    INPUT_LENGTH_MAX,
    INPUTS_MAX,
    SCREEN_LENGTH_MAX,
    SESSION_ID_LENGTH_MAX,
    SESSION_IDLE_S,
    STATEMENT_MOVEMENTS,
    TEXT_LENGTH_MAX,
    Screen,
)
from ledger.flows.ussd.service import (
    PURGE_AFTER_S,
    PURGE_BATCH_MAX,
    answer,
    answer_async,
    purge_sessions,
    refused_screen,
    too_many_keys,
)

__all__ = [
    "INPUTS_MAX",
    "PURGE_AFTER_S",
    "PURGE_BATCH_MAX",
    "INPUT_LENGTH_MAX",
    "SCREEN_LENGTH_MAX",
    "SESSION_IDLE_S",
    "SESSION_ID_LENGTH_MAX",
    "STATEMENT_MOVEMENTS",
    "TEXT_LENGTH_MAX",
    "Screen",
    "answer",
    "answer_async",
    "purge_sessions",
    "refused_screen",
    "too_many_keys",
]
