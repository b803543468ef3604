"""``/v1/devices``: an agent's phones, their offline allowance and their record syncs
(``ledger.flows.offline``); ``/v1/offline-exceptions``: records that could not apply.

An agent registers, reads, syncs, re-allows and revokes its own devices only (another
agent's device answers 404); an operator may revoke any device (a lost phone); auditors
and operators read every device and every exception. A record travels as the exact
canonical bytes the phone signed (``payload``, an ASCII JSON string) and its Ed25519
signature (``signature``, base64), so that nothing between the phone and the ledger can
change what was signed. A cash-out record is version 2 and carries the villager's offline
withdrawal code; one without a valid code becomes an exception charged to the agent
(``ledger.flows.offline``). A hand-over record (version 3) carries an order and the
pickup code the villager typed: at sync the code is checked as the online hand-over
(``POST /v1/orders/{id}/deliver``) checks it, once per record, and the order is delivered
or the record becomes an exception with the reason (``order_not_found`` for another
agent's order, as the orders routes answer; ``pickup_code_invalid``, ``pickup_code_void``
...); each answered record names its ``order_id``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import body_of, page_limit, signed
from api.routes.steps import id_text, parse, time_text
from api.schemas import (
    DeviceAllowance,
    DeviceCreate,
    DeviceOut,
    DeviceSync,
    SyncedRecordList,
    SyncReportOut,
)
from ledger.flows import offline
from ledger.flows.errors import Refused
from ledger.flows.offline import Device, SignedRecord, SyncedRecord
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/devices", tags=["devices"])
exceptions_router = APIRouter(prefix="/v1/offline-exceptions", tags=["devices"])

Caller = Annotated[ApiKey, Depends(signed)]
AGENTS = frozenset({Role.AGENT})
REVOKERS = frozenset({Role.AGENT, Role.OPERATOR})


def device_out(d: Device) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "agent_id": str(d.agent_id),
        "public_key": base64.b64encode(d.public_key).decode("ascii"),
        "state": d.state.value,
        "allowance_registered_minor": d.allowance_registered_minor,
        "allowance_minor": d.allowance_minor,
        "last_seq": d.last_seq,
        "created_at": time_text(d.created_at),
        "updated_at": time_text(d.updated_at),
    }


def synced_out(r: SyncedRecord) -> dict[str, Any]:
    return {
        "record_id": str(r.record_id),
        "device_id": str(r.device_id),
        "agent_id": str(r.agent_id),
        "villager_id": str(r.villager_id),
        "seq": r.seq,
        "kind": r.kind.value,
        "amount_minor": r.amount_minor,
        "currency": r.currency,
        "state": r.state.value,
        "reason": r.reason,
        "cash_operation_id": id_text(r.cash_operation_id),
        "captured_at": time_text(r.captured_at),
        "synced_at": time_text(r.synced_at),
        "order_id": id_text(r.order_id),
    }


def _device(request: Request, caller: ApiKey, device_id: uuid.UUID) -> Device:
    """The device if the caller may see it; 404 ``device_not_found`` alike otherwise."""
    led = context(request).ledger
    found = offline.get_device(led, device_id=device_id)
    if caller.role not in READ_ALL and found.agent_id != caller.principal_id:
        raise ApiError("device_not_found", f"no device {device_id}", 404)
    return found


def _signed_record(index: int, payload: str, signature: str) -> SignedRecord:
    try:
        raw = payload.encode("ascii")
    except UnicodeEncodeError:
        raise Refused("record_invalid", f"record {index}: payload is not ASCII") from None
    record = offline.record_from_canonical(raw)
    try:
        signature_bytes = base64.b64decode(signature, validate=True)
    except binascii.Error:
        raise Refused("record_invalid", f"record {index}: signature is not base64") from None
    return SignedRecord(record, signature_bytes)


@router.post(
    "",
    status_code=201,
    response_model=DeviceOut,
    summary="Register the calling agent's phone and hold its offline allowance",
    openapi_extra={"x-request-model": "DeviceCreate"},
)
def register(request: Request, caller: Caller) -> Response:
    require_role(caller, AGENTS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, DeviceCreate)
        device = offline.register_device(
            led,
            device_id=data.id,
            agent_id=caller.principal_id,
            public_key=base64.b64decode(data.public_key),
            allowance_minor=data.allowance_minor,
        )
        return json_response(201, device_out(device), {"Location": f"/v1/devices/{device.id}"})

    return run_post(request, caller, body, handle)


@router.get("/{device_id}", response_model=DeviceOut, summary="Get a device")
def get_device(request: Request, caller: Caller, device_id: uuid.UUID) -> Response:
    return json_response(200, device_out(_device(request, caller, device_id)))


@router.post(
    "/{device_id}/sync",
    response_model=SyncReportOut,
    summary="Apply a batch of the device's signed offline records, each exactly once",
    openapi_extra={"x-request-model": "DeviceSync"},
)
def sync(request: Request, caller: Caller, device_id: uuid.UUID) -> Response:
    require_role(caller, AGENTS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, DeviceSync)
        _device(request, caller, device_id)
        records = [_signed_record(i, r.payload, r.signature) for i, r in enumerate(data.records)]
        report = offline.sync(led, device_id=device_id, records=records)
        return json_response(
            200,
            {
                "device_id": str(report.device_id),
                "records": [synced_out(r) for r in report.records],
                "stored_now": report.stored_now,
                "applied": report.applied,
                "exceptions": report.exceptions,
                "replayed": report.replayed,
            },
        )

    return run_post(request, caller, body, handle)


@router.post(
    "/{device_id}/allowance",
    response_model=DeviceOut,
    summary="Set what the device may spend offline from now on (replenish it)",
    openapi_extra={"x-request-model": "DeviceAllowance"},
)
def set_allowance(request: Request, caller: Caller, device_id: uuid.UUID) -> Response:
    require_role(caller, AGENTS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, DeviceAllowance)
        _device(request, caller, device_id)
        device = offline.set_allowance(
            led, device_id=device_id, allowance_minor=data.allowance_minor
        )
        return json_response(200, device_out(device))

    return run_post(request, caller, body, handle)


@router.post(
    "/{device_id}/revoke",
    response_model=DeviceOut,
    summary="Revoke a device's key (lost or compromised) and give its allowance back",
)
def revoke(request: Request, caller: Caller, device_id: uuid.UUID) -> Response:
    require_role(caller, REVOKERS)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        _device(request, caller, device_id)
        device = offline.revoke_device(led, device_id=device_id)
        return json_response(200, device_out(device))

    return run_post(request, caller, body, handle)


@exceptions_router.get(
    "",
    response_model=SyncedRecordList,
    summary="Offline records that could not apply (an agent: its own), in sync order",
)
def list_exceptions(
    request: Request,
    caller: Caller,
    limit: Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)] = None,
    starting_after: Annotated[uuid.UUID | None, Query(description="last record id")] = None,
    agent_id: Annotated[uuid.UUID | None, Query(description="auditors, operators")] = None,
) -> Response:
    require_role(caller, AGENTS | READ_ALL)
    if caller.role is Role.AGENT:
        if agent_id not in (None, caller.principal_id):
            return json_response(200, {"data": [], "has_more": False})
        agent_id = caller.principal_id
    size = page_limit(request, limit)
    led = context(request).ledger
    found = offline.list_exceptions(led, agent_id=agent_id, after=starting_after, limit=size + 1)
    return json_response(
        200, {"data": [synced_out(r) for r in found[:size]], "has_more": len(found) > size}
    )
