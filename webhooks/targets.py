"""What an endpoint may be: a public http(s) URL (:func:`check_target`, when the endpoint
is registered and again before every attempt) and event types the outbox knows
(:func:`check_types`); :class:`EndpointRefused` otherwise."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from ledger.flows.errors import Refused

__all__ = ["EndpointRefused", "check_target", "check_types", "matches"]


class EndpointRefused(Refused, ValueError):
    """An endpoint that may not be registered (its URL or its event types), or a target
    that an attempt may not reach; nothing was written. ``code`` is ``target_refused`` or
    ``validation_failed``; the message is the detail alone."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(code, detail)
        self.args = (detail,)


def _resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _host_and_port(url: str) -> tuple[str, int]:
    """The URL's host and port, once its shape is one a target may have."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise EndpointRefused("target_refused", f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointRefused("target_refused", "the URL is http(s)://host/...")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("target_refused", "the URL may not carry credentials")
    if parts.fragment:
        raise EndpointRefused("target_refused", "the URL may not carry a fragment")
    return parts.hostname, port


def check_target(
    url: str,
    allowed: Sequence[str] = (),
    *,
    resolve: Callable[[str, int], list[str]] = _resolve,
) -> None:
    """Refuse (:class:`EndpointRefused` ``target_refused``) a URL that is not http(s), has
    credentials, or resolves to a non-public address outside ``allowed`` networks."""
    host, port = _host_and_port(url)
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise EndpointRefused("target_refused", f"{host} does not resolve: {exc}") from None
    networks = [ipaddress.ip_network(n) for n in allowed]
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if any(address in n for n in networks):
            continue
        if not address.is_global or address.is_multicast:
            raise EndpointRefused("target_refused", f"{host} is {address}: not a public address")


def check_types(types: Sequence[str], known: frozenset[str]) -> tuple[str, ...]:
    """The event types an endpoint subscribes to, duplicates dropped; each is ``*``, a
    known type, or ``prefix.*`` matching one (:class:`EndpointRefused` otherwise)."""
    for t in types:
        if t == "*":
            continue
        if t.endswith(".*"):
            if not any(k.startswith(t[:-1]) for k in known):
                raise EndpointRefused("validation_failed", f"no event type matches {t!r}")
        elif t not in known:
            raise EndpointRefused("validation_failed", f"unknown event type {t!r}")
    return tuple(dict.fromkeys(types))


def matches(types: Sequence[str], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``types`` receives an event of ``event_type``."""
    return any(
        t in ("*", event_type) or (t.endswith(".*") and event_type.startswith(t[:-1]))
        for t in types
    )
