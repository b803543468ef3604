"""``POST /ussd/africastalking/{secret}``: the USSD aggregator's callback (Africa's Talking).

Not a signed ``/v1`` route: the aggregator signs nothing. It is authenticated by two
things from :class:`~api.settings.Settings`, both required:

- **its secret**, the last path segment of the callback URL configured at the aggregator
  (``ussd_secrets``; compared with :func:`hmac.compare_digest` against every configured
  secret);
- **its source network** (``ussd_source_networks``, CIDRs): the peer's address, or, only
  when the peer is one of this deployment's own proxies (``ussd_trusted_proxies``), the
  nearest address of ``X-Forwarded-For`` that is not such a proxy.

A call that fails either, or that carries no ``sessionId``/``phoneNumber``, gets ``END``
and one generic sentence, and a log line that says why (never the secret or ``text``:
the request's path is redacted before the request log line reads it).
The body is ``application/x-www-form-urlencoded`` (``sessionId``, ``serviceCode``,
``phoneNumber``, ``networkCode``, ``text``), at most :data:`FORM_BODY_MAX_BYTES`; the
answer ``text/plain``: ``CON <screen>`` or ``END <screen>``
(:func:`ledger.flows.ussd.answer_async`: a menu step that reads nothing is one statement
awaited on the event loop (PostgreSQL), any other step's transaction runs on the ledger's
writer threads, the PIN's argon2id and a flow's writes on a worker thread, never on the
event loop). ``POST /ussd/africastalking/{secret}/events`` takes the
end-of-session notification, logs it and answers ``OK``. Any other method or path under
``/ussd/africastalking/`` is refused the same way (and its path kept out of the log).

Neither route is in the OpenAPI document (they are the aggregator's, not a client's).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import cache, lru_cache
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from api.context import context
from api.observability import LOGGER_NAME
from api.settings import Settings
from ledger import StorageError
from ledger.flows import ussd

router = APIRouter(prefix="/ussd/africastalking", include_in_schema=False)

log = logging.getLogger(LOGGER_NAME)

FORM_BODY_MAX_BYTES = 8_192
"""The largest callback body read; a longer one answers ``END`` (too many keys)."""
FORM_FIELDS_MAX = 16
"""The most form fields read from one body."""
FORWARDED_ADDRESSES_MAX = 16
"""The most ``X-Forwarded-For`` addresses looked at."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _address(text: str | None) -> Address | None:
    try:
        return None if text is None else ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def caller_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]
) -> Address | None:
    """The caller's address: the peer's, unless the peer is a trusted proxy, then the
    nearest ``X-Forwarded-For`` address that is not one (``None``: no address)."""
    address = _address(peer)
    proxies = _networks(trusted_proxies)
    if address is None or not forwarded_for or not _within(address, proxies):
        return address
    hops = forwarded_for.split(",")[-FORWARDED_ADDRESSES_MAX:]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            return None  # a mangled chain: trust none of it
        if not _within(found, proxies):
            return found
    return address


def _secret_known(secret: str, settings: Settings) -> bool:
    given = secret.encode("utf-8", "replace")
    matched = False
    for known in settings.ussd_secrets:  # every secret compared: no early exit
        matched |= hmac.compare_digest(given, known.encode("utf-8"))
    return matched


SOURCES_KEPT_MAX = 1_024
"""The most (peer, ``X-Forwarded-For``) pairs whose verdict is remembered."""
FORWARDED_FOR_KEPT_MAX = 512
"""The longest ``X-Forwarded-For`` whose verdict is remembered (bounds what is kept)."""


def _source_judged(
    peer: str | None,
    forwarded_for: str | None,
    trusted_proxies: tuple[str, ...],
    source_networks: tuple[str, ...],
) -> bool:
    """Whether the caller (:func:`caller_address`) is within ``source_networks``."""
    source = caller_address(peer, forwarded_for, trusted_proxies)
    return source is not None and _within(source, _networks(source_networks))


_source_remembered = lru_cache(maxsize=SOURCES_KEPT_MAX)(_source_judged)
""":func:`_source_judged`, a pure function, remembered (the aggregator calls from a few
addresses)."""


def _refusal(request: Request, secret: str) -> str | None:
    """Why this call is not the aggregator's, or ``None``."""
    settings = context(request).settings
    if not _secret_known(secret, settings):
        return "secret"
    peer = request.client.host if request.client else None
    forwarded_for = request.headers.get("x-forwarded-for")
    judged = (peer, forwarded_for, settings.ussd_trusted_proxies, settings.ussd_source_networks)
    if forwarded_for is not None and len(forwarded_for) > FORWARDED_FOR_KEPT_MAX:
        allowed = _source_judged(*judged)  # a long header is judged, not remembered
    else:
        allowed = _source_remembered(*judged)
    if not allowed:
        return "source"
    return None


async def _form(request: Request) -> dict[str, str] | None:
    """The form's fields (the first value of each), or ``None`` when the body is too
    long or not UTF-8."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BODY_MAX_BYTES:
            return None
    try:
        fields = parse_qs(
            body.decode("utf-8"), keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


def _plain(screen: ussd.Screen) -> PlainTextResponse:
    return PlainTextResponse(screen.wire, media_type="text/plain; charset=utf-8")


def _refused(request: Request, why: str) -> PlainTextResponse:
    peer = request.client.host if request.client else None
    log.warning("ussd: caller refused", extra={"reason": why, "peer": peer})
    return _plain(ussd.refused_screen())


REDACTED = "/ussd/africastalking/-"
"""The path the request log shows instead of the one carrying the secret."""


def _redact(request: Request, suffix: str = "") -> None:
    """Keep the secret out of the request log lines (they read the path after routing)."""
    request.scope["path"] = REDACTED + suffix
    request.scope["raw_path"] = (REDACTED + suffix).encode("ascii")


async def callback(request: Request) -> PlainTextResponse:
    """``POST /{secret}``: a plain Starlette route (no FastAPI parameters to solve: the
    secret is the path's, the fields the form's)."""
    secret = request.path_params["secret"]
    _redact(request)
    why = _refusal(request, secret)
    if why is not None:
        return _refused(request, why)
    form = await _form(request)
    if form is None:
        log.info("ussd: a body too long or not a form")
        return _plain(ussd.too_many_keys())
    session_id, phone = form.get("sessionId"), form.get("phoneNumber")
    if not session_id or not phone:
        return _refused(request, "fields")
    led = context(request).ledger
    try:
        screen = await ussd.answer_async(
            led, session_id=session_id, phone=phone, text=form.get("text", "")
        )
    except StorageError as exc:
        log.warning("ussd: storage unavailable: %s", exc)
        return _plain(ussd.refused_screen())
    return _plain(screen)


router.add_route(router.prefix + "/{secret}", callback, methods=["POST"], include_in_schema=False)


@router.post("/{secret}/events")
async def session_ended(secret: str, request: Request) -> PlainTextResponse:
    _redact(request, "/events")
    why = _refusal(request, secret)
    if why is not None:
        return _refused(request, why)
    form = await _form(request) or {}
    log.info(
        "ussd: session ended",
        extra={
            "ussd_session": form.get("sessionId", "")[:100],
            "status": form.get("status", "")[:32],
            "duration_ms": form.get("durationInMillis", "")[:16],
        },
    )
    return PlainTextResponse("OK")


ANY_METHOD = ["get", "head", "post", "put", "patch", "delete", "options"]
"""Lower case: Starlette upper-cases them (and the SQL gate reads no statement here)."""


@router.api_route("/{anything:path}", methods=ANY_METHOD)
async def elsewhere(anything: str, request: Request) -> PlainTextResponse:
    """Any other method or path under the callback's prefix: refused like a wrong secret,
    and its path (which may hold the secret) redacted from the log."""
    _redact(request, "/?")
    return _refused(request, "path")
