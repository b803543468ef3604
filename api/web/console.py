"""The back office console at ``/console/``: auditors (read-only) and operators in a browser.

The page is plain ES modules served by this process (no build step): ``index.html``,
``app.js`` (the shell: identity, routing by ``#/page``, the menu), one module per page
(``enroll.js``, ``overview.js``, ``runs.js``, ``run.js``) and small helpers (``dom.js``:
elements with ``textContent`` only; ``money.js``: minor units to ``KES 1,250.00`` with
BigInt; ``i18n.js``: the ``console`` catalog's words), ``console.css``. Requests are
signed in the browser with the key enrolled there (``/web/shared/*.js``).

Guarantees, as for ``/web/shared`` (:mod:`api.web`): only the files named in
:data:`FILES` are served, with a Content-Security-Policy allowing this origin only (no
inline script or style, no ``data:``), ``nosniff``, no framing, no cookies set or read;
nothing from the request is reflected. Two JSON documents the page needs are served
from the server's own tables: the ISO 4217 exponents (:data:`CURRENCIES_PATH`, the one
table :mod:`ledger.money` uses) and the console's words in a language
(``/console/i18n/<language>.json``, the ``console`` gettext domain).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from api.docs import SECURITY_HEADERS
from ledger.core.currency import MINOR_DIGITS
from ledger.i18n import LANGUAGES, catalog

__all__ = ["CONSOLE_CSP", "CONSOLE_PATH", "CURRENCIES_PATH", "FILES", "install_console"]

CONSOLE_PATH = "/console"
CURRENCIES_PATH = CONSOLE_PATH + "/currencies.json"
I18N_DOMAIN = "console"
_JS = "text/javascript; charset=utf-8"
_JSON = "application/json"
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "app.js": _JS,
    "dom.js": _JS,
    "money.js": _JS,
    "i18n.js": _JS,
    "enroll.js": _JS,
    "overview.js": _JS,
    "runs.js": _JS,
    "run.js": _JS,
}
"""Every file served under ``/console/``, with its content type."""
CONSOLE_CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""This origin only: no inline script or style, no CDN, no framing."""
HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": CONSOLE_CSP, "Cache-Control": "no-cache"}
_FOLDER = resources.files("api") / "web" / "console"

router = APIRouter(include_in_schema=False)


@functools.cache
def _file(name: str) -> bytes:
    return (_FOLDER / name).read_bytes()


@functools.cache
def _words(language: str) -> bytes:
    return json.dumps(catalog(language, I18N_DOMAIN), sort_keys=True).encode()


@router.get(CONSOLE_PATH)
def console_root() -> Response:
    """``/console`` is ``/console/`` (relative module paths need the slash)."""
    return RedirectResponse(CONSOLE_PATH + "/", status_code=308, headers=HEADERS)


@router.get(CONSOLE_PATH + "/")
def console_index() -> Response:
    return Response(_file("index.html"), media_type=FILES["index.html"], headers=HEADERS)


@router.get(CURRENCIES_PATH)
def console_currencies() -> Response:
    """``{"KES": 2, "UGX": 0, ...}``: the ISO 4217 exponents :mod:`ledger.money` uses."""
    body = json.dumps(MINOR_DIGITS, sort_keys=True).encode()
    return Response(body, media_type=_JSON, headers=HEADERS)


@router.get(CONSOLE_PATH + "/i18n/{language}.json")
def console_words(language: str) -> Response:
    """The ``console`` catalog of one of :data:`ledger.i18n.LANGUAGES`; else 404."""
    if language not in LANGUAGES:
        raise HTTPException(status_code=404, detail="no such language")
    return Response(_words(language), media_type=_JSON, headers=HEADERS)


@router.get(CONSOLE_PATH + "/{name}")
def console_file(name: str) -> Response:
    """One of :data:`FILES`; any other name is 404."""
    if name not in FILES:
        raise HTTPException(status_code=404, detail="no such console file")
    return Response(_file(name), media_type=FILES[name], headers=HEADERS)


def install_console(app: FastAPI) -> None:
    """Serve the console on ``app``."""
    app.include_router(router)
