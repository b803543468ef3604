"""Auditors' routes over signed HTTP, on each engine: reconciliation runs (run one now,
list them page by page, read one and its files), the sealed blocks' checkpoints, and the
service's public key; other roles are refused."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from api.app import create_app
from ledger import open_ledger
from reconciliation.checkpoint import key_id, open_checkpoint
from reconciliation.jobs import JobRequest, run_job
from reconciliation.pack import verify_pack
from reconciliation.seal import seal_pending
from reconciliation.service_key import load_service_key
from tests.conftest import drop_pg_schema
from tests.test_api_harness import (
    FAST_TEST_SETTINGS,
    Harness,
    ServerThread,
    account_body,
    fresh_database,
    transfer_body,
)
from tests.test_api_orders import ok, refused

DAY = date(2024, 6, 1)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def audit_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("audit")
    url, schema = fresh_database(request.param, tmp)
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS,
        reports_dir=str(tmp / "reports"),
        service_key_path=str(tmp / "service-key.pem"),
    )
    led = open_ledger(url, migrate=True)
    server = ServerThread(create_app(url, settings=settings)).start()
    key_dir = tmp / "keys"
    key_dir.mkdir()
    harness = Harness(url, server.base_url, led, key_dir)
    FOLDERS[url] = tmp
    try:
        yield harness
    finally:
        harness.close_clients()
        server.stop()
        led.close()
        if schema is not None:
            drop_pg_schema(schema)


FOLDERS: dict[str, Path] = {}
"""Each server's temporary folder, by database URL."""


def reports_dir(api: Harness) -> Path:
    return FOLDERS[api.db_url] / "reports"


def key_file(api: Harness) -> Path:
    return FOLDERS[api.db_url] / "service-key.pem"


def test_an_auditor_lists_reads_and_downloads_a_run(audit_api: Harness) -> None:
    made = run_job(audit_api.ledger, "integrity", JobRequest(DAY), out=reports_dir(audit_api))
    auditor = audit_api.client("auditor")

    page = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    assert page["has_more"] is False
    assert page["data"][0]["id"] == str(made.run.id)
    listed = page["data"][0]
    assert (listed["job"], listed["business_date"], listed["attempt"]) == (
        "integrity",
        "2024-06-01",
        made.run.attempt,
    )
    only = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"job": "statement"}))
    assert str(made.run.id) not in {r["id"] for r in only["data"]}

    got = ok(auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}"))
    assert got["summary"] == made.run.summary
    assert got["files"] == ["summary.json", "detail.csv", "report.html"]
    assert got["status"] == made.run.status

    answer = auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}/files/detail.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content == (made.folder / "detail.csv").read_bytes()
    header = next(csv.reader(io.StringIO(answer.text)))
    assert tuple(header) == made.findings.detail_header

    summary = auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}/files/summary.json")
    assert summary.headers["content-type"] == "application/json"
    assert json.loads(summary.content) == made.run.summary
    html = auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}/files/report.html")
    assert html.headers["content-type"].startswith("text/html")

    operator = audit_api.client("operator")
    assert ok(operator.request("GET", f"/v1/reconciliation/runs/{made.run.id}"))["id"] == str(
        made.run.id
    )


def test_a_run_says_where_it_read_in_every_answer_and_in_the_openapi_document(
    audit_api: Harness,
) -> None:
    """No replica here: every run read the primary; on PostgreSQL its row has the
    primary's WAL position then, on SQLite no position at all; no close position."""
    auditor = audit_api.client("auditor")
    started = ok(
        auditor.request(
            "POST",
            "/v1/reconciliation/runs",
            json_body={"job": "integrity", "business_date": "2024-06-03"},
        ),
        201,
    )
    direct = run_job(audit_api.ledger, "integrity", JobRequest(DAY), out=reports_dir(audit_api))
    listed = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    by_id = {run["id"]: run for run in listed["data"]}
    for run_id in (started["id"], str(direct.run.id)):
        one = ok(auditor.request("GET", f"/v1/reconciliation/runs/{run_id}"))
        for answer in (one, by_id[run_id]) + ((started,) if run_id == started["id"] else ()):
            assert answer["read_source"] == "primary"
            assert answer["close_lsn"] is None
            if audit_api.db_url.startswith("sqlite"):
                assert answer["read_lsn"] is None
            else:
                assert re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", answer["read_lsn"])
        assert one["summary"]["reads"] == {
            "source": "primary",
            "read_lsn": one["read_lsn"],
            "close_lsn": None,
        }
    assert by_id[str(direct.run.id)]["read_lsn"] == direct.run.reads.read_lsn

    document = ok(httpx.get(f"{audit_api.base_url}/openapi.json", timeout=30))
    schemas = document["components"]["schemas"]
    for name in ("RunOut", "RunDetailOut"):
        properties = schemas[name]["properties"]
        assert properties["read_source"]["enum"] == ["primary", "replica"], name
        for lsn in ("read_lsn", "close_lsn"):
            assert {"type": "null"} in properties[lsn]["anyOf"], (name, lsn)
        assert {"read_source", "read_lsn", "close_lsn"} <= set(schemas[name]["required"]), name


def test_other_roles_are_refused_and_unknown_runs_and_files_are_404(audit_api: Harness) -> None:
    made = run_job(audit_api.ledger, "integrity", JobRequest(DAY), out=reports_dir(audit_api))
    storefront, agent = audit_api.client("storefront"), audit_api.client("agent")
    for who in (storefront, agent):
        for path in (
            "/v1/reconciliation/runs",
            f"/v1/reconciliation/runs/{made.run.id}",
            f"/v1/reconciliation/runs/{made.run.id}/files/detail.csv",
            "/v1/checkpoints",
            "/v1/service-key",
        ):
            refused(who.request("GET", path), 403, "forbidden")

    auditor = audit_api.client("auditor")
    unknown = uuid.uuid4()
    refused(auditor.request("GET", f"/v1/reconciliation/runs/{unknown}"), 404, "not_found")
    refused(
        auditor.request("GET", f"/v1/reconciliation/runs/{unknown}/files/detail.csv"),
        404,
        "not_found",
    )
    for name in ("api.db", "..%2F..%2Fapi.db", "detail.txt"):
        answer = auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}/files/{name}")
        assert answer.status_code in (400, 404)
    (made.folder / "report.html").unlink()
    refused(
        auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}/files/report.html"),
        404,
        "not_found",
    )
    got = ok(auditor.request("GET", f"/v1/reconciliation/runs/{made.run.id}"))
    assert got["files"] == ["summary.json", "detail.csv"]
    refused(
        auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "101"}),
        400,
        "invalid_parameter",
    )


def test_service_key_is_404_until_there_is_one_then_checkpoints_verify(
    audit_api: Harness,
) -> None:
    auditor = audit_api.client("auditor")
    assert not key_file(audit_api).exists()
    refused(auditor.request("GET", "/v1/service-key"), 404, "not_found")
    assert not key_file(audit_api).exists()  # a GET never makes a key
    assert ok(auditor.request("GET", "/v1/checkpoints")) == {"data": [], "has_more": False}

    operator = audit_api.client("operator")
    bank = operator.create_account(**account_body(code=999))["id"]
    shop = operator.create_account(**account_body())["id"]
    key = load_service_key(audit_api.db_url, key_file(audit_api))
    for size in (1, 2, 3):
        [moved] = operator.create_transfers([transfer_body(bank, shop, 100 * size)])
        assert moved["status"] == "created"
        assert seal_pending(audit_api.ledger, key) == 1

    answer = auditor.request("GET", "/v1/service-key")
    assert answer.status_code == 200
    assert answer.content == key.public_pem()
    public = load_pem_public_key(answer.content)

    first = ok(auditor.request("GET", "/v1/checkpoints", params={"limit": "2"}))
    assert [b["number"] for b in first["data"]] == [1, 2]
    assert first["has_more"] is True
    rest = ok(
        auditor.request("GET", "/v1/checkpoints", params={"starting_after": "2", "limit": "2"})
    )
    assert [b["number"] for b in rest["data"]] == [3]
    assert rest["has_more"] is False
    blocks = first["data"] + rest["data"]
    assert [b["tree_size"] for b in blocks] == [1, 2, 3]
    for block in blocks:
        assert isinstance(public, Ed25519PublicKey)
        note = open_checkpoint(block["checkpoint"], public)
        assert note.tree_size == block["tree_size"]
        assert note.root_hash.hex() == block["root_hash"]
        assert block["key_id"] == key_id(block["key_name"], key.public_key).hex()
    refused(
        auditor.request("GET", "/v1/checkpoints", params={"starting_after": "-1"}),
        400,
        "invalid_parameter",
    )


def test_an_auditor_runs_a_job_and_pages_through_the_runs(audit_api: Harness) -> None:
    auditor = audit_api.client("auditor")
    body = {"job": "ageing", "business_date": "2024-06-02"}
    answer = auditor.request("POST", "/v1/reconciliation/runs", json_body=body)
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert (made["job"], made["business_date"], made["status"]) == ("ageing", "2024-06-02", "ok")
    assert answer.headers["location"] == f"/v1/reconciliation/runs/{made['id']}"
    assert made["files"] == ["summary.json", "detail.csv", "report.html"]
    folder = reports_dir(audit_api) / "ageing" / "2024-06-02" / made["id"]
    assert json.loads((folder / "summary.json").read_text()) == made["summary"]

    # the same request (same Idempotency-Key) is one run; a new key is the next attempt
    again = auditor.request(
        "POST",
        "/v1/reconciliation/runs",
        json_body=body,
        idempotency_key=answer.request.headers["idempotency-key"].strip('"'),
    )
    assert again.headers.get("idempotency-replayed") == "true"
    assert again.json()["id"] == made["id"]
    second = ok(auditor.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    assert second["attempt"] == made["attempt"] + 1

    # three ageing runs, newest first, one per page
    ok(auditor.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    seen: list[str] = []
    after: str | None = None
    while True:
        params = {"job": "ageing", "limit": "1"} | ({"starting_after": after} if after else {})
        page = ok(auditor.request("GET", "/v1/reconciliation/runs", params=params))
        seen += [r["id"] for r in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert len(seen) == len(set(seen)) == 3
    assert seen[-2:] == [second["id"], made["id"]]
    attempts = [ok(auditor.request("GET", f"/v1/reconciliation/runs/{i}"))["attempt"] for i in seen]
    assert attempts == sorted(attempts, reverse=True)
    everything = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    assert set(seen) <= {r["id"] for r in everything["data"]}


def test_bad_run_requests_are_refused_and_run_nothing(audit_api: Harness) -> None:
    auditor = audit_api.client("auditor")
    before = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    for body, status, code in (
        ({"job": "statement", "business_date": "2024-06-01"}, 422, "unknown_job"),
        ({"job": "no-such-job", "business_date": "2024-06-01"}, 422, "unknown_job"),
        ({"job": "integrity", "business_date": "2024-02-30"}, 422, "validation_failed"),
        ({"job": "integrity", "business_date": "1 June"}, 422, "validation_failed"),
        ({"job": "integrity", "business_date": "2024-06-01", "status": "ok"}, 422, None),
        ({"job": "orders", "business_date": "2024-06-01", "scope": "not-a-uuid"}, 422, None),
    ):
        answer = auditor.request("POST", "/v1/reconciliation/runs", json_body=body)
        assert answer.status_code == status, (body, answer.text)
        if code is not None:
            assert answer.json()["code"] == code
    for who in ("storefront", "agent"):
        refused(
            audit_api.client(who).request(
                "POST",
                "/v1/reconciliation/runs",
                json_body={"job": "integrity", "business_date": "2024-06-01"},
            ),
            403,
            "forbidden",
        )
    refused(
        auditor.request(
            "GET", "/v1/reconciliation/runs", params={"starting_after": str(uuid.uuid4())}
        ),
        400,
        "invalid_parameter",
    )
    after = ok(auditor.request("GET", "/v1/reconciliation/runs", params={"limit": "100"}))
    assert after == before


def test_an_auditor_makes_a_pack_and_downloads_every_file_of_it(
    audit_api: Harness, tmp_path: Path
) -> None:
    operator, auditor = audit_api.client("operator"), audit_api.client("auditor")
    bank = operator.create_account(**account_body(code=999))["id"]
    shop = operator.create_account(**account_body())["id"]
    [moved] = operator.create_transfers([transfer_body(bank, shop, 12_345)])
    assert moved["status"] == "created"
    today = audit_api.ledger.now().date().isoformat()
    body = {"job": "pack", "business_date": today}

    # the pack is signed with the key the service is configured with (not a default one)
    key = load_service_key(audit_api.db_url, key_file(audit_api))
    made = ok(auditor.request("POST", "/v1/reconciliation/runs", json_body=body), 201)
    assert made["status"] == "ok", made["summary"]
    packed = [name for name in made["files"] if name.startswith("pack/")]
    assert {"pack/transfers.csv", "pack/MANIFEST.sha256", "pack/ledger.beancount"} <= set(packed)
    assert packed == sorted(made["summary"]["files"])

    copy = tmp_path / "pack"
    for name in packed:
        answer = auditor.request("GET", f"/v1/reconciliation/runs/{made['id']}/files/{name}")
        assert answer.status_code == 200, (name, answer.text)
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(answer.content)
    assert verify_pack(copy, key.public_key).ok
    transfers = auditor.request(
        "GET", f"/v1/reconciliation/runs/{made['id']}/files/pack/transfers.csv"
    )
    assert transfers.headers["content-type"].startswith("text/csv")
    assert moved["id"] in transfers.text

    # a changed file is not served; a name the run did not record is 404
    folder = reports_dir(audit_api) / "pack" / today / made["id"]
    (folder / "pack" / "transfers.csv").write_bytes(b"id\n")
    refused(
        auditor.request("GET", f"/v1/reconciliation/runs/{made['id']}/files/pack/transfers.csv"),
        409,
        "run_file_changed",
    )
    for name in ("pack%2F..%2Fsummary.json", "pack/..%2F..%2Fapi.db", "pack/nothing.csv", "pack"):
        answer = auditor.request("GET", f"/v1/reconciliation/runs/{made['id']}/files/{name}")
        assert answer.status_code in (400, 404), (name, answer.status_code)
