"""One signed request from the shell, as the principal whose key ``vledger keys create`` made.

    .venv/bin/python examples/call.py KEY METHOD PATH [FIELD=TEXT | FIELD:=JSON ...] [--pick F]
    .venv/bin/python examples/call.py KEY whoami

KEY names the two files of one key: ``KEY.pem`` (the private key, ``--out`` of ``vledger
keys create``) and ``KEY.json`` (what that command printed: key_id, principal_id, role).
The service is ``$BASE`` (default http://127.0.0.1:8000). ``api.client`` signs the request
(RFC 9421) and sets an Idempotency-Key on a POST. The body is built from the fields as
httpie does: ``name=Amina`` a string, ``amount_minor:=120000`` raw JSON (a number, true,
a list); ``id=@uuid`` a new random UUID (an operation's own permanent id).

Prints the JSON answer, or with ``--pick FIELD`` that one field (``--pick accounts.wallet``
for a nested one, ``--pick data.0.id`` in a list). ``whoami`` prints the key's principal
id (a storefront's or an agent's party id; ``whoami --pick key_id``: its key id) and sends
nothing. A refusal prints the problem's status, ``code`` and ``detail`` on stderr and
exits 1; wrong arguments print the usage and exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

try:
    import httpx

    from api.client import Client, ProblemError
except ModuleNotFoundError as missing:  # run by an interpreter without the project
    print(
        f"{missing}: run it with the project's interpreter, .venv/bin/python examples/...",
        file=sys.stderr,
    )
    sys.exit(2)

BASE_ENV = "BASE"
BASE_DEFAULT = "http://127.0.0.1:8000"
METHODS = ("GET", "POST", "whoami")
NEW_UUID = "@uuid"


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="call.py", description="One signed request.")
    parser.add_argument("key", metavar="KEY", help="KEY.pem and KEY.json of vledger keys create")
    parser.add_argument("method", metavar="METHOD", choices=METHODS, help="GET, POST or whoami")
    parser.add_argument("path", metavar="PATH", nargs="?", help="/v1/...")
    parser.add_argument("fields", metavar="FIELD", nargs="*", help="name=text or name:=json")
    parser.add_argument("--pick", metavar="FIELD", help="print only this field (a.b: nested)")
    return parser


def usage_error(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return 2


def key_of(parser: argparse.ArgumentParser, key: str) -> dict[str, str] | None:
    try:
        made: dict[str, str] = json.loads(Path(key + ".json").read_text())
    except (OSError, ValueError) as exc:
        usage_error(parser, f"{key}.json is not what vledger keys create printed ({exc})")
        return None
    if not Path(key + ".pem").is_file() or "key_id" not in made:
        usage_error(parser, f"{key}.pem and {key}.json must both be there")
        return None
    return made


def body_of(fields: list[str]) -> dict[str, Any]:
    """The JSON body of ``name=text`` and ``name:=json`` fields; ValueError if malformed."""
    body: dict[str, Any] = {}
    for field in fields:
        name, raw, value = field.partition(":=")
        if raw and "=" not in name:
            body[name] = json.loads(value)
            continue
        name, equals, value = field.partition("=")
        if not equals or not name:
            raise ValueError(f"{field!r} is not name=text or name:=json")
        body[name] = str(uuid.uuid4()) if value == NEW_UUID else value
    return body


def picked(answer: Any, field: str) -> Any:
    for name in field.split("."):
        answer = answer[int(name)] if isinstance(answer, list) else answer[name]
    return answer


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)  # wrong arguments: the usage, exit 2
    made = key_of(parser, args.key)
    if made is None:
        return 2
    if args.method == "whoami":
        if (args.pick or "principal_id") not in made:
            return usage_error(parser, f"{args.key}.json has no field {args.pick!r}")
        print(made[args.pick or "principal_id"])
        return 0
    if not args.path or not args.path.startswith("/"):
        return usage_error(parser, "PATH must start with /, e.g. /v1/orders")
    try:
        body = body_of(args.fields) if args.fields else None
    except ValueError as exc:
        return usage_error(parser, f"a FIELD is malformed: {exc}")
    if body is not None and args.method == "GET":
        return usage_error(parser, "a GET has no body")
    base = os.environ.get(BASE_ENV) or BASE_DEFAULT
    try:
        with Client.from_key_file(base, made["key_id"], args.key + ".pem") as vledger:
            answer = vledger.call(args.method, args.path, json_body=body)
    except ProblemError as refused:
        detail = refused.problem.get("detail", "")
        print(f"refused: {refused.status} {refused.code}: {detail}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"no answer from {base}: {exc}", file=sys.stderr)
        return 1
    if args.pick:
        try:
            answer = picked(answer, args.pick)
        except (KeyError, TypeError, IndexError, ValueError):
            return usage_error(parser, f"the answer has no field {args.pick!r}")
    print(answer if isinstance(answer, str) else json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
