"""``VLEDGER_WEBHOOK_NETWORKS_ALLOWED``: the local try-out setting that lets ``vledger
serve`` accept webhook endpoints on loopback (``api.server``, ``webhooks.settings``).

Served as a user serves it (``python -m vledger serve`` in a subprocess, both engines):
with ``127.0.0.0/8`` a storefront's endpoint on 127.0.0.1 is made (201); without the
setting the same request is 422 ``target_refused`` and nothing is made; a malformed
value is one line on stderr, exit 2, before anything is migrated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from api.client import Client
from api.keys import create_key
from api.server import WEBHOOK_NETWORKS_ENV, ServeRefused, served_webhook_settings
from ledger import open_ledger
from tests.test_cli_service import SERVE_WAIT_S, free_port
from vledger.cli import main
from webhooks.settings import NETWORKS_ALLOWED_MAX, parse_networks

REPO = Path(__file__).resolve().parent.parent


# -- parsing --------------------------------------------------------------------------------


def test_parse_networks_reads_cidrs_and_refuses_anything_else() -> None:
    assert parse_networks("") == ()
    assert parse_networks(" 127.0.0.0/8 , ::1/128 ,") == ("127.0.0.0/8", "::1/128")
    assert parse_networks("10.1.2.3") == ("10.1.2.3/32",)
    for bad in ("127.0.0.1/8", "localhost", "127.0.0.0/33", "1.2.3.4/8; rm -rf /"):
        with pytest.raises(ValueError, match="CIDR"):
            parse_networks(bad)
    many = ",".join(f"10.0.{i}.0/24" for i in range(NETWORKS_ALLOWED_MAX))
    assert len(parse_networks(many)) == NETWORKS_ALLOWED_MAX
    with pytest.raises(ValueError, match="at most"):
        parse_networks(many + ",10.9.9.0/24")


def test_the_default_allows_no_private_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_NETWORKS_ENV, raising=False)
    assert served_webhook_settings().target_networks_allowed == ()
    monkeypatch.setenv(WEBHOOK_NETWORKS_ENV, "127.0.0.0/8")
    assert served_webhook_settings().target_networks_allowed == ("127.0.0.0/8",)
    monkeypatch.setenv(WEBHOOK_NETWORKS_ENV, "not-a-network")
    with pytest.raises(ServeRefused, match=WEBHOOK_NETWORKS_ENV):
        served_webhook_settings()


def test_a_bad_cidr_is_one_line_and_exit_2_before_migrating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(WEBHOOK_NETWORKS_ENV, "127.0.0.1/8")
    url = f"sqlite:///{tmp_path}/unused.db"
    assert main(["serve", "--port", str(free_port()), "--database", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and WEBHOOK_NETWORKS_ENV in err and "127.0.0.1/8" in err
    assert not (tmp_path / "unused.db").exists()


# -- served ---------------------------------------------------------------------------------


@contextmanager
def served(url: str, tmp_path: Path, networks: str | None) -> Iterator[str]:
    """``vledger serve`` on a free port, with ``networks`` in the environment; its base."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLEDGER_")}
    if networks is not None:
        env[WEBHOOK_NETWORKS_ENV] = networks
    log = tmp_path / f"serve-{port}.log"
    base = f"http://127.0.0.1:{port}"
    with (
        log.open("wb") as out,
        subprocess.Popen(
            [sys.executable, "-m", "vledger", "serve", "--port", str(port), "--database", url],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        ) as server,
    ):
        try:
            deadline = time.monotonic() + SERVE_WAIT_S
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "vledger serve did not answer"
                time.sleep(0.2)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def endpoint_request(client: Client) -> httpx.Response:
    body = {"url": "http://127.0.0.1:9/hooks", "event_types": ["order.*"]}
    return client.request("POST", "/v1/webhook-endpoints", json_body=body)


def test_serve_accepts_a_loopback_endpoint_only_with_the_setting(
    db_url: str, tmp_path: Path
) -> None:
    open_ledger(db_url, migrate=True).close()
    key_file = tmp_path / "shop.pem"
    made = create_key(db_url, "storefront", f"shop-{uuid.uuid4().hex[:6]}", "ed25519", key_file)

    with (
        served(db_url, tmp_path, None) as base,
        Client.from_key_file(base, made["key_id"], str(key_file)) as shop,
    ):
        answer = endpoint_request(shop)
        assert answer.status_code == 422, answer.text
        assert answer.json()["code"] == "target_refused"
        assert shop.request("GET", "/v1/webhook-endpoints").json()["data"] == []

    with (
        served(db_url, tmp_path, "127.0.0.0/8,::1/128") as base,
        Client.from_key_file(base, made["key_id"], str(key_file)) as shop,
    ):
        answer = endpoint_request(shop)
        assert answer.status_code == 201, answer.text
        assert answer.json()["url"] == "http://127.0.0.1:9/hooks"
        private = {"url": "http://10.0.0.5/hooks", "event_types": ["order.*"]}
        other = shop.request("POST", "/v1/webhook-endpoints", json_body=private)
        assert other.status_code == 422 and other.json()["code"] == "target_refused"
        listed = shop.request("GET", "/v1/webhook-endpoints").json()
        assert [e["url"] for e in listed["data"]] == ["http://127.0.0.1:9/hooks"]
