"""`vledger`: the ledger's command line (an edge, like the HTTP API).

::

    vledger migrate [--database URL]   bring the schema to the newest revision
    vledger demo    [--database URL]   one village day through the signed API (served from
                    [--direct]         this process), then the integrity check; --direct:
                                       through the flows in process, no HTTP
    vledger expire  [--database URL]   void every hold whose timeout has passed
    vledger sweep   [--database URL]   run the flows' timers once (holds, orders, cash-outs)
    vledger serve   [--host H] [--port P] [--workers N] [--database URL]   the signed HTTP API
    vledger worker  [--database URL]   deliver webhooks and run the reconciliation schedule
                                       (procrastinate on PostgreSQL) until stopped
    vledger keys create --role R --name N [--alg A] --out FILE [--database URL]
    vledger keys revoke KEY_ID [--database URL]
    vledger reconcile JOB [--date D] [--input FILE] [--scope S] [--option K=V ...]
                          [--out DIR] [--threshold N] [--database URL]
    vledger variance list [--state S] [--agent ID] | approve ID --operator NAME
                   | reject ID --operator NAME --reason TEXT   cash-count variances
    vledger villagers register --agent ID --phone P --name N --currency C --language L [--id ID]
                    | unlock ID (--agent ID | --operator ID) | reset ID --operator ID
                    | phone ID --phone P --operator ID      villagers as principals
    vledger seal    [--key FILE] [--database URL]   seal committed transfers into blocks
    vledger audit export --out DIR [--from F] [--to T] [--database URL]
    vledger verify DIR --public-key FILE            check an export offline

The database is ``--database``, else ``$VLEDGER_DATABASE``, else ``sqlite:///village.db``.

Exit codes: 0 done; 1 the demo found a problem (it says which), a reconciliation
found more breaks than its threshold, or an export did not verify; 2 bad input or a
database that cannot be used (an unsupported URL, an unreachable server, a database
that is not migrated), reported as one line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from ledger import MalformedRequest, StorageError, open_ledger
from ledger.core import migrations
from ledger.core.errors import EdgeError
from ledger.flows.errors import FlowError
from vledger.demo import run_demo

DATABASE_DEFAULT = "sqlite:///village.db"
DATABASE_ENV = "VLEDGER_DATABASE"

EXIT_OK = 0
EXIT_BREAKS = 1
EXIT_USAGE = 2


class UsageError(EdgeError):
    """Bad input a command found after parsing: one line on stderr, exit 2."""


@dataclass(frozen=True, slots=True)
class Command:
    run: Callable[[argparse.Namespace], int]
    summary: str
    arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None


def _migrate(args: argparse.Namespace) -> int:
    url: str = args.database
    open_ledger(url, migrate=True).close()
    revision = migrations.current_revision(url)
    head = " (head)" if revision == migrations.head_revision() else ""
    print(f"migrated {_display(url)} to revision {revision}{head}")
    return EXIT_OK


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--direct",
        action="store_true",
        help="call the flows in this process instead of the signed API",
    )


def _demo(args: argparse.Namespace) -> int:
    if args.direct:
        return run_demo(args.database)
    from vledger.demo_http import run_demo_http

    return run_demo_http(args.database)


def _expire(args: argparse.Namespace) -> int:
    with open_ledger(args.database) as led:
        voided = led.expire_pending()
    print(f"expired holds voided: {voided}")
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    from ledger.flows.timers import sweep_all

    with open_ledger(args.database) as led:
        counts = sweep_all(led)
    for name, count in counts.items():
        print(f"{name}: {count}")
    return EXIT_OK


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port (PostgreSQL only; default 1)",
    )


def _serve(args: argparse.Namespace) -> int:
    from api.server import ServeRefused, serve

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be 1..65535, not {args.port}")
    try:
        serve(args.host, args.port, args.database, migrate=True, workers=args.workers)
    except ServeRefused as refused:
        raise UsageError(f"--workers: {refused}") from None
    return EXIT_OK


SCHEDULER_JOIN_S = 70
"""How long ``vledger worker`` waits for the reconciliation scheduler to stop."""


def _worker(args: argparse.Namespace) -> int:
    import threading

    from reconciliation.tasks import run_scheduler
    from webhooks import run_worker

    stop = threading.Event()
    scheduler = threading.Thread(
        target=run_scheduler,
        args=(args.database,),
        kwargs={"stop": stop},
        name="vledger-recon-scheduler",
        daemon=True,
    )
    scheduler.start()
    print(
        f"vledger worker on {_display(args.database)}: delivering webhooks, running the"
        " reconciliation schedule; Ctrl-C stops",
        flush=True,
    )
    try:
        run_worker(args.database, stop=stop)
    finally:
        stop.set()
        scheduler.join(timeout=SCHEDULER_JOIN_S)
    return EXIT_OK


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", help="create a principal (or add a key to it); write the private key"
    )
    create.add_argument(
        "--role", required=True, choices=("storefront", "agent", "auditor", "operator")
    )
    create.add_argument("--name", required=True, help="the principal's name")
    create.add_argument("--alg", default="ed25519", choices=("ed25519", "hmac-sha256"))
    create.add_argument("--out", required=True, metavar="FILE", help="a new file for the key")
    _database_argument(create)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID")
    _database_argument(revoke)


def _keys(args: argparse.Namespace) -> int:
    from api.keys import create_key, revoke

    if args.keys_action == "create":
        try:
            created = create_key(args.database, args.role, args.name, args.alg, args.out)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        print(json.dumps(created))
        return EXIT_OK
    if not revoke(args.database, args.key_id):
        raise UsageError(f"no active key {args.key_id!r}")
    print(json.dumps({"key_id": args.key_id, "state": "revoked"}))
    return EXIT_OK


def _reconcile_arguments(parser: argparse.ArgumentParser) -> None:
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
        type=_business_date,
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


def _business_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _reconcile(args: argparse.Namespace) -> int:
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


def _variance_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="variance_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="proposed, approved and rejected variances")
    listing.add_argument("--state", choices=("proposed", "approved", "rejected"), default=None)
    listing.add_argument("--agent", type=uuid.UUID, default=None, metavar="AGENT_ID")
    _database_argument(listing)
    approve = actions.add_parser("approve", help="post a proposed variance transfer")
    reject = actions.add_parser("reject", help="close a proposed variance; nothing moves")
    for action in (approve, reject):
        action.add_argument("variance_id", type=uuid.UUID, metavar="VARIANCE_ID")
        action.add_argument("--operator", required=True, help="who decides (recorded)")
        _database_argument(action)
    reject.add_argument("--reason", required=True)


def _variance_line(v: Any) -> str:
    return (
        f"{v.id} {v.state} {v.direction} {v.amount_minor} {v.currency} agent {v.agent_id}"
        + (f" transfer {v.transfer_id}" if v.transfer_id else "")
        + (f" by {v.decided_by}" if v.decided_by else "")
    )


def _variance(args: argparse.Namespace) -> int:
    from reconciliation import cash_count

    with open_ledger(args.database) as led:
        if args.variance_action == "list":
            found = cash_count.list_variances(led, state=args.state, agent_id=args.agent)
            for variance in found:
                print(_variance_line(variance))
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
    print(_variance_line(done))
    return EXIT_OK


def _villagers_arguments(parser: argparse.ArgumentParser) -> None:
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
        _database_argument(action)


def _villagers(args: argparse.Namespace) -> int:
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


def _seal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=None,
        metavar="FILE",
        help="the service's Ed25519 key (PKCS#8 PEM; default: $VLEDGER_SERVICE_KEY, else"
        " one kept beside the database, made on first use)",
    )


def _seal(args: argparse.Namespace) -> int:
    from reconciliation.seal import seal_pending
    from reconciliation.service_key import ServiceKeyError, load_service_key

    try:
        key = load_service_key(args.database, args.key)
    except ServiceKeyError as exc:
        raise UsageError(str(exc)) from exc
    with open_ledger(args.database) as led:
        blocks = seal_pending(led, key)
    print(f"blocks sealed: {blocks}")
    return EXIT_OK


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write sealed transfers, checkpoints and the public key to a folder"
    )
    export.add_argument("--out", required=True, metavar="DIR")
    for bound in ("from", "to"):
        export.add_argument(
            f"--{bound}",
            dest=f"{bound}_",
            type=_bound,
            default=None,
            metavar="BLOCK|TIME",
            help=f"a block number or an ISO 8601 time with its offset ({bound}"
            + (", inclusive)" if bound == "from" else ", exclusive for a time)"),
        )
    _database_argument(export)


def _bound(text: str) -> int | datetime:
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block number or a time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"a time needs its UTC offset: {text!r}")
    return moment


def _audit(args: argparse.Namespace) -> int:
    from reconciliation.export import export

    done = export(args.database, args.out, from_=args.from_, to=args.to_)
    print(
        f"exported blocks {done.first_block}..{done.last_block} ({done.blocks} blocks,"
        f" {done.transfers} transfers, tree size {done.tree_size}) to {done.out_dir}"
    )
    return EXIT_OK


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a folder written by vledger audit export")
    parser.add_argument(
        "--public-key",
        required=True,
        metavar="FILE",
        help="the service's public key, from a channel you trust (PEM)",
    )


def _verify(args: argparse.Namespace) -> int:
    from reconciliation.verify import verify

    report = verify(args.folder, args.public_key)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_BREAKS


COMMANDS: dict[str, Command] = {
    "migrate": Command(_migrate, "bring the database schema to the newest revision"),
    "demo": Command(
        _demo,
        "run one village day through the signed API (served from this process),"
        " then check integrity",
        _demo_arguments,
    ),
    "expire": Command(_expire, "void every pending transfer whose timeout has passed"),
    "sweep": Command(_sweep, "run the flows' timers once: expired holds, orders, cash-outs"),
    "serve": Command(_serve, "run the signed HTTP API (migrates first)", _serve_arguments),
    "worker": Command(
        _worker, "deliver webhooks and run scheduled reconciliations until interrupted"
    ),
    "keys": Command(_keys, "create and revoke API keys", _keys_arguments),
    "reconcile": Command(
        _reconcile, "run a reconciliation job and record the run", _reconcile_arguments
    ),
    "variance": Command(
        _variance, "list, approve or reject cash-count variances", _variance_arguments
    ),
    "villagers": Command(
        _villagers, "register villagers; unlock, reset or re-phone them", _villagers_arguments
    ),
    "seal": Command(_seal, "seal committed transfers into signed blocks", _seal_arguments),
    "audit": Command(_audit, "export the sealed journal for auditors", _audit_arguments),
    "verify": Command(_verify, "verify an audit export offline", _verify_arguments),
}

NO_DATABASE = frozenset({"verify"})
"""Commands that never open a database."""
OWN_DATABASE = frozenset({"keys", "audit", "variance", "villagers"})
"""Commands whose actions each take their own ``--database``."""


def _database_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(DATABASE_ENV) or DATABASE_DEFAULT
    parser.add_argument(
        "--database",
        default=default,
        metavar="URL",
        help=(
            "sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB "
            f"(default: ${DATABASE_ENV} or {DATABASE_DEFAULT}; now {_display(default)})"
        ),
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vledger",
        description="Village Ledger: accounts and transfers on PostgreSQL and SQLite.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary, description=command.summary)
        command.arguments(sub)
        if name not in NO_DATABASE | OWN_DATABASE:
            _database_argument(sub)
    return parser


def _display(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


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
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    url: str = getattr(args, "database", "")
    try:
        return COMMANDS[args.command].run(args)
    except (MalformedRequest, StorageError, UsageError, FlowError) as exc:
        message = _one_line(exc)
    except (sqlite3.OperationalError, psycopg.OperationalError, sa.exc.OperationalError) as exc:
        # A database that cannot be reached or opened, reported by its driver.
        message = f"cannot use {_display(url)}: {_one_line(exc)}"
    except (OSError, ValueError) as exc:  # a file that cannot be read or written, bad input
        message = _one_line(exc)
    print(f"vledger {args.command}: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
