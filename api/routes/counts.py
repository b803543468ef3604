"""Agents' cash counts, their variances (maker-checker) and provider statement uploads
(``reconciliation.uploads``, ``reconciliation.cash_count``).

==========================================  =============================================
``POST /v1/agents/{id}/cash-counts``        the agent itself, an operator for any agent:
                                            the count (JSON, as the ``cash-count`` job's
                                            file holds it) is reconciled now: 201, the
                                            run and the variance it proposed, if any
``GET /v1/variances``, ``/{id}``            auditors, operators
``POST /v1/variances/{id}/approval``        an operator: 202, a ``variance_approval``
                                            proposal; **another** operator approves it
                                            (``POST /v1/proposals/{id}/approve``, 422
                                            ``proposal_maker_cannot_decide`` for its
                                            maker), which posts the variance transfer and
                                            records that operator as ``decided_by``
``POST /v1/variances/{id}/reject``          an operator, with a reason: nothing moves
``POST /v1/reconciliation/statements``      operators: a provider's statement (raw
                                            ``text/csv``, ``application/xml`` camt.053,
                                            ``text/plain`` MT940, or ``multipart/form-data``
                                            with a ``file`` part) runs the ``statement``
                                            job: 201, the run
==========================================  =============================================

Storefronts have no business here (403); an agent counts only its own cash (another
agent's path: 404). Auditors read but start no statement run: a statement is an outside
record the books are compared with, handed in by the platform's operators (the jobs an
auditor starts, ``POST /v1/reconciliation/runs``, read only what is recorded).

A count and a statement are read by the jobs' own parsers, whole; one they refuse is 422
``job_refused`` (the detail names the line or field) and nothing is kept. A statement
over :data:`~ledger.limits.STATEMENT_UPLOAD_BYTES_MAX` bytes is 413 ``body_too_large``.
The same count again (another Idempotency-Key) is a new run of the same count and
proposes nothing new; another count for the same agent and moment is refused.
"""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, require_json, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.audit import _files, _folder, run_out
from api.routes.common import body_of, page_limit, page_of, signed
from api.routes.proposals import proposal_out
from api.routes.steps import id_text, parse, step_id, time_text
from api.schemas import (
    CashCountOut,
    RunDetailOut,
    VarianceApproval,
    VarianceList,
    VarianceOut,
    VarianceProposed,
    VarianceReject,
)
from ledger.flows.errors import NotFound
from ledger.limits import API_PAGE_SIZE_MAX, STATEMENT_UPLOAD_BYTES_MAX
from reconciliation import cash_count, uploads
from reconciliation.cash_count import Variance, VarianceState
from reconciliation.jobs import JobResult
from reconciliation.runs import Run

router = APIRouter(prefix="/v1", tags=["cash counts and variances"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
COUNTERS = frozenset({Role.AGENT, Role.OPERATOR})
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]

STATEMENT_TYPES: dict[str, str] = {
    "text/csv": "csv",
    "application/xml": "camt053",
    "text/xml": "camt053",
    "text/plain": "mt940",
}
"""A statement's Content-Type (raw, or its multipart part's) -> its format."""
STATEMENT_PARTS_MAX = 4
"""The most parts a multipart upload may have (one is the ``file``)."""
MULTIPART = "multipart/form-data"
Text = Annotated[str | None, Query(max_length=200)]


def variance_out(v: Variance) -> dict[str, Any]:
    return {
        "id": str(v.id),
        "count_id": str(v.count_id),
        "agent_id": str(v.agent_id),
        "currency": v.currency,
        "direction": str(v.direction),
        "amount_minor": v.amount_minor,
        "comment": v.comment,
        "state": str(v.state),
        "transfer_id": id_text(v.transfer_id),
        "decided_by": id_text(v.decided_by),
        "decided_by_name": v.decided_by_name,
        "reject_reason": v.reject_reason,
        "created_at": time_text(v.created_at),
        "decided_at": time_text(v.decided_at),
    }


def _run_detail(request: Request, run: Run) -> dict[str, Any]:
    files = _files(_folder(request, run), run)
    return {**run_out(run), "summary": run.summary, "files": files}


def _created(request: Request, done: JobResult, answer: dict[str, Any]) -> Response:
    location = {"Location": f"/v1/reconciliation/runs/{done.run.id}"}
    return json_response(201, answer, location)


# -- cash counts ------------------------------------------------------------------------


@router.post(
    "/agents/{agent_id}/cash-counts",
    status_code=201,
    response_model=CashCountOut,
    summary="An agent's counted cash, reconciled now; over or short proposes a variance",
    openapi_extra={"x-request-model": "CashCountCreate"},
)
def submit_count(request: Request, caller: Caller, agent_id: uuid.UUID) -> Response:
    require_role(caller, COUNTERS)
    if caller.role is Role.AGENT and agent_id != caller.principal_id:
        raise ApiError("agent_not_found", f"no agent {agent_id}", 404)
    body = body_of(request)

    def handle() -> Response:
        require_json(request)
        out = Path(context(request).settings.reports_dir)
        led = context(request).ledger
        done, variance = uploads.submit_count(led, agent_id=agent_id, body=body, out=out)
        answer = {
            "run": _run_detail(request, done.run),
            "variance": None if variance is None else variance_out(variance),
        }
        return _created(request, done, answer)

    return run_post(
        request, caller, body, handle, one_transaction=False
    )  # a job commits as it goes


# -- variances --------------------------------------------------------------------------


@router.get("/variances", response_model=VarianceList, summary="Cash-count variances, oldest first")
def list_variances(
    request: Request,
    caller: Caller,
    state: Annotated[VarianceState | None, Query(description="only this state")] = None,
    agent_id: Annotated[uuid.UUID | None, Query(description="only this agent's")] = None,
    limit: Limit = None,
    starting_after: Annotated[
        uuid.UUID | None, Query(description="the last id of the previous page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    try:
        found = cash_count.list_variances(
            context(request).ledger,
            state=None if state is None else state.value,
            agent_id=agent_id,
            limit=size + 1,
            starting_after=starting_after,
        )
    except NotFound:
        raise ApiError("invalid_parameter", "starting_after names no variance") from None
    return page_of(found, size, variance_out)


@router.get("/variances/{variance_id}", response_model=VarianceOut, summary="A variance")
def get_variance(request: Request, caller: Caller, variance_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    found = cash_count.get_variance(context(request).ledger, variance_id=variance_id)
    return json_response(200, variance_out(found))


@router.post(
    "/variances/{variance_id}/approval",
    status_code=202,
    response_model=VarianceProposed,
    summary="Propose approving a variance (another operator approves the proposal)",
    openapi_extra={"x-request-model": "VarianceApproval"},
)
def propose_approval(request: Request, caller: Caller, variance_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, VarianceApproval, empty_ok=True)
        made, variance = cash_count.propose_approval(
            context(request).ledger,
            proposal_id=step_id(request, caller, data.id),
            variance_id=variance_id,
            proposed_by=caller.principal_id,
        )
        answer = {"proposal": proposal_out(made), "variance": variance_out(variance)}
        return json_response(202, answer)

    return run_post(request, caller, body, handle)


@router.post(
    "/variances/{variance_id}/reject",
    response_model=VarianceOut,
    summary="Reject a variance with a reason: nothing moves",
    openapi_extra={"x-request-model": "VarianceReject"},
)
def reject_variance(request: Request, caller: Caller, variance_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, VarianceReject)
        done = cash_count.reject_variance(
            context(request).ledger,
            variance_id=variance_id,
            decider=caller.principal_id,
            reason=data.reason,
        )
        return json_response(200, variance_out(done))

    return run_post(request, caller, body, handle)


# -- statements -------------------------------------------------------------------------


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _file_part(request: Request, body: bytes) -> tuple[bytes, str | None, str | None]:
    """The ``file`` part of a multipart body: (bytes, its media type, its file name)."""
    head = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise ApiError("validation_failed", "a multipart body with a boundary and parts")
    parts = list(message.iter_parts())
    if len(parts) > STATEMENT_PARTS_MAX:
        raise ApiError("validation_failed", f"at most {STATEMENT_PARTS_MAX} parts")
    for part in parts:
        if part.get_param("name", header="content-disposition") == "file":
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                break
            return data, part.get_content_type(), part.get_filename()
    raise ApiError("validation_failed", "the multipart body has no part named file")


def _statement(request: Request, body: bytes, fmt: str | None) -> tuple[bytes, str]:
    """The statement's bytes and format (given, else by its media type or file name)."""
    media = _media_type(request.headers.get("content-type"))
    name = None
    if media == MULTIPART:
        body, part_media, name = _file_part(request, body)
        media = _media_type(part_media)
    elif media not in STATEMENT_TYPES and media != "application/octet-stream":
        raise ApiError(
            "unsupported_media_type",
            "send text/csv, application/xml, text/plain"
            " (MT940), application/octet-stream with format, or multipart/form-data",
        )
    suffix = Path(name or "").suffix.lower()
    found = fmt or STATEMENT_TYPES.get(media) or uploads.FORMAT_OF_SUFFIX.get(suffix)
    if found is None:
        raise ApiError("validation_failed", "say the statement's format: format=csv|camt053|mt940")
    return body, found


@router.post(
    "/reconciliation/statements",
    status_code=201,
    response_model=RunDetailOut,
    summary="Upload a provider's statement: the statement job reconciles it now (operators)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The statement, raw or as the multipart part named file; at most"
            f" {STATEMENT_UPLOAD_BYTES_MAX} bytes",
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "Date,Amount,Ref\n2026-06-01,1500.00,QJK1X2\n",
                },
                "application/xml": {
                    "schema": {"type": "string"},
                    "example": "<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'>"
                    "...</Document>",
                },
                "text/plain": {"schema": {"type": "string"}, "example": ":20:STATEMENT\n..."},
                MULTIPART: {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
def upload_statement(
    request: Request,
    caller: Caller,
    provider: Annotated[
        str, Query(pattern=r"^[A-Z0-9_]{1,32}$", description="MPESA, AIRTEL, BANK ...")
    ],
    business_date: Annotated[date, Query(description="YYYY-MM-DD, inside the statement")],
    fmt: Annotated[
        str | None,
        Query(alias="format", pattern=r"^(csv|camt053|mt940)$", description="else by type"),
    ] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    tolerance: Text = None,
    window_days: Text = None,
    columns: Text = None,
    date_format: Text = None,
    delimiter: Text = None,
    decimal: Text = None,
    thousands: Text = None,
    encoding: Text = None,
    opening: Text = None,
    closing: Text = None,
) -> Response:
    require_role(caller, OPERATOR)
    body = body_of(request)
    if len(body) > STATEMENT_UPLOAD_BYTES_MAX:
        raise ApiError(
            "body_too_large", f"a statement is at most {STATEMENT_UPLOAD_BYTES_MAX} bytes"
        )
    given = {
        "currency": currency,
        "tolerance": tolerance,
        "window_days": window_days,
        "columns": columns,
        "date_format": date_format,
        "delimiter": delimiter,
        "decimal": decimal,
        "thousands": thousands,
        "encoding": encoding,
        "opening": opening,
        "closing": closing,
    }
    options = {k: v for k, v in given.items() if v is not None}

    def handle() -> Response:
        data, found = _statement(request, body, fmt)
        done = uploads.upload_statement(
            context(request).ledger,
            data=data,
            provider=provider,
            business_date=business_date,
            fmt=found,
            options=options,
            out=Path(context(request).settings.reports_dir),
        )
        return _created(request, done, _run_detail(request, done.run))

    return run_post(
        request, caller, body, handle, one_transaction=False
    )  # a job commits as it goes
