"""Where W1's single-transfer calls spend their time on PostgreSQL, and what mode b groups.

    python -m bench.w1_profile --database URL [--transfers 5000] [--runs 3]

On a fresh W1 database (the setup of :mod:`bench.w1`), per call, median of ``--runs``
rounds of ``--transfers`` calls each (microseconds):

- the floors on one autocommit connection: ``SELECT 1`` (a round trip), and a
  transactional ``pg_logical_emit_message`` (a round trip and a commit that flushes the
  WAL: ``txid_current()`` alone writes no WAL, so its commit does not wait for the disk);
- the plain-transfer statement (migration 0033) split: inside ``BEGIN``, the statement's
  round trip, then the ``COMMIT``'s;
- ``Ledger.create_transfers`` of one W1 transfer, on the database path and on the engine
  path, with the client's CPU per call (``time.process_time``);
- the client's Python alone: argument checks and the statement's parameters.

Then mode b (four threads, one ``Ledger``): transfers per second and the sizes of the
batches group commit formed, for 1, 2 and 4 writer connections. Progress on stderr,
the table on stdout. The machine's load average is printed: on a shared machine the
figures move with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from bench import pgbench as pg
from bench import w1, workload
from ledger import Ledger, Transfer, open_ledger
from ledger.core import ledger as core_ledger
from ledger.core import postgres_store
from ledger.core.engine import Outcome
from ledger.core.store import to_us

TRANSFERS_DEFAULT = 5_000
RUNS_DEFAULT = 3
WRITERS_TRIED = (1, 2, 4)
MODE_B_TRANSFERS_MAX = 20_000
FLUSHED_COMMIT = "SELECT pg_logical_emit_message(true, 'w1_profile', '')"
"""The smallest statement whose commit waits for the WAL flush."""


def per_call_us(calls: int, work: Callable[[], None]) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        work()
    return (time.perf_counter() - started) / calls * 1e6


def floors(url: str, calls: int) -> dict[str, float]:
    """Round trip, and round trip with a flushed commit, on one autocommit connection."""
    with psycopg.connect(pg.libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT 1", prepare=True)

        def ping() -> None:
            conn.execute("SELECT 1", prepare=True).fetchone()

        def flushed() -> None:
            conn.execute(FLUSHED_COMMIT, prepare=True).fetchone()

        return {
            "round trip (SELECT 1)": per_call_us(calls, ping),
            "round trip + flushed commit (a WAL message)": per_call_us(calls, flushed),
        }


def statement_split(url: str, transfers: Sequence[Transfer]) -> dict[str, float]:
    """The plain-transfer statement inside BEGIN, and the COMMIT after it, timed apart."""
    statement_us: list[float] = []
    commit_us: list[float] = []
    with psycopg.connect(pg.libpq_url(url), autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        for t in transfers:
            params = postgres_store.plain_batch([t])
            assert params is not None
            now = to_us(core_ledger.system_clock())
            conn.execute("BEGIN")
            started = time.perf_counter()
            conn.execute(postgres_store.DECIDE_PLAIN, {**params, "now": now}).fetchone()
            between = time.perf_counter()
            conn.execute("COMMIT")
            statement_us.append((between - started) * 1e6)
            commit_us.append((time.perf_counter() - between) * 1e6)
    return {
        "plain statement in a transaction (round trip + function)": statistics.mean(statement_us),
        "its COMMIT (round trip + WAL flush)": statistics.mean(commit_us),
    }


def calls(led: Ledger, transfers: Sequence[Transfer]) -> tuple[float, float]:
    """Wall and client CPU per ``create_transfers`` of one transfer (microseconds)."""
    cpu = time.process_time()
    wall = time.perf_counter()
    for t in transfers:
        led.create_transfers([t])
    n = len(transfers)
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def python_alone(transfers: Sequence[Transfer]) -> float:
    """Argument checks and the statement's parameters: the client's Python before I/O."""
    started = time.perf_counter()
    for t in transfers:
        core_ledger._check_transfers([t])
        postgres_store.plain_batch([t])
    return (time.perf_counter() - started) / len(transfers) * 1e6


@contextmanager
def counted_batches(sizes: Counter[int]) -> Iterator[None]:
    """Count the sizes of the batches the store is given."""
    original = postgres_store.PostgresStore.apply_transfers

    def counting(
        self: postgres_store.PostgresStore,
        transfers: Sequence[Transfer],
        now_us: Callable[[], int],
    ) -> Outcome:
        sizes[len(transfers)] += 1
        return original(self, transfers, now_us)

    postgres_store.PostgresStore.apply_transfers = counting  # type: ignore[method-assign]
    try:
        yield
    finally:
        postgres_store.PostgresStore.apply_transfers = original  # type: ignore[method-assign]


@contextmanager
def writers(count: int) -> Iterator[None]:
    saved = postgres_store.PostgresStore.writers_max
    postgres_store.PostgresStore.writers_max = count
    try:
        yield
    finally:
        postgres_store.PostgresStore.writers_max = saved


def mode_b(url: str, rows: Sequence[workload.W1Transfer], count: int) -> dict[str, Any]:
    sizes: Counter[int] = Counter()
    with w1.fresh_ledger_url(url) as fresh, writers(count):
        led = open_ledger(fresh, migrate=True)
        try:
            w1.set_up(led)
            with counted_batches(sizes):
                seconds, _ = w1.run_threads(led, 0x300 + count, rows, w1.CLIENTS_MODE_B, 1)
        finally:
            led.close()
    groups = sum(sizes.values())
    return {
        "writers": count,
        "transfers_per_s": len(rows) / seconds,
        "mean_batch": len(rows) / groups,
        "batches": dict(sorted(sizes.items())),
    }


def profile(url: str, transfers_n: int, runs: int) -> dict[str, Any]:
    rows = workload.generate(transfers_n)
    found: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        found.setdefault(name, []).append(value)

    with w1.fresh_ledger_url(url) as fresh:
        led = open_ledger(fresh, migrate=True)
        try:
            w1.set_up(led)
            for run in range(runs):
                pg.log(f"profile round {run + 1}: load {w1.load_average()}")
                for name, value in floors(fresh, transfers_n).items():
                    note(name, value)
                base = 0x400 + 0x10 * run
                database = [t for b, _ in w1.prepare(base, rows, 1) for t in b]
                wall, cpu = calls(led, database)
                note("create_transfers, database path: wall", wall)
                note("create_transfers, database path: client CPU", cpu)
                with w1.decided_on("engine"):
                    engine = [t for b, _ in w1.prepare(base + 1, rows, 1) for t in b]
                    wall, cpu = calls(led, engine)
                note("create_transfers, engine path: wall", wall)
                note("create_transfers, engine path: client CPU", cpu)
                split = [t for b, _ in w1.prepare(base + 2, rows, 1) for t in b]
                for name, value in statement_split(fresh, split).items():
                    note(name, value)
                note("client Python before I/O (checks, parameters)", python_alone(database))
        finally:
            led.close()
    b_rows = workload.generate(min(transfers_n * 4, MODE_B_TRANSFERS_MAX))
    b = [mode_b(url, b_rows, count) for count in WRITERS_TRIED]
    return {"per_call_us": {k: statistics.median(v) for k, v in found.items()}, "mode_b": b}


def render(result: dict[str, Any], load_before: float) -> str:
    lines = [
        f"W1 profile: {os.cpu_count()} CPUs, load average {load_before} before,"
        f" {w1.load_average()} after",
        "",
        f"{'per single-transfer call (median of rounds)':<62}{'us':>8}",
    ]
    for name, value in result["per_call_us"].items():
        lines.append(f"{name:<62}{value:>8,.0f}")
    lines += ["", "mode b (4 threads, one Ledger, database path):"]
    for b in result["mode_b"]:
        lines.append(
            f"  writers {b['writers']}: {b['transfers_per_s']:,.0f} transfers/s,"
            f" mean batch {b['mean_batch']:.2f}, batch sizes {b['batches']}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.w1_profile", description=__doc__)
    parser.add_argument("--database", required=True, help="postgresql+psycopg://...")
    parser.add_argument("--transfers", type=int, default=TRANSFERS_DEFAULT)
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT)
    args = parser.parse_args(argv)
    if not pg.is_postgres(args.database):
        parser.error("the profile is of the PostgreSQL store")
    load_before = w1.load_average()
    result = profile(args.database, args.transfers, args.runs)
    print(render(result, load_before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
