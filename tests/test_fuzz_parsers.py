"""Every parser of outside bytes under fuzzing (issue 18, item 5).

Whatever the bytes, each parser either answers, and its answer is checked against an
oracle, or refuses with the clear error it documents; any other exception fails the test
(it would be a 500 over HTTP), and so does an example slower than its deadline (a hang):

==========================  =================================================  ==========
parser                      its refusal (over HTTP)                            bytes max
==========================  =================================================  ==========
statement readers (CSV,     ``ValueError`` naming the file: the upload turns   1,000,000
camt.053, MT940)            it into ``InputInvalid`` (422 ``job_refused``)
``api.strictjson``          ``ApiError`` ``invalid_json`` (400), the schema's  1,048,576
                            ``validation_failed`` (422)
``api.signatures``          ``ApiError`` 401 (``signature_*``,                 16,384
``verify_request``          ``digest_mismatch``, ``key_unknown``)
offline record decoder      ``Refused`` ``record_invalid`` (422)               1,024
==========================  =================================================  ==========

The limits are the service's own: ``ledger.limits.STATEMENT_UPLOAD_BYTES_MAX`` (an
upload), ``api.settings.Settings.body_size_max_bytes`` (any other body), the 16 KiB
request head uvicorn's h11 accepts (the signature fields), ``SignedRecordIn.payload``'s
``maxLength`` (a record). Generated inputs stay under :data:`FUZZ_BYTES_MAX`: mutations
(bytes flipped, inserted, deleted, repeated, cut, and tokens of the format spliced in) of
a valid document of each kind, because random bytes never pass the first check, beside
plain ``st.binary()``. Each limit is then fed once in full (``..._at_the_limit``) within
:data:`AT_THE_LIMIT_S`, and the XML bombs once each within :data:`BOMB_S`. Examples run
with a deadline of :data:`DEADLINE`; the CI profile (:data:`EXAMPLES`, derandomized) runs
the module in under a minute; the ``slow`` tests run :data:`EXAMPLES_SLOW` random
examples of each parser. One level up, bytes are POSTed through the ASGI app to the
statement upload and the offline sync, on SQLite and PostgreSQL: never a 5xx.

Regression examples (each was an exception that became a 500 before its fix) are kept as
``@example``\\s and named in the test that holds them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api import sigparse, strictjson
from api.app import create_app
from api.client import load_key
from api.keys import create_key
from api.principals import Alg, ApiKey
from api.problems import ApiError
from api.schemas import DeviceSync, SignedRecordIn
from api.settings import Settings
from api.signatures import sign_request, verify_request
from ledger import Ledger, open_ledger
from ledger.core import currency as iso4217
from ledger.flows import offline, parties
from ledger.flows.errors import Refused
from ledger.flows.offline import OfflineRecord, RecordKind
from ledger.flows.parties import Kind
from ledger.flows.principals.repository import Role
from ledger.limits import AMOUNT_MAX_MINOR, REFERENCE_LENGTH_MAX, STATEMENT_UPLOAD_BYTES_MAX
from reconciliation.errors import InputInvalid
from reconciliation.statement_formats import (
    AMOUNTS_SUM_MAX_MINOR,
    DESCRIPTION_LENGTH_MAX,
    StatementLine,
    StatementReader,
    open_statement,
    read_all,
)
from tests.conftest import drop_pg_schema
from tests.test_api_harness import FAST_TEST_SETTINGS, fresh_database
from webhooks import WebhookSettings

FUZZ_BYTES_MAX = 16_384
"""Generated inputs are at most this long (the limits are fed once each, in full)."""
BODY_BYTES_MAX = Settings().body_size_max_bytes
HEAD_BYTES_MAX = 16_384
"""uvicorn (h11) refuses a request head longer than this: the signature fields' bound."""
PAYLOAD_LENGTH_MAX: int = SignedRecordIn.model_json_schema()["properties"]["payload"]["maxLength"]
DEADLINE = timedelta(seconds=3)
"""Per example (a parse takes milliseconds; the machine is shared)."""
DEADLINE_API = timedelta(seconds=15)
"""Per example through the app (a statement that parses runs the whole job)."""
AT_THE_LIMIT_S = 15.0
BOMB_S = 1.0
EXAMPLES = int(os.environ.get("VLEDGER_FUZZ_EXAMPLES", "150"))
EXAMPLES_SLOW = int(os.environ.get("VLEDGER_FUZZ_EXAMPLES_SLOW", "3000"))
EXAMPLES_API = 25
"""Per engine and route: each one is a signed request and maybe a reconciliation run."""

DATA = Path(__file__).parent / "data" / "statements"
DAY = "2026-06-01"
"""The sample statements' day."""


def fuzzed(examples: int = EXAMPLES, *, deadline: timedelta = DEADLINE) -> settings:
    """The settings of a fuzz test: derandomized in the CI profile (the same examples
    every run), random in the slow one."""
    return settings(
        max_examples=examples,
        deadline=deadline,
        derandomize=examples <= EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# -- mutation of valid documents ----------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, tokens: tuple[bytes, ...], edits_max: int = 8) -> bytes:
    """``seed`` after 1..``edits_max`` edits: a byte changed, bytes or a token inserted, a
    run deleted or repeated, the tail cut."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, edits_max))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(("flip", "insert", "token", "delete", "repeat", "cut")))
        if edit == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "token":
            data[at:at] = draw(st.sampled_from(tokens)) * draw(st.integers(1, 3))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif edit == "repeat":
            run = data[at : at + draw(st.integers(1, 64))]
            data[at:at] = run * draw(st.integers(1, 4))
        elif edit == "cut":
            del data[at:]
    return bytes(data[:FUZZ_BYTES_MAX])


# -- statements ---------------------------------------------------------------------------

CSV_COLUMNS = "date:Date,amount:Amount,reference:Receipt,description:Details,balance:Balance"
SPLIT_COLUMNS = (
    "date:Completion Time,reference:Receipt No.,credit:Paid In,debit:Withdrawn,description:Details"
)
STATEMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "csv": ("mpesa-2026-06-01.csv", {"currency": "KES", "columns": CSV_COLUMNS}),
    "csv-split": (
        "mpesa-2026-06-01-split.csv",
        {
            "currency": "KES",
            "columns": SPLIT_COLUMNS,
            "delimiter": ";",
            "decimal": ",",
            "date_format": "%d/%m/%Y %H:%M",
            "opening": "10000.00",
            "closing": "10587.00",
        },
    ),
    "camt053": ("mpesa-2026-06-01.camt053.xml", {}),
    "mt940": ("mpesa-2026-06-01.sta", {}),
}
"""Each sample statement: its file and the options it is read with (its format aside)."""
TOKENS: dict[str, tuple[bytes, ...]] = {
    "csv": (b",", b";", b"\n", b"\r\n", b'"', b"\xff", b"\x00", b"-", b".", b"9" * 24, b"1e5"),
    "camt053": (
        b"<Ntry>",
        b"</Ntry>",
        b"<Stmt>",
        b"</Stmt>",
        b"<Bal>",
        b"CRDT",
        b"DBIT",
        b'<Amt Ccy="UGX">',
        b"9" * 24,
        b"&amp;",
        b"&x;",
        b"<!DOCTYPE d>",
        b"<![CDATA[x]]>",
        b'<?xml version="1.0" encoding="latin-1"?>',
        b"\xff",
    ),
    "mt940": (
        b":61:",
        b":86:",
        b":60F:",
        b":62F:",
        b":20:",
        b"C",
        b"D",
        b"RC",
        b",",
        b",,",
        b"//",
        b"\r\n",
        b"9" * 24,
        b"-",
        b"\xff",
    ),
}


def _format(kind: str) -> str:
    return kind.partition("-")[0]


def statement_file(folder: Path, kind: str, data: bytes) -> Path:
    suffix = {"csv": ".csv", "camt053": ".xml", "mt940": ".sta"}[_format(kind)]
    path = folder / f"statement-{kind}{suffix}"
    path.write_bytes(data)
    return path


def check_statement(reader: StatementReader, lines: list[StatementLine]) -> None:
    """What a statement read in full holds: a currency, both balances, lines numbered
    from 1, every amount and the sum of their sizes in bounds, short texts."""
    assert iso4217.is_supported(reader.currency)
    for balance in (reader.opening_minor, reader.closing_minor):
        assert isinstance(balance, int) and abs(balance) <= AMOUNT_MAX_MINOR
    assert [line.line_no for line in lines] == list(range(1, len(lines) + 1))
    assert all(abs(line.amount_minor) <= AMOUNT_MAX_MINOR for line in lines)
    assert sum(abs(line.amount_minor) for line in lines) <= AMOUNTS_SUM_MAX_MINOR
    for line in lines:
        assert line.reference is None or 0 < len(line.reference) <= REFERENCE_LENGTH_MAX
        assert line.description is None or 0 < len(line.description) <= DESCRIPTION_LENGTH_MAX


def read_or_refuse(path: Path, options: dict[str, str], *, names_file: bool = True) -> bool:
    """Read the statement at ``path`` whole: ``True`` if it reads (checked), ``False``
    if refused by a plain ``ValueError`` (naming the file, unless an option is the
    fault); any other exception propagates and fails the test."""
    try:
        reader = open_statement(path, options)
        lines = read_all(reader)
    except ValueError as exc:
        assert type(exc) in (ValueError, InputInvalid), f"{type(exc).__name__}: {exc}"
        assert not names_file or path.name in str(exc), f"the refusal names no file: {exc}"
        return False
    check_statement(reader, lines)
    return True


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the fuzzed statements are written (one file a kind, overwritten)."""
    return tmp_path_factory.mktemp("statements")


def test_every_sample_statement_reads(tmp_path: Path) -> None:
    """The seeds the fuzzing mutates are valid: mutations start from a document that
    gets past every check."""
    for kind, (name, options) in STATEMENTS.items():
        path = statement_file(tmp_path, kind, (DATA / name).read_bytes())
        assert read_or_refuse(path, {**options, "format": _format(kind)}), kind


def _statement_case(kind: str, slow: bool = False) -> Callable[..., None]:
    name, options = STATEMENTS[kind]
    seed = (DATA / name).read_bytes()

    @fuzzed(EXAMPLES_SLOW if slow else EXAMPLES)
    @given(data=mutated(seed, TOKENS[_format(kind)]) | st.binary(max_size=FUZZ_BYTES_MAX))
    def case(folder: Path, data: bytes) -> None:
        path = statement_file(folder, kind, data)
        read_or_refuse(path, {**options, "format": _format(kind)})

    return case


STATEMENT_REGRESSIONS: dict[str, list[bytes]] = {
    # the header row was read outside the guard: bytes that are not UTF-8 escaped as a
    # bare UnicodeDecodeError naming no file; a header field past the field limit as
    # csv.Error (a 500)
    "csv": [b"Date,Amount\xff\n", b"x" * 5000 + b"\n"],
    "camt053": [
        # an encoding Python has no codec for: LookupError (a 500)
        b'<?xml version="1.0" encoding="FTF-8"?><Document/>',
        # an entry that is not the statement's child: list.remove's ValueError
        b'<D><Stmt><Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="KES">1</Amt>'
        b"<CdtDbtInd>CRDT</CdtDbtInd></Bal><X><Ntry><Amt Ccy='KES'>1</Amt>"
        b"<CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-06-01</Dt></BookgDt></Ntry></X></Stmt></D>",
        # 10**25 minor units: past BIGINT in the staging table (OverflowError on SQLite)
        (DATA / "mpesa-2026-06-01.camt053.xml")
        .read_bytes()
        .replace(b">1500.00<", b">10000000000000000000000000.00<"),
    ],
    # an amount of ",,": decimal.InvalidOperation out of mt-940 (a 500)
    "mt940": [(DATA / "mpesa-2026-06-01.sta").read_bytes().replace(b"C1500,00", b"C,,")],
}


@pytest.mark.parametrize("kind", list(STATEMENTS))
def test_a_mutated_statement_reads_or_is_refused_naming_the_file(kind: str, tmp_path: Path) -> None:
    case = _statement_case(kind)
    for data in STATEMENT_REGRESSIONS.get(kind, []):
        path = statement_file(tmp_path, kind, data)
        assert not read_or_refuse(path, {**STATEMENTS[kind][1], "format": _format(kind)})
    case(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(STATEMENTS))
def test_a_mutated_statement_reads_or_is_refused_many_examples(kind: str, tmp_path: Path) -> None:
    _statement_case(kind, slow=True)(tmp_path)


CSV_OPTION_VALUES: dict[str, st.SearchStrategy[str]] = {
    "currency": st.sampled_from(["KES", "UGX", "XXX", "kes", ""]),
    "date_format": st.sampled_from(["%Y-%m-%d", "%d/%m/%Y", "%", "%Q", "%Y-%m-%d %Z", ""]),
    "delimiter": st.sampled_from([",", ";", '"', "\n", "\x00", "é", ",,"]),
    "decimal": st.sampled_from([".", ",", "-", "0", ""]),
    "thousands": st.sampled_from(["", ",", " ", "'", "."]),
    "encoding": st.sampled_from(["utf-8", "latin-1", "utf-16", "idna", "rot13", "nope", "u\x00"]),
    "opening": st.sampled_from(["0", "10000.00", "-1", "1.234", "9" * 30, "x"]),
    "closing": st.sampled_from(["0", "10587.00", "1e3", "", "-0"]),
    "columns": st.sampled_from(
        [CSV_COLUMNS, "date:Date,amount:Amount", "date:Date,balance:Balance,amount:Amount", ":"]
    ),
}


@fuzzed()
@given(
    options=st.fixed_dictionaries(
        {"columns": CSV_OPTION_VALUES["columns"]},
        optional={
            k: v | st.text(max_size=12) for k, v in CSV_OPTION_VALUES.items() if k != "columns"
        },
    ),
    header_only=st.booleans(),
)
@example(options={"columns": CSV_COLUMNS, "currency": "KES", "encoding": "nope"}, header_only=False)
@example(
    options={"columns": CSV_COLUMNS, "currency": "KES", "encoding": "rot13"}, header_only=False
)
@example(  # a balance column, an opening and no lines: no closing (an AssertionError, a 500)
    options={"columns": CSV_COLUMNS, "currency": "KES", "opening": "0"}, header_only=True
)
def test_any_csv_options_read_or_are_refused_as_a_value_error(
    folder: Path, options: dict[str, str], header_only: bool
) -> None:
    """The options come from the uploader (query parameters): the encoding, the date
    format, the marks. A bad one is a plain ``ValueError`` too."""
    seed = (DATA / "mpesa-2026-06-01.csv").read_bytes()
    data = seed.split(b"\n", 1)[0] + b"\n" if header_only else seed
    path = statement_file(folder, "csv", data)
    read_or_refuse(path, {**options, "format": "csv"}, names_file=False)


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">'
        % (i, b"".join(b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"") for _ in range(10)))
        for i in range(1, 10)
    )
    + b"]><Document><Stmt>&lol9;</Stmt></Document>"
)
XML_BOMBS = {
    "billion laughs": BILLION_LAUGHS,
    "quadratic blowup": b'<!DOCTYPE d [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><Document><Stmt>'
    + b"&a;" * 10_000
    + b"</Stmt></Document>",
    "external entity": b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    b"<Document><Stmt><Id>&x;</Id></Stmt></Document>",
    "external DTD": b'<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/camt.dtd"><Document/>',
    "parameter entity": b'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><Document/>',
    "internal subset only": b"<!DOCTYPE Document []><Document><Stmt/></Document>",
}


@pytest.mark.parametrize("bomb", list(XML_BOMBS))
def test_xml_bombs_are_refused_at_once(bomb: str, tmp_path: Path) -> None:
    path = statement_file(tmp_path, "camt053", XML_BOMBS[bomb])
    started = time.perf_counter()
    with pytest.raises(ValueError, match="XML refused") as refused:
        read_all(open_statement(path, {"format": "camt053"}))
    assert time.perf_counter() - started < BOMB_S
    assert type(refused.value) is ValueError and path.name in str(refused.value)


def _fill(head: bytes, unit: bytes, tail: bytes = b"") -> bytes:
    """``head``, ``unit`` repeated, ``tail``: exactly the upload limit."""
    room = STATEMENT_UPLOAD_BYTES_MAX - len(head) - len(tail)
    body = (unit * (room // len(unit) + 1))[:room]
    return head + body + tail


def _csv_lines_at_the_limit() -> bytes:
    return _fill(b"Date,Receipt,Details,Amount,Balance\n", b"2026-06-01,R,x,1.00,0\n")


def _camt_entries_at_the_limit() -> bytes:
    seed = (DATA / "mpesa-2026-06-01.camt053.xml").read_bytes()
    head, _, rest = seed.partition(b"<Ntry>")
    entry = b"<Ntry>" + rest.split(b"</Ntry>")[0] + b"</Ntry>\n"
    tail = b"</Stmt></BkToCstmrStmt></Document>\n"
    return _fill(head, entry, tail)


AT_THE_LIMIT: dict[str, tuple[str, Callable[[], bytes]]] = {
    "csv: one field of a megabyte": ("csv", lambda: _fill(b"Date,Amount\n", b"9")),
    "csv: a megabyte of lines": ("csv", _csv_lines_at_the_limit),
    "csv: a megabyte of empty lines": ("csv", lambda: _fill(b"Date,Amount\n", b"\n")),
    "camt053: nested a megabyte deep": ("camt053", lambda: _fill(b"<Document><Stmt>", b"<a>")),
    "camt053: a megabyte of digits": (
        "camt053",
        lambda: _fill(b'<D><Stmt><Ntry><Amt Ccy="KES">', b"9", b"</Amt></Ntry></Stmt></D>"),
    ),
    "camt053: a megabyte of entries": ("camt053", _camt_entries_at_the_limit),
    "mt940: one :61: line": ("mt940", lambda: _fill(b":20:X\n:60F:C260601KES1,00\n:61:", b"1")),
    "mt940: :61: lines": ("mt940", lambda: _fill(b":20:X\n:60F:C260601KES1,00\n", b":61:\n")),
    "mt940: a reference": ("mt940", lambda: _fill(b":20:X\n:61:2606010601C1,00NTRF", b"/")),
}


@pytest.mark.parametrize("shape", list(AT_THE_LIMIT))
def test_a_statement_at_the_upload_limit_is_read_or_refused_in_bounded_time(
    shape: str, tmp_path: Path
) -> None:
    kind, build = AT_THE_LIMIT[shape]
    data = build()
    assert len(data) == STATEMENT_UPLOAD_BYTES_MAX
    options = {"format": kind, "currency": "KES", "columns": "date:Date,amount:Amount"}
    if kind == "csv":
        options.update(opening="0", closing="0")
    else:
        options = {"format": kind}
    path = statement_file(tmp_path, kind, data)
    started = time.perf_counter()
    read_or_refuse(path, options)
    assert time.perf_counter() - started < AT_THE_LIMIT_S


# -- strict JSON --------------------------------------------------------------------------

JSON_SEEDS = (
    json.dumps(
        {
            "records": [
                {"payload": '{"a":1}', "signature": "A" * 86 + "=="},
                {"payload": "xy", "signature": "B" * 86 + "=="},
            ]
        }
    ).encode(),
    b'{"transfers":[{"id":"0190a6e0-0000-7000-8000-000000000001","amount":150000,'
    b'"currency":"KES","code":1,"flags":["linked"],"metadata":{"k":"v"},"ok":true,"n":null}]}',
)
JSON_TOKENS = (
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b"1.0",
    b"1e3",
    b"-0",
    b"NaN",
    b"Infinity",
    b"\\u0000",
    b"\\ud800",
    b"\xef\xbb\xbf",
    b"\xc3\x28",
    b"9" * 31,
    b'"a":1,"a":2',
    b"\xd9\xa3",  # an Arabic-Indic digit
    b"[" * 20,
)


def _no_float(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_no_float(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_float(v) for v in value)
    return not isinstance(value, float)


def json_or_refusal(raw: bytes) -> None:
    try:
        value = strictjson.loads(raw)
    except ApiError as exc:
        assert (exc.code, exc.status) == ("invalid_json", 400), exc
        return
    assert value == json.loads(raw)  # the standard library agrees on what it accepts
    assert _no_float(value)
    try:
        strictjson.parse(raw, DeviceSync)
    except ApiError as exc:
        assert (exc.code, exc.status) == ("validation_failed", 422), exc


def _json_case(examples: int) -> Callable[[], None]:
    @fuzzed(examples)
    @given(
        raw=st.one_of(
            *(mutated(seed, JSON_TOKENS) for seed in JSON_SEEDS),
            st.binary(max_size=FUZZ_BYTES_MAX),
        )
    )
    def case(raw: bytes) -> None:
        json_or_refusal(raw)

    return case


def test_strict_json_parses_or_answers_invalid_json() -> None:
    _json_case(EXAMPLES)()


@pytest.mark.slow
def test_strict_json_parses_or_answers_invalid_json_many_examples() -> None:
    _json_case(EXAMPLES_SLOW)()


@pytest.mark.parametrize("unit", [b"[", b'{"a":', b"9", b'"\\u00e9', b"[1,", b" "], ids=repr)
def test_a_body_at_the_limit_is_parsed_or_refused_in_bounded_time(unit: bytes) -> None:
    raw = (unit * (BODY_BYTES_MAX // len(unit) + 1))[:BODY_BYTES_MAX]
    started = time.perf_counter()
    json_or_refusal(raw)
    assert time.perf_counter() - started < AT_THE_LIMIT_S


# -- request signatures -------------------------------------------------------------------

_ED25519 = Ed25519PrivateKey.generate()
_HMAC_SECRET = b"s" * 32
SIGNING_KEYS: dict[str, tuple[ApiKey, Ed25519PrivateKey | bytes]] = {
    "k_ed": (
        ApiKey(
            "k_ed",
            uuid.uuid4(),
            Role.OPERATOR,
            Alg.ED25519,
            _ED25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            True,
        ),
        _ED25519,
    ),
    "k_hmac": (
        ApiKey("k_hmac", uuid.uuid4(), Role.STOREFRONT, Alg.HMAC_SHA256, _HMAC_SECRET, True),
        _HMAC_SECRET,
    ),
}
SIGNED_AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TARGET = "http://testserver/v1/transfers?limit=10"
SIGNED_BODY = JSON_SEEDS[1]
SIGNATURE_FIELDS = ("signature-input", "signature", "content-digest", "idempotency-key")
SIGNATURE_TOKENS = (
    *(t.encode() for t in ('"', ";", "=", ",", "(", ")", ":", "*", "?1", " ", "\t", "-1")),
    b"99999999999999999",
    b"vledger=",
    b';tag="vledger"',
    b';alg="ed25519"',
    b";created=1780300800",
    b"\\",
    b"\x80",
)


def _lookup(key_id: str) -> ApiKey | None:
    found = SIGNING_KEYS.get(key_id)
    return None if found is None else found[0]


def signed_fields(key_id: str, body: bytes = SIGNED_BODY) -> dict[str, str]:
    key, private = SIGNING_KEYS[key_id]
    return sign_request(
        method="POST",
        url=TARGET,
        headers={"content-type": "application/json", "idempotency-key": '"k-1"'},
        body=body,
        key_id=key_id,
        alg=key.alg,
        private_key=private,
        created=SIGNED_AT,
        nonce="n-1",
    )


def verify(fields: list[tuple[str, str]], body: bytes, url: str = TARGET) -> ApiKey | None:
    """The key that signed, or ``None`` when refused as documented (401)."""
    try:
        verified = verify_request(
            method="POST",
            url=url,
            fields=fields,
            body=body,
            lookup=_lookup,
            now=SIGNED_AT + timedelta(seconds=5),
            tag="vledger",
            age_max_s=300,
            ahead_max_s=60,
        )
    except ApiError as exc:
        assert exc.status == 401, exc
        return None
    return verified.key


def test_the_signed_seed_requests_verify() -> None:
    for key_id in SIGNING_KEYS:
        fields = list(signed_fields(key_id).items())
        verified = verify(fields, SIGNED_BODY)
        assert verified is not None and verified.key_id == key_id


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes, str, bool]:
    """A signed request with one part mutated: (fields, body, target URI, whether the
    signed bytes changed: the body or the target)."""
    fields = signed_fields(draw(st.sampled_from(list(SIGNING_KEYS))))
    body, url = SIGNED_BODY, TARGET
    part = draw(st.sampled_from((*SIGNATURE_FIELDS, "body", "host", "drop", "repeat")))
    if part in SIGNATURE_FIELDS:
        raw = draw(mutated(fields[part].encode("latin-1"), SIGNATURE_TOKENS))
        fields[part] = raw[:HEAD_BYTES_MAX].decode("latin-1")
    elif part == "body":
        body = draw(mutated(body, JSON_TOKENS))
    elif part == "host":
        host = draw(mutated(b"testserver", (*SIGNATURE_TOKENS, b"[::1]", b"@", b":80", b"%")))
        url = TARGET.replace("testserver", host.decode("latin-1"), 1)
    pairs = list(fields.items())
    if part == "drop":
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    elif part == "repeat":
        pairs.append(draw(st.sampled_from(pairs)))
    return pairs, body, url, (body, url) != (SIGNED_BODY, TARGET)


def _signature_case(examples: int) -> Callable[[], None]:
    @fuzzed(examples)
    @given(request=signed_requests())
    def case(request: tuple[list[tuple[str, str]], bytes, str, bool]) -> None:
        fields, body, url, changed = request
        verified = verify(fields, body, url)
        assert verified is None or not changed, "a changed body or target still verified"

    return case


def test_a_mutated_signed_request_verifies_only_unchanged_or_is_refused_401() -> None:
    _signature_case(EXAMPLES)()


@pytest.mark.slow
def test_a_mutated_signed_request_many_examples() -> None:
    _signature_case(EXAMPLES_SLOW)()


HEADER_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=300)


@fuzzed()
@given(
    fields=st.lists(
        st.tuples(st.sampled_from((*SIGNATURE_FIELDS, "content-type")), HEADER_TEXT), max_size=6
    ),
    body=st.binary(max_size=64),
)
def test_arbitrary_signature_fields_are_refused_401(
    fields: list[tuple[str, str]], body: bytes
) -> None:
    assert verify(fields, body) is None


@pytest.mark.parametrize("field", SIGNATURE_FIELDS)
def test_a_signature_field_as_long_as_a_request_head_is_refused_in_bounded_time(
    field: str,
) -> None:
    fields = signed_fields("k_ed")
    fields[field] = (fields[field] + ", a=(" + '"x" ' * HEAD_BYTES_MAX)[:HEAD_BYTES_MAX]
    started = time.perf_counter()
    assert verify(list(fields.items()), SIGNED_BODY) is None
    assert time.perf_counter() - started < AT_THE_LIMIT_S


@fuzzed()
@given(
    pair=st.sampled_from(list(SIGNING_KEYS)).flatmap(
        lambda key_id: st.tuples(
            mutated(signed_fields(key_id)["signature-input"].encode(), SIGNATURE_TOKENS)
            | HEADER_TEXT.map(str.encode),
            mutated(signed_fields(key_id)["signature"].encode(), SIGNATURE_TOKENS),
        )
    )
)
def test_the_signature_field_parser_answers_or_refuses_as_documented(
    pair: tuple[bytes, bytes],
) -> None:
    """``api.sigparse`` (the parser ``verify_request`` now uses): a Dictionary or
    ``StructuredFieldError``; the profile's selection or ``ApiError`` 401; and what it
    selects serialises to ``@signature-params`` that parses back to the same."""
    signature_input, signature = (raw.decode("latin-1") for raw in pair)
    for text in (signature_input, signature):
        try:
            members = sigparse.parse_dictionary(text)
        except sigparse.StructuredFieldError:
            continue
        assert all(isinstance(m, sigparse.Item | sigparse.InnerList) for m in members.values())
    try:
        chosen = sigparse.select_signature(signature_input, signature, tag="vledger")
    except ApiError as exc:
        assert exc.status == 401, exc
        return
    params = sigparse.signature_params(chosen.components, chosen.params)
    [again] = sigparse.parse_dictionary(f"x={params}").values()
    assert isinstance(again, sigparse.InnerList)
    assert tuple(item.value for item in again.items) == chosen.components
    assert again.params == chosen.params


# -- offline records ----------------------------------------------------------------------

_PHONE = Ed25519PrivateKey.generate()
RECORDS = {
    version: OfflineRecord(
        record_id=uuid.UUID(int=1),
        device_id=uuid.UUID(int=2),
        agent_id=uuid.UUID(int=3),
        villager_id=uuid.UUID(int=4),
        kind=RecordKind.CASH_OUT,
        amount_minor=150_000,
        currency="KES",
        seq=7,
        captured_at=datetime(2026, 6, 1, 8, 0, 0, 123_000, tzinfo=UTC),
        consent_code=None if version == 1 else "120934",
        version=version,
    )
    for version in (1, 2)
}
RECORD_TOKENS = (b'"', b"{", b"}", b"[", b",", b":", b"null", b"1.5", b"-1", b"Z", b"+03:00")
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["cash_in", "KES", "123456", "2026-06-01T08:00:00.123Z", str(uuid.UUID(int=1))]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def record_or_refusal(payload: bytes) -> None:
    """:func:`offline.record_from_canonical` answers a record whose canonical bytes are
    ``payload`` exactly, or refuses ``record_invalid``."""
    try:
        record = offline.record_from_canonical(payload)
    except Refused as exc:
        assert exc.code == "record_invalid", exc
        return
    assert offline.canonical_bytes(record) == payload


@st.composite
def record_payloads(draw: st.DrawFn) -> bytes:
    """A canonical record with one field's value replaced by any JSON value, a field
    dropped or one added, written canonically again: past the byte-level checks to the
    field checks."""
    fields: dict[str, Any] = json.loads(
        offline.canonical_bytes(RECORDS[draw(st.sampled_from((1, 2)))])
    )
    name = draw(st.sampled_from(sorted(fields)))
    change = draw(st.sampled_from(("value", "drop", "add")))
    if change == "value":
        fields[name] = draw(JSON_VALUES)
    elif change == "drop":
        del fields[name]
    else:
        fields[draw(st.sampled_from(("consent_code", "version", "x")))] = draw(JSON_VALUES)
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _record_case(examples: int) -> Callable[[], None]:
    seeds = [offline.canonical_bytes(record) for record in RECORDS.values()]

    @fuzzed(examples)
    @given(
        payload=st.one_of(
            *(mutated(seed, RECORD_TOKENS) for seed in seeds),
            record_payloads(),
            st.binary(max_size=PAYLOAD_LENGTH_MAX),
        )
    )
    @example(payload=b'{"a":' * (PAYLOAD_LENGTH_MAX // 5))
    def case(payload: bytes) -> None:
        record_or_refusal(payload[:PAYLOAD_LENGTH_MAX])

    return case


@pytest.mark.parametrize("depth", [PAYLOAD_LENGTH_MAX, 100_000])
def test_a_payload_nested_deeper_than_the_recursion_limit_is_refused(depth: int) -> None:
    """Was a ``RecursionError`` out of ``json.loads`` (a 500). Not an ``@example``:
    hypothesis raises the recursion limit while it runs one."""
    with pytest.raises(Refused, match="not ASCII JSON"):
        offline.record_from_canonical(b"[" * depth)


def test_a_record_decodes_to_exactly_its_bytes_or_is_refused_record_invalid() -> None:
    _record_case(EXAMPLES)()


@pytest.mark.slow
def test_a_record_decodes_or_is_refused_many_examples() -> None:
    _record_case(EXAMPLES_SLOW)()


@fuzzed()
@given(signature=mutated(b"", (b"\x00",)) | st.binary(min_size=64, max_size=64))
def test_a_record_signature_verifies_only_as_signed(signature: bytes) -> None:
    signed = offline.sign_record(_PHONE, RECORDS[2])
    key = _PHONE.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert offline.verify_record(key, signed)
    forged = dataclasses.replace(signed, signature=signature)
    assert offline.verify_record(key, forged) is (signature == signed.signature)


# -- one level up: bytes through the ASGI app ---------------------------------------------


@dataclasses.dataclass
class App:
    """The app on one engine, called in process through its ASGI interface
    (``httpx.ASGITransport``: an exception out of the app is raised here, with its
    traceback), with an operator and an agent whose phone is registered."""

    runner: asyncio.Runner
    http: httpx.AsyncClient
    operator: dict[str, str]
    agent: dict[str, str]
    phone: Ed25519PrivateKey
    device_id: uuid.UUID

    def post(self, who: dict[str, str], path: str, body: bytes, media: str) -> tuple[int, str]:
        """A POST of ``body`` signed by ``who``: (status, body text)."""
        url = str(self.http.base_url.join(path))
        headers = {"content-type": media, "idempotency-key": f'"{uuid.uuid4()}"'}
        alg, key = load_key(who["path"])
        signed = sign_request(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            key_id=who["key_id"],
            alg=alg,
            private_key=key,
        )
        sent = self.http.post(url, content=body, headers={**headers, **signed})
        answer = self.runner.run(sent)
        return answer.status_code, answer.text


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("fuzz-app")
    url, schema = fresh_database(request.param, tmp)
    try:
        led = open_ledger(url, migrate=True)
        try:
            keys, phone, device_id = _village(url, led, tmp)
            built = create_app(
                url,
                settings=dataclasses.replace(FAST_TEST_SETTINGS, reports_dir=str(tmp / "reports")),
                webhook_settings=WebhookSettings(worker_enabled=False),
            )
            transport = httpx.ASGITransport(app=built)
            with asyncio.Runner() as runner:
                http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
                try:
                    yield App(runner, http, keys["operator"], keys["agent"], phone, device_id)
                finally:
                    runner.run(http.aclose())
                    built.state.ctx.ledger.close()  # the lifespan's part (not run here)
        finally:
            led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def _village(
    url: str, led: Ledger, tmp: Path
) -> tuple[dict[str, dict[str, str]], Ed25519PrivateKey, uuid.UUID]:
    """An operator's and an agent's keys, the agent onboarded, its phone registered."""
    keys: dict[str, dict[str, str]] = {}
    for role in ("operator", "agent"):
        path = tmp / f"{role}.key"
        made = create_key(url, role, f"fuzz-{role}", "ed25519", path, setup_rules=False)
        keys[role] = {**made, "path": str(path)}
    agent_id = uuid.UUID(keys["agent"]["principal_id"])
    parties.onboard(led, party_id=agent_id, kind=Kind.AGENT, name="fuzz agent", currency="KES")
    phone, device_id = Ed25519PrivateKey.generate(), uuid.uuid4()
    offline.register_device(
        led,
        device_id=device_id,
        agent_id=agent_id,
        public_key=phone.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        allowance_minor=0,
    )
    return keys, phone, device_id


def _upload_query(kind: str) -> str:
    options = {"provider": "MPESA", "business_date": DAY, "format": _format(kind)}
    options.update(STATEMENTS[kind][1])
    return "/v1/reconciliation/statements?" + urlencode(options)


@fuzzed(EXAMPLES_API, deadline=DEADLINE_API)
@given(
    upload=st.sampled_from(list(STATEMENTS)).flatmap(
        lambda kind: st.tuples(
            st.just(kind),
            mutated((DATA / STATEMENTS[kind][0]).read_bytes(), TOKENS[_format(kind)], 2)
            | mutated((DATA / STATEMENTS[kind][0]).read_bytes(), TOKENS[_format(kind)])
            | st.binary(max_size=FUZZ_BYTES_MAX),
        )
    )
)
@example(upload=("csv", b"x" * 5000 + b"\n"))  # csv.Error out of the header row: was a 500
@example(upload=("camt053", STATEMENT_REGRESSIONS["camt053"][0]))  # LookupError: was a 500
@example(upload=("camt053", STATEMENT_REGRESSIONS["camt053"][2]))  # past BIGINT: was a 500
@example(upload=("mt940", STATEMENT_REGRESSIONS["mt940"][0]))  # InvalidOperation: was a 500
def test_a_mutated_statement_upload_is_never_a_server_error(
    app: App, upload: tuple[str, bytes]
) -> None:
    kind, data = upload
    status, text = app.post(app.operator, _upload_query(kind), data, "application/octet-stream")
    assert status in (201, 422), text
    assert status == 201 or '"job_refused"' in text, text


@pytest.mark.parametrize(
    ("options", "data"),
    [
        ({"encoding": "nope"}, None),  # LookupError at open: was a 500
        ({"opening": "0", "closing": None}, b"Date,Receipt,Details,Amount,Balance\n"),  # assert
    ],
)
def test_csv_options_that_were_server_errors_are_refused_422(
    app: App, options: dict[str, str | None], data: bytes | None
) -> None:
    query = {"provider": "MPESA", "business_date": DAY, "format": "csv"}
    query.update(STATEMENTS["csv"][1])
    query.update({k: v for k, v in options.items() if v is not None})
    body = (DATA / STATEMENTS["csv"][0]).read_bytes() if data is None else data
    path = "/v1/reconciliation/statements?" + urlencode(query)
    status, text = app.post(app.operator, path, body, "text/csv")
    assert (status, '"job_refused"' in text) == (422, True), text


def _sync_body(app: App, payloads: list[bytes]) -> bytes:
    records = [
        {
            "payload": payload.decode("latin-1"),
            "signature": base64.b64encode(app.phone.sign(payload)).decode("ascii"),
        }
        for payload in payloads
    ]
    return json.dumps({"records": records}).encode()


def _record_of(app: App, seq: int, version: int) -> bytes:
    agent_id = uuid.UUID(app.agent["principal_id"])
    record = dataclasses.replace(
        RECORDS[version],
        record_id=uuid.uuid4(),
        device_id=app.device_id,
        agent_id=agent_id,
        seq=seq,
    )
    return offline.canonical_bytes(record)


@st.composite
def sync_bodies(draw: st.DrawFn, app: App) -> bytes:
    """A sync of records signed by the device, with one payload mutated (and signed as
    mutated), or the whole body's bytes mutated."""
    payloads = [
        _record_of(app, draw(st.integers(1, 3)), draw(st.sampled_from((1, 2))))
        for _ in range(draw(st.integers(1, 3)))
    ]
    at = draw(st.integers(0, len(payloads) - 1))
    how = draw(st.sampled_from(("payload", "fields", "body")))
    if how == "payload":
        payloads[at] = draw(mutated(payloads[at], RECORD_TOKENS, 2))[:PAYLOAD_LENGTH_MAX]
    elif how == "fields":
        payloads[at] = draw(record_payloads())
    body = _sync_body(app, payloads)
    return draw(mutated(body, JSON_TOKENS, 2)) if how == "body" else body


def test_a_record_nested_as_deep_as_a_payload_may_be_is_refused_422(app: App) -> None:
    """Was a ``RecursionError`` (a 500); outside hypothesis, which raises the limit."""
    body = _sync_body(app, [b"[" * PAYLOAD_LENGTH_MAX])
    status, text = app.post(
        app.agent, f"/v1/devices/{app.device_id}/sync", body, "application/json"
    )
    assert (status, '"record_invalid"' in text) == (422, True), text


def test_a_mutated_offline_sync_is_never_a_server_error(app: App) -> None:
    path = f"/v1/devices/{app.device_id}/sync"

    @fuzzed(EXAMPLES_API, deadline=DEADLINE_API)
    @given(body=sync_bodies(app) | st.binary(max_size=FUZZ_BYTES_MAX))
    def case(body: bytes) -> None:
        status, text = app.post(app.agent, path, body, "application/json")
        assert status in (200, 400, 409, 422), text

    case()


def test_the_seeds_get_past_every_check_of_both_routes(app: App) -> None:
    """The unmutated seeds are taken: each sample statement is reconciled (201) and a
    signed record of the phone is synced (200), so mutations start deep in both routes."""
    for kind in STATEMENTS:
        data = (DATA / STATEMENTS[kind][0]).read_bytes()
        status, text = app.post(app.operator, _upload_query(kind), data, "text/plain")
        assert status == 201, text
    body = _sync_body(app, [_record_of(app, 1, 1)])
    status, text = app.post(
        app.agent, f"/v1/devices/{app.device_id}/sync", body, "application/json"
    )
    assert status == 200, text
