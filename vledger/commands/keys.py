"""``vledger keys``: create and revoke API keys."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vledger.common import EXIT_OK, UsageError, database_argument


def keys_arguments(parser: argparse.ArgumentParser) -> None:
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
    database_argument(create)
    revoke = actions.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id", metavar="KEY_ID")
    database_argument(revoke)


def keys(args: argparse.Namespace) -> int:
    from api.keys import create_key, revoke

    if args.keys_action == "create":
        try:
            created = create_key(args.database, args.role, args.name, args.alg, args.out)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        print(json.dumps(created))
        _say_where(Path(args.out), created["key_id"], args.alg)
        return EXIT_OK
    if not revoke(args.database, args.key_id):
        raise UsageError(f"no active key {args.key_id!r}")
    print(json.dumps({"key_id": args.key_id, "state": "revoked"}))
    return EXIT_OK


def _say_where(out: Path, key_id: str, alg: str) -> None:
    """One line on stderr (stdout stays the JSON): where the private key went and what
    to do with it."""
    secret = "HMAC secret" if alg == "hmac-sha256" else "private key"
    print(
        f"vledger keys: the {secret} of key {key_id} is in {out.resolve()}"
        " (mode 0600, readable by you only); hand it to its holder over a safe channel"
        " and never commit it",
        file=sys.stderr,
    )
