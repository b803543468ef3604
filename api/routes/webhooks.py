"""``/v1/webhook-endpoints``: where a storefront's or an agent's events are POSTed
(:mod:`webhooks`): create, list, get, rotate the secret, disable, enable, and the
deliveries of each with their state. Owners manage their own endpoints; auditors and
operators read them all; another principal's endpoint answers 404.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

import webhooks
from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import PAGE_SIZE_MAX, body_of, page_limit, signed, write
from api.routes.steps import time_text
from api.schemas import (
    WebhookDeliveryList,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookSecretOut,
    WebhookSecretRotate,
)
from ledger import Ledger
from webhooks import Delivery, Endpoint, WebhookSettings

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

Caller = Annotated[ApiKey, Depends(signed)]
Limit = Annotated[int | None, Query(ge=1, le=PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[uuid.UUID | None, Query(description="the last id of the previous page")]
OWNERS = frozenset({Role.STOREFRONT, Role.AGENT})


def settings_of(request: Request) -> WebhookSettings:
    found: WebhookSettings = request.app.state.webhooks
    return found


def endpoint_out(e: Endpoint) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "url": e.url,
        "event_types": list(e.event_types),
        "description": e.description,
        "state": e.state,
        "disabled_reason": e.disabled_reason,
        "previous_secret_expires_at": time_text(e.previous_secret_expires_at),
        "created_at": time_text(e.created_at),
        "updated_at": time_text(e.updated_at),
    }


def delivery_out(d: Delivery) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "endpoint_id": str(d.endpoint_id),
        "event_id": str(d.event_id),
        "event_type": d.event_type,
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": time_text(d.next_attempt_at),
        "last_attempt_at": time_text(d.last_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": time_text(d.created_at),
    }


def _reader(caller: ApiKey) -> uuid.UUID | None:
    return None if caller.role in READ_ALL else caller.principal_id


def _missing(endpoint_id: uuid.UUID) -> ApiError:
    return ApiError("not_found", f"no webhook endpoint {endpoint_id}")


@router.post(
    "",
    status_code=201,
    response_model=WebhookEndpointCreated,
    summary="Register an endpoint for the caller's events; its secret is shown only now",
    openapi_extra={"x-request-model": "WebhookEndpointCreate"},
)
def create_endpoint(request: Request, caller: Caller) -> Response:
    require_role(caller, OWNERS)

    def act(led: Ledger, data: WebhookEndpointCreate) -> tuple[Endpoint, str]:
        try:
            return webhooks.create_endpoint(
                led,
                principal_id=caller.principal_id,
                url=data.url,
                event_types=data.event_types,
                description=data.description,
                settings=settings_of(request),
            )
        except webhooks.EndpointRefused as refused:
            raise ApiError(refused.code, refused.detail) from None

    def shape(made: tuple[Endpoint, str]) -> dict[str, Any]:
        endpoint, secret = made
        return {**endpoint_out(endpoint), "secret": secret}

    return write(
        request,
        caller,
        WebhookEndpointCreate,
        act,
        shape,
        status=201,
        location="/v1/webhook-endpoints",
    )


@router.get("", response_model=WebhookEndpointList, summary="List webhook endpoints")
def list_endpoints(
    request: Request, caller: Caller, limit: Limit = None, starting_after: After = None
) -> Response:
    size = page_limit(request, limit)
    page = webhooks.list_endpoints(
        context(request).ledger, principal_id=_reader(caller), after=starting_after, limit=size
    )
    if page is None:
        raise ApiError("invalid_parameter", "starting_after names no endpoint of this list")
    found, has_more = page
    return json_response(200, {"data": [endpoint_out(e) for e in found], "has_more": has_more})


@router.get("/{endpoint_id}", response_model=WebhookEndpointOut, summary="Get an endpoint")
def get_endpoint(request: Request, caller: Caller, endpoint_id: uuid.UUID) -> Response:
    found = webhooks.get_endpoint(
        context(request).ledger, endpoint_id=endpoint_id, principal_id=_reader(caller)
    )
    if found is None:
        raise _missing(endpoint_id)
    return json_response(200, endpoint_out(found))


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookSecretOut,
    summary="Rotate the signing secret; the old one signs too for grace_s seconds",
    openapi_extra={"x-request-model": "WebhookSecretRotate"},
)
def rotate_secret(request: Request, caller: Caller, endpoint_id: uuid.UUID) -> Response:
    require_role(caller, OWNERS)

    def act(led: Ledger, data: WebhookSecretRotate) -> tuple[Endpoint, str]:
        rotated = webhooks.rotate_secret(
            led, endpoint_id=endpoint_id, principal_id=caller.principal_id, grace_s=data.grace_s
        )
        if rotated is None:
            raise _missing(endpoint_id)
        return rotated

    def shape(made: tuple[Endpoint, str]) -> dict[str, Any]:
        endpoint, secret = made
        return {
            "endpoint_id": str(endpoint.id),
            "secret": secret,
            "previous_secret_expires_at": time_text(endpoint.previous_secret_expires_at),
        }

    return write(request, caller, WebhookSecretRotate, act, shape, empty_ok=True)


def _switch(request: Request, caller: ApiKey, endpoint_id: uuid.UUID, enabled: bool) -> Response:
    require_role(caller, OWNERS)
    led = context(request).ledger

    def handle() -> Response:
        found = webhooks.set_enabled(
            led, endpoint_id=endpoint_id, principal_id=caller.principal_id, enabled=enabled
        )
        if found is None:
            raise _missing(endpoint_id)
        return json_response(200, endpoint_out(found))

    return run_post(request, caller, body_of(request), handle)


def _switch_route(name: str, enabled: bool, summary: str) -> None:
    """Register ``POST /v1/webhook-endpoints/{endpoint_id}/<name>`` (no body)."""

    def route(request: Request, caller: Caller, endpoint_id: uuid.UUID) -> Response:
        return _switch(request, caller, endpoint_id, enabled)

    router.add_api_route(
        f"/{{endpoint_id}}/{name}",
        route,
        methods=["POST"],
        name=name,
        response_model=WebhookEndpointOut,
        summary=summary,
    )


_switch_route("disable", False, "Stop delivering to the endpoint (its pending deliveries fail)")
_switch_route("enable", True, "Deliver to the endpoint again (after a 410 disabled it, say)")


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=WebhookDeliveryList,
    summary="The endpoint's deliveries, oldest first, with their attempts and state",
)
def list_deliveries(
    request: Request,
    caller: Caller,
    endpoint_id: uuid.UUID,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    size = page_limit(request, limit)
    page = webhooks.list_deliveries(
        context(request).ledger,
        endpoint_id=endpoint_id,
        principal_id=_reader(caller),
        after=starting_after,
        limit=size,
    )
    if page is None:
        raise _missing(endpoint_id)
    found, has_more = page
    return json_response(200, {"data": [delivery_out(d) for d in found], "has_more": has_more})
