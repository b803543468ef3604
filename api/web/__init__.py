"""The browser's shared ES modules at ``/web/shared/<name>.js``, served by this process.

``keys.js`` (a non-extractable WebCrypto Ed25519 key pair kept in IndexedDB),
``sign.js`` (RFC 9421 in the service's profile, signed at send time), ``api.js`` (a
``fetch`` wrapper: signed requests, problem+json turned into an ``Error`` with ``code``
and ``detail``), ``enroll.js`` (redeem a one-time code with a fresh key), ``money.js``
(minor units to ``KES 1,250.00`` with BigInt, the rule of :mod:`ledger.money`),
``i18n.js`` (a gettext domain's words and ``t()``) and ``dom.js`` (elements made with
``textContent`` only). The station app and the console import them.

Two JSON documents the pages need, from the server's own tables:
:data:`CURRENCIES_PATH` (the ISO 4217 exponents :mod:`ledger.money` formats with) and
``/web/i18n/<domain>/<language>.json`` (a domain of :data:`ledger.i18n.DOMAINS` in one
of :data:`ledger.i18n.LANGUAGES`; anything else is 404).

:class:`ListedFiles` and :func:`page_router` are the one way a page's folder is served
(here, by :mod:`api.web.station` and by :mod:`api.web.console`). Guarantees, as for ``/docs``
(:mod:`api.docs`): only the files named in its list are served, each with its media
type, a Content-Security-Policy that allows nothing but this origin, ``nosniff``, no
framing; nothing from the request is reflected; no signature is needed (they are code,
not data).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from api.docs import SECURITY_HEADERS
from ledger.core.currency import MINOR_DIGITS
from ledger.i18n import DOMAINS, LANGUAGES, catalog

__all__ = [
    "CURRENCIES_PATH",
    "FILES",
    "I18N_PATH",
    "MAX_AGE_S",
    "SHARED",
    "SHARED_PATH",
    "ListedFiles",
    "install_web",
    "page_router",
]

SHARED_PATH = "/web/shared"
CURRENCIES_PATH = SHARED_PATH + "/currencies.json"
I18N_PATH = "/web/i18n"
MAX_AGE_S = 300
JS = "text/javascript; charset=utf-8"
HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
_JSON = "application/json"


class ListedFiles:
    """The files of ``api/web/<folder>/`` named in ``files`` (name -> media type), each
    answered with ``headers`` (security headers; ``Cache-Control`` may be overridden per
    answer); any other name is 404. Files are read once and kept."""

    def __init__(self, folder: str, files: Mapping[str, str], headers: Mapping[str, str]):
        self.folder = folder
        self.files = dict(files)
        self.headers = dict(headers)

    def read(self, name: str) -> bytes:
        """The bytes of a listed file, as stored."""
        if name not in self.files:
            raise HTTPException(status_code=404, detail="no such file")
        return _read(self.folder, name)

    def response(
        self, name: str, *, body: bytes | None = None, cache: str | None = None
    ) -> Response:
        """The answer for ``name`` (404 unless listed): its bytes (or ``body``, made from
        them), its media type, the headers."""
        content = self.read(name)
        if body is not None:
            content = body
        headers = self.headers if cache is None else {**self.headers, "Cache-Control": cache}
        return Response(content, media_type=self.files[name], headers=headers)

    def json(self, body: bytes, *, cache: str | None = None) -> Response:
        """A JSON document of the server's own with the same headers."""
        headers = self.headers if cache is None else {**self.headers, "Cache-Control": cache}
        return Response(body, media_type=_JSON, headers=headers)


@functools.cache
def _read(folder: str, name: str) -> bytes:
    return (resources.files("api") / "web" / folder / name).read_bytes()


def page_router(
    path: str, serve: Callable[[str], Response], redirect_headers: Mapping[str, str]
) -> APIRouter:
    """The routes of a page app at ``path``: ``path`` is a 308 to ``path/`` (relative
    module paths and a service worker's scope need the slash), ``path/`` is
    ``serve("index.html")`` and ``path/<name>`` is ``serve(name)`` (404 unless listed)."""
    pages = APIRouter(include_in_schema=False)

    @pages.get(path)
    def root() -> Response:
        return RedirectResponse(path + "/", status_code=308, headers=dict(redirect_headers))

    @pages.get(path + "/")
    def index() -> Response:
        return serve("index.html")

    @pages.get(path + "/{name}")
    def listed(name: str) -> Response:
        return serve(name)

    return pages


SHARED = ListedFiles(
    "shared",
    dict.fromkeys(
        ("keys.js", "sign.js", "api.js", "enroll.js", "money.js", "i18n.js", "dom.js"), JS
    ),
    {**SECURITY_HEADERS, "Cache-Control": f"public, max-age={MAX_AGE_S}"},
)
FILES = tuple(SHARED.files)
"""Every file served under :data:`SHARED_PATH`."""

router = APIRouter(include_in_schema=False)


@functools.cache
def _currencies() -> bytes:
    return json.dumps(dict(sorted(MINOR_DIGITS.items())), separators=(",", ":")).encode()


@functools.cache
def _words(domain: str, language: str) -> bytes:
    return json.dumps(catalog(language, domain), ensure_ascii=False, sort_keys=True).encode()


@router.get(CURRENCIES_PATH)
def currencies() -> Response:
    """``{"KES": 2, "UGX": 0, ...}``: ISO 4217 code -> the minor-unit exponent."""
    return SHARED.json(_currencies())


@router.get(I18N_PATH + "/{domain}/{name}")
def words(domain: str, name: str) -> Response:
    """``/web/i18n/station/sw.json``: msgid -> text of one catalog; any other name is 404."""
    language = name.removesuffix(".json")
    if domain not in DOMAINS or not name.endswith(".json") or language not in LANGUAGES:
        raise HTTPException(status_code=404, detail="no such catalog")
    return SHARED.json(_words(domain, language))


@router.get(SHARED_PATH + "/{name}")
def shared_module(name: str) -> Response:
    """One of :data:`FILES`; any other name is 404."""
    return SHARED.response(name)


def install_web(app: FastAPI) -> None:
    """Serve the shared browser modules and documents on ``app``."""
    app.include_router(router)
