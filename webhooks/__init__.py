"""Webhooks: the flows' outbox delivered to its parties, signed per Standard Webhooks.

Endpoints
    A storefront or an agent registers URLs for event types (``order.paid``, ``order.*``,
    ``*``) and gets a ``whsec_`` secret (32 random bytes, base64), shown only then and on
    rotation. An endpoint receives the events of its principal's party (the party id is
    the principal id) that happened after it was created; an event of no party
    (``checkpoint.sealed``, from the sealer) goes to every storefront's endpoints that
    subscribe to it. Targets must be public:
    private, loopback, link-local, reserved and multicast addresses are refused, when the
    endpoint is created and again before every attempt, unless a network is listed in
    :attr:`WebhookSettings.target_networks_allowed` (tests allow loopback).

Delivery (:func:`deliver_due`, one pass; the worker runs it every second)
    1. *Fan-out*: the outbox is read in ``seq`` order from a cursor
       (``ledger.flows.events.read_events``; the claim joins the ``outbox_events`` view,
       never the ``events`` table); each
       event becomes one delivery row per matching endpoint (unique per endpoint and
       event). The cursor only moves over a contiguous run of ``seq``: a hole left by a
       transaction still in flight (PostgreSQL hands out ``seq`` before commit) holds it
       back until the hole is :attr:`~WebhookSettings.gap_wait_s` old (a rolled-back
       transaction); events past a hole are fanned out at once and met again harmlessly.
    2. *Attempts*: due deliveries are claimed (leased for ``lease_s``, ``SKIP LOCKED`` on
       PostgreSQL, so two workers never send one delivery at once), POSTed outside any
       transaction, and the outcome written with one ``webhook_attempts`` row each.

    The request: ``POST`` with ``Content-Type: application/json``, body
    ``{"type": ..., "timestamp": <event time>, "data": <event payload>}`` (the same bytes
    on every attempt), and the headers ``webhook-id`` (the event id: the same on every
    attempt and for every endpoint, so a receiver dedupes by it), ``webhook-timestamp``
    (the attempt's Unix seconds) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
    "{id}.{timestamp}.{body}">``, one per valid secret, space-separated (two while a
    secret rotates). Receivers verify with any Standard Webhooks library.

    Outcomes: 2xx succeeded; 410 Gone disables the endpoint (its pending deliveries fail
    without being sent); anything else (another status, a redirect, a timeout, a refused
    target) is retried after ``min(cap, base * 2**(n-1))`` seconds, +-``jitter_ratio``,
    n the attempts so far. With the defaults (30 s base, 12 h cap, 16 attempts) the
    last attempt comes about 2.7 days after the first; then the delivery is ``failed``,
    visible in ``/v1/webhook-endpoints/{id}/deliveries``. At least once: a crash between
    the POST and the write sends the delivery again when its lease ends.

Rotation
    :func:`rotate_secret` makes a new secret; the previous one keeps signing beside it for
    a grace period (default one day, 0..7 days), so receivers can switch over without
    dropping a delivery. A second rotation within the grace period ends the first one's.

Modules
    :mod:`webhooks.settings` (the knobs), :mod:`webhooks.targets` (what an endpoint may
    be), :mod:`webhooks.signing` (the body and its signatures), :mod:`webhooks.repository`
    (the only SQL of ``webhook_endpoints``, ``webhook_deliveries``, ``webhook_attempts``
    and ``webhook_cursor``), :mod:`webhooks.endpoints` (registration),
    :mod:`webhooks.delivery` (the sender) and :mod:`webhooks.worker` (its thread). This
    package imports from ``ledger``, never from ``api``; the API's routes import it.
"""

from __future__ import annotations

from webhooks.delivery import (
    BROADCAST_ROLE,
    ERROR_LENGTH_MAX,
    HttpPost,
    backoff_s,
    deliver_due,
    fan_out,
    post_with_httpx,
)
from webhooks.endpoints import (
    create_endpoint,
    get_endpoint,
    get_endpoint_in,
    list_deliveries,
    list_deliveries_in,
    list_endpoints,
    list_endpoints_in,
    rotate_secret,
    set_enabled,
    set_enabled_in,
)
from webhooks.repository import (
    CURSOR,
    Delivery,
    DeliveryState,
    Endpoint,
    EndpointState,
)
from webhooks.settings import WebhookSettings
from webhooks.signing import (
    SECRET_BYTES,
    SECRET_PREFIX,
    message_body,
    new_secret,
    signature_header,
)
from webhooks.targets import EndpointRefused, check_target, check_types, matches
from webhooks.worker import Worker, run_worker

__all__ = [
    "BROADCAST_ROLE",
    "CURSOR",
    "ERROR_LENGTH_MAX",
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "Delivery",
    "DeliveryState",
    "Endpoint",
    "EndpointRefused",
    "EndpointState",
    "HttpPost",
    "WebhookSettings",
    "Worker",
    "backoff_s",
    "check_target",
    "check_types",
    "create_endpoint",
    "deliver_due",
    "fan_out",
    "get_endpoint",
    "get_endpoint_in",
    "list_deliveries",
    "list_deliveries_in",
    "list_endpoints",
    "list_endpoints_in",
    "matches",
    "message_body",
    "new_secret",
    "post_with_httpx",
    "rotate_secret",
    "run_worker",
    "set_enabled",
    "set_enabled_in",
    "signature_header",
]
