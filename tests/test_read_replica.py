"""Reads on a streaming replica: packs and reports read there, money never does.

The slow tests start a throwaway primary and a ``pg_basebackup -R`` replica
(:mod:`tests.pgreplica`), migrate the primary, and pay from a thread while a pack runs on
the replica: the pack holds every payment committed before the replay position its run
recorded and none begun after it; a write through the read ledger is refused; a replica
whose replay is paused makes the job wait, then read the primary (or the replica, once
replay resumes within the wait). The quick ones run on the suite's own databases.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.local_server import ServerThread
from ledger import (
    Account,
    AccountFlags,
    Ledger,
    MalformedRequest,
    Status,
    StorageError,
    Transfer,
    open_ledger,
)
from ledger.core.replica import Lsn, open_read_ledger, primary_lsn, replay_lsn
from ledger.flows import parties
from ledger.flows.parties import Kind
from reconciliation import report
from reconciliation.jobs import JobRequest, JobResult, run_job
from reconciliation.pack import verify_pack
from reconciliation.replica import Replica
from reconciliation.runs import SOURCE_PRIMARY, SOURCE_REPLICA, RunReads, get_run
from reconciliation.schedule import backfill
from reconciliation.seal import seal_pending
from reconciliation.service_key import ENV_VAR, ServiceKey, load_service_key
from tests.conftest import Clock
from tests.pgreplica import Node, primary_and_replica
from tests.test_api_harness import FAST_TEST_SETTINGS, Harness
from vledger.cli import main

KES = "KES"
DAY_PACKED = date(2026, 3, 10)
DAY_LAGGING = date(2026, 3, 11)
DAY_SCHEDULED = date(2026, 3, 12)
PAYMENTS_MAX = 5_000
"""The paying thread's bound on payments (it stops sooner when told)."""
PAYING_S_MAX = 120.0
CATCH_UP_S_MAX = 30.0
WAIT_SHORT_S = 1.5
"""The lagging test's wait for the replica, before it reads the primary."""


# -- the pair and the ledgers ------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Node, Node]]:
    """A migrated primary and its streaming replica, for the whole module."""
    with primary_and_replica() as (primary, replica):
        open_ledger(primary.url, migrate=True).close()
        yield primary, replica


def caught_up(primary: Node, replica: Node) -> Lsn:
    """Wait until the replica has replayed what the primary has written now."""
    target = Lsn.parse(str(primary.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]))
    deadline = time.monotonic() + CATCH_UP_S_MAX
    while time.monotonic() < deadline:
        replayed = replica.query("SELECT pg_last_wal_replay_lsn()::text")[0][0]
        if Lsn.parse(str(replayed)) >= target:
            return target
        time.sleep(0.05)
    raise AssertionError(f"the replica did not replay up to {target}")


@dataclass
class Ledgers:
    jobs: Ledger
    """The primary, on the real clock: the test days are long closed."""
    pay: Ledger
    """The primary, on a clock inside the day a test packs."""
    reads: Ledger
    """The replica, read-only."""
    clock: Clock
    key: ServiceKey


@pytest.fixture
def ledgers(
    pair: tuple[Node, Node], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledgers]:
    primary, replica = pair
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    key = load_service_key(primary.url)  # made where the primary's URL says (never the replica's)
    caught_up(primary, replica)
    clock = Clock(datetime(2026, 3, 10, 8, 0, tzinfo=UTC))
    with (
        open_ledger(primary.url) as jobs,
        open_ledger(primary.url, clock=clock) as pay,
        open_read_ledger(replica.url) as reads,
    ):
        yield Ledgers(jobs, pay, reads, clock, key)


# -- paying ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paid:
    id: uuid.UUID
    amount: int
    before: Lsn
    """The primary's position before the payment was sent."""
    after: Lsn
    """The primary's position once it was committed."""


def open_accounts(led: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    bank, wallet = uuid.uuid4(), uuid.uuid4()
    results = led.create_accounts(
        [
            Account(id=bank, currency=KES, code=1),
            Account(
                id=wallet, currency=KES, code=2, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
            ),
        ]
    )
    assert [r.status for r in results] == [Status.CREATED, Status.CREATED]
    return bank, wallet


def pay(led: Ledger, clock: Clock, bank: uuid.UUID, wallet: uuid.UUID, amount: int) -> Paid:
    before = primary_lsn(led)
    clock.advance(1)
    transfer = Transfer(uuid.uuid4(), bank, wallet, amount, KES, code=7)
    [result] = led.create_transfers([transfer])
    assert result.status is Status.CREATED
    return Paid(transfer.id, amount, before, primary_lsn(led))


@dataclass
class Payer:
    """Pays bank -> wallet in a thread until stopped (bounded in count and time)."""

    led: Ledger
    clock: Clock
    bank: uuid.UUID
    wallet: uuid.UUID
    paid: list[Paid] = field(default_factory=list)
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + PAYING_S_MAX
        try:
            while (
                not self.stop.is_set()
                and len(self.paid) < PAYMENTS_MAX
                and time.monotonic() < deadline
            ):
                self.paid.append(
                    pay(self.led, self.clock, self.bank, self.wallet, 100 + len(self.paid))
                )
        except BaseException as exc:
            self.error = exc

    def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + PAYING_S_MAX
        while len(self.paid) < count and self.error is None:
            assert time.monotonic() < deadline, "the payer made too few payments"
            time.sleep(0.01)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def packed_transfers(done: JobResult) -> dict[uuid.UUID, int]:
    rows = read_csv(done.folder / "pack" / "transfers.csv")
    return {uuid.UUID(row["id"]): int(row["amount"]) for row in rows}


def pack_request(day: date) -> JobRequest:
    """A pack of ``day``, its key found as production finds it (not given here)."""
    return JobRequest(day)


# -- the pack on the replica while payments go on -------------------------------------------


@pytest.mark.slow
def test_a_pack_on_the_replica_holds_what_the_primary_had_at_its_recorded_position(
    ledgers: Ledgers, tmp_path: Path
) -> None:
    bank, wallet = open_accounts(ledgers.pay)
    funded = [pay(ledgers.pay, ledgers.clock, bank, wallet, 1_000) for _ in range(20)]
    payer = Payer(ledgers.pay, ledgers.clock, bank, wallet)
    thread = threading.Thread(target=payer.run, name="payer")
    thread.start()
    try:
        payer.wait_for(20)
        done = run_job(
            ledgers.jobs,
            "pack",
            pack_request(DAY_PACKED),
            out=tmp_path / "reports",
            replica=Replica(ledgers.reads),
        )
        # read_lsn is a lower bound (read before the snapshot, which may hold a little
        # more); what the replica had replayed once the pack was done is an upper bound.
        replayed_after = replay_lsn(ledgers.reads)
        paid_by_then = len(payer.paid)
        payer.wait_for(paid_by_then + 5)  # payments go on after the pack
    finally:
        payer.stop.set()
        thread.join(timeout=PAYING_S_MAX)
    assert payer.error is None

    reads = done.run.reads
    assert reads.source == SOURCE_REPLICA
    assert reads.read_lsn is not None and reads.close_lsn is not None
    position = Lsn.parse(reads.read_lsn)
    assert position >= Lsn.parse(reads.close_lsn)
    recorded = get_run(ledgers.jobs, done.run.id)  # the row, read back from the primary
    assert recorded is not None and recorded.reads == reads

    packed = packed_transfers(done)
    everything = funded + payer.paid
    committed_before = [p for p in everything if p.after <= position]
    assert replayed_after is not None and replayed_after >= position
    begun_after = [p for p in everything if p.before > replayed_after]
    assert len(committed_before) >= len(funded) + 20
    assert begun_after, "no payment began after the pack: nothing was tested"
    for p in committed_before:
        assert packed.get(p.id) == p.amount, f"{p.id} committed before {position}, not packed"
    for p in begun_after:
        assert p.id not in packed, f"{p.id} began after {replayed_after}, yet packed"
    # Nothing else: the pack's transfers are this story's, as the primary holds them.
    ours = {p.id: p.amount for p in everything}
    assert packed.items() <= ours.items()
    on_primary = {t.id: t.amount for t in ledgers.jobs.lookup_transfers(list(packed))}
    assert on_primary == packed
    # The snapshot agrees with itself: the wallet's closing credits are its packed payments.
    balances = {row["account_id"]: row for row in read_csv(done.folder / "pack" / "balances.csv")}
    assert int(balances[str(wallet)]["closing_credits_posted"]) == sum(packed.values())
    # Signed with the primary's service key, found by the primary's URL.
    assert verify_pack(done.folder / "pack", ledgers.key.public_key).ok


@pytest.mark.slow
def test_a_write_through_the_read_ledger_is_refused(
    ledgers: Ledgers, pair: tuple[Node, Node]
) -> None:
    primary, _replica = pair
    refused = Account(id=uuid.uuid4(), currency=KES, code=1)
    with pytest.raises(StorageError, match="read-only"):
        ledgers.reads.create_accounts([refused])
    # The session refuses, not only the standby: a read ledger on the primary itself.
    with open_read_ledger(primary.url) as on_primary:
        shown = on_primary.transact(lambda tx: tx.one("SHOW default_transaction_read_only"))
        assert shown is not None and shown[0] == "on"
        with pytest.raises(StorageError, match="read-only"):
            on_primary.create_accounts([refused])
        bank, wallet = open_accounts(ledgers.pay)
        with pytest.raises(StorageError, match="read-only"):
            on_primary.create_transfers([Transfer(uuid.uuid4(), bank, wallet, 5, KES, code=7)])
    assert ledgers.jobs.lookup_accounts([refused.id]) == []
    [untouched] = ledgers.jobs.lookup_accounts([wallet])
    assert untouched.credits_posted == 0


# -- a lagging replica -----------------------------------------------------------------------


def pause_replay(replica: Node) -> None:
    replica.query("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + CATCH_UP_S_MAX
    while replica.query("SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
        assert time.monotonic() < deadline, "replay did not pause"
        time.sleep(0.05)


def resume_replay(replica: Node) -> None:
    replica.query("SELECT pg_wal_replay_resume()")


@pytest.mark.slow
def test_a_lagging_replica_makes_the_job_wait_then_read_the_primary(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path
) -> None:
    _primary, replica = pair
    ledgers.clock.now = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
    bank, wallet = open_accounts(ledgers.pay)
    pause_replay(replica)
    try:
        late = pay(ledgers.pay, ledgers.clock, bank, wallet, 4_321)
        started = time.monotonic()
        done = run_job(
            ledgers.jobs,
            "pack",
            pack_request(DAY_LAGGING),
            out=tmp_path / "lagging",
            replica=Replica(ledgers.reads, wait_max_s=WAIT_SHORT_S, poll_s=0.1),
        )
        waited_s = time.monotonic() - started
        behind = replay_lsn(ledgers.reads)
    finally:
        resume_replay(replica)
    reads = done.run.reads
    assert reads.source == SOURCE_PRIMARY
    assert reads.close_lsn is not None and reads.read_lsn is not None
    assert behind is not None and behind < Lsn.parse(reads.close_lsn)  # it was behind
    assert Lsn.parse(reads.close_lsn) >= late.after
    assert Lsn.parse(reads.read_lsn) >= Lsn.parse(reads.close_lsn)
    assert waited_s >= WAIT_SHORT_S
    assert packed_transfers(done) == {late.id: late.amount}  # the primary had it


@pytest.mark.slow
def test_a_replica_that_catches_up_within_the_wait_is_read(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path
) -> None:
    _primary, replica = pair
    ledgers.clock.now = datetime(2026, 3, 11, 10, 0, tzinfo=UTC)
    bank, wallet = open_accounts(ledgers.pay)
    pause_replay(replica)
    resumer = threading.Timer(1.0, resume_replay, args=(replica,))
    try:
        late = pay(ledgers.pay, ledgers.clock, bank, wallet, 777)
        resumer.start()
        started = time.monotonic()
        done = run_job(
            ledgers.jobs,
            "pack",
            pack_request(DAY_LAGGING),
            out=tmp_path / "waited",
            replica=Replica(ledgers.reads, wait_max_s=CATCH_UP_S_MAX, poll_s=0.1),
        )
        waited_s = time.monotonic() - started
    finally:
        resumer.join()
        resume_replay(replica)
    reads = done.run.reads
    assert reads.source == SOURCE_REPLICA
    assert reads.read_lsn is not None and reads.close_lsn is not None
    assert Lsn.parse(reads.read_lsn) >= Lsn.parse(reads.close_lsn) >= late.after
    assert waited_s >= 0.9  # it waited for replay to resume
    assert packed_transfers(done)[late.id] == 777


@pytest.mark.slow
def test_an_open_date_reads_the_primary_at_once(ledgers: Ledgers, tmp_path: Path) -> None:
    today = ledgers.jobs.now().date()
    started = time.monotonic()
    done = run_job(
        ledgers.jobs,
        "integrity",
        JobRequest(today),
        out=tmp_path / "today",
        replica=Replica(ledgers.reads, wait_max_s=CATCH_UP_S_MAX),
    )
    assert time.monotonic() - started < CATCH_UP_S_MAX
    assert done.run.reads.source == SOURCE_PRIMARY
    assert done.run.reads.close_lsn is None  # no close to wait for: the day is not over
    assert done.run.reads.read_lsn is not None


@pytest.mark.slow
def test_the_schedule_runs_a_closed_date_on_the_replica(ledgers: Ledgers, tmp_path: Path) -> None:
    runs = backfill(
        ledgers.jobs,
        "integrity",
        "all",
        today=date(2026, 3, 13),
        out=tmp_path / "scheduled",
        first_date=DAY_SCHEDULED,
        replica=Replica(ledgers.reads),
    )
    assert [(r.business_date, r.reads.source) for r in runs] == [
        (DAY_SCHEDULED.isoformat(), SOURCE_REPLICA)
    ]
    assert runs[0].status == "ok"


# -- over the signed API and the command line --------------------------------------------


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


def listed_runs(client: Client) -> set[str]:
    page = ok(client.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    return {run["id"] for run in page["data"]}


@pytest.mark.slow
def test_auditors_read_runs_on_the_replica_and_start_jobs_that_read_there(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path
) -> None:
    primary, replica = pair
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS, reports_dir=str(tmp_path / "reports"), read_database_url=replica.url
    )
    server = ServerThread(create_app(primary.url, settings=settings)).start()
    (tmp_path / "keys").mkdir()
    harness = Harness(primary.url, server.base_url, ledgers.jobs, tmp_path / "keys")
    try:
        auditor = harness.client("auditor")
        body = {"job": "integrity", "business_date": "2026-03-14"}
        made = ok(auditor.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
        started = get_run(ledgers.jobs, uuid.UUID(made["id"]))
        assert started is not None and started.reads.source == SOURCE_REPLICA
        caught_up(primary, replica)
        assert made["id"] in listed_runs(auditor)
        # The run's answer says it read the replica, up to which position, and which
        # primary position that had to pass: as its row says, in the list and by id.
        listed = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
        [in_list] = [run for run in listed["data"] if run["id"] == made["id"]]
        by_id = ok(auditor.request("GET", f"/v1/reconciliation/runs/{made['id']}"))
        for answer in (made, in_list, by_id):
            assert answer["read_source"] == "replica"
            assert answer["read_lsn"] == started.reads.read_lsn
            assert answer["close_lsn"] == started.reads.close_lsn
        assert started.reads.read_lsn is not None and started.reads.close_lsn is not None
        assert Lsn.parse(started.reads.read_lsn) >= Lsn.parse(started.reads.close_lsn)
        assert by_id["summary"]["reads"]["source"] == "replica"
        pause_replay(replica)
        try:
            unseen = run_job(
                ledgers.jobs, "integrity", JobRequest(date(2026, 3, 15)), out=tmp_path / "direct"
            )
            assert str(unseen.run.id) not in listed_runs(auditor)  # the list is the replica's
            by_id = ok(auditor.request("GET", f"/v1/reconciliation/runs/{unseen.run.id}"))
            assert by_id["id"] == str(unseen.run.id)  # asked for by id: the primary has it
        finally:
            resume_replay(replica)
        caught_up(primary, replica)
        assert str(unseen.run.id) in listed_runs(auditor)
    finally:
        harness.close_clients()
        server.stop()


@pytest.mark.slow
def test_vledger_reconcile_reads_the_replica(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary, replica = pair
    code = main(
        [
            "reconcile",
            "integrity",
            "--date",
            "2026-03-16",
            "--database",
            primary.url,
            "--read-database",
            replica.url,
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    shown = capsys.readouterr().out
    assert code == 0, shown
    assert "read: the replica up to " in shown
    [line] = [line for line in shown.splitlines() if line.startswith("integrity 2026-03-16")]
    run = get_run(ledgers.jobs, uuid.UUID(line.split(" run ")[1].split()[0]))
    assert run is not None and run.reads.source == SOURCE_REPLICA


def test_a_sqlite_database_takes_no_read_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "reconcile",
            "integrity",
            "--database",
            f"sqlite:///{tmp_path}/ledger.db",
            "--read-database",
            "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "--quiet",
        ]
    )
    assert code == 2
    assert "SQLite has none" in capsys.readouterr().err


# -- the suite's own databases: no replica -----------------------------------------------------


def test_without_a_replica_a_run_reads_the_primary(ledger: Ledger, tmp_path: Path) -> None:
    done = run_job(ledger, "integrity", JobRequest(date(2026, 5, 1)), out=tmp_path)
    reads = done.run.reads
    assert reads.source == SOURCE_PRIMARY and reads.close_lsn is None
    if ledger.dialect == "sqlite":
        assert reads.read_lsn is None
    else:
        assert reads.read_lsn is not None and Lsn.parse(reads.read_lsn) > 0
    assert get_run(ledger, done.run.id) == done.run


def test_a_runs_report_and_summary_say_where_it_read(ledger: Ledger, tmp_path: Path) -> None:
    """summary.json and report.html of a run on the primary; a run that read a replica
    rendered the same way shows the replica and both positions, as text."""
    done = run_job(ledger, "integrity", JobRequest(date(2026, 5, 2)), out=tmp_path)
    reads = done.run.reads
    summary = json.loads((done.folder / "summary.json").read_text())
    assert summary["reads"] == {
        "source": "primary",
        "read_lsn": reads.read_lsn,
        "close_lsn": None,
    }
    assert (reads.read_lsn is None) == (ledger.dialect == "sqlite")
    page = (done.folder / "report.html").read_text()
    assert '<th>read from</th><td class="read-source">primary</td>' in page
    shown_lsn = "none" if reads.read_lsn is None else f"<code>{reads.read_lsn}</code>"
    assert f"<th>read LSN</th><td>{shown_lsn}</td>" in page
    assert "<th>close LSN</th><td>none</td>" in page

    on_replica = dataclasses.replace(
        done.run, reads=RunReads(SOURCE_REPLICA, "0/3000148", "0/30000D8<b>")
    )
    page = report.render(on_replica, done.findings)
    assert '<th>read from</th><td class="read-source">replica</td>' in page
    assert "<th>read LSN</th><td><code>0/3000148</code></td>" in page
    assert "<th>close LSN</th><td><code>0/30000D8&lt;b&gt;</code></td>" in page  # text


def test_sqlite_has_no_read_database(tmp_path: Path) -> None:
    with pytest.raises(MalformedRequest, match="SQLite has none"):
        open_read_ledger(f"sqlite:///{tmp_path}/ledger.db")


def test_wal_positions_read_and_print_as_postgresql_does() -> None:
    assert str(Lsn.parse("0/3000148")) == "0/3000148"
    assert str(Lsn.parse("1a/ff")) == "1A/FF"
    assert Lsn.parse("1/0") > Lsn.parse("0/FFFFFFFF")
    for bad in ("", "3000148", "0/", "/1", "x/1"):
        with pytest.raises(ValueError):
            Lsn.parse(bad)


@pytest.mark.slow
def test_the_back_office_search_reads_the_replica(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path
) -> None:
    """A party onboarded on the primary while the replica's replay is paused is not
    found by the back office's search; once replay resumes, it is."""
    primary, replica = pair
    settings = dataclasses.replace(FAST_TEST_SETTINGS, read_database_url=replica.url)
    server = ServerThread(create_app(primary.url, settings=settings)).start()
    (tmp_path / "keys").mkdir()
    harness = Harness(primary.url, server.base_url, ledgers.jobs, tmp_path / "keys")
    try:
        auditor = harness.client("auditor")
        pause_replay(replica)
        try:
            made = parties.onboard(
                ledgers.jobs, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Wanjiru",
                currency="KES", kyc_tier="tier0",
            )  # fmt: skip
            search = {"q": str(made.id)}
            found = ok(auditor.request("GET", "/v1/back-office/search", params=search))
            assert found["data"] == []  # the replica has not replayed it yet
        finally:
            resume_replay(replica)
        caught_up(primary, replica)
        found = ok(auditor.request("GET", "/v1/back-office/search", params=search))
        assert [hit["id"] for hit in found["data"]] == [str(made.id)]
    finally:
        harness.close_clients()
        server.stop()


@pytest.mark.slow
def test_vledger_audit_export_reads_the_replica(
    ledgers: Ledgers, pair: tuple[Node, Node], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Blocks sealed on the primary while the replica's replay is paused are not in an
    export read from the replica; the primary's export has them."""
    primary, replica = pair
    bank, wallet = open_accounts(ledgers.pay)
    pay(ledgers.pay, ledgers.clock, bank, wallet, 100)
    seal_pending(ledgers.jobs, ledgers.key, settle_wait_s=0)
    caught_up(primary, replica)
    pause_replay(replica)
    try:
        pay(ledgers.pay, ledgers.clock, bank, wallet, 200)
        seal_pending(ledgers.jobs, ledgers.key, settle_wait_s=0)
        exported = {}
        for name, extra in (("replica", ["--read-database", replica.url]), ("primary", [])):
            out = tmp_path / name
            argv = ["audit", "export", "--database", primary.url, "--out", str(out), "--quiet"]
            assert main(argv + extra) == 0
            shown = capsys.readouterr().out
            exported[name] = int(shown.split("exported blocks ")[1].split("..")[1].split()[0])
    finally:
        resume_replay(replica)
    assert exported["replica"] < exported["primary"]
