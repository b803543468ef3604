"""The USSD callback over real HTTP on both engines: the aggregator (from its network,
through this deployment's proxy) walks Otieno through his balance; a forged secret, a
wrong source, an ``X-Forwarded-For`` from a peer that is no trusted proxy, an unknown
phone, three wrong PINs, 1,000 inputs, non-digits, markup, another phone on a session
and an expired session each answer ``END`` and move nothing."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from starlette.requests import Request

from api.app import create_app
from api.local_server import ServerThread
from api.routes.ussd import (
    FORM_BODY_MAX_BYTES,
    FORWARDED_FOR_KEPT_MAX,
    _refusal,
    _source_judged,
    _source_remembered,
    caller_address,
)
from api.settings import Settings
from ledger import Ledger, open_ledger
from ledger.flows.parties import Party
from tests.conftest import Clock, drop_pg_schema
from tests.test_api_harness import FAST_TEST_SETTINGS, fresh_database
from tests.ussd_helpers import PIN, agent, new_phone, villager, wallet_minor

SECRET = "aggregator-" + uuid.uuid4().hex
AGGREGATOR = "10.1.2.3"
"""The aggregator's address, as this deployment's proxy (127.0.0.1) forwards it."""
USSD = {
    "ussd_secrets": ("another-aggregator-secret", SECRET),
    "ussd_source_networks": ("10.0.0.0/8",),
}
GENERIC = "END The service cannot answer now. Please try again later."
MAIN = (
    "CON Village Ledger\n1 Balance\n2 Mini statement\n3 Change PIN\n4 Language"
    "\n5 Withdraw cash\n6 My orders"
)


@dataclass
class Aggregator:
    led: Ledger
    clock: Clock
    proxied: str
    """Base URL of the server behind a trusted proxy (127.0.0.1)."""
    direct: str
    """Base URL of a server that trusts no proxy."""

    def post(
        self,
        session_id: str,
        phone: str,
        text: str,
        *,
        secret: str = SECRET,
        forwarded_for: str | None = AGGREGATOR,
        base: str | None = None,
    ) -> httpx.Response:
        headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
        form = {
            "sessionId": session_id,
            "serviceCode": "*384*55#",
            "phoneNumber": phone,
            "networkCode": "63902",
            "text": text,
        }
        return httpx.post(
            f"{base or self.proxied}/ussd/africastalking/{secret}",
            data=form,
            headers=headers,
            timeout=30,
        )

    def otieno(self, *cash_ins_minor: int) -> tuple[Party, str]:
        party = villager(self.led, agent(self.led).id, cash_ins_minor)
        (row,) = self.led.transact(
            lambda tx: tx.execute(
                "SELECT phone FROM villagers WHERE party_id = :id", {"id": party.id}
            )
        )
        return party, str(row[0])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def aggregator(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Aggregator]:
    url, schema = fresh_database(request.param, tmp_path_factory.mktemp("ussd"))
    clock = Clock()
    try:
        led = open_ledger(url, migrate=True, clock=clock)
        proxied = dataclasses.replace(
            FAST_TEST_SETTINGS, clock=clock, ussd_trusted_proxies=("127.0.0.1",), **USSD
        )
        direct = dataclasses.replace(FAST_TEST_SETTINGS, clock=clock, **USSD)
        with (
            ServerThread(create_app(url, settings=proxied)) as a,
            ServerThread(create_app(url, settings=direct)) as b,
        ):
            yield Aggregator(led, clock, a.base_url, b.base_url)
        led.close()
    finally:
        if schema is not None:
            drop_pg_schema(schema)


def session() -> str:
    return f"ATUid_{uuid.uuid4().hex}"


def test_the_aggregator_walks_otieno_to_his_balance(aggregator: Aggregator) -> None:
    otieno, phone = aggregator.otieno(150_000)
    sid = session()
    first = aggregator.post(sid, phone, "")
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/plain; charset=utf-8"
    assert first.text == MAIN
    assert aggregator.post(sid, phone, "1").text == "CON Enter your PIN"
    shown = aggregator.post(sid, phone, f"1*{PIN}").text
    assert shown == "CON Balance: KES 1,500.00\nAvailable: KES 1,500.00\n0 Back"
    assert aggregator.post(sid, phone, f"1*{PIN}").text == shown  # a replay: the same
    ended = httpx.post(
        f"{aggregator.proxied}/ussd/africastalking/{SECRET}/events",
        data={"sessionId": sid, "status": "Success", "durationInMillis": "5120"},
        headers={"X-Forwarded-For": AGGREGATOR},
    )
    assert (ended.status_code, ended.text) == (200, "OK")
    assert wallet_minor(aggregator.led, otieno) == (150_000, 150_000)


def test_a_forged_secret_or_a_wrong_source_is_refused_and_logged(
    aggregator: Aggregator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    otieno, phone = aggregator.otieno(10_000)
    calls = [
        aggregator.post(session(), phone, "", secret="guessed"),
        aggregator.post(session(), phone, "", secret=SECRET[:-1]),
        aggregator.post(session(), phone, "", secret=SECRET + "0"),
        aggregator.post(session(), phone, "", forwarded_for=None),  # the proxy itself
        aggregator.post(session(), phone, "", forwarded_for="192.168.7.7"),
        aggregator.post(session(), phone, "", forwarded_for="not-an-address"),
        # a peer that is no trusted proxy: its X-Forwarded-For is not read
        aggregator.post(session(), phone, "", base=aggregator.direct),
        httpx.get(f"{aggregator.proxied}/ussd/africastalking/{SECRET}"),
        httpx.post(f"{aggregator.proxied}/ussd/africastalking/{SECRET}/other", data={"a": 1}),
    ]
    assert [(c.status_code, c.text) for c in calls] == [(200, GENERIC)] * len(calls)
    assert all(SECRET not in c.text and "10." not in c.text for c in calls)
    reasons = [r.__dict__.get("reason") for r in caplog.records if "caller refused" in r.message]
    assert reasons == ["secret"] * 3 + ["source"] * 4 + ["path"] * 2
    served = [r for r in caplog.records if r.name != "httpx"]  # httpx: this test's client
    assert served and all(SECRET not in f"{r.getMessage()} {r.__dict__}" for r in served)
    events_call = httpx.post(
        f"{aggregator.proxied}/ussd/africastalking/guessed/events", data={"sessionId": "x"}
    )
    assert events_call.text == GENERIC
    assert wallet_minor(aggregator.led, otieno) == (10_000, 10_000)


def test_the_caller_address_reads_forwarded_for_only_from_a_trusted_proxy() -> None:
    proxies = ("127.0.0.1", "172.16.0.0/12")
    assert str(caller_address("127.0.0.1", "10.1.2.3", proxies)) == "10.1.2.3"
    assert str(caller_address("127.0.0.1", "6.6.6.6, 10.1.2.3, 172.16.0.9", proxies)) == (
        "10.1.2.3"
    )
    assert str(caller_address("8.8.8.8", "10.1.2.3", proxies)) == "8.8.8.8"
    assert str(caller_address("127.0.0.1", None, proxies)) == "127.0.0.1"
    assert caller_address("127.0.0.1", "10.1.2.3, junk", proxies) is None
    assert caller_address("testclient", "10.1.2.3", proxies) is None


def test_a_source_verdict_is_remembered_only_for_short_headers() -> None:
    proxies, networks = ("127.0.0.1",), ("10.0.0.0/8",)
    chain = ", ".join(["6.6.6.6"] * (FORWARDED_FOR_KEPT_MAX // 8)) + ", " + AGGREGATOR
    assert len(chain) > FORWARDED_FOR_KEPT_MAX
    cases = [
        ("127.0.0.1", AGGREGATOR),
        ("127.0.0.1", "192.168.7.7"),
        ("8.8.8.8", AGGREGATOR),
        ("127.0.0.1", None),
        ("127.0.0.1", chain),
    ]
    verdicts = [_source_judged(peer, xff, proxies, networks) for peer, xff in cases]
    assert verdicts == [True, False, False, False, True]
    settings = dataclasses.replace(FAST_TEST_SETTINGS, ussd_trusted_proxies=proxies, **USSD)
    app = SimpleNamespace(state=SimpleNamespace(ctx=SimpleNamespace(settings=settings)))
    _source_remembered.cache_clear()
    for (peer, xff), verdict in zip(cases * 2, verdicts * 2, strict=True):
        headers = [] if xff is None else [(b"x-forwarded-for", xff.encode())]
        scope = {"type": "http", "app": app, "client": (peer, 1), "headers": headers}
        assert (_refusal(Request(scope), SECRET) is None) is verdict
    assert _source_remembered.cache_info().currsize == len(cases) - 1  # not the long one
    assert _source_remembered.cache_info().hits == len(cases) - 1


def test_bad_steps_answer_end_and_move_nothing(aggregator: Aggregator) -> None:
    otieno, phone = aggregator.otieno(20_000)
    post = aggregator.post
    unknown = post(session(), new_phone(), "").text
    assert unknown == "END This number is not registered. Visit an agent to register."
    assert post(session(), "<script>alert(1)</script>", "").text == unknown
    assert post("<b>bold</b>", phone, "").text == GENERIC
    assert post("x" * 101, phone, "").text == GENERIC
    sid = session()
    assert post(sid, phone, "").text == MAIN
    digits_only = "END Only the number keys work here. Please dial again."
    assert post(sid, phone, "1*<script>alert(1)</script>").text == digits_only
    assert post(sid, phone, "1*١٢٣٤").text == digits_only  # Arabic-Indic digits
    too_many = "END Too many keys in one session. Please dial again."
    assert post(sid, phone, "*".join(["1"] * 1000)).text == too_many
    huge = httpx.post(
        f"{aggregator.proxied}/ussd/africastalking/{SECRET}",
        content=b"sessionId=" + sid.encode() + b"&text=" + b"1" * FORM_BODY_MAX_BYTES,
        headers={"X-Forwarded-For": AGGREGATOR},
    )
    assert huge.text == too_many
    assert post(sid, new_phone(), "1").text == GENERIC  # another phone on the session
    assert post(sid, phone, "1").text == "CON Enter your PIN"  # still where it was
    for wrong in ("1111", "2222"):
        sent = post(sid, phone, f"1*{wrong}" if wrong == "1111" else f"1*1111*{wrong}")
        assert sent.text == "CON Wrong PIN.\nEnter your PIN"
    locked = post(sid, phone, "1*1111*2222*3333").text
    assert locked == "END Your PIN is locked. Visit your agent to unlock it."
    assert post(session(), phone, "").text == locked
    assert wallet_minor(aggregator.led, otieno) == (20_000, 20_000)


def test_an_idle_session_expires(aggregator: Aggregator) -> None:
    otieno, phone = aggregator.otieno(30_000)
    sid = session()
    aggregator.post(sid, phone, "")
    aggregator.clock.advance(181)
    expired = aggregator.post(sid, phone, "1").text
    assert expired == "END Your session timed out. Please dial again."
    assert wallet_minor(aggregator.led, otieno) == (30_000, 30_000)


def test_the_callback_is_not_in_the_openapi_document(aggregator: Aggregator) -> None:
    doc = httpx.get(aggregator.proxied + "/openapi.json").json()
    assert doc["paths"] and not [p for p in doc["paths"] if "ussd" in p]


def test_the_ussd_settings_come_from_the_environment_and_bad_ones_stop_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VLEDGER_USSD_SECRETS", " first-secret-of-16 , second-secret-of-16 ")
    monkeypatch.setenv("VLEDGER_USSD_SOURCE_NETWORKS", "10.0.0.0/8,2001:db8::/32")
    monkeypatch.setenv("VLEDGER_USSD_TRUSTED_PROXIES", "")
    made = Settings()
    assert made.ussd_secrets == ("first-secret-of-16", "second-secret-of-16")
    assert made.ussd_source_networks == ("10.0.0.0/8", "2001:db8::/32")
    assert made.ussd_trusted_proxies == ()
    assert Settings(ussd_secrets=("x" * 16,)).ussd_secrets == ("x" * 16,)
    for bad in (
        {"ussd_secrets": ("x" * 15,)},
        {"ussd_secrets": ("a/secret/of/16/chars",)},
        {"ussd_source_networks": ("10.0.0.0/33",)},
        {"ussd_trusted_proxies": ("proxy.example",)},
    ):
        with pytest.raises(ValueError):
            Settings(**bad)  # type: ignore[arg-type]
