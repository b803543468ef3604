"""``vledger call``: one signed request to the API from the shell, as the principal whose
key ``vledger keys create`` made (the CLI calls the API; it opens no database)::

    vledger call KEY METHOD PATH [FIELD=TEXT | FIELD:=JSON ...] [--pick F] [--base URL]
                 [--idempotency-key K]
    vledger call KEY whoami [--pick F]

KEY names the two files of one key: ``KEY.pem`` (the private key, ``--out`` of ``vledger
keys create``) and ``KEY.json`` (what that command printed: key_id, principal_id, role).
:mod:`api.client` signs the request (RFC 9421) and sets an Idempotency-Key on a POST (a
new one, or ``--idempotency-key``: the same key and body again is answered as the first
time, without acting twice). The body is built from the fields as httpie does:
``name=Amina`` a string, ``amount_minor:=120000`` raw JSON (a number, true, a list);
``id=@uuid`` a new random UUID (an operation's own permanent id).

Prints the JSON answer, or with ``--pick FIELD`` that one field (``--pick accounts.wallet``
for a nested one, ``--pick data.0.id`` in a list). ``whoami`` prints the key's principal
id (``whoami --pick key_id``: its key id) and sends nothing.

Exit codes: 0 answered; 1 the API refused (its status, ``code`` and ``detail`` on stderr)
or did not answer; 2 wrong usage (a missing key file, a malformed field, a GET with a
body, no such field to pick), one line on stderr. ``examples/call.py`` is this command.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from api.client import Client, ProblemError
from vledger.common import EXIT_OK, UsageError

__all__ = ["BASE_DEFAULT", "EXIT_REFUSED", "call", "call_arguments"]

BASE_DEFAULT = "http://127.0.0.1:8000"
METHODS = ("GET", "POST", "whoami")
NEW_UUID = "@uuid"
"""A field's value that stands for a new random UUID."""
WHOAMI_FIELD = "principal_id"
EXIT_REFUSED = 1
"""The API refused (a problem answer) or did not answer."""


def call_arguments(parser: argparse.ArgumentParser, base_default: str = BASE_DEFAULT) -> None:
    """``vledger call``'s arguments (``examples/call.py`` adds the same ones)."""
    parser.add_argument("key", metavar="KEY", help="KEY.pem and KEY.json of vledger keys create")
    parser.add_argument("method", metavar="METHOD", choices=METHODS, help="GET, POST or whoami")
    parser.add_argument("path", metavar="PATH", nargs="?", help="/v1/...")
    parser.add_argument("fields", metavar="FIELD", nargs="*", help="name=text or name:=json")
    parser.add_argument("--pick", metavar="FIELD", help="print only this field (a.b: nested)")
    parser.add_argument(
        "--base", default=base_default, metavar="URL", help=f"the service (default {base_default})"
    )
    parser.add_argument(
        "--idempotency-key",
        metavar="K",
        help="a POST's Idempotency-Key (default: a new one); the same again replays",
    )


def key_of(key: str) -> dict[str, str]:
    """What ``vledger keys create`` printed for ``KEY``; UsageError unless both files are
    there."""
    try:
        made = json.loads(Path(key + ".json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{key}.json is not what vledger keys create printed ({exc})") from None
    if not isinstance(made, dict) or "key_id" not in made or not Path(key + ".pem").is_file():
        raise UsageError(f"{key}.pem and {key}.json must both be there")
    return {str(name): str(value) for name, value in made.items()}


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
    """``answer``'s field ``a.b.0``; UsageError if it has none."""
    try:
        for name in field.split("."):
            answer = answer[int(name)] if isinstance(answer, list) else answer[name]
    except (KeyError, TypeError, IndexError, ValueError):
        raise UsageError(f"the answer has no field {field!r}") from None
    return answer


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any] | None]:
    """The checked path and body of a GET or POST; UsageError if they cannot be sent."""
    if not args.base.startswith(("http://", "https://")):
        raise UsageError(f"--base must be an http:// or https:// URL, not {args.base!r}")
    if not args.path or not args.path.startswith("/"):
        raise UsageError("PATH must start with /, e.g. /v1/orders")
    try:
        body = body_of(args.fields) if args.fields else None
    except ValueError as exc:
        raise UsageError(f"a FIELD is malformed: {exc}") from None
    if body is not None and args.method == "GET":
        raise UsageError("a GET has no body")
    if args.idempotency_key is not None and args.method != "POST":
        raise UsageError("only a POST takes --idempotency-key")
    return args.path, body


def _show(answer: Any) -> None:
    print(answer if isinstance(answer, str) else json.dumps(answer, indent=2))


def call(args: argparse.Namespace) -> int:
    """Send one signed request (or answer ``whoami``); print the answer or the refusal."""
    made = key_of(args.key)
    if args.method == "whoami":
        field = args.pick or WHOAMI_FIELD
        if field not in made:
            raise UsageError(f"{args.key}.json has no field {field!r}")
        _show(made[field])
        return EXIT_OK
    path, body = _request(args)
    try:
        client = Client.from_key_file(args.base, made["key_id"], args.key + ".pem")
    except ValueError as exc:
        raise UsageError(f"{args.key}.pem is not a key of vledger keys create ({exc})") from None
    try:
        with client as vledger:
            answer = vledger.call(
                args.method, path, json_body=body, idempotency_key=args.idempotency_key
            )
    except ProblemError as refused:
        detail = refused.problem.get("detail", "")
        print(f"refused: {refused.status} {refused.code}: {detail}", file=sys.stderr)
        return EXIT_REFUSED
    except httpx.HTTPError as exc:
        print(f"no answer from {args.base}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    _show(picked(answer, args.pick) if args.pick else answer)
    return EXIT_OK
