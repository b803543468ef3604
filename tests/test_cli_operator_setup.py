"""The command line makes the first two operators only, on SQLite and PostgreSQL: a third
operator, or another key for an operator that holds one, is refused in one line (exit 2)
with nothing written; a key for an operator whose every key was revoked is the recovery
path. Other roles are not limited."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows.principals import KeyRefused, Role, operators
from ledger.flows.principals import repository as principal_rows
from vledger.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def create(
    capsys: pytest.CaptureFixture[str], db_url: str, folder: Path, role: str, name: str
) -> tuple[int, str, str]:
    out = folder / f"{uuid.uuid4().hex}.pem"
    return run(
        capsys, "keys", "create", "--role", role, "--name", name, "--out", str(out),
        "--database", db_url,
    )  # fmt: skip


def operators_now(led: Ledger) -> int:
    return led.transact(lambda tx: principal_rows.count_principals(tx, Role.OPERATOR))


def test_the_first_two_operators_come_from_the_command_line_and_no_third(
    db_url: str, ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("Desk", "Checker"):
        status, _out, err = create(capsys, db_url, tmp_path, "operator", name)
        assert status == 0, err
    status, _out, err = create(capsys, db_url, tmp_path, "operator", "Third")
    assert status == 2 and "POST /v1/operators" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert operators_now(ledger) == operators.SETUP_OPERATORS
    assert len(list(tmp_path.glob("*.pem"))) == 2  # the refused key's file was not left behind
    status, _out, err = run(capsys, "agents", "enroll", "--operator", "Third", "--database", db_url)
    assert status == 2 and operators_now(ledger) == 2
    for i in range(3):  # auditors are not limited
        assert create(capsys, db_url, tmp_path, "auditor", f"Auditor {i}")[0] == 0


def test_a_second_key_is_refused_until_every_key_is_revoked(
    db_url: str, ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = create(capsys, db_url, tmp_path, "operator", "Desk")
    assert status == 0, err
    first = json.loads(out)
    status, _out, err = create(capsys, db_url, tmp_path, "operator", "Desk")
    assert status == 2 and f"/v1/operators/{first['principal_id']}/keys" in err
    assert run(capsys, "keys", "revoke", first["key_id"], "--database", db_url)[0] == 0
    status, out, err = create(capsys, db_url, tmp_path, "operator", "Desk")
    assert status == 0, err
    again = json.loads(out)
    assert again["principal_id"] == first["principal_id"] and again["key_id"] != first["key_id"]


def test_the_rule_is_read_in_the_same_transaction(db_url: str, ledger: Ledger) -> None:
    """A principal with a key and a count of two refuse inside any transaction."""

    def work(tx: Tx) -> None:
        for name in ("A", "B"):
            principal_rows.insert_principal(tx, uuid.uuid4(), Role.OPERATOR, name)
        with pytest.raises(KeyRefused):
            operators.check_command_line_in(tx, role=Role.OPERATOR, principal_id=None)
        operators.check_command_line_in(tx, role=Role.AUDITOR, principal_id=None)

    ledger.transact(work)
