"""USSD steps per second over the served callback, beside ``/healthz`` in the same run,
and PIN checks per second per core.

    python -m bench.ussd --database postgresql+psycopg://postgres@127.0.0.1:5432/test
                         [--seconds 5] [--clients 8] [--runs 3] [--json]

One server subprocess on 127.0.0.1 (:func:`api.server.serve`, what ``vledger serve``
runs, one worker) on a fresh database (PostgreSQL: a new database, dropped afterwards),
with an aggregator secret and ``127.0.0.0/8`` as its source network (environment, as a
deployment sets them). Setup, untimed: one agent and one active villager per client
(each client dials its own phone, as real sessions do).

Timed, ``--clients`` threads with one keep-alive connection each, for ``--seconds``, the
targets alternating run by run (medians of ``--runs``; ``--targets menu`` runs one, to
profile it), each with the server's CPU ms per step (user + system, its process tree):

- **healthz**: ``GET /healthz``, the trivial route;
- **menu**: USSD steps that need no PIN: a session is dialled (``""``), then walks
  ``4`` (language menu) / ``0`` (back) until :data:`~ledger.flows.ussd.INPUTS_MAX`
  inputs, then a new session; every answer must be ``CON ...`` (else the run fails);
- **pin**: sessions of three steps, dial, ``1`` (balance), the PIN: the PIN step runs
  one argon2id verify (off the event loop) and is counted and timed on its own.

Also: **PIN checks per second per core**: the villagers flow's hasher
(``ledger.flows.villagers.service._HASHER``) verifying one PIN, back to back on one
thread (one core) for ``--seconds``.

Client and server share the machine (the client's threads take CPU from the server, the
same for every target).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.http import HOST, server, server_cpu_s
from bench.w1 import fresh_ledger_url

SECONDS_DEFAULT = 5.0
CLIENTS_DEFAULT = 8
RUNS_DEFAULT = 3
WARMUP_S = 1.0
SECRET = "bench-" + uuid.uuid4().hex
PIN = "739146"
TARGET_RATIO = 0.5
BENCH_DATABASE = "vledger_bench_ussd"


@dataclass
class Tally:
    count: int = 0
    per_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    server_cpu_s: float = 0.0


class Client:
    """One thread's keep-alive connection, dialling its own phone."""

    def __init__(self, port: int, phone: str) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.phone = phone

    def get(self, path: str) -> str:
        self.conn.request("GET", path)
        return self.conn.getresponse().read().decode()

    def step(self, session_id: str, text: str) -> str:
        body = urllib.parse.urlencode(
            {
                "sessionId": session_id,
                "serviceCode": "*384*55#",
                "phoneNumber": self.phone,
                "networkCode": "63902",
                "text": text,
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        self.conn.request("POST", f"/ussd/africastalking/{SECRET}", body, headers)
        return self.conn.getresponse().read().decode()


def _timed(tally: Tally, call: Callable[..., str], args: tuple[str, ...], want: str) -> None:
    started = time.perf_counter()
    answer = call(*args)
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
    tally.count += 1
    if not answer.startswith(want):
        tally.errors.append(answer[:80])


def _healthz(client: Client, until: float, tally: Tally) -> None:
    while time.perf_counter() < until:
        _timed(tally, client.get, ("/healthz",), '{"status"')


def _menu(client: Client, until: float, tally: Tally) -> None:
    from ledger.flows.ussd import INPUTS_MAX

    while time.perf_counter() < until:
        sid, inputs = f"bench_{uuid.uuid4().hex}", list[str]()
        _timed(tally, client.step, (sid, ""), "CON ")
        while len(inputs) < INPUTS_MAX and time.perf_counter() < until:
            inputs.append("4" if len(inputs) % 2 == 0 else "0")
            text = "*".join(inputs)
            _timed(tally, client.step, (sid, text), "CON ")


def _pin(client: Client, until: float, tally: Tally) -> None:
    while time.perf_counter() < until:
        sid = f"bench_{uuid.uuid4().hex}"
        client.step(sid, "")
        client.step(sid, "1")
        _timed(tally, client.step, (sid, f"1*{PIN}"), "CON Balance")


TARGETS: dict[str, Callable[[Client, float, Tally], None]] = {
    "healthz": _healthz,
    "menu": _menu,
    "pin": _pin,
}


def _window(port: int, pid: int, phones: list[str], target: str, seconds: float) -> Tally:
    clients = [Client(port, phone) for phone in phones]
    tallies = [Tally() for _ in clients]
    until = time.perf_counter() + seconds
    threads = [
        threading.Thread(target=TARGETS[target], args=(c, until, t))
        for c, t in zip(clients, tallies, strict=True)
    ]
    cpu_before, started = server_cpu_s(pid), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = Tally(server_cpu_s=server_cpu_s(pid) - cpu_before)
    for tally in tallies:
        total.count += tally.count
        total.latencies_ms += tally.latencies_ms
        total.errors += tally.errors
    total.latencies_ms.sort()
    total.per_s = total.count / elapsed
    return total


def _seed(url: str, count: int) -> list[str]:
    """One agent, ``count`` active villagers (PIN :data:`PIN`) with a cash-in each."""
    from ledger import open_ledger
    from ledger.flows import agent_float, cash, events, limits, parties, villagers
    from ledger.flows.parties import Kind

    led = open_ledger(url, migrate=True)
    agent = parties.onboard(
        led, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Bench shop", currency="KES"
    )
    agent_float.top_up_float(
        led, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=10**9, provider="BANK"
    )
    phones = []
    for n in range(count):
        phone = f"+2547{n:08d}"
        made = villagers.register_villager(
            led,
            villager_id=uuid.uuid4(),
            agent_id=agent.id,
            phone=phone,
            name=f"Villager {n}",
            currency="KES",
            language="en",
        )
        sent = led.transact(lambda tx, v=made.id: events.read_events(tx, party_id=v, limit=100))  # type: ignore[misc]
        code = next(
            str(e.payload["code"]) for e in sent if e.type == events.VILLAGER_ACTIVATION_CODE
        )
        villagers.activate(led, phone=made.phone, activation_code=code, pin=PIN)
        limits.set_kyc_tier(led, villager_id=made.id, tier="tier1")
        cash.cash_in(
            led,
            cash_in_id=uuid.uuid4(),
            agent_id=agent.id,
            villager_id=made.id,
            amount_minor=10_000,
        )
        phones.append(made.phone)
    led.close()
    return phones


def pin_checks_per_s(seconds: float) -> tuple[float, float, str]:
    """PIN verifies per second on one thread, the median ms of one, the parameters."""
    from ledger.flows.villagers import service as villager_service

    hasher = villager_service._HASHER
    hashed = hasher.hash(PIN)
    times = []
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        started = time.perf_counter()
        hasher.verify(hashed, PIN)
        times.append(time.perf_counter() - started)
    params = f"argon2id m={hasher.memory_cost} KiB, t={hasher.time_cost}, p={hasher.parallelism}"
    return len(times) / sum(times), statistics.median(times) * 1000, params


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


def run(
    database: str, seconds: float, clients: int, runs: int, targets: list[str]
) -> dict[str, Any]:
    with fresh_ledger_url(database, BENCH_DATABASE) as url:
        phones = _seed(url, clients)
        os.environ["VLEDGER_USSD_SECRETS"] = SECRET
        os.environ["VLEDGER_USSD_SOURCE_NETWORKS"] = "127.0.0.0/8"
        log = Path(tempfile.mkdtemp(prefix="bench_ussd_")) / "server.log"
        with server("ledger", url, log, 1) as served:
            pid = served.process.pid
            for target in targets:
                _window(served.port, pid, phones, target, WARMUP_S)
            found: dict[str, list[Tally]] = {t: [] for t in targets}
            for n in range(runs):
                order = targets if n % 2 == 0 else targets[::-1]
                for target in order:
                    tally = _window(served.port, pid, phones, target, seconds)
                    if tally.errors:
                        raise SystemExit(f"{target}: unexpected answers {tally.errors[:3]}")
                    found[target].append(tally)
    per_s, verify_ms, params = pin_checks_per_s(seconds)
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clients": clients,
        "seconds": seconds,
        "runs": runs,
    }
    for target, tallies in found.items():
        out[target] = {
            "per_s_median": statistics.median(t.per_s for t in tallies),
            "p50_ms_median": statistics.median(_pct(t.latencies_ms, 0.5) for t in tallies),
            "p99_ms_median": statistics.median(_pct(t.latencies_ms, 0.99) for t in tallies),
            "server_cpu_ms_per_step_median": statistics.median(
                1000 * t.server_cpu_s / max(1, t.count) for t in tallies
            ),
        }
    if "menu" in found and "healthz" in found:
        out["menu_vs_healthz"] = out["menu"]["per_s_median"] / out["healthz"]["per_s_median"]
        out["goal_met"] = out["menu_vs_healthz"] >= TARGET_RATIO
    out["pin_hash"] = {"params": params, "verify_ms_median": verify_ms, "per_s_per_core": per_s}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ussd", description=__doc__)
    parser.add_argument("--database", required=True)
    parser.add_argument("--seconds", type=float, default=SECONDS_DEFAULT)
    parser.add_argument("--clients", type=int, default=CLIENTS_DEFAULT)
    parser.add_argument("--runs", type=int, default=RUNS_DEFAULT)
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="comma-separated, of " + ", ".join(TARGETS) + " (all by default; one to profile)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    if not targets or any(t not in TARGETS for t in targets):
        parser.error(f"--targets: a comma-separated list of {', '.join(TARGETS)}")
    out = run(args.database, args.seconds, args.clients, args.runs, targets)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for target in targets:
        t = out[target]
        print(
            f"{target:8} {t['per_s_median']:8.1f}/s  p50 {t['p50_ms_median']:6.1f} ms"
            f"  p99 {t['p99_ms_median']:6.1f} ms"
            f"  server CPU {t['server_cpu_ms_per_step_median']:5.2f} ms/step"
        )
    if "menu_vs_healthz" in out:
        print(f"menu / healthz: {out['menu_vs_healthz']:.2f} (goal >= {TARGET_RATIO})")
    pin = out["pin_hash"]
    print(
        f"PIN checks: {pin['per_s_per_core']:.1f}/s per core ({pin['params']},"
        f" {pin['verify_ms_median']:.1f} ms a verify)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
