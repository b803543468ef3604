"""`vledger`: the ledger's command line (an edge, like the HTTP API).

::

    vledger migrate [--database URL]   bring the schema to the newest revision
    vledger demo    [--database URL]   run one village day, then the integrity check
    vledger expire  [--database URL]   void every hold whose timeout has passed

The database is ``--database``, else ``$VLEDGER_DATABASE``, else ``sqlite:///village.db``.

Exit codes: 0 done; 1 the demo found a problem (it says which); 2 bad input or a
database that cannot be used (an unsupported URL, an unreachable server, a database
that is not migrated), reported as one line on stderr without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from ledger import MalformedRequest, StorageError, open_ledger
from ledger.core import migrations
from ledger.demo import run_demo

DATABASE_DEFAULT = "sqlite:///village.db"
DATABASE_ENV = "VLEDGER_DATABASE"

EXIT_OK = 0
EXIT_USAGE = 2


def _migrate(url: str) -> int:
    open_ledger(url, migrate=True).close()
    revision = migrations.current_revision(url)
    head = " (head)" if revision == migrations.head_revision() else ""
    print(f"migrated {_display(url)} to revision {revision}{head}")
    return EXIT_OK


def _demo(url: str) -> int:
    return run_demo(url)


def _expire(url: str) -> int:
    with open_ledger(url) as led:
        voided = led.expire_pending()
    print(f"expired holds voided: {voided}")
    return EXIT_OK


COMMANDS: dict[str, tuple[Callable[[str], int], str]] = {
    "migrate": (_migrate, "bring the database schema to the newest revision"),
    "demo": (_demo, "run one village day through the ledger, then check integrity"),
    "expire": (_expire, "void every pending transfer whose timeout has passed"),
}


def _parser() -> argparse.ArgumentParser:
    default = os.environ.get(DATABASE_ENV) or DATABASE_DEFAULT
    parser = argparse.ArgumentParser(
        prog="vledger",
        description="Village Ledger: accounts and transfers on PostgreSQL and SQLite.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, summary) in COMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument(
            "--database",
            default=default,
            metavar="URL",
            help=(
                "sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB "
                f"(default: ${DATABASE_ENV} or {DATABASE_DEFAULT}; now {_display(default)})"
            ),
        )
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
    run, _ = COMMANDS[args.command]
    url: str = args.database
    try:
        return run(url)
    except (MalformedRequest, StorageError) as exc:
        message = _one_line(exc)
    except (sqlite3.OperationalError, psycopg.OperationalError, sa.exc.OperationalError) as exc:
        # A database that cannot be reached or opened, reported by its driver.
        message = f"cannot use {_display(url)}: {_one_line(exc)}"
    print(f"vledger {args.command}: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
