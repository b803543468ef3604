"""Publish a fee schedule: an operator's step that has no HTTP route or command yet.

    .venv/bin/python examples/fee_schedule.py PRODUCT CURRENCY [--rules FILE] [--database URL]
    (default database: $VLEDGER_DATABASE, else sqlite:///village.db)

An order is released (by its agent, or by the sweeper at ``auto_release_at``) only when
an ``order`` fee schedule is in effect in its currency; a fresh database has none, and the
release is refused with 422 ``fee_schedule_missing``. ``vledger demo`` publishes its
schedules on the ledger directly; so does this script (``ledger.flows.fees``), effective
now, as the next version of PRODUCT's schedule in CURRENCY. Without ``--rules`` it
publishes the demo's rules for ``order``, ``cash_in`` or ``cash_out``
(``vledger.demo.FEE_SCHEDULES``; for ``order``: 2% of the order, at least 10.00 and at
most 500.00, 16% of the fee is tax). ``--rules FILE``: your own rules as JSON (bands of
fixed fees or basis points; see ``ledger/flows/fees``).

Prints ``PRODUCT CURRENCY: version N in effect``. A refusal prints its code and detail and
exits 1; wrong arguments print the usage and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

try:
    from ledger import open_ledger
    from ledger.core.errors import LedgerError
    from ledger.flows import fees
    from vledger.demo import FEE_SCHEDULES
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fee_schedule.py", description=__doc__.split("\n")[0])
    parser.add_argument("product", metavar="PRODUCT", help="order, cash_in, cash_out ...")
    parser.add_argument("currency", metavar="CURRENCY", help="ISO 4217, e.g. KES")
    parser.add_argument("--rules", type=Path, metavar="FILE", help="the rules as JSON")
    parser.add_argument(
        "--database", default=os.environ.get("VLEDGER_DATABASE") or "sqlite:///village.db"
    )
    args = parser.parse_args(argv)
    if args.rules is None and args.product not in FEE_SCHEDULES:
        parser.error(f"no built-in rules for {args.product!r}: give --rules FILE")
    try:
        rules: dict[str, Any] = (
            FEE_SCHEDULES[args.product]
            if args.rules is None
            else json.loads(args.rules.read_text())
        )
    except (OSError, ValueError) as exc:
        parser.error(f"--rules: {exc}")
    try:
        with open_ledger(args.database) as led:
            version = fees.publish_schedule(
                led,
                product=args.product,
                currency=args.currency,
                effective_from=led.now() - timedelta(seconds=1),
                rules=rules,
            )
    except LedgerError as refused:
        code = getattr(refused, "code", type(refused).__name__)
        print(f"refused: {code}: {getattr(refused, 'detail', refused)}", file=sys.stderr)
        return 1
    print(f"{args.product} {args.currency}: version {version} in effect")
    return 0


if __name__ == "__main__":
    sys.exit(main())
