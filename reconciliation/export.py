"""``vledger audit export``: the sealed journal as files an auditor verifies offline.

The folder holds (``vledger-audit-export/1``):

- ``transfers.jsonl``: one sealed transfer per line, in journal order: ``index`` (its
  position in the journal, from 0), ``block``, the canonical fields of
  :data:`reconciliation.seal.FIELDS` (ints as JSON numbers, UUIDs as lowercase strings,
  ``metadata`` as an object or null), and ``chain`` (hex chain value after it);
- ``blocks.jsonl``: one block per line: ``number``, ``tree_size_before``,
  ``tree_size``, ``first_seq``, ``last_seq``, ``chain_before`` and ``chain_head`` (hex),
  ``root_hash`` (base64, as in the checkpoint), ``frontier_before`` (the hex hashes of
  the tree's right border before the block, which the verifier checks against the
  previous checkpoint's root), ``sealed_at_us``;
- ``checkpoints/NNNNNNNNNN.txt``: each block's signed checkpoint note, byte for byte,
  and the checkpoint of the block before the first exported one (the anchor the export
  starts from) when the export does not start at block 1;
- ``public-key.pem``: the key that signed the last exported block (a careful auditor
  takes the key from a trusted channel instead);
- ``manifest.json``: what was exported (unsigned: a summary for people; the verifier
  trusts only the signed checkpoints and the key it is given).

Only whole blocks are exported, since a checkpoint covers whole blocks. Before anything
is sealed there is nothing to export: :class:`NothingSealed` (run ``vledger seal``
first); a range that holds no sealed block gives an empty export (``blocks == 0``).
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import Ledger, open_ledger
from ledger.core.store import to_us
from ledger.core.tx import Tx
from reconciliation.checkpoint import CHAIN_GENESIS, Frontier, chain_next
from reconciliation.errors import InputInvalid, JobRefused
from reconciliation.progress import SILENT, Progress
from reconciliation.seal import (
    BLOCKS_PAGE_MAX,
    CANONICAL_VERSION,
    FIELD_NAMES,
    BlockRow,
    block_transfers,
    canonical_bytes,
    first_block_created_from,
    journal_origin,
    last_block_created_before,
    last_block_number,
    read_blocks,
)
from reconciliation.service_key import public_key_pem

__all__ = ["EXPORT_FORMAT", "ExportSummary", "NothingSealed", "checkpoint_file_name", "export"]

EXPORT_FORMAT = "vledger-audit-export/1"
TRANSFERS_FILE = "transfers.jsonl"
BLOCKS_FILE = "blocks.jsonl"
CHECKPOINTS_DIR = "checkpoints"
PUBLIC_KEY_FILE = "public-key.pem"
MANIFEST_FILE = "manifest.json"


class NothingSealed(JobRefused):
    """No block is sealed yet: there is nothing an auditor could verify; nothing was
    written."""

    code = "nothing_sealed"


CHECKPOINT_NAME = re.compile(r"[0-9]{10}\.txt")
"""What :func:`checkpoint_file_name` gives."""


def checkpoint_file_name(number: int) -> str:
    """``checkpoints/`` file of block ``number`` (zero-padded, so names sort)."""
    return f"{number:010d}.txt"


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export` wrote. ``blocks == 0`` when nothing sealed is in the range."""

    out_dir: Path
    first_block: int | None
    last_block: int | None
    blocks: int
    transfers: int
    tree_size_before: int
    tree_size: int


Bound = int | datetime | None
"""A block number (inclusive), or a moment (blocks holding a transfer created on or
after ``from_``, and before ``to``), or no bound."""


def export(
    url_or_led: str | Ledger,
    out_dir: str | os.PathLike[str],
    *,
    from_: Bound = None,
    to: Bound = None,
    progress: Progress = SILENT,
) -> ExportSummary:
    """Write the sealed blocks in range, their transfers and checkpoints to ``out_dir``.

    ``out_dir`` is created; files already in it with our names are replaced. Raises
    :class:`NothingSealed` (before writing anything) when no block is sealed yet.
    ``progress`` hears ``"exporting blocks"`` and the blocks written of those in range.
    """
    if isinstance(url_or_led, Ledger):
        return _export(url_or_led, Path(out_dir), from_, to, progress)
    with open_ledger(url_or_led) as led:
        return _export(led, Path(out_dir), from_, to, progress)


def _block_range(tx: Tx, from_: Bound, to: Bound) -> tuple[int, int] | None:
    first, last = 1, last_block_number(tx)
    if isinstance(from_, datetime):
        first = first_block_created_from(tx, to_us(from_)) or last + 1
    elif isinstance(from_, int):
        first = max(from_, 1)
    if isinstance(to, datetime):
        last = min(last, last_block_created_before(tx, to_us(to)))
    elif isinstance(to, int):
        last = min(last, to)
    return (first, last) if first <= last else None


def _export(led: Ledger, out: Path, from_: Bound, to: Bound, progress: Progress) -> ExportSummary:
    _check_bounds(from_, to)
    if led.transact(last_block_number) == 0:
        raise NothingSealed("nothing is sealed yet: run `vledger seal` first, then export")
    found = led.transact(lambda tx: _block_range(tx, from_, to))
    out.mkdir(parents=True, exist_ok=True)
    (out / CHECKPOINTS_DIR).mkdir(exist_ok=True)
    _drop_old_checkpoints(out)
    origin = led.transact(journal_origin)
    if found is None:
        return _write_empty(out, origin)
    first, last = found
    if first > 1:
        [anchor] = led.transact(lambda tx: read_blocks(tx, first - 1, first - 1))
        _write_checkpoint(out, anchor)
        frontier = Frontier.from_text(anchor.tree_size, anchor.frontier)
        chain, prev_last_seq = bytes.fromhex(anchor.chain_head), anchor.last_seq
    else:
        frontier, chain, prev_last_seq = Frontier(), CHAIN_GENESIS, 0
    tree_size_before = frontier.size
    count = 0
    last_block: BlockRow | None = None
    number = first
    progress.step("exporting blocks")
    with (
        (out / TRANSFERS_FILE).open("w", encoding="utf-8") as transfers_out,
        (out / BLOCKS_FILE).open("w", encoding="utf-8") as blocks_out,
    ):
        while number <= last:
            page_end = min(last, number + BLOCKS_PAGE_MAX - 1)
            page = led.transact(partial(read_blocks, first=number, last=page_end))
            if not page:
                break
            for block in page:
                transfers = led.transact(
                    partial(block_transfers, after_seq=prev_last_seq, last_seq=block.last_seq)
                )
                _write_line(blocks_out, _block_record(block, frontier))
                for fields in transfers:
                    leaf = canonical_bytes(fields)
                    frontier.append(leaf)
                    chain = chain_next(chain, leaf)
                    row: dict[str, Any] = {"index": frontier.size - 1, "block": block.number}
                    row.update((name, fields[name]) for name in FIELD_NAMES)
                    row["chain"] = chain.hex()
                    _write_line(transfers_out, row)
                    count += 1
                _write_checkpoint(out, block)
                # Continue from the block's own frontier, as the verifier will.
                frontier = Frontier.from_text(block.tree_size, block.frontier)
                chain = bytes.fromhex(block.chain_head)
                prev_last_seq = block.last_seq
                last_block = block
                number = block.number + 1
                progress.advance(number - first, last - first + 1)
    assert last_block is not None
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(last_block.public_key))
    (out / PUBLIC_KEY_FILE).write_bytes(public_key_pem(key))
    manifest = _manifest(origin, last_block, first, count, tree_size_before, frontier.size)
    _write_json(out / MANIFEST_FILE, manifest)
    return ExportSummary(
        out, first, last_block.number, last_block.number - first + 1, count,
        tree_size_before, frontier.size,
    )  # fmt: skip


def _check_bounds(from_: Bound, to: Bound) -> None:
    for bound in (from_, to):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | datetime)):
            raise InputInvalid("from_ and to are block numbers or aware datetimes")


def _drop_old_checkpoints(out: Path) -> None:
    """An earlier export's checkpoint files (only names we write): a block outside this
    export's range would otherwise be left behind, and the verifier reports it."""
    for path in (out / CHECKPOINTS_DIR).glob("*.txt"):
        if path.is_file() and CHECKPOINT_NAME.fullmatch(path.name):
            path.unlink()


def _write_empty(out: Path, origin: str) -> ExportSummary:
    """An export of a range that holds no sealed block."""
    _write_json(out / MANIFEST_FILE, _manifest(origin, None, 0, 0, 0, 0))
    (out / TRANSFERS_FILE).write_text("")
    (out / BLOCKS_FILE).write_text("")
    return ExportSummary(out, None, None, 0, 0, 0, 0)


def _block_record(block: BlockRow, frontier_before: Frontier) -> dict[str, Any]:
    return {
        "number": block.number,
        "tree_size_before": block.tree_size_before,
        "tree_size": block.tree_size,
        "first_seq": block.first_seq,
        "last_seq": block.last_seq,
        "chain_before": block.chain_before,
        "chain_head": block.chain_head,
        "root_hash": base64.b64encode(bytes.fromhex(block.root_hash)).decode("ascii"),
        "frontier_before": [h.hex() for h in frontier_before.hashes],
        "sealed_at_us": block.sealed_at_us,
    }


def _manifest(
    origin: str, last: BlockRow | None, first: int, count: int, size_before: int, size: int
) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "canonical": CANONICAL_VERSION,
        "origin": origin,
        "key_name": last.key_name if last else None,
        "key_id": last.key_id if last else None,
        "first_block": first if last else None,
        "last_block": last.number if last else None,
        "tree_size_before": size_before,
        "tree_size": size,
        "transfers": count,
    }


def _write_checkpoint(out: Path, block: BlockRow) -> None:
    path = out / CHECKPOINTS_DIR / checkpoint_file_name(block.number)
    path.write_bytes(block.checkpoint.encode("utf-8"))


def _write_line(out: TextIO, value: dict[str, Any]) -> None:
    out.write(json.dumps(value, ensure_ascii=False) + "\n")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
