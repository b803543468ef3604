"""``vledger reconcile`` and ``vledger variance``: reconciliation runs and cash-count
variances."""

from __future__ import annotations

import argparse
import contextlib
import textwrap
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import open_ledger
from ledger.core.replica import check_read_url, open_read_ledger
from vledger.common import (
    EXIT_BREAKS,
    EXIT_OK,
    UsageError,
    database_argument,
    read_database_argument,
)

if TYPE_CHECKING:
    from reconciliation.jobs import JobSpec


def reconcile_arguments(parser: argparse.ArgumentParser) -> None:
    """A subcommand per job, so ``vledger reconcile JOB --help`` lists that job's scope,
    input and options (the command line is ``vledger reconcile JOB [options]`` as ever)."""
    from reconciliation.jobs import JOBS

    jobs = parser.add_subparsers(dest="job", required=True, metavar="JOB", title="jobs")
    for spec in JOBS.values():
        job = jobs.add_parser(
            spec.name,
            help=spec.summary,
            description=textwrap.fill(f"{spec.summary}.", HELP_WIDTH),
            epilog=job_help(spec),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _job_arguments(job, spec)
        database_argument(job)
        read_database_argument(job)


def _job_arguments(parser: argparse.ArgumentParser, spec: JobSpec) -> None:
    scope, source = spec.scope, spec.input
    parser.add_argument(
        "--input",
        default=None,
        metavar="FILE",
        help="not taken" if source is None else source.meaning,
    )
    parser.add_argument(
        "--scope",
        default=None,
        metavar="SCOPE" if scope is None else scope.metavar,
        help="not taken" if scope is None else scope.meaning,
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the job (repeatable; listed below)",
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


HELP_WIDTH = 88
"""The width ``vledger reconcile JOB --help`` wraps the job's scope, input and options to."""


def job_help(spec: JobSpec) -> str:
    """What ``vledger reconcile JOB --help`` says below the arguments: whether the job
    needs ``--scope`` and ``--input``, and its options with their defaults."""
    lines = []
    for flag, taken in (("--scope", spec.scope), ("--input", spec.input)):
        if taken is None:
            lines.append(f"{flag}: not taken")
        else:
            need = "required" if taken.required else "optional"
            text = f"{flag} {taken.metavar} ({need}): {taken.meaning}"
            lines.append(textwrap.fill(text, HELP_WIDTH, subsequent_indent="    "))
    if not spec.options:
        lines.append("options: none")
    else:
        lines.append("options (--option NAME=VALUE):")
        for option in spec.options:
            default = "" if option.default is None else f" (default: {option.default})"
            text = f"{option.name}: {option.meaning}{default}"
            lines.append(
                textwrap.fill(text, HELP_WIDTH, initial_indent="  ", subsequent_indent="      ")
            )
    return "\n".join(lines)


def business_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _options(given: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--option NAME=VALUE`` as a mapping, and the problems of those not so written."""
    options: dict[str, str] = {}
    problems: list[str] = []
    for option in given:
        name, equals, value = option.partition("=")
        if not equals or not name:
            problems.append(f"--option takes NAME=VALUE, not {option!r}")
        else:
            options[name] = value
    return options, problems


def reconcile(args: argparse.Namespace) -> int:
    """Check everything the command line says before opening the ledger (every problem
    in one line), then run the job with its progress on stderr."""
    from reconciliation.jobs import JOBS, JobRequest, job_problems, run_job
    from reconciliation.replica import Replica
    from vledger.progress import shown

    spec = JOBS[args.job]
    options, problems = _options(args.option)
    input_path = Path(args.input) if args.input else None
    problems = [
        *job_problems(spec, input_path=input_path, scope=args.scope, options=options),
        *problems,
    ]
    if args.threshold < 0:
        problems.append("--threshold must be 0 or more")
    if problems:
        raise UsageError("; ".join(problems))
    quiet = getattr(args, "quiet", False)
    if args.read_database is not None:
        check_read_url(args.read_database, primary_url=args.database)
    with contextlib.ExitStack() as opened:
        led = opened.enter_context(open_ledger(args.database))
        replica = None
        if args.read_database is not None:
            replica = Replica(opened.enter_context(open_read_ledger(args.read_database)))
        request = JobRequest(
            business_date=args.date or led.now().date(),
            input_path=input_path,
            scope=args.scope,
            options=options,
        )
        with shown(f"vledger reconcile {spec.name}", quiet=quiet) as progress:
            done = run_job(
                led, spec.name, request, out=Path(args.out), progress=progress, replica=replica
            )
    run = done.run
    print(
        f"{run.job} {run.business_date}: {run.status}, {run.breaks} break(s) in"
        f" {run.checked} checked; run {run.id} (attempt {run.attempt})"
    )
    for kind, count in sorted(run.summary.get("breaks_by_kind", {}).items()):
        print(f"  {kind}: {count}")
    in_transit = run.summary.get("in_transit_items")
    if in_transit:
        print(f"  in transit (inside their settlement time, not breaks): {in_transit}")
    if args.read_database is not None:
        where = run.reads
        close = f" (the replica had to pass {where.close_lsn})" if where.close_lsn else ""
        print(f"read: the {where.source} up to {where.read_lsn}{close}")
    print(f"files: {done.folder}")
    return EXIT_BREAKS if run.breaks > args.threshold else EXIT_OK


SIGNED_ONLY = (
    "a variance is decided by signed operators, never a typed name: one proposes"
    " (POST /v1/variances/ID/approval), another approves (POST /v1/proposals/PROPOSAL_ID"
    "/approve); a rejection is POST /v1/variances/ID/reject with a reason. Use vledger call"
    " KEY POST PATH, or the console"
)
"""What ``vledger variance approve`` and ``reject`` answer (exit 2): they decide nothing."""


def variance_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="variance_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="proposed, approved and rejected variances")
    listing.add_argument("--state", choices=("proposed", "approved", "rejected"), default=None)
    listing.add_argument("--agent", type=uuid.UUID, default=None, metavar="AGENT_ID")
    database_argument(listing)
    show = actions.add_parser("show", help="one variance")
    show.add_argument("variance_id", type=uuid.UUID, metavar="VARIANCE_ID")
    database_argument(show)
    signed_only = "refused: through the signed API (vledger call, the console)"
    approve = actions.add_parser("approve", help=signed_only)
    reject = actions.add_parser("reject", help=signed_only)
    for action in (approve, reject):
        action.add_argument("variance_id", type=uuid.UUID, metavar="VARIANCE_ID")
        action.add_argument("--operator", default=None, help="no longer taken: refused")
        database_argument(action)
    reject.add_argument("--reason", default=None, help="no longer taken: refused")


def variance_line(v: Any) -> str:
    """One variance for people: its amount as money (``KES 100.00``); who decided it, a
    principal id (a name typed before revision 0030 is shown as typed)."""
    from ledger.money import format_money

    amount = format_money(v.amount_minor, v.currency)
    decider = v.decided_by or (f"{v.decided_by_name} (typed)" if v.decided_by_name else None)
    return (
        f"{v.id} {v.state} {v.direction} {amount} agent {v.agent_id}"
        + (f" transfer {v.transfer_id}" if v.transfer_id else "")
        + (f" by {decider}" if decider else "")
    )


def variance(args: argparse.Namespace) -> int:
    """``list`` and ``show`` read; ``approve`` and ``reject`` refuse (exit 2) before
    opening anything: a decision needs a signed caller (:data:`SIGNED_ONLY`)."""
    from reconciliation import cash_count

    if args.variance_action in ("approve", "reject"):
        raise UsageError(f"{args.variance_action}: {SIGNED_ONLY}")
    with open_ledger(args.database) as led:
        if args.variance_action == "show":
            print(variance_line(cash_count.get_variance(led, variance_id=args.variance_id)))
            return EXIT_OK
        found = cash_count.list_variances(led, state=args.state, agent_id=args.agent)
    for one in found:
        print(variance_line(one))
    print(f"{len(found)} variance(s)")
    return EXIT_OK
