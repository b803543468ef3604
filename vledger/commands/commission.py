"""``vledger commission``: pay a month's agent commission from the machine.

::

    vledger commission pay --month YYYY-MM --currency C --to float|provider [--provider P]
                           [--database URL]

``--to float`` is the same flow function as ``POST /v1/commission-payouts`` pays with
(:func:`ledger.flows.commission.pay_month`): once per month (UTC) and currency, only a
month that is over; asking again prints the first payout and moves nothing. Prints the
payout, then one line per agent paid. A refusal is one line on stderr, exit 2.

``--to provider`` sends money out of the platform: two operators decide it, each a
signed caller (maker-checker), so this command refuses it (exit 2, nothing opened) and
says how: one operator proposes it over the signed API, another approves the proposal
(:data:`SIGNED_ONLY`). A month already paid is shown by ``--to float`` as it was paid.
"""

from __future__ import annotations

import argparse

from ledger import open_ledger
from ledger.flows import commission
from ledger.flows.commission import CommissionPayout, Destination, PayoutLine
from vledger.common import EXIT_OK, UsageError

__all__ = ["SIGNED_ONLY", "commission_arguments", "commission_command"]

SIGNED_ONLY = (
    "a payout to a provider takes two signed operators: one proposes it (vledger call KEY"
    " POST /v1/commission-payouts month=YYYY-MM currency=C to=provider provider=P, or the"
    " console), another approves the proposal (POST /v1/proposals/PROPOSAL_ID/approve)"
)
"""What ``vledger commission pay --to provider`` answers (exit 2): it pays nothing."""


def commission_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("pay",), help="pay a month that is over")
    parser.add_argument("--month", required=True, help="YYYY-MM, a month in UTC")
    parser.add_argument("--currency", required=True, help="ISO 4217, e.g. KES")
    parser.add_argument("--to", required=True, choices=[d.value for d in Destination])
    parser.add_argument(
        "--provider", default=None, help="refused with --to provider: see vledger call"
    )


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
    """``vledger commission pay``: pay the month to the floats, print who got what; to a
    provider: refused before opening anything (:data:`SIGNED_ONLY`)."""
    if args.to == Destination.PROVIDER.value:
        raise UsageError(f"pay --to provider: {SIGNED_ONLY}")
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
