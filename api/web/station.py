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

The service worker's cache is named after a digest of every shell file (the shared
modules too), so a new
release replaces the old shell at the next visit.
"""

from __future__ import annotations

import functools
import hashlib

from fastapi import FastAPI
from fastapi.responses import Response

from api import web
from api.docs import SECURITY_HEADERS

__all__ = ["FILES", "STATION_PATH", "install_station", "shell_version"]

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
_STATION = web.ListedFiles(
    "station", FILES, {**SECURITY_HEADERS, "Cache-Control": f"public, max-age={web.MAX_AGE_S}"}
)
_FRESH = ("sw.js", "index.html")
"""Always asked again (``no-cache``): the worker and the page that registers it."""


@functools.cache
def shell_version() -> str:
    """A digest of every shell file (the shared modules too): the service worker's cache
    name changes with it."""
    digest = hashlib.sha256()
    for listed in (_STATION, web.SHARED):
        for name in sorted(listed.files):
            digest.update(f"{listed.folder}/{name}".encode() + b"\0" + listed.read(name))
    return digest.hexdigest()[:16]


def _served(name: str) -> Response:
    body = None
    if name == "sw.js":
        body = _STATION.read(name).replace(VERSION_SLOT, shell_version().encode())
    return _STATION.response(name, body=body, cache="no-cache" if name in _FRESH else None)


router = web.page_router(STATION_PATH, _served, SECURITY_HEADERS)
"""``/station`` -> ``/station/`` (the service worker's scope), the page, the listed files."""


def install_station(app: FastAPI) -> None:
    """Serve the station app on ``app``."""
    app.include_router(router)
