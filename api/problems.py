"""RFC 9457 problem details: one ``type`` URI and one ``code`` per kind of refusal.

Every error the API answers is an :class:`ApiError` rendered by one handler as
``application/problem+json``::

    {"type": "urn:vledger:problem:exceeds_credits", "code": "exceeds_credits",
     "title": "...", "status": 422, "detail": "...", "instance": "/v1/...",
     "request_id": "..."}

The codes are the core's statuses (:class:`ledger.Status`) plus the API's own
(:data:`API_CODES`); ``type`` is ``urn:vledger:problem:<code>`` for each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import Status

PROBLEM_TYPE_PREFIX = "urn:vledger:problem:"
PROBLEM_CONTENT_TYPE = "application/problem+json"

API_CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "The body is not strict JSON"),
    "idempotency_key_missing": (400, "Idempotency-Key is required on every POST"),
    "idempotency_key_invalid": (400, "Idempotency-Key is malformed"),
    "invalid_parameter": (400, "A query or path parameter is malformed"),
    "signature_missing": (401, "The request is not signed"),
    "signature_invalid": (401, "The request signature does not verify"),
    "signature_expired": (401, "The signature's created time is out of range"),
    "signature_coverage": (401, "The signature does not cover the required components"),
    "digest_mismatch": (401, "Content-Digest does not match the body"),
    "key_unknown": (401, "The key id is unknown or revoked"),
    "forbidden": (403, "This role may not do that"),
    "not_found": (404, "No such object"),
    "method_not_allowed": (405, "Method not allowed"),
    "idempotency_in_progress": (409, "A request with this Idempotency-Key is in progress"),
    "body_too_large": (413, "The request body is too large"),
    "unsupported_media_type": (415, "The body must be application/json"),
    "idempotency_key_reused": (422, "This Idempotency-Key was used with another request"),
    "validation_failed": (422, "The request does not match the schema"),
    "rate_limited": (429, "Too many requests for this key"),
    "internal_error": (500, "Internal error"),
    "not_ready": (503, "The database is unreachable or not migrated"),
}
"""The API's own problem codes: HTTP status and title."""

STATUS_HTTP: dict[Status, int] = {s: 422 for s in Status}
STATUS_HTTP.update({Status.CREATED: 201, Status.EXISTS: 409})


def problem_type(code: str) -> str:
    return f"{PROBLEM_TYPE_PREFIX}{code}"


def all_codes() -> list[str]:
    """Every problem code, the core's statuses included (for the OpenAPI document)."""
    return sorted({*API_CODES, *(s.value for s in Status if s is not Status.CREATED)})


@dataclass
class ApiError(Exception):
    """An expected refusal: rendered as problem+json with ``status`` and ``code``."""

    code: str
    detail: str = ""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.status:
            self.status = API_CODES[self.code][0] if self.code in API_CODES else 422
        super().__init__(self.detail or self.code)

    @property
    def title(self) -> str:
        if self.code in API_CODES:
            return API_CODES[self.code][1]
        return self.code.replace("_", " ").capitalize()

    def body(self, *, instance: str, request_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "type": problem_type(self.code),
            "code": self.code,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            answer["detail"] = self.detail
        answer["instance"] = instance
        answer["request_id"] = request_id
        answer.update(self.extra)
        return answer


def status_error(status: Status, detail: str = "", **extra: Any) -> ApiError:
    """The problem for a core status that refuses a whole request."""
    return ApiError(status.value, detail, STATUS_HTTP[status], extra=extra)
