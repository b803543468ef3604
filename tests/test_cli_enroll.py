"""``vledger agents enroll`` on SQLite and PostgreSQL: the code as text and as a terminal
QR code, and a code that registers the key it is redeemed with."""

from __future__ import annotations

import re
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import enrollment, events, parties, principals
from ledger.flows.parties import Kind
from ledger.flows.principals import Alg, Role
from vledger.cli import main

CODE = re.compile(r": ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){4})$", re.MULTILINE)


def raw() -> bytes:
    key = Ed25519PrivateKey.generate()
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def principal(led: Ledger, role: Role) -> uuid.UUID:
    made = principals.add_key(
        led,
        role=role,
        name=f"{role.value}-{uuid.uuid4().hex[:6]}",
        alg=Alg.ED25519,
        material=raw(),
    )
    if role is Role.AGENT:
        parties.onboard(
            led, party_id=made.principal_id, kind=Kind.AGENT, name="Duka", currency="KES"
        )
    return made.principal_id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def issued_count(led: Ledger) -> int:
    def work(tx: Tx) -> int:
        found = events.read_events(tx, limit=1000)
        return sum(1 for e in found if e.type == "enrollment.issued")

    return led.transact(work)


def test_an_agents_code_is_printed_as_text_and_qr_and_enrolls_a_phone(
    db_url: str, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = principal(ledger, Role.AGENT)
    status, out, err = run(capsys, "agents", "enroll", "--agent", str(agent), "--database", db_url)
    assert status == 0, err
    [code] = CODE.findall(out)
    assert f"agent {agent}" in out and "15 minutes" in out
    assert "█" in out or "▀" in out or "▄" in out  # the terminal QR code
    enrolled = enrollment.redeem(ledger, code=code, public_key=raw())
    assert enrolled.principal_id == agent and enrolled.device_id is not None


def test_an_operator_is_enrolled_at_setup_and_refused_as_an_agent(
    db_url: str, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "agents", "enroll", "--operator", "Desk", "--database", db_url)
    assert status == 0, err
    [line] = [x for x in out.splitlines() if x.startswith("enrollment code for operator ")]
    operator = line.split()[4].rstrip(":")
    status, _out, err = run(capsys, "agents", "enroll", "--agent", operator, "--database", db_url)
    assert status == 2 and "not an agent" in err
    assert issued_count(ledger) == 1
    # no key yet (the first code is not redeemed): another code by id, at setup still
    status, out, err = run(
        capsys, "agents", "enroll", "--principal", operator, "--database", db_url
    )
    assert status == 0, err
    [code] = CODE.findall(out)
    enrolled = enrollment.redeem(ledger, code=code, public_key=raw())
    assert str(enrolled.principal_id) == operator
    # now it holds a key: another one is a proposal another operator approves
    status, _out, err = run(
        capsys, "agents", "enroll", "--principal", operator, "--database", db_url
    )
    assert status == 2 and f"POST /v1/operators/{operator}/keys" in err
    assert len(err.strip().splitlines()) == 1 and issued_count(ledger) == 2


def test_bad_input_is_one_line_and_issues_nothing(
    db_url: str, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _out, err = run(capsys, "agents", "enroll", "--agent", "<b>x", "--database", db_url)
    assert status == 2 and "not a UUID" in err
    status, _out, err = run(
        capsys, "agents", "enroll", "--agent", str(uuid.uuid4()), "--database", db_url
    )
    assert status == 2 and "principal_not_found" in err and "Traceback" not in err
    assert issued_count(ledger) == 0
