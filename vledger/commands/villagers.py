"""``vledger villagers``: villagers as principals, registered and helped at a station."""

from __future__ import annotations

import argparse
import json
import uuid

from ledger import open_ledger
from vledger.common import EXIT_OK, UsageError, database_argument


def villagers_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="villagers_action", required=True, metavar="ACTION")
    register = actions.add_parser(
        "register", help="register a villager at an agent's station (the code goes to her phone)"
    )
    register.add_argument("--agent", required=True, type=uuid.UUID, metavar="AGENT_ID")
    register.add_argument("--phone", required=True, help="E.164, with the country code")
    register.add_argument("--name", required=True)
    register.add_argument("--currency", required=True, metavar="ISO4217")
    register.add_argument("--language", required=True, choices=("en", "sw"))
    register.add_argument(
        "--id", type=uuid.UUID, default=None, metavar="UUID", help="the villager's id (new)"
    )
    unlock = actions.add_parser("unlock", help="unlock a PIN: a fresh activation code")
    who = unlock.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", type=uuid.UUID, metavar="AGENT_ID", help="a first unlock")
    who.add_argument("--operator", type=uuid.UUID, metavar="OPERATOR_ID")
    reset = actions.add_parser("reset", help="reset a forgotten PIN (48 h hold on large debits)")
    reset.add_argument("--operator", required=True, type=uuid.UUID, metavar="OPERATOR_ID")
    phone = actions.add_parser("phone", help="move to a new phone number (48 h hold)")
    phone.add_argument("--operator", required=True, type=uuid.UUID, metavar="OPERATOR_ID")
    phone.add_argument("--phone", required=True, help="E.164, with the country code")
    for action in (register, unlock, reset, phone):
        if action is not register:
            action.add_argument("villager_id", type=uuid.UUID, metavar="VILLAGER_ID")
        database_argument(action)


def villagers(args: argparse.Namespace) -> int:
    """One villager step through :mod:`ledger.flows.villagers`; the villager as JSON (never
    a PIN, hash or activation code)."""
    from api.access import principal_role
    from api.routes.villagers import NOT_A_PRINCIPAL, villager_out
    from ledger.flows import villagers

    with open_ledger(args.database) as led:
        if args.villagers_action == "register":
            if args.id is not None and principal_role(led, args.id) is not None:
                raise UsageError(NOT_A_PRINCIPAL)
            done = villagers.register_villager(
                led,
                villager_id=args.id or uuid.uuid4(),
                agent_id=args.agent,
                phone=args.phone,
                name=args.name,
                currency=args.currency,
                language=args.language,
            )
        elif args.villagers_action == "unlock":
            done = villagers.unlock(
                led, villager_id=args.villager_id, agent_id=args.agent, operator_id=args.operator
            )
        elif args.villagers_action == "reset":
            done = villagers.reset(led, villager_id=args.villager_id, operator_id=args.operator)
        else:
            done = villagers.change_phone(
                led, villager_id=args.villager_id, operator_id=args.operator, phone=args.phone
            )
    print(json.dumps(villager_out(done)))
    return EXIT_OK
