"""Fault tests: the service, the database and the worker killed under load (issue 18).

Each test starts its own throwaway PostgreSQL cluster (:mod:`tests.pgcluster`: initdb and
pg_ctl on a free port, never the machine's server) and runs the real commands as
subprocesses, as an operator runs them:

1. ``vledger serve`` killed (SIGKILL) under signed HTTP load: every request answered 2xx
   is in the database once after a restart; every request sent again (same key, same
   body) answers what it answered the first time; one that got no answer runs now, once.
   Its supervisor killed alone (``--workers 2``): the workers end too, the port closes.
2. The database killed (``pg_ctl stop -m immediate``) under load: while it is down every
   request answers 503 ``application/problem+json`` within :data:`DOWN_ANSWER_S_MAX`
   (never a 500, never a hang) and ``/readyz`` says not ready; once it is back the same
   ``vledger serve`` (never restarted) answers 2xx again by itself, and nothing it
   acknowledged is lost.
3. ``vledger worker`` killed during a webhook delivery (the receiver stalls the first
   POST): after a restart the delivery is made again with the same ``webhook-id``; and
   killed during a scheduled reconciliation: the restarted worker fails the dead one's
   procrastinate job once its heartbeat is stale and finishes the schedule; every
   business date ends with exactly one run row.

The leases that keep a dead worker's work from being taken at once are long on purpose
(a webhook delivery 60 s, a reconciliation claim an hour); the worker tests move a
lease's end back in the database instead of waiting, and say where.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.client import Client
from api.keys import create_key
from api.problems import PROBLEM_CONTENT_TYPE
from ledger import Account, Transfer, open_ledger
from ledger.core.postgres_store import POOL_WAIT_S
from ledger.flows import events
from reconciliation.schedule import LEASE_S as CLAIM_LEASE_S
from reconciliation.tasks import STALLED_AFTER_S, STALLED_CHECK_S
from tests.pgcluster import Cluster, free_port, throwaway_cluster
from webhooks import WebhookSettings, create_endpoint
from webhooks.signing import signature_header

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
"""How long a started command may take to answer (serve) or say it runs (worker)."""
LOAD_THREADS = 4
"""Client threads, one storefront key each (the per-key rate limit is 50/s)."""
ANSWERS_BEFORE_KILL = 120
"""2xx answers the load must have had before the kill."""
REQUEST_TIMEOUT_S = 30.0
"""The load's own bound on one request: longer than any answer the service should take."""
DOWN_ANSWER_S_MAX = 2 * POOL_WAIT_S + 2.0
"""While the database is down a request answers 503 within this: a wait for a pooled
connection (``POOL_WAIT_S``) at most twice (the key lookup, then the claim), plus the
request's own work."""
DOWN_FOR_S = DOWN_ANSWER_S_MAX + 10.0
"""How long the database stays down: long enough for requests to meet every wait, and
for requests sent in its first seconds to be answered before it is back (the checked
window ends ``DOWN_ANSWER_S_MAX`` before the restart; equal to it, the window was empty
whenever a loaded machine made the probes slow)."""
RECOVER_S_MAX = 20.0
"""After the database is back, the service answers 2xx again within this."""
FUNDING_MINOR = 10**12
WORKER_NETWORKS = {"VLEDGER_WEBHOOK_NETWORKS_ALLOWED": "127.0.0.0/8"}
REPLAY_IN_PROGRESS = "idempotency_in_progress"
NOT_STORED = frozenset({429, 500, 502, 503, 504})
"""Answers the service does not keep for a replay (the key is free to run again)."""


# -- the commands ---------------------------------------------------------------------


@dataclass
class Command:
    """A ``vledger`` subcommand run as a subprocess (stdout and stderr to ``log``)."""

    args: list[str]
    folder: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Command:
        env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vledger", *self.args],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the kill takes all of it
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group (``vledger serve`` may be a supervisor with
        worker processes), as a container's or a machine's sudden end would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def close(self) -> None:
        if self.process is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def wait_for(what: str, ready: Callable[[], bool], command: Command, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert command.alive(), f"{what}: the command exited\n{command.output()}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s\n{command.output()}"
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def served(cluster: Cluster, folder: Path) -> Iterator[Command]:
    """``vledger serve`` on the cluster, on a free port, answering; killed afterwards."""
    port = free_port()
    serve = Command(
        ["serve", "--port", str(port), "--database", cluster.url], folder, folder / "serve.log"
    )
    serve.env["VLEDGER_TEST_PORT"] = str(port)
    try:
        start_serve(serve)
        yield serve
    finally:
        serve.close()


def base_url(serve: Command) -> str:
    return f"http://{HOST}:{serve.env['VLEDGER_TEST_PORT']}"


def start_serve(serve: Command) -> None:
    serve.start()
    url = base_url(serve)
    wait_for("vledger serve", lambda: answers(url + "/healthz"), serve, START_TIMEOUT_S)


# -- signed load ----------------------------------------------------------------------


@dataclass
class Shop:
    """A storefront's signing client and its two accounts (the source bounded, funded)."""

    client: Client
    source: str
    destination: str


@dataclass
class Sent:
    """One POST /v1/transfers of the load: what was sent and what came back."""

    shop: Shop
    key: str
    body: bytes
    transfer_id: str
    amount: int
    status: int | None = None
    answer: bytes | None = None
    content_type: str | None = None
    elapsed_s: float | None = None
    sent_at: float = 0.0


@contextmanager
def storefronts(db_url: str, base: str, keys: Path, count: int) -> Iterator[list[Shop]]:
    """``count`` storefronts, each with a source an operator funded (no tenant mints);
    their clients closed afterwards."""
    keys.mkdir(exist_ok=True)
    lender_path = keys / "lender.pem"
    made = create_key(db_url, "operator", "lender", "ed25519", lender_path, setup_rules=False)
    shops: list[Shop] = []
    try:
        with Client.from_key_file(base, made["key_id"], lender_path) as lender:
            bank = lender.create_account(id=uuid.uuid4(), currency="KES", code=1)["id"]
            for i in range(count):
                path = keys / f"shop-{i}.pem"
                made = create_key(db_url, "storefront", f"shop-{i}", "ed25519", path)
                client = Client.from_key_file(base, made["key_id"], path)
                shops.append(Shop(client, "", ""))
                shops[-1].source = client.create_account(
                    id=uuid.uuid4(),
                    currency="KES",
                    code=1,
                    flags=["debits_must_not_exceed_credits"],
                )["id"]
                shops[-1].destination = client.create_account(
                    id=uuid.uuid4(), currency="KES", code=1
                )["id"]
                [lent] = lender.create_transfers([transfer(bank, shops[-1].source, FUNDING_MINOR)])
                assert lent["status"] == "created", lent
        yield shops
    finally:
        for shop in shops:
            shop.client.close()


def transfer(debit: str, credit: str, amount: int) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": "KES",
        "code": 1,
    }


def new_request(shop: Shop, rng: random.Random) -> Sent:
    one = transfer(shop.source, shop.destination, rng.randint(1, 10_000))
    body = json.dumps({"transfers": [one]}, separators=(",", ":")).encode()
    return Sent(shop, str(uuid.uuid4()), body, one["id"], one["amount"])


def send(http: httpx.Client, base: str, sent: Sent) -> httpx.Response:
    """POST ``sent`` signed now (a replay is the same key and body, signed again)."""
    url = base + "/v1/transfers"
    headers = sent.shop.client.signed_headers("POST", url, sent.body, idempotency_key=sent.key)
    return http.post(url, content=sent.body, headers=headers)


@dataclass
class Load:
    """``LOAD_THREADS`` threads sending new signed transfers until :meth:`stop`; every
    request is logged before it is sent, its answer after."""

    base: str
    shops: list[Shop]
    stop_on_transport_error: bool
    sent: list[Sent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for i, shop in enumerate(self.shops):
            thread = threading.Thread(target=self._run, args=(shop, i), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, shop: Shop, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
            while not self._stop.is_set():
                sent = new_request(shop, rng)
                sent.sent_at = time.monotonic()
                with self._lock:
                    self.sent.append(sent)
                try:
                    response = send(http, self.base, sent)
                except httpx.TransportError:
                    if self.stop_on_transport_error:
                        return
                    time.sleep(0.05)
                    continue
                sent.elapsed_s = time.monotonic() - sent.sent_at
                sent.content_type = response.headers.get("content-type")
                sent.answer = response.content
                sent.status = response.status_code
                if response.status_code == 429:
                    time.sleep(float(response.headers.get("retry-after", "1")))

    def ok(self) -> int:
        with self._lock:
            return sum(1 for s in self.sent if s.status is not None and 200 <= s.status < 300)

    def wait_ok(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ok() < count:
            assert time.monotonic() < deadline, f"only {self.ok()} answers 2xx"
            time.sleep(0.05)

    def stop(self) -> list[Sent]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 5)
            assert not thread.is_alive(), "a load thread hangs"
        with self._lock:
            return list(self.sent)


def stored_transfers(cluster: Cluster, ids: list[str]) -> dict[str, tuple[int, int]]:
    """transfer id -> (rows with that id, amount) for the ids in the database."""
    rows = cluster.query(
        "SELECT id::text, count(*), min(amount) FROM transfers WHERE id = ANY(%s::uuid[])"
        " GROUP BY id",
        (ids,),
    )
    return {str(r[0]): (int(str(r[1])), int(str(r[2]))) for r in rows}


@dataclass
class Replays:
    """What sending every request again answered, sorted by what it should have been."""

    differing: list[tuple[Sent, int, bytes]] = field(default_factory=list)
    in_progress: list[Sent] = field(default_factory=list)
    rerun_refused: list[tuple[Sent, int, bytes]] = field(default_factory=list)
    rerun: list[Sent] = field(default_factory=list)


def replay_all(base: str, sent: list[Sent]) -> Replays:
    """Send every request again, same key and body: a stored answer must come back as it
    was; one never answered (or answered with a status the service does not keep) runs."""
    found = Replays()
    with httpx.Client(timeout=REQUEST_TIMEOUT_S) as http:
        for s in sent:
            response = send(http, base, s)
            code = _problem_code(response)
            if response.status_code == 409 and code == REPLAY_IN_PROGRESS:
                found.in_progress.append(s)
            elif s.status is not None and s.status not in NOT_STORED:
                if (response.status_code, response.content) != (s.status, s.answer):
                    found.differing.append((s, response.status_code, response.content))
                elif response.headers.get("idempotency-replayed") != "true":
                    found.differing.append((s, response.status_code, b"not marked replayed"))
            elif response.status_code == 200:
                found.rerun.append(replace(s, status=200, answer=response.content))
            else:
                found.rerun_refused.append((s, response.status_code, response.content))
    return found


def _problem_code(response: httpx.Response) -> str | None:
    if not response.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE):
        return None
    code = response.json().get("code")
    return None if code is None else str(code)


def check_acknowledged(cluster: Cluster, sent: list[Sent]) -> dict[str, tuple[int, int]]:
    """Every request answered 2xx has its transfer in the database once, as asked; the
    transfers stored, by id."""
    stored = stored_transfers(cluster, [s.transfer_id for s in sent])
    for s in sent:
        if s.status is not None and 200 <= s.status < 300:
            assert json.loads(s.answer or b"{}")["results"][0]["status"] == "created", s.answer
            assert stored.get(s.transfer_id) == (1, s.amount), (s.transfer_id, s.sent_at, s.key)
        if s.status is not None and s.status not in NOT_STORED and s.status >= 300:
            assert s.transfer_id not in stored, f"{s.transfer_id} refused {s.status}, yet stored"
    for tid, (rows, _amount) in stored.items():
        assert rows == 1, tid
    return stored


def check_money(cluster: Cluster, shops: list[Shop]) -> None:
    """Each source's posted debits are the sum of its stored transfers (nothing applied
    twice, nothing half applied), and the ledger's integrity check is clean."""
    for shop in shops:
        [(posted, summed)] = cluster.query(
            "SELECT a.debits_posted, (SELECT COALESCE(sum(t.amount), 0) FROM transfers t"
            " WHERE t.debit_account_id = a.id) FROM accounts a WHERE a.id = %s::uuid",
            (shop.source,),
        )
        assert posted == summed, shop.source
    with open_ledger(cluster.url) as led:
        report = led.check_integrity()
    assert report.ok, report.problems


def in_progress_message(replays: Replays) -> str:
    return (
        f"{len(replays.in_progress)} replay(s) after the restart answered 409"
        f" {REPLAY_IN_PROGRESS}: the idempotency claim of a request in flight at the kill"
        " outlives the process until its lease (Settings.idempotency_lock_s, 60 s) runs out."
        " Known: fixed when run_post (api/context.py) commits the claim, the money and the"
        " stored answer in one transaction."
    )


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        open_ledger(made.url, migrate=True).close()
        yield made


# -- 1. vledger serve killed ----------------------------------------------------------


def test_serve_killed_under_load_loses_no_answer_and_replays_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    with (
        served(cluster, tmp_path) as serve,
        storefronts(cluster.url, base_url(serve), tmp_path / "keys", LOAD_THREADS) as shops,
    ):
        base = base_url(serve)
        load = Load(base, shops, stop_on_transport_error=True).start()
        try:
            load.wait_ok(ANSWERS_BEFORE_KILL, START_TIMEOUT_S)
            time.sleep(random.uniform(0, 0.3))  # a moment of the load, not a round number
            serve.kill()
        finally:
            sent = load.stop()
        ok = sum(1 for s in sent if s.status is not None and 200 <= s.status < 300)
        unanswered = [s for s in sent if s.status is None]
        assert ok >= ANSWERS_BEFORE_KILL
        assert len(unanswered) <= LOAD_THREADS, "each thread has one request in flight"

        stored = check_acknowledged(cluster, sent)
        check_money(cluster, shops)

        start_serve(serve)  # the same command, port and database
        replays = replay_all(base, sent)
        assert not replays.differing, replays.differing[:3]
        assert not replays.rerun_refused, replays.rerun_refused[:3]
        after = stored_transfers(cluster, [s.transfer_id for s in sent])
        for s in replays.rerun:  # ran now: once, whether or not it had run before the kill
            assert after.get(s.transfer_id) == (1, s.amount), s.transfer_id
        assert set(after) - set(stored) <= {s.transfer_id for s in replays.rerun}
        check_money(cluster, shops)

        again = replay_all(base, replays.rerun)  # what ran now is stored now, as answered
        assert (again.differing, again.rerun, again.in_progress) == ([], [], [])
        # KNOWN (the lead's change to api/context.py run_post lands the fix): a request in
        # flight at the kill keeps its claim for 60 s; its replay answers 409 meanwhile.
        assert not replays.in_progress, in_progress_message(replays)
        print(f"{len(sent)} sent, {ok} acknowledged before the kill, {len(unanswered)} in flight")


SERVE_WORKERS = 2
ORPHAN_EXIT_S_MAX = 5.0
"""After the supervisor's SIGKILL, its worker processes have ended within this."""


def worker_processes(parent: int) -> list[int]:
    """The uvicorn worker processes ``parent`` started (multiprocessing's spawned
    children; not its resource tracker)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
            cmdline = (status.parent / "cmdline").read_bytes()
            if int(fields["PPid"]) == parent and b"spawn_main" in cmdline:
                found.append(int(status.parent.name))
    return found


def ended(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (it serves nothing)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:\t", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state == "Z"


def refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_serve_supervisor_killed_alone_takes_its_workers_with_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    port = free_port()
    serve = Command(
        ["serve", "--workers", str(SERVE_WORKERS), "--port", str(port), "--database", cluster.url],
        tmp_path,
        tmp_path / "serve.log",
        {"VLEDGER_TEST_PORT": str(port)},
    )
    try:
        start_serve(serve)
        assert serve.process is not None
        parent = serve.process.pid
        workers = worker_processes(parent)
        assert len(workers) == SERVE_WORKERS, (workers, serve.output())
        os.kill(parent, signal.SIGKILL)  # the supervisor alone, not its process group
        assert serve.process.wait(timeout=10) == -signal.SIGKILL
        killed_at = time.monotonic()
        while not (refused(port) and all(ended(pid) for pid in workers)):
            took = time.monotonic() - killed_at
            assert took < ORPHAN_EXIT_S_MAX, ([p for p in workers if not ended(p)], serve.output())
            time.sleep(0.1)
        print(f"workers ended {time.monotonic() - killed_at:.2f} s after the supervisor")
    finally:
        serve.close()  # the process group: whatever is left of it


# -- 2. the database killed -----------------------------------------------------------


def readyz(base: str) -> tuple[int, str, dict[str, Any], float]:
    began = time.monotonic()
    response = httpx.get(base + "/readyz", timeout=REQUEST_TIMEOUT_S)
    took = time.monotonic() - began
    return response.status_code, response.headers.get("content-type", ""), response.json(), took


def test_database_killed_under_load_answers_503_then_recovers_by_itself(
    cluster: Cluster, tmp_path: Path
) -> None:
    with (
        served(cluster, tmp_path) as serve,
        storefronts(cluster.url, base_url(serve), tmp_path / "keys", LOAD_THREADS) as shops,
    ):
        base = base_url(serve)
        pid = serve.process.pid if serve.process else None
        load = Load(base, shops, stop_on_transport_error=False).start()
        try:
            load.wait_ok(ANSWERS_BEFORE_KILL, START_TIMEOUT_S)
            cluster.kill()
            killed_at = time.monotonic()
            probes = []
            while time.monotonic() < killed_at + DOWN_FOR_S:
                probes.append(readyz(base))
                time.sleep(0.5)
            cluster.start()
            back_at = time.monotonic()
            while True:
                assert time.monotonic() < back_at + RECOVER_S_MAX, "no 2xx since the restart"
                recent = [s for s in list(load.sent) if s.sent_at > back_at]
                if any(s.status == 200 for s in recent):
                    break
                time.sleep(0.1)
            load.wait_ok(load.ok() + 20, RECOVER_S_MAX)  # and it goes on answering
        finally:
            sent = load.stop()
        assert serve.alive() and serve.process and serve.process.pid == pid, "serve restarted"

        # While down: every answer a 503 problem, in time; /readyz not ready.
        down = [s for s in sent if killed_at + 0.5 < s.sent_at < back_at - DOWN_ANSWER_S_MAX]
        assert down, "no request was sent while the database was down"
        for s in down:
            assert s.status == 503, (s.status, s.answer)
            assert s.content_type == PROBLEM_CONTENT_TYPE, s.content_type
            assert json.loads(s.answer or b"{}")["code"] == "not_ready", s.answer
            assert s.elapsed_s is not None and s.elapsed_s <= DOWN_ANSWER_S_MAX, s.elapsed_s
        late = [p for p in probes if p[3] > DOWN_ANSWER_S_MAX]
        assert not late, late[:3]
        for status, content_type, body, _took in probes[1:]:
            assert (status, content_type, body["code"]) == (503, PROBLEM_CONTENT_TYPE, "not_ready")
        assert readyz(base)[:3] == (200, "application/json", {"status": "ready"})
        assert not [s for s in sent if s.status == 500], "a 500 was answered"

        # Nothing acknowledged lost; every request sent again answers as before or runs.
        check_acknowledged(cluster, sent)
        check_money(cluster, shops)
        replays = replay_all(base, sent)
        assert not replays.differing, replays.differing[:3]
        assert not replays.rerun_refused, replays.rerun_refused[:3]
        check_acknowledged(cluster, sent)
        check_money(cluster, shops)
        # KNOWN (the lead's change to api/context.py run_post lands the fix): a request
        # whose claim committed before the database went away keeps it for 60 s.
        assert not replays.in_progress, in_progress_message(replays)
        print(
            f"{len(sent)} sent; {len(down)} while down, slowest answer"
            f" {max(s.elapsed_s or 0 for s in down):.2f} s; readyz probes {len(probes)}"
        )


# -- 3. vledger worker killed ---------------------------------------------------------

US_PER_S = 1_000_000
WORKER_WAIT_S = 30.0
"""How long a step of the worker (a delivery, a reconciliation pass) may take."""


def worker_command(cluster: Cluster, folder: Path) -> Command:
    return Command(
        ["worker", "--database", cluster.url], folder, folder / "worker.log", dict(WORKER_NETWORKS)
    )


def start_worker(worker: Command) -> None:
    worker.start()
    wait_for("vledger worker", lambda: "Ctrl-C stops" in worker.output(), worker, START_TIMEOUT_S)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@contextmanager
def stalling_receiver() -> Iterator[tuple[str, list[Received], threading.Event]]:
    """A real HTTP server on 127.0.0.1: it records each POST as it arrives; the first it
    answers only once released (the worker is killed meanwhile), the others 204 at once."""
    got: list[Received] = []
    release = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the stdlib's name
            length = int(self.headers.get("content-length", "0"))
            got.append(
                Received({k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
            )
            if len(got) == 1:
                release.wait(WORKER_WAIT_S * 2)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = http.server.ThreadingHTTPServer((HOST, 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/hook", got, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def until(what: str, done: Callable[[], bool], timeout_s: float, worker: Command) -> None:
    wait_for(what, done, worker, timeout_s)


def test_worker_killed_during_a_delivery_delivers_again_with_the_same_webhook_id(
    cluster: Cluster, tmp_path: Path
) -> None:
    made = create_key(cluster.url, "storefront", "shop", "ed25519", tmp_path / "shop.pem")
    shop = uuid.UUID(made["principal_id"])
    hooks = WebhookSettings(
        target_networks_allowed=(WORKER_NETWORKS["VLEDGER_WEBHOOK_NETWORKS_ALLOWED"],)
    )
    worker = worker_command(cluster, tmp_path)
    with stalling_receiver() as (url, got, _release), open_ledger(cluster.url) as led:
        _endpoint, secret = create_endpoint(
            led,
            principal_id=shop,
            url=url,
            event_types=[events.CHECKPOINT_SEALED],
            description=None,
            settings=hooks,
        )
        # An event of no party goes to every storefront's endpoints (the sealer's kind).
        event_id = led.transact(
            lambda tx: events.emit(tx, events.CHECKPOINT_SEALED, {"block": 1}, party_id=None)
        )
        try:
            start_worker(worker)
            until("the first POST", lambda: len(got) == 1, WORKER_WAIT_S, worker)
            worker.kill()  # mid-delivery: the receiver has the request, the worker no answer
            [(state, attempts)] = cluster.query(
                "SELECT state, attempts FROM webhook_deliveries WHERE event_id = %s", (event_id,)
            )
            assert (state, attempts) == ("pending", 0)
            # The delivery is leased to the dead worker for WebhookSettings.lease_s (60 s):
            # end the lease now instead of waiting for it.
            cluster.query(
                "UPDATE webhook_deliveries SET next_attempt_at_us = next_attempt_at_us - %s"
                " WHERE event_id = %s AND state = 'pending'",
                (int(hooks.lease_s * US_PER_S), event_id),
            )
            start_worker(worker)
            until("the delivery again", lambda: delivered(cluster, event_id), WORKER_WAIT_S, worker)
        finally:
            worker.close()
    first, again = got[0], got[1]
    assert len(got) == 2, "delivered more than once after the restart"
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == str(event_id)
    assert first.body == again.body
    sent_at = datetime.fromtimestamp(int(again.headers["webhook-timestamp"]), UTC)
    expected = signature_header((secret,), str(event_id), sent_at, again.body)
    assert again.headers["webhook-signature"] == expected
    rows = cluster.query(
        "SELECT a.attempt, a.status_code FROM webhook_attempts a"
        " JOIN webhook_deliveries d ON d.id = a.delivery_id WHERE d.event_id = %s",
        (event_id,),
    )
    assert rows == [(1, 204)], "the killed attempt wrote nothing; the second succeeded"


def delivered(cluster: Cluster, event_id: uuid.UUID) -> bool:
    rows = cluster.query("SELECT state FROM webhook_deliveries WHERE event_id = %s", (event_id,))
    return rows == [("succeeded",)]


RECON_DAYS = 40
"""Past business dates with money on them: the worker's first pass reconciles each."""
RECOVER_WAIT_S = STALLED_AFTER_S + STALLED_CHECK_S + WORKER_WAIT_S
"""After a restart, how long the schedule may take to finish: the dead worker's heartbeat
goes stale, the next check fails its job, then a pass runs."""


def seed_past_days(url: str, days: int) -> None:
    """A transfer ``days`` days ago (the ledger's clock set back), so that every date
    from then until yesterday is due for the scheduled integrity job."""
    then = datetime.now(UTC) - timedelta(days=days)
    bank, shop = uuid.uuid4(), uuid.uuid4()
    with open_ledger(url, clock=lambda: then) as led:
        led.create_accounts([Account(bank, "KES", 1), Account(shop, "KES", 1)])
        [result] = led.create_transfers([Transfer(uuid.uuid4(), bank, shop, 100, "KES", 1)])
        assert result.status == "created", result


def recorded_but_claimed(cluster: Cluster) -> int:
    """Claims still ``claimed`` whose date has its run row: the worker died between
    writing the run and marking the claim done. The date is reconciled (its run row
    says so, and no pass runs it again); the next pass's ``due_dates`` settles the claim
    done with that run (:mod:`reconciliation.schedule`)."""
    [(count,)] = cluster.query(
        "SELECT count(*) FROM recon_claims c WHERE c.state = 'claimed' AND EXISTS (SELECT 1"
        " FROM recon_runs r WHERE (r.job, r.business_date, r.scope) = (c.job,"
        " c.business_date, c.scope))"
    )
    return int(str(count))


def recon_counts(cluster: Cluster) -> tuple[int, int]:
    """(run rows, claims still claimed)."""
    [(runs,)] = cluster.query("SELECT count(*) FROM recon_runs")
    [(open_claims,)] = cluster.query("SELECT count(*) FROM recon_claims WHERE state = 'claimed'")
    return int(str(runs)), int(str(open_claims))


def test_worker_killed_during_a_reconciliation_records_each_run_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    seed_past_days(cluster.url, RECON_DAYS)
    worker = worker_command(cluster, tmp_path)
    try:
        start_worker(worker)
        until("a run recorded", lambda: recon_counts(cluster)[0] > 0, WORKER_WAIT_S, worker)
        worker.kill()
        runs, open_claims = recon_counts(cluster)
        assert runs < RECON_DAYS, "the pass ended before the kill: raise RECON_DAYS"
        # Runs are a few hundredths of a second apart and the claim is taken first: the
        # kill lands while a date is claimed, mostly before its run is recorded, now and
        # then between the run and the claim's settling, or between two dates (none
        # claimed). One date at a time is claimed, never more.
        assert open_claims <= 1, "more than one date claimed at once"
        stale = recorded_but_claimed(cluster)
        # A claim is the dead worker's for reconciliation.schedule.LEASE_S (an hour): end
        # it now instead of waiting.
        cluster.query(
            "UPDATE recon_claims SET claimed_at_us = claimed_at_us - %s WHERE state = 'claimed'",
            (CLAIM_LEASE_S * US_PER_S,),
        )
        if stale == 0:
            # The kill fell before a run row or between dates: make the late case as
            # well, the way it looks (a date's run recorded, its claim 'claimed', within
            # the lease), so the restarted worker must settle one such claim either way.
            cluster.query(
                "UPDATE recon_claims SET state = 'claimed', run_id = NULL, finished_at_us ="
                " NULL WHERE business_date = (SELECT min(business_date) FROM recon_claims"
                " WHERE state = 'done')"
            )
        assert recorded_but_claimed(cluster) == 1
        [(dead_job,)] = cluster.query("SELECT id FROM procrastinate_jobs WHERE status = 'doing'")
        start_worker(worker)
        deadline = time.monotonic() + RECOVER_WAIT_S
        while recon_counts(cluster) != (RECON_DAYS, 0) and time.monotonic() < deadline:
            assert worker.alive(), worker.output()
            time.sleep(0.5)
        reconciled = recon_counts(cluster)
        jobs = cluster.query("SELECT id, status::text FROM procrastinate_jobs ORDER BY id")
    finally:
        worker.close()
    twice = cluster.query(
        "SELECT business_date, count(*) FROM recon_runs GROUP BY job, business_date, scope"
        " HAVING count(*) > 1"
    )
    assert twice == [], "a date's run was recorded more than once"
    assert reconciled == (RECON_DAYS, 0), (reconciled, jobs, worker.output())
    # The dead worker's job is kept as failed; the passes after it finished (and were
    # deleted as done): none waits or runs.
    assert (dead_job, "failed") in jobs, jobs
    assert not {status for _, status in jobs} & {"todo", "doing"}, jobs
    claims = cluster.query(
        "SELECT c.state, c.run_id = r.id FROM recon_claims c JOIN recon_runs r"
        " ON (r.job, r.business_date, r.scope) = (c.job, c.business_date, c.scope)"
    )
    assert len(claims) == RECON_DAYS
    # Every claim settled with its date's one run, the one the dead worker recorded but
    # never settled (when the kill fell late) too.
    assert claims.count(("done", True)) == RECON_DAYS, claims
    assert recorded_but_claimed(cluster) == 0
    print(
        f"killed after {runs} run(s), {open_claims} date claimed; recorded but unsettled"
        f" at the kill: {stale}"
    )
