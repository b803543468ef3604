"""Merkle trees (RFC 6962), the hash chain, and checkpoints as C2SP signed notes.

Everything here is pure: bytes in, bytes out, no database. The sealer uses it to build
blocks, the offline verifier to check them, so both sides hash exactly alike.

Merkle tree (RFC 6962, section 2.1), over the whole journal (cumulative, as tlog expects):

- leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right);
- the root of ``n`` leaves splits at the largest power of two below ``n``; the empty
  tree's root is SHA-256 of nothing.

:class:`Frontier` keeps the tree's right border (one perfect-subtree hash per set bit of
the size), so a root after each block costs O(block + log n), not O(n).

Chain: ``chain[-1]`` is 32 zero bytes; ``chain[i] = SHA-256(chain[i-1] || leaf[i])``.

Checkpoint (c2sp.org/tlog-checkpoint) note text, each line ending in a newline::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 Merkle root of the whole journal at that size>
    vledger-chain-head <base64 chain[tree size - 1]>

then a blank line and one signed-note signature line (c2sp.org/signed-note)::

    — <key name> base64(key ID (4 bytes) || Ed25519 signature over the note text)

with key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]. The key name
is the origin. The extension line (optional in tlog-checkpoint) puts the chain under the
signature too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reconciliation.errors import InputInvalid

__all__ = [
    "CHAIN_EXTENSION",
    "CHAIN_GENESIS",
    "EMPTY_ROOT",
    "SIGNATURE_TYPE_ED25519",
    "Checkpoint",
    "CheckpointError",
    "Frontier",
    "chain_next",
    "key_id",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "open_checkpoint",
    "public_key_raw",
    "sign_checkpoint",
]

HASH_SIZE = 32
CHAIN_GENESIS = bytes(HASH_SIZE)
"""The chain value before the first transfer."""
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 6962: the root of the empty tree."""
SIGNATURE_TYPE_ED25519 = 0x01
"""signed-note's signature type byte for Ed25519."""
CHAIN_EXTENSION = "vledger-chain-head"
"""The checkpoint's extension line: this word, a space, the base64 chain head."""
NOTE_SIZE_MAX = 4096
"""A checkpoint note longer than this is refused unread (ours are about 200 bytes)."""
SIGNATURES_MAX = 16
"""signed-note: verifiers must accept at least 16 signatures; we accept no more."""


class CheckpointError(InputInvalid):
    """A checkpoint that cannot be read or is not signed by the expected key.

    ``kind`` is one of ``malformed``, ``unsigned`` (no signature by the trusted key),
    ``bad_signature`` (the trusted key's signature does not verify).
    """

    code = "checkpoint_invalid"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# -- Merkle tree and chain ------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def chain_next(previous: bytes, leaf: bytes) -> bytes:
    """The chain value after ``leaf``: SHA-256(previous chain value || leaf)."""
    return hashlib.sha256(previous + leaf).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of ``leaves``, straight from the definition (for tests
    and small trees; :class:`Frontier` is the incremental form)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(merkle_root(leaves[:split]), merkle_root(leaves[split:]))


class Frontier:
    """The right border of an RFC 6962 tree: enough to append leaves and compute roots.

    ``hashes`` holds the roots of the perfect subtrees that make up the tree, largest
    first, one per set bit of ``size``.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self.hashes = list(hashes)
        if size < 0 or len(self.hashes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} holds {size.bit_count()} hashes, not {len(self.hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError("frontier hashes are 32 bytes")

    def append(self, leaf: bytes) -> None:
        """Add one leaf (its canonical bytes, not its hash)."""
        merged = leaf_hash(leaf)
        level = 0
        while self.size >> level & 1:
            merged = node_hash(self.hashes.pop(), merged)
            level += 1
        self.hashes.append(merged)
        self.size += 1

    def root(self) -> bytes:
        """The Merkle Tree Hash of all leaves appended so far."""
        if not self.hashes:
            return EMPTY_ROOT
        merged = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            merged = node_hash(left, merged)
        return merged

    def copy(self) -> Frontier:
        return Frontier(self.size, self.hashes)

    def to_text(self) -> str:
        """Hex hashes joined by commas (empty for the empty tree)."""
        return ",".join(h.hex() for h in self.hashes)

    @classmethod
    def from_text(cls, size: int, text: str) -> Frontier:
        """Inverse of :meth:`to_text`; ``ValueError`` when it does not fit ``size``."""
        try:
            hashes = [bytes.fromhex(part) for part in text.split(",")] if text else []
        except ValueError as exc:
            raise ValueError(f"frontier is not comma-separated hex: {exc}") from exc
        return cls(size, hashes)


# -- keys and signed notes ------------------------------------------------------------


def public_key_raw(key: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    material = name.encode() + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key_raw(public_key)
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A journal's signed statement: ``tree_size`` transfers, their root and chain head."""

    origin: str
    tree_size: int
    root_hash: bytes
    chain_head: bytes

    def note_text(self) -> str:
        """The note text that is signed (four lines, each ending in a newline)."""
        if not self.origin or any(c.isspace() or c == "+" for c in self.origin):
            raise ValueError("an origin is non-empty, without spaces or '+'")
        return (
            f"{self.origin}\n{self.tree_size}\n{_b64(self.root_hash)}\n"
            f"{CHAIN_EXTENSION} {_b64(self.chain_head)}\n"
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise CheckpointError("malformed", f"{what} is not base64: {text!r}") from exc


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> str:
    """The checkpoint as a signed note, signed by ``private_key`` under the origin's name."""
    text = checkpoint.note_text()
    name = checkpoint.origin
    signature = private_key.sign(text.encode())
    kid = key_id(name, private_key.public_key())
    return f"{text}\n\u2014 {name} {_b64(kid + signature)}\n"


def _parse_note(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    """Split a signed note into its text and (key name, base64-decoded signature) pairs."""
    if len(note) > NOTE_SIZE_MAX:
        raise CheckpointError("malformed", f"note longer than {NOTE_SIZE_MAX} characters")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointError("malformed", "note holds a control character other than newline")
    if not note.endswith("\n"):
        raise CheckpointError("malformed", "note does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("malformed", "note has no blank line before its signatures")
    text = note[: split + 1]
    lines = note[split + 2 :].splitlines()
    if not lines or len(lines) > SIGNATURES_MAX:
        raise CheckpointError("malformed", f"note has {len(lines)} signature lines")
    signatures: list[tuple[str, bytes]] = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or not parts[1]:
            raise CheckpointError("malformed", f"not a signature line: {line!r}")
        signatures.append((parts[1], _unb64(parts[2], "signature")))
    return text, signatures


def _parse_text(text: str) -> Checkpoint:
    lines = text.split("\n")[:-1]
    if len(lines) != 4:
        raise CheckpointError("malformed", f"checkpoint text has {len(lines)} lines, not 4")
    origin, size_text, root_text, extension = lines
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise CheckpointError("malformed", f"tree size is not a decimal number: {size_text!r}")
    root = _unb64(root_text, "root hash")
    word, _, chain_text = extension.partition(" ")
    if word != CHAIN_EXTENSION:
        raise CheckpointError("malformed", f"extension line is not {CHAIN_EXTENSION}")
    chain = _unb64(chain_text, "chain head")
    if len(root) != HASH_SIZE or len(chain) != HASH_SIZE:
        raise CheckpointError("malformed", "root hash and chain head are 32 bytes")
    return Checkpoint(origin, int(size_text), root, chain)


def open_checkpoint(note: str, public_key: Ed25519PublicKey) -> Checkpoint:
    """Read a signed checkpoint and check it is signed by ``public_key``.

    The key name must be the origin. Signatures by other keys are ignored (signed-note);
    raises :class:`CheckpointError` when none is by ``public_key`` (``unsigned``) or when
    its signature does not verify (``bad_signature``), or on any syntax fault.
    """
    text, signatures = _parse_note(note)
    checkpoint = _parse_text(text)
    expected = key_id(checkpoint.origin, public_key)
    found = [sig for name, sig in signatures if name == checkpoint.origin and sig[:4] == expected]
    if not found:
        seen = ", ".join(f"{name} {sig[:4].hex()}" for name, sig in signatures)
        raise CheckpointError(
            "unsigned",
            f"not signed by the trusted key (expected key {checkpoint.origin} {expected.hex()},"
            f" found {seen})",
        )
    for signature in found:
        try:
            public_key.verify(signature[4:], text.encode())
        except InvalidSignature:
            raise CheckpointError(
                "bad_signature", f"signature by key {expected.hex()} does not verify"
            ) from None
    return checkpoint


def read_checkpoint_unverified(note: str) -> Checkpoint:
    """The checkpoint's fields without checking any signature (to report what it says)."""
    text, _ = _parse_note(note)
    return _parse_text(text)
