"""How fast ``Ledger.balance_at`` answers on an account with a long history.

    python -m bench.balance_at --database URL [--transfers 1000000] [--queries 1000] [--json]

On a fresh database (as :mod:`bench.w1` makes them): a funding account without limits
and one target account with ``DEBITS_MUST_NOT_EXCEED_CREDITS``; then ``--transfers``
transfers that all touch the target, alternating a credit of 1..10,000 minor units with a
debit of at most that credit (so nothing is refused), in batches of 8,190. The ledger
runs on a clock that moves 1 ms each time it is read, so the batches get distinct
timestamps.

Untimed, every transfer's ``created_at`` is read back with ``lookup_transfers``; the
expected counters as of a moment are the sums over the transfers created at or before
it. Then ``--queries`` calls of ``balance_at(target, at)`` are timed one by one
(``time.perf_counter``) for random moments across the whole history: mostly uniform,
some exactly on a transfer's ``created_at`` (the bound is inclusive) and some one
microsecond before one. Every answer is checked; any wrong answer exits non-zero.
Target: under 10 ms (judged on the p99).
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import random
import statistics
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import pgbench as pg
from bench.w1 import chunks, describe_database, fresh_ledger_url, machine, warn_if_busy
from ledger import (
    BATCH_SIZE_MAX,
    Account,
    AccountFlags,
    Ledger,
    Status,
    Transfer,
    open_ledger,
)

TRANSFERS_DEFAULT = 1_000_000
QUERIES_DEFAULT = 1000
SEED = 20240602
CURRENCY = "KES"
CODE = 1
FUNDING = uuid.UUID(int=1)
TARGET = uuid.UUID(int=2)
UNKNOWN = uuid.UUID(int=3)
TRANSFER_TAG = 0xBA
AMOUNT_MAX_MINOR = 10_000
CLOCK_START = datetime(2026, 1, 1, tzinfo=UTC)
CLOCK_STEP = timedelta(milliseconds=1)
TARGET_MS = 10.0
EXACT_SHARE = 0.10
"""Share of queries exactly on a transfer's ``created_at``; as many land 1 us before one."""

BENCH_DATABASE = "vledger_bench_balance_at"


class SteppingClock:
    """A clock that moves ``step`` forward every time it is read (thread-safe)."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        self._now = start
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._now
            self._now += self._step
            return now


def to_us(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(moment_us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=moment_us)


@dataclass(frozen=True, slots=True)
class Move:
    """One transfer of the history, from the target account's point of view."""

    id: uuid.UUID
    debit_minor: int
    credit_minor: int


def make_history(count: int) -> list[Move]:
    """Credits of 1..10,000 alternating with debits of at most the credit before."""
    rng = random.Random(SEED)
    moves: list[Move] = []
    credited = 0
    for i in range(count):
        tid = uuid.UUID(int=(TRANSFER_TAG << 64) | (i + 1))
        if i % 2 == 0:
            credited = rng.randint(1, AMOUNT_MAX_MINOR)
            moves.append(Move(tid, 0, credited))
        else:
            moves.append(Move(tid, rng.randint(1, credited), 0))
    return moves


def as_transfer(move: Move) -> Transfer:
    into_target = move.credit_minor > 0
    return Transfer(
        id=move.id,
        debit_account_id=FUNDING if into_target else TARGET,
        credit_account_id=TARGET if into_target else FUNDING,
        amount=move.credit_minor if into_target else move.debit_minor,
        currency=CURRENCY,
        code=CODE,
    )


def load(led: Ledger, moves: Sequence[Move], batch_size: int) -> float:
    """Accounts and history; answers the seconds the transfers took."""
    results = led.create_accounts(
        [
            Account(FUNDING, CURRENCY, CODE),
            Account(TARGET, CURRENCY, CODE, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS),
        ]
    )
    if any(r.status != Status.CREATED for r in results):
        raise SystemExit(f"setup: accounts refused: {results}")
    started = time.perf_counter()
    for batch in chunks(moves, batch_size):
        refused = [
            r
            for r in led.create_transfers([as_transfer(m) for m in batch])
            if r.status != "created"
        ]
        if refused:
            raise SystemExit(f"setup: transfers refused: {refused[:5]}")
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class History:
    """The target's posted counters after each transfer, ordered by ``created_at``."""

    created_at_us: list[int]
    debits_posted: list[int]
    credits_posted: list[int]

    def expected(self, at_us: int) -> tuple[int, int]:
        """(debits_posted, credits_posted) over the transfers created at or before ``at``."""
        n = bisect.bisect_right(self.created_at_us, at_us)
        if n == 0:
            return (0, 0)
        return (self.debits_posted[n - 1], self.credits_posted[n - 1])


def read_history(led: Ledger, moves: Sequence[Move]) -> tuple[History, bool]:
    """Expected counters from every transfer's stored ``created_at``; and whether the
    timestamps never go backwards in the order the transfers were applied."""
    stamped: list[tuple[int, int, Move]] = []
    for offset, batch in zip(
        itertools.count(0, BATCH_SIZE_MAX), chunks(moves, BATCH_SIZE_MAX), strict=False
    ):
        found = {t.id: t for t in led.lookup_transfers([m.id for m in batch])}
        for i, m in enumerate(batch):
            t = found.get(m.id)
            if t is None or t.created_at is None:
                raise SystemExit(f"transfer {m.id} not found after it was created")
            stamped.append((to_us(t.created_at), offset + i, m))
    monotonic = all(a[0] <= b[0] for a, b in itertools.pairwise(stamped))
    stamped.sort(key=lambda s: (s[0], s[1]))
    debits = list(itertools.accumulate(s[2].debit_minor for s in stamped))
    credits = list(itertools.accumulate(s[2].credit_minor for s in stamped))
    return History([s[0] for s in stamped], debits, credits), monotonic


def pick_moments(history: History, count: int, rng: random.Random) -> list[int]:
    first, last = history.created_at_us[0], history.created_at_us[-1]
    step_us = to_us(CLOCK_START + CLOCK_STEP) - to_us(CLOCK_START)
    moments: list[int] = []
    for _ in range(count):
        r = rng.random()
        if r < EXACT_SHARE:
            moments.append(rng.choice(history.created_at_us))
        elif r < 2 * EXACT_SHARE:
            moments.append(rng.choice(history.created_at_us) - 1)
        else:
            moments.append(rng.randint(first - step_us, last + step_us))
    return moments


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


def run(url: str, transfers: int, queries: int, batch_size: int) -> dict[str, Any]:
    warn_if_busy(pg.log)
    load_before = machine()["load_average_1m"]
    moves = make_history(transfers)
    with fresh_ledger_url(url, BENCH_DATABASE) as fresh:
        led = open_ledger(fresh, migrate=True, clock=SteppingClock(CLOCK_START, CLOCK_STEP))
        try:
            pg.log(f"balance_at: loading {transfers:,} transfers in batches of {batch_size:,}")
            load_s = load(led, moves, batch_size)
            pg.log(f"balance_at: loaded in {load_s:.1f} s; reading created_at back")
            history, monotonic = read_history(led, moves)
            final = led.lookup_accounts([TARGET])[0]
            wrong: list[str] = []
            if (final.debits_posted, final.credits_posted) != (
                history.debits_posted[-1],
                history.credits_posted[-1],
            ):
                wrong.append(f"target counters {final} differ from the history's sums")
            if led.balance_at(UNKNOWN, CLOCK_START) is not None:
                wrong.append("balance_at of an unknown account is not None")

            rng = random.Random(SEED)
            timings_ms: list[float] = []
            for at_us in pick_moments(history, queries, rng):
                at = from_us(at_us)
                started = time.perf_counter()
                answer = led.balance_at(TARGET, at)
                timings_ms.append((time.perf_counter() - started) * 1000)
                expected = history.expected(at_us)
                got = None if answer is None else (answer.debits_posted, answer.credits_posted)
                if got != expected:
                    wrong.append(f"balance_at({at.isoformat()}) = {got}, expected {expected}")
        finally:
            led.close()
    timings_ms.sort()
    return {
        "benchmark": "balance_at",
        "database": describe_database(url),
        "machine": {**machine(), "load_average_1m_before": load_before},
        "transfers": transfers,
        "batch_size": batch_size,
        "distinct_created_at": len(set(history.created_at_us)),
        "created_at_monotonic": monotonic,
        "load_transfers_per_s": round(transfers / load_s, 1),
        "queries": queries,
        "median_ms": round(statistics.median(timings_ms), 3),
        "p99_ms": round(percentile(timings_ms, 0.99), 3),
        "max_ms": round(timings_ms[-1], 3),
        "mean_ms": round(statistics.fmean(timings_ms), 3),
        "target_ms": TARGET_MS,
        "target_met": percentile(timings_ms, 0.99) < TARGET_MS,
        "wrong_answers": len(wrong),
        "wrong_examples": wrong[:5],
    }


def render(found: dict[str, Any]) -> str:
    db = found["database"]
    where = (
        f"PostgreSQL {db['server_version']}"
        if db["dialect"] == "postgresql"
        else f"SQLite {db['sqlite_version']}"
    )
    met = "met" if found["target_met"] else "NOT met"
    lines = [
        f"balance_at on {where}: one account with {found['transfers']:,} transfers"
        f" ({found['distinct_created_at']:,} distinct created_at; loaded at"
        f" {found['load_transfers_per_s']:,.0f} transfers/s in batches of {found['batch_size']:,})",
        f"  {found['queries']:,} queries: median {found['median_ms']:.3f} ms,"
        f" p99 {found['p99_ms']:.3f} ms, max {found['max_ms']:.3f} ms,"
        f" mean {found['mean_ms']:.3f} ms",
        f"  target: p99 under {found['target_ms']:g} ms: {met}",
        f"  answers checked: {found['queries'] - found['wrong_answers']:,} right,"
        f" {found['wrong_answers']} wrong",
    ]
    if not found["created_at_monotonic"]:
        lines.append("  note: created_at goes backwards somewhere in the order of application")
    lines.extend(f"  WRONG: {w}" for w in found["wrong_examples"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.balance_at", description="Time balance_at on a long history."
    )
    parser.add_argument(
        "--database", required=True, help="sqlite:///FILE or postgresql+psycopg://..."
    )
    parser.add_argument("--transfers", type=int, default=TRANSFERS_DEFAULT)
    parser.add_argument("--queries", type=int, default=QUERIES_DEFAULT)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE_MAX)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    if args.transfers < 2 or args.queries < 1:
        parser.error("--transfers must be at least 2 and --queries at least 1")
    if not 1 <= args.batch_size <= BATCH_SIZE_MAX:
        parser.error(f"--batch-size must be within 1..{BATCH_SIZE_MAX}")
    found = run(args.database, args.transfers, args.queries, args.batch_size)
    print(json.dumps(found, indent=2) if args.json else render(found))
    return 1 if found["wrong_answers"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
