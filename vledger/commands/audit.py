"""The auditor's commands: ``vledger seal``, ``vledger audit export``, ``vledger verify``."""

from __future__ import annotations

import argparse
from datetime import datetime

from ledger import open_ledger
from vledger.common import EXIT_BREAKS, EXIT_OK, UsageError, database_argument


def seal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=None,
        metavar="FILE",
        help="the service's Ed25519 key (PKCS#8 PEM; default: $VLEDGER_SERVICE_KEY, else"
        " one kept beside the database, made on first use)",
    )


def seal(args: argparse.Namespace) -> int:
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


def audit_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export", help="write sealed transfers, checkpoints and the public key to a folder"
    )
    export.add_argument("--out", required=True, metavar="DIR")
    for bound in ("from", "to"):
        export.add_argument(
            f"--{bound}",
            dest=f"{bound}_",
            type=block_or_time,
            default=None,
            metavar="BLOCK|TIME",
            help=f"a block number or an ISO 8601 time with its offset ({bound}"
            + (", inclusive)" if bound == "from" else ", exclusive for a time)"),
        )
    database_argument(export)


def block_or_time(text: str) -> int | datetime:
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a block number or a time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"a time needs its UTC offset: {text!r}")
    return moment


def audit(args: argparse.Namespace) -> int:
    from reconciliation.export import export

    done = export(args.database, args.out, from_=args.from_, to=args.to_)
    print(
        f"exported blocks {done.first_block}..{done.last_block} ({done.blocks} blocks,"
        f" {done.transfers} transfers, tree size {done.tree_size}) to {done.out_dir}"
    )
    return EXIT_OK


def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a folder written by vledger audit export")
    parser.add_argument(
        "--public-key",
        required=True,
        metavar="FILE",
        help="the service's public key, from a channel you trust (PEM)",
    )


def verify(args: argparse.Namespace) -> int:
    from reconciliation.verify import verify as verify_export

    report = verify_export(args.folder, args.public_key)
    for line in report.lines():
        print(line)
    return EXIT_OK if report.ok else EXIT_BREAKS
