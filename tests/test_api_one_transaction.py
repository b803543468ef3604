"""A signed POST is one database transaction: the Idempotency-Key's claim, what the
request writes and its stored answer commit together (``api.context.run_post``).

The service's own app gets one probe route here, a write like any other: it moves money
through the ledger, then answers, refuses or fails as the test says. On both engines:

* a failure (503: the database failed) after the money moved leaves nothing: no
  transfer, no record; the same request sent again runs, once;
* a refusal is stored and replayed; what the request completed before it stays (as when
  each flow call committed on its own: a wrong code's counted try), what the refusing
  flow call wrote does not (its ``transact`` is a savepoint);
* two requests with one key at once: one runs, the other gets its stored answer (no 409
  ``idempotency_in_progress``, no lease to wait out);
* a request is never half done: the records table never holds an ``in_progress`` row.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, Request
from fastapi.responses import Response

from api.app import create_app
from api.client import Client
from api.context import context, json_response, run_post
from api.keys import create_key
from api.local_server import ServerThread
from api.principals import ApiKey
from api.routes.common import body_of, signed
from ledger import Account, Ledger, Status, Transfer, open_ledger
from ledger.core.errors import StorageError
from ledger.core.tx import Tx
from ledger.flows.errors import Refused
from tests.conftest import drop_pg_schema
from tests.test_api_harness import FAST_TEST_SETTINGS, fresh_database

KES = "KES"
PROBE = "/v1/test-probe"


@dataclass
class Probe:
    """What the probe route does after it moved the money: ``then`` is ``ok``,
    ``refuse`` or ``crash``; ``pause_s`` sleeps inside the transaction first."""

    then: str = "ok"
    pause_s: float = 0.0
    runs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Rig:
    ledger: Ledger
    client: Client
    probe: Probe
    funding: uuid.UUID
    wallet: uuid.UUID

    def send(self, transfer_id: uuid.UUID, key: str) -> httpx.Response:
        body = {"id": str(transfer_id), "amount": 250}
        return self.client.request("POST", PROBE, json_body=body, idempotency_key=key)

    def moved(self) -> int:
        return self.ledger.lookup_accounts([self.wallet])[0].credits_posted

    def in_progress_records(self) -> int:
        rows = self.ledger.transact(
            lambda tx: tx.execute(
                "SELECT count(*) FROM idempotency_records WHERE state = 'in_progress'"
            )
        )
        return int(rows[0][0])


def refuse_after(tx: Tx, transfer: Transfer) -> None:
    """A flow call that moves money and then refuses (so that nothing of it stays)."""
    assert [r.status for r in tx.create_transfers([transfer])] == [Status.CREATED]
    raise Refused("test_refusal", "refused inside the flow's transaction")


def add_probe(app: object, probe: Probe, funding: uuid.UUID, wallet: uuid.UUID) -> None:
    def probe_route(request: Request, caller: Annotated[ApiKey, Depends(signed)]) -> Response:
        body = body_of(request)

        def handle() -> Response:
            data = json.loads(body)
            led = context(request).ledger
            transfer = Transfer(uuid.UUID(data["id"]), funding, wallet, data["amount"], KES, 1)
            if probe.then == "refuse_inside":
                led.transact(lambda tx: refuse_after(tx, transfer))
            [result] = led.create_transfers([transfer])
            with probe.lock:
                probe.runs += 1
            time.sleep(probe.pause_s)
            if probe.then == "refuse":
                raise Refused("test_refusal", "refused after the money moved")
            if probe.then == "crash":
                raise StorageError("the database failed after the money moved")
            return json_response(201, {"status": result.status.value})

        return run_post(request, caller, body, handle)

    app.add_api_route(PROBE, probe_route, methods=["POST"])  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgres"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    url, schema = fresh_database(request.param, tmp_path)
    try:
        led = open_ledger(url, migrate=True)
        funding, wallet = uuid.uuid4(), uuid.uuid4()
        led.create_accounts([Account(funding, KES, 1), Account(wallet, KES, 1)])
        probe = Probe()
        app = create_app(url, settings=FAST_TEST_SETTINGS)
        add_probe(app, probe, funding, wallet)
        server = ServerThread(app).start()
        made = create_key(url, "operator", "probe", "ed25519", tmp_path / "k", setup_rules=False)
        client = Client.from_key_file(
            server.base_url, made["key_id"], tmp_path / "k", attempts_max=1
        )
        try:
            yield Rig(led, client, probe, funding, wallet)
        finally:
            client.close()
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def test_a_failure_after_the_money_moved_leaves_nothing_and_the_retry_runs_once(
    rig: Rig,
) -> None:
    transfer_id, key = uuid.uuid4(), str(uuid.uuid4())
    rig.probe.then = "crash"
    failed = rig.send(transfer_id, key)
    assert (failed.status_code, failed.json()["code"]) == (503, "not_ready")
    assert rig.ledger.lookup_transfers([transfer_id]) == []
    assert rig.moved() == 0
    assert rig.in_progress_records() == 0  # no claim left behind: no lease to wait out
    rig.probe.then = "ok"
    done = rig.send(transfer_id, key)
    assert (done.status_code, done.json()) == (201, {"status": Status.CREATED.value})
    replayed = rig.send(transfer_id, key)
    assert (replayed.status_code, replayed.content) == (201, done.content)
    assert replayed.headers["idempotency-replayed"] == "true"
    assert rig.moved() == 250
    assert rig.probe.runs == 2  # the failed run and the one that counted


def test_a_refusal_is_stored_and_what_was_done_before_it_stays(rig: Rig) -> None:
    transfer_id, key = uuid.uuid4(), str(uuid.uuid4())
    rig.probe.then = "refuse"
    refused = rig.send(transfer_id, key)
    assert (refused.status_code, refused.json()["code"]) == (422, "test_refusal")
    assert [t.id for t in rig.ledger.lookup_transfers([transfer_id])] == [transfer_id]
    rig.probe.then = "ok"  # a replay answers what was stored, whatever would happen now
    again = rig.send(transfer_id, key)
    assert (again.status_code, again.content) == (422, refused.content)
    assert again.headers["idempotency-replayed"] == "true"
    assert rig.moved() == 250
    assert rig.probe.runs == 1


def test_a_refusal_inside_a_flow_call_leaves_nothing_of_it(rig: Rig) -> None:
    transfer_id, key = uuid.uuid4(), str(uuid.uuid4())
    rig.probe.then = "refuse_inside"
    refused = rig.send(transfer_id, key)
    assert (refused.status_code, refused.json()["code"]) == (422, "test_refusal")
    assert rig.ledger.lookup_transfers([transfer_id]) == []
    assert rig.moved() == 0
    assert rig.probe.runs == 0  # the handler stopped at the refusal
    assert rig.send(transfer_id, key).content == refused.content


def test_one_key_sent_twice_at_once_runs_once_and_the_other_gets_its_answer(
    rig: Rig,
) -> None:
    transfer_id, key = uuid.uuid4(), str(uuid.uuid4())
    rig.probe.pause_s = 0.5  # the first is inside its transaction when the second arrives
    answers: list[httpx.Response] = []

    def send() -> None:
        answers.append(rig.send(transfer_id, key))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.status_code for a in answers) == [201, 201]
    assert sorted(a.headers.get("idempotency-replayed", "") for a in answers) == ["", "true"]
    assert answers[0].content == answers[1].content
    assert rig.probe.runs == 1
    assert rig.moved() == 250
    assert rig.in_progress_records() == 0
