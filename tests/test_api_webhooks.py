"""Webhooks end to end, both engines: a real HTTP receiver verifies each delivery with the
``standardwebhooks`` library; failures are retried with backoff, then given up; a 410
disables the endpoint; a rotated secret signs beside the new one for its grace period;
endpoints are their owner's; the worker runs inside the served app and stops with it."""

from __future__ import annotations

import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

import webhooks
from api.app import create_app
from api.client import Client
from ledger import Ledger, open_ledger
from ledger.flows import events
from tests.conftest import drop_pg_schema
from tests.test_api_cash import QUIET_SETTINGS
from tests.test_api_harness import FAST_TEST_SETTINGS, Harness, ServerThread, fresh_database
from tests.test_api_orders import ok, refused
from webhooks import WebhookSettings, deliver_due

KES = "KES"
LOOPBACK = ("127.0.0.0/8", "::1/128")
HOOKS = WebhookSettings(worker_enabled=False, target_networks_allowed=LOOPBACK)


# -- a receiver ---------------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP server that records each POST and answers the next scripted status."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(size)
                receiver.received.append(
                    Received({k.lower(): v for k, v in self.headers.items()}, body)
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    try:
        yield found
    finally:
        found.close()


# -- a server without its worker (tests drive deliver_due) -----------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hooks_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("hooks")
    url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(url, migrate=True)
        app = create_app(url, settings=QUIET_SETTINGS, webhook_settings=HOOKS)
        server = ServerThread(app).start()
        (tmp / "keys").mkdir()
        try:
            yield Harness(url, server.base_url, led, tmp / "keys")
        finally:
            server.stop()
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


@dataclass
class Shop:
    api: Harness
    client: Client
    party_id: str

    def endpoint(self, url: str, types: list[str] | None = None) -> dict[str, Any]:
        body = {"url": url, "event_types": types or ["order.*"]}
        created: dict[str, Any] = ok(
            self.client.request("POST", "/v1/webhook-endpoints", json_body=body), 201
        )
        return created

    def cancelled_order(self) -> str:
        """An order created and cancelled: one ``order.cancelled`` event, no money."""
        order_id = str(uuid.uuid4())
        ok(
            self.client.request(
                "POST",
                "/v1/orders",
                json_body={
                    "id": order_id,
                    "currency": KES,
                    "amount_minor": 1_000,
                    "delivery_method": "courier",
                },
            ),
            201,
        )
        ok(self.client.request("POST", f"/v1/orders/{order_id}/cancel"))
        return order_id

    def deliveries(self, endpoint_id: str) -> list[dict[str, Any]]:
        page = ok(self.client.request("GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries"))
        found: list[dict[str, Any]] = page["data"]
        return found


def new_shop(api: Harness, role: str = "storefront") -> Shop:
    made = api.key(role)
    operator = api.client("operator")
    body = {"id": made["principal_id"], "kind": role, "name": "Duka", "currency": KES}
    ok(operator.request("POST", "/v1/parties", json_body=body), 201)
    return Shop(api, api.client_for(made), made["principal_id"])


@pytest.fixture
def shop(hooks_server: Harness) -> Iterator[Shop]:
    try:
        yield new_shop(hooks_server)
    finally:
        hooks_server.close_clients()


def deliver(led: Ledger, now: datetime, settings: WebhookSettings = HOOKS) -> int:
    return deliver_due(led, now=now, settings=settings, rand=lambda: 0.5)


def verified(secret: str, got: Received) -> Any:
    return Webhook(secret).verify(got.body, got.headers)


# -- the stories ----------------------------------------------------------------------------


def test_a_delivery_fails_once_is_retried_and_verifies_with_the_library(
    shop: Shop, receiver: Receiver
) -> None:
    endpoint = shop.endpoint(receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["state"] == "enabled"
    assert "secret" not in ok(shop.client.request("GET", f"/v1/webhook-endpoints/{endpoint['id']}"))
    order_id = shop.cancelled_order()
    receiver.statuses = [500]

    now = datetime.now(UTC)
    assert deliver(shop.api.ledger, now) == 1
    [delivery] = shop.deliveries(endpoint["id"])
    assert (delivery["state"], delivery["attempts"], delivery["last_status_code"]) == (
        "pending",
        1,
        500,
    )
    assert delivery["event_type"] == "order.cancelled"
    retry_at = datetime.fromisoformat(delivery["next_attempt_at"])
    assert abs((retry_at - now).total_seconds() - HOOKS.backoff_base_s) < 0.01
    assert deliver(shop.api.ledger, now + timedelta(seconds=5)) == 0  # not due yet

    assert deliver(shop.api.ledger, now + timedelta(seconds=31)) == 1
    [delivery] = shop.deliveries(endpoint["id"])
    assert (delivery["state"], delivery["attempts"], delivery["last_status_code"]) == (
        "succeeded",
        2,
        200,
    )
    assert deliver(shop.api.ledger, now + timedelta(hours=1)) == 0  # delivered once

    first, second = receiver.received
    for got in (first, second):
        message = verified(endpoint["secret"], got)
        assert message["type"] == "order.cancelled"
        assert message["data"]["order_id"] == order_id
        assert message["data"]["state"] == "cancelled"
        assert got.headers["content-type"] == "application/json"
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery["event_id"]
    assert first.body == second.body
    with pytest.raises(WebhookVerificationError):
        verified(webhooks.new_secret(), first)


def test_a_delivery_is_given_up_after_the_last_attempt(shop: Shop, receiver: Receiver) -> None:
    few = WebhookSettings(worker_enabled=False, target_networks_allowed=LOOPBACK, attempts_max=3)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there: connection refused
    dead = shop.endpoint(f"http://127.0.0.1:{port}/hooks")
    live = shop.endpoint(receiver.url)
    receiver.statuses = [503, 503, 503]
    shop.cancelled_order()
    now = datetime.now(UTC)
    for hour in range(3):
        assert deliver(shop.api.ledger, now + timedelta(hours=hour), few) == 2
    assert deliver(shop.api.ledger, now + timedelta(days=5), few) == 0
    [gone] = shop.deliveries(dead["id"])
    assert (gone["state"], gone["attempts"], gone["next_attempt_at"]) == ("failed", 3, None)
    assert gone["last_status_code"] is None
    assert "ConnectError" in gone["last_error"]
    [failed] = shop.deliveries(live["id"])
    assert (failed["state"], failed["attempts"], failed["last_status_code"]) == ("failed", 3, 503)
    assert failed["last_error"] == "HTTP 503"
    attempts = shop.api.ledger.transact(
        lambda tx: tx.execute(
            "SELECT COUNT(*) FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.endpoint_id = :e",
            {"e": uuid.UUID(live["id"])},
        )
    )
    assert attempts == [(3,)]


def test_410_disables_the_endpoint_and_it_can_be_enabled_again(
    shop: Shop, receiver: Receiver
) -> None:
    endpoint = shop.endpoint(receiver.url)
    receiver.statuses = [410]
    shop.cancelled_order()
    now = datetime.now(UTC)
    assert deliver(shop.api.ledger, now) == 1
    found = ok(shop.client.request("GET", f"/v1/webhook-endpoints/{endpoint['id']}"))
    assert (found["state"], found["disabled_reason"]) == (
        "disabled",
        "the target answered 410 Gone",
    )
    [delivery] = shop.deliveries(endpoint["id"])
    assert (delivery["state"], delivery["last_status_code"]) == ("failed", 410)

    shop.cancelled_order()  # while disabled: not delivered
    assert deliver(shop.api.ledger, now + timedelta(seconds=1)) == 0
    assert len(shop.deliveries(endpoint["id"])) == 1
    enabled = ok(shop.client.request("POST", f"/v1/webhook-endpoints/{endpoint['id']}/enable"))
    assert (enabled["state"], enabled["disabled_reason"]) == ("enabled", None)
    shop.cancelled_order()
    assert deliver(shop.api.ledger, now + timedelta(seconds=2)) == 1
    assert [d["state"] for d in shop.deliveries(endpoint["id"])] == ["failed", "succeeded"]


def test_a_rotated_secret_signs_beside_the_new_one_for_its_grace(
    shop: Shop, receiver: Receiver
) -> None:
    endpoint = shop.endpoint(receiver.url)
    path = f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret"
    rotated = ok(shop.client.request("POST", path, json_body={"grace_s": 3600}))
    assert rotated["secret"] != endpoint["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    shop.cancelled_order()
    now = datetime.now(UTC)
    assert deliver(shop.api.ledger, now) == 1
    [both] = receiver.received
    assert len(both.headers["webhook-signature"].split(" ")) == 2
    assert verified(endpoint["secret"], both)["type"] == "order.cancelled"
    assert verified(rotated["secret"], both)["type"] == "order.cancelled"

    final = ok(shop.client.request("POST", path, json_body={"grace_s": 0}))
    assert final["previous_secret_expires_at"] is None
    shop.cancelled_order()
    assert deliver(shop.api.ledger, now + timedelta(seconds=1)) == 1
    only = receiver.received[-1]
    assert len(only.headers["webhook-signature"].split(" ")) == 1
    assert verified(final["secret"], only)["type"] == "order.cancelled"
    with pytest.raises(WebhookVerificationError):
        verified(rotated["secret"], only)


def test_endpoints_are_their_owners_and_targets_must_be_allowed(
    shop: Shop, receiver: Receiver
) -> None:
    endpoint = shop.endpoint(receiver.url, ["order.paid", "order.refunded"])
    assert endpoint["event_types"] == ["order.paid", "order.refunded"]
    other = new_shop(shop.api)
    for path in (
        f"/v1/webhook-endpoints/{endpoint['id']}",
        f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
    ):
        refused(other.client.request("GET", path), 404, "not_found")
    for action in ("rotate-secret", "disable", "enable"):
        answer = other.client.request("POST", f"/v1/webhook-endpoints/{endpoint['id']}/{action}")
        refused(answer, 404, "not_found")
    assert ok(other.client.request("GET", "/v1/webhook-endpoints"))["data"] == []
    mine = ok(shop.client.request("GET", "/v1/webhook-endpoints"))
    assert [e["id"] for e in mine["data"]] == [endpoint["id"]]

    auditor = shop.api.client("auditor")
    assert (
        ok(auditor.request("GET", f"/v1/webhook-endpoints/{endpoint['id']}"))["id"]
        == (endpoint["id"])
    )
    body = {"url": receiver.url, "event_types": ["*"]}
    refused(auditor.request("POST", "/v1/webhook-endpoints", json_body=body), 403, "forbidden")
    agent = new_shop(shop.api, "agent")
    assert agent.endpoint(receiver.url, ["cashin.*", "offline.exception"])["state"] == "enabled"

    for url in (
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hooks",
        "http://[fe80::1]/hooks",
        "ftp://127.0.0.1/hooks",
        "http://user:pw@127.0.0.1/hooks",
        "http://no-such-host.invalid/hooks",
    ):
        answer = shop.client.request(
            "POST", "/v1/webhook-endpoints", json_body={"url": url, "event_types": ["*"]}
        )
        refused(answer, 422, "target_refused")
    for types in (["order.shipped"], ["nothing.*"], []):
        answer = shop.client.request(
            "POST", "/v1/webhook-endpoints", json_body={"url": receiver.url, "event_types": types}
        )
        refused(answer, 422, "validation_failed")

    # only matching types are delivered
    shop.cancelled_order()
    assert deliver(shop.api.ledger, datetime.now(UTC)) == 0
    assert shop.deliveries(endpoint["id"]) == []


def test_events_past_a_hole_are_delivered_and_the_cursor_waits_for_it(
    shop: Shop, receiver: Receiver
) -> None:
    led = shop.api.ledger
    endpoint = shop.endpoint(receiver.url, ["*"])
    deliver(led, datetime.now(UTC))  # the cursor catches up with earlier tests

    class RolledBack(Exception):
        pass

    def doomed(tx: Any) -> None:
        events.emit(tx, events.ORDER_PAID, {}, party_id=uuid.UUID(shop.party_id))
        raise RolledBack

    with pytest.raises(RolledBack):
        led.transact(doomed)  # PostgreSQL's sequence keeps the seq it handed out
    shop.cancelled_order()
    now = datetime.now(UTC)
    assert deliver(led, now) == 1
    cursor = led.transact(lambda tx: tx.one("SELECT last_seq FROM webhook_cursor"))
    [last] = led.transact(lambda tx: tx.execute("SELECT MAX(seq) FROM events"))
    assert cursor is not None
    if led.transact(lambda tx: tx.dialect) == "postgresql":
        assert cursor[0] < last[0]  # held at the hole
        deliver(led, now + timedelta(seconds=HOOKS.gap_wait_s + 1))
        cursor = led.transact(lambda tx: tx.one("SELECT last_seq FROM webhook_cursor"))
        assert cursor is not None
    assert cursor[0] == last[0]
    assert [d["state"] for d in shop.deliveries(endpoint["id"])] == ["succeeded"]


def test_an_event_of_no_party_goes_to_every_subscribed_storefront(
    shop: Shop, receiver: Receiver
) -> None:
    led = shop.api.ledger
    sealed = shop.endpoint(receiver.url, ["checkpoint.sealed"])
    everything = new_shop(shop.api).endpoint(receiver.url, ["*"])
    orders_only = new_shop(shop.api).endpoint(receiver.url, ["order.*"])
    agents = new_shop(shop.api, "agent").endpoint(receiver.url, ["*"])
    deliver(led, datetime.now(UTC))  # the cursor catches up with earlier tests
    receiver.received.clear()

    payload = {"block": 7, "tree_size": 42, "checkpoint": "vledger\n42\n..."}
    event_id = led.transact(lambda tx: events.emit(tx, events.CHECKPOINT_SEALED, payload))
    late = new_shop(shop.api).endpoint(receiver.url, ["checkpoint.*"])  # after the event
    deliver(led, datetime.now(UTC))

    def deliveries(endpoint: dict[str, Any]) -> list[tuple[uuid.UUID, str]]:
        page = webhooks.list_deliveries(
            led, endpoint_id=uuid.UUID(endpoint["id"]), principal_id=None, after=None, limit=10
        )
        assert page is not None
        return [(d.event_id, d.state) for d in page[0]]

    assert deliveries(sealed) == deliveries(everything) == [(event_id, "succeeded")]
    assert deliveries(orders_only) == deliveries(agents) == deliveries(late) == []
    assert len(receiver.received) == 2
    secrets = {sealed["secret"], everything["secret"]}
    for got in receiver.received:
        assert got.headers["webhook-id"] == str(event_id)
        [message] = [verified(s, got) for s in secrets if _verifies(s, got)]
        assert (message["type"], message["data"]) == ("checkpoint.sealed", payload)


def _verifies(secret: str, got: Received) -> bool:
    try:
        verified(secret, got)
    except WebhookVerificationError:
        return False
    return True


def test_the_backoff_schedule_spans_about_three_days() -> None:
    settings = WebhookSettings()
    delays = [webhooks.backoff_s(n, settings, lambda: 0.5) for n in range(1, settings.attempts_max)]
    assert delays[:3] == [30.0, 60.0, 120.0]
    assert max(delays) == settings.backoff_cap_s
    assert 2.5 * 86_400 < sum(delays) < 3.5 * 86_400
    low = webhooks.backoff_s(1, settings, lambda: 0.0)
    high = webhooks.backoff_s(1, settings, lambda: 1.0)
    assert (low, high) == (24.0, 36.0)


def test_private_targets_are_refused_unless_their_network_is_allowed() -> None:
    def rebinding(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]

    with pytest.raises(webhooks.EndpointRefused, match="not a public address"):
        webhooks.check_target("https://shop.example/h", resolve=rebinding)
    webhooks.check_target("https://shop.example/h", ["127.0.0.0/8"], resolve=rebinding)
    webhooks.check_target("https://shop.example/h", resolve=lambda h, p: ["93.184.216.34"])


def test_the_worker_runs_inside_the_served_app_and_stops_with_it(
    tmp_path: Path, receiver: Receiver
) -> None:
    def workers() -> int:
        return sum(t.name == "vledger-webhooks" for t in threading.enumerate())

    before = workers()
    url = f"sqlite:///{tmp_path}/worker.db"
    led = open_ledger(url, migrate=True)
    settings = WebhookSettings(poll_interval_s=0.05, target_networks_allowed=LOOPBACK)
    server = ServerThread(create_app(url, settings=FAST_TEST_SETTINGS, webhook_settings=settings))
    server.start()
    (tmp_path / "keys").mkdir()
    api = Harness(url, server.base_url, led, tmp_path / "keys")
    try:
        shop = new_shop(api)
        endpoint = shop.endpoint(receiver.url)
        shop.cancelled_order()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not receiver.received and datetime.now(UTC) < deadline:
            threading.Event().wait(0.05)
        [got] = receiver.received
        assert verified(endpoint["secret"], got)["type"] == "order.cancelled"
        assert workers() == before + 1
    finally:
        api.close_clients()
        server.stop()
        led.close()
    assert workers() == before
