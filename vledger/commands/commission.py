"""``vledger commission``: pay a month's agent commission from the machine.

::

    vledger commission pay --month YYYY-MM --currency C --to float|provider [--provider P]
                           [--database URL]

The same flow function as ``POST /v1/commission-payouts``
(:func:`ledger.flows.commission.pay_month`): once per month (UTC) and currency, only a
month that is over; asking again prints the first payout and moves nothing. Prints the
payout, then one line per agent paid. A refusal is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse

from ledger import open_ledger
from ledger.flows import commission
from ledger.flows.commission import CommissionPayout, Destination, PayoutLine
from vledger.common import EXIT_OK

__all__ = ["commission_arguments", "commission_command"]


def commission_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("pay",), help="pay a month that is over")
    parser.add_argument("--month", required=True, help="YYYY-MM, a month in UTC")
    parser.add_argument("--currency", required=True, help="ISO 4217, e.g. KES")
    parser.add_argument("--to", required=True, choices=[d.value for d in Destination])
    parser.add_argument("--provider", default=None, help="with --to provider: e.g. MPESA")


def _line(line: PayoutLine) -> str:
    return (
        f"  agent {line.agent_id}  earned {line.earned_minor}  paid {line.amount_minor}"
        f"  transfer {line.transfer_id}"
    )


def _header(payout: CommissionPayout) -> str:
    to = payout.destination.value
    if payout.provider is not None:
        to = f"{to} {payout.provider}"
    return (
        f"commission payout {payout.id}: {payout.month} {payout.currency} to {to},"
        f" {payout.lines_count} agents, {payout.total_minor} minor units"
        f" (made {payout.created_at.isoformat()})"
    )


def commission_command(args: argparse.Namespace) -> int:
    """``vledger commission pay``: pay the month, print who got what."""
    with open_ledger(args.database) as led:
        payout = commission.pay_month(
            led, month=args.month, currency=args.currency, to=args.to, provider=args.provider
        )
        print(_header(payout))
        after = None
        while True:
            _, lines = commission.payout_lines(led, payout_id=payout.id, after_agent=after)
            for line in lines:
                print(_line(line))
            if len(lines) < commission.PAYOUTS_PAGE_MAX:
                return EXIT_OK
            after = lines[-1].agent_id
