"""Agents hand in their cash counts over signed HTTP, both engines.

The story: Wanjiru's station takes a villager's KES 5,000 in cash. She counts her drawer
and sends the count from her phone (``POST /v1/agents/{her id}/cash-counts``): it is the
``cash-count`` job's file as JSON, read by the job's own parser, reconciled at once. A
balanced count is an ``ok`` run; a count KES 100 short needs a comment and proposes a
variance (nothing moves). The run is the one ``GET /v1/reconciliation/runs/{id}``
serves, with its break; the count is kept as the run's input (content-addressed). A
retry with the same Idempotency-Key is the same answer; another key is another run of
the same count. Agents count only their own cash; operators count for any agent;
storefronts and auditors do not count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.client import Client
from api.signatures import sign_request
from ledger import open_ledger
from reconciliation import cash_count
from reconciliation.uploads import INPUTS_FOLDER
from tests.conftest import drop_pg_schema
from tests.test_api_attacks import send
from tests.test_api_cash import Counter
from tests.test_api_harness import FAST_TEST_SETTINGS, Harness, ServerThread, fresh_database
from tests.test_api_orders import ok, refused

KES = "KES"
CASH_IN_MINOR = 500_000
BALANCED = {"1000": 5}
SHORT_BY_100 = {"1000": 4, "500": 1, "200": 2}

FOLDERS: dict[str, Path] = {}
"""Each server's temporary folder, by database URL (its reports are under it)."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def recon_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """A server per engine whose reports (and kept inputs) go to a temporary folder."""
    tmp = tmp_path_factory.mktemp("counts")
    url, schema = fresh_database(request.param, tmp)
    settings = dataclasses.replace(FAST_TEST_SETTINGS, reports_dir=str(tmp / "reports"))
    led = open_ledger(url, migrate=True)
    server = ServerThread(create_app(url, settings=settings)).start()
    (tmp / "keys").mkdir()
    harness = Harness(url, server.base_url, led, tmp / "keys")
    FOLDERS[url] = tmp
    try:
        yield harness
    finally:
        harness.close_clients()
        server.stop()
        led.close()
        if schema is not None:
            drop_pg_schema(schema)


@pytest.fixture
def api(recon_api: Harness) -> Iterator[Harness]:
    try:
        yield recon_api
    finally:
        recon_api.close_clients()


def inputs(api: Harness, job: str) -> list[Path]:
    folder = FOLDERS[api.db_url] / "reports" / INPUTS_FOLDER / job
    return sorted(folder.iterdir()) if folder.is_dir() else []


def count_body(
    denominations: dict[str, int], comment: str | None = None, **over: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "counted_at": datetime.now(UTC).isoformat(),
        "currency": KES,
        "denominations": denominations,
    }
    if comment is not None:
        body["comment"] = comment
    return {**body, **over}


def submit(who: Client, agent_id: str, body: Any, **kw: Any) -> httpx.Response:
    return who.request("POST", f"/v1/agents/{agent_id}/cash-counts", json_body=body, **kw)


def post_raw(
    who: Client,
    path: str,
    body: bytes,
    content_type: str,
    params: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> httpx.Response:
    """A signed POST of ``body`` as ``content_type`` (the client signs JSON only)."""
    url = who.url(path, params)
    key = idempotency_key or str(uuid.uuid4())
    headers = {"content-type": content_type, "idempotency-key": f'"{key}"'}
    signed = sign_request(
        method="POST",
        url=url,
        headers=headers,
        body=body,
        key_id=who.key_id,
        alg=who.alg,
        private_key=who._key,
        created=who.now(),
    )
    return httpx.post(url, content=body, headers={**headers, **signed})


def station(api: Harness) -> Counter:
    """An agent whose drawer holds a villager's KES 5,000 (and nothing else)."""
    counter = Counter(api)
    ok(counter.cash_in(CASH_IN_MINOR), 201)
    return counter


def test_a_balanced_count_is_an_ok_run_served_with_its_input_kept(api: Harness) -> None:
    shop = station(api)
    answer = submit(shop.agent, shop.agent_id, count_body(BALANCED))
    made = ok(answer, 201)
    run = made["run"]
    assert answer.headers["location"] == f"/v1/reconciliation/runs/{run['id']}"
    assert (run["job"], run["status"], run["breaks"], run["scope"]) == (
        "cash-count",
        "ok",
        0,
        shop.agent_id,
    )
    s = run["summary"]
    assert (s["counted_minor"], s["expected_minor"], s["variance_minor"]) == (500_000,) * 2 + (0,)
    assert s["denominations"] == {"100000": 5} and made["variance"] is None
    assert {"summary.json", "detail.csv", "report.html"} <= set(run["files"])

    served = ok(api.client("auditor").request("GET", answer.headers["location"]))
    assert served["summary"] == s and served["breaks"] == 0
    kept = [p for p in inputs(api, "cash-count") if p.name == f"{run['input_sha256']}.json"]
    assert len(kept) == 1
    assert hashlib.sha256(kept[0].read_bytes()).hexdigest() == run["input_sha256"]
    assert cash_count.parse_count(kept[0].read_bytes()).agent_id == uuid.UUID(shop.agent_id)

    # an operator counts for the agent too (a later moment: another count)
    later = ok(submit(shop.operator, shop.agent_id, count_body(BALANCED)), 201)
    assert later["run"]["status"] == "ok"
    assert later["run"]["summary"]["previous_count_at"] == s["counted_at"]


def test_a_short_count_proposes_a_variance_and_a_retry_is_one_run(api: Harness) -> None:
    shop = station(api)
    body = count_body(SHORT_BY_100)
    before = inputs(api, "cash-count")
    missing = refused(submit(shop.agent, shop.agent_id, body), 422, "job_refused")
    assert "short by KES 100.00" in missing["detail"] and "needs a comment" in missing["detail"]
    assert inputs(api, "cash-count") == before  # nothing kept of a refused count

    body["comment"] = "a KES 100 note went with the change <b>sic</b>"
    key = str(uuid.uuid4())
    first = submit(shop.agent, shop.agent_id, body, idempotency_key=key)
    made = ok(first, 201)
    variance, run = made["variance"], made["run"]
    assert (run["status"], run["breaks"]) == ("breaks", 1)
    assert run["summary"]["breaks_by_kind"] == {"short": 1}
    assert (variance["direction"], variance["amount_minor"], variance["state"]) == (
        "short",
        10_000,
        "proposed",
    )
    assert variance["comment"] == body["comment"]  # markup is text, kept as given
    assert (variance["agent_id"], variance["decided_by"]) == (shop.agent_id, None)

    replay = submit(shop.agent, shop.agent_id, body, idempotency_key=key)
    assert replay.headers.get("idempotency-replayed") == "true"
    assert replay.json() == made
    again = ok(submit(shop.agent, shop.agent_id, body), 201)  # another key: another run
    assert again["run"]["attempt"] == 2 and again["run"]["id"] != run["id"]
    assert again["variance"]["id"] == variance["id"]
    other = count_body({"1000": 4}, "recounted", counted_at=body["counted_at"])
    refused(submit(shop.agent, shop.agent_id, other), 422, "job_refused")
    listed = ok(shop.operator.request("GET", "/v1/variances", params={"agent_id": shop.agent_id}))
    assert [v["id"] for v in listed["data"]] == [variance["id"]]


def test_agents_count_only_their_own_cash_and_others_may_not_count(api: Harness) -> None:
    shop, other = station(api), station(api)
    body = count_body(BALANCED)
    refused(submit(other.agent, shop.agent_id, body), 404, "agent_not_found")
    for role in ("storefront", "auditor"):
        refused(submit(api.client(role), shop.agent_id, body), 403, "forbidden")
    named = refused(
        submit(other.agent, other.agent_id, {**body, "agent_id": shop.agent_id}), 422, "job_refused"
    )
    assert "not" in named["detail"]
    refused(submit(shop.operator, shop.villager_id, body), 422, "job_refused")  # not an agent
    refused(submit(shop.operator, str(uuid.uuid4()), body), 422, "job_refused")
    assert cash_count.list_variances(api.ledger, agent_id=uuid.UUID(shop.agent_id)) == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"denominations": {"1000": 1.5}}, "fraction"),
        ({"denominations": {"0.005": 1}}, "fraction digits"),
        ({"denominations": {"1000": -1}}, "integer"),
        ({"denominations": {}}, "1..64"),
        ({"counted_at": "2026-06-01T18:00:00"}, "offset"),
        ({"counted_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "future"),
        ({"currency": "XTS"}, "ISO 4217"),
        ({"till": 1}, "unknown fields"),
        ({"comment": "x" * 501}, "comment"),
    ],
)
def test_malformed_counts_are_refused_by_the_jobs_parser(
    api: Harness, change: dict[str, Any], words: str
) -> None:
    shop = station(api)
    problem = refused(
        submit(shop.agent, shop.agent_id, {**count_body(BALANCED), **change}), 422, "job_refused"
    )
    assert words in problem["detail"]
    assert cash_count.list_variances(api.ledger, agent_id=uuid.UUID(shop.agent_id)) == []


def test_unsigned_forged_oversized_and_non_json_counts_are_refused(api: Harness) -> None:
    shop = station(api)
    before = inputs(api, "cash-count")
    path = f"/v1/agents/{shop.agent_id}/cash-counts"
    body = json.dumps(count_body(BALANCED)).encode()
    refused(httpx.post(shop.agent.url(path), content=body), 401, "signature_missing")
    forged = send(shop.agent, "POST", path, body, send_body=body.replace(b'": 5', b'": 9'))
    refused(forged, 401, "digest_mismatch")
    elsewhere = send(
        shop.agent, "POST", path, body, send_path=f"/v1/agents/{uuid.uuid4()}/cash-counts"
    )
    assert elsewhere.status_code == 401
    padded = json.dumps({**count_body(BALANCED), "comment": "x" * cash_count.INPUT_BYTES_MAX})
    problem = refused(send(shop.agent, "POST", path, padded.encode()), 422, "job_refused")
    assert f"at most {cash_count.INPUT_BYTES_MAX} bytes" in problem["detail"]
    huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    refused(send(shop.agent, "POST", path, huge), 413, "body_too_large")
    refused(post_raw(shop.agent, path, body, "text/plain"), 415, "unsupported_media_type")
    assert cash_count.list_variances(api.ledger, agent_id=uuid.UUID(shop.agent_id)) == []
    assert inputs(api, "cash-count") == before  # nothing kept
