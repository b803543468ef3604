"""Provider statements uploaded over signed HTTP run the ``statement`` job, both engines.

The story: the platform confirmed Wanjiru's KES 10,000.00 deposit at a bank (a float
top-up: the bank's clearing account paid her float). The bank's statement for the day
shows that deposit and KES 55.00 nobody booked. An operator uploads it (raw
``text/csv``, or the same bytes as a multipart ``file``): the ``statement`` job reads it
with its own parsers, matches the deposit, and reports the 55.00 as ``statement_only``;
the run is the one ``GET /v1/reconciliation/runs/{id}`` serves, and the statement is kept
as its input (content-addressed). camt.053 and MT940 files go through the same door. A
malformed statement is 422 and nothing is kept; one over the size limit is 413; only
operators upload.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from api.client import Client
from ledger.limits import STATEMENT_UPLOAD_BYTES_MAX
from tests.test_api_attacks import send
from tests.test_api_cash import Counter
from tests.test_api_cash_counts import api, inputs, post_raw, recon_api
from tests.test_api_harness import Harness
from tests.test_api_orders import ok, refused

__all__ = ["api", "recon_api"]

PATH = "/v1/reconciliation/statements"
DATA = Path(__file__).parent / "data" / "statements"
DEPOSIT_MINOR = 1_000_000
COLUMNS = "date:Date,amount:Amount,reference:Ref,description:Details"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def deposit(api: Harness) -> str:
    """A bank of its own (so no other test's money is on its statement) confirms an
    agent's KES 10,000.00 deposit today; the bank's name."""
    bank = f"B{uuid.uuid4().hex[:10].upper()}"
    counter = Counter(api, float_minor=0)
    body = {"id": str(uuid.uuid4()), "amount_minor": DEPOSIT_MINOR, "provider": bank}
    path = f"/v1/agents/{counter.agent_id}/float-topups"
    ok(counter.operator.request("POST", path, json_body=body), 201)
    return bank


def csv_statement(*lines: tuple[str, str, str, str]) -> bytes:
    rows = ["Date,Amount,Ref,Details", *(",".join(line) for line in lines)]
    return ("\n".join(rows) + "\n").encode()


def params(bank: str, closing: str = "10055.00", **over: str) -> dict[str, str]:
    query = {
        "provider": bank,
        "business_date": today(),
        "currency": "KES",
        "columns": COLUMNS,
        "opening": "0",
        "closing": closing,
    }
    return {**query, **over}


def day_statement() -> bytes:
    return csv_statement(
        (today(), "10000.00", "DEP1", "cash deposit <b>Wanjiru</b>"),
        (today(), "55.00", "X9", "nobody's"),
    )


def multipart(data: bytes, name: str, media: str) -> tuple[bytes, str]:
    built = httpx.Request("POST", "http://x/", files={"file": (name, data, media)})
    return built.read(), built.headers["content-type"]


def statement_runs(who: Client) -> list[Any]:
    query = {"job": "statement", "limit": "100"}
    found: list[Any] = ok(who.request("GET", "/v1/reconciliation/runs", params=query))["data"]
    return found


def upload(who: Client, data: bytes, media: str, query: dict[str, str], **kw: Any) -> Any:
    return post_raw(who, PATH, data, media, query, **kw)


def test_an_operator_uploads_a_csv_statement_and_the_run_shows_its_breaks(api: Harness) -> None:
    bank, operator = deposit(api), api.client("operator")
    data = day_statement()
    key = str(uuid.uuid4())
    answer = upload(operator, data, "text/csv", params(bank), idempotency_key=key)
    run = ok(answer, 201)
    assert answer.headers["location"] == f"/v1/reconciliation/runs/{run['id']}"
    assert (run["job"], run["scope"], run["business_date"]) == ("statement", bank, today())
    s = run["summary"]
    assert (s["format"], s["currency"], s["matched"]) == ("csv", "KES", 1)
    assert s["statement"]["lines"] == 2 and s["statement"]["closing_minor"] == 1_005_500
    assert (run["status"], run["breaks"], s["breaks_by_kind"]) == (
        "breaks",
        1,
        {"statement_only": 1},
    )
    served = ok(api.client("auditor").request("GET", answer.headers["location"]))
    assert (served["breaks"], served["summary"]) == (1, s)
    detail = api.client("auditor").request("GET", f"{answer.headers['location']}/files/detail.csv")
    assert "statement_only" in detail.text and "X9" in detail.text
    [kept] = [p for p in inputs(api, "statement") if p.name == f"{run['input_sha256']}.csv"]
    assert kept.read_bytes() == data

    replay = upload(operator, data, "text/csv", params(bank), idempotency_key=key)
    assert replay.headers.get("idempotency-replayed") == "true" and replay.json() == run
    again = ok(upload(operator, data, "text/csv", params(bank)), 201)
    assert again["attempt"] == run["attempt"] + 1  # another key: another run, the same file
    assert [p.name for p in inputs(api, "statement")].count(kept.name) == 1


def test_multipart_camt053_and_mt940_go_through_the_same_parsers(api: Harness) -> None:
    bank, operator = deposit(api), api.client("operator")
    body, media = multipart(day_statement(), "bank.csv", "text/csv")
    run = ok(upload(operator, body, media, params(bank)), 201)
    assert (run["summary"]["format"], run["summary"]["matched"], run["breaks"]) == ("csv", 1, 1)

    named, media = multipart(day_statement(), "bank.csv", "application/octet-stream")
    assert ok(upload(operator, named, media, params(bank)), 201)["summary"]["format"] == "csv"
    day = {"provider": "MPESA", "business_date": "2026-06-01"}
    for name, media, fmt in (
        ("mpesa-2026-06-01.camt053.xml", "application/xml", "camt053"),
        ("mpesa-2026-06-01.sta", "text/plain", "mt940"),
    ):
        data = (DATA / name).read_bytes()
        run = ok(upload(operator, data, media, day), 201)
        assert (run["summary"]["format"], run["summary"]["statement"]["lines"]) == (fmt, 8)
        assert run["breaks"] == 8  # nothing of that day is on this ledger
        kept = [p.name for p in inputs(api, "statement")]
        assert f"{run['input_sha256']}{Path(name).suffix}" in kept


def test_a_malformed_statement_is_422_and_nothing_is_kept(api: Harness) -> None:
    bank, operator = deposit(api), api.client("operator")
    before = inputs(api, "statement")
    runs_before = statement_runs(operator)
    bad_amount = csv_statement((today(), "ten", "DEP1", "words"))
    problem = refused(upload(operator, bad_amount, "text/csv", params(bank)), 422, "job_refused")
    assert "line 2" in problem["detail"] and "not a decimal amount" in problem["detail"]
    assert ".part" not in problem["detail"]  # the staging file is nobody's business
    too_precise = csv_statement((today(), "10000.001", "DEP1", "x"))
    refused(upload(operator, too_precise, "text/csv", params(bank)), 422, "job_refused")
    entity = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY e "boom">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">&e;</Document>'
    )
    refused(upload(operator, entity, "application/xml", params(bank)), 422, "job_refused")
    refused(upload(operator, b"not an mt940", "text/plain", params(bank)), 422, "job_refused")
    outside = params(bank, business_date="2026-01-01")
    refused(upload(operator, day_statement(), "text/csv", outside), 422, "job_refused")
    # a mapping names a file on the server: not taken from a request (the columns stay unknown)
    mapped = {k: v for k, v in params(bank).items() if k != "columns"}
    mapped["mapping"] = str(DATA / "mpesa-split.toml")
    split = (DATA / "mpesa-2026-06-01-split.csv").read_bytes()
    refused(upload(operator, split, "text/csv", mapped), 422, "job_refused")
    assert inputs(api, "statement") == before
    assert statement_runs(operator) == runs_before


def test_the_size_limit_holds_on_both_sides(api: Harness) -> None:
    bank, operator = deposit(api), api.client("operator")
    head = b"Date,Amount,Ref,Details\n" + f"{today()},10000.00,DEP1,".encode()
    line = f"{today()},0.00,Z,".encode()
    body = head + b"d" * 4000 + b"\n"
    lines = 0
    while len(body) + len(line) + 4001 < STATEMENT_UPLOAD_BYTES_MAX:
        body += line + b"d" * 4000 + b"\n"
        lines += 1
    body += line + b"d" * (STATEMENT_UPLOAD_BYTES_MAX - len(body) - len(line) - 1) + b"\n"
    assert len(body) == STATEMENT_UPLOAD_BYTES_MAX
    at_limit = upload(operator, body, "text/csv", params(bank, closing="10000.00"))
    assert ok(at_limit, 201)["summary"]["statement"]["lines"] == lines + 2
    over = body + b"\n"
    before = inputs(api, "statement")
    refused(upload(operator, over, "text/csv", params(bank)), 413, "body_too_large")
    huge = b"x" * (2 * 1024 * 1024)
    refused(upload(operator, huge, "text/csv", params(bank)), 413, "body_too_large")
    assert inputs(api, "statement") == before


def test_only_signed_operators_upload(api: Harness) -> None:
    bank = deposit(api)
    operator = api.client("operator")
    data = day_statement()
    for role in ("auditor", "agent", "storefront"):
        refused(upload(api.client(role), data, "text/csv", params(bank)), 403, "forbidden")
    url = operator.url(PATH, params(bank))
    unsigned = httpx.post(url, content=data, headers={"content-type": "text/csv"})
    refused(unsigned, 401, "signature_missing")
    forged = send(operator, "POST", PATH, json.dumps({"x": 1}).encode(), send_body=b'{"x":2}')
    refused(forged, 401, "digest_mismatch")
    refused(upload(operator, data, "application/json", params(bank)), 415, "unsupported_media_type")
    refused(
        upload(operator, data, "application/octet-stream", params(bank)), 422, "validation_failed"
    )
    assert (
        ok(upload(operator, data, "application/octet-stream", params(bank, format="csv")), 201)[
            "summary"
        ]["matched"]
        == 1
    )
    for bad in ({"provider": "mpesa"}, {"business_date": "2026-02-30"}, {"format": "pdf"}):
        refused(upload(operator, data, "text/csv", params(bank, **bad)), 400, "invalid_parameter")
    no_file, media = multipart(data, "bank.csv", "text/csv")
    no_file = no_file.replace(b'name="file"', b'name="other"')
    refused(upload(operator, no_file, media, params(bank)), 422, "validation_failed")
