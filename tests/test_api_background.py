"""The service's background threads, both engines: they start and stop with the app, the
sweeper expires a cash-out whose timeout passed, the sealer seals committed transfers,
and a service key that cannot be loaded turns sealing off without stopping the service.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.background import RECONCILER_THREAD, SEALER_THREAD, SWEEPER_THREAD, Periodic
from api.observability import LOGGER_NAME
from api.settings import Settings
from ledger import Ledger, open_ledger
from ledger.flows import agent_float, cash, events, parties
from ledger.flows.cash import CashOutState
from ledger.flows.parties import Kind, Role
from reconciliation.runs import list_runs
from reconciliation.seal import integrity_check
from tests.conftest import Clock, drop_pg_schema
from tests.consent_helpers import consenting_villager, withdrawal_code
from tests.test_api_harness import FAST_TEST_SETTINGS, ServerThread, fresh_database

KES = "KES"
INTERVAL_S = 0.05
WAIT_S = 15.0
SEAL_WAIT_S = 90.0


def threads(name: str) -> int:
    return sum(t.name == name for t in threading.enumerate())


def wait_for(condition: Callable[[], bool], what: str, wait_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(INTERVAL_S)


@dataclass
class Service:
    """A served app on a fresh database, the test's own ledger on it, and their clock."""

    url: str
    ledger: Ledger
    server: ServerThread
    clock: Clock

    def healthy(self) -> bool:
        return httpx.get(self.server.base_url + "/healthz").status_code == 200


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, schema = fresh_database(request.param, tmp_path)
    try:
        open_ledger(url, migrate=True).close()
        yield url
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def serve(url: str, clock: Clock, **over: object) -> Service:
    quiet: dict[str, object] = {"sweep_interval_s": None, "seal_interval_s": None}
    settings: Settings = dataclasses.replace(FAST_TEST_SETTINGS, clock=clock, **{**quiet, **over})
    server = ServerThread(create_app(url, settings=settings)).start()
    return Service(url, open_ledger(url, clock=clock), server, clock)


def stop(service: Service) -> None:
    service.server.stop()
    service.ledger.close()


def agent_with_a_villager(led: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    agent_id = uuid.uuid4()
    parties.onboard(led, party_id=agent_id, kind=Kind.AGENT, name="agent", currency=KES)
    villager_id = consenting_villager(led, agent_id=agent_id, tier="tier1").id
    agent_float.top_up_float(
        led, topup_id=uuid.uuid4(), agent_id=agent_id, amount_minor=500_000, provider="KCB"
    )
    cash.cash_in(
        led,
        cash_in_id=uuid.uuid4(),
        agent_id=agent_id,
        villager_id=villager_id,
        amount_minor=100_000,
    )
    return agent_id, villager_id


def test_the_sweeper_expires_a_cash_out_and_stops_with_the_app(database: str) -> None:
    before = threads(SWEEPER_THREAD)
    service = serve(database, Clock(), sweep_interval_s=INTERVAL_S)
    try:
        assert threads(SWEEPER_THREAD) == before + 1
        assert threads(SEALER_THREAD) == 0
        led = service.ledger
        agent_id, villager_id = agent_with_a_villager(led)
        requested = cash.request_cash_out(
            led,
            cash_out_id=uuid.uuid4(),
            agent_id=agent_id,
            villager_id=villager_id,
            amount_minor=20_000,
            consent_code=withdrawal_code(
                led, villager_id=villager_id, agent_id=agent_id, amount_minor=20_000
            ),
            timeout_s=cash.CASH_OUT_TIMEOUT_MIN_S,
        )
        time.sleep(5 * INTERVAL_S)  # passes of the sweeper: not due yet
        assert cash.get_cash_out(led, requested.id).state is CashOutState.REQUESTED

        service.clock.advance(cash.CASH_OUT_TIMEOUT_MIN_S)
        wait_for(
            lambda: cash.get_cash_out(led, requested.id).state is CashOutState.EXPIRED,
            "the sweeper to expire the cash-out",
        )
        [wallet] = led.lookup_accounts([parties.account_id(villager_id, Role.WALLET)])
        assert (wallet.debits_pending, wallet.credits_posted - wallet.debits_posted) == (
            0,
            100_000,
        )
        expired = events.CASHOUT_EXPIRED
        assert led.transact(
            lambda tx: [e.type for e in events.read_events(tx, subject_id=requested.id)]
        ) == [events.CASHOUT_RESERVED, expired]
        assert service.healthy()
    finally:
        stop(service)
    assert threads(SWEEPER_THREAD) == before


def test_the_sealer_seals_committed_transfers_and_stops_with_the_app(
    database: str, tmp_path: Path
) -> None:
    before = threads(SEALER_THREAD)
    key_path = tmp_path / "service-key.pem"
    service = serve(database, Clock(), seal_interval_s=INTERVAL_S, service_key_path=str(key_path))
    try:
        assert threads(SEALER_THREAD) == before + 1
        led = service.ledger
        agent_with_a_villager(led)

        def sealed_to() -> int:
            row = led.transact(
                lambda tx: tx.one("SELECT COALESCE(max(last_seq), 0) FROM seal_blocks")
            )
            return int(row[0]) if row else 0

        top = led.transact(lambda tx: tx.one("SELECT max(seq) FROM transfers"))
        assert top is not None
        # On PostgreSQL the sealer waits for every transaction older than its fence, on the
        # whole server (see reconciliation.seal): a busy shared server makes that slower.
        wait_for(
            lambda: sealed_to() >= int(top[0]),
            "the sealer to seal the transfers",
            wait_s=SEAL_WAIT_S,
        )
        assert key_path.is_file()
        assert integrity_check(led) == []
        found = led.transact(lambda tx: events.read_events(tx, limit=1000))
        sealed = [e for e in found if e.type == events.CHECKPOINT_SEALED]
        assert sealed and all(e.party_id is None for e in sealed)
    finally:
        stop(service)
    assert threads(SEALER_THREAD) == before


def test_a_key_that_cannot_load_turns_sealing_off_and_the_service_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/bad-key.db"
    open_ledger(url, migrate=True).close()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    before = threads(SWEEPER_THREAD)
    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        service = serve(
            url,
            Clock(),
            sweep_interval_s=INTERVAL_S,
            seal_interval_s=INTERVAL_S,
            service_key_path=str(junk),
        )
    try:
        assert threads(SEALER_THREAD) == 0
        assert threads(SWEEPER_THREAD) == before + 1  # the rest runs on
        assert service.healthy()
        assert any("sealing is off" in r.getMessage() for r in caplog.records)
        agent_with_a_villager(service.ledger)
        time.sleep(5 * INTERVAL_S)
        blocks = service.ledger.transact(lambda tx: tx.one("SELECT COUNT(*) FROM seal_blocks"))
        assert blocks is not None and blocks[0] == 0
    finally:
        stop(service)


def test_a_failing_pass_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database away")

    with caplog.at_level(logging.ERROR, logger=LOGGER_NAME):
        periodic = Periodic("test-periodic", INTERVAL_S, flaky).start()
        wait_for(lambda: len(calls) >= 3, "passes after the failure")
        periodic.stop()
    assert threads("test-periodic") == 0
    assert periodic.passes == len(calls) >= 3
    assert [r.getMessage() for r in caplog.records].count("background pass failed") == 1
    count = len(calls)
    time.sleep(3 * INTERVAL_S)
    assert len(calls) == count  # stopped means stopped
    with pytest.raises(ValueError, match="positive"):
        Periodic("never", 0, flaky)


def test_on_sqlite_the_service_backfills_the_reconciliation_schedule(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    open_ledger(url, migrate=True).close()
    clock = Clock()
    with open_ledger(url, clock=clock) as led:
        agent_with_a_villager(led)  # the first transfers: 2026-06-01
    clock.advance(3 * 86_400)  # today is 2026-06-04: three business dates are due
    before = threads(RECONCILER_THREAD)
    reports = tmp_path / "reports"
    service = serve(url, clock, reconcile_interval_s=INTERVAL_S, reports_dir=str(reports))
    try:
        assert threads(RECONCILER_THREAD) == before + 1
        wait_for(
            lambda: len(list_runs(service.ledger, job="integrity")) == 3,
            "the reconciler to backfill three dates",
        )
        time.sleep(5 * INTERVAL_S)  # later passes find nothing more to do
        runs = list_runs(service.ledger, job="integrity")
        assert sorted(r.business_date for r in runs) == ["2026-06-01", "2026-06-02", "2026-06-03"]
        assert all(r.status == "ok" for r in runs)
        assert len(list(reports.glob("integrity/*/*/summary.json"))) == 3
    finally:
        stop(service)
    assert threads(RECONCILER_THREAD) == before


def test_on_postgresql_the_service_leaves_the_schedule_to_the_worker(pg_url: str) -> None:
    open_ledger(pg_url, migrate=True).close()
    before = threads(RECONCILER_THREAD)
    service = serve(pg_url, Clock(), reconcile_interval_s=INTERVAL_S)
    try:
        assert threads(RECONCILER_THREAD) == before
    finally:
        stop(service)
