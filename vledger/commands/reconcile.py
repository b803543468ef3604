"""``vledger reconcile`` and ``vledger variance``: reconciliation runs and cash-count
variances."""

from __future__ import annotations

import argparse
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from ledger import open_ledger
from vledger.common import EXIT_BREAKS, EXIT_OK, UsageError, database_argument


def reconcile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job",
        metavar="JOB",
        help="integrity, statement, cash-count, orders, settlement, ageing, pack",
    )
    parser.add_argument("--input", default=None, metavar="FILE", help="the outside record")
    parser.add_argument("--scope", default=None, help="a provider, agent or storefront")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a job's setting (repeatable)",
    )
    parser.add_argument(
        "--date",
        type=business_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the business date reconciled (default: today, UTC)",
    )
    parser.add_argument(
        "--out", default="reports", metavar="DIR", help="where run files go (default: reports)"
    )
    parser.add_argument(
        "--threshold",
        type=int,
        default=0,
        metavar="N",
        help="exit 1 when the run finds more than N breaks (default 0)",
    )


def business_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def reconcile(args: argparse.Namespace) -> int:
    from reconciliation.jobs import JOBS, JobRequest, run_job

    if args.job not in JOBS:
        raise UsageError(f"no job {args.job!r}; jobs: {', '.join(JOBS)}")
    if args.threshold < 0:
        raise UsageError("--threshold must be 0 or more")
    options = {}
    for option in args.option:
        name, equals, value = option.partition("=")
        if not equals or not name:
            raise UsageError(f"--option takes NAME=VALUE, not {option!r}")
        options[name] = value
    with open_ledger(args.database) as led:
        request = JobRequest(
            business_date=args.date or led.now().date(),
            input_path=Path(args.input) if args.input else None,
            scope=args.scope,
            options=options,
        )
        done = run_job(led, args.job, request, out=Path(args.out))
    run = done.run
    print(
        f"{run.job} {run.business_date}: {run.status}, {run.breaks} break(s) in"
        f" {run.checked} checked; run {run.id} (attempt {run.attempt})"
    )
    for kind, count in sorted(run.summary.get("breaks_by_kind", {}).items()):
        print(f"  {kind}: {count}")
    print(f"files: {done.folder}")
    return EXIT_BREAKS if run.breaks > args.threshold else EXIT_OK


def variance_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="variance_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="proposed, approved and rejected variances")
    listing.add_argument("--state", choices=("proposed", "approved", "rejected"), default=None)
    listing.add_argument("--agent", type=uuid.UUID, default=None, metavar="AGENT_ID")
    database_argument(listing)
    approve = actions.add_parser("approve", help="post a proposed variance transfer")
    reject = actions.add_parser("reject", help="close a proposed variance; nothing moves")
    for action in (approve, reject):
        action.add_argument("variance_id", type=uuid.UUID, metavar="VARIANCE_ID")
        action.add_argument("--operator", required=True, help="who decides (recorded)")
        database_argument(action)
    reject.add_argument("--reason", required=True)


def variance_line(v: Any) -> str:
    """One variance for people: its amount as money (``KES 100.00``)."""
    from ledger.money import format_money

    amount = format_money(v.amount_minor, v.currency)
    return (
        f"{v.id} {v.state} {v.direction} {amount} agent {v.agent_id}"
        + (f" transfer {v.transfer_id}" if v.transfer_id else "")
        + (f" by {v.decided_by}" if v.decided_by else "")
    )


def variance(args: argparse.Namespace) -> int:
    from reconciliation import cash_count

    with open_ledger(args.database) as led:
        if args.variance_action == "list":
            found = cash_count.list_variances(led, state=args.state, agent_id=args.agent)
            for variance in found:
                print(variance_line(variance))
            print(f"{len(found)} variance(s)")
            return EXIT_OK
        if args.variance_action == "approve":
            done = cash_count.approve_variance(
                led, variance_id=args.variance_id, operator=args.operator
            )
        else:
            done = cash_count.reject_variance(
                led, variance_id=args.variance_id, operator=args.operator, reason=args.reason
            )
    print(variance_line(done))
    return EXIT_OK
