"""The village agent's station app at ``/station/``: a phone-first page of plain ES modules.

The files (``api/web/station/``): ``index.html``, ``app.js`` (the shell: identity,
routing by ``#/screen``, the language switch), one module per screen (``enroll.js``,
``home.js``, ``cashin.js``), ``station.css`` and the service worker ``sw.js`` (the app
shell "cache, then network"; API reads "network, then the last answer"; writes never
cached). Requests are signed in the browser with the key enrolled there; the helpers
(``dom.js``, ``money.js``, ``i18n.js`` with the ``station`` catalog) are the shared
ones (:mod:`api.web`).

Guarantees, as for ``/web/shared`` (:mod:`api.web`): only the files named in
:data:`FILES` are served (by :class:`api.web.ListedFiles`), with a
Content-Security-Policy allowing this origin only (no inline script or style),
``nosniff``, no framing, no cookies set or read; nothing from the request is reflected.

The service worker gets a manifest (:func:`shell_manifest`): every path of the shell (this
app's files, the shared modules, the currencies and the station's words in each language)
and the SHA-256 of the body served there now. It precaches each through the HTTP cache and
keeps only bodies of that digest (``sw.js``), and its cache is named after a digest of
the manifest (:func:`shell_version`): a new release replaces the old shell at the next
visit, and a file still fresh in the browser's HTTP cache (``max-age``) from the release
before is never kept as the new one's.
"""

from __future__ import annotations

import functools
import hashlib
import json

from fastapi import FastAPI
from fastapi.responses import Response

from api import web
from api.docs import SECURITY_HEADERS
from ledger.i18n import LANGUAGES

__all__ = ["FILES", "STATION_PATH", "install_station", "shell_manifest", "shell_version"]

STATION_PATH = "/station"
FILES: dict[str, str] = {
    "index.html": web.HTML,
    "station.css": web.CSS,
    **dict.fromkeys(
        (
            "app.js",
            "enroll.js",
            "home.js",
            "cashin.js",
            "cashout.js",
            "villagers.js",
            "orders.js",
            "float.js",
            "history.js",
            "queue.js",
            "sw.js",
        ),
        web.JS,
    ),
}
"""Every file served under :data:`STATION_PATH` -> its media type."""
VERSION_SLOT = b"__SHELL_VERSION__"
"""Replaced in ``sw.js`` by :func:`shell_version`."""
MANIFEST_SLOT = b"__SHELL_MANIFEST__"
"""Replaced in ``sw.js`` by :func:`shell_manifest` as a JSON object."""
WORDS_DOMAIN = "station"
_STATION = web.ListedFiles(
    "station", FILES, {**SECURITY_HEADERS, "Cache-Control": f"public, max-age={web.MAX_AGE_S}"}
)
_FRESH = ("sw.js", "index.html")
"""Always asked again (``no-cache``): the worker and the page that registers it."""


@functools.cache
def shell_manifest() -> dict[str, str]:
    """Every path the service worker precaches -> the SHA-256 (hex) of the body served
    there (before any content coding): the page, this app's files but the worker, the
    shared modules, the currencies and the station's words in every language."""
    bodies = {f"{STATION_PATH}/": _STATION.read("index.html")}
    for name in sorted(set(FILES) - {"index.html", "sw.js"}):
        bodies[f"{STATION_PATH}/{name}"] = _STATION.read(name)
    for name in sorted(web.SHARED.files):
        bodies[f"{web.SHARED_PATH}/{name}"] = web.SHARED.read(name)
    bodies[web.CURRENCIES_PATH] = web._currencies()  # the bodies those routes serve
    for language in LANGUAGES:
        path = f"{web.I18N_PATH}/{WORDS_DOMAIN}/{language}.json"
        bodies[path] = web._words(WORDS_DOMAIN, language)
    return {path: hashlib.sha256(body).hexdigest() for path, body in bodies.items()}


@functools.cache
def shell_version() -> str:
    """A digest of the manifest (so of every shell file): the service worker's cache name
    changes with it."""
    text = json.dumps(shell_manifest(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _served(name: str) -> Response:
    body = None
    if name == "sw.js":
        manifest = json.dumps(shell_manifest(), sort_keys=True, separators=(",", ":"))
        body = (
            _STATION.read(name)
            .replace(VERSION_SLOT, shell_version().encode())
            .replace(MANIFEST_SLOT, manifest.encode())
        )
    return _STATION.response(name, body=body, cache="no-cache" if name in _FRESH else None)


router = web.page_router(STATION_PATH, _served, SECURITY_HEADERS)
"""``/station`` -> ``/station/`` (the service worker's scope), the page, the listed files."""


def install_station(app: FastAPI) -> None:
    """Serve the station app on ``app``."""
    app.include_router(router)
