"""``/v1/enrollments``: one-time enrollment codes (:mod:`ledger.flows.enrollment`).

``POST /v1/enrollments`` (operators only, signed, idempotent): a code for a principal,
answered ONCE with its text and a QR code (SVG text, made with ``segno``); a replay of
the same Idempotency-Key answers the same enrollment with ``code`` and ``qr_svg`` null,
since the stored answer must not hold the code (the ledger keeps its digest only).

``POST /v1/enrollments/redeem`` (no key yet): registers the public key in the body. The
request is signed in the service's RFC 9421 profile by the NEW key, with ``keyid`` the
key's thumbprint (:func:`ledger.flows.enrollment.thumbprint`); it is verified with the
public key in the body before the code is looked at (proof of possession). Its order:
body size (413), the caller's network address's rate limit (429, the same token buckets
as keys), strict JSON (400/415/422), the signature (401), then the flow. It is not
idempotent by Idempotency-Key (there is no principal to scope one by; the header is
required and signed as on every POST): the same key redeeming its own used code answers
the first result again.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import uuid
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.access import require_role
from api.context import (
    context,
    idempotency_key,
    json_response,
    raw_body,
    run_post,
    verify_signature,
)
from api.principals import Alg, ApiKey, Role
from api.problems import ApiError
from api.routes.common import body_of, signed
from api.routes.steps import parse, time_text
from api.schemas import EnrollmentCreate, EnrollmentRedeem
from api.schemas import Request as RequestModel
from ledger.flows import enrollment
from ledger.flows.enrollment import Enrolled, Issued

router = APIRouter(prefix="/v1/enrollments", tags=["enrollment"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATORS = frozenset({Role.OPERATOR})
NOBODY = uuid.UUID(int=0)
"""The principal of the stand-in key a redeem request is verified with (it has none yet)."""
PUBLIC_KEY_LENGTH = 32


class EnrollmentOut(RequestModel):
    """An issued code: ``code`` (``XXXX-XXXX-XXXX-XXXX-XXXX``) and ``qr_svg`` only in the
    first answer, null in a replay."""

    id: uuid.UUID
    principal_id: uuid.UUID
    role: str
    expires_at: str
    code: str | None
    qr_svg: str | None


class EnrolledOut(RequestModel):
    """The key a code registered: sign every later request with ``key_id``."""

    enrollment_id: uuid.UUID
    principal_id: uuid.UUID
    role: str
    key_id: str
    alg: str
    device_id: uuid.UUID | None
    """The agent's offline device (agents only)."""


def qr_svg(code: str) -> str:
    """The code as a QR code, SVG text (no XML declaration: it can go into a page)."""
    out = io.BytesIO()
    segno.make(code, error="m").save(out, kind="svg", scale=4, xmldecl=False, svgns=True)
    return out.getvalue().decode("utf-8")


def issued_out(issued: Issued) -> dict[str, Any]:
    return {
        "id": str(issued.id),
        "principal_id": str(issued.principal_id),
        "role": issued.role.value,
        "expires_at": time_text(issued.expires_at),
        "code": None,
        "qr_svg": None,
    }


def enrolled_out(enrolled: Enrolled) -> dict[str, Any]:
    return {
        "enrollment_id": str(enrolled.enrollment_id),
        "principal_id": str(enrolled.principal_id),
        "role": enrolled.role.value,
        "key_id": enrolled.key_id,
        "alg": Alg.ED25519.value,
        "device_id": None if enrolled.device_id is None else str(enrolled.device_id),
    }


@router.post(
    "",
    status_code=201,
    response_model=EnrollmentOut,
    summary="Issue a one-time enrollment code for a principal (operators)",
    openapi_extra={"x-request-model": "EnrollmentCreate"},
)
def issue(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATORS)
    led = context(request).ledger
    body = body_of(request)
    shown: dict[str, str] = {}

    def handle() -> Response:
        data = parse(request, body, EnrollmentCreate)
        issued = enrollment.issue(
            led, principal_id=data.principal_id, issued_by=caller.principal_id
        )
        shown["code"] = issued.code
        location = {"Location": f"/v1/enrollments/{issued.id}"}
        return json_response(201, issued_out(issued), location)

    response = run_post(request, caller, body, handle)
    if "code" not in shown or response.status_code != 201:
        return response  # a refusal, or a replay: the code is not shown again
    answer = json.loads(bytes(response.body))
    answer.update(code=shown["code"], qr_svg=qr_svg(shown["code"]))
    return json_response(201, answer, {"Location": response.headers["location"]})


def _public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != PUBLIC_KEY_LENGTH:
        raise ApiError("public_key_invalid", "a public key is 32 raw bytes of Ed25519, base64")
    return raw


def _proven(request: Request, body: bytes, raw: bytes) -> None:
    """Verify the request's signature with the key in the body (401 otherwise)."""
    settings = context(request).settings
    expected = enrollment.thumbprint(raw)

    def lookup(key_id: str) -> ApiKey | None:
        if key_id != expected:
            return None
        return ApiKey(key_id, NOBODY, Role.AGENT, Alg.ED25519, raw, True)

    verify_signature(request, body, lookup, settings)


def _redeem(request: Request, body: bytes) -> Response:
    idempotency_key(request, context(request).settings)  # sent (and signed) as on every POST
    data = parse(request, body, EnrollmentRedeem)
    raw = _public_key(data.public_key)
    _proven(request, body, raw)
    led = context(request).ledger
    enrolled = enrollment.redeem(led, code=data.code, public_key=raw)
    state = request.scope.setdefault("state", {})
    state["key_id"], state["principal_id"] = enrolled.key_id, str(enrolled.principal_id)
    return json_response(201, enrolled_out(enrolled))


@router.post(
    "/redeem",
    status_code=201,
    response_model=EnrolledOut,
    summary="Register a new key with a one-time code (signed by that key; no key needed)",
    openapi_extra={"x-request-model": "EnrollmentRedeem"},
)
async def redeem(request: Request) -> Response:
    ctx = context(request)
    body = await raw_body(request)
    peer = request.client.host if request.client else "unknown"
    wait_s = ctx.buckets.take(f"enroll:{peer}")
    if wait_s:
        raise ApiError("rate_limited", "slow down", headers={"Retry-After": str(wait_s)})
    return await run_in_threadpool(_redeem, request, body)
