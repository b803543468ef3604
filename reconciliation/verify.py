"""``vledger verify DIR [--public-key FILE]``: check an audit export or an audit pack
offline.

:func:`check_folder` tells the two apart (an export has ``manifest.json``; a pack, or the
run folder holding it in ``pack/``, has ``MANIFEST.sha256``) and checks either; without a
trusted key it checks against the key the folder carries, which proves the files are
intact but not who made them (the first lines say so). A pack is checked by
:func:`reconciliation.pack.verify_pack`: the manifest's signature, every file's SHA-256,
no file the manifest does not list. An export, by :func:`verify`, as follows.

Needs only the folder written by :mod:`reconciliation.export` and the service's public
key; touches no database. Every fault found is reported, each naming where it is (block,
log index, transfer id and seq, line of ``transfers.jsonl``) and what differs:

- ``changed_transfer``: a transfer's fields differ from what was sealed (with the
  field that disagrees with the balances recorded after it, when that can be told);
- ``changed_chain_value``: the ``chain`` column of a row was altered, its fields not;
- ``missing_transfer``: a log index of a block has no row (a dropped row);
- ``duplicate_transfer``, ``reordered_transfer`` (rows out of journal order, or two
  rows' contents swapped), ``extra_transfer`` (a row outside every exported block),
  ``wrong_block``, ``malformed`` (a line or file that cannot be read);
- ``checkpoint_unsigned`` (not signed by the trusted key: re-signed with another key),
  ``checkpoint_bad_signature`` (the trusted key's signature does not verify: the text
  was changed), ``checkpoint_malformed``, ``checkpoint_missing``,
  ``checkpoint_mismatch`` (size, root or chain head differ from what the transfers
  recompute to), ``block_mismatch`` (likewise, in a block whose row faults explain it);
- ``start_state`` (a block's stated starting frontier or chain does not join the
  previous checkpoint), ``block_record`` (``blocks.jsonl`` disagrees with the signed
  checkpoints), ``public_key`` (``public-key.pem`` is not the trusted key), ``manifest``,
  ``extra_file`` (a file that no export writes).

How rows are located: each row's stated ``chain`` value lets a fault be pinned to one
row (the next row's link still holds); the signed checkpoints decide what is true. Each
block is checked from its own trusted starting point (the previous checkpoint), so a
fault in one block does not spill into the next. A dropped last block cannot be seen
offline: compare the last checkpoint with one received as a webhook.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from reconciliation.checkpoint import (
    CHAIN_GENESIS,
    Checkpoint,
    CheckpointError,
    Frontier,
    chain_next,
    open_checkpoint,
    public_key_raw,
    read_checkpoint_unverified,
)
from reconciliation.errors import InputInvalid
from reconciliation.export import (
    BLOCKS_FILE,
    CHECKPOINT_NAME,
    CHECKPOINTS_DIR,
    EXPORT_FORMAT,
    MANIFEST_FILE,
    PUBLIC_KEY_FILE,
    TRANSFERS_FILE,
    checkpoint_file_name,
)
from reconciliation.pack import MANIFEST as PACK_MANIFEST
from reconciliation.pack import PACK_DIR, verify_pack
from reconciliation.pack import PUBLIC_KEY as PACK_PUBLIC_KEY
from reconciliation.progress import SILENT, Progress
from reconciliation.seal import FIELD_NAMES, canonical_bytes
from reconciliation.service_key import ServiceKeyError, load_public_key

__all__ = [
    "FolderCheck",
    "FolderKind",
    "Fault",
    "NotAuditFolder",
    "VerifyReport",
    "check_folder",
    "folder_kind",
    "verify",
]

LINE_LENGTH_MAX = 65_536
"""A ``transfers.jsonl`` line longer than this is malformed (ours are under 3 kB)."""
CHECKPOINT_FILE_SIZE_MAX = 8192
POSTED_MOVES = 0b1010  # PENDING | VOID_PENDING: neither moves posted balances
ROW_KEYS = frozenset({"index", "block", "chain", *FIELD_NAMES})
EXPORT_FILES = frozenset({TRANSFERS_FILE, BLOCKS_FILE, PUBLIC_KEY_FILE, MANIFEST_FILE})
"""The files an export writes at its top (besides ``checkpoints/NNNNNNNNNN.txt``)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: its ``kind`` (see the module docstring), a sentence, and where."""

    kind: str
    message: str
    block: int | None = None
    index: int | None = None
    transfer_id: str | None = None
    seq: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What :func:`verify` found; ``ok`` when there is no fault."""

    faults: list[Fault] = field(default_factory=list)
    blocks: int = 0
    transfers: int = 0
    tree_size: int = 0

    @property
    def ok(self) -> bool:
        return not self.faults

    def lines(self) -> list[str]:
        """The report for people: a summary line, then one line per fault."""
        verdict = "OK" if self.ok else f"FAILED, {len(self.faults)} faults"
        head = (
            f"{verdict}: {self.blocks} blocks, {self.transfers} transfers,"
            f" tree size {self.tree_size}"
        )
        return [head, *(str(f) for f in self.faults)]


@dataclass(slots=True)
class _Row:
    line: int
    index: int | None
    block: int | None
    transfer_id: str | None
    seq: int | None
    fields: dict[str, Any] | None
    leaf: bytes | None
    chain: bytes | None

    def where(self) -> str:
        return (
            f"transfer {self.transfer_id} (seq {self.seq}, log index {self.index},"
            f" line {self.line})"
        )


@dataclass(slots=True)
class _Signed:
    """A checkpoint file as read: its fields (if readable) and whether it is trusted."""

    checkpoint: Checkpoint | None
    trusted: bool


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a block's walk is: the block, the log index, the block's end (its tree
    size) and its checkpoint, if readable."""

    block: int
    index: int
    size: int
    checkpoint: Checkpoint | None


@dataclass(slots=True)
class _Walk:
    """A block's rows folded so far: the recomputed frontier and chain (``None`` once
    they cannot be), the chain value the rows state, and whether every row was there and
    readable."""

    frontier: Frontier | None
    chain: bytes | None
    stated: bytes | None
    complete: bool = True

    def fold(self, leaf: bytes) -> None:
        if self.frontier is not None:
            self.frontier.append(leaf)
        if self.chain is not None:
            self.chain = chain_next(self.chain, leaf)


class _Verifier:
    def __init__(self, folder: Path, key: Ed25519PublicKey, progress: Progress = SILENT) -> None:
        self.folder = folder
        self.key = key
        self.progress = progress
        self.report = VerifyReport()

    def fault(self, kind: str, message: str, row: _Row | None = None, **where: Any) -> None:
        if row is not None:
            where = {
                "index": row.index,
                "transfer_id": row.transfer_id,
                "seq": row.seq,
                "line": row.line,
                **where,
            }
        self.report.faults.append(Fault(kind, message, **where))

    # -- reading ----------------------------------------------------------------------

    def read_checkpoint(self, number: int) -> _Signed:
        path = self.folder / CHECKPOINTS_DIR / checkpoint_file_name(number)
        if not path.is_file():
            self.fault("checkpoint_missing", f"block {number}: no checkpoint file", block=number)
            return _Signed(None, False)
        data = path.read_bytes()[: CHECKPOINT_FILE_SIZE_MAX + 1]
        try:
            note = data.decode("utf-8")
        except UnicodeDecodeError:
            self.fault("checkpoint_malformed", f"block {number}: not UTF-8", block=number)
            return _Signed(None, False)
        try:
            return _Signed(open_checkpoint(note, self.key), True)
        except CheckpointError as exc:
            self.fault(f"checkpoint_{exc.kind}", f"block {number}: {exc}", block=number)
        try:
            return _Signed(read_checkpoint_unverified(note), False)
        except CheckpointError:
            return _Signed(None, False)

    def read_jsonl(self, name: str) -> list[tuple[int, dict[str, Any] | None, str]]:
        path = self.folder / name
        if not path.is_file():
            self.fault("malformed", f"{name} is missing")
            return []
        out: list[tuple[int, dict[str, Any] | None, str]] = []
        with path.open("rb") as source:
            for number, raw in enumerate(source, start=1):
                text = raw.decode("utf-8", errors="replace").rstrip("\n")
                if not text.strip():
                    continue
                value: Any = None
                if len(raw) <= LINE_LENGTH_MAX:
                    try:
                        value = json.loads(text)
                    except ValueError:
                        value = None
                out.append((number, value if isinstance(value, dict) else None, text))
        return out

    def read_rows(self) -> list[_Row]:
        rows: list[_Row] = []
        for line, value, text in self.read_jsonl(TRANSFERS_FILE):
            if value is None:
                row = _Row(
                    line,
                    _grep_int(text, "index"),
                    _grep_int(text, "block"),
                    _grep_str(text, "id"),
                    _grep_int(text, "seq"),
                    None,
                    None,
                    None,
                )
                self.fault("malformed", f"{row.where()}: line is not a JSON object", row)
                rows.append(row)
                continue
            row = _Row(
                line,
                _int_or_none(value.get("index")),
                _int_or_none(value.get("block")),
                value.get("id") if isinstance(value.get("id"), str) else None,
                _int_or_none(value.get("seq")),
                None,
                None,
                None,
            )
            problem = None
            keys = set(value)
            if keys != ROW_KEYS:
                missing, extra = sorted(ROW_KEYS - keys), sorted(keys - ROW_KEYS)
                problem = f"fields missing {missing}, unknown {extra}"
            elif row.index is None or row.index < 0 or row.block is None:
                problem = "index and block must be integers"
            else:
                try:
                    row.chain = _hash_hex(value["chain"])
                    fields = {name: value[name] for name in FIELD_NAMES}
                    row.leaf = canonical_bytes(fields)
                    row.fields = fields
                except ValueError as exc:
                    problem = str(exc)
            if problem is not None:
                self.fault("malformed", f"{row.where()}: {problem}", row)
            rows.append(row)
        return rows

    # -- checks -----------------------------------------------------------------------

    def check_order(self, rows: list[_Row]) -> dict[int, _Row]:
        """Report rows out of journal order and duplicates; rows by log index."""
        placed = [r for r in rows if r.index is not None]
        expected = sorted(placed, key=lambda r: (r.index, r.line))
        swapped: set[int] = set()
        for position, (found, wanted) in enumerate(zip(placed, expected, strict=True)):
            if found is wanted or position in swapped:
                continue
            other = placed.index(wanted)
            if placed[other] is wanted and expected[other] is found:
                swapped.update((position, other))
                self.fault(
                    "reordered_transfer",
                    f"{found.where()} and {wanted.where()} are swapped: log index"
                    f" {wanted.index} must come first",
                    found,
                )
            else:
                self.fault(
                    "reordered_transfer",
                    f"{found.where()} is out of order: line {found.line} should hold log"
                    f" index {wanted.index}",
                    found,
                )
        by_index: dict[int, _Row] = {}
        for row in expected:
            assert row.index is not None
            if row.index in by_index:
                first = by_index[row.index]
                self.fault(
                    "duplicate_transfer",
                    f"{row.where()}: log index {row.index} also on line {first.line}",
                    row,
                )
                continue
            by_index[row.index] = row
        return by_index

    def check_block(
        self,
        record: dict[str, Any],
        signed: _Signed,
        before: _Signed | None,
        carried: tuple[Frontier, bytes] | None,
        by_index: dict[int, _Row],
    ) -> tuple[Frontier, bytes] | None:
        """Check one block; the recomputed (frontier, chain) after it when it is clean."""
        number = int(record["number"])
        cp = signed.checkpoint
        start = self.start_state(number, record, before, carried)
        size_before = start[0].size if start else int(record["tree_size_before"])
        size = cp.tree_size if cp else int(record["tree_size"])
        if size <= size_before:
            self.fault(
                "block_record", f"block {number}: tree size {size} <= {size_before}", block=number
            )
            return None
        faults_before = len(self.report.faults)
        walk = _Walk(
            frontier=start[0].copy() if start else None,
            chain=start[1] if start else None,
            stated=start[1] if start else None,
        )
        k = size_before
        while k < size:
            k += self.walk_row(walk, _Place(number, k, size, cp), by_index)
        self.check_extra_rows(number, size, by_index)
        row_faults = len(self.report.faults) > faults_before
        if cp is not None:
            self.check_recomputed(number, cp, walk, clean=not row_faults and start is not None)
        if signed.trusted:  # an untrusted checkpoint has been reported already
            self.check_record(number, record, cp, size_before)
        if walk.frontier is None or walk.chain is None or not walk.complete or row_faults:
            return None
        return walk.frontier, walk.chain

    def walk_row(self, walk: _Walk, at: _Place, by_index: dict[int, _Row]) -> int:
        """Check the row at log index ``at.index`` of block ``at.block`` and fold it into
        ``walk``; how many rows it consumed."""
        number, k = at.block, at.index
        row = by_index.get(k)
        if row is None:
            walk.complete = False
            self.fault(
                "missing_transfer",
                f"block {number}: log index {k} is missing{_neighbours(by_index, k)}",
                block=number,
                index=k,
            )
            walk.stated, walk.chain = None, None
            return 1
        if row.block != number:
            self.fault(
                "wrong_block",
                f"{row.where()}: says block {row.block}, belongs to block {number}",
                row,
                block=number,
            )
        if row.leaf is None:
            walk.complete = False
            walk.stated, walk.chain = row.chain, None
            return 1
        step = 1
        if walk.stated is not None and row.chain is not None:
            link = chain_next(walk.stated, row.leaf)
            if link != row.chain:
                step, walk.stated = self.classify(
                    number, row, walk.stated, link, by_index, at.checkpoint, k, at.size
                )
            else:
                walk.stated = row.chain
        else:
            walk.stated = row.chain
        for j in range(k, k + step):
            leaf = by_index[j].leaf
            assert leaf is not None
            walk.fold(leaf)
        return step

    def check_extra_rows(self, number: int, size: int, by_index: dict[int, _Row]) -> None:
        for extra in (r for i, r in by_index.items() if i >= size and r.block == number):
            self.fault(
                "extra_transfer",
                f"{extra.where()}: block {number} ends before log index {extra.index}",
                extra,
                block=number,
            )

    def check_recomputed(self, number: int, cp: Checkpoint, walk: _Walk, *, clean: bool) -> None:
        """The checkpoint's root hash and chain head against what the rows recompute;
        ``clean`` when no fault was found in the block's rows (else those explain it)."""
        recomputed = (walk.frontier.root() if walk.frontier else None, walk.chain)
        if recomputed[0] == cp.root_hash and recomputed[1] == cp.chain_head:
            return
        if not clean or not walk.complete:
            self.fault(
                "block_mismatch",
                f"block {number}: root hash and chain head do not"
                " recompute, as the faults above explain",
                block=number,
            )
            return
        what = [
            f"{name} {_short(stated_value)} recomputes as {_short(value)}"
            for name, stated_value, value in (
                ("root hash", cp.root_hash, recomputed[0]),
                ("chain head", cp.chain_head, recomputed[1]),
            )
            if stated_value != value
        ]
        self.fault(
            "checkpoint_mismatch",
            f"block {number}: checkpoint {', '.join(what)} from the transfers",
            block=number,
        )

    def classify(
        self,
        number: int,
        row: _Row,
        stated: bytes,
        link: bytes,
        by_index: dict[int, _Row],
        cp: Checkpoint | None,
        k: int,
        size: int,
    ) -> tuple[int, bytes]:
        """Name what differs at a row whose chain link fails: (rows consumed, chain after)."""
        assert row.leaf is not None and row.chain is not None
        after = by_index.get(k + 1) if k + 1 < size else None
        if after is not None and after.leaf is not None and after.chain is not None:
            if chain_next(stated, after.leaf) == after.chain and (
                chain_next(after.chain, row.leaf) == row.chain
            ):
                self.fault(
                    "reordered_transfer",
                    f"{row.where()} and {after.where()}: their contents are swapped",
                    row,
                    block=number,
                )
                return 2, row.chain
            if chain_next(row.chain, after.leaf) == after.chain:
                self.changed(number, row, link)
                return 1, row.chain
            if chain_next(link, after.leaf) == after.chain:
                self.fault(
                    "changed_chain_value",
                    f"{row.where()}: its chain value was altered"
                    f" ({_short(row.chain)}, sealed {_short(link)}); its fields are as"
                    " sealed",
                    row,
                    block=number,
                )
                return 1, link
        elif after is None and cp is not None and k + 1 == size and link == cp.chain_head:
            self.fault(
                "changed_chain_value",
                f"{row.where()}: its chain value was altered; its fields are as sealed",
                row,
                block=number,
            )
            return 1, link
        self.changed(number, row, link)
        return 1, row.chain

    def changed(self, number: int, row: _Row, link: bytes) -> None:
        hint = self.suspect(row)
        self.fault(
            "changed_transfer",
            f"block {number}: {row.where()}: its fields differ from"
            f" what was sealed{hint} (hashes to {_short(link)}, sealed"
            f" {_short(row.chain)})",
            row,
            block=number,
        )

    def suspect(self, row: _Row) -> str:
        """Which field disagrees with the balances the ledger recorded, if one does."""
        fields = row.fields
        if fields is None or fields["flags"] & POSTED_MOVES:
            return ""
        previous = self.previous_balances(row)
        amount = fields["amount"]
        for side, column in (
            ("debit_account_id", "debit_account_debits_posted"),
            ("credit_account_id", "credit_account_credits_posted"),
        ):
            before = previous.get((fields[side], column.rsplit("_", 2)[-2]))
            if before is not None and fields[column] - before != amount:
                return (
                    f": amount {amount} disagrees with the recorded balances"
                    f" ({column} grew by {fields[column] - before})"
                )
        return ""

    def previous_balances(self, row: _Row) -> dict[tuple[str, str], int]:
        """Posted counters of the row's two accounts after the last earlier row."""
        assert row.fields is not None and row.index is not None
        wanted = {row.fields["debit_account_id"], row.fields["credit_account_id"]}
        found: dict[tuple[str, str], int] = {}
        for earlier in sorted(self.rows_by_index, reverse=True):
            if earlier >= row.index:
                continue
            f = self.rows_by_index[earlier].fields
            if f is None:
                continue
            for side in ("debit", "credit"):
                account = f[f"{side}_account_id"]
                if account in wanted:
                    for counter in ("debits", "credits"):
                        found.setdefault((account, counter), f[f"{side}_account_{counter}_posted"])
            if len(found) == 4:
                break
        return found

    def start_state(
        self,
        number: int,
        record: dict[str, Any],
        before: _Signed | None,
        carried: tuple[Frontier, bytes] | None,
    ) -> tuple[Frontier, bytes] | None:
        """The trusted (frontier, chain) the block starts from, or None (fault reported)."""
        try:
            frontier = Frontier(
                int(record["tree_size_before"]),
                [bytes.fromhex(h) for h in record["frontier_before"]],
            )
            chain = _hash_hex(record["chain_before"])
        except (ValueError, TypeError, KeyError) as exc:
            self.fault(
                "block_record", f"block {number}: unreadable start state: {exc}", block=number
            )
            return None
        if number == 1:
            if frontier.size == 0 and chain == CHAIN_GENESIS:
                return frontier, chain
            self.fault("start_state", "block 1 does not start from the empty journal", block=1)
            return None
        if (
            carried is not None
            and carried[0].hashes == frontier.hashes
            and (carried[0].size == frontier.size and carried[1] == chain)
        ):
            return frontier, chain
        cp = before.checkpoint if before else None
        start = (frontier.size, frontier.root(), chain)
        if before is not None and before.trusted and cp is not None:
            joins = (cp.tree_size, cp.root_hash, cp.chain_head) == start
            if joins:
                return frontier, chain
        self.fault(
            "start_state",
            f"block {number}: its stated start (tree size {frontier.size},"
            f" frontier, chain) does not join block {number - 1}'s signed checkpoint",
            block=number,
        )
        return None

    def check_record(
        self, number: int, record: dict[str, Any], cp: Checkpoint | None, before: int
    ) -> None:
        """``blocks.jsonl`` against the block's trusted checkpoint."""
        if cp is None:
            return
        stated = {
            "tree_size_before": before,
            "tree_size": cp.tree_size,
            "chain_head": cp.chain_head.hex(),
            "root_hash": _b64(cp.root_hash),
        }
        for name, value in stated.items():
            if record.get(name) != value:
                self.fault(
                    "block_record",
                    f"block {number}: blocks.jsonl says {name}"
                    f" {record.get(name)!r}, the checkpoint {value!r}",
                    block=number,
                )

    # -- the whole ----------------------------------------------------------------------

    def run(self) -> VerifyReport:
        self.progress.step("reading the export")
        self.check_public_key()
        self.check_extra_files()
        origin = self.check_manifest()
        records: list[dict[str, Any]] = []
        for line, value, _ in self.read_jsonl(BLOCKS_FILE):
            if value is None or not isinstance(value.get("number"), int):
                self.fault("malformed", f"{BLOCKS_FILE} line {line} is not a block record")
                continue
            records.append(value)
        rows = self.read_rows()
        self.report.transfers = len(rows)
        self.rows_by_index = self.check_order(rows)
        numbers = [int(r["number"]) for r in records]
        if numbers and numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            self.fault(
                "block_record", f"{BLOCKS_FILE}: block numbers are not consecutive: {numbers}"
            )
        self.check_stray_checkpoints(set(numbers))
        before: _Signed | None = None
        if numbers and numbers[0] > 1:
            before = self.read_checkpoint(numbers[0] - 1)
            if not before.trusted:
                self.fault(
                    "start_state",
                    f"the anchor checkpoint of block {numbers[0] - 1} is"
                    " not trusted: the export cannot be tied to the journal",
                    block=numbers[0] - 1,
                )
        carried: tuple[Frontier, bytes] | None = None
        last_size = 0
        self.progress.step("checking blocks")
        for done, record in enumerate(records, start=1):
            number = int(record["number"])
            signed = self.read_checkpoint(number)
            if signed.checkpoint is not None and origin and signed.checkpoint.origin != origin:
                self.fault(
                    "checkpoint_mismatch",
                    f"block {number}: origin"
                    f" {signed.checkpoint.origin!r}, the export's is {origin!r}",
                    block=number,
                )
            try:
                carried = self.check_block(record, signed, before, carried, self.rows_by_index)
            except (KeyError, TypeError, ValueError) as exc:
                self.fault(
                    "block_record", f"block {number}: unreadable record: {exc}", block=number
                )
                carried = None
            before = signed
            last_size = signed.checkpoint.tree_size if signed.checkpoint else last_size
            self.progress.advance(done, len(records))
        self.check_outside(records)
        self.report.blocks = len(records)
        self.report.tree_size = last_size
        return self.report

    def check_outside(self, records: list[dict[str, Any]]) -> None:
        if not records:
            for row in self.rows_by_index.values():
                self.fault("extra_transfer", f"{row.where()}: no block was exported", row)
            return
        low = _int_or_none(records[0].get("tree_size_before")) or 0
        numbers = {int(r["number"]) for r in records}
        for row in self.rows_by_index.values():
            assert row.index is not None
            if row.index < low or (row.block not in numbers and row.block is not None):
                self.fault("extra_transfer", f"{row.where()}: outside the exported blocks", row)

    def check_stray_checkpoints(self, numbers: set[int]) -> None:
        folder = self.folder / CHECKPOINTS_DIR
        if not folder.is_dir():
            return
        anchor = min(numbers) - 1 if numbers else 0
        for path in sorted(folder.glob("*.txt")):
            stem = path.stem
            if stem.isdigit() and int(stem) not in numbers and int(stem) != anchor:
                self.fault(
                    "block_record",
                    f"checkpoint of block {int(stem)} has no record in"
                    f" {BLOCKS_FILE} (a dropped block?)",
                    block=int(stem),
                )

    def check_extra_files(self) -> None:
        """Every file in the folder is one an export writes."""
        for path in sorted(self.folder.rglob("*")):
            if path.is_dir():
                continue
            relative = path.relative_to(self.folder)
            parts = relative.parts
            if len(parts) == 1 and parts[0] in EXPORT_FILES:
                continue
            if (
                len(parts) == 2
                and parts[0] == CHECKPOINTS_DIR
                and CHECKPOINT_NAME.fullmatch(parts[1])
            ):
                continue
            self.fault("extra_file", f"{relative.as_posix()}: no export writes this file")

    def check_public_key(self) -> None:
        path = self.folder / PUBLIC_KEY_FILE
        if not path.is_file():
            return
        try:
            shipped = public_key_raw(load_public_key(path))
        except ServiceKeyError as exc:
            self.fault("public_key", f"{PUBLIC_KEY_FILE}: {exc}")
            return
        if shipped != public_key_raw(self.key):
            self.fault("public_key", f"{PUBLIC_KEY_FILE} is not the trusted public key")

    def check_manifest(self) -> str | None:
        path = self.folder / MANIFEST_FILE
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.fault("manifest", f"{MANIFEST_FILE} unreadable: {exc}")
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
            self.fault("manifest", f"{MANIFEST_FILE} is not {EXPORT_FORMAT}")
            return None
        origin = manifest.get("origin")
        return origin if isinstance(origin, str) else None

    rows_by_index: dict[int, _Row]


def verify(
    folder: str | Path, public_key_path: str | Path, *, progress: Progress = SILENT
) -> VerifyReport:
    """Verify the export in ``folder`` against the public key in ``public_key_path``."""
    try:
        key = load_public_key(public_key_path)
    except (ServiceKeyError, OSError) as exc:
        return VerifyReport([Fault("public_key", f"trusted key unreadable: {exc}")])
    return _Verifier(Path(folder), key, progress).run()


# -- an export or a pack ---------------------------------------------------------------


class FolderKind(StrEnum):
    EXPORT = "audit export"
    PACK = "audit pack"


class NotAuditFolder(InputInvalid):
    """The folder holds neither an audit export nor an audit pack."""

    code = "not_an_audit_folder"


UNTRUSTED_KEY_NOTE = (
    "note: checked against {name}, the key inside the folder: this proves the files are"
    " intact, not who made them; to prove they come from the service, pass --public-key"
    " with its key from a channel you trust (GET /v1/service-key)"
)


@dataclass(frozen=True, slots=True)
class FolderCheck:
    """What :func:`check_folder` found: which kind of folder, where, whether it is clean,
    and the lines for people (a verdict first, then one line per fault)."""

    kind: FolderKind
    folder: Path
    ok: bool
    lines: list[str]


def folder_kind(folder: str | os.PathLike[str]) -> tuple[FolderKind, Path]:
    """Which kind of audit folder ``folder`` is, and the folder to check (a run folder's
    ``pack/``); :class:`NotAuditFolder` when it is neither."""
    root = Path(folder)
    if not root.is_dir():
        raise NotAuditFolder(f"{root} is not a folder")
    for candidate in (root, root / PACK_DIR):
        if (candidate / PACK_MANIFEST).is_file():
            return FolderKind.PACK, candidate
    if (root / MANIFEST_FILE).is_file():
        return FolderKind.EXPORT, root
    raise NotAuditFolder(
        f"{root} holds neither an audit export ({MANIFEST_FILE}, from `vledger audit"
        f" export`) nor an audit pack ({PACK_MANIFEST}, from `vledger reconcile pack`)"
    )


def check_folder(
    folder: str | os.PathLike[str],
    public_key_path: str | os.PathLike[str] | None = None,
    *,
    progress: Progress = SILENT,
) -> FolderCheck:
    """Check the export or pack in ``folder`` against the public key in
    ``public_key_path``, else against the key the folder carries (see the module
    docstring). Raises :class:`NotAuditFolder`, or ``ServiceKeyError`` for a key file
    that is not an Ed25519 public key (a private key included), before checking."""
    kind, root = folder_kind(folder)
    inside = root / (PACK_PUBLIC_KEY if kind is FolderKind.PACK else PUBLIC_KEY_FILE)
    if public_key_path is None and not inside.is_file():
        raise ServiceKeyError(
            f"{root} carries no {inside.name}: give the service's public key with --public-key"
        )
    key = load_public_key(inside if public_key_path is None else public_key_path)
    if kind is FolderKind.PACK:
        ok, lines = _check_pack(root, key, progress)
    else:
        report = _Verifier(root, key, progress).run()
        ok, lines = report.ok, report.lines()
    if public_key_path is None:
        lines.insert(1, UNTRUSTED_KEY_NOTE.format(name=inside.name))
    return FolderCheck(kind, root, ok, lines)


def _check_pack(root: Path, key: Ed25519PublicKey, progress: Progress) -> tuple[bool, list[str]]:
    progress.step("checking the pack's signature and SHA-256 digests")
    found = verify_pack(root, key)
    progress.advance(found.files, found.files)
    verdict = "OK" if found.ok else f"FAILED, {len(found.problems)} faults"
    head = (
        f"{verdict}: audit pack {root}: the manifest's signature, {found.files} files'"
        " SHA-256, no file unlisted"
    )
    return found.ok, [head, *found.problems]


# -- small helpers ---------------------------------------------------------------------


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _hash_hex(value: object) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("chain values are 64 lowercase hex digits")
    return bytes.fromhex(value)


def _grep_int(text: str, name: str) -> int | None:
    found = re.search(rf'"{name}"\s*:\s*(\d+)', text)
    return int(found.group(1)) if found else None


def _grep_str(text: str, name: str) -> str | None:
    found = re.search(rf'"{name}"\s*:\s*"([^"]*)"', text)
    return found.group(1) if found else None


def _short(value: bytes | None) -> str:
    return "nothing" if value is None else value.hex()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _neighbours(by_index: dict[int, _Row], k: int) -> str:
    before, after = by_index.get(k - 1), by_index.get(k + 1)
    parts = []
    if before is not None:
        parts.append(f"after transfer {before.transfer_id} (seq {before.seq})")
    if after is not None:
        parts.append(f"before transfer {after.transfer_id} (seq {after.seq})")
    return f" ({', '.join(parts)})" if parts else ""
