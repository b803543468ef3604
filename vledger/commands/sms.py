"""``vledger sms``: the SMS outbox and agents' SMS phones.

::

    vledger sms outbox [--state queued|sent|failed] [--limit N] [--database URL]
    vledger sms contact AGENT_ID --phone P --language en|sw [--database URL]

``outbox`` first renders any outbox events the worker has not yet read (as the worker
would: idempotent, nothing is sent), then lists the newest ``--limit`` messages, oldest
of them first: the recipient masked but for the last 3 digits, the language, the state,
the parts and the text as an operator may see it (a one-time code masked).
"""

from __future__ import annotations

import argparse
import uuid

from ledger import open_ledger
from ledger.core.store import to_us
from sms import repository
from sms.contacts import set_agent_contact
from sms.delivery import queue_new
from sms.repository import Message, MessageState
from sms.settings import SmsSettings
from vledger.common import EXIT_OK, UsageError, database_argument

__all__ = ["LIMIT_DEFAULT", "LIMIT_MAX", "masked", "sms", "sms_arguments"]

LIMIT_DEFAULT = 50
LIMIT_MAX = 1000
DIGITS_SHOWN = 3


def sms_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="sms_action", required=True, metavar="ACTION")
    outbox = actions.add_parser(
        "outbox", help="list what would be / was sent: the newest, oldest first"
    )
    outbox.add_argument("--state", choices=[s.value for s in MessageState], default=None)
    outbox.add_argument(
        "--limit", type=int, default=LIMIT_DEFAULT, help=f"1..{LIMIT_MAX} (default {LIMIT_DEFAULT})"
    )
    contact = actions.add_parser("contact", help="send an agent's SMS to this phone")
    contact.add_argument("agent_id", type=uuid.UUID, metavar="AGENT_ID")
    contact.add_argument("--phone", required=True, help="E.164, with the country code")
    contact.add_argument("--language", required=True, choices=("en", "sw"))
    for action in (outbox, contact):
        database_argument(action)


def masked(phone: str) -> str:
    """Every digit but the last :data:`DIGITS_SHOWN` as ``*`` (``+*********101``)."""
    digits = sum(c.isdigit() for c in phone)
    seen, out = 0, []
    for char in phone:
        if char.isdigit():
            seen += 1
            out.append(char if seen > digits - DIGITS_SHOWN else "*")
        else:
            out.append(char)
    return "".join(out)


def _line(message: Message) -> str:
    return "  ".join(
        (
            message.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            masked(message.phone),
            message.language,
            message.state.value,
            f"{message.parts} part{'s' if message.parts != 1 else ''}",
            message.event_type,
            message.text_shown,
        )
    )


def _outbox(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= LIMIT_MAX:
        raise UsageError(f"--limit must be 1..{LIMIT_MAX}")
    state = None if args.state is None else MessageState(args.state)
    with open_ledger(args.database) as led:
        queue_new(led, now_us=to_us(led.now()), settings=SmsSettings.from_env())
        found = led.transact(
            lambda tx: repository.newest_messages(tx, state=state, limit=args.limit)
        )
    for message in found:
        print(_line(message))
    if not found:
        print("no messages")
    return EXIT_OK


def sms(args: argparse.Namespace) -> int:
    """``vledger sms outbox`` or ``vledger sms contact``."""
    if args.sms_action == "outbox":
        return _outbox(args)
    with open_ledger(args.database) as led:
        done = set_agent_contact(
            led, agent_id=args.agent_id, phone=args.phone, language=args.language
        )
    print(f"agent {done.party_id}: SMS to {masked(done.phone)} in {done.language}")
    return EXIT_OK
