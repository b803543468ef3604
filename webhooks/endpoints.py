"""Registering endpoints: create, read, list, rotate the secret, enable and disable, and
list an endpoint's deliveries. An endpoint is its principal's: another principal's reads
as missing (``None``); ``principal_id`` None reads everyone's (auditors, operators)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from ledger import Ledger
from ledger.core.errors import InvariantViolation
from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.limits import US_PER_S
from webhooks import repository
from webhooks.repository import Delivery, Endpoint, EndpointState
from webhooks.settings import WebhookSettings
from webhooks.signing import new_secret
from webhooks.targets import EndpointRefused, check_target, check_types

__all__ = [
    "create_endpoint",
    "get_endpoint",
    "get_endpoint_in",
    "list_deliveries",
    "list_deliveries_in",
    "list_endpoints",
    "list_endpoints_in",
    "rotate_secret",
    "set_enabled",
    "set_enabled_in",
]


def _written(tx: Tx, endpoint_id: uuid.UUID) -> Endpoint:
    """The endpoint this transaction has just written."""
    endpoint = repository.find_endpoint(tx, endpoint_id, None)
    if endpoint is None:
        raise InvariantViolation(f"webhook endpoint {endpoint_id} vanished as it was written")
    return endpoint


def _create_in(
    tx: Tx,
    *,
    endpoint_id: uuid.UUID,
    principal_id: uuid.UUID,
    url: str,
    event_types: tuple[str, ...],
    description: str | None,
    secret: str,
    per_principal_max: int,
) -> Endpoint:
    if repository.count_endpoints(tx, principal_id) >= per_principal_max:
        raise EndpointRefused(
            "validation_failed", f"at most {per_principal_max} endpoints per principal"
        )
    repository.insert_endpoint(
        tx,
        endpoint_id=endpoint_id,
        principal_id=principal_id,
        url=url,
        event_types=event_types,
        description=description,
        secret=secret,
    )
    return _written(tx, endpoint_id)


def create_endpoint(
    led: Ledger,
    *,
    principal_id: uuid.UUID,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    settings: WebhookSettings,
) -> tuple[Endpoint, str]:
    """Register an endpoint of the principal; it and its secret (shown only now)."""
    types = check_types(event_types, settings.event_types)
    check_target(url, settings.target_networks_allowed)
    secret = new_secret()
    endpoint_id = uuid.uuid4()
    endpoint = led.transact(
        lambda tx: _create_in(
            tx,
            endpoint_id=endpoint_id,
            principal_id=principal_id,
            url=url,
            event_types=types,
            description=description,
            secret=secret,
            per_principal_max=settings.endpoints_per_principal_max,
        )
    )
    return endpoint, secret


def get_endpoint_in(
    tx: Tx, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID | None
) -> Endpoint | None:
    """The endpoint, if it is the principal's (``principal_id`` None: anyone's)."""
    return repository.find_endpoint(tx, endpoint_id, principal_id)


def list_endpoints_in(
    tx: Tx, *, principal_id: uuid.UUID | None, after: uuid.UUID | None, limit: int
) -> tuple[list[Endpoint], bool] | None:
    """A page of endpoints, oldest first; None for a cursor naming none of the list."""
    after_seq = 0
    if after is not None:
        found = repository.endpoint_seq(tx, after, principal_id)
        if found is None:
            return None
        after_seq = found
    rows = repository.endpoints_after(
        tx, after_seq=after_seq, principal_id=principal_id, limit=limit + 1
    )
    return rows[:limit], len(rows) > limit


def _rotate_in(
    tx: Tx, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID, grace_s: int, secret: str
) -> Endpoint | None:
    current = repository.lock_secret(tx, endpoint_id, principal_id)
    if current is None:
        return None
    previous, expires = (current, tx.now_us + grace_s * US_PER_S) if grace_s else (None, None)
    repository.set_secret(
        tx, endpoint_id, secret=secret, previous=previous, previous_expires_at_us=expires
    )
    return _written(tx, endpoint_id)


def rotate_secret(
    led: Ledger, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID, grace_s: int
) -> tuple[Endpoint, str] | None:
    """A new secret for the principal's endpoint; the current one keeps signing beside it
    for ``grace_s`` (0: not at all). None when the endpoint is not the principal's."""
    secret = new_secret()
    endpoint = led.transact(
        lambda tx: _rotate_in(
            tx, endpoint_id=endpoint_id, principal_id=principal_id, grace_s=grace_s, secret=secret
        )
    )
    return None if endpoint is None else (endpoint, secret)


def set_enabled_in(
    tx: Tx, *, endpoint_id: uuid.UUID, principal_id: uuid.UUID, enabled: bool
) -> Endpoint | None:
    """Enable (after a 410, say) or disable the principal's endpoint; None if not its."""
    repository.set_state(
        tx,
        endpoint_id,
        principal_id,
        state=EndpointState.ENABLED if enabled else EndpointState.DISABLED,
        reason=None if enabled else "disabled by its owner",
    )
    return repository.find_endpoint(tx, endpoint_id, principal_id)


def list_deliveries_in(
    tx: Tx,
    *,
    endpoint_id: uuid.UUID,
    principal_id: uuid.UUID | None,
    after: uuid.UUID | None,
    limit: int,
) -> tuple[list[Delivery], bool] | None:
    """A page of an endpoint's deliveries, oldest first; None when the endpoint is not
    the principal's or the cursor names none of its deliveries."""
    if repository.endpoint_seq(tx, endpoint_id, principal_id) is None:
        return None
    after_seq = 0
    if after is not None:
        found = repository.delivery_seq(tx, after, endpoint_id)
        if found is None:
            return None
        after_seq = found
    rows = repository.deliveries_after(tx, endpoint_id, after_seq=after_seq, limit=limit + 1)
    return rows[:limit], len(rows) > limit


get_endpoint = transactional(get_endpoint_in)
list_endpoints = transactional(list_endpoints_in)
set_enabled = transactional(set_enabled_in)
list_deliveries = transactional(list_deliveries_in)
