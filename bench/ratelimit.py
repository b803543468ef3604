"""What the shared per-key rate limit costs a request: one take, timed one by one.

    python -m bench.ratelimit --database URL [--takes 5000] [--json]

On a fresh database with one API key, ``--takes`` calls of each, timed with
``time.perf_counter`` (median and p99, microseconds):

* ``take allowed``: :meth:`api.ratelimit.KeyRateLimit.take` with a limit never reached
  (the request's path: ``BEGIN``, the one statement, ``COMMIT``);
* ``take refused``: the same with a spent bucket (the statement, then the read of the
  row for ``Retry-After``);
* ``empty transaction``: ``Ledger.transact`` running ``SELECT 1`` (the floor: the same
  round trips with nothing to do);
* ``thread hop``: an event loop handing a no-op to the worker threads and back
  (``starlette.concurrency.run_in_threadpool``, as ``api.routes.common.signed`` does:
  a request whose key is remembered used to be checked on the loop without one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from api.keys import create_key
from api.ratelimit import KeyRateLimit
from bench.w1 import describe_database, fresh_ledger_url, machine, warn_if_busy
from ledger import Ledger, open_ledger

TAKES_DEFAULT = 5000
BENCH_DATABASE = "vledger_bench_ratelimit"
NEVER_REACHED_PER_S = 1e6
"""A limit no benchmark loop reaches: every take is allowed."""


def timed_us(call: Callable[[], object], count: int) -> dict[str, float]:
    """Median and p99 of ``count`` calls, in microseconds."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
    }


def thread_hop_us(count: int) -> dict[str, float]:
    async def hops() -> dict[str, float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            await run_in_threadpool(lambda: None)
            samples.append((time.perf_counter() - started) * 1e6)
        samples.sort()
        return {
            "median_us": round(statistics.median(samples), 1),
            "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
        }

    return asyncio.run(hops())


def measure(url: str, led: Ledger, count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        made = create_key(url, "storefront", "bench", "ed25519", Path(folder) / "k.pem")
    key = made["key_id"]
    allowed = KeyRateLimit(led, rate_per_s=NEVER_REACHED_PER_S, burst=1_000_000)
    spent = KeyRateLimit(led, rate_per_s=1e-3, burst=1)
    for _ in range(count // 10):  # warm the pool and the statements
        allowed.take(key)
    found = {"take allowed": timed_us(lambda: allowed.take(key), count)}
    assert all(allowed.take(key) == 0 for _ in range(10)), "an allowed take was refused"
    spent.take(key)
    found["take refused"] = timed_us(lambda: spent.take(key), count)
    assert spent.take(key) > 0, "a spent bucket allowed a take"
    found["empty transaction"] = timed_us(
        lambda: led.transact(lambda tx: tx.one("SELECT 1")), count
    )
    found["thread hop"] = thread_hop_us(count)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit")
    parser.add_argument("--database", required=True, metavar="URL")
    parser.add_argument("--takes", type=int, default=TAKES_DEFAULT)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    warn_if_busy(lambda line: print(line, file=sys.stderr))
    report: dict[str, Any] = {"machine": machine(), "takes": args.takes}
    with fresh_ledger_url(args.database, BENCH_DATABASE) as url:
        report["database"] = describe_database(url)
        with open_ledger(url, migrate=True) as led:
            report["results"] = measure(url, led, args.takes)
    report["machine"]["load_average_1m_after"] = machine()["load_average_1m"]
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, figures in report["results"].items():
        print(f"{name:18} median {figures['median_us']:8.1f} us  p99 {figures['p99_us']:8.1f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
