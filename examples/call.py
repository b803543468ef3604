"""One signed request from the shell, as the principal whose key ``vledger keys create`` made.

    .venv/bin/python examples/call.py KEY METHOD PATH [FIELD=TEXT | FIELD:=JSON ...] [--pick F]
    .venv/bin/python examples/call.py KEY whoami

This is ``vledger call`` (:mod:`vledger.commands.call`, where the arguments, the fields
and the exit codes are described), with the service taken from ``$BASE`` (default
http://127.0.0.1:8000) unless ``--base`` says otherwise. KEY names the two files of one
key: ``KEY.pem`` (the private key) and ``KEY.json`` (what ``vledger keys create``
printed). ``name=Amina`` is a string field, ``amount_minor:=120000`` raw JSON, ``id=@uuid``
a new random UUID; ``--pick data.0.id`` prints one field of the answer. A refusal prints
the problem's status, ``code`` and ``detail`` on stderr and exits 1; wrong arguments print
the usage and exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    from vledger.commands.call import BASE_DEFAULT, call, call_arguments
    from vledger.common import UsageError
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

BASE_ENV = "BASE"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="call.py", description="One signed request.")
    call_arguments(parser, os.environ.get(BASE_ENV) or BASE_DEFAULT)
    args = parser.parse_args(argv)  # wrong arguments: the usage, exit 2
    try:
        return call(args)
    except UsageError as wrong:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {wrong}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
