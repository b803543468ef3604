"""``/docs``: the human API documentation, served by the service from installed files.

Over HTTP: no signature needed, a strict Content-Security-Policy and the usual headers,
only same-origin assets, the signing guide and the three examples as they are in
``examples/``, nothing reflected, no 500 for odd paths. ``examples/sign.sh`` (openssl +
curl) is run against the served app with keys from ``vledger keys create``. In Debian's
chromium, with every request not to the served app cut off: the operations render from
``/openapi.json`` and the page tries to reach nothing else, with no console error (a
CSP violation would be one).
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
import urllib.parse
import uuid
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from api.docs import ASSETS, CONTENT_SECURITY_POLICY
from tests.browser import ServedApp

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHOWN_EXAMPLES = ("storefront.py", "sign_without_client.py", "sign.sh")


def get(served_app: ServedApp, path: str) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        return http.get(served_app.url(path))


class _Links(HTMLParser):
    """Every URL the page's markup loads or links to."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.linked: list[str] = []
        self.inline_scripts = 0
        self.inline_handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.inline_handlers += [name for name in found if name.startswith("on")]
        if tag == "script":
            if found.get("src"):
                self.loaded.append(str(found["src"]))
            else:
                self.inline_scripts += 1
        elif tag == "link" and found.get("href"):
            self.loaded.append(str(found["href"]))
        elif tag == "a" and found.get("href"):
            self.linked.append(str(found["href"]))
        elif tag in {"img", "iframe", "source"} and found.get("src"):
            self.loaded.append(str(found["src"]))


def test_docs_and_the_openapi_document_need_no_signature(served_app: ServedApp) -> None:
    page = get(served_app, "/docs")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    document = get(served_app, "/openapi.json")
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.1")
    # while the API itself refuses an unsigned request
    unsigned = get(served_app, "/v1/accounts")
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "signature_missing"


def test_fastapi_cdn_pages_stay_off(served_app: ServedApp) -> None:
    for path in ("/redoc", "/docs/oauth2-redirect"):
        answer = get(served_app, path)
        assert answer.status_code == 404, path
        assert "cdn" not in answer.text.lower()


def test_docs_sends_a_strict_content_security_policy(served_app: ServedApp) -> None:
    headers = get(served_app, "/docs").headers
    policy = headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    for name, sources in directives.items():
        for source in sources.split():
            assert source in {"'self'", "'none'", "data:"}, (name, source)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-cache"


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_every_asset_is_served_from_here_with_its_type(served_app: ServedApp, name: str) -> None:
    answer = get(served_app, f"/docs/assets/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == ASSETS[name][1].split(";")[0]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert len(answer.content) == len(ASSETS[name][0].read_bytes())


def test_swagger_ui_is_version_5_which_renders_openapi_3_1(served_app: ServedApp) -> None:
    bundle = get(served_app, "/docs/assets/swagger-ui-bundle.js").text
    assert "isOAS31" in bundle  # Swagger UI 4 has no OpenAPI 3.1 support at all


def test_the_page_loads_nothing_from_another_origin(served_app: ServedApp) -> None:
    links = _Links()
    links.feed(get(served_app, "/docs").text)
    assert len(links.loaded) == 5
    for url in links.loaded:
        assert url.startswith("/docs/assets/"), url
    for url in links.linked:
        assert url.startswith(("#", "/")) and not url.startswith("//"), url
    assert links.inline_scripts == 0
    assert links.inline_handlers == []


def test_the_signing_guide_and_three_runnable_examples_are_on_the_page(
    served_app: ServedApp,
) -> None:
    text = get(served_app, "/docs").text
    assert '<section id="signing"' in text
    for words in (
        "RFC 9421",
        "Signature-Input: vledger=",
        "&#34;@signature-params&#34;",
        "Content-Digest",
        "Idempotency-Key",
        "vledger keys create",
        "tag=&#34;vledger&#34;",
    ):
        assert words in text, words
    blocks = [
        html.unescape(b) for b in re.findall(r"<pre[^>]*><code>(.*?)</code></pre>", text, re.S)
    ]
    for name in SHOWN_EXAMPLES:
        shown = (EXAMPLES / name).read_text(encoding="utf-8")
        assert shown in blocks, f"examples/{name} is not shown as it is"
    assert any("from api.client import" in block for block in blocks)


def test_query_markup_is_reflected_nowhere(served_app: ServedApp) -> None:
    markup = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    plain = get(served_app, "/docs").text
    for path in ("/docs?q=", "/docs?openapi_url=", "/docs#"):
        text = get(served_app, path + urllib.parse.quote(markup)).text
        assert "alert" not in text
        assert text == plain
    answer = get(served_app, "/docs/assets/" + urllib.parse.quote(markup))
    assert answer.status_code == 404
    # the problem names the path only inside JSON, which no browser renders as a page
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "not_found"


@pytest.mark.parametrize("length", [1_000, 8_000, 60_000])
def test_an_oversized_path_is_no_server_error(served_app: ServedApp, length: int) -> None:
    for path in ("/docs/assets/" + "a" * length, "/docs/" + "b" * length, "/docs?" + "c" * length):
        try:
            status = get(served_app, path).status_code
        except httpx.RemoteProtocolError:
            continue  # the server closed the connection on a request line that long
        assert status < 500, (path[:30], status)
        assert status != 200 or path.startswith("/docs?"), path[:30]


def vledger_key(served_app: ServedApp, tmp_path: Path, role: str, alg: str) -> dict[str, str]:
    """A key made as an operator makes one: ``vledger keys create``."""
    out = tmp_path / f"{uuid.uuid4().hex}.key"
    done = subprocess.run(
        [sys.executable, "-m", "vledger", "keys", "create", "--role", role, "--name",
         f"docs-{uuid.uuid4().hex[:8]}", "--alg", alg, "--out", str(out),
         "--database", served_app.db_url],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout), "path": str(out)}


def sign_sh(*args: str) -> tuple[int, dict[str, object]]:
    """Run ``examples/sign.sh`` with bash: (HTTP status, JSON answer)."""
    done = subprocess.run(
        ["bash", str(EXAMPLES / "sign.sh"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body, status = done.stdout.rstrip("\n").rsplit("\n", 1)
    return int(status), json.loads(body)


@pytest.mark.parametrize("alg", ["ed25519", "hmac-sha256"])
def test_the_shell_helper_signs_a_get_and_a_post_that_the_service_accepts(
    served_app: ServedApp, tmp_path: Path, alg: str
) -> None:
    key = vledger_key(served_app, tmp_path, "storefront", alg)
    accounts = served_app.url("/v1/accounts")
    status, listed = sign_sh("GET", accounts, key["key_id"], key["path"])
    assert (status, listed) == (200, {"data": [], "has_more": False})
    account_id = str(uuid.uuid4())
    body = tmp_path / "account.json"
    body.write_text(json.dumps({"id": account_id, "currency": "KES", "code": 101}))
    status, created = sign_sh("POST", accounts, key["key_id"], key["path"], str(body))
    assert status == 201, created
    assert (created["id"], created["currency"], created["code"]) == (account_id, "KES", 101)
    status, got = sign_sh("GET", f"{accounts}/{account_id}", key["key_id"], key["path"])
    assert (status, got["id"]) == (200, account_id)


def test_the_shell_helper_with_another_key_than_its_key_id_is_refused(
    served_app: ServedApp, tmp_path: Path
) -> None:
    key = vledger_key(served_app, tmp_path, "storefront", "ed25519")
    other = vledger_key(served_app, tmp_path, "storefront", "ed25519")
    status, problem = sign_sh("GET", served_app.url("/v1/accounts"), key["key_id"], other["path"])
    assert (status, problem["code"]) == (401, "signature_invalid")


def test_the_docs_render_in_chromium_on_a_closed_network(
    served_app: ServedApp, page: Page, offsite_requests: list[str], page_errors: list[str]
) -> None:
    page.goto(served_app.url("/docs"))
    orders = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/orders"]')
    expect(orders).to_be_visible()
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 50
    expect(page.get_by_role("heading", name="Signing a request")).to_be_visible()
    for anchor in ("#example-client", "#example-python", "#example-shell"):
        expect(page.locator(anchor)).to_be_visible()
    expect(page.locator("pre code", has_text="openssl pkeyutl -sign")).to_be_visible()
    assert offsite_requests == []
    assert page_errors == []


def test_an_operation_opens_without_try_it_out(
    served_app: ServedApp, page: Page, offsite_requests: list[str], page_errors: list[str]
) -> None:
    page.goto(served_app.url("/docs"))
    page.locator('.opblock-post .opblock-summary-path[data-path="/v1/orders"]').click()
    opened = page.locator(".opblock-post.is-open")
    expect(opened).to_be_visible()
    expect(opened.locator(".responses-wrapper")).to_contain_text("201")
    assert opened.locator(".try-out__btn").count() == 0
    assert offsite_requests == []
    assert page_errors == []


def test_the_closed_network_guard_sees_an_offsite_request(
    served_app: ServedApp, page: Page, offsite_requests: list[str]
) -> None:
    """The guard the tests above rely on records (and stops) what leaves the served app."""
    with pytest.raises(PlaywrightError):
        page.goto("http://example.invalid/x")
    assert offsite_requests == ["http://example.invalid/x"]
