"""The OpenAPI 3.1 document: FastAPI's, completed with what the routes read by hand.

Routes parse their bodies themselves (strict JSON, after the signature), so the request
bodies, the signature headers and every problem answer are added here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.problems import PROBLEM_CONTENT_TYPE, STORAGE_RETRY_AFTER_S, all_codes
from api.schemas import (
    AccountCreate,
    AgentSmsContactSet,
    CashCountCreate,
    CashInCreate,
    CashOutCancel,
    CashOutConfirm,
    CashOutCreate,
    CommissionPayoutCreate,
    DeviceAllowance,
    DeviceCreate,
    DeviceSync,
    EnrollmentCreate,
    EnrollmentRedeem,
    FeeScheduleCreate,
    FloatThresholdSet,
    FloatTopUpCreate,
    FloatTransferCreate,
    GuaranteeCapSet,
    KeyRevoked,
    KycTierSet,
    OperatorCreate,
    OperatorKeyCreate,
    OrderCreate,
    OrderDeliver,
    OrderDispute,
    OrderExtend,
    OrderPay,
    OrderRefund,
    OrderResolve,
    OrderStep,
    PartyCreate,
    PayoutConfirm,
    PayoutFail,
    Problem,
    ProposalReject,
    RunCreate,
    SignedRecordIn,
    SuspenseReassign,
    SuspenseReturn,
    TierLimitsSet,
    TransferBatchCreate,
    TransferCreate,
    VarianceApproval,
    VarianceReject,
    VillagerCreate,
    VillagerPhoneChange,
    VillagerStep,
    WebhookEndpointCreate,
    WebhookSecretRotate,
    WindowClose,
    WindowOpen,
)

SECURITY_DESCRIPTION = """\
Every request under `/v1` is signed with HTTP Message Signatures (RFC 9421): one
signature tagged `vledger` in `Signature-Input` / `Signature`, covering `"@method"
"@target-uri"`, plus `"content-type" "content-digest"` with a body (Content-Digest,
RFC 9530, `sha-256`), plus `"idempotency-key"` when present; parameters `created`
(within 300 s back and 60 s ahead of the server's `Date`), `keyid`, `alg` (`ed25519` or
`hmac-sha256`, the key's registered algorithm), `tag="vledger"`, optional `nonce`."""

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        AccountCreate,
        TransferBatchCreate,
        PartyCreate,
        OrderCreate,
        OrderStep,
        OrderPay,
        OrderDeliver,
        OrderDispute,
        OrderResolve,
        OrderRefund,
        DeviceCreate,
        DeviceAllowance,
        DeviceSync,
        WebhookEndpointCreate,
        WebhookSecretRotate,
        CashInCreate,
        CashOutCreate,
        CashOutConfirm,
        CashOutCancel,
        CashCountCreate,
        VarianceApproval,
        VarianceReject,
        FloatTopUpCreate,
        ProposalReject,
        FloatTransferCreate,
        FloatThresholdSet,
        WindowOpen,
        WindowClose,
        PayoutConfirm,
        PayoutFail,
        CommissionPayoutCreate,
        RunCreate,
        VillagerCreate,
        VillagerStep,
        VillagerPhoneChange,
        FeeScheduleCreate,
        EnrollmentCreate,
        EnrollmentRedeem,
        OperatorCreate,
        OperatorKeyCreate,
        KycTierSet,
        TierLimitsSet,
        SuspenseReassign,
        SuspenseReturn,
        GuaranteeCapSet,
        OrderExtend,
        AgentSmsContactSet,
    )
}
OPTIONAL_BODIES = frozenset(
    {
        "OrderStep",
        "OrderDeliver",
        "OrderRefund",
        "WebhookSecretRotate",
        "CashOutConfirm",
        "CashOutCancel",
        "VillagerStep",
        "VarianceApproval",
    }
)
"""Request models whose every field has a default: the body may be left out."""
EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    *REQUEST_MODELS.values(),
    TransferCreate,
    SignedRecordIn,
    Problem,
    KeyRevoked,
)

PROBLEMS_READ = {
    "400": "A query or path parameter is malformed (invalid_parameter)",
    "401": "Unsigned, badly signed, stale, or an unknown/revoked key (signature_*, key_unknown,"
    " digest_mismatch); carries the server's Date",
    "403": "The key's role may not do this (forbidden)",
    "404": "No such object, or another tenant's (not_found)",
    "429": "Rate limit of the key (rate_limited); see Retry-After",
    "500": "Internal error (internal_error)",
    "503": "The database is unreachable, locked for too long, or not migrated (not_ready);"
    " nothing was committed: retry after Retry-After",
}
PROBLEMS_WRITE = {
    **PROBLEMS_READ,
    "400": "Idempotency-Key missing or malformed, or the body is not strict JSON"
    " (idempotency_key_missing, idempotency_key_invalid, invalid_json)",
    "409": "A request with this Idempotency-Key is still running (idempotency_in_progress,"
    " Retry-After), the client's id exists (exists, exists_with_different_*,"
    " *_exists_different, *_id_reused), or the object's state refuses the step"
    " (order_not_*, device_revoked, cash_out_expired, payout_not_pending ...)",
    "413": "Body over the size limit (body_too_large)",
    "415": "Content-Type is not application/json (unsupported_media_type)",
    "422": "The body breaks the schema (validation_failed), the key was used with another"
    " body (idempotency_key_reused), or the ledger refused it (one code per core status"
    " and per flow refusal: float_short, wallet_short, currency_mismatch ...)",
}


RETRY_AFTER_HEADER = {
    "description": f"Seconds to wait before sending the request again ({STORAGE_RETRY_AFTER_S})",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _header(name: str, description: str, *, required: bool) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


SIGNATURE_HEADERS = [
    _header("Signature-Input", "RFC 9421 signature parameters (tag vledger)", required=True),
    _header("Signature", "RFC 9421 signature", required=True),
]
WRITE_HEADERS = [
    _header("Content-Digest", "RFC 9530 sha-256 digest of the body", required=True),
    _header(
        "Idempotency-Key",
        'A Structured Field string, 1..255 ASCII characters, e.g. "4f1c..."; the same key'
        " and body replay the stored answer (Idempotency-Replayed: true) for 24 h",
        required=True,
    ),
]


def _schemas() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for model in EXTRA_MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    found["Problem"]["properties"]["code"]["enum"] = all_codes()
    return found


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=SECURITY_DESCRIPTION,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_schemas())
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        "httpMessageSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "Signature",
            "description": SECURITY_DESCRIPTION,
        }
    }
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            model = operation.pop("x-request-model", None)
            if model is not None:
                example = REQUEST_MODELS[model].model_json_schema().get("examples")
                body: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model}"}}
                if example:
                    body["example"] = example[0]
                operation["requestBody"] = {
                    "required": model not in OPTIONAL_BODIES,
                    "content": {"application/json": body},
                }
            if not path.startswith("/v1/"):
                responses.setdefault("500", _problem(PROBLEMS_READ["500"]))
                if path == "/readyz":
                    responses["503"] = _problem("Database unreachable or not migrated")
                continue
            operation["security"] = [{"httpMessageSignature": []}]
            params = operation.setdefault("parameters", [])
            params.extend(SIGNATURE_HEADERS)
            problems = PROBLEMS_READ
            if method in ("post", "put"):  # put: an agent's SMS phone
                params.extend(WRITE_HEADERS)
                problems = PROBLEMS_WRITE
                for answer in ("200", "201"):
                    if answer in responses:
                        responses[answer].setdefault("headers", {})["Idempotency-Replayed"] = {
                            "description": "true when this is the stored answer of a retry",
                            "schema": {"type": "string", "enum": ["true"]},
                        }
            for status, description in problems.items():
                responses.setdefault(status, _problem(description))
            responses["503"]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    return doc


def install_openapi(app: FastAPI) -> None:
    cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if "doc" not in cache:
            cache["doc"] = build(app)
        return cache["doc"]

    app.openapi = openapi  # type: ignore[method-assign]
