"""The villager's phone, played on this machine: what the USSD menu and the SMS will do.

    .venv/bin/python examples/villager_phone.py activate VILLAGER_ID PIN
    .venv/bin/python examples/villager_phone.py pay-code VILLAGER_ID PIN ORDER_ID AMOUNT_MINOR
    .venv/bin/python examples/villager_phone.py pickup-code VILLAGER_ID ORDER_ID
    [--database URL]  (default: $VLEDGER_DATABASE, else sqlite:///village.db)

There is no HTTP route for these steps on purpose: a PIN and the codes it makes belong to
the villager, never to an agent or a storefront (README, "Who may move what"). Until the
USSD menu and the SMS gateway exist, this script stands in for the villager's phone. It
opens the database directly, so it runs on the machine of the service:

- ``activate``: reads the activation code the outbox sent to her phone (SMS) and sets
  her PIN with it (``ledger.flows.villagers.activate``);
- ``pay-code``: she makes a one-time pay code with her PIN for one order and its exact
  amount (``ledger.flows.consent.make_code``); prints the 6 digits;
- ``pickup-code``: reads the pickup code the outbox sent to her phone when the order
  was dispatched; prints the 6 digits, which she shows at the station.

A refusal prints its code and detail (``refused: pin_too_weak: ...``) and exits 1; wrong
arguments print the usage and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

try:
    from ledger import Ledger, open_ledger
    from ledger.core.errors import LedgerError
    from ledger.core.tx import Tx
    from ledger.flows import consent, events, pickup, villagers
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

DATABASE_ENV = "VLEDGER_DATABASE"
DATABASE_DEFAULT = "sqlite:///village.db"
EVENTS_PAGE = 100


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="villager_phone.py", description="The villager's phone (USSD and SMS), played here."
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(DATABASE_ENV) or DATABASE_DEFAULT,
        help=f"the service's database (default: ${DATABASE_ENV}, else {DATABASE_DEFAULT})",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    activate = steps.add_parser("activate", help="set the PIN with the code sent by SMS")
    activate.add_argument("villager_id", type=uuid.UUID, metavar="VILLAGER_ID")
    activate.add_argument("pin", metavar="PIN", help="4 to 6 digits, not an easy one")
    pay = steps.add_parser("pay-code", help="make a pay code for one order")
    pay.add_argument("villager_id", type=uuid.UUID, metavar="VILLAGER_ID")
    pay.add_argument("pin", metavar="PIN")
    pay.add_argument("order_id", type=uuid.UUID, metavar="ORDER_ID")
    pay.add_argument("amount_minor", type=int, metavar="AMOUNT_MINOR")
    shown = steps.add_parser("pickup-code", help="the pickup code sent by SMS at dispatch")
    shown.add_argument("villager_id", type=uuid.UUID, metavar="VILLAGER_ID")
    shown.add_argument("order_id", type=uuid.UUID, metavar="ORDER_ID")
    return parser


def sms_code(
    led: Ledger, villager_id: uuid.UUID, event_type: str, subject_id: uuid.UUID | None = None
) -> str | None:
    """The code of the newest event of ``event_type`` sent to the villager's phone."""
    found: str | None = None
    after = 0
    while True:

        def page_of(tx: Tx, after_seq: int = after) -> list[events.Event]:
            return events.read_events(
                tx,
                after_seq=after_seq,
                limit=EVENTS_PAGE,
                party_id=villager_id,
                subject_id=subject_id,
            )

        page = led.transact(page_of)
        codes = [str(e.payload["code"]) for e in page if e.type == event_type]
        found = codes[-1] if codes else found
        if len(page) < EVENTS_PAGE:
            return found
        after = page[-1].seq


def step(led: Ledger, args: argparse.Namespace) -> str:
    """One step of the phone; what the phone shows."""
    if args.step == "activate":
        code = sms_code(led, args.villager_id, events.VILLAGER_ACTIVATION_CODE)
        if code is None:
            return "refused: no activation code was sent to this villager"
        phone = villagers.get_villager(led, args.villager_id).phone
        done = villagers.activate(led, phone=phone, activation_code=code, pin=args.pin)
        return f"PIN set: {done.name} is {done.state}"
    if args.step == "pay-code":
        made = consent.make_code(
            led,
            villager_id=args.villager_id,
            pin=args.pin,
            purpose=consent.Purpose.PAYMENT,
            amount_minor=args.amount_minor,
            order_id=args.order_id,
        )
        return made.code
    code = sms_code(led, args.villager_id, pickup.PICKUP_CODE_EVENT, args.order_id)
    return "refused: no pickup code was sent for this order" if code is None else code


def main(argv: list[str] | None = None) -> int:
    args = arguments().parse_args(argv)  # wrong arguments: the usage, exit 2
    try:
        with open_ledger(args.database) as led:
            shown = step(led, args)
    except LedgerError as refused:
        code = getattr(refused, "code", type(refused).__name__)
        detail = getattr(refused, "detail", str(refused))
        print(f"refused: {code}: {detail}", file=sys.stderr)
        return 1
    if shown.startswith("refused: "):
        print(shown, file=sys.stderr)
        return 1
    print(shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
