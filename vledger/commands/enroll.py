"""``vledger agents enroll``: a one-time enrollment code for a phone or a browser.

::

    vledger agents enroll --agent ID [--database URL]        an agent's station app
    vledger agents enroll --principal ID [--database URL]    an auditor's or operator's console
    vledger agents enroll --operator NAME [--database URL]   an operator's console at setup

Prints the code as text (``XXXX-XXXX-XXXX-XXXX-XXXX``), when it expires, and the same
code as a QR code drawn in the terminal; the person enrolling types it or scans it into
the app within 15 minutes, once (:mod:`ledger.flows.enrollment`). The command line is an
operator's tool on the database itself, so the code's ``issued_by`` is empty; the API's
``POST /v1/enrollments`` records the signed operator.

For operators the command line is a setup and recovery tool only
(:func:`ledger.flows.principals.operators.check_command_line_in`): ``--operator NAME``
creates the operator principal if fewer than two exist, and a code is issued only for an
operator holding no active key. Later operators and keys are proposals another operator
approves (``POST /v1/operators``).
"""

from __future__ import annotations

import argparse
import io
import uuid

import segno

from ledger import Ledger, open_ledger
from ledger.flows import enrollment, principals
from ledger.flows.principals import Role, operators
from vledger.common import EXIT_OK, UsageError, database_argument

__all__ = ["agents", "agents_arguments"]


def _principal_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def agents_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="agents_action", required=True, metavar="ACTION")
    enroll = actions.add_parser(
        "enroll", help="issue a one-time code that registers a phone's or browser's key"
    )
    who = enroll.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", type=_principal_id, metavar="ID", help="the agent's id")
    who.add_argument(
        "--principal",
        type=_principal_id,
        metavar="ID",
        help="an auditor's or operator's principal id (for the console)",
    )
    who.add_argument(
        "--operator",
        metavar="NAME",
        help="an operator by name, created if new (setup: the first two operators only)",
    )
    database_argument(enroll)


def qr_text(code: str) -> str:
    """The code as a QR code for a terminal (block characters, two rows a line)."""
    out = io.StringIO()
    segno.make(code, error="m").terminal(out=out, compact=True, border=2)
    return out.getvalue()


def _target(led: Ledger, args: argparse.Namespace) -> uuid.UUID:
    """The principal the code is for, checked against what the command line may do."""
    if args.operator is not None:
        return operators.command_line_operator(led, args.operator)
    principal_id: uuid.UUID = args.agent or args.principal
    role = principals.principal_role(led, principal_id)
    if args.agent is not None and role is not None and role is not Role.AGENT:
        raise UsageError(f"{principal_id} is a {role.value}, not an agent: use --principal")
    if role is Role.OPERATOR:
        led.transact(
            lambda tx: operators.check_command_line_in(
                tx, role=Role.OPERATOR, principal_id=principal_id
            )
        )
    return principal_id


def agents(args: argparse.Namespace) -> int:
    with open_ledger(args.database) as led:
        try:
            principal_id = _target(led, args)
        except principals.KeyRefused as refused:
            raise UsageError(refused.detail) from refused
        issued = enrollment.issue(led, principal_id=principal_id, issued_by=None)
    expires = issued.expires_at.isoformat().replace("+00:00", "Z")
    print(f"enrollment code for {issued.role.value} {principal_id}: {issued.code}")
    print(f"valid once, until {expires} (15 minutes)")
    print(qr_text(issued.code), end="")
    return EXIT_OK
