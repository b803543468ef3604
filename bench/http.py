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

Beside the raw transfer, two requests through the village flows, timed the same way in
the same run: a **cash-in** (``POST /v1/agents/{id}/cash-ins`` of 1 minor unit, each
client an agent with float and a villager registered at its station) and an **order
payment** in cash at the agent (``POST /v1/orders/{id}/pay``, ``{"source": "cash"}``; the
orders are made beforehand through the orders flow, untimed).

Checked after every run: every signed POST answered 200 (201 for the flows); the
sources' ``debits_posted`` went up by exactly the number of 200s (one transfer each, no
double effect, nothing lost); each villager's wallet by the number of its cash-ins; every
order paid is paid once. Any failure exits non-zero.

Server CPU per request: the server's user + system CPU (the process and its children,
from ``/proc``) over a window, divided by the requests answered in it.

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
FLOAT_MINOR = 10**11
ORDER_MINOR = 100
FLOW_TARGETS = ("cash-in", "order-pay")
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
    principal_id: str


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
        shops.append(Shop(client, source, destination, made["principal_id"]))
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
class Station:
    """One agent with float, a villager registered at its station, and a storefront
    (the client's shop, onboarded) whose orders the agent is paid for in cash."""

    agent: Any
    agent_id: str
    villager_id: str
    shop_id: str
    wallet_id: str


def _post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A setup call's answer; the bench stops on anything but a 2xx."""
    answer = client.request("POST", path, json_body=body)
    if not 200 <= answer.status_code < 300:
        raise SystemExit(f"setup: POST {path} answered {answer.status_code}: {answer.text}")
    found: dict[str, Any] = answer.json()
    return found


def make_stations(database: str, base_url: str, shops: list[Shop], key_dir: Path) -> list[Station]:
    from api.client import Client
    from api.keys import create_key
    from ledger.flows import parties
    from ledger.flows.parties import Role

    desk_key = key_dir / "desk.pem"
    name = f"bench-desk-{uuid.uuid4().hex[:6]}"
    made = create_key(database, "operator", name, "ed25519", desk_key, setup_rules=False)
    desk = Client.from_key_file(base_url, made["key_id"], desk_key)
    stations = []
    for i, shop in enumerate(shops):
        path = key_dir / f"agent-{i}.pem"
        name = f"bench-agent-{i}-{uuid.uuid4().hex[:6]}"
        made = create_key(database, "agent", name, "ed25519", path)
        agent, agent_id = Client.from_key_file(base_url, made["key_id"], path), made["principal_id"]
        for party, kind in ((agent_id, "agent"), (shop.principal_id, "storefront")):
            body = {"id": party, "kind": kind, "name": f"{kind} {i}", "currency": "KES"}
            _post(desk, "/v1/parties", body)
        topup = {"id": str(uuid.uuid4()), "amount_minor": FLOAT_MINOR, "provider": "BANK"}
        _post(desk, f"/v1/agents/{agent_id}/float-topups", topup)
        phone = f"+2547{uuid.uuid4().int % 10**8:08d}"
        body = {"id": str(uuid.uuid4()), "phone": phone, "name": f"Villager {i}"}
        body |= {"currency": "KES", "language": "en"}
        villager_id = _post(agent, "/v1/villagers", body)["id"]
        wallet = str(parties.account_id(uuid.UUID(villager_id), Role.WALLET))
        stations.append(Station(agent, agent_id, villager_id, shop.principal_id, wallet))
    desk.close()
    return stations


def cash_in_requests(station: Station, count: int) -> list[Prepared]:
    path = f"/v1/agents/{station.agent_id}/cash-ins"
    url = station.agent.url(path)
    prepared = []
    for _ in range(count):
        body = json.dumps(
            {"id": str(uuid.uuid4()), "villager_id": station.villager_id, "amount_minor": 1},
            separators=(",", ":"),
        ).encode()
        headers = station.agent.signed_headers("POST", url, body, idempotency_key=str(uuid.uuid4()))
        prepared.append(Prepared("POST", path, body, headers))
    return prepared


def order_pay_requests(database: str, station: Station, count: int) -> list[Prepared]:
    """``count`` orders made through the orders flow (untimed), and their cash payments."""
    from ledger import open_ledger
    from ledger.flows import orders

    prepared = []
    with open_ledger(database) as led:
        for _ in range(count):
            order_id = uuid.uuid4()
            orders.create_order(
                led, order_id=order_id, storefront_id=uuid.UUID(station.shop_id), currency="KES",
                amount_minor=ORDER_MINOR, delivery_method="agent_delivery",
                villager_id=uuid.UUID(station.villager_id), agent_id=uuid.UUID(station.agent_id),
            )  # fmt: skip
            path = f"/v1/orders/{order_id}/pay"
            body = json.dumps({"source": "cash"}, separators=(",", ":")).encode()
            headers = station.agent.signed_headers(
                "POST", station.agent.url(path), body, idempotency_key=str(uuid.uuid4())
            )
            prepared.append(Prepared("POST", path, body, headers))
    return prepared


def server_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += used.get(current, 0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total / ticks


@dataclass
class Window:
    """One timed window against one target."""

    target: str
    seconds: float
    latencies_s: list[float]
    statuses: Counter[int]
    exhausted: int
    server_cpu_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.server_cpu_s / max(1, self.requests)

    def quantile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_window(
    port: int, target: str, work: list[list[Prepared]], seconds: float, pid: int | None = None
) -> Window:
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
    cpu_before = server_cpu_s(pid) if pid is not None else 0.0
    began = time.perf_counter()
    window["end"] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = max(time.perf_counter() - began, seconds)
    cpu = server_cpu_s(pid) - cpu_before if pid is not None else 0.0
    return Window(
        target,
        elapsed,
        [x for xs in latencies for x in xs],
        sum(statuses, Counter()),
        sum(ran_out),
        cpu,
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
            figures = {
                "per_s": w.per_s,
                "p50_ms": w.quantile_ms(0.5),
                "p99_ms": w.quantile_ms(0.99),
                "server_cpu_ms_per_request": w.cpu_ms_per_request,
            }
            values.append(figures[what])
        return statistics.median(values) if values else 0.0

    def figures(self, target: str) -> dict[str, float]:
        kinds = ("per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request")
        return {k: self.median(target, k) for k in kinds}

    def as_json(self) -> dict[str, Any]:
        signed = self.figures("signed")
        trivial = self.figures("trivial")
        ratio = signed["per_s"] / trivial["per_s"]
        return {
            "benchmark": "http",
            "database": self.database,
            "clients": self.clients,
            "seconds": self.seconds,
            "server_processes": self.workers,
            "signed_transfer_post": signed,
            "trivial_post": trivial,
            "flows": {target: self.figures(target) for target in FLOW_TARGETS},
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
                    "server_cpu_ms_per_request": round(w.cpu_ms_per_request, 3),
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
        runs = sum(1 for w in self.windows if w.target == "signed")
        lines = [
            f"{self.clients} clients, {self.workers} server process(es) each, {self.seconds:g} s"
            f" windows, medians of {runs} runs ({data['database'].get('dialect')})",
            f"{'target':<30}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/req':>12}",
        ]
        rows = [
            ("signed POST /v1/transfers", data["signed_transfer_post"]),
            ("signed cash-in (flow)", data["flows"]["cash-in"]),
            ("signed order pay (flow)", data["flows"]["order-pay"]),
            ("trivial POST", data["trivial_post"]),
        ]
        for name, row in rows:
            lines.append(
                f"{name:<30}{row['per_s']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
                f"{row['server_cpu_ms_per_request']:>12.3f}"
            )
        lines.append(
            f"ratio {data['ratio']:.1%} (target >= {TARGET_RATIO:.0%}); "
            f"p99 {data['signed_transfer_post']['p99_ms']:.1f} ms (target < {TARGET_P99_MS:g})"
        )
        return "\n".join(lines)


def debits_posted(shops: Sequence[Shop]) -> int:
    return sum(int(s.client.get_account(s.source)["debits_posted"]) for s in shops)


def wallets_credited(database: str, stations: Sequence[Station]) -> int:
    from ledger import open_ledger

    with open_ledger(database) as led:
        found = led.lookup_accounts([uuid.UUID(s.wallet_id) for s in stations])
    return sum(a.credits_posted for a in found)


def checked(window: Window, status: int, run: int) -> Window:
    """``window``, once every answer in it was ``status``; else the run stops."""
    if window.statuses.get(status, 0) != window.requests:
        raise SystemExit(f"run {run}: {window.target} statuses {dict(window.statuses)}")
    return window


@dataclass
class Targets:
    """The two servers, the clients, and how many requests each client gets per window."""

    database: str
    ledger: Server
    trivial: Server
    shops: list[Shop]
    stations: list[Station]
    per_client: int = 0
    plain_per_client: int = 0


def run_once(t: Targets, run: int, seconds: float) -> list[Window]:
    """One window of each target, in turn, each checked."""
    pid = t.ledger.process.pid
    pg.log(f"run {run}: signing {t.per_client * len(t.shops)} requests per ledger target")
    work = [signed_requests(s, t.per_client) for s in t.shops]
    before = debits_posted(t.shops)
    signed = checked(run_window(t.ledger.port, "signed", work, seconds, pid), 200, run)
    if debits_posted(t.shops) - before != signed.requests * TRANSFER_MINOR:
        raise SystemExit(f"run {run}: the sources' debits do not match {signed.requests} answers")
    work = [cash_in_requests(s, t.per_client) for s in t.stations]
    before = wallets_credited(t.database, t.stations)
    cash_in = checked(run_window(t.ledger.port, "cash-in", work, seconds, pid), 201, run)
    if wallets_credited(t.database, t.stations) - before != cash_in.requests:
        raise SystemExit(f"run {run}: the wallets do not match {cash_in.requests} cash-ins")
    work = [order_pay_requests(t.database, s, t.per_client) for s in t.stations]
    order_pay = checked(run_window(t.ledger.port, "order-pay", work, seconds, pid), 200, run)
    work = [trivial_requests(t.plain_per_client)] * len(t.shops)
    plain = checked(
        run_window(t.trivial.port, "trivial", work, seconds, t.trivial.process.pid), 200, run
    )
    for w in (signed, cash_in, order_pay, plain):
        pg.log(
            f"  {w.target}: {w.per_s:.0f}/s p99 {w.quantile_ms(0.99):.1f} ms,"
            f" server CPU {w.cpu_ms_per_request:.2f} ms/request"
        )
    return [signed, cash_in, order_pay, plain]


def warm_up(t: Targets, seconds: float) -> None:
    """A window of each kind, untimed; its rate sizes the timed windows."""
    warm = WARMUP_REQUESTS_PER_CLIENT
    plain = run_window(
        t.trivial.port, "warm-up", [trivial_requests(warm * 4)] * len(t.shops), WARMUP_S
    )
    signed = run_window(
        t.ledger.port, "warm-up", [signed_requests(s, warm) for s in t.shops], WARMUP_S
    )
    run_window(
        t.ledger.port, "warm-up", [cash_in_requests(s, warm // 4) for s in t.stations], WARMUP_S
    )
    t.per_client = int(HEADROOM * signed.per_s * seconds / len(t.shops)) + 100
    t.plain_per_client = int(HEADROOM * plain.per_s * seconds / len(t.shops)) + 100


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
            stations = make_stations(database, ledger.base_url, shops, folder / "keys")
            targets = Targets(database, ledger, trivial, shops, stations)
            try:
                warm_up(targets, seconds)
                for run in range(1, runs + 1):
                    report.windows.extend(run_once(targets, run, seconds))
            finally:
                for client in [s.client for s in shops] + [s.agent for s in stations]:
                    client.close()
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
