"""``vledger sms outbox`` and ``vledger sms contact`` on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from ledger import Ledger
from ledger.flows import agent_float, cash, parties, villagers
from ledger.flows.parties import Kind
from sms import delivery
from tests.sms_gateway_fake import FakeGateway, serve
from tests.villager_helpers import activation_code
from vledger.cli import main
from vledger.commands.sms import masked

PHONE = "+254712000101"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def station(ledger: Ledger) -> tuple[uuid.UUID, uuid.UUID]:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Juma <i>", currency="KES"
    )
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=100_000, provider="BANK"
    )
    done = villagers.register_villager(
        ledger,
        villager_id=uuid.uuid4(),
        agent_id=agent.id,
        phone=PHONE,
        name="Amina",
        currency="KES",
        language="sw",
    )
    return agent.id, done.id


def test_masked_keeps_only_the_last_three_digits() -> None:
    assert masked("+254712000101") == "+*********101"
    assert masked("12") == "12"


def test_the_outbox_lists_what_would_be_sent_with_the_code_and_the_phone_masked(
    db_url: str,
    ledger: Ledger,
    station: tuple[uuid.UUID, uuid.UUID],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _agent, amina = station
    code = activation_code(ledger, amina)
    status, out, err = run(capsys, "sms", "outbox", "--database", db_url)
    assert (status, err) == (0, "")
    [line] = out.splitlines()
    assert "  +*********101  sw  queued  1 part  villager.activation_code  " in line
    assert "Namba yako ya kuanzisha Village Ledger ni ********." in line
    assert code not in out and PHONE not in out
    status, out, _ = run(capsys, "sms", "outbox", "--state", "sent", "--database", db_url)
    assert (status, out) == (0, "no messages\n")


def test_the_outbox_shows_sent_messages_and_honours_the_limit(
    db_url: str,
    ledger: Ledger,
    station: tuple[uuid.UUID, uuid.UUID],
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent, amina = station
    code = activation_code(ledger, amina)
    villagers.activate(ledger, phone=PHONE, activation_code=code, pin="2580")
    cash.cash_in(
        ledger, cash_in_id=uuid.uuid4(), agent_id=agent, villager_id=amina, amount_minor=5_000
    )
    for fake in serve(FakeGateway()):
        delivery.send_due(ledger, now=ledger.now(), gateway=fake.gateway())
        assert len(fake.seen) == 2
    status, out, _ = run(capsys, "sms", "outbox", "--state", "sent", "--database", db_url)
    lines = out.splitlines()
    assert status == 0 and len(lines) == 2 and all("  sent  " in line for line in lines)
    assert "Umepokea KES 50.00 kutoka kwa Juma <i>" in lines[1]
    status, out, _ = run(capsys, "sms", "outbox", "--limit", "1", "--database", db_url)
    assert status == 0 and len(out.splitlines()) == 1 and "Umepokea" in out  # the newest


def test_an_agent_contact_routes_its_alerts_and_bad_input_changes_nothing(
    db_url: str,
    ledger: Ledger,
    station: tuple[uuid.UUID, uuid.UUID],
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent, amina = station
    for argv, why in (
        ([str(amina), "--phone", "+254722000900", "--language", "en"], "agent_not_found"),
        ([str(agent), "--phone", "<script>", "--language", "en"], "phone_invalid"),
        ([str(agent), "--phone", "+254722000900", "--language", "fr"], "invalid choice"),
        ([str(agent), "--phone", "+2547" + "2" * 5000, "--language", "en"], "phone_invalid"),
    ):
        status, out, err = run(capsys, "sms", "contact", *argv, "--database", db_url)
        assert status == 2 and out == "" and why in err
    status, out, _ = run(capsys, "sms", "outbox", "--limit", "0", "--database", db_url)
    assert status == 2
    status, out, err = run(
        capsys,
        "sms",
        "contact",
        str(agent),
        "--phone",
        "+254 722 000 900",
        "--language",
        "en",
        "--database",
        db_url,
    )
    assert (status, err) == (0, "") and "+*********900 in en" in out
    agent_float.set_float_threshold(ledger, agent_id=agent, threshold_minor=200_000)
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent, amount_minor=100_000, provider="BANK"
    )
    agent_float.set_float_threshold(ledger, agent_id=agent, threshold_minor=150_000)
    cash.cash_in(
        ledger, cash_in_id=uuid.uuid4(), agent_id=agent, villager_id=amina, amount_minor=60_000
    )
    status, out, _ = run(capsys, "sms", "outbox", "--database", db_url)
    alert = [line for line in out.splitlines() if "float.low" in line]
    assert len(alert) == 1 and "+*********900  en  queued" in alert[0]
    assert "Float low: KES 1,400.00 available, below your alert of KES 1,500.00." in alert[0]
