"""The README's examples run as written against a live server on SQLite.

``examples/storefront.py`` (our client: create an order, read it back) and
``examples/sign_without_client.py`` (``cryptography`` alone: RFC 9421 + Content-Digest)
are run as separate processes, with their arguments on the command line and in the
environment, with an Ed25519 key and an HMAC secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from ledger import open_ledger
from tests.test_api_harness import FAST_TEST_SETTINGS, Harness, ServerThread
from webhooks import WebhookSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    tmp = tmp_path_factory.mktemp("examples")
    url = f"sqlite:///{tmp}/api.db"
    led = open_ledger(url, migrate=True)
    app = create_app(
        url, settings=FAST_TEST_SETTINGS, webhook_settings=WebhookSettings(worker_enabled=False)
    )
    server = ServerThread(app).start()
    (tmp / "keys").mkdir()
    harness = Harness(url, server.base_url, led, tmp / "keys")
    try:
        yield harness
    finally:
        harness.close_clients()
        server.stop()
        led.close()


def run(script: str, args: list[str], env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def onboarded_shop(api: Harness) -> tuple[dict[str, str], str]:
    """A storefront key whose principal is onboarded, and an onboarded villager's id."""
    operator = api.client("operator")
    shop = api.key("storefront")
    villager = str(uuid.uuid4())
    for body in (
        {"id": shop["principal_id"], "kind": "storefront", "name": "Duka", "currency": "KES"},
        {
            "id": villager,
            "kind": "villager",
            "name": "Wanjiru",
            "currency": "KES",
            "kyc_tier": "tier0",
        },
    ):
        answer = operator.request("POST", "/v1/parties", json_body=body)
        assert answer.status_code == 201, answer.text
    return shop, villager


def test_storefront_example_creates_an_order_and_reads_it_back(api: Harness) -> None:
    shop, villager = onboarded_shop(api)
    key = ["--url", api.base_url, "--key-id", shop["key_id"], "--key-file", shop["path"]]
    order_id = run("storefront.py", [*key, "create", villager, "120000"]).strip()
    shown = run("storefront.py", [*key, "show", order_id]).split()
    assert shown[:3] == [order_id, "created", "amount=120000"]
    client = api.client_for(shop)
    order = client.request("GET", f"/v1/orders/{order_id}").json()
    assert (order["amount_minor"], order["villager_id"]) == (120_000, villager)


def test_storefront_example_reads_the_environment(api: Harness) -> None:
    shop, villager = onboarded_shop(api)
    env = {
        "VLEDGER_URL": api.base_url,
        "VLEDGER_KEY_ID": shop["key_id"],
        "VLEDGER_KEY_FILE": shop["path"],
    }
    order_id = run("storefront.py", ["create", villager, "120000"], env).strip()
    assert "amount=120000" in run("storefront.py", ["show", order_id], env)


@pytest.mark.parametrize("alg", ["ed25519", "hmac-sha256"])
def test_a_request_signed_without_our_client_is_accepted(api: Harness, alg: str) -> None:
    made = api.key("storefront", alg=alg)
    out = run("sign_without_client.py", [api.base_url, made["key_id"], made["path"]])
    status, body = out.split(" ", 1)
    assert status == "201", out
    account = json.loads(body)
    assert (account["currency"], account["code"]) == ("KES", 101)
    got = api.client_for(made).get_account(account["id"])
    assert got["id"] == account["id"]


def test_a_request_signed_with_another_key_than_its_keyid_is_refused(api: Harness) -> None:
    made = api.key("storefront")
    other = api.key("storefront")
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "sign_without_client.py"),
            api.base_url,
            made["key_id"],
            other["path"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("refused: 401 signature_invalid: ")
