"""The service's private key is kept private (issue 13): a key file that its group or
other users may read or write, or a folder they may write, is refused by everything
that loads it (``vledger seal`` exits 2 with one line; the app refuses to start);
``*.db.keys/`` is ignored by git; ``vledger keys create`` writes 0600 and says where."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from api.app import create_app
from ledger import Ledger, open_ledger
from reconciliation.seal import seal_status
from reconciliation.service_key import (
    ServiceKeyError,
    ServiceKeyExposed,
    check_key_permissions,
    load_service_key,
)
from tests.test_api_harness import FAST_TEST_SETTINGS
from vledger.cli import main

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The loosest umask: what the code creates must be private by itself."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.usefixtures("umask_zero")
def test_a_generated_key_is_0600_in_a_0700_folder_even_with_umask_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/village.db"
    made = load_service_key(url)
    assert made.path == tmp_path / "village.db.keys" / "service-key.pem"
    assert (mode(made.path), mode(made.path.parent)) == (0o600, 0o700)


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path: Path, loose: int) -> None:
    made = load_service_key("sqlite:///x.db", tmp_path / "keys" / "service-key.pem")
    made.path.chmod(loose)
    with pytest.raises(ServiceKeyExposed) as refused:
        load_service_key("sqlite:///x.db", made.path)
    text = str(refused.value)
    assert f"has mode {loose:04o}" in text and f"chmod 600 {made.path}" in text
    assert "\n" not in text
    made.path.chmod(0o400)  # read-only for its owner is fine
    load_service_key("sqlite:///x.db", made.path)


@pytest.mark.parametrize("loose", [0o777, 0o770, 0o722, 0o1777])
def test_a_key_folder_others_may_write_is_refused(tmp_path: Path, loose: int) -> None:
    made = load_service_key("sqlite:///x.db", tmp_path / "keys" / "service-key.pem")
    made.path.parent.chmod(loose)
    try:
        with pytest.raises(ServiceKeyExposed, match="chmod go-w"):
            load_service_key("sqlite:///x.db", made.path)
    finally:
        made.path.parent.chmod(0o700)
    made.path.parent.chmod(0o755)  # others may list it, not write to it
    check_key_permissions(made.path)


def test_a_world_readable_junk_file_is_reported_as_junk_not_as_exposed(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key\n")
    junk.chmod(0o644)
    with pytest.raises(ServiceKeyError) as refused:
        load_service_key("sqlite:///x.db", junk)
    assert not isinstance(refused.value, ServiceKeyExposed)
    assert "not an unencrypted PEM private key" in str(refused.value)


def test_vledger_seal_refuses_an_exposed_key_with_one_line(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = load_service_key(ledger.url, tmp_path / "keys" / "service-key.pem")
    made.path.chmod(0o644)
    assert main(["seal", "--key", str(made.path), "--database", ledger.url]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"vledger seal: key file {made.path} has mode 0644")
    assert seal_status(ledger).blocks == 0
    made.path.chmod(0o600)
    assert main(["seal", "--key", str(made.path), "--database", ledger.url]) == 0


def test_the_app_refuses_to_start_with_an_exposed_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    open_ledger(url, migrate=True).close()
    made = load_service_key(url)
    made.path.chmod(0o640)
    settings = dataclasses.replace(
        FAST_TEST_SETTINGS, seal_interval_s=3600.0, service_key_path=str(made.path)
    )
    with pytest.raises(ServiceKeyExposed, match="has mode 0640"):
        create_app(url, settings=settings)  # vledger serve: before uvicorn starts
    made.path.chmod(0o600)
    assert asyncio.run(start_and_stop(create_app(url, settings=settings))) == "served"
    app = create_app(url, settings=settings)
    made.path.chmod(0o604)  # exposed between building the app and serving it
    with pytest.raises(ServiceKeyExposed, match="has mode 0604"):
        asyncio.run(start_and_stop(app))


def test_vledger_serve_refuses_an_exposed_key_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/served.db"
    open_ledger(url, migrate=True).close()
    made = load_service_key(url)
    made.path.chmod(0o644)
    # An address no socket can bind: were the key not refused, serving would fail fast.
    assert main(["serve", "--host", "256.0.0.1", "--database", url]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"vledger serve: key file {made.path} has mode 0644")


async def start_and_stop(app: FastAPI) -> str:
    """Run the app's startup and shutdown (what uvicorn does around serving)."""
    async with app.router.lifespan_context(app):
        return "served"


def test_git_ignores_the_key_folder_beside_a_database() -> None:
    for path in ("village.db.keys/service-key.pem", "data/shop.db.keys/service-key.pem"):
        found = subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False
        )
        assert found.returncode == 0, path
    kept = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "reconciliation/service_key.py"],
        cwd=REPO,
        check=False,
    )
    assert kept.returncode == 1


@pytest.mark.usefixtures("umask_zero")
def test_keys_create_writes_0600_and_says_where_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    assert main(["migrate", "--database", url]) == 0
    capsys.readouterr()
    out = tmp_path / "shop.pem"
    argv = ["keys", "create", "--role", "storefront", "--name", "<b>Shop</b>", "--out", str(out)]
    assert main([*argv, "--database", url]) == 0
    printed = capsys.readouterr()
    created = json.loads(printed.out)  # stdout stays one JSON object
    assert set(created) == {"key_id", "principal_id", "role"}
    assert mode(out) == 0o600
    [said] = printed.err.strip().splitlines()
    assert said.startswith(f"vledger keys: the private key of key {created['key_id']} is in {out}")
    assert "mode 0600" in said

    # Refused (an agent cannot have an HMAC key): no file is left behind.
    hmac = tmp_path / "agent.key"
    agent = ["keys", "create", "--role", "agent", "--name", "a", "--alg", "hmac-sha256"]
    assert main([*agent, "--out", str(hmac), "--database", url]) == 2
    assert not hmac.exists()
