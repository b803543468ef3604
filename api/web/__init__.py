"""The browser's shared ES modules at ``/web/shared/<name>.js``, served by this process.

``keys.js`` (a non-extractable WebCrypto Ed25519 key pair kept in IndexedDB),
``sign.js`` (RFC 9421 in the service's profile, signed at send time), ``api.js`` (a
``fetch`` wrapper: signed requests, problem+json turned into an ``Error`` with ``code``
and ``detail``) and ``enroll.js`` (redeem a one-time code with a fresh key). The station
app and the console import them.

Guarantees, as for ``/docs`` (:mod:`api.docs`): only the files named in :data:`FILES` are
served, as ``text/javascript``, with a Content-Security-Policy that allows nothing but
this origin, ``nosniff``, no framing; nothing from the request is reflected; no signature
is needed (they are code, not data).
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from api.docs import SECURITY_HEADERS

__all__ = ["FILES", "SHARED_PATH", "install_web"]

SHARED_PATH = "/web/shared"
FILES = ("keys.js", "sign.js", "api.js", "enroll.js")
"""Every file served under :data:`SHARED_PATH`."""
MAX_AGE_S = 300
_JS = "text/javascript; charset=utf-8"
_SHARED = resources.files("api") / "web" / "shared"

router = APIRouter(include_in_schema=False)


@functools.cache
def _file(name: str) -> bytes:
    return (_SHARED / name).read_bytes()


@router.get(SHARED_PATH + "/{name}")
def shared_module(name: str) -> Response:
    """One of :data:`FILES`; any other name is 404."""
    if name not in FILES:
        raise HTTPException(status_code=404, detail="no such module")
    headers = {**SECURITY_HEADERS, "Cache-Control": f"public, max-age={MAX_AGE_S}"}
    return Response(_file(name), media_type=_JS, headers=headers)


def install_web(app: FastAPI) -> None:
    """Serve the shared browser modules on ``app``."""
    app.include_router(router)
