"""The back office console at ``/console/``: auditors (read-only) and operators in a browser.

The page is plain ES modules served by this process (no build step): ``index.html``,
``app.js`` (the shell: identity, routing by ``#/page``, the menu), one module per page
(``enroll.js``, ``overview.js``, ``proposals.js``, ``search.js``, ``party.js``,
``account.js``, ``transfer.js``, ``order.js``, ``fees.js``, ``webhooks.js``,
``variances.js``, ``statements.js``, ``suspense.js``, ``commission.js``, ``runs.js``,
``run.js``),
``render.js`` (links, pagers, payloads shown readably with money as money),
``decide.js`` (the decision forms the pages share: send, reason, proposed, state filter),
``dom.js`` (a refusal in the console's words) and ``console.css``. Requests are signed
in the browser with the key enrolled there; money, words (the ``console`` catalog) and
elements made with ``textContent`` only come from the shared modules (:mod:`api.web`).

Guarantees, as for ``/web/shared`` (:mod:`api.web`): only the files named in
:data:`FILES` are served (by :class:`api.web.ListedFiles`), with a
Content-Security-Policy allowing this origin only (no inline script or style, no
``data:``), ``nosniff``, no framing, no cookies set or read; nothing from the request
is reflected.
"""

from __future__ import annotations

from fastapi import FastAPI

from api import web
from api.docs import SECURITY_HEADERS

__all__ = ["CONSOLE_CSP", "CONSOLE_PATH", "FILES", "install_console"]

CONSOLE_PATH = "/console"
FILES: dict[str, str] = {
    "index.html": web.HTML,
    "console.css": web.CSS,
    **dict.fromkeys(
        (
            *("app.js", "dom.js", "enroll.js", "overview.js", "runs.js", "run.js", "render.js"),
            "decide.js",
            *("proposals.js", "search.js", "party.js", "account.js", "transfer.js", "order.js"),
            *("fees.js", "webhooks.js", "variances.js", "statements.js", "suspense.js"),
            "commission.js",
        ),
        web.JS,
    ),
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
_CONSOLE = web.ListedFiles("console", FILES, HEADERS)

router = web.page_router(CONSOLE_PATH, _CONSOLE.response, HEADERS)
"""``/console`` -> ``/console/``, the page, the listed files."""


def install_console(app: FastAPI) -> None:
    """Serve the console on ``app``."""
    app.include_router(router)
