"""The examples' edges: run as ``.venv/bin/python examples/x.py`` from any folder, a usage
line (exit 2, no traceback) on wrong arguments, the API's problem ``code`` and ``detail``
on a refusal (exit 1), and the webhook receiver's signature check. Each example runs as a
child process, the way a reader runs it; the refusals come from a served API on each
engine (``tests/test_api_harness.py``'s server)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.test_api_harness import Harness, api, api_server

__all__ = ["api", "api_server"]  # the fixtures, used by name

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PYTHON = sys.executable  # the project's .venv interpreter
RUN_TIMEOUT_S = 60
ARGPARSE_EXAMPLES = (
    "storefront.py",
    "call.py",
    "villager_phone.py",
    "webhook_receiver.py",
)
NO_ORDER = "00000000-0000-4000-8000-000000000000"


def example(
    name: str, *args: str, cwd: Path, env: dict[str, str] | None = None, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """``python examples/<name> args`` from ``cwd``, with a clean environment plus ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VLEDGER_", "BASE"))}
    return subprocess.run(
        [PYTHON, *flags, str(EXAMPLES / name), *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def assert_usage(done: subprocess.CompletedProcess[str], name: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr
    assert name.removesuffix(".py") in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# -- run from anywhere, without activation ---------------------------------------------


@pytest.mark.parametrize("name", ARGPARSE_EXAMPLES)
def test_an_example_runs_from_another_folder_without_activation(name: str, tmp_path: Path) -> None:
    done = example(name, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {name}")


@pytest.mark.parametrize("name", ARGPARSE_EXAMPLES)
def test_an_interpreter_without_the_project_is_told_which_to_use(name: str, tmp_path: Path) -> None:
    done = example(name, "--help", cwd=tmp_path, flags=("-S",))  # -S: no site-packages
    assert done.returncode == 2
    assert "run it with the project's interpreter, .venv/bin/python" in done.stderr
    assert "Traceback" not in done.stderr


# -- wrong arguments: the usage, exit 2 ------------------------------------------------


def test_wrong_arguments_print_the_usage_and_exit_2(tmp_path: Path) -> None:
    key = tmp_path / "shop"
    key.with_suffix(".pem").write_text("not a key\n")
    key.with_suffix(".json").write_text('{"key_id": "k_x", "principal_id": "p"}')
    env = {
        "VLEDGER_URL": "http://127.0.0.1:9",
        "VLEDGER_KEY_ID": "k_x",
        "VLEDGER_KEY_FILE": str(key.with_suffix(".pem")),
    }
    cases = [
        ("storefront.py", (), env),  # no action
        ("storefront.py", ("show", NO_ORDER), {}),  # no URL and key
        ("storefront.py", ("show", "not-a-uuid"), env),
        ("storefront.py", ("create", str(uuid.uuid4()), "12.50"), env),  # no float money
        ("call.py", (), {}),
        ("call.py", (str(key), "DELETE", "/v1/orders"), {}),
        ("call.py", (str(key), "POST", "/v1/orders", "amount_minor:=12,5"), {}),
        ("call.py", (str(key), "POST", "/v1/orders", "just-a-word"), {}),
        ("call.py", (str(tmp_path / "nobody"), "GET", "/v1/orders"), {}),
        ("villager_phone.py", ("pay-code", str(uuid.uuid4()), "2580", NO_ORDER, "ten"), {}),
        ("villager_phone.py", ("activate",), {}),
        ("webhook_receiver.py", (str(tmp_path / "no-secret"),), {}),
        ("sign_without_client.py", (), {}),
        ("sign_without_client.py", ("http://127.0.0.1:9", "k_x"), {}),
        ("sign_without_client.py", ("http://127.0.0.1:9", "k_x", str(key) + ".pem"), {}),
        ("sign_without_client.py", ("http://127.0.0.1:9", "k_x", str(tmp_path / "none")), {}),
    ]
    for name, args, extra in cases:
        done = example(name, *args, cwd=ROOT, env=extra)
        assert_usage(done, name)


def test_the_usage_path_changes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "untouched.db"
    done = example(
        "villager_phone.py",
        "--database",
        f"sqlite:///{database}",
        "pay-code",
        "not-a-uuid",
        "2580",
        NO_ORDER,
        "100",
        cwd=ROOT,
    )
    assert_usage(done, "villager_phone.py")
    assert not database.exists()


# -- refusals: the problem's code and detail, exit 1 ------------------------------------


def storefront_env(api: Harness, made: dict[str, str]) -> dict[str, str]:
    return {
        "VLEDGER_URL": api.base_url,
        "VLEDGER_KEY_ID": made["key_id"],
        "VLEDGER_KEY_FILE": made["path"],
    }


def test_a_refusal_prints_the_problem_code_and_detail(api: Harness, tmp_path: Path) -> None:
    shop = api.key("storefront")
    env = storefront_env(api, shop)
    missing = example("storefront.py", "show", NO_ORDER, cwd=ROOT, env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"refused: 404 order_not_found: no order {NO_ORDER}"
    assert missing.stdout == ""

    # A storefront not onboarded yet: the API says why, not a bare 404.
    villager = str(uuid.uuid4())
    made = example("storefront.py", "create", villager, "120000", cwd=ROOT, env=env)
    assert made.returncode == 1
    assert made.stderr.startswith("refused: ")
    code = made.stderr.split()[2].rstrip(":")
    assert code.isidentifier() and code not in ("None", "")
    assert "Traceback" not in made.stderr


def test_another_tenants_order_is_not_found(api: Harness, tmp_path: Path) -> None:
    operator = api.client("operator")
    owner = api.key("storefront")
    operator.call(
        "POST",
        "/v1/parties",
        json_body={"id": owner["principal_id"], "kind": "storefront", "name": "Owner"}
        | {"currency": "KES"},
    )
    villager = str(uuid.uuid4())
    receive_only = {"id": villager, "kind": "villager", "name": "Amina", "currency": "KES"}
    operator.call("POST", "/v1/parties", json_body=receive_only | {"kyc_tier": "tier0"})
    order = example(
        "storefront.py", "create", villager, "120000", cwd=ROOT, env=storefront_env(api, owner)
    )
    assert order.returncode == 0, order.stderr
    order_id = order.stdout.strip()
    assert str(uuid.UUID(order_id)) == order_id
    mine = example("storefront.py", "show", order_id, cwd=ROOT, env=storefront_env(api, owner))
    assert mine.returncode == 0
    assert mine.stdout.split()[:2] == [order_id, "created"]
    unpaid = example("storefront.py", "refund", order_id, cwd=ROOT, env=storefront_env(api, owner))
    assert unpaid.returncode == 1
    assert unpaid.stderr.startswith("refused: 409 ") or unpaid.stderr.startswith("refused: 422 ")
    still = example("storefront.py", "show", order_id, cwd=ROOT, env=storefront_env(api, owner))
    assert still.stdout.split()[1:3] == ["created", "amount=120000"]  # the refusal moved nothing
    other = api.key("storefront")
    theirs = example("storefront.py", "show", order_id, cwd=ROOT, env=storefront_env(api, other))
    assert theirs.returncode == 1
    assert theirs.stderr.strip() == f"refused: 404 order_not_found: no order {order_id}"


def test_call_prints_a_refusal_and_onboards_nothing(api: Harness, tmp_path: Path) -> None:
    made = api.key("storefront")
    key = tmp_path / "shop"
    Path(made["path"]).rename(key.with_suffix(".pem"))
    key.with_suffix(".json").write_text(json.dumps(made))
    env = {"BASE": api.base_url}
    whoami = example("call.py", str(key), "whoami", cwd=ROOT, env=env)
    assert whoami.stdout.strip() == made["principal_id"]
    # An operator's route: 403 for a storefront (markup in the name changes nothing), and
    # nothing is onboarded.
    markup = "<script>alert(1)</script>"
    body = ("id:=" + json.dumps(made["principal_id"]), "kind=storefront", f"name={markup}")
    refused = example(
        "call.py", str(key), "POST", "/v1/parties", *body, "currency=KES", cwd=ROOT, env=env
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith("refused: 403 ")
    got = example(
        "call.py", str(key), "GET", f"/v1/parties/{made['principal_id']}", cwd=ROOT, env=env
    )
    assert got.returncode == 1
    assert got.stderr.startswith("refused: 404 party_not_found")


def test_sign_without_client_prints_the_refusal(api: Harness) -> None:
    made = api.key("storefront")
    done = example("sign_without_client.py", api.base_url, "k_unknown", made["path"], cwd=ROOT)
    assert done.returncode == 1
    assert done.stderr.startswith("refused: 401 ")
    ok = example("sign_without_client.py", api.base_url, made["key_id"], made["path"], cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    status, answer = ok.stdout.split(" ", 1)
    assert status == "201"
    assert json.loads(answer)["currency"] == "KES"


# -- the webhook receiver ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_receiver_prints_good_events_and_refuses_forged_ones(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    secret_file = tmp_path / "whsec"
    secret_file.write_text(secret + "\n")
    port = free_port()
    out = tmp_path / "received.log"
    with out.open("w") as log:
        receiver = subprocess.Popen(
            [PYTHON, str(EXAMPLES / "webhook_receiver.py"), str(secret_file), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 10
        while "listening" not in out.read_text():
            assert time.monotonic() < deadline and receiver.poll() is None
            time.sleep(0.05)
        order_id = str(uuid.uuid4())
        body = json.dumps({"type": "order.paid", "data": {"order_id": order_id, "state": "paid"}})
        now = datetime.now(UTC)
        msg_id = f"msg_{uuid.uuid4().hex}"
        signature = Webhook(secret).sign(msg_id, now, body)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        forged = {**headers, "webhook-signature": "v1," + base64.b64encode(bytes(32)).decode()}
        assert httpx.post(url, content=body, headers=forged).status_code == 400
        tampered = body.replace("paid", "released")
        assert httpx.post(url, content=tampered, headers=headers).status_code == 400
        assert httpx.post(url, content=b"x" * 1_000_001, headers=headers).status_code == 413
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    lines = out.read_text().splitlines()
    assert lines[1] == f"order.paid {order_id} paid"
    assert [line.split(":")[0] for line in lines[2:]] == ["rejected"] * 3


# -- the villager's phone ------------------------------------------------------------------


def test_the_villager_phone_refuses_with_the_flow_code(api: Harness) -> None:
    operator = api.client("operator")
    agent = api.key("agent")
    body = {"id": agent["principal_id"], "kind": "agent", "name": "Wanjiru", "currency": "KES"}
    operator.call("POST", "/v1/parties", json_body=body)
    villager = str(uuid.uuid4())
    phone = f"+2547{secrets.randbelow(10**8):08d}"
    register = {"id": villager, "phone": phone, "name": "Amina", "currency": "KES"}
    station = api.client_for(agent)
    station.call("POST", "/v1/villagers", json_body=register | {"language": "sw"})
    db = ("--database", api.db_url)

    weak = example("villager_phone.py", *db, "activate", villager, "1234", cwd=ROOT)
    assert weak.returncode == 1
    assert weak.stderr.startswith("refused: pin_too_weak: ")
    done = example("villager_phone.py", *db, "activate", villager, "2580", cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "PIN set: Amina is active"

    order = str(uuid.uuid4())
    wrong = example("villager_phone.py", *db, "pay-code", villager, "9713", order, "100", cwd=ROOT)
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("refused: pin_invalid: ")
    assert "Traceback" not in wrong.stderr
    none = example("villager_phone.py", *db, "pickup-code", villager, order, cwd=ROOT)
    assert none.returncode == 1
    assert none.stderr.strip() == "refused: no pickup code was sent for this order"
