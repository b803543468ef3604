"""Workload W1, "village day": the fixed list of transfers every W1 figure is quoted on.

10,000 wallets (accounts 1..10,000) each funded with 1,000,000 minor units, one hot escrow
account (10,001) starting at zero, and 100,000 transfers of 1..10,000 minor units; about
10% pay into the escrow, 10% pay out of it, the rest go wallet to wallet. The generator
is a fixed sequence of ``random.Random(20240601)`` calls, so the list is the same on
every machine; :data:`DATA_ROWS_SHA256` pins it.

This module also holds the plain-Python model the ledger is checked against:
:func:`replay` applies the transfers in order and refuses one when its source balance is
below its amount (what ``DEBITS_MUST_NOT_EXCEED_CREDITS`` does to an account with no
holds).

``python -m bench.workload --out w1.csv`` writes the workload as CSV.
"""

from __future__ import annotations

import argparse
import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SEED = 20240601
TRANSFER_COUNT = 100_000
WALLET_COUNT = 10_000
ESCROW_ACCOUNT = 10_001
"""The hot account: one side of about 20% of the transfers."""
FUNDING_ACCOUNT = 10_002
"""Funds the wallets during setup; no limit flags (it goes negative)."""
WALLET_FUNDING_MINOR = 1_000_000
AMOUNT_MIN_MINOR = 1
AMOUNT_MAX_MINOR = 10_000
ESCROW_IN_SHARE = 0.10
ESCROW_OUT_SHARE = 0.10

CSV_HEADER = "seq,src,dst,amount\n"

DATA_ROWS_SHA256 = "36e7853c0107e7be2f71501ee8d389f17a91dcdf7d9b73a483126f6aac52ac58"
"""SHA-256 of the 100,000 data rows (``seq,src,dst,amount``, each ending ``\\n``), header
excluded. This is the published fingerprint of W1."""

CSV_FILE_SHA256 = "fd84fd975b023d97eb73062d82e05a1f0a71840f205f31f704de9abcf29ea246"
"""SHA-256 of the whole CSV file as :func:`write_csv` writes it (header line included)."""


class W1Transfer(NamedTuple):
    """One transfer of the workload: account numbers and an amount in minor units."""

    seq: int
    src: int
    dst: int
    amount: int


def generate(count: int = TRANSFER_COUNT) -> list[W1Transfer]:
    """The first ``count`` transfers of W1, in order (a prefix of the full list)."""
    if not 0 <= count <= TRANSFER_COUNT:
        raise ValueError(f"count must be within 0..{TRANSFER_COUNT}, not {count}")
    rng = random.Random(SEED)
    rows: list[W1Transfer] = []
    for seq in range(1, count + 1):
        # The order of the rng calls is part of the workload's definition: do not reorder.
        amount = rng.randint(AMOUNT_MIN_MINOR, AMOUNT_MAX_MINOR)
        r = rng.random()
        if r < ESCROW_IN_SHARE:
            src = rng.randint(1, WALLET_COUNT)
            dst = ESCROW_ACCOUNT
        elif r < ESCROW_IN_SHARE + ESCROW_OUT_SHARE:
            src = ESCROW_ACCOUNT
            dst = rng.randint(1, WALLET_COUNT)
        else:
            src = rng.randint(1, WALLET_COUNT)
            dst = rng.randint(1, WALLET_COUNT - 1)
            if dst >= src:
                dst += 1
        rows.append(W1Transfer(seq, src, dst, amount))
    return rows


def csv_rows(rows: Iterable[W1Transfer]) -> str:
    """The data rows as CSV text, each line ending ``\\n``, no header."""
    return "".join(f"{t.seq},{t.src},{t.dst},{t.amount}\n" for t in rows)


def csv_text(rows: Iterable[W1Transfer]) -> str:
    """The whole CSV file: header line, then the data rows."""
    return CSV_HEADER + csv_rows(rows)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def write_csv(path: Path, rows: Iterable[W1Transfer]) -> str:
    """Write the workload as CSV (header included, ``\\n`` line ends); answer its SHA-256."""
    text = csv_text(rows)
    path.write_bytes(text.encode("ascii"))
    return sha256_hex(text)


def initial_balances() -> dict[int, int]:
    """Balances (credits minus debits, minor units) of wallets and escrow after setup."""
    balances = dict.fromkeys(range(1, WALLET_COUNT + 1), WALLET_FUNDING_MINOR)
    balances[ESCROW_ACCOUNT] = 0
    return balances


@dataclass(frozen=True, slots=True)
class Replay:
    """What a sequential run of the workload must end with."""

    balances: dict[int, int]
    """Final balance per account number (wallets and escrow), minor units."""
    refused_seqs: frozenset[int]
    """The transfers refused because the source balance was below the amount."""


def replay(rows: Sequence[W1Transfer]) -> Replay:
    """Apply ``rows`` in order to :func:`initial_balances`; refuse overdrawing debits."""
    balances = initial_balances()
    refused: set[int] = set()
    for t in rows:
        if balances[t.src] < t.amount:
            refused.add(t.seq)
            continue
        balances[t.src] -= t.amount
        balances[t.dst] += t.amount
    return Replay(balances, frozenset(refused))


def apply_created(rows: Sequence[W1Transfer], created_seqs: Iterable[int]) -> dict[int, int]:
    """Balances after exactly the transfers ``created_seqs`` (order does not matter)."""
    balances = initial_balances()
    by_seq = {t.seq: t for t in rows}
    for seq in created_seqs:
        t = by_seq[seq]
        balances[t.src] -= t.amount
        balances[t.dst] += t.amount
    return balances


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write workload W1 as CSV.")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--transfers", type=int, default=TRANSFER_COUNT)
    args = parser.parse_args(argv)
    rows = generate(args.transfers)
    digest = write_csv(args.out, rows)
    print(f"{args.out}: {len(rows)} transfers, sha256 {digest}")
    if args.transfers == TRANSFER_COUNT:
        rows_digest = sha256_hex(csv_rows(rows))
        verdict = "ok" if rows_digest == DATA_ROWS_SHA256 else "MISMATCH"
        print(f"data rows sha256 {rows_digest} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
