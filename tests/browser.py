"""Browser tests' fixtures, a pytest plugin (registered in ``tests/conftest.py``).

- ``served_app`` (one per test module): the real application, migrated on a fresh SQLite
  file, served by uvicorn on 127.0.0.1 and a free port in a thread of this process
  (:class:`api.local_server.ServerThread`, as ``vledger demo`` serves it); ``key(role)``
  makes a key with ``api.keys.create_key`` (what ``vledger keys create`` does).
- ``browser`` (one per session): Debian's chromium (``/usr/bin/chromium``, or
  ``VLEDGER_CHROMIUM``) driven by Playwright; never a browser downloaded at test time.
  Without it the test fails, saying how to install it (``.ci/run`` does).
- ``page`` (one per test): a fresh browser context and page on which every request to
  anything but ``served_app`` is aborted and recorded in ``offsite_requests``, as on a
  closed network; the page's console errors and uncaught exceptions are recorded in
  ``page_errors``. A test asserts on both lists itself.

A module whose page needs another app or other settings defines its own ``served_app``
fixture (returning a :class:`ServedApp`); ``page`` then guards that one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, sync_playwright

from api.app import create_app
from api.keys import create_key
from api.local_server import ServerThread
from api.settings import Settings
from ledger import Ledger, open_ledger
from webhooks import WebhookSettings

CHROMIUM_DEFAULT = "/usr/bin/chromium"
PAGE_TIMEOUT_MS = 15_000
"""How long a page action or expectation waits before failing."""

BROWSER_TEST_SETTINGS = Settings(
    rate_limit_per_s=10_000.0,
    rate_limit_burst=10_000,
    sweep_interval_s=None,
    seal_interval_s=None,
    reconcile_interval_s=None,
)
"""No background threads and no rate limit: a page test is about the page."""


@dataclass
class ServedApp:
    """The running service of a test module."""

    base_url: str
    db_url: str
    ledger: Ledger
    key_dir: Path

    def key(self, role: str, alg: str = "ed25519") -> dict[str, str]:
        """A new principal with one key (``key_id``, ``principal_id``, ``role``) whose
        private half is in the file ``path``."""
        path = self.key_dir / f"{uuid.uuid4().hex}.key"
        name = f"{role}-{uuid.uuid4().hex[:8]}"
        made = create_key(self.db_url, role, name, alg, path, setup_rules=False)
        return {**made, "path": str(path)}

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="module")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    tmp = tmp_path_factory.mktemp("served")
    db_url = f"sqlite:///{tmp}/ledger.db"
    led = open_ledger(db_url, migrate=True)
    app = create_app(
        db_url,
        settings=BROWSER_TEST_SETTINGS,
        webhook_settings=WebhookSettings(worker_enabled=False),
    )
    key_dir = tmp / "keys"
    key_dir.mkdir()
    server = ServerThread(app).start()
    try:
        yield ServedApp(server.base_url, db_url, led, key_dir)
    finally:
        server.stop()
        led.close()


def chromium_path() -> str:
    return os.environ.get("VLEDGER_CHROMIUM", CHROMIUM_DEFAULT)


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Per module, not per session: Playwright's sync API keeps an asyncio loop running in
    the main thread while it is open, and a later test that calls ``asyncio.run`` (serving
    an app, ``vledger serve``) would find it there."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    executable = chromium_path()
    if not os.access(executable, os.X_OK):
        pytest.fail(
            f"no chromium at {executable}: install Debian's (apt-get install chromium;"
            " .ci/run does) or set VLEDGER_CHROMIUM"
        )
    launched = playwright_driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def offsite_requests() -> list[str]:
    """URLs the page tried to fetch from anywhere but the served app (all aborted)."""
    return []


@pytest.fixture
def page_errors() -> list[str]:
    """The page's console errors and uncaught exceptions, as text."""
    return []


@pytest.fixture
def page(
    browser: Browser,
    served_app: ServedApp,
    offsite_requests: list[str],
    page_errors: list[str],
) -> Iterator[Page]:
    context = browser.new_context()
    origin = served_app.base_url + "/"

    def closed_network(route: Route) -> None:
        url = route.request.url
        if url.startswith(origin):
            route.continue_()
        else:
            offsite_requests.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", closed_network)
    opened = context.new_page()
    opened.set_default_timeout(PAGE_TIMEOUT_MS)
    opened.on("console", lambda m: page_errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda exc: page_errors.append(f"uncaught: {exc}"))
    try:
        yield opened
    finally:
        context.close()
