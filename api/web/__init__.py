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
not data). Every answer says ``Vary: Accept-Encoding``; one to a request that accepts gzip
is gzip-encoded (``Content-Encoding: gzip``) when that makes it smaller, each body
compressed once and kept (:func:`encoded`): the station app's first load on 2G moves
less than half the bytes (``bench/station.py``).
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable, Mapping
from importlib import resources

from fastapi import APIRouter, FastAPI, Request
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
    "encoded",
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
GZIP_LEVEL = 9
"""gzip's best compression: each body is compressed once, so its cost is paid once."""
GZIPPED_KEPT_MAX = 256
"""Compressed bodies kept: more than every listed file and document (about 60 today)."""
ACCEPT_ENCODING_LENGTH_MAX = 1024
"""A longer Accept-Encoding header is not read (the answer is sent as stored)."""


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


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110 12.5.3): ``gzip`` (or
    ``x-gzip``, or else ``*``) with a weight above 0; a weight that is not a number refuses."""
    if len(accept_encoding) > ACCEPT_ENCODING_LENGTH_MAX:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, parameters = item.partition(";")
        name, _, value = parameters.strip().partition("=")
        try:
            weight = float(value) if name.strip() == "q" else 1.0
        except ValueError:
            weight = 0.0
        weights[coding.strip()] = weight
    named = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    return 0.0 < named <= 1.0


@functools.lru_cache(maxsize=GZIPPED_KEPT_MAX)
def _gzipped(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def encoded(request: Request, response: Response) -> Response:
    """``response`` gzip-encoded when ``request`` accepts gzip and that is smaller (the
    body compressed once, then kept); ``Vary: Accept-Encoding`` either way."""
    response.headers["Vary"] = "Accept-Encoding"
    if "content-encoding" in response.headers or not response.body:
        return response
    if not accepts_gzip(request.headers.get("accept-encoding", "")):
        return response
    packed = _gzipped(bytes(response.body))
    if len(packed) < len(response.body):
        response.body = packed
        response.headers["Content-Encoding"] = "gzip"
        response.headers["Content-Length"] = str(len(packed))
    return response


def page_router(
    path: str, serve: Callable[[str], Response], redirect_headers: Mapping[str, str]
) -> APIRouter:
    """The routes of a page app at ``path``: ``path`` is a 308 to ``path/`` (relative
    module paths and a service worker's scope need the slash), ``path/`` is
    ``serve("index.html")`` and ``path/<name>`` is ``serve(name)`` (404 unless listed),
    each :func:`encoded` for the request."""
    pages = APIRouter(include_in_schema=False)

    @pages.get(path)
    def root() -> Response:
        return RedirectResponse(path + "/", status_code=308, headers=dict(redirect_headers))

    @pages.get(path + "/")
    def index(request: Request) -> Response:
        return encoded(request, serve("index.html"))

    @pages.get(path + "/{name}")
    def listed(name: str, request: Request) -> Response:
        return encoded(request, serve(name))

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
def currencies(request: Request) -> Response:
    """``{"KES": 2, "UGX": 0, ...}``: ISO 4217 code -> the minor-unit exponent."""
    return encoded(request, SHARED.json(_currencies()))


@router.get(I18N_PATH + "/{domain}/{name}")
def words(domain: str, name: str, request: Request) -> Response:
    """``/web/i18n/station/sw.json``: msgid -> text of one catalog; any other name is 404."""
    language = name.removesuffix(".json")
    if domain not in DOMAINS or not name.endswith(".json") or language not in LANGUAGES:
        raise HTTPException(status_code=404, detail="no such catalog")
    return encoded(request, SHARED.json(_words(domain, language)))


@router.get(SHARED_PATH + "/{name}")
def shared_module(name: str, request: Request) -> Response:
    """One of :data:`FILES`; any other name is 404."""
    return encoded(request, SHARED.response(name))


def install_web(app: FastAPI) -> None:
    """Serve the shared browser modules and documents on ``app``."""
    app.include_router(router)
