"""`vledger serve`, `vledger keys` and `vledger sweep`, run as a user runs them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.client import Client
from api.keys import create_key
from ledger import open_ledger
from reconciliation.service_key import ENV_VAR as SERVICE_KEY_ENV
from vledger.cli import main

REPO = Path(__file__).resolve().parent.parent
SERVE_WAIT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.status, json.loads(answer.read())


def test_serve_migrates_then_answers_healthz_and_readyz(tmp_path: Path) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path}/served.db"
    env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
    log = tmp_path / "serve.log"
    with (
        log.open("wb") as log_file,
        subprocess.Popen(
            [sys.executable, "-m", "vledger", "serve", "--port", str(port), "--database", url],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + SERVE_WAIT_S
            while True:
                try:
                    status, body = get(f"http://127.0.0.1:{port}/healthz")
                    break
                except OSError:
                    assert server.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "vledger serve did not answer"
                    time.sleep(0.2)
            assert (status, body) == (200, {"status": "ok"})
            status, body = get(f"http://127.0.0.1:{port}/readyz")
            assert status == 200
            assert body["status"] == "ready"
        finally:
            server.terminate()
            server.wait(timeout=30)
    with open_ledger(url) as led:  # serve migrated the new file
        assert led.check_integrity().ok


def test_serve_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000", "--database", "sqlite:///unused.db"]) == 2
    assert "--port must be 1..65535" in capsys.readouterr().err


def test_serve_refuses_several_workers_on_sqlite_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/unused.db"
    assert main(["serve", "--workers", "2", "--database", url]) == 2
    assert "several worker processes need PostgreSQL" in capsys.readouterr().err
    assert main(["serve", "--workers", "0", "--database", url]) == 2
    assert "workers must be 1 or more" in capsys.readouterr().err
    assert not (tmp_path / "unused.db").exists()  # refused before migrating


def assert_other_hosts_refused(client: Client, base: str) -> None:
    """A signature made for another service, sent here naming that service's Host, is
    refused: the served process answers only to its loopback names (api.settings)."""
    for signed_for, host in (
        ("http://ledger.elsewhere.example/v1/accounts", "ledger.elsewhere.example"),
        (f"{base}/v1/accounts", None),
    ):
        headers = client.signed_headers("GET", signed_for)
        if host is not None:
            headers["host"] = host
        answer = httpx.get(f"{base}/v1/accounts", headers=headers)
        assert answer.status_code == (401 if host else 200), answer.text


def test_serve_with_two_workers_shares_the_port_and_the_money_adds_up(
    tmp_path: Path, pg_url: str
) -> None:
    port = free_port()
    assert main(["migrate", "--database", pg_url]) == 0
    made = create_key(pg_url, "operator", "ops", out_path=tmp_path / "ops.pem")
    env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
    env[SERVICE_KEY_ENV] = str(tmp_path / "service-key.pem")  # the sealers' key, not ~
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "vledger", "serve", "--port", str(port), "--workers", "2"]
    with (
        log.open("wb") as log_file,
        subprocess.Popen(
            [*command, "--database", pg_url],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + SERVE_WAIT_S
            while log.read_text().count("Application startup complete") < 2:
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "vledger serve did not start two workers"
                time.sleep(0.2)
            base = f"http://127.0.0.1:{port}"
            clients = [Client.from_key_file(base, made["key_id"], tmp_path / "ops.pem")]
            clients.append(Client.from_key_file(base, made["key_id"], tmp_path / "ops.pem"))
            bank = clients[0].create_account(id=str(uuid.uuid4()), currency="KES", code=999)
            shop = clients[0].create_account(id=str(uuid.uuid4()), currency="KES", code=101)
            for n in range(20):
                [moved] = clients[n % 2].create_transfers(
                    [
                        {
                            "id": str(uuid.uuid4()),
                            "debit_account_id": bank["id"],
                            "credit_account_id": shop["id"],
                            "amount": n + 1,
                            "currency": "KES",
                            "code": 1,
                        }
                    ]
                )
                assert moved["status"] == "created"
            assert clients[1].get_account(shop["id"])["credits_posted"] == sum(range(1, 21))
            assert_other_hosts_refused(clients[0], base)
            for client in clients:
                client.close()
            started = re.findall(r"Started server process \[(\d+)\]", log.read_text())
            assert len(set(started)) == 2, log.read_text()
        finally:
            server.terminate()
            server.wait(timeout=30)
    with open_ledger(pg_url) as led:
        assert led.check_integrity().ok


def test_keys_create_writes_a_pkcs8_key_and_prints_the_principal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    out = tmp_path / "agent.pem"
    argv = ["keys", "create", "--role", "agent", "--name", "Amina's shop"]
    assert main([*argv, "--out", str(out), "--database", url]) == 0
    created = json.loads(capsys.readouterr().out)
    assert set(created) == {"key_id", "principal_id", "role"}
    assert created["role"] == "agent"
    private = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert out.stat().st_mode & 0o777 == 0o600

    # A second key for the same principal (rotation), then the first one revoked.
    second = tmp_path / "agent-2.pem"
    assert main([*argv, "--out", str(second), "--database", url]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert rotated["principal_id"] == created["principal_id"]
    assert rotated["key_id"] != created["key_id"]
    assert main(["keys", "revoke", created["key_id"], "--database", url]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "revoked"
    assert main(["keys", "revoke", created["key_id"], "--database", url]) == 2
    assert "no active key" in capsys.readouterr().err


def test_keys_create_refuses_hmac_for_an_agent_and_an_existing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    assert main(["migrate", "--database", url]) == 0
    hmac = ["keys", "create", "--role", "agent", "--name", "a", "--alg", "hmac-sha256"]
    assert main([*hmac, "--out", str(tmp_path / "a.key"), "--database", url]) == 2
    assert not (tmp_path / "a.key").exists()
    existing = tmp_path / "taken.pem"
    existing.write_text("keep me")
    shop = ["keys", "create", "--role", "storefront", "--name", "s"]
    assert main([*shop, "--out", str(existing), "--database", url]) == 2
    assert existing.read_text() == "keep me"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert all(line.startswith("vledger keys: ") for line in err)


def test_sweep_reports_each_timer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/sweep.db"
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    assert main(["sweep", "--database", url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "orders released or cancelled: 0" in lines
    assert "cash-outs expired: 0" in lines
    assert "expired holds voided: 0" in lines


def test_seal_export_and_verify_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/journal.db"
    assert main(["demo", "--database", url]) == 0
    key = tmp_path / "service-key.pem"
    assert main(["seal", "--key", str(key), "--database", url]) == 0
    assert "\nsealed 1 new block (1..1, transfers seq 1.." in capsys.readouterr().out
    assert main(["seal", "--key", str(key), "--database", url]) == 0  # nothing new
    assert capsys.readouterr().out.startswith("nothing new to seal: the journal is sealed up to")

    out = tmp_path / "export"
    assert main(["audit", "export", "--out", str(out), "--database", url]) == 0
    assert "exported blocks 1..1" in capsys.readouterr().out
    public = out / "public-key.pem"
    assert main(["verify", str(out), "--public-key", str(public)]) == 0
    assert capsys.readouterr().out.startswith("OK: 1 blocks")

    # One byte of one amount changed: exit 1, and the fault names the line.
    journal = out / "transfers.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"amount": ', '"amount": 1', 1)
    assert lines[2] != journal.read_text().splitlines(keepends=True)[2]
    journal.write_text("".join(lines))
    assert main(["verify", str(out), "--public-key", str(public)]) == 1
    report = capsys.readouterr().out
    assert report.startswith("FAILED")
    assert "changed_transfer" in report

    assert main(["verify", str(tmp_path / "nowhere"), "--public-key", str(public)]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["audit", "export", "--out", str(out), "--from", "yesterday"]) == 2
    assert "not a block number or a time" in capsys.readouterr().err


def test_reconcile_integrity_after_the_demo_is_ok_and_sees_the_seal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/recon.db"
    assert main(["demo", "--database", url]) == 0
    assert main(["seal", "--key", str(tmp_path / "k.pem"), "--database", url]) == 0
    capsys.readouterr()
    reports = tmp_path / "reports"
    assert main(["reconcile", "integrity", "--out", str(reports), "--database", url]) == 0
    out = capsys.readouterr().out
    assert ": ok, 0 break(s)" in out
    [summary] = reports.glob("integrity/*/*/summary.json")
    assert json.loads(summary.read_text())["seal"]["blocks"] == 1


def test_worker_runs_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/worker.db"
    assert main(["migrate", "--database", url]) == 0
    env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
    log = tmp_path / "worker.log"
    # A shell's background job (CI started with `&`) ignores SIGINT and a child inherits
    # that, so Python would install no KeyboardInterrupt handler in the worker. A handled
    # signal is reset to the default across exec: handle it here while the child starts.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "vledger", "worker", "--database", url],
                cwd=REPO,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        deadline = time.monotonic() + SERVE_WAIT_S
        while "Ctrl-C stops" not in log.read_text():
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "vledger worker did not start"
            time.sleep(0.2)
        time.sleep(1)
        assert worker.poll() is None, log.read_text()  # still delivering
        worker.send_signal(signal.SIGINT)
        assert worker.wait(timeout=30) == 0, log.read_text()
    finally:
        if worker.poll() is None:  # a failed test leaves no worker behind
            worker.kill()
            worker.wait()
