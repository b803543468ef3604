"""A storefront's integration: an order's whole life through the signed API (``api.client``).

    .venv/bin/python examples/storefront.py ACTION ...
        create VILLAGER_ID AMOUNT_MINOR [--agent AGENT_ID] [--delivery METHOD]
        pay ORDER_ID PAY_CODE      pay from the villager's wallet (her pay code for it)
        dispatch ORDER_ID          the goods left: the villager gets a pickup code
        show ORDER_ID              the order as it is now (state, escrow, auto-release)
        refund ORDER_ID            give back what is still in escrow
    [--url URL] [--key-id KEY_ID] [--key-file FILE]
    (default: $VLEDGER_URL, $VLEDGER_KEY_ID, $VLEDGER_KEY_FILE)

The key is the storefront's (``vledger keys create --role storefront``), and the
storefront must be onboarded (``POST /v1/parties`` by an operator, ``id`` = the key's
``principal_id``). ``create`` prints the new order's id (the storefront's own permanent
id: sending the same order again is safe); the other actions print the order in one line.
The order's agent delivers it (with the villager's pickup code) and releases it early
when the villager confirms; otherwise escrow releases itself at ``auto_release_at``.

A refusal prints the API's problem ``code`` and ``detail`` (``refused: 404
order_not_found: no order ...``) on stderr and exits 1; wrong or missing arguments print
the usage and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

try:
    import httpx

    from api.client import Client, ProblemError
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

CURRENCY = "KES"


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storefront.py", description="An order's whole life.")
    parser.add_argument("--url", default=os.environ.get("VLEDGER_URL"), help="$VLEDGER_URL")
    parser.add_argument("--key-id", default=os.environ.get("VLEDGER_KEY_ID"), help="$KEY_ID")
    parser.add_argument(
        "--key-file", default=os.environ.get("VLEDGER_KEY_FILE"), help="$VLEDGER_KEY_FILE"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new order for a villager (nothing moves yet)")
    create.add_argument("villager_id", type=uuid.UUID, metavar="VILLAGER_ID")
    create.add_argument("amount_minor", type=int, metavar="AMOUNT_MINOR", help="e.g. 120000")
    create.add_argument("--agent", type=uuid.UUID, metavar="AGENT_ID", help="the order's agent")
    create.add_argument("--delivery", default="agent_delivery", metavar="METHOD")
    pay = actions.add_parser("pay", help="pay from the villager's wallet with her pay code")
    pay.add_argument("order_id", type=uuid.UUID, metavar="ORDER_ID")
    pay.add_argument("pay_code", metavar="PAY_CODE")
    for name, what in (
        ("dispatch", "the goods left the shop"),
        ("show", "the order as it is now"),
        ("refund", "give back what is in escrow"),
    ):
        actions.add_parser(name, help=what).add_argument(
            "order_id", type=uuid.UUID, metavar="ORDER_ID"
        )
    return parser


def order_line(order: dict[str, Any]) -> str:
    """One line: id, state and where the money is (minor units)."""
    shown = [
        order["id"],
        order["state"],
        f"amount={order['amount_minor']}",
        f"escrow={order['escrow_minor']}",
        f"released={order['released_minor']}",
        f"refunded={order['refunded_minor']}",
    ]
    if order.get("auto_release_at") and order["state"] in ("dispatched", "delivered"):
        shown.append(f"auto_release_at={order['auto_release_at']}")
    return " ".join(shown)


def act(vledger: Client, args: argparse.Namespace) -> str:
    """One action of the storefront; what it prints."""
    if args.action == "create":
        order: dict[str, Any] = {
            "id": str(uuid.uuid4()),  # your permanent id: sending it again is safe
            "currency": CURRENCY,
            "amount_minor": args.amount_minor,  # integer minor units, never a float
            "delivery_method": args.delivery,
            "villager_id": str(args.villager_id),
        }
        if args.agent is not None:
            order["agent_id"] = str(args.agent)
        made = vledger.call("POST", "/v1/orders", json_body=order)
        return str(made["id"])
    path = f"/v1/orders/{args.order_id}"
    if args.action == "show":
        return order_line(vledger.call("GET", path))
    body: dict[str, Any] = {}
    if args.action == "pay":
        body = {"source": "wallet", "consent_code": args.pay_code}
    return order_line(vledger.call("POST", f"{path}/{args.action}", json_body=body))


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)  # wrong arguments: the usage, exit 2
    missing = [
        option
        for option, value in (
            ("--url", args.url),
            ("--key-id", args.key_id),
            ("--key-file", args.key_file),
        )
        if not value
    ]
    if missing:
        parser.error(f"{', '.join(missing)} missing (or $VLEDGER_URL ... in the environment)")
    if not os.path.isfile(args.key_file):
        parser.error(f"no key file {args.key_file}")
    try:
        with Client.from_key_file(args.url, args.key_id, args.key_file) as vledger:
            print(act(vledger, args))
    except ProblemError as refused:
        detail = refused.problem.get("detail", "")
        print(f"refused: {refused.status} {refused.code}: {detail}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"no answer from {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
