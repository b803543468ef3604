"""``vledger ussd``: a terminal phone that dials the villager's USSD menu.

It plays the aggregator: a fresh ``sessionId``, then one form ``POST`` to the service's
callback (``/ussd/africastalking/{secret}``, :mod:`api.routes.ussd`) per input, with
every input so far joined by ``*`` as ``text``. A screen ending ``CON`` waits for the next
input; ``END`` (or end of input, Ctrl-D) hangs up. An input asked for a PIN is read
without echo. The served app must know the secret (``VLEDGER_USSD_SECRETS``) and accept
this machine's address (``VLEDGER_USSD_SOURCE_NETWORKS=127.0.0.1/32``)::

    export VLEDGER_USSD_SECRETS=a-secret-of-16-or-more VLEDGER_USSD_SOURCE_NETWORKS=127.0.0.1/32
    vledger serve &
    vledger ussd --phone +254700000001
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import uuid
from collections.abc import Callable

import httpx

from api.settings import USSD_SECRETS_ENV
from vledger.common import EXIT_OK, UsageError

BASE_DEFAULT = "http://127.0.0.1:8000"
SERVICE_CODE = "*384*55#"
"""The short code the terminal phone says it dialled (the service does not read it)."""
TIMEOUT_S = 30.0
"""How long one step may take (a PIN check is slow on purpose)."""
INPUTS_MAX = 100
"""The most inputs one terminal session sends before it hangs up."""

Reader = Callable[[str], str]


def ussd_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phone", required=True, help="the villager's number, E.164")
    parser.add_argument(
        "--base", default=BASE_DEFAULT, help=f"the service (default {BASE_DEFAULT})"
    )
    parser.add_argument(
        "--secret",
        default=None,
        help=f"the aggregator secret (default: the first of ${USSD_SECRETS_ENV})",
    )


def _secret(given: str | None) -> str:
    if given:
        return given
    configured = [s.strip() for s in os.environ.get(USSD_SECRETS_ENV, "").split(",") if s.strip()]
    if not configured:
        raise UsageError(f"give --secret or set ${USSD_SECRETS_ENV}")
    return configured[0]


def _step(client: httpx.Client, url: str, form: dict[str, str]) -> tuple[str, bool]:
    """One callback: the screen's text and whether the session ended."""
    try:
        answer = client.post(url, data=form)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the service: {exc}") from None
    body = answer.text
    if answer.status_code != 200 or not body.startswith(("CON ", "END ")):
        raise UsageError(f"the service answered {answer.status_code}, not a USSD screen")
    return body[4:], body.startswith("END ")


def _asks_pin(screen: str) -> bool:
    return "PIN" in screen.rsplit("\n", 1)[-1]


def dial(base: str, phone: str, secret: str, read: Reader, secret_read: Reader) -> int:
    """Dial once: show each screen, read each input, until ``END`` or end of input."""
    url = f"{base.rstrip('/')}/ussd/africastalking/{secret}"
    form = {
        "sessionId": f"vledger-{uuid.uuid4().hex}",
        "serviceCode": SERVICE_CODE,
        "phoneNumber": phone,
        "networkCode": "00000",
    }
    inputs: list[str] = []
    with httpx.Client(timeout=TIMEOUT_S) as client:
        while len(inputs) <= INPUTS_MAX:
            screen, ended = _step(client, url, {**form, "text": "*".join(inputs)})
            print(screen, flush=True)
            if ended:
                return EXIT_OK
            try:
                typed = (secret_read if _asks_pin(screen) else read)("> ")
            except EOFError:
                print(flush=True)
                return EXIT_OK
            inputs.append(typed.strip())
    return EXIT_OK


def ussd(args: argparse.Namespace) -> int:
    """Dial the USSD menu at ``--base`` as ``--phone``, interactively."""
    secret_read: Reader = getpass.getpass if sys.stdin.isatty() else input
    return dial(args.base, args.phone, _secret(args.secret), input, secret_read)
