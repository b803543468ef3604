"""What every ``vledger`` command shares: exit codes, the usage error, the ``--database``
option and the URL shown without its password."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ledger.core.errors import EdgeError
from ledger.core.replica import READ_DATABASE_ENV

DATABASE_DEFAULT = "sqlite:///village.db"


DATABASE_ENV = "VLEDGER_DATABASE"


EXIT_OK = 0


EXIT_BREAKS = 1


EXIT_USAGE = 2


class UsageError(EdgeError):
    """Bad input a command found after parsing: one line on stderr, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose every usage error is one line on stderr and exit 2:
    ``vledger keys create: argument --role: invalid choice: 'king' ... (see vledger keys
    create --help)``. Subparsers are made of the same class (argparse's default)."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())  # argparse's messages may hold line breaks
        print(f"{self.prog}: {text} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


@dataclass(frozen=True, slots=True)
class Command:
    run: Callable[[argparse.Namespace], int]
    summary: str
    arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None


def quiet_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress on stderr. Absent from the namespace unless given (so a
    subcommand's default does not undo its parent's), hence read as
    ``getattr(args, "quiet", False)``."""
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show no progress on stderr (errors are still shown)",
    )


def subparsers_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of ``parser``'s subcommands, one level down."""
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(dict.fromkeys(action.choices.values()))
    return found


def database_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(DATABASE_ENV) or DATABASE_DEFAULT
    parser.add_argument(
        "--database",
        default=default,
        metavar="URL",
        help=(
            "sqlite:///FILE or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB "
            f"(default: ${DATABASE_ENV} or {DATABASE_DEFAULT}; now {display(default)})"
        ),
    )


def read_database_argument(parser: argparse.ArgumentParser) -> None:
    """``--read-database URL``: a streaming replica that reconciliation jobs, packs and
    auditors' reads use (read-only; money never does); default ``$VLEDGER_READ_DATABASE``,
    else none (everything reads ``--database``)."""
    default = os.environ.get(READ_DATABASE_ENV) or None
    parser.add_argument(
        "--read-database",
        default=default,
        metavar="URL",
        help=(
            "a PostgreSQL streaming replica of --database, opened read-only, for"
            " reconciliation jobs, packs and auditors' reads (default:"
            f" ${READ_DATABASE_ENV}, else none; now {display(default) if default else 'none'})"
        ),
    )


def display(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
