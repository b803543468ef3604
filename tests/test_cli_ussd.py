"""``vledger ussd``, the terminal phone, driven under pexpect against a served app (SQLite):
Otieno dials, reads his balance after his PIN (typed without echo) and hangs up."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from api.app import create_app
from api.local_server import ServerThread
from ledger import Ledger, open_ledger
from ledger.flows import villagers
from tests.test_api_harness import FAST_TEST_SETTINGS
from tests.ussd_helpers import PIN, agent, villager

SECRET = "terminal-phone-secret"
VLEDGER = str(Path(sys.executable).with_name("vledger"))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Ledger, str]]:
    url = f"sqlite:///{tmp_path}/phone.db"
    led = open_ledger(url, migrate=True)
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS, ussd_secrets=(SECRET,), ussd_source_networks=("127.0.0.1/32",)
    )
    try:
        with ServerThread(create_app(url, settings=settings)) as server:
            yield led, server.base_url
    finally:
        led.close()


def test_the_terminal_phone_dials_the_menu(served: tuple[Ledger, str]) -> None:
    led, base = served
    otieno = villager(led, agent(led).id, (250_000,))
    phone = villagers.get_villager(led, otieno.id).phone
    child = pexpect.spawn(
        VLEDGER,
        ["ussd", "--phone", phone, "--base", base, "--secret", SECRET],
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect_exact("4 Language")
        child.expect_exact("> ")
        child.sendline("1")
        child.expect_exact("Enter your PIN")
        child.expect_exact("> ")
        child.sendline(PIN)
        child.expect_exact("Balance: KES 2,500.00")
        assert PIN not in (child.before or "")  # not echoed
        child.expect_exact("0 Back")
        child.sendline("0")
        child.expect_exact("1 Balance")
        child.expect_exact("> ")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_a_wrong_secret_hangs_up_with_the_generic_answer(served: tuple[Ledger, str]) -> None:
    _led, base = served
    done = pexpect.run(
        f"{VLEDGER} ussd --phone +254700000001 --base {base} --secret guessed",
        encoding="utf-8",
        withexitstatus=True,
        timeout=60,
    )
    assert done == ("The service cannot answer now. Please try again later.\r\n", 0)
