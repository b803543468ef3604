"""Workload W1 against the ledger, quoted beside pgbench on the same PostgreSQL.

    python -m bench.w1 --database URL [--mode a|b|c] [--runs 3] [--transfers 100000]
                       [--path database|engine|both] [--json]

Each run of each mode gets a fresh database (PostgreSQL: a new database on the server the
URL names, dropped afterwards; SQLite: a new file in a new folder beside the file the URL
names). Setup is untimed: 10,000 wallets and the hot escrow with
``DEBITS_MUST_NOT_EXCEED_CREDITS``, a funding account without limits, and 1,000,000 minor
units into each wallet. The timed part is the workload alone:

- ``a``: one client, one transfer per ``create_transfers`` call;
- ``b``: four threads sharing one ``Ledger``, one transfer per call; transfer ``i``
  (0-based) is submitted by thread ``i % 4``, each thread in workload order;
- ``c``: one client, 100 transfers per call.

Afterwards (untimed, every mode, every run): every answer is ``created`` or
``exceeds_credits``; every account's balance equals the funding plus exactly the
transfers answered ``created``; money is conserved; no wallet or escrow is negative; no
pending amount exists. Modes ``a`` and ``c`` must also match a sequential replay in
plain Python exactly, account by account and refusal by refusal (mode ``b`` interleaves
its clients, so only the rules above apply to it). Any failure exits non-zero.

On PostgreSQL a batch of a few plain transfers is decided inside the database in one
round trip (``ledger.core.postgres_store.PLAIN_BATCH_MAX``, migration 0033): the ``database``
path, what the ledger does. ``--path engine`` sends every batch through the Python engine
instead (two pipelined round trips: the path before 0033), and ``--path both`` runs each
mode on both paths in every round, interleaved, for a before/after from one invocation.

On PostgreSQL, pgbench's TPC-B-like script (scale 4; 1 client, and 4 clients on 2
threads, 15 s each) runs in the same invocation, interleaved with the ledger runs, and
the medians give the ratios. Progress goes to stderr; the table (or JSON) to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench import pgbench as pg
from bench import workload
from bench.workload import (
    ESCROW_ACCOUNT,
    FUNDING_ACCOUNT,
    TRANSFER_COUNT,
    WALLET_COUNT,
    WALLET_FUNDING_MINOR,
    W1Transfer,
)
from ledger import (
    BATCH_SIZE_MAX,
    Account,
    AccountFlags,
    Ledger,
    LedgerError,
    Status,
    Transfer,
    open_ledger,
)
from ledger.core import postgres_store

CURRENCY = "KES"
CODE = 1
RUNS_DEFAULT = 3
CLIENTS_MODE_B = 4
BATCH_SIZE_MODE_C = 100
BENCH_DATABASE = "vledger_bench_w1"

FUNDING_TAG = 0xF0
"""High 64 bits of the setup transfers' ids; workload transfers use the run's tag."""

ACCEPTED_STATUSES = frozenset({Status.CREATED, Status.EXCEEDS_CREDITS})
"""What a workload transfer may answer; anything else fails the run."""

TOTAL_MINOR = WALLET_COUNT * WALLET_FUNDING_MINOR


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    description: str
    clients: int
    batch_size: int
    baseline_clients: int
    """Which pgbench figure the mode is quoted against (1 or 4 clients)."""
    target_ratio: float
    """Target: at least this multiple of the pgbench baseline's tps."""
    sqlite_target_per_s: float | None = None
    """Target in transfers per second on SQLite (modes without one show none)."""


MODES: dict[str, Mode] = {
    "a": Mode("a", "1 client, 1 transfer per call", 1, 1, 1, 1.3),
    "b": Mode("b", f"{CLIENTS_MODE_B} threads, 1 Ledger, 1 transfer per call", 4, 1, 4, 2.0),
    "c": Mode("c", f"1 client, {BATCH_SIZE_MODE_C} transfers per call", 1, 100, 1, 10.0, 10_000),
}


PATHS = ("database", "engine")
"""Where a plain batch is decided: in the database (what the ledger does), or in the
Python engine (``PLAIN_BATCH_MAX`` 0: every batch)."""


@contextmanager
def decided_on(path: str) -> Iterator[None]:
    """Run the ledger with plain batches decided on ``path`` (PostgreSQL only)."""
    saved = postgres_store.PLAIN_BATCH_MAX
    if path == "engine":
        postgres_store.PLAIN_BATCH_MAX = 0
    try:
        yield
    finally:
        postgres_store.PLAIN_BATCH_MAX = saved


def label(mode: Mode, path: str) -> str:
    """A mode's name in the report: ``a``, or ``a/engine`` on the engine path."""
    return mode.name if path == "database" else f"{mode.name}/{path}"


class BenchFailure(Exception):
    """A run answered something it must not, or the ledger failed a check afterwards."""


def account_id(number: int) -> uuid.UUID:
    return uuid.UUID(int=number)


def transfer_id(tag: int, seq: int) -> uuid.UUID:
    return uuid.UUID(int=(tag << 64) | seq)


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- databases ------------------------------------------------------------------------


@contextmanager
def fresh_ledger_url(url: str, database: str = BENCH_DATABASE) -> Iterator[str]:
    """A URL to a database nobody has used (named ``database`` on PostgreSQL); removed
    on the way out."""
    if pg.is_postgres(url):
        with pg.fresh_database(url, database) as fresh:
            yield fresh
        return
    if pg.is_sqlite(url):
        # A new folder beside the named file, so the figure is that disk's figure.
        parent = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{database}_", dir=parent) as folder:
            yield f"sqlite:///{folder}/{database}.db"
        return
    raise SystemExit(f"unsupported database URL: {url.split(':', 1)[0]}")


def describe_database(url: str) -> dict[str, Any]:
    if pg.is_postgres(url):
        described: dict[str, Any] = {"dialect": "postgresql"}
        described.update(pg.server_settings(url))
        return described
    import sqlite3

    return {"dialect": "sqlite", "sqlite_version": sqlite3.sqlite_version}


# -- setup ----------------------------------------------------------------------------


def set_up(led: Ledger) -> None:
    """Wallets, escrow and funding account; 1,000,000 minor units into each wallet."""
    limited = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    accounts = [
        Account(account_id(n), CURRENCY, CODE, limited) for n in range(1, ESCROW_ACCOUNT + 1)
    ]
    accounts.append(Account(account_id(FUNDING_ACCOUNT), CURRENCY, CODE))
    for batch in chunks(accounts, BATCH_SIZE_MAX):
        refused = [r for r in led.create_accounts(batch) if r.status != Status.CREATED]
        if refused:
            raise BenchFailure(f"setup: accounts refused: {refused[:5]}")
    funding = [
        Transfer(
            id=transfer_id(FUNDING_TAG, n),
            debit_account_id=account_id(FUNDING_ACCOUNT),
            credit_account_id=account_id(n),
            amount=WALLET_FUNDING_MINOR,
            currency=CURRENCY,
            code=CODE,
        )
        for n in range(1, WALLET_COUNT + 1)
    ]
    for funding_batch in chunks(funding, BATCH_SIZE_MAX):
        refused_t = [r for r in led.create_transfers(funding_batch) if r.status != Status.CREATED]
        if refused_t:
            raise BenchFailure(f"setup: funding transfers refused: {refused_t[:5]}")


# -- the timed part -------------------------------------------------------------------


Statuses = dict[int, Status]
"""Answer per workload seq."""

Batch = tuple[list[Transfer], list[int]]
"""The transfers of one ``create_transfers`` call, and their workload seqs."""


def prepare(tag: int, rows: Sequence[W1Transfer], batch_size: int) -> list[Batch]:
    """The calls a client will make, built before the clock starts (building a
    ``Transfer`` is the caller's work, not the ledger's)."""
    ids = [account_id(n) for n in range(FUNDING_ACCOUNT + 1)]
    batches: list[Batch] = []
    for chunk in chunks(rows, batch_size):
        transfers = [
            Transfer(
                id=transfer_id(tag, t.seq),
                debit_account_id=ids[t.src],
                credit_account_id=ids[t.dst],
                amount=t.amount,
                currency=CURRENCY,
                code=CODE,
            )
            for t in chunk
        ]
        batches.append((transfers, [t.seq for t in chunk]))
    return batches


def _submit(led: Ledger, batches: Sequence[Batch]) -> Statuses:
    statuses: Statuses = {}
    for transfers, seqs in batches:
        results = led.create_transfers(transfers)
        if [r.index for r in results] != list(range(len(transfers))):
            raise BenchFailure(f"create_transfers answered indexes {[r.index for r in results]}")
        for seq, r in zip(seqs, results, strict=True):
            statuses[seq] = r.status
    return statuses


def run_single_client(
    led: Ledger, tag: int, rows: Sequence[W1Transfer], batch_size: int
) -> tuple[float, Statuses]:
    batches = prepare(tag, rows, batch_size)
    started = time.perf_counter()
    statuses = _submit(led, batches)
    return time.perf_counter() - started, statuses


def run_threads(
    led: Ledger, tag: int, rows: Sequence[W1Transfer], clients: int, batch_size: int
) -> tuple[float, Statuses]:
    """``clients`` threads on one Ledger; row ``i`` goes to thread ``i % clients``."""
    shares = [prepare(tag, rows[k::clients], batch_size) for k in range(clients)]
    answers: list[Statuses] = [{} for _ in range(clients)]
    errors: list[BaseException] = []
    start_line = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        try:
            start_line.wait()
            answers[k] = _submit(led, shares[k])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,), name=f"w1-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    start_line.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise BenchFailure(f"a client thread raised: {errors[0]!r}") from errors[0]
    statuses: Statuses = {}
    for found in answers:
        statuses.update(found)
    return elapsed, statuses


# -- checks ---------------------------------------------------------------------------


def read_accounts(led: Ledger, numbers: Sequence[int]) -> dict[int, Account]:
    found: dict[int, Account] = {}
    for batch in chunks(numbers, BATCH_SIZE_MAX):
        for a in led.lookup_accounts([account_id(n) for n in batch]):
            found[a.id.int] = a
    return found


def check_run(led: Ledger, mode: Mode, rows: Sequence[W1Transfer], statuses: Statuses) -> list[str]:
    """Every problem found after a run (empty: the run passed)."""
    problems: list[str] = []
    if set(statuses) != {t.seq for t in rows}:
        problems.append(f"answers for {len(statuses)} transfers, {len(rows)} submitted")
    counted = Counter(statuses.values())
    unexpected = {str(s): n for s, n in counted.items() if s not in ACCEPTED_STATUSES}
    if unexpected:
        problems.append(f"unexpected statuses: {unexpected}")

    numbers = [*range(1, ESCROW_ACCOUNT + 1), FUNDING_ACCOUNT]
    accounts = read_accounts(led, numbers)
    missing = [n for n in numbers if n not in accounts]
    if missing:
        problems.append(f"{len(missing)} accounts missing, e.g. {missing[:5]}")
        return problems
    balances = {n: accounts[n].credits_posted - accounts[n].debits_posted for n in numbers}
    held = [n for n in numbers if accounts[n].debits_pending or accounts[n].credits_pending]
    if held:
        problems.append(f"{len(held)} accounts with pending amounts, e.g. {held[:5]}")

    limited = [n for n in numbers if n != FUNDING_ACCOUNT]
    total = sum(balances[n] for n in limited)
    if total != TOTAL_MINOR:
        problems.append(f"wallets + escrow hold {total}, not {TOTAL_MINOR}")
    if balances[FUNDING_ACCOUNT] != -TOTAL_MINOR:
        problems.append(f"funding account at {balances[FUNDING_ACCOUNT]}, not {-TOTAL_MINOR}")
    negative = [n for n in limited if balances[n] < 0]
    if negative:
        problems.append(f"{len(negative)} negative balances, e.g. {negative[:5]}")

    created = [seq for seq, s in statuses.items() if s == Status.CREATED]
    expected_from_answers = workload.apply_created(rows, created)
    off = [n for n in limited if balances[n] != expected_from_answers[n]]
    if off:
        problems.append(
            f"{len(off)} balances differ from funding + the transfers answered created,"
            f" e.g. account {off[0]}: {balances[off[0]]} != {expected_from_answers[off[0]]}"
        )

    if mode.clients == 1:
        model = workload.replay(rows)
        refused = {seq for seq, s in statuses.items() if s == Status.EXCEEDS_CREDITS}
        if refused != model.refused_seqs:
            problems.append(
                f"{len(refused)} refused, the sequential replay refuses {len(model.refused_seqs)};"
                f" differing seqs e.g. {sorted(refused ^ model.refused_seqs)[:5]}"
            )
        off = [n for n in limited if balances[n] != model.balances[n]]
        if off:
            problems.append(
                f"{len(off)} balances differ from the sequential replay,"
                f" e.g. account {off[0]}: {balances[off[0]]} != {model.balances[off[0]]}"
            )
    return problems


# -- one run --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunResult:
    mode: str
    run: int
    transfers: int
    seconds: float
    created: int
    refused: int

    @property
    def transfers_per_s(self) -> float:
        return self.transfers / self.seconds


def run_once(
    url: str, mode: Mode, rows: Sequence[W1Transfer], run: int, path: str = "database"
) -> RunResult:
    tag = 0x100 + run
    with fresh_ledger_url(url) as fresh, decided_on(path):
        led = open_ledger(fresh, migrate=True)
        try:
            set_up(led)
            if mode.clients == 1:
                seconds, statuses = run_single_client(led, tag, rows, mode.batch_size)
            else:
                seconds, statuses = run_threads(led, tag, rows, mode.clients, mode.batch_size)
            problems = check_run(led, mode, rows, statuses)
        finally:
            led.close()
    if problems:
        raise BenchFailure(f"mode {mode.name}, run {run}: " + "; ".join(problems))
    counted = Counter(statuses.values())
    return RunResult(
        label(mode, path),
        run,
        len(rows),
        seconds,
        counted[Status.CREATED],
        counted[Status.EXCEEDS_CREDITS],
    )


# -- the whole benchmark --------------------------------------------------------------


LOAD_WARNING = 0.5
"""A 1-minute load average above this before a run means something else is using the CPUs."""


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1m": load_average(),
    }


def warn_if_busy(progress: Callable[[str], None]) -> None:
    load = load_average()
    if load > LOAD_WARNING:
        progress(
            f"WARNING: 1-minute load average is {load} before the benchmark: something else is"
            " using the CPUs and the figures will be low and noisy"
        )


PGBENCH_CONFIGS: dict[int, tuple[int, int]] = {1: (1, 1), 4: (4, 2)}
"""Baseline clients -> (pgbench -c, pgbench -j)."""


@dataclass(slots=True)
class Report:
    database: dict[str, Any]
    transfers: int
    runs: int
    modes: list[Mode]
    paths: tuple[str, ...] = ("database",)
    results: dict[str, list[RunResult]] = field(default_factory=dict)
    pgbench_tps: dict[int, list[float]] = field(default_factory=dict)
    pgbench_duration_s: int = pg.PGBENCH_DURATION_S
    load_before: float = field(default_factory=load_average)

    def median_per_s(self, mode: str) -> float:
        return statistics.median(r.transfers_per_s for r in self.results[mode])

    def baseline(self, mode: Mode) -> float | None:
        found = self.pgbench_tps.get(mode.baseline_clients)
        return statistics.median(found) if found else None

    def labelled(self) -> list[tuple[Mode, str]]:
        """Every (mode, label) measured, in report order."""
        return [(mode, label(mode, path)) for mode in self.modes for path in self.paths]

    def as_json(self) -> dict[str, Any]:
        modes: dict[str, Any] = {}
        for mode, name in self.labelled():
            median = self.median_per_s(name)
            baseline = self.baseline(mode)
            ratio = median / baseline if baseline else None
            entry: dict[str, Any] = {
                "description": mode.description,
                "path": name.partition("/")[2] or "database",
                "runs": [
                    {
                        "transfers_per_s": round(r.transfers_per_s, 1),
                        "seconds": round(r.seconds, 3),
                        "created": r.created,
                        "refused": r.refused,
                    }
                    for r in self.results[name]
                ],
                "median_transfers_per_s": round(median, 1),
            }
            if baseline is not None and ratio is not None:
                entry["ratio"] = {
                    "baseline": f"pgbench_{mode.baseline_clients}_client",
                    "baseline_tps": round(baseline, 1),
                    "value": round(ratio, 3),
                    "target": mode.target_ratio,
                    "met": ratio >= mode.target_ratio,
                }
            if self.database["dialect"] == "sqlite" and mode.sqlite_target_per_s is not None:
                entry["sqlite_target"] = {
                    "transfers_per_s": mode.sqlite_target_per_s,
                    "met": median >= mode.sqlite_target_per_s,
                }
            modes[name] = entry
        pgbench = {
            f"{clients}_client": {
                "clients": clients,
                "threads": PGBENCH_CONFIGS[clients][1],
                "duration_s": self.pgbench_duration_s,
                "scale": pg.PGBENCH_SCALE,
                "tps": [round(t, 1) for t in tps],
                "median_tps": round(statistics.median(tps), 1),
            }
            for clients, tps in sorted(self.pgbench_tps.items())
        }
        return {
            "workload": "W1",
            "transfers": self.transfers,
            "runs": self.runs,
            "database": self.database,
            "machine": {**machine(), "load_average_1m_before": self.load_before},
            "modes": modes,
            "pgbench": pgbench,
            "verification": "passed",
        }


def run_benchmark(
    url: str,
    modes: list[Mode],
    rows: Sequence[W1Transfer],
    runs: int,
    pgbench_duration_s: int,
    progress: Callable[[str], None] = pg.log,
    paths: tuple[str, ...] = ("database",),
) -> Report:
    warn_if_busy(progress)
    report = Report(describe_database(url), len(rows), runs, modes, paths)
    report.pgbench_duration_s = pgbench_duration_s
    bench: pg.PgBench | None = None
    baselines = sorted({m.baseline_clients for m in modes})
    if pg.is_postgres(url):
        bench = pg.PgBench(url)
        progress(f"pgbench: initialising {bench.database} at scale {bench.scale}, warming up")
        bench.initialise()
        bench.warm_up()
    try:
        for run in range(1, runs + 1):
            for mode, path in [(mode, path) for mode in modes for path in paths]:
                result = run_once(url, mode, rows, run, path)
                report.results.setdefault(result.mode, []).append(result)
                progress(
                    f"run {run} mode {result.mode}: {result.transfers_per_s:,.0f} transfers/s"
                    f" ({result.seconds:.2f} s; {result.created} created,"
                    f" {result.refused} refused; checks passed)"
                )
            if bench is not None:
                for clients in baselines:
                    c, j = PGBENCH_CONFIGS[clients]
                    done = bench.run(clients=c, threads=j, duration_s=pgbench_duration_s)
                    report.pgbench_tps.setdefault(clients, []).append(done.tps)
                    progress(f"run {run} pgbench -c {c} -j {j}: {done.tps:,.0f} tps")
    finally:
        if bench is not None:
            bench.drop()
    return report


# -- output ---------------------------------------------------------------------------


def render_table(report: Report) -> str:
    db = report.database
    if db["dialect"] == "postgresql":
        where = (
            f"PostgreSQL {db['server_version']} (fsync={db['fsync']},"
            f" synchronous_commit={db['synchronous_commit']},"
            f" shared_buffers={db['shared_buffers']})"
        )
    else:
        where = f"SQLite {db['sqlite_version']}"
    lines = [
        f"W1 on {where}: {report.transfers:,} transfers, {report.runs} run(s) per mode,"
        f" {os.cpu_count()} CPUs, load average {report.load_before} before, {load_average()} after",
        "",
    ]
    run_heads = "".join(f"{'run ' + str(i):>10}" for i in range(1, report.runs + 1))
    lines.append(f"{'mode':<10}{'(transfers/s)':<37}{run_heads}{'median':>10}")
    for mode, name in report.labelled():
        cells = "".join(f"{r.transfers_per_s:>10,.0f}" for r in report.results[name])
        median = report.median_per_s(name)
        lines.append(f"{name:<10}{mode.description:<37}{cells}{median:>10,.0f}")
    for clients, tps in sorted(report.pgbench_tps.items()):
        c, j = PGBENCH_CONFIGS[clients]
        title = f"pgbench -s {pg.PGBENCH_SCALE} -c {c} -j {j} -T {report.pgbench_duration_s} (tps)"
        cells = "".join(f"{t:>10,.0f}" for t in tps)
        lines.append(f"{'':<10}{title:<37}{cells}{statistics.median(tps):>10,.0f}")
    lines.append("")
    lines.append("targets (medians):")
    for mode, name in report.labelled():
        median = report.median_per_s(name)
        baseline = report.baseline(mode)
        if baseline is not None:
            ratio = median / baseline
            met = "met" if ratio >= mode.target_ratio else "NOT met"
            lines.append(
                f"  {name} / pgbench {mode.baseline_clients} client"
                f"{'s' if mode.baseline_clients > 1 else ''}:"
                f" {median:,.0f} / {baseline:,.0f} = {ratio:.2f}x"
                f"  (target >= {mode.target_ratio:g}x: {met})"
            )
        if db["dialect"] == "sqlite" and mode.sqlite_target_per_s is not None:
            met = "met" if median >= mode.sqlite_target_per_s else "NOT met"
            lines.append(
                f"  {mode.name} on SQLite: {median:,.0f} transfers/s"
                f"  (target >= {mode.sqlite_target_per_s:,.0f}/s: {met})"
            )
        if baseline is None and db["dialect"] == "sqlite" and mode.sqlite_target_per_s is None:
            lines.append(f"  {mode.name}: no target on SQLite")
    lines.append("")
    lines.append(
        "checks after every run passed: statuses, conservation, no negative balance,"
        " balances = funding + transfers answered created; a and c = sequential replay"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.w1", description="Workload W1 against the ledger (see module doc)."
    )
    parser.add_argument(
        "--database", required=True, help="sqlite:///FILE or postgresql+psycopg://..."
    )
    parser.add_argument("--mode", choices=sorted(MODES), help="run one mode (default: all three)")
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT, help="runs per mode (default 3)")
    parser.add_argument(
        "--transfers",
        type=int,
        default=TRANSFER_COUNT,
        help=f"only the first N transfers of W1 (default {TRANSFER_COUNT:,}; for quick checks)",
    )
    parser.add_argument(
        "--pgbench-seconds",
        type=int,
        default=pg.PGBENCH_DURATION_S,
        help=f"duration of each pgbench run (default {pg.PGBENCH_DURATION_S})",
    )
    parser.add_argument(
        "--path",
        choices=[*PATHS, "both"],
        default="database",
        help="where plain batches are decided on PostgreSQL (default: database, as the"
        " ledger does; engine: the Python engine; both: each mode on both, interleaved)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not 1 <= args.transfers <= TRANSFER_COUNT:
        parser.error(f"--transfers must be within 1..{TRANSFER_COUNT}")
    if args.pgbench_seconds < 1:
        parser.error("--pgbench-seconds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [MODES[args.mode]] if args.mode else list(MODES.values())
    rows = workload.generate(args.transfers)
    try:
        paths = PATHS if args.path == "both" else (args.path,)
        report = run_benchmark(
            args.database, modes, rows, args.runs, args.pgbench_seconds, paths=paths
        )
    except (BenchFailure, LedgerError) as exc:
        pg.log(f"W1 FAILED: {type(exc).__name__}: {exc}")
        if args.json:
            print(json.dumps({"workload": "W1", "verification": "failed", "error": str(exc)}))
        return 1
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(render_table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
