"""What every ``vledger`` command shares: exit codes, the usage error, the ``--database``
option and the URL shown without its password."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass

from ledger.core.errors import EdgeError

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


def display(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
