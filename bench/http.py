"""The signed API under load, beside a trivial FastAPI route on the same server settings.

    python -m bench.http --database postgresql+psycopg://postgres@127.0.0.1:5432/test
                         [--seconds 10] [--clients 16] [--runs 3] [--workers 1] [--json]

Two servers run as subprocesses on 127.0.0.1, each ``--workers`` uvicorn processes
(default 1) with :func:`api.server.uvicorn_config` (what ``vledger serve [--workers N]``
runs):

- **ledger**: :func:`api.server.serve` on a fresh database (PostgreSQL: a new database on
  the server the URL names, dropped afterwards; SQLite: a new file), default
  :class:`api.settings.Settings` (rate limit included), JSON access log to a file;
- **trivial**: a FastAPI app with one unsigned ``POST /trivial`` (a sync handler, like
  ours, that answers ``{"ok": true}``).

Setup, untimed: ``--clients`` storefront principals with one Ed25519 key each (16 shops,
not one key shared, so the per-key rate limit is the one a real shop meets); each opens
a source account with ``debits_must_not_exceed_credits``, funded through the API, and a
destination. Before each timed window every client's requests are built and signed
(``POST /v1/transfers`` with one transfer of 1 minor unit, a fresh Idempotency-Key and
transfer id each): signing is the client's cost, not the server's.

Timed: ``--clients`` threads, each with one keep-alive ``http.client`` connection,
released together, send their requests back to back for ``--seconds``; each latency is
one request's send to its last byte read. The trivial route gets the same number of
threads and the same body bytes. The targets alternate, run by run, after a warm-up of
each; the figures are the medians of ``--runs`` runs.

Checked after every run: every signed POST answered 200; the sources' ``debits_posted``
went up by exactly the number of 200s (one transfer each, no double effect, nothing
lost). Any failure exits non-zero.

Client and servers share the machine: the client's threads (Python) take CPU from the
server, the same for both targets.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import pgbench as pg
from bench.w1 import fresh_ledger_url

HOST = "127.0.0.1"
CLIENTS_DEFAULT = 16
SECONDS_DEFAULT = 10.0
RUNS_DEFAULT = 3
WARMUP_S = 2.0
WARMUP_REQUESTS_PER_CLIENT = 400
"""Enough for the warm-up window on 2 cores; its rate sizes the timed windows."""
HEADROOM = 3
"""Requests signed in advance per window: this many times what the warm-up's rate would
need (a client that runs out stops early and the run says so)."""
FUNDING_MINOR = 10**12
TRANSFER_MINOR = 1
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
START_TIMEOUT_S = 30.0
BENCH_DATABASE = "vledger_bench_http"


# -- the servers ----------------------------------------------------------------------


def trivial_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/trivial")
    def trivial() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, port: int, database: str, workers: int = 1) -> None:
    """The server subprocess: ``vledger serve`` itself, or the trivial app, in ``workers``
    processes each (uvicorn's supervisor, as ``vledger serve --workers``)."""
    if kind == "ledger":
        from api.server import serve as vledger_serve

        vledger_serve(HOST, port, database, migrate=True, workers=workers)
        return
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from api.server import tcp_socket, uvicorn_config

    if workers == 1:
        uvicorn.Server(uvicorn_config(trivial_app(), HOST, port)).run()
        return
    config = uvicorn_config(f"{__name__}:trivial_app", HOST, port, workers=workers)
    Multiprocess(config, sockets=[tcp_socket(HOST, port)]).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextmanager
def server(kind: str, database: str, log_path: Path, workers: int) -> Iterator[Server]:
    port = free_port()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.http",
                "--serve",
                kind,
                "--port",
                str(port),
                "--database",
                database,
                "--workers",
                str(workers),
            ],
            stdout=log_file,
            stderr=log_file,
        )
        running = Server(kind, port, process)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"the {kind} server exited: see {log_path}")
                try:
                    conn = http.client.HTTPConnection(HOST, port, timeout=1)
                    conn.request("GET", "/healthz")
                    if conn.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"the {kind} server did not start: see {log_path}")
                time.sleep(0.1)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# -- the clients ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepared:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Shop:
    """One storefront: its signing client and its two accounts."""

    client: Any
    source: str
    destination: str


def make_shops(database: str, base_url: str, count: int, key_dir: Path) -> list[Shop]:
    from api.client import Client
    from api.keys import create_key

    # No tenant mints money (api.access): an operator lends each shop's bounded source
    # its funding from an account of the operator's own.
    lender_key = key_dir / "lender.pem"
    made = create_key(
        database,
        "operator",
        f"bench-lender-{uuid.uuid4().hex[:6]}",
        "ed25519",
        lender_key,
        setup_rules=False,  # a bench database keeps every run's lender
    )
    lender = Client.from_key_file(base_url, made["key_id"], lender_key)
    bank = lender.create_account(id=uuid.uuid4(), currency="KES", code=1)["id"]
    shops = []
    for i in range(count):
        path = key_dir / f"shop-{i}.pem"
        made = create_key(
            database, "storefront", f"bench-shop-{i}-{uuid.uuid4().hex[:6]}", "ed25519", path
        )
        client = Client.from_key_file(base_url, made["key_id"], path)
        source = client.create_account(
            id=uuid.uuid4(), currency="KES", code=1, flags=["debits_must_not_exceed_credits"]
        )["id"]
        destination = client.create_account(id=uuid.uuid4(), currency="KES", code=1)["id"]
        [funded] = lender.create_transfers([transfer(bank, source, FUNDING_MINOR)])
        if funded["status"] != "created":
            raise SystemExit(f"funding a source failed: {funded}")
        shops.append(Shop(client, source, destination))
    lender.close()
    return shops


def transfer(debit: str, credit: str, amount: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "KES",
        "code": 1,
    }


def signed_requests(shop: Shop, count: int) -> list[Prepared]:
    url = shop.client.url("/v1/transfers")
    prepared = []
    for _ in range(count):
        body = json.dumps(
            {"transfers": [transfer(shop.source, shop.destination, TRANSFER_MINOR)]},
            separators=(",", ":"),
        ).encode()
        headers = shop.client.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
        prepared.append(Prepared("POST", "/v1/transfers", body, headers))
    return prepared


def trivial_requests(count: int) -> list[Prepared]:
    body = json.dumps(
        {"transfers": [transfer(str(uuid.uuid4()), str(uuid.uuid4()), TRANSFER_MINOR)]},
        separators=(",", ":"),
    ).encode()
    one = Prepared("POST", "/trivial", body, {"content-type": "application/json"})
    return [one] * count


@dataclass
class Window:
    """One timed window against one target."""

    target: str
    seconds: float
    latencies_s: list[float]
    statuses: Counter[int]
    exhausted: int

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_window(port: int, target: str, work: list[list[Prepared]], seconds: float) -> Window:
    latencies: list[list[float]] = [[] for _ in work]
    statuses: list[Counter[int]] = [Counter() for _ in work]
    ran_out = [False] * len(work)
    start = threading.Barrier(len(work) + 1)
    window: dict[str, float] = {}

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        conn.connect()
        mine, seen = latencies[i], statuses[i]
        start.wait()
        deadline = window["end"]
        for request in work[i]:
            began = time.perf_counter()
            if began >= deadline:
                break
            conn.request(request.method, request.path, body=request.body, headers=request.headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            seen[response.status] += 1
        else:
            ran_out[i] = True
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    began = time.perf_counter()
    window["end"] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = max(time.perf_counter() - began, seconds)
    return Window(
        target,
        elapsed,
        [x for xs in latencies for x in xs],
        sum(statuses, Counter()),
        sum(ran_out),
    )


# -- the run --------------------------------------------------------------------------


@dataclass
class Report:
    database: dict[str, Any]
    clients: int
    seconds: float
    workers: int = 1
    """Server processes of each target."""
    windows: list[Window] = field(default_factory=list)

    def median(self, target: str, what: str) -> float:
        values = []
        for w in self.windows:
            if w.target != target:
                continue
            values.append(
                {"per_s": w.per_s, "p50_ms": w.quantile_ms(0.5), "p99_ms": w.quantile_ms(0.99)}[
                    what
                ]
            )
        return statistics.median(values)

    def as_json(self) -> dict[str, Any]:
        signed = {k: self.median("signed", k) for k in ("per_s", "p50_ms", "p99_ms")}
        trivial = {k: self.median("trivial", k) for k in ("per_s", "p50_ms", "p99_ms")}
        ratio = signed["per_s"] / trivial["per_s"]
        return {
            "benchmark": "http",
            "database": self.database,
            "clients": self.clients,
            "seconds": self.seconds,
            "server_processes": self.workers,
            "signed_transfer_post": signed,
            "trivial_post": trivial,
            "ratio": ratio,
            "targets_met": {
                "ratio_at_least_50pct": ratio >= TARGET_RATIO,
                "p99_under_50ms": signed["p99_ms"] < TARGET_P99_MS,
            },
            "runs": [
                {
                    "target": w.target,
                    "requests": w.requests,
                    "per_s": round(w.per_s, 1),
                    "p50_ms": round(w.quantile_ms(0.5), 2),
                    "p99_ms": round(w.quantile_ms(0.99), 2),
                    "statuses": {str(k): v for k, v in sorted(w.statuses.items())},
                    "clients_out_of_requests": w.exhausted,
                }
                for w in self.windows
            ],
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
            },
        }

    def table(self) -> str:
        data = self.as_json()
        lines = [
            f"{self.clients} clients, {self.workers} server process(es) each, {self.seconds:g} s"
            f" windows, medians of {len(self.windows) // 2} runs"
            f" ({data['database'].get('dialect')})",
            f"{'target':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}",
        ]
        for name, key in (
            ("signed POST /v1/transfers", "signed_transfer_post"),
            ("trivial POST", "trivial_post"),
        ):
            row = data[key]
            lines.append(
                f"{name:<24}{row['per_s']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            )
        lines.append(
            f"ratio {data['ratio']:.1%} (target >= {TARGET_RATIO:.0%}); "
            f"p99 {data['signed_transfer_post']['p99_ms']:.1f} ms (target < {TARGET_P99_MS:g})"
        )
        return "\n".join(lines)


def debits_posted(shops: Sequence[Shop]) -> int:
    return sum(int(s.client.get_account(s.source)["debits_posted"]) for s in shops)


def bench(
    database_url: str, *, clients: int, seconds: float, runs: int, workers: int = 1
) -> Report:
    from bench.w1 import describe_database

    report = Report(describe_database(database_url), clients, seconds, workers)
    with (
        fresh_ledger_url(database_url, BENCH_DATABASE) as database,
        tempfile.TemporaryDirectory(prefix="vledger-bench-http-") as tmp,
    ):
        folder = Path(tmp)
        pg.log(f"servers: ledger on {database.rsplit('@', 1)[-1]}, trivial; logs in {folder}")
        with (
            server("ledger", database, folder / "ledger.log", workers) as ledger,
            server("trivial", database, folder / "trivial.log", workers) as trivial,
        ):
            (folder / "keys").mkdir()
            shops = make_shops(database, ledger.base_url, clients, folder / "keys")
            try:
                warm = WARMUP_REQUESTS_PER_CLIENT
                plain = run_window(
                    trivial.port, "warm-up", [trivial_requests(warm * 4)] * clients, WARMUP_S
                )
                signed = run_window(
                    ledger.port, "warm-up", [signed_requests(s, warm) for s in shops], WARMUP_S
                )
                per_client = int(HEADROOM * signed.per_s * seconds / clients) + 100
                plain_per_client = int(HEADROOM * plain.per_s * seconds / clients) + 100
                for run in range(1, runs + 1):
                    pg.log(f"run {run}/{runs}: signing {per_client * clients} requests")
                    work = [signed_requests(s, per_client) for s in shops]
                    before = debits_posted(shops)
                    pg.log(f"  signed window, {seconds:g} s")
                    signed = run_window(ledger.port, "signed", work, seconds)
                    moved = debits_posted(shops) - before
                    ok = signed.statuses.get(200, 0)
                    if ok != signed.requests or moved != ok * TRANSFER_MINOR:
                        raise SystemExit(
                            f"run {run}: statuses {dict(signed.statuses)}, "
                            f"{moved} minor units moved for {ok} answers 200"
                        )
                    report.windows.append(signed)
                    plain = run_window(
                        trivial.port,
                        "trivial",
                        [trivial_requests(plain_per_client)] * clients,
                        seconds,
                    )
                    if plain.statuses.get(200, 0) != plain.requests:
                        raise SystemExit(f"run {run}: trivial statuses {dict(plain.statuses)}")
                    report.windows.append(plain)
                    pg.log(
                        f"  signed {signed.per_s:.0f}/s p99 {signed.quantile_ms(0.99):.1f} ms;"
                        f" trivial {plain.per_s:.0f}/s p99 {plain.quantile_ms(0.99):.1f} ms"
                    )
            finally:
                for shop in shops:
                    shop.client.close()
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.http",
        description="Signed single-transfer POSTs against vledger serve, beside a trivial route.",
    )
    parser.add_argument("--database", required=True, help="PostgreSQL (or SQLite) URL")
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT, help="per window")
    parser.add_argument("--clients", type=int, default=CLIENTS_DEFAULT, help="threads")
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT, help="windows per target")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes of each target (default 1)"
    )
    parser.add_argument("--serve", choices=("ledger", "trivial"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256:
        parser.error("--clients must be 1..256")
    if not 0 < args.seconds <= 600:
        parser.error("--seconds must be in (0, 600]")
    if not 1 <= args.runs <= 20:
        parser.error("--runs must be 1..20")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be 1..16")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.database, args.workers)
        return 0
    report = bench(
        args.database,
        clients=args.clients,
        seconds=args.seconds,
        runs=args.runs,
        workers=args.workers,
    )
    print(json.dumps(report.as_json(), indent=2) if args.json else report.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
