"""The village agent's station app at ``/station/``: a phone-first page of plain ES modules.

The files (``api/web/station/``): ``index.html``, ``app.js`` (the shell: identity,
routing by ``#/screen``, the language switch), one module per screen (``enroll.js``,
``home.js``, ``cashin.js``), small helpers (``dom.js``: elements with ``textContent``
only; ``money.js``: minor units to ``KES 1,250.00`` with BigInt, the rule of
:mod:`ledger.money`; ``i18n.js``: the ``station`` catalog's words), ``station.css`` and
the service worker ``sw.js`` (the app shell "cache, then network"; API reads "network,
then the last answer"; writes never cached). Requests are signed in the browser with
the key enrolled there (``/web/shared/*.js``).

Guarantees, as for ``/web/shared`` (:mod:`api.web`): only the files named in
:data:`FILES` are served, with a Content-Security-Policy allowing this origin only (no
inline script or style), ``nosniff``, no framing, no cookies set or read; nothing from
the request is reflected. Two JSON documents are served from the server's own tables:
the ISO 4217 exponents (:data:`CURRENCIES_PATH`) and the app's words in a language
(``/station/i18n/<language>.json``, the ``station`` gettext domain).

The service worker's cache is named after a digest of every shell file, so a new
release replaces the old shell at the next visit.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from api.docs import SECURITY_HEADERS
from ledger.core.currency import MINOR_DIGITS
from ledger.i18n import LANGUAGES, catalog

__all__ = ["CURRENCIES_PATH", "FILES", "STATION_PATH", "install_station", "shell_version"]

STATION_PATH = "/station"
CURRENCIES_PATH = STATION_PATH + "/currencies.json"
I18N_DOMAIN = "station"
MAX_AGE_S = 300
_JS = "text/javascript; charset=utf-8"
_JSON = "application/json"
FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "station.css": "text/css; charset=utf-8",
    "app.js": _JS,
    "dom.js": _JS,
    "money.js": _JS,
    "i18n.js": _JS,
    "enroll.js": _JS,
    "home.js": _JS,
    "cashin.js": _JS,
    "sw.js": _JS,
}
"""Every file served under :data:`STATION_PATH` -> its media type."""
VERSION_SLOT = b"__SHELL_VERSION__"
"""Replaced in ``sw.js`` by :func:`shell_version`."""
_DIR = resources.files("api") / "web" / "station"

router = APIRouter(include_in_schema=False)


@functools.cache
def _raw(name: str) -> bytes:
    return (_DIR / name).read_bytes()


@functools.cache
def shell_version() -> str:
    """A digest of every shell file: the service worker's cache name changes with it."""
    digest = hashlib.sha256()
    for name in sorted(FILES):
        digest.update(name.encode() + b"\0" + _raw(name))
    return digest.hexdigest()[:16]


@functools.cache
def _file(name: str) -> bytes:
    raw = _raw(name)
    return raw.replace(VERSION_SLOT, shell_version().encode()) if name == "sw.js" else raw


def _headers(cache: str) -> dict[str, str]:
    return {**SECURITY_HEADERS, "Cache-Control": cache}


def _served(name: str) -> Response:
    cache = "no-cache" if name in ("sw.js", "index.html") else f"public, max-age={MAX_AGE_S}"
    return Response(_file(name), media_type=FILES[name], headers=_headers(cache))


@router.get(STATION_PATH)
def station_root() -> Response:
    """``/station`` -> ``/station/`` (the service worker's scope)."""
    return RedirectResponse(STATION_PATH + "/", status_code=308, headers=SECURITY_HEADERS)


@router.get(STATION_PATH + "/")
def station_index() -> Response:
    return _served("index.html")


@functools.cache
def _currencies() -> bytes:
    return json.dumps(dict(sorted(MINOR_DIGITS.items())), separators=(",", ":")).encode()


@router.get(CURRENCIES_PATH)
def currencies() -> Response:
    """ISO 4217 code -> minor-unit exponent, the table :mod:`ledger.money` formats with."""
    return Response(
        _currencies(), media_type=_JSON, headers=_headers(f"public, max-age={MAX_AGE_S}")
    )


@functools.cache
def _words(language: str) -> bytes:
    return json.dumps(catalog(language, I18N_DOMAIN), ensure_ascii=False).encode()


@router.get(STATION_PATH + "/i18n/{name}")
def words(name: str) -> Response:
    """``en.json`` or ``sw.json``: msgid -> text of the ``station`` catalog; else 404."""
    language = name.removesuffix(".json")
    if not name.endswith(".json") or language not in LANGUAGES:
        raise HTTPException(status_code=404, detail="no such language")
    return Response(
        _words(language), media_type=_JSON, headers=_headers(f"public, max-age={MAX_AGE_S}")
    )


@router.get(STATION_PATH + "/{name}")
def station_file(name: str) -> Response:
    """One of :data:`FILES`; any other name is 404."""
    if name not in FILES:
        raise HTTPException(status_code=404, detail="no such file")
    return _served(name)


def install_station(app: FastAPI) -> None:
    """Serve the station app on ``app``."""
    app.include_router(router)
