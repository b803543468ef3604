"""The browser's signer in real Chromium: ``/web/shared/*.js`` enrolls a device with a
code issued through the API, keeps a non-extractable key in IndexedDB across a reload,
and signs GET and POST requests the server accepts; a tampered body and a revoked key
are refused. The page is one of the served modules opened as a document on the app's
origin (so the modules' strict CSP holds), and the test code imports the modules from
there."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from playwright.sync_api import Page

from api.client import Client
from api.web import CURRENCIES_PATH, FILES, I18N_PATH, SHARED_PATH
from ledger.core.currency import MINOR_DIGITS
from ledger.flows import parties
from ledger.flows.parties import Kind
from ledger.i18n import DOMAINS, LANGUAGES, catalog
from tests.browser import ServedApp

ENROLL = """async (code) => {
  const { enroll } = await import("/web/shared/enroll.js");
  const identity = await enroll(code);
  let exported = "no";
  try {
    await crypto.subtle.exportKey("pkcs8", identity.privateKey);
    exported = "yes";
  } catch (error) {
    exported = error.name;
  }
  return { keyId: identity.keyId, deviceId: identity.deviceId, role: identity.role,
           extractable: identity.privateKey.extractable, exported };
}"""

LOADED = """async () => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const identity = await loadIdentity();
  return identity && { keyId: identity.keyId, deviceId: identity.deviceId,
                       extractable: identity.privateKey.extractable,
                       type: identity.privateKey.type };
}"""

CALLS = """async (accountId) => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const { signedFetch } = await import("/web/shared/api.js");
  const identity = await loadIdentity();
  const got = await signedFetch(identity, "GET", `/v1/devices/${identity.deviceId}`,
                                { raw: true });
  const posted = await signedFetch(identity, "POST", "/v1/accounts",
    { json: { id: accountId, currency: "KES", code: 101 }, raw: true });
  return { get: got.status, device: (await got.json()).id, post: posted.status,
           account: (await posted.json()).id };
}"""

TAMPERED = """async (accountId) => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const { signRequest } = await import("/web/shared/sign.js");
  const identity = await loadIdentity();
  const url = new URL("/v1/accounts", location.origin).href;
  const body = JSON.stringify({ id: accountId, currency: "KES", code: 101 });
  const headers = await signRequest({ method: "POST", url, body,
    headers: { "content-type": "application/json", "idempotency-key": '"t-1"' },
    keyId: identity.keyId, privateKey: identity.privateKey });
  const answer = await fetch(url, { method: "POST", headers,
                                    body: body.replace("101", "102") });
  return { status: answer.status, code: (await answer.json()).code };
}"""

AFTER_REVOKE = """async () => {
  const { loadIdentity } = await import("/web/shared/keys.js");
  const { createApi } = await import("/web/shared/api.js");
  const api = createApi(await loadIdentity());
  try {
    await api.get("/v1/devices/" + (await loadIdentity()).deviceId);
    return { refused: false };
  } catch (error) {
    return { refused: true, name: error.name, status: error.status, code: error.code,
             detail: error.detail };
  }
}"""

NO_ED25519 = """async () => {
  const original = crypto.subtle.generateKey.bind(crypto.subtle);
  crypto.subtle.generateKey = (algorithm, ...rest) =>
    (algorithm && algorithm.name === "Ed25519")
      ? Promise.reject(new DOMException("Unrecognized name.", "NotSupportedError"))
      : original(algorithm, ...rest);
  const { enroll } = await import("/web/shared/enroll.js");
  try {
    await enroll("AAAA-AAAA-AAAA-AAAA-AAAA");
    return { refused: false };
  } catch (error) {
    return { refused: true, code: error.code, message: error.message };
  }
}"""

BAD_CODE = """async () => {
  const { enroll } = await import("/web/shared/enroll.js");
  try {
    await enroll("<img src=x onerror=alert(1)>");
    return { refused: false };
  } catch (error) {
    return { refused: true, name: error.name, status: error.status, code: error.code };
  }
}"""


def operator(served_app: ServedApp) -> Client:
    made = served_app.key("operator")
    return Client.from_key_file(served_app.base_url, made["key_id"], made["path"])


def agent_code(served_app: ServedApp, boss: Client) -> tuple[str, str]:
    agent = served_app.key("agent")["principal_id"]
    parties.onboard(
        served_app.ledger, party_id=uuid.UUID(agent), kind=Kind.AGENT, name="Duka", currency="KES"
    )
    issued = boss.request("POST", "/v1/enrollments", json_body={"principal_id": agent})
    assert issued.status_code == 201, issued.text
    code: str = issued.json()["code"]
    return agent, code


def open_origin(page: Page, served_app: ServedApp) -> None:
    answer = page.goto(served_app.url(f"{SHARED_PATH}/keys.js"))
    assert answer is not None and answer.status == 200


def test_a_browser_enrolls_keeps_a_private_key_and_signs_what_the_server_accepts(
    page: Page, served_app: ServedApp, offsite_requests: list[str], page_errors: list[str]
) -> None:
    boss = operator(served_app)
    try:
        signs_and_is_locked_out(page, served_app, boss, offsite_requests, page_errors)
    finally:
        boss.close()


def signs_and_is_locked_out(
    page: Page,
    served_app: ServedApp,
    boss: Client,
    offsite_requests: list[str],
    page_errors: list[str],
) -> None:
    _, code = agent_code(served_app, boss)
    open_origin(page, served_app)
    enrolled: dict[str, Any] = page.evaluate(ENROLL, code)
    assert enrolled["role"] == "agent" and enrolled["keyId"].startswith("k_")
    assert enrolled["extractable"] is False and enrolled["exported"] == "InvalidAccessError"
    page.reload()
    loaded = page.evaluate(LOADED)
    assert loaded == {
        "keyId": enrolled["keyId"],
        "deviceId": enrolled["deviceId"],
        "extractable": False,
        "type": "private",
    }
    account = str(uuid.uuid4())
    calls = page.evaluate(CALLS, account)
    assert calls == {"get": 200, "device": enrolled["deviceId"], "post": 201, "account": account}
    tampered = page.evaluate(TAMPERED, str(uuid.uuid4()))
    assert tampered == {"status": 401, "code": "digest_mismatch"}
    revoked = boss.request("POST", f"/v1/keys/{enrolled['keyId']}/revoke")
    assert revoked.status_code == 200, revoked.text
    after = page.evaluate(AFTER_REVOKE)
    assert after["refused"] and after["name"] == "ApiProblem"
    assert (after["status"], after["code"]) == (401, "key_unknown")
    assert offsite_requests == []
    # the console reports the two refused requests (tampered, revoked), nothing else
    assert len(page_errors) == 2 and all("status of 401" in e for e in page_errors), page_errors


def test_a_browser_without_ed25519_gets_a_clear_error(page: Page, served_app: ServedApp) -> None:
    open_origin(page, served_app)
    answer = page.evaluate(NO_ED25519)
    assert answer["refused"] and answer["code"] == "webcrypto_ed25519_unavailable"
    assert "Ed25519" in answer["message"] and "Chromium 137" in answer["message"]


def test_a_wrong_code_is_an_api_problem_and_stores_nothing(
    page: Page, served_app: ServedApp
) -> None:
    open_origin(page, served_app)
    answer = page.evaluate(BAD_CODE)
    assert answer == {
        "refused": True,
        "name": "ApiProblem",
        "status": 422,
        "code": "enrollment_code_invalid",
    }
    assert page.evaluate(LOADED) is None


def test_only_the_listed_modules_are_served_with_a_strict_policy(served_app: ServedApp) -> None:
    for name in FILES:
        answer = httpx.get(served_app.url(f"{SHARED_PATH}/{name}"))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/javascript")
        assert answer.headers["x-content-type-options"] == "nosniff"
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "set-cookie" not in answer.headers
    for other in ("__init__.py", "..%2F__init__.py", "missing.js", "keys.js%00"):
        assert httpx.get(served_app.url(f"{SHARED_PATH}/{other}")).status_code == 404


def test_the_shared_documents_are_the_servers_tables_and_only_known_catalogs(
    served_app: ServedApp,
) -> None:
    """``currencies.json`` is :data:`MINOR_DIGITS`; ``/web/i18n/<domain>/<language>.json``
    is that catalog for every domain and language, with the strict headers; any other
    domain, language or name is 404 (problem+json, never HTML)."""
    exponents = httpx.get(served_app.url(CURRENCIES_PATH))
    assert exponents.json() == MINOR_DIGITS
    assert exponents.headers["content-type"] == "application/json"
    for domain in DOMAINS:
        for language in LANGUAGES:
            answer = httpx.get(served_app.url(f"{I18N_PATH}/{domain}/{language}.json"))
            assert answer.status_code == 200, (domain, language)
            assert answer.json() == catalog(language, domain)
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "default-src 'none'" in answer.headers["content-security-policy"]
            assert "set-cookie" not in answer.headers
    markup = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    long = "station/" + "e" * 5000 + ".json"
    for bad in ("email/en.json", "station/fr.json", "station/en", "station/en.js",
                "..%2Fstation/en.json", "station/..%2Fen.json", f"{markup}/en.json",
                f"station/{markup}.json", long, "station"):  # fmt: skip
        answer = httpx.get(served_app.url(f"{I18N_PATH}/{bad}"))
        assert answer.status_code == 404, bad
        # the app's problem handler names the path as ``instance``: JSON, never a page
        assert answer.headers["content-type"] == "application/problem+json"
