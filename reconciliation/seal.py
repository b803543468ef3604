"""The sealed journal: committed transfers, in commit order, in signed hash-chained blocks.

Sealing runs off the write path: :func:`seal_pending` is called by a worker or the CLI,
never by ``create_transfers``. Each call appends blocks of at most ``block_size_max``
transfers. A block extends

- a **chain**: ``chain[i] = SHA-256(chain[i-1] || canonical bytes of transfer i)``, from
  32 zero bytes;
- an **RFC 6962 Merkle tree over the whole journal** (cumulative: the tree after block
  ``n`` holds every transfer sealed so far, as tlog expects), whose leaves are the
  canonical bytes;

and is signed as a C2SP tlog-checkpoint (:mod:`reconciliation.checkpoint`) with the
service key. The checkpoint goes to storefronts as a ``checkpoint.sealed`` event.

Canonical bytes of a transfer (``vledger-transfer/v1``), UTF-8: the line
``vledger-transfer/v1``, then one line ``name=value`` per field of :data:`FIELDS` in that
order, each line ending in ``\\n`` (0x0A). Values: integers in decimal ASCII, ``-`` for a
negative, no leading zeros; UUIDs lowercase and hyphenated (36 characters); the currency
as its three letters; ``metadata`` as a JSON object with keys sorted by code point, no
whitespace, non-ASCII characters as themselves and only ``"``, ``\\`` and U+0000..U+001F
escaped (``\\b \\f \\n \\r \\t``, else ``\\u00xx``); an absent value (NULL) as nothing
after the ``=``. No value can hold a newline, so the encoding is unambiguous.

Commit order, and never a transfer skipped or sealed twice:

- Blocks cover ``seq`` ranges: (previous block's ``last_seq``, ``last_seq``]. A trigger
  refuses a block that does not continue the last one, so no range is sealed twice.
- SQLite has one writer, and ``seq`` is the rowid given inside it: seq order is commit
  order, and a sealing transaction (which holds the write lock) sees every earlier one.
- PostgreSQL gives ``seq`` before commit, so a lower seq may become visible after a
  higher one. The sealer only seals up to a **fence**: in a transaction that holds the
  sealer lock (an advisory lock, which assigns no transaction id) and has written
  nothing, it reads ``fence_seq = max(seq)`` of the committed transfers, *then* takes
  its own transaction id ``fence_xid = pg_current_xact_id()``. Every transaction that
  drew a seq <= ``fence_seq`` had its id before drawing it (the core locks the accounts
  ``FOR UPDATE``, which assigns the id, before it inserts), hence an id below
  ``fence_xid``. Once ``pg_snapshot_xmin(pg_current_snapshot()) >= fence_xid``, all
  of them have ended: every transfer with seq <= ``fence_seq`` is committed and visible,
  or never will be. Only then are they sealed, in seq order. For two transfers that
  touch a common account, seq order is commit order (the account lock serialises
  them); transfers in seq order but committed the other way round touch disjoint
  accounts, so either order is a valid serial history of the ledger.
  ``integrity_check`` recounts each block's range, so a row that appeared in a sealed
  range later would be reported.

A call seals everything committed before it started, waiting up to ``settle_wait_s``
for transactions in flight to end (a transaction that stays open longer only delays
sealing to a later call).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import Ledger, StorageError
from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.flows import events
from ledger.limits import LIST_PAGE_SIZE_MAX as BLOCKS_PAGE_MAX
from reconciliation.checkpoint import (
    CHAIN_GENESIS,
    Checkpoint,
    CheckpointError,
    Frontier,
    chain_next,
    key_id,
    open_checkpoint,
    public_key_raw,
    sign_checkpoint,
)
from reconciliation.errors import InputInvalid
from reconciliation.progress import SILENT, Progress
from reconciliation.service_key import ServiceKey

__all__ = [
    "BLOCKS_PAGE_MAX",
    "BLOCK_SIZE_MAX",
    "CANONICAL_VERSION",
    "FIELDS",
    "SETTLE_WAIT_S_MAX",
    "BlockRow",
    "SealStatus",
    "SealedExtent",
    "block_transfers",
    "blocks_page",
    "blocks_created_in",
    "canonical_bytes",
    "first_block_created_from",
    "integrity_check",
    "journal_origin",
    "last_block_created_before",
    "last_block_number",
    "read_blocks",
    "seal_pending",
    "seal_status",
    "seal_status_in",
    "sealed_extent",
    "transfer_fields",
]

T = TypeVar("T")

CANONICAL_VERSION = "vledger-transfer/v1"

BLOCK_SIZE_MAX = 10_000
"""The default and the upper bound of transfers per block."""
SETTLE_WAIT_S_MAX = 5.0
"""How long one call waits for transactions in flight at its fence (PostgreSQL)."""
SETTLE_POLL_S = 0.01
SEAL_LOCK_KEY = 0x766C5F7365616C  # "vl_seal": one sealer at a time per database
BLOCKS_PER_CALL_MAX = 1_000_000
"""A call stops after this many blocks (a bound on one run, not on the journal)."""

# The kinds of field values in the canonical form.
INT, INT_OR_NULL, UUID, UUID_OR_NULL, CURRENCY, METADATA = (
    "int",
    "int?",
    "uuid",
    "uuid?",
    "currency",
    "metadata",
)

FIELDS: tuple[tuple[str, str], ...] = (
    ("seq", INT),
    ("id", UUID),
    ("debit_account_id", UUID),
    ("credit_account_id", UUID),
    ("amount", INT),
    ("amount_requested", INT_OR_NULL),
    ("currency", CURRENCY),
    ("code", INT),
    ("flags", INT),
    ("pending_id", UUID_OR_NULL),
    ("timeout_s", INT),
    ("expires_at_us", INT_OR_NULL),
    ("reverses_id", UUID_OR_NULL),
    ("metadata", METADATA),
    ("created_at_us", INT),
    ("debit_account_debits_posted", INT),
    ("debit_account_credits_posted", INT),
    ("credit_account_debits_posted", INT),
    ("credit_account_credits_posted", INT),
)
"""The canonical fields, in canonical order: every column of ``transfers``."""

FIELD_NAMES = tuple(name for name, _ in FIELDS)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SELECT_TRANSFERS = "SELECT " + ", ".join(FIELD_NAMES) + " FROM journal_transfers"
"""Every transfer's canonical fields, read from the core's published view (the journal,
holds and voids included)."""

Fields = dict[str, Any]
"""A transfer's canonical fields: ints, UUID strings, the currency, a metadata dict, None."""


# -- canonical form -------------------------------------------------------------------


def _value(name: str, kind: str, value: object) -> str:
    """One field's canonical text; :class:`InputInvalid` naming the field if it is malformed."""
    if value is None:
        if kind in (INT_OR_NULL, UUID_OR_NULL, METADATA):
            return ""
        raise InputInvalid(f"{name} must not be null")
    if kind in (INT, INT_OR_NULL):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputInvalid(f"{name} must be an integer, not {type(value).__name__}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise InputInvalid(f"{name} is out of the 64-bit range")
        return str(value)
    if kind in (UUID, UUID_OR_NULL):
        if not isinstance(value, str) or len(value) != 36:
            raise InputInvalid(f"{name} must be a lowercase hyphenated UUID")
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            raise InputInvalid(f"{name} must be a lowercase hyphenated UUID") from None
        if canonical != value:
            raise InputInvalid(f"{name} must be a lowercase hyphenated UUID")
        return value
    if kind == CURRENCY:
        if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isupper()):
            raise InputInvalid(f"{name} must be three capital letters")
        return value
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InputInvalid(f"{name} must be an object of strings, or null")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_bytes(fields: Mapping[str, object]) -> bytes:
    """The canonical bytes of a transfer (see the module docstring).

    ``fields`` holds exactly the names of :data:`FIELDS`; UUIDs as strings. Raises
    :class:`~reconciliation.errors.InputInvalid` (a ``ValueError``) naming the first field
    that is missing, extra or malformed.
    """
    extra = set(fields) - set(FIELD_NAMES)
    if extra:
        raise InputInvalid(f"unknown fields: {', '.join(sorted(extra))}")
    lines = [CANONICAL_VERSION]
    for name, kind in FIELDS:
        if name not in fields:
            raise InputInvalid(f"{name} is missing")
        lines.append(f"{name}={_value(name, kind, fields[name])}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def transfer_fields(row: Sequence[Any]) -> Fields:
    """A row of :data:`SELECT_TRANSFERS` as canonical fields."""
    fields: Fields = {}
    for (name, kind), stored in zip(FIELDS, row, strict=True):
        value = stored
        if stored is not None and kind in (UUID, UUID_OR_NULL):
            value = str(stored if isinstance(stored, uuid.UUID) else uuid.UUID(bytes=stored))
        elif stored is not None and kind == METADATA:
            value = json.loads(stored)
        fields[name] = value
    return fields


# -- sealing --------------------------------------------------------------------------


class _Round(StrEnum):
    SEALED = "sealed"  # one block sealed
    FENCED = "fenced"  # nothing sealable; a new fence was set (PostgreSQL)
    WAITING = "waiting"  # the fence has transactions in flight (PostgreSQL)
    IDLE = "idle"  # nothing to seal


@dataclass(frozen=True, slots=True)
class _State:
    origin: str
    sealed_seq: int
    fence_seq: int | None
    fence_xid: int | None


def _state(tx: Tx) -> _State:
    row = tx.one("SELECT origin, sealed_seq, fence_seq, fence_xid FROM seal_state WHERE id = 1")
    if row is None:
        raise StorageError("seal_state has no row: is the database migrated to 0007?")
    return _State(row[0], row[1], row[2], row[3])


def _check_block_size(block_size_max: int) -> None:
    if not isinstance(block_size_max, int) or isinstance(block_size_max, bool):
        raise InputInvalid("block_size_max must be an int")
    if not 1 <= block_size_max <= BLOCK_SIZE_MAX:
        raise InputInvalid(
            f"block_size_max must be within 1..{BLOCK_SIZE_MAX}, not {block_size_max}"
        )


def seal_pending(
    led: Ledger,
    key: ServiceKey,
    *,
    block_size_max: int = BLOCK_SIZE_MAX,
    settle_wait_s: float = SETTLE_WAIT_S_MAX,
    progress: Progress = SILENT,
) -> int:
    """Seal every transfer committed before this call into new blocks; how many blocks.

    Safe to run from several processes at once (they take turns on a lock). On
    PostgreSQL it waits up to ``settle_wait_s`` for transactions in flight to end.
    ``progress`` hears ``"sealing transfers"`` and the transfers sealed so far (of how
    many, on SQLite, where the target is known at the start).
    """
    _check_block_size(block_size_max)
    if not 0 <= settle_wait_s <= 60:
        raise InputInvalid("settle_wait_s must be within 0..60")
    postgres = led.dialect == "postgresql"
    target_seq: int | None = None
    total: int | None = None
    if not postgres:
        target_seq, total = led.transact(_target)
    tally = _Tally()
    seal = _round_function(key, block_size_max, target_seq, tally)
    blocks = fences = transfers = 0
    progress.step("sealing transfers")
    deadline = time.monotonic() + settle_wait_s
    while blocks < BLOCKS_PER_CALL_MAX:
        outcome = led.transact(seal)
        if outcome is _Round.SEALED:
            blocks += 1
            transfers += tally.rows
            progress.advance(transfers, total)
        elif outcome is _Round.FENCED:
            fences += 1
            if fences == 2:  # the second fence is left for the next call
                break
            deadline = time.monotonic() + settle_wait_s
        elif outcome is _Round.WAITING:
            if time.monotonic() >= deadline:
                break
            time.sleep(SETTLE_POLL_S)
        else:
            break
    return blocks


@dataclass(slots=True)
class _Tally:
    """The rows the last sealed round put in its block (set, not added: a round that
    the ledger retries runs again from the start)."""

    rows: int = 0


def _target(tx: Tx) -> tuple[int, int]:
    """SQLite: the last seq to seal up to and how many transfers are still unsealed."""
    top = _max_seq(tx)
    row = tx.one(
        "SELECT count(*) FROM journal_transfers WHERE seq > :after AND seq <= :top",
        {"after": _state(tx).sealed_seq, "top": top},
    )
    return top, int(row[0]) if row else 0


def _max_seq(tx: Tx) -> int:
    row = tx.one("SELECT COALESCE(max(seq), 0) FROM journal_transfers")
    return int(row[0]) if row else 0


def _round_function(
    key: ServiceKey, block_size_max: int, target_seq: int | None, tally: _Tally
) -> Callable[[Tx], _Round]:
    def seal_round(tx: Tx) -> _Round:
        postgres = tx.dialect == "postgresql"
        if postgres:
            tx.execute("SELECT pg_advisory_xact_lock(:key)", {"key": SEAL_LOCK_KEY})
        state = _state(tx)
        if postgres:
            if state.fence_seq is None or state.fence_xid is None:
                limit = state.sealed_seq
            else:
                horizon = tx.one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                if horizon is None or int(horizon[0]) < state.fence_xid:
                    return _Round.WAITING
                limit = max(state.fence_seq, state.sealed_seq)
        else:
            limit = target_seq if target_seq is not None else _max_seq(tx)
        rows = tx.execute(
            f"{SELECT_TRANSFERS} WHERE seq > :after AND seq <= :limit ORDER BY seq LIMIT :n",
            {"after": state.sealed_seq, "limit": limit, "n": block_size_max},
        )
        if rows:
            _seal_block(tx, key, state.origin, [transfer_fields(r) for r in rows])
            tally.rows = len(rows)
            sealed_to = rows[-1][0] if len(rows) == block_size_max else limit
            _advance(tx, sealed_to)
            return _Round.SEALED
        if not postgres:
            return _Round.IDLE
        top = _max_seq(tx)
        if top <= limit:
            if limit > state.sealed_seq:
                _advance(tx, limit)
            return _Round.IDLE
        # Nothing written yet in this transaction, so the id it takes now is newer than
        # that of every transaction which drew a seq <= top (see the module docstring).
        xid = tx.one("SELECT pg_current_xact_id()::text::bigint")
        assert xid is not None
        tx.execute(
            "UPDATE seal_state SET sealed_seq = :sealed, fence_seq = :top, fence_xid = :xid,"
            " updated_at_us = :now WHERE id = 1",
            {"sealed": limit, "top": top, "xid": int(xid[0]), "now": tx.now_us},
        )
        return _Round.FENCED

    return seal_round


def _advance(tx: Tx, sealed_seq: int) -> None:
    tx.execute(
        "UPDATE seal_state SET sealed_seq = :sealed, updated_at_us = :now WHERE id = 1",
        {"sealed": sealed_seq, "now": tx.now_us},
    )


def _key_ref(tx: Tx, name: str, key: ServiceKey) -> int:
    """The ``seal_keys`` row of this key under this name (recorded on first use)."""
    public = _b64(public_key_raw(key.public_key))
    params = {"name": name, "public_key": public}
    find = "SELECT id FROM seal_keys WHERE name = :name AND public_key = :public_key"
    found = tx.one(find, params)
    if found is None:
        tx.execute(
            "INSERT INTO seal_keys (name, key_id, public_key, created_at_us)"
            " VALUES (:name, :key_id, :public_key, :now)",
            {**params, "key_id": key_id(name, key.public_key).hex(), "now": tx.now_us},
        )
        found = tx.one(find, params)
    assert found is not None
    return int(found[0])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _seal_block(tx: Tx, key: ServiceKey, origin: str, transfers: list[Fields]) -> int:
    last = tx.one(
        "SELECT number, tree_size, chain_head, frontier FROM seal_blocks"
        " ORDER BY number DESC LIMIT 1"
    )
    if last is None:
        number, frontier, chain = 1, Frontier(), CHAIN_GENESIS
    else:
        number = int(last[0]) + 1
        frontier = Frontier.from_text(int(last[1]), last[3])
        chain = bytes.fromhex(last[2])
    chain_before, size_before = chain, frontier.size
    for fields in transfers:
        leaf = canonical_bytes(fields)
        frontier.append(leaf)
        chain = chain_next(chain, leaf)
    checkpoint = Checkpoint(origin, frontier.size, frontier.root(), chain)
    note = sign_checkpoint(checkpoint, key.private_key)
    tx.execute(
        "INSERT INTO seal_blocks (number, tree_size_before, tree_size, first_seq, last_seq,"
        " chain_before, chain_head, root_hash, frontier, checkpoint, key_ref,"
        " first_created_at_us, last_created_at_us, sealed_at_us) VALUES (:number, :before,"
        " :size, :first_seq, :last_seq, :chain_before, :chain_head, :root, :frontier,"
        " :checkpoint, :key_ref, :first_created, :last_created, :now)",
        {
            "number": number,
            "before": size_before,
            "size": frontier.size,
            "first_seq": transfers[0]["seq"],
            "last_seq": transfers[-1]["seq"],
            "chain_before": chain_before.hex(),
            "chain_head": chain.hex(),
            "root": checkpoint.root_hash.hex(),
            "frontier": frontier.to_text(),
            "checkpoint": note,
            "key_ref": _key_ref(tx, origin, key),
            "first_created": min(f["created_at_us"] for f in transfers),
            "last_created": max(f["created_at_us"] for f in transfers),
            "now": tx.now_us,
        },
    )
    events.emit(
        tx,
        events.CHECKPOINT_SEALED,
        {
            "block": number,
            "origin": origin,
            "tree_size": frontier.size,
            "root_hash": _b64(checkpoint.root_hash),
            "checkpoint": note,
        },
    )
    return number


# -- integrity ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockRow:
    """A ``seal_blocks`` row with its key's public half (base64 raw) and name."""

    number: int
    tree_size_before: int
    tree_size: int
    first_seq: int
    last_seq: int
    chain_before: str
    chain_head: str
    root_hash: str
    frontier: str
    checkpoint: str
    key_name: str
    key_id: str
    public_key: str
    first_created_at_us: int
    last_created_at_us: int
    sealed_at_us: int


BLOCK_COLUMNS = (
    "b.number, b.tree_size_before, b.tree_size, b.first_seq, b.last_seq, b.chain_before,"
    " b.chain_head, b.root_hash, b.frontier, b.checkpoint, k.name, k.key_id, k.public_key,"
    " b.first_created_at_us, b.last_created_at_us, b.sealed_at_us"
)


def read_blocks(tx: Tx, first: int, last: int) -> list[BlockRow]:
    """Blocks ``first`` .. ``last`` (inclusive), at most :data:`BLOCKS_PAGE_MAX`."""
    rows = tx.execute(
        f"SELECT {BLOCK_COLUMNS} FROM seal_blocks b JOIN seal_keys k ON k.id = b.key_ref"
        " WHERE b.number >= :first AND b.number <= :last ORDER BY b.number LIMIT :n",
        {"first": first, "last": last, "n": BLOCKS_PAGE_MAX},
    )
    return [BlockRow(*row) for row in rows]


def blocks_created_in(tx: Tx, start_us: int, end_us: int) -> list[BlockRow]:
    """The blocks holding a transfer created in ``[start_us, end_us)``, by number."""
    rows = tx.execute(
        f"SELECT {BLOCK_COLUMNS} FROM seal_blocks b JOIN seal_keys k ON k.id = b.key_ref"
        " WHERE b.last_created_at_us >= :start AND b.first_created_at_us < :end"
        " ORDER BY b.number",
        {"start": start_us, "end": end_us},
    )
    return [BlockRow(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class SealedExtent:
    """How far the blocks reach: how many there are and the last seq they seal (0 when
    there is none)."""

    blocks: int
    last_seq: int


def sealed_extent(tx: Tx) -> SealedExtent:
    """The number of blocks and the last seq the last of them seals."""
    row = tx.one("SELECT COUNT(*), COALESCE(MAX(last_seq), 0) FROM seal_blocks")
    return SealedExtent(int(row[0]), int(row[1])) if row else SealedExtent(0, 0)


def last_block_number(tx: Tx) -> int:
    """The number of the last block; 0 when none is sealed."""
    row = tx.one("SELECT COALESCE(max(number), 0) FROM seal_blocks")
    return int(row[0]) if row else 0


def first_block_created_from(tx: Tx, at_us: int) -> int:
    """The first block holding a transfer created at or after ``at_us``; 0 when none."""
    row = tx.one(
        "SELECT COALESCE(min(number), 0) FROM seal_blocks WHERE last_created_at_us >= :at",
        {"at": at_us},
    )
    return int(row[0]) if row and row[0] else 0


def last_block_created_before(tx: Tx, at_us: int) -> int:
    """The last block holding a transfer created before ``at_us``; 0 when none."""
    row = tx.one(
        "SELECT COALESCE(max(number), 0) FROM seal_blocks WHERE first_created_at_us < :at",
        {"at": at_us},
    )
    return int(row[0]) if row else 0


def journal_origin(tx: Tx) -> str:
    """The origin line the checkpoints state; empty when the seal has no state row."""
    row = tx.one("SELECT origin FROM seal_state WHERE id = 1")
    return str(row[0]) if row else ""


@dataclass(frozen=True, slots=True)
class SealStatus:
    """How far the sealed journal reaches, as ``vledger seal`` tells it."""

    blocks: int
    """The last block's number; 0 when nothing is sealed."""
    last_seq: int
    """The last seq the blocks seal; 0 when none."""
    last_created_at_us: int | None
    """When the newest sealed transfer was created (UTC microseconds); None when none."""
    sealed_at_us: int | None
    """When the last block was sealed (UTC microseconds); None when none."""
    unsealed: int
    """Committed transfers past the last block (sealing lags by design)."""


def seal_status_in(tx: Tx) -> SealStatus:
    """The sealed journal's extent and how many committed transfers lie past it."""
    row = tx.one(
        "SELECT number, last_seq, last_created_at_us, sealed_at_us FROM seal_blocks"
        " ORDER BY number DESC LIMIT 1"
    )
    blocks, last_seq = (int(row[0]), int(row[1])) if row else (0, 0)
    after = tx.one("SELECT count(*) FROM journal_transfers WHERE seq > :seq", {"seq": last_seq})
    return SealStatus(
        blocks,
        last_seq,
        int(row[2]) if row else None,
        int(row[3]) if row else None,
        int(after[0]) if after else 0,
    )


seal_status = transactional(seal_status_in)
""":func:`seal_status_in` in a transaction of its own."""

blocks_page = transactional(read_blocks)
""":func:`read_blocks` in a transaction of its own: what an edge calls."""


def block_transfers(tx: Tx, after_seq: int, last_seq: int) -> list[Fields]:
    """The transfers of a block's seq range, in seq order."""
    rows = tx.execute(
        f"{SELECT_TRANSFERS} WHERE seq > :after AND seq <= :last ORDER BY seq",
        {"after": after_seq, "last": last_seq},
    )
    return [transfer_fields(r) for r in rows]


def integrity_check(led: Ledger) -> list[str]:
    """Recompute the sealed journal from the database; one line per problem found.

    Checks, block by block: each continues the last (number, tree size, chain, seq
    range); its seq range holds exactly its transfers (a row that appeared in a sealed
    range, or vanished from it, is reported); chain head, Merkle root and frontier
    recompute; the checkpoint is signed by the recorded key and states the same origin,
    size, root and chain head; the key's ID is right. Then that the seal head does not
    claim transfers past the last block. Unsealed transfers are not a problem (sealing
    lags by design).
    """
    problems: list[str] = []
    state = led.transact(_state)
    frontier, chain, prev_last_seq, expected_number = Frontier(), CHAIN_GENESIS, 0, 1
    while True:
        last_number = expected_number + BLOCKS_PAGE_MAX - 1
        page = led.transact(_reader(read_blocks, expected_number, last_number))
        if not page:
            break
        for block in page:
            if block.number != expected_number:
                problems.append(f"block {expected_number} is missing (found {block.number})")
                return problems
            transfers = led.transact(_reader(block_transfers, prev_last_seq, block.last_seq))
            problems.extend(_check_block(block, state.origin, frontier, chain, transfers))
            for fields in transfers:
                leaf = canonical_bytes(fields)
                frontier.append(leaf)
                chain = chain_next(chain, leaf)
            # Carry on from what the block states, so one bad block is reported alone.
            try:
                frontier = Frontier.from_text(block.tree_size, block.frontier)
                chain = bytes.fromhex(block.chain_head)
            except ValueError as exc:
                problems.append(f"block {block.number}: stored frontier or chain unreadable: {exc}")
                return problems
            prev_last_seq = block.last_seq
            expected_number += 1
    if state.sealed_seq < prev_last_seq:
        problems.append(
            f"seal head says seq <= {state.sealed_seq} is sealed, but blocks reach {prev_last_seq}"
        )
    late = led.transact(
        lambda tx: tx.one(
            "SELECT count(*) FROM journal_transfers WHERE seq > :a AND seq <= :b",
            {"a": prev_last_seq, "b": state.sealed_seq},
        )
    )
    if late is not None and late[0]:
        problems.append(
            f"{late[0]} transfers with seq in ({prev_last_seq}, {state.sealed_seq}] are"
            " counted as sealed by the seal head but are in no block"
        )
    return problems


def _reader(read: Callable[[Tx, int, int], T], a: int, b: int) -> Callable[[Tx], T]:
    def run(tx: Tx) -> T:
        return read(tx, a, b)

    return run


def _check_block(
    block: BlockRow, origin: str, frontier: Frontier, chain: bytes, transfers: list[Fields]
) -> list[str]:
    where = f"block {block.number}"
    problems = _check_continuity(block, frontier, chain, transfers)
    problems += _check_recomputed(block, frontier, chain, transfers)
    try:
        public = _public_key(block.public_key)
    except ValueError as exc:
        problems.append(f"{where}: recorded public key unreadable: {exc}")
        return problems
    if key_id(block.key_name, public).hex() != block.key_id:
        problems.append(f"{where}: recorded key ID does not match its key")
    return problems + _check_checkpoint(block, origin, public)


def _check_continuity(
    block: BlockRow, frontier: Frontier, chain: bytes, transfers: list[Fields]
) -> list[str]:
    """The block starts where the journal before it ends and holds its seq range."""
    where = f"block {block.number}"
    problems: list[str] = []
    if block.tree_size_before != frontier.size:
        problems.append(
            f"{where}: starts at tree size {block.tree_size_before}, the journal is {frontier.size}"
        )
    if block.chain_before != chain.hex():
        problems.append(f"{where}: chain_before does not join the previous block's chain head")
    count = block.tree_size - block.tree_size_before
    if len(transfers) != count:
        problems.append(
            f"{where}: seq range ..{block.last_seq} holds {len(transfers)} transfers,"
            f" the block sealed {count}"
        )
    elif transfers and (
        transfers[0]["seq"] != block.first_seq or transfers[-1]["seq"] != block.last_seq
    ):
        problems.append(f"{where}: first/last seq differ from the sealed range")
    return problems


def _check_recomputed(
    block: BlockRow, frontier: Frontier, chain: bytes, transfers: list[Fields]
) -> list[str]:
    """The block's chain head, Merkle root and frontier recompute from its transfers."""
    where = f"block {block.number}"
    problems: list[str] = []
    recomputed, head = frontier.copy(), chain
    for fields in transfers:
        leaf = canonical_bytes(fields)
        recomputed.append(leaf)
        head = chain_next(head, leaf)
    if head.hex() != block.chain_head:
        problems.append(f"{where}: chain head does not recompute from its transfers")
    if recomputed.root().hex() != block.root_hash:
        problems.append(f"{where}: Merkle root does not recompute from its transfers")
    if recomputed.to_text() != block.frontier:
        problems.append(f"{where}: stored frontier does not recompute")
    return problems


def _check_checkpoint(block: BlockRow, origin: str, public: Ed25519PublicKey) -> list[str]:
    """The checkpoint is signed by the recorded key and states what the block row does."""
    where = f"block {block.number}"
    try:
        checkpoint = open_checkpoint(block.checkpoint, public)
    except CheckpointError as exc:
        return [f"{where}: checkpoint {exc.kind}: {exc}"]
    problems: list[str] = []
    stated = (checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash.hex())
    if stated != (origin, block.tree_size, block.root_hash):
        problems.append(f"{where}: checkpoint states {stated}, the block row differs")
    if checkpoint.chain_head.hex() != block.chain_head:
        problems.append(f"{where}: checkpoint chain head differs from the block row")
    return problems


def _public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
