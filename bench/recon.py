"""The statement reconciliation at scale: N ledger transfers against N statement lines.

``python -m bench.recon --database URL [--lines N] [--runs R] [--in-place]``

Set-up (not timed): a fresh database (``vledger_bench_recon`` on the server of ``URL``;
``--in-place`` uses ``URL`` itself, which must be empty), migrated; N transfers on the
MPESA clearing account in KES, written through the core in batches of
:data:`SETUP_BATCH` with the ledger clock spread over one business day; and a CSV
statement of N lines beside them. With a fixed seed, transfer ``i`` and line ``i`` are:

- 85%: the same provider reference (transfer metadata) and amount (pass 1 matches);
- 5%: the same reference, the line 1..5,000 minor units less (a fee: an amount break);
- 7%: no reference on either side, the same amount (pass 2 matches, or a tie when two
  transfers of the day happen to have the same amount);
- 3%: a transfer nobody's statement line claims (ledger only) and a line of another
  amount no transfer claims (statement only).

Each run is ``vledger reconcile statement`` in a child process (so that its
``ru_maxrss`` is the run's own peak): the run's wall time, the child's peak resident
memory, and the breaks. Medians of the runs are printed; ``--json`` writes them all.
Targets (PostgreSQL, N = 1,000,000): at most :data:`TARGET_S` s and :data:`TARGET_RSS_MB`
MB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import pgbench as pg

SEED = 20261129
PROVIDER = "MPESA"
CURRENCY = "KES"
DAY = date(2026, 6, 1)
SETUP_BATCH = 8000
TARGET_S = 60.0
TARGET_RSS_MB = 300.0
BENCH_DATABASE = "vledger_bench_recon"
COLUMNS = "date:Date,amount:Amount,reference:Ref"


class _DayClock:
    """The ledger's clock, moved by the set-up through the business day."""

    def __init__(self) -> None:
        self.now = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def plan(count: int) -> Iterator[tuple[int, str | None, int, str | None, int]]:
    """(i, transfer reference, transfer amount, line reference, line amount), signed as
    the provider sees them (into the provider account positive)."""
    rng = random.Random(SEED)
    for i in range(count):
        amount = rng.randint(100, 5_000_000) * (1 if rng.random() < 0.7 else -1)
        kind = i % 100
        if kind < 85:
            yield i, f"R{i:09d}", amount, f"R{i:09d}", amount
        elif kind < 90:
            fee = rng.randint(1, 5_000)
            yield i, f"R{i:09d}", amount, f"R{i:09d}", amount - fee
        elif kind < 97:
            yield i, None, amount, None, amount
        else:
            other = rng.randint(100, 5_000_000)
            yield i, None, amount, f"S{i:09d}", other


def set_up(url: str, count: int, folder: Path) -> Path:
    """The transfers in the ledger at ``url``, and the statement file; its path."""
    from ledger import Account, Transfer, open_ledger
    from ledger.flows import parties

    clock = _DayClock()
    started = time.monotonic()
    with open_ledger(url, migrate=True, clock=clock) as led:
        clearing = led.transact(lambda tx: parties.provider_clearing(tx, CURRENCY, PROVIDER))
        bank = uuid.UUID(int=1)
        led.create_accounts([Account(id=bank, currency=CURRENCY, code=1)])
        batch: list[Transfer] = []
        step_us = 86_400_000_000 // max(count, 1)

        def flush() -> None:
            results = led.create_transfers(batch)
            refused = [r for r in results if r.status.value != "created"]
            if refused:
                raise SystemExit(f"set-up transfer refused: {refused[0]}")
            batch.clear()

        for i, reference, amount, _line_ref, _line_amount in plan(count):
            debit, credit = (clearing, bank) if amount > 0 else (bank, clearing)
            batch.append(
                Transfer(
                    id=uuid.UUID(int=(7 << 64) | i),
                    debit_account_id=debit,
                    credit_account_id=credit,
                    amount=abs(amount),
                    currency=CURRENCY,
                    code=1,
                    metadata=None if reference is None else {"provider_reference": reference},
                )
            )
            if len(batch) >= SETUP_BATCH:
                clock.now = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) + timedelta(
                    microseconds=i * step_us
                )
                flush()
                if i % 100_000 < SETUP_BATCH:
                    pg.log(f"set-up: {i + 1:,} transfers ({time.monotonic() - started:.0f} s)")
        if batch:
            flush()
    path = folder / "statement.csv"
    total = 0
    with path.open("w") as handle:
        handle.write("Date,Amount,Ref\n")
        for _i, _ref, _amount, line_ref, line_amount in plan(count):
            total += line_amount
            sign = "-" if line_amount < 0 else ""
            whole, cents = divmod(abs(line_amount), 100)
            handle.write(f"{DAY.isoformat()},{sign}{whole}.{cents:02d},{line_ref or ''}\n")
    (folder / "closing.txt").write_text(str(total))
    pg.log(f"set-up done: {count:,} transfers and lines in {time.monotonic() - started:.0f} s")
    return path


def _major(minor: int) -> str:
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def run_once(url: str, statement: Path, out: Path) -> dict[str, Any]:
    """One reconciliation (in this process); what it took."""
    from ledger import open_ledger
    from reconciliation.jobs import JobRequest, run_job

    closing = int((statement.parent / "closing.txt").read_text())
    options = {
        "format": "csv",
        "currency": CURRENCY,
        "columns": COLUMNS,
        "opening": "0",
        "closing": _major(closing),
    }
    started = time.monotonic()
    with open_ledger(url) as led:
        done = run_job(led, "statement", JobRequest(DAY, statement, PROVIDER, options), out=out)
    elapsed = time.monotonic() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(elapsed, 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "breaks": done.run.breaks,
        "matched": done.run.summary.get("matched", 0),
        "breaks_by_kind": done.run.summary.get("breaks_by_kind", {}),
        "counts": done.run.summary.get("counts", {}),
        "steps_s": done.run.summary.get("seconds", {}),
    }


def _child(url: str, statement: Path, out: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.recon",
            "--child",
            str(statement),
            "--database",
            url,
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


@contextmanager
def _database(url: str, in_place: bool) -> Iterator[str]:
    if in_place or not pg.is_postgres(url):
        yield url
        return
    with pg.fresh_database(url, BENCH_DATABASE) as fresh:
        yield fresh


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.recon", description=__doc__)
    parser.add_argument("--database", required=True, metavar="URL")
    parser.add_argument("--lines", type=int, default=1_000_000, metavar="N")
    parser.add_argument("--runs", type=int, default=3, metavar="R")
    parser.add_argument("--in-place", action="store_true", help="use URL itself (empty)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write every figure")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.lines <= 10_000_000 or not 1 <= args.runs <= 20:
        parser.error("--lines is 1..10,000,000 and --runs 1..20")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.child:
        result = run_once(args.database, Path(args.child), Path(args.out))
        print(json.dumps(result))
        return result
    with (
        tempfile.TemporaryDirectory(prefix="vledger-recon-") as folder,
        _database(args.database, args.in_place) as url,
    ):
        statement = set_up(url, args.lines, Path(folder))
        runs = []
        for number in range(1, args.runs + 1):
            result = _child(url, statement, Path(folder) / f"out{number}")
            runs.append(result)
            pg.log(
                f"run {number}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f}"
                f" MB, {result['breaks']:,} breaks, {result['matched']:,} matched"
            )
    median_s = statistics.median(r["seconds"] for r in runs)
    median_rss = statistics.median(r["peak_rss_mb"] for r in runs)
    report = {
        "lines": args.lines,
        "transfers": args.lines,
        "runs": runs,
        "median_seconds": median_s,
        "median_peak_rss_mb": median_rss,
        "target_seconds": TARGET_S,
        "target_peak_rss_mb": TARGET_RSS_MB,
        "met": median_s <= TARGET_S and median_rss <= TARGET_RSS_MB,
    }
    print(
        f"statement reconciliation, {args.lines:,} transfers x {args.lines:,} lines,"
        f" {len(runs)} run(s): median {median_s:.1f} s (target <= {TARGET_S:.0f}),"
        f" median peak RSS {median_rss:.0f} MB (target <= {TARGET_RSS_MB:.0f})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
