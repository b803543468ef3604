"""Human API documentation at ``/docs``, served by this process and by nothing else.

The page (``api/docs_page/index.html``) explains the request-signing scheme, shows the
three runnable examples as they are in ``examples/`` (linked into ``api/docs_page/examples``)
and renders the operations of ``/openapi.json`` with Swagger UI 5 (it reads OpenAPI 3.1),
whose files come from the ``fastapi-offline`` package installed with the service.

Guarantees: the page and its assets load from this origin alone (a closed network is
enough), under a Content-Security-Policy that allows nothing else and no inline script;
the page reflects nothing from the request (it is rendered once per title and document
URL, with every inserted text escaped); only the assets named in :data:`ASSETS` are
served; none of it needs a signature, and "Try it out" is off (requests must be signed).
"""

from __future__ import annotations

import functools
from importlib import resources
from importlib.resources.abc import Traversable

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

__all__ = ["ASSETS", "ASSETS_PATH", "CONTENT_SECURITY_POLICY", "DOCS_PATH", "install_docs"]

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
ASSET_MAX_AGE_S = 3600
"""How long a browser may keep an asset without asking again."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
"""Only this origin (and ``data:`` images, which Swagger UI's stylesheet holds): no CDN,
no inline script, no framing."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

_PAGE = resources.files("api") / "docs_page"
_SWAGGER_UI = resources.files("fastapi_offline") / "static"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"

ASSETS: dict[str, tuple[Traversable, str]] = {
    "swagger-ui-bundle.js": (_SWAGGER_UI / "swagger-ui-bundle.js", _JS),
    "swagger-ui.css": (_SWAGGER_UI / "swagger-ui.css", _CSS),
    "favicon.png": (_SWAGGER_UI / "favicon.png", "image/png"),
    "docs.js": (_PAGE / "docs.js", _JS),
    "docs.css": (_PAGE / "docs.css", _CSS),
}
"""Every file served under :data:`ASSETS_PATH`: name -> (file, media type)."""

EXAMPLES = {
    "example_client": "storefront.py.txt",
    "example_python": "sign_without_client.py.txt",
    "example_shell": "sign.sh.txt",
}
"""Template slot -> file in ``api/docs_page/examples`` (links to ``examples/``)."""

router = APIRouter(include_in_schema=False)


@functools.cache
def _asset(name: str) -> bytes:
    return ASSETS[name][0].read_bytes()


@functools.lru_cache(maxsize=8)
def _page(title: str, openapi_url: str) -> str:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = environment.from_string((_PAGE / "index.html").read_text(encoding="utf-8"))
    examples = {
        slot: (_PAGE / "examples" / name).read_text(encoding="utf-8")
        for slot, name in EXAMPLES.items()
    }
    return template.render(title=title, openapi_url=openapi_url, assets=ASSETS_PATH, **examples)


@router.get(DOCS_PATH)
def docs_page(request: Request) -> HTMLResponse:
    """The documentation page (no signature needed)."""
    app = request.app
    if not app.openapi_url:
        raise HTTPException(status_code=404, detail="this service publishes no API document")
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return HTMLResponse(_page(app.title, app.openapi_url), headers=headers)


@router.get(ASSETS_PATH + "/{name}")
def docs_asset(name: str) -> Response:
    """One of :data:`ASSETS`; any other name is 404."""
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="no such documentation asset")
    headers = {**SECURITY_HEADERS, "Cache-Control": f"public, max-age={ASSET_MAX_AGE_S}"}
    return Response(_asset(name), media_type=ASSETS[name][1], headers=headers)


def install_docs(app: FastAPI) -> None:
    """Serve the documentation page and its assets on ``app``."""
    app.include_router(router)
