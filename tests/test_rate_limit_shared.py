"""The per-key rate limit is one bucket in the database, whatever process serves the key.

- the bucket (:mod:`ledger.flows.rate_buckets`) against a plain token bucket in Python,
  step by step on a moving clock, on SQLite and PostgreSQL; takes racing from two
  ledgers allow exactly the burst; a bucket for a key that does not exist is refused by
  the database too;
- two apps on one database (two processes' worth of state: two ``Context``, two key
  caches, two connection pools) taking turns: the burst is shared, the next request is
  429 with ``Retry-After`` whichever app serves it, and time refills one bucket for both;
- ``vledger serve --workers 2`` on PostgreSQL: requests on connections held by each of
  the two worker processes (found through ``/proc``), ``burst + k`` of them, ``k`` refused;
- ``--workers``' default from the parsed command line: the cores on PostgreSQL, 1 on
  SQLite; a malformed rate limit in the environment stops ``vledger serve`` at once.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.app import create_app
from api.client import Client
from api.keys import create_key
from api.local_server import ServerThread
from api.server import RATE_LIMIT_BURST_ENV, RATE_LIMIT_PER_S_ENV
from ledger import Ledger, open_ledger
from ledger.core.errors import InvariantViolation
from ledger.flows import rate_buckets
from ledger.flows.rate_buckets import Rate
from ledger.limits import US_PER_S
from reconciliation.service_key import ENV_VAR as SERVICE_KEY_ENV
from tests.conftest import Clock
from tests.test_api_harness import FAST_TEST_SETTINGS
from vledger.cli import main, parse
from vledger.commands.service import serve_workers
from webhooks.settings import WebhookSettings

REPO = Path(__file__).resolve().parent.parent
SERVE_WAIT_S = 60


def new_key(db_url: str, folder: Path) -> dict[str, str]:
    """A key of a new storefront; its private half in ``path``."""
    path = folder / f"{uuid.uuid4().hex}.pem"
    name = f"shop-{uuid.uuid4().hex[:8]}"
    made = create_key(db_url, "storefront", name, "ed25519", path, setup_rules=False)
    return {**made, "path": str(path)}


# -- the bucket -------------------------------------------------------------------------


class ModelBucket:
    """A token bucket the plain way: credit in microseconds of refill, at most a burst's."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.credit_us = rate.tolerance_us
        self.last_us: int | None = None

    def take(self, now_us: int) -> int:
        if self.last_us is not None:
            self.credit_us = min(self.rate.tolerance_us, self.credit_us + now_us - self.last_us)
        self.last_us = now_us
        if self.credit_us >= self.rate.interval_us:
            self.credit_us -= self.rate.interval_us
            return 0
        return self.rate.interval_us - self.credit_us


def test_a_bucket_takes_its_burst_then_one_per_interval(
    db_url: str, ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    key = new_key(db_url, tmp_path)["key_id"]
    rate = Rate.per_second(2.0, 3)  # after 3 at once, one per 500 ms
    assert [rate_buckets.take(ledger, key, rate) for _ in range(5)] == [0, 0, 0, 500_000, 500_000]
    clock.advance(0.2)
    assert rate_buckets.take(ledger, key, rate) == 300_000  # a refusal took nothing
    clock.advance(0.3)
    assert [rate_buckets.take(ledger, key, rate) for _ in range(2)] == [0, 500_000]
    clock.advance(60)  # a long pause refills the burst, no more
    assert [rate_buckets.take(ledger, key, rate) for _ in range(4)] == [0, 0, 0, 500_000]


def test_the_bucket_answers_as_a_plain_token_bucket_would(
    db_url: str, ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    key = new_key(db_url, tmp_path)["key_id"]
    rate = Rate(interval_us=250_000, burst=4)
    model = ModelBucket(rate)
    steps = random.Random(17)
    answers = []
    for _ in range(150):
        clock.advance(steps.choice((0, 0, 0, 0.05, 0.1, 0.25, 0.4, 1.5)))
        now_us = round(clock.now.timestamp() * US_PER_S)
        answers.append(rate_buckets.take(ledger, key, rate))
        assert answers[-1] == model.take(now_us), len(answers)
    assert 0 < answers.count(0) < len(answers)  # both answers were given


def test_racing_takes_from_two_ledgers_allow_exactly_the_burst(
    db_url: str, ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    """Two ledgers (two pools, as two processes have) and four threads each take at once
    on a clock that does not move: exactly ``burst`` are allowed."""
    key = new_key(db_url, tmp_path)["key_id"]
    rate = Rate.per_second(1.0, 13)
    other = open_ledger(db_url, clock=clock)
    start = threading.Barrier(8)

    def takes(led: Ledger) -> list[int]:
        start.wait()
        return [rate_buckets.take(led, key, rate) for _ in range(5)]

    try:
        with ThreadPoolExecutor(8) as pool:
            found = [pool.submit(takes, (ledger, other)[n % 2]) for n in range(8)]
            answers = [wait for future in found for wait in future.result()]
    finally:
        other.close()
    assert answers.count(0) == 13
    assert all(wait > 0 for wait in answers if wait) and len(answers) == 40


def test_a_bucket_is_only_for_a_key_that_exists(ledger: Ledger) -> None:
    with pytest.raises(InvariantViolation):
        rate_buckets.take(ledger, "no-such-key", Rate.per_second(1.0, 1))


@pytest.mark.parametrize(
    ("rate_per_s", "burst"), [(0.0, 1), (-1.0, 5), (1.0, 0), (float("nan"), 1), (1e-6, 40)]
)
def test_a_rate_that_cannot_be_is_refused(rate_per_s: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Rate.per_second(rate_per_s, burst)


def test_a_year_is_the_longest_a_bucket_spans() -> None:
    longest = rate_buckets.TOLERANCE_US_MAX
    assert Rate(interval_us=longest // 2, burst=2).tolerance_us == longest
    with pytest.raises(ValueError):
        Rate(interval_us=longest + 1, burst=1)
    with pytest.raises(ValueError):
        Rate(interval_us=longest // 2 + 1, burst=2)


# -- two apps on one database -------------------------------------------------------------

BURST = 4
RATE_PER_S = 0.1
"""One request per 10 s once the burst is spent: the test's clock moves by hand."""


@pytest.fixture
def two_apps(db_url: str) -> Iterator[tuple[list[str], Clock]]:
    """Two servers on one database (each its own app, context and pool), one clock that
    does not move unless told (signatures are checked against it too)."""
    clock = Clock(datetime.now(UTC))
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS, rate_limit_per_s=RATE_PER_S, rate_limit_burst=BURST, clock=clock
    )
    open_ledger(db_url, migrate=True).close()
    hooks = WebhookSettings(worker_enabled=False)
    servers = [
        ServerThread(create_app(db_url, settings=settings, webhook_settings=hooks)).start()
        for _ in range(2)
    ]
    try:
        yield [server.base_url for server in servers], clock
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("refused_by", [0, 1])
def test_two_apps_share_one_burst_and_refuse_the_next_whichever_serves_it(
    two_apps: tuple[list[str], Clock], db_url: str, tmp_path: Path, refused_by: int
) -> None:
    bases, clock = two_apps
    made = new_key(db_url, tmp_path)
    apps = [
        Client.from_key_file(base, made["key_id"], made["path"], attempts_max=1) for base in bases
    ]
    # the apps take turns, so that the (BURST + 1)th request lands on app ``refused_by``
    turn = [apps[(refused_by + BURST + n) % 2] for n in range(BURST + 1)]
    try:
        answers = [app.request("GET", "/v1/accounts") for app in turn]
        assert [a.status_code for a in answers] == [200] * BURST + [429]
        assert answers[-1].json()["code"] == "rate_limited"
        assert answers[-1].headers["retry-after"] == str(round(1 / RATE_PER_S))
        assert apps[1 - refused_by].request("GET", "/v1/accounts").status_code == 429
        clock.advance(1 / RATE_PER_S / 2)
        half = apps[refused_by].request("GET", "/v1/accounts")
        assert half.status_code == 429 and half.headers["retry-after"] == "5"
        clock.advance(1 / RATE_PER_S / 2)  # one request's worth, for both apps
        again = [apps[n % 2].request("GET", "/v1/accounts") for n in range(2)]
        assert [a.status_code for a in again] == [200, 429]
    finally:
        for app in apps:
            app.close()


def test_each_key_has_its_own_bucket(
    two_apps: tuple[list[str], Clock], db_url: str, tmp_path: Path
) -> None:
    bases, _ = two_apps
    keys = [new_key(db_url, tmp_path) for _ in range(2)]
    clients = [
        Client.from_key_file(bases[n], made["key_id"], made["path"], attempts_max=1)
        for n, made in enumerate(keys)
    ]
    try:
        for client in clients:
            answers = [client.request("GET", "/v1/accounts") for _ in range(BURST + 1)]
            assert [a.status_code for a in answers] == [200] * BURST + [429]
    finally:
        for client in clients:
            client.close()


# -- vledger serve --workers 2 ------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def server_end_inode(client_port: int, server_port: int) -> str | None:
    """The socket inode of the server's end of the TCP connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == server_port and (
            int(remote.rsplit(":", 1)[1], 16) == client_port
        ):
            return fields[9]
    return None


def holder(inode: str, pids: set[int]) -> int | None:
    """Which of ``pids`` holds the socket ``inode`` open."""
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(_link(pid, fd) == f"socket:[{inode}]" for fd in fds):
                return pid
        except FileNotFoundError:
            continue
    return None


def _link(pid: int, fd: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except FileNotFoundError:
        return ""


def one_connection_each(port: int, pids: set[int]) -> dict[int, http.client.HTTPConnection]:
    """A kept-alive connection to each worker process: connections opened a few at a time
    (the kernel hands each to whichever worker accepts first) until every worker holds one;
    the others are closed."""
    held: dict[int, http.client.HTTPConnection] = {}
    for _ in range(10):
        batch = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(6)]
        for conn in batch:
            conn.request("GET", "/healthz")
        for conn in batch:
            conn.getresponse().read()
            assert conn.sock is not None
            inode = server_end_inode(conn.sock.getsockname()[1], port)
            pid = None if inode is None else holder(inode, pids)
            if pid is not None and pid not in held:
                held[pid] = conn
            else:
                conn.close()
        if held.keys() == pids:
            return held
    raise AssertionError(f"no connection reached every worker: {sorted(held)} of {sorted(pids)}")


def signed_get(conn: http.client.HTTPConnection, client: Client, port: int) -> tuple[int, str]:
    """A signed ``GET /v1/accounts`` on ``conn``: (status, Retry-After or '')."""
    headers = client.signed_headers("GET", f"http://127.0.0.1:{port}/v1/accounts")
    conn.request("GET", "/v1/accounts", headers=headers)
    answer = conn.getresponse()
    answer.read()
    return answer.status, answer.getheader("retry-after") or ""


SERVED_BURST = 6
SERVED_EXTRA = 4
SERVED_RATE_PER_S = 0.001
"""One request per 1,000 s: nothing refills while the test runs."""


@pytest.mark.slow
def test_two_server_processes_refuse_past_one_shared_burst(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    assert main(["migrate", "--database", pg_url]) == 0
    made = new_key(pg_url, tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
    env[SERVICE_KEY_ENV] = str(tmp_path / "service-key.pem")  # the sealers' key, not ~
    env[RATE_LIMIT_PER_S_ENV] = str(SERVED_RATE_PER_S)
    env[RATE_LIMIT_BURST_ENV] = str(SERVED_BURST)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "vledger", "serve", "--port", str(port), "--workers", "2"]
    with (
        log.open("wb") as log_file,
        subprocess.Popen(
            [*command, "--database", pg_url],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + SERVE_WAIT_S
            while log.read_text().count("Application startup complete") < 2:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "vledger serve did not start two workers"
                time.sleep(0.2)
            pids = {
                int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())
            }
            assert len(pids) == 2, log.read_text()
            held = one_connection_each(port, pids)
            conns = [held[pid] for pid in sorted(held)]
            client = Client.from_key_file(f"http://127.0.0.1:{port}", made["key_id"], made["path"])
            answers = [
                signed_get(conns[n % 2], client, port) for n in range(SERVED_BURST + SERVED_EXTRA)
            ]
            client.close()
            for pid, conn in held.items():  # each answer came from the worker we meant
                assert conn.sock is not None
                inode = server_end_inode(conn.sock.getsockname()[1], port)
                assert inode is not None and holder(inode, pids) == pid
                conn.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    statuses = [status for status, _ in answers]
    assert statuses == [200] * SERVED_BURST + [429] * SERVED_EXTRA, answers
    assert {statuses[n] for n in range(SERVED_BURST, len(statuses), 2)} == {429}  # worker A
    assert {statuses[n] for n in range(SERVED_BURST + 1, len(statuses), 2)} == {429}  # B
    interval_s = round(1 / SERVED_RATE_PER_S)
    for _, retry_after in answers[SERVED_BURST:]:
        assert interval_s - 30 <= int(retry_after) <= interval_s


# -- the command line -----------------------------------------------------------------------


def test_workers_default_to_the_cores_on_postgresql_and_one_on_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cores = len(os.sched_getaffinity(0))
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert serve_workers(parse(["serve", "--database", pg])) == cores
    assert serve_workers(parse(["serve", "--database", "sqlite:///village.db"])) == 1
    assert serve_workers(parse(["serve", "--workers", "3", "--database", pg])) == 3
    assert serve_workers(parse(["serve", "--workers", "1", "--database", pg])) == 1
    monkeypatch.setenv("VLEDGER_DATABASE", pg)  # the database named by the environment
    assert serve_workers(parse(["serve"])) == cores
    monkeypatch.setenv("VLEDGER_DATABASE", "sqlite:///village.db")
    assert serve_workers(parse(["serve"])) == 1


def test_serve_help_says_the_default_workers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["serve", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "default: one per core" in helped and "1 with SQLite" in helped


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (RATE_LIMIT_PER_S_ENV, "fast"),
        (RATE_LIMIT_PER_S_ENV, "0"),
        (RATE_LIMIT_BURST_ENV, "0"),
        (RATE_LIMIT_BURST_ENV, "2.5"),
    ],
)
def test_serve_refuses_a_malformed_rate_limit_before_migrating(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(name, value)
    url = f"sqlite:///{tmp_path}/unused.db"
    assert main(["serve", "--database", url]) == 2
    assert name in capsys.readouterr().err
    assert not (tmp_path / "unused.db").exists()
