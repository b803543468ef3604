"""Schemathesis against ``/openapi.json``: no 5xx, and every answer is the one documented.

The schema is the app's own document; the requests go over real HTTP to a live server
on each engine (SQLite, then PostgreSQL). A ``requests`` auth hook signs every generated
request the way a client must (RFC 9421 ``vledger`` profile: Content-Digest,
Signature-Input, Signature, and a fresh Idempotency-Key on every POST), so the generated
data reaches the routes instead of stopping at 401. Each example draws the role that
signs it (operator, storefront, agent, auditor), and path parameters are sometimes
swapped for ids that exist (an account, a transfer, a party, an order, a device, a
webhook endpoint), so the routes past the 404 are exercised too.

Checks: ``not_a_server_error``, ``status_code_conformance``, ``response_schema_conformance``
and ``content_type_conformance``. Bounded for CI: derandomized (fixed seed), the
schema's examples, the coverage phase, then ``EXAMPLES_PER_OPERATION`` fuzzed examples
per operation, positive and negative, no example database: about a minute per engine.

The tests are built with ``schemathesis.pytest.lazy.get_all_tests`` and run in one
pytest test (failures collected per operation) rather than with
``schemathesis.pytest.from_fixture(...).parametrize()``: that one reports through
pytest subtests, which fails under pytest 9.2 (``'Function' object has no attribute
'_nodeid'``, schemathesis 4.32).
"""

from __future__ import annotations

import base64
import os
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.client import Client
from api.signatures import sign_request
from ledger import open_ledger
from ledger.flows import fees
from tests.conftest import drop_pg_schema
from tests.test_api_harness import (
    FAST_TEST_SETTINGS,
    Harness,
    ServerThread,
    fresh_database,
    transfer_body,
)
from tests.test_api_orders import KES, ORDER_RULES, new_village
from webhooks import WebhookSettings

EXAMPLES_PER_OPERATION = int(os.environ.get("VLEDGER_SCHEMATHESIS_EXAMPLES", "15"))
"""Fuzzed examples per operation (CI: 15, about a minute per engine; raise it locally)."""
ROLES = ("operator", "storefront", "agent", "auditor")
NATURAL_ROLES = (
    ("/v1/orders", "storefront"),
    ("/v1/webhook-endpoints", "storefront"),
    ("/v1/agents", "agent"),
    ("/v1/cash-", "agent"),
    ("/v1/devices", "agent"),
    ("/v1/offline-exceptions", "agent"),
)
SEED = 20240601
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class SignedAuth(requests.auth.AuthBase):
    """Signs a prepared request (its final URL and body bytes) with one key."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body.encode("utf-8") if isinstance(r.body, str) else (r.body or b"")
        r.body = body or None
        if body:
            r.headers["Content-Length"] = str(len(body))
        for name in ("Signature", "Signature-Input", "Content-Digest", "Idempotency-Key"):
            r.headers.pop(name, None)
        given: dict[str, str] = {}
        if body or "Content-Type" in r.headers:
            given["content-type"] = r.headers.get("Content-Type", "application/json")
        if r.method == "POST":
            given["idempotency-key"] = f'"{uuid.uuid4()}"'
        assert r.method is not None and r.url is not None
        signed = sign_request(
            method=r.method,
            url=r.url,
            headers=given,
            body=body,
            key_id=self.client.key_id,
            alg=self.client.alg,
            private_key=self.client._key,
            created=datetime.now(UTC),
        )
        r.headers.update(signed)
        return r


@dataclass
class Live:
    base_url: str
    auths: dict[str, SignedAuth]
    known_ids: dict[str, list[str]] = field(default_factory=dict)
    """Ids that exist, by path parameter name."""
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    """How often each (operation, status) was answered: the run must reach past 401/404."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    url, schema = fresh_database(request.param, tmp)
    led = open_ledger(url, migrate=True)
    app = create_app(
        url,
        settings=FAST_TEST_SETTINGS,
        webhook_settings=WebhookSettings(
            worker_enabled=False, target_networks_allowed=("127.0.0.0/8",)
        ),
    )
    server = ServerThread(app).start()
    key_dir = tmp / "keys"
    key_dir.mkdir()
    harness = Harness(url, server.base_url, led, key_dir)
    try:
        fees.publish_schedule(
            led,
            product="order",
            currency=KES,
            effective_from=datetime.now(UTC) - timedelta(days=1),
            rules=ORDER_RULES,
        )
        village = new_village(harness)
        clients = {
            "operator": village.operator,
            "storefront": village.shop,
            "agent": village.agent,
            "auditor": harness.client("auditor"),
        }
        known = _seed(harness, village, clients)
        auths = {role: SignedAuth(c) for role, c in clients.items()}
        yield Live(server.base_url, auths, known)
    finally:
        harness.close_clients()
        server.stop()
        led.close()
        if schema is not None:
            drop_pg_schema(schema)


def _seed(harness: Harness, village: Any, clients: dict[str, Client]) -> dict[str, list[str]]:
    """A few objects of each kind, so that generated requests can find them."""
    shop, agent = clients["storefront"], clients["agent"]
    source = shop.create_account(id=str(uuid.uuid4()), currency=KES, code=101)["id"]
    [moved] = village.operator.create_transfers([transfer_body(village.bank, source, 50_000)])
    order = village.order()
    device_key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    device = agent.request(
        "POST",
        "/v1/devices",
        json_body={
            "id": str(uuid.uuid4()),
            "public_key": base64.b64encode(device_key).decode(),
            "allowance_minor": 1_000,
        },
    )
    assert device.status_code == 201, device.text
    endpoint = shop.request(
        "POST",
        "/v1/webhook-endpoints",
        json_body={"url": "http://127.0.0.1:9/hooks", "event_types": ["order.paid"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    sacrificial = harness.key("storefront")
    known = {
        "account_id": [source, village.bank],
        "transfer_id": [moved["id"]],
        "party_id": [village.shop_id, village.agent_id, village.villager_id],
        "order_id": [order["id"]],
        "key_id": [sacrificial["key_id"]],
        "agent_id": [village.agent_id],
    }
    known["device_id"] = [device.json()["id"]]
    known["endpoint_id"] = [endpoint.json()["id"]]
    return known


@pytest.fixture(scope="module")
def api_schema(live: Live) -> Any:
    schema = schemathesis.openapi.from_url(live.base_url + "/openapi.json")
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        max_examples=EXAMPLES_PER_OPERATION,
        deterministic=True,
        database="none",
    )
    schema.config.seed = SEED
    return schema


def natural_role(path: str) -> str:
    """The role an operation is meant for (the others mostly answer 403)."""
    for prefix, role in NATURAL_ROLES:
        if path.startswith(prefix):
            return role
    return "operator"


PROOF_OF_POSSESSION = "POST /v1/enrollments/redeem"
"""The one operation no signed caller's key may pass: see ``api/routes/enrollment.py``."""


def test_api_conforms_to_its_schema(live: Live, api_schema: Any) -> None:
    """Every operation: the schema's examples, the coverage phase's boundary and invalid
    values, then a few fuzzed examples; all failures reported together."""

    def check(case: schemathesis.Case) -> None:
        # the role and the ids follow from the case, so a shrunk case replays the same way
        # (schemathesis refuses extra @given strategies beside the schema's examples)
        drawn = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode())
        who, known = drawn % (2 * len(ROLES)), drawn // 16 % 3
        role = natural_role(case.operation.path) if who < len(ROLES) else ROLES[who % len(ROLES)]
        if known:
            for name in case.path_parameters or {}:
                ids = live.known_ids.get(name)
                if ids:
                    case.path_parameters[name] = ids[known % len(ids)]
        with requests.Session() as session:
            session.auth = live.auths[role]
            response = case.call_and_validate(session=session, checks=CHECKS)
        live.statuses[(case.operation.label, response.status_code)] += 1

    hypothesis_settings = settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    failures: list[str] = []
    tests = get_all_tests(
        schema=api_schema,
        test_func=check,
        settings=hypothesis_settings,
        given_kwargs={},
    )
    count = 0
    for result in tests:
        operation, run = result.ok()
        count += 1
        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}:\n{exc}")
    assert count >= 30
    assert not failures, "\n\n".join(failures)
    # the run went past the front door: every request verified, many operations succeeded
    # (but a redeem, which must be signed by the very key it enrolls, a proof of possession
    # no key of the fuzzer's can give: its 401 is the documented answer)
    refused = {label for label, status in live.statuses if status == 401}
    assert refused <= {PROOF_OF_POSSESSION}
    succeeded = {label for label, status in live.statuses if status < 300}
    assert len(succeeded) >= count // 2, sorted(succeeded)


def test_every_request_is_signed_by_the_hook(live: Live) -> None:
    """The hook is what the run depends on: a signed GET passes, an unsigned one is 401."""
    with requests.Session() as session:
        session.auth = live.auths["operator"]
        assert session.get(live.base_url + "/v1/accounts").status_code == 200
    assert requests.get(live.base_url + "/v1/accounts", timeout=10).status_code == 401
