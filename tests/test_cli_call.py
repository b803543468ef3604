"""``vledger call``: one signed request from the shell, against a served API on SQLite and
PostgreSQL (``tests/test_api_harness.py``'s server, one per engine). A POST replayed with
its Idempotency-Key acts once; a GET and ``--pick``; ``whoami``; a refusal (wrong role,
markup in the name, a revoked key) is the problem's status, code and detail on stderr and
exit 1, and moves nothing; wrong usage and a missing or broken key file are one line and
exit 2; no server is exit 1. Run in process (``vledger.cli.main``) and once as the
installed ``vledger`` command."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.test_api_harness import Harness, api, api_server
from vledger.cli import main

__all__ = ["api", "api_server"]  # the fixtures, used by name

VLEDGER = str(Path(sys.executable).with_name("vledger"))
RUN_TIMEOUT_S = 60
MARKUP = "<script>alert(1)</script>"
TOP_UP_MINOR = 1_000


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["call", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def key_files(api: Harness, role: str, folder: Path) -> tuple[str, dict[str, str]]:
    """A new principal's key as ``vledger keys create`` leaves it: ``KEY.pem`` and
    ``KEY.json``; answers ``KEY`` and what was printed."""
    made = api.key(role)
    key = folder / f"{role}-{uuid.uuid4().hex[:6]}"
    Path(made["path"]).rename(key.with_suffix(".pem"))
    printed = {name: made[name] for name in ("key_id", "principal_id", "role")}
    key.with_suffix(".json").write_text(json.dumps(printed))
    return str(key), printed


def agent_of(api: Harness, folder: Path) -> tuple[str, str]:
    """An onboarded agent with no float: its KEY and party id."""
    key, made = key_files(api, "agent", folder)
    party = {"id": made["principal_id"], "kind": "agent", "name": "Duka", "currency": "KES"}
    api.client("operator").call("POST", "/v1/parties", json_body=party)
    return key, made["principal_id"]


def assert_one_line(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_whoami_and_a_get_with_pick(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, agent = agent_of(api, tmp_path)
    assert run(capsys, key, "whoami") == (0, agent + "\n", "")
    status, out, _ = run(capsys, key, "whoami", "--pick", "key_id")
    assert status == 0 and out.startswith("k")
    base = ("--base", api.base_url)
    status, out, err = run(capsys, key, "GET", f"/v1/parties/{agent}", *base)
    assert (status, err) == (0, "")
    assert json.loads(out)["kind"] == "agent"
    assert run(capsys, key, "GET", f"/v1/parties/{agent}", "--pick", "name", *base) == (
        0,
        "Duka\n",
        "",
    )


def test_a_post_replayed_with_its_idempotency_key_acts_once(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _agent_key, agent = agent_of(api, tmp_path)
    operator, _ = key_files(api, "operator", tmp_path)
    top_up = (f"id={uuid.uuid4()}", f"amount_minor:={TOP_UP_MINOR}", "provider=BANK")
    path = f"/v1/agents/{agent}/float-topups"
    again = ("--idempotency-key", str(uuid.uuid4()), "--base", api.base_url)
    first = run(capsys, operator, "POST", path, *top_up, *again)
    assert first[0] == 0, first
    assert json.loads(first[1])["amount_minor"] == TOP_UP_MINOR
    assert run(capsys, operator, "POST", path, *top_up, *again) == first  # the same answer
    other = (top_up[0], f"amount_minor:={TOP_UP_MINOR + 1}", "provider=BANK")
    status, out, err = run(capsys, operator, "POST", path, *other, *again)
    assert (status, out) == (1, "")
    assert err.startswith("refused: 422 idempotency_key_reused: ")
    assert_one_line(err)
    float_now = api.client("operator").call("GET", f"/v1/agents/{agent}/float")
    assert float_now["balance_minor"] == TOP_UP_MINOR  # once, not twice or three times


def test_a_refusal_prints_the_problem_and_moves_nothing(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop, made = key_files(api, "storefront", tmp_path)
    me = made["principal_id"]
    party = (f"id={me}", "kind=storefront", f"name={MARKUP}", "currency=KES")
    base = ("--base", api.base_url)
    status, out, err = run(capsys, shop, "POST", "/v1/parties", *party, *base)
    assert (status, out) == (1, "")
    assert err.startswith("refused: 403 ")
    assert MARKUP not in err  # nothing of the request is reflected
    assert_one_line(err)
    status, _, err = run(capsys, shop, "GET", f"/v1/parties/{me}", *base)
    assert status == 1 and err.startswith("refused: 404 party_not_found: ")  # not onboarded


def test_a_revoked_key_is_refused(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, agent = agent_of(api, tmp_path)
    made = json.loads(Path(key + ".json").read_text())
    api.client("operator").revoke_key(made["key_id"])
    status, out, err = run(capsys, key, "GET", f"/v1/parties/{agent}", "--base", api.base_url)
    assert (status, out) == (1, "")
    assert err.startswith("refused: 401 ")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        ((), "the following arguments are required"),
        (("DELETE", "/v1/orders"), "invalid choice: 'DELETE'"),
        (("GET",), "PATH must start with /"),
        (("GET", "v1/orders"), "PATH must start with /"),
        (("POST", "/v1/orders", "amount_minor:=12,5"), "a FIELD is malformed"),
        (("POST", "/v1/orders", "just-a-word"), "a FIELD is malformed"),
        (("GET", "/v1/orders", "state=open"), "a GET has no body"),
        (("GET", "/v1/orders", "--idempotency-key", "k"), "only a POST takes"),
        (("GET", "/v1/orders", "--base", "ftp://x"), "--base must be an http"),
        (("whoami", "--pick", "secret"), "has no field 'secret'"),
        (("GET", "/v1/orders", "--colour", "red"), "unrecognized arguments: --colour"),
    ],
)
def test_wrong_usage_is_one_line_and_exit_2(
    api: Harness,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    said: str,
) -> None:
    key, _ = key_files(api, "storefront", tmp_path)
    status, out, err = run(capsys, *((key, *argv) if argv else ()))
    assert (status, out) == (2, "")
    assert err.startswith("vledger call") and said in err, err
    assert_one_line(err)


def test_no_such_field_in_the_answer_is_exit_2(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, agent = agent_of(api, tmp_path)
    base = ("--base", api.base_url)
    for pick in ("colour", "name.0", "accounts.9"):
        status, out, err = run(capsys, key, "GET", f"/v1/parties/{agent}", "--pick", pick, *base)
        assert (status, out) == (2, "")
        assert err == f"vledger call: the answer has no field {pick!r}\n"


def test_a_missing_or_broken_key_file_is_exit_2(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nobody = str(tmp_path / "nobody")
    status, out, err = run(capsys, nobody, "GET", "/v1/orders")
    assert (status, out) == (2, "")
    assert err.startswith(f"vledger call: {nobody}.json is not what vledger keys create printed")
    assert_one_line(err)
    key, _ = key_files(api, "storefront", tmp_path)
    pem = Path(key + ".pem")
    pem.write_text("not a key\n")
    status, _, err = run(capsys, key, "GET", "/v1/orders", "--base", api.base_url)
    assert status == 2 and err.startswith(f"vledger call: {key}.pem is not a key")
    assert_one_line(err)
    pem.unlink()
    status, _, err = run(capsys, key, "whoami")
    assert status == 2 and err == f"vledger call: {key}.pem and {key}.json must both be there\n"


def test_no_server_is_exit_1(
    api: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, _ = key_files(api, "storefront", tmp_path)
    status, out, err = run(capsys, key, "GET", "/v1/orders", "--base", "http://127.0.0.1:9")
    assert (status, out) == (1, "")
    assert err.startswith("no answer from http://127.0.0.1:9: ")
    assert_one_line(err)


def test_the_installed_command(api: Harness, tmp_path: Path) -> None:
    key, agent = agent_of(api, tmp_path)

    def vledger(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [VLEDGER, "call", key, *argv],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )

    got = vledger("GET", f"/v1/parties/{agent}", "--pick", "id", "--base", api.base_url)
    assert (got.returncode, got.stdout, got.stderr) == (0, agent + "\n", "")
    wrong = vledger("GET")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr == "vledger call: PATH must start with /, e.g. /v1/orders\n"
