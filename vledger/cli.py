"""`vledger`: the ledger's command line (an edge, like the HTTP API).

::

    vledger migrate [--database URL]   bring the schema to the newest revision
    vledger demo    [--database URL]   one village day through the signed API (served from
                    [--direct]         this process), then the integrity check; --direct:
                                       through the flows in process, no HTTP
    vledger expire  [--database URL]   void every hold whose timeout has passed
    vledger sweep   [--database URL]   run the flows' timers once (holds, orders, cash-outs)
    vledger serve   [--host H] [--port P] [--workers N] [--database URL]   the signed HTTP API
                    [--read-database URL]
    vledger worker  [--database URL]   deliver webhooks and run the reconciliation schedule
                    [--read-database URL]   (procrastinate on PostgreSQL) until stopped
    vledger keys create --role R --name N [--alg A] --out FILE [--database URL]
    vledger keys revoke KEY_ID [--database URL]
    vledger reconcile JOB [--date D] [--input FILE] [--scope S] [--option K=V ...]
                          [--out DIR] [--threshold N] [--database URL] [--read-database URL]
    vledger variance list [--state S] [--agent ID] | show ID   cash-count variances
                     (approve, reject: refused; decided through the signed API)
    vledger villagers register --agent ID --phone P --name N --currency C --language L [--id ID]
                    | unlock ID (--agent ID | --operator ID) | reset ID --operator ID
                    | phone ID --phone P --operator ID      villagers as principals
    vledger seal    [--key FILE] [--database URL]   seal committed transfers into blocks
    vledger audit export --out DIR [--from F] [--to T] [--database URL]
    vledger verify DIR [--public-key FILE]          check an audit export or pack offline
    vledger sms outbox [--state S] [--limit N] | contact AGENT_ID --phone P --language L
    vledger agents enroll (--agent ID | --principal ID)   a one-time enrollment code (and QR)
    vledger ussd --phone P [--base URL] [--secret S]      a terminal phone on the USSD menu
    vledger commission pay --month YYYY-MM --currency C --to float|provider [--provider P]
                                                          pay a month's agent commission
    vledger call KEY (GET|POST) PATH [FIELD=TEXT | FIELD:=JSON ...] [--pick F] [--base URL]
                 | KEY whoami                              one signed request to the API

Every command takes ``--quiet`` (no progress on stderr); ``vledger reconcile JOB --help``
lists a job's scope, input and options.

The database is ``--database``, else ``$VLEDGER_DATABASE``, else ``sqlite:///village.db``.
``--read-database`` (else ``$VLEDGER_READ_DATABASE``; serve, worker, reconcile) names a
PostgreSQL streaming replica, opened read-only, that jobs, packs and auditors' reads use
(see README "Read replica").

Exit codes: 0 done; 1 the demo found a problem (it says which), a reconciliation
found more breaks than its threshold, or an export or pack did not verify; 2 bad input
(argparse's included) or a database that cannot be used (an unsupported URL, an
unreachable server, a database that is not migrated), reported as one line on stderr
without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from ledger import MalformedRequest, StorageError
from ledger.flows.errors import FlowError
from vledger.commands import (
    audit,
    call,
    commission,
    enroll,
    keys,
    reconcile,
    service,
    sms,
    ussd,
    villagers,
)
from vledger.common import (
    EXIT_USAGE,
    Command,
    OneLineParser,
    UsageError,
    database_argument,
    display,
    quiet_argument,
    subparsers_of,
)

__all__ = ["COMMANDS", "UsageError", "main"]

COMMANDS: dict[str, Command] = {
    "migrate": Command(service.migrate, "bring the database schema to the newest revision"),
    "demo": Command(
        service.demo,
        "run one village day through the signed API (served from this process),"
        " then check integrity",
        service.demo_arguments,
    ),
    "expire": Command(service.expire, "void every pending transfer whose timeout has passed"),
    "sweep": Command(service.sweep, "run the flows' timers once: expired holds, orders, cash-outs"),
    "serve": Command(
        service.serve, "run the signed HTTP API (migrates first)", service.serve_arguments
    ),
    "worker": Command(
        service.worker,
        "deliver webhooks and run scheduled reconciliations until interrupted",
        service.worker_arguments,
    ),
    "keys": Command(keys.keys, "create and revoke API keys", keys.keys_arguments),
    "reconcile": Command(
        reconcile.reconcile,
        "run a reconciliation job and record the run",
        reconcile.reconcile_arguments,
    ),
    "variance": Command(
        reconcile.variance,
        "list or show cash-count variances (decided through the signed API)",
        reconcile.variance_arguments,
    ),
    "villagers": Command(
        villagers.villagers,
        "register villagers; unlock, reset or re-phone them",
        villagers.villagers_arguments,
    ),
    "seal": Command(
        audit.seal, "seal committed transfers into signed blocks", audit.seal_arguments
    ),
    "audit": Command(audit.audit, "export the sealed journal for auditors", audit.audit_arguments),
    "verify": Command(
        audit.verify, "verify an audit export or pack offline", audit.verify_arguments
    ),
    "sms": Command(sms.sms, "list the SMS outbox; set agents' SMS phones", sms.sms_arguments),
    "agents": Command(enroll.agents, "enroll a phone or a console", enroll.agents_arguments),
    "ussd": Command(ussd.ussd, "a terminal phone: dial the USSD menu", ussd.ussd_arguments),
    "call": Command(call.call, "one signed request to the API with a key", call.call_arguments),
    "commission": Command(
        commission.commission_command,
        "pay a month's agent commission (UTC) to floats or a provider",
        commission.commission_arguments,
    ),
}


NO_DATABASE = frozenset({"verify", "ussd", "call"})
"""Commands that never open a database."""


OWN_DATABASE = frozenset({"keys", "reconcile", "audit", "variance", "villagers", "sms", "agents"})
"""Commands whose actions each take their own ``--database``."""


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="vledger",
        description="Village Ledger: accounts and transfers on PostgreSQL and SQLite.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=command.summary,
            description=command.summary,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.arguments(sub)
        if name not in NO_DATABASE | OWN_DATABASE:
            database_argument(sub)
    _everywhere(parser, quiet_argument)
    return parser


def _everywhere(
    parser: argparse.ArgumentParser, add: Callable[[argparse.ArgumentParser], None]
) -> None:
    """``add`` an option to ``parser`` and to every subcommand's parser below it."""
    add(parser)
    for sub in subparsers_of(parser):
        _everywhere(sub, add)


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost parser the command line chose (``vledger variance approve``'s)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub = action.choices.get(getattr(args, action.dest, None) or "")
            if sub is not None:
                return _chosen(sub, args)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line; a usage error is one line on stderr and ``SystemExit(2)``
    (an argument no parser knows is reported by the command it was given to)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _chosen(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _one_line(exc: BaseException) -> str:
    """The first line of an error's text: database drivers add SQL and links below it."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run ``vledger`` with ``argv`` (default: the process arguments); answer the exit code."""
    # Errors only: a connection pool's retry warnings would bury the one-line message.
    logging.basicConfig(level=logging.ERROR, format="vledger: %(name)s: %(message)s")
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # psycopg sets WARNING itself
    try:
        args = parse(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    url: str = getattr(args, "database", "")
    try:
        return COMMANDS[args.command].run(args)
    except (MalformedRequest, StorageError, UsageError, FlowError) as exc:
        message = _one_line(exc)
    except (sqlite3.OperationalError, psycopg.OperationalError, sa.exc.OperationalError) as exc:
        # A database that cannot be reached or opened, reported by its driver.
        message = f"cannot use {display(url)}: {_one_line(exc)}"
    except (OSError, ValueError) as exc:  # a file that cannot be read or written, bad input
        message = _one_line(exc)
    print(f"vledger {args.command}: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
