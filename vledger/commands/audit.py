"""The auditor's commands: ``vledger seal``, ``vledger audit export``, ``vledger verify``.

Each says what it did and what comes next; a long one shows its progress on stderr
(:func:`vledger.progress.shown`), standard output staying its result.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from ledger import open_ledger
from ledger.core.store import from_us
from vledger.common import (
    EXIT_BREAKS,
    EXIT_OK,
    UsageError,
    database_argument,
    read_database_argument,
)
from vledger.progress import shown

if TYPE_CHECKING:
    from reconciliation.seal import SealStatus

TRUSTED_KEY_HINT = "the service's public key from a channel you trust: GET /v1/service-key"


def seal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        default=None,
        metavar="FILE",
        help="the service's Ed25519 key (PKCS#8 PEM; default: $VLEDGER_SERVICE_KEY, else"
        " one kept beside the database, made on first use)",
    )


def seal(args: argparse.Namespace) -> int:
    from reconciliation.seal import seal_pending, seal_status
    from reconciliation.service_key import ServiceKeyError, load_service_key

    try:
        key = load_service_key(args.database, args.key)
    except ServiceKeyError as exc:
        raise UsageError(str(exc)) from exc
    with open_ledger(args.database) as led:
        before = seal_status(led)
        with shown("vledger seal", quiet=getattr(args, "quiet", False)) as progress:
            blocks = seal_pending(led, key, progress=progress)
        after = seal_status(led)
    for line in seal_report(before, after, blocks):
        print(line)
    return EXIT_OK


def _moment(at_us: int | None) -> str:
    return "-" if at_us is None else from_us(at_us).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def seal_report(before: SealStatus, after: SealStatus, blocks: int) -> list[str]:
    """What ``vledger seal`` did (from the seal status before and after it), then what
    to do next."""
    waiting = (
        f"; {_plural(after.unsealed, 'newer transfer')} still in flight: run vledger seal"
        " again to seal them"
        if after.unsealed
        else ""
    )
    if after.blocks == 0:
        if after.unsealed == 0:
            return ["nothing to seal: no transfers yet"]
        return [f"nothing sealed yet{waiting}"]
    extent = (
        f"the journal is sealed up to block {after.blocks:,} (transfers created until"
        f" {_moment(after.last_created_at_us)})"
    )
    if blocks:
        done = (
            f"sealed {_plural(blocks, 'new block')} ({before.blocks + 1:,}..{after.blocks:,},"
            f" transfers seq {before.last_seq + 1:,}..{after.last_seq:,}); {extent}{waiting}"
        )
    else:
        done = f"nothing new to seal: {extent}, sealed {_moment(after.sealed_at_us)}{waiting}"
    return [done, "next: vledger audit export --out DIR, for an auditor to verify offline"]


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
    read_database_argument(export)


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
    """Export sealed blocks, read from ``--read-database`` (a replica: the blocks it has
    replayed) when given, else from ``--database``."""
    from ledger.core.replica import check_read_url, open_read_ledger
    from reconciliation.export import NothingSealed, export

    read_url = getattr(args, "read_database", None)
    if read_url is not None:
        check_read_url(read_url, primary_url=args.database)
    try:
        with (
            open_read_ledger(read_url) if read_url else open_ledger(args.database) as led,
            shown("vledger audit export", quiet=getattr(args, "quiet", False)) as progress,
        ):
            done = export(led, args.out, from_=args.from_, to=args.to_, progress=progress)
    except NothingSealed as exc:
        raise UsageError(str(exc)) from exc
    if done.first_block is None:
        print(
            f"no sealed block is in that range: {done.out_dir} holds an empty export"
            " (without --from and --to, every sealed block is exported)"
        )
        return EXIT_OK
    print(
        f"exported blocks {done.first_block:,}..{done.last_block:,}"
        f" ({_plural(done.blocks, 'block')}, {_plural(done.transfers, 'transfer')},"
        f" tree size {done.tree_size:,}) to {done.out_dir}"
    )
    print(f"next: vledger verify {done.out_dir} --public-key FILE ({TRUSTED_KEY_HINT})")
    return EXIT_OK


def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder",
        metavar="DIR",
        help="a folder written by vledger audit export, or an audit pack (a pack run's"
        " folder or its pack/)",
    )
    parser.add_argument(
        "--public-key",
        default=None,
        metavar="FILE",
        help=f"{TRUSTED_KEY_HINT} (PEM); without it, the key inside the folder, which"
        " proves the files intact but not who made them",
    )


def verify(args: argparse.Namespace) -> int:
    from reconciliation.verify import check_folder

    with shown("vledger verify", quiet=getattr(args, "quiet", False)) as progress:
        found = check_folder(args.folder, args.public_key, progress=progress)
    for line in found.lines:
        print(line)
    return EXIT_OK if found.ok else EXIT_BREAKS
