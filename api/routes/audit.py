"""What auditors read: reconciliation runs and their files, the sealed journal's signed
checkpoints, and the service's public key (to verify those checkpoints offline).

Who may do what: auditors and operators read all of it and run the reconciliation jobs
(``POST /v1/reconciliation/runs``: the job runs in the request and its run is the
answer); any other role: 403. Nothing else here writes: the blocks are the sealer's.
The jobs that read an outside record (a provider statement, a cash count) take a file
and run from ``vledger reconcile``.

With a read replica (``Settings.read_database_url``) the runs and checkpoints are read
there (a list may lag the primary by the replica's delay; one run asked for by id is
looked for on the primary too), and a job started here reads there once the replica has
passed the close of its date (``reconciliation.replica``); the run row is the primary's.

A run's files are served from ``Settings.reports_dir`` as the jobs laid them out
(``<reports_dir>/<job>/<business date>/<run id>/``), and only the names the run has: the
three every run has (``summary.json``, ``detail.csv``, ``report.html``) and the files its
job made, as its immutable row lists them with their SHA-256 (the ``pack`` job's
``pack/...``; one whose bytes changed since is refused, 409 ``run_file_changed``). The
folder comes from the run's row, the name must be one of those: a client's path never
reaches the file system. The ``pack`` job signs with the service key this service is
configured with. ``GET /v1/service-key`` never creates a key: when none can be loaded
it answers 404.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey
from api.problems import PROBLEM_CONTENT_TYPE, ApiError
from api.routes.common import body_of, page_limit, signed
from api.routes.steps import parse, time_text
from api.schemas import CheckpointList, RunCreate, RunDetailOut, RunList
from ledger.core.store import from_us
from ledger.limits import API_PAGE_SIZE_MAX
from reconciliation.jobs import JOBS, JobRequest, run_job
from reconciliation.replica import Replica
from reconciliation.runs import Run, get_run, list_runs
from reconciliation.seal import BlockRow, blocks_page
from reconciliation.service_key import ServiceKeyError, existing_service_key

runs_router = APIRouter(prefix="/v1/reconciliation/runs", tags=["audit"])
router = APIRouter(prefix="/v1", tags=["audit"])

Caller = Annotated[ApiKey, Depends(signed)]
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)]

FILE_TYPES: dict[str, str] = {
    "summary.json": "application/json",
    "detail.csv": "text/csv; charset=utf-8",
    "report.html": "text/html; charset=utf-8",
}
"""The files every run has."""
SUFFIX_TYPES: dict[str, str] = {
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}
"""Content types of a job's extra files by suffix; any other is plain text."""
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
PEM_CONTENT_TYPE = "application/x-pem-file"
BLOCK_NUMBER_MAX = 2**62
"""The largest ``starting_after`` (block numbers are 64-bit in the database)."""
API_JOBS = tuple(name for name, spec in JOBS.items() if not spec.needs_input)
"""The jobs a request can run: those that read no outside file."""


def _time_us(value: int) -> str | None:
    return time_text(from_us(value))


def run_out(run: Run) -> dict[str, Any]:
    """A run as lists show it (one run's answer adds its summary and files)."""
    return {
        "id": str(run.id),
        "job": run.job,
        "business_date": run.business_date,
        "scope": run.scope,
        "attempt": run.attempt,
        "rule_version": run.rule_version,
        "input_sha256": run.input_sha256,
        "checked": run.checked,
        "breaks": run.breaks,
        "status": run.status,
        "started_at": _time_us(run.started_at_us),
        "finished_at": _time_us(run.finished_at_us),
        "read_source": run.reads.source,
        "read_lsn": run.reads.read_lsn,
        "close_lsn": run.reads.close_lsn,
    }


def checkpoint_out(block: BlockRow) -> dict[str, Any]:
    return {
        "number": block.number,
        "tree_size_before": block.tree_size_before,
        "tree_size": block.tree_size,
        "first_seq": block.first_seq,
        "last_seq": block.last_seq,
        "root_hash": block.root_hash,
        "chain_head": block.chain_head,
        "checkpoint": block.checkpoint,
        "key_name": block.key_name,
        "key_id": block.key_id,
        "public_key": block.public_key,
        "sealed_at": _time_us(block.sealed_at_us),
    }


def _run(request: Request, run_id: uuid.UUID) -> Run:
    """The run, read where auditors read; a run the replica has not replayed yet (one
    just started here, say) is read on the primary before it is called unknown."""
    ctx = context(request)
    found = get_run(ctx.reads, run_id)
    if found is None and ctx.read_ledger is not None:
        found = get_run(ctx.ledger, run_id)
    if found is None:
        raise ApiError("not_found", f"no run {run_id}", 404)
    return found


def _folder(request: Request, run: Run) -> Path | None:
    """The run's folder under ``reports_dir``, or None when it is not there (or the row's
    names would lead out of it)."""
    base = Path(context(request).settings.reports_dir).resolve()
    folder = (base / run.job / run.business_date / str(run.id)).resolve()
    if not folder.is_relative_to(base) or not folder.is_dir():
        return None
    return folder


def _extra_files(run: Run) -> dict[str, str]:
    """A job's extra files (the ``pack`` job's ``pack/...``) with the SHA-256 its
    immutable run row recorded for each."""
    listed = run.summary.get("files")
    if not isinstance(listed, dict):
        return {}
    return {
        name: facts["sha256"]
        for name, facts in listed.items()
        if isinstance(name, str) and isinstance(facts, dict) and "sha256" in facts
    }


def _files(folder: Path | None, run: Run) -> list[str]:
    if folder is None:
        return []
    names = [*FILE_TYPES, *sorted(_extra_files(run))]
    return [name for name in names if (folder / name).is_file()]


def _content_type(name: str) -> str:
    return FILE_TYPES.get(name) or SUFFIX_TYPES.get(Path(name).suffix, TEXT_CONTENT_TYPE)


# -- runs -------------------------------------------------------------------------------


@runs_router.get(
    "", response_model=RunList, summary="Reconciliation runs, newest first (auditors, operators)"
)
def runs(
    request: Request,
    caller: Caller,
    limit: Limit = None,
    job: Annotated[
        str | None,
        Query(pattern=r"^[a-z0-9_-]{1,64}$", description="only the runs of this job"),
    ] = None,
    starting_after: Annotated[
        uuid.UUID | None, Query(description="the last run id of the previous page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    led = context(request).reads
    after = None if starting_after is None else get_run(led, starting_after)
    if starting_after is not None and (after is None or job not in (None, after.job)):
        raise ApiError("invalid_parameter", "starting_after names no run of this list")
    found = list_runs(led, job=job, limit=size + 1, after=after)
    return json_response(
        200, {"data": [run_out(r) for r in found[:size]], "has_more": len(found) > size}
    )


@runs_router.post(
    "",
    status_code=201,
    response_model=RunDetailOut,
    summary="Run a reconciliation job for a business date now (auditors, operators)",
    description="Jobs: " + ", ".join(API_JOBS) + ". Another run of the same job, date and"
    " scope is a new attempt; the Idempotency-Key makes a retried request one run.",
    openapi_extra={"x-request-model": "RunCreate"},
)
def start_run(request: Request, caller: Caller) -> Response:
    require_role(caller, READ_ALL)
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, RunCreate)
        if data.job not in API_JOBS:
            raise ApiError(
                "unknown_job",
                f"no job {data.job!r} runs over the API; jobs: {', '.join(API_JOBS)}",
            )
        try:
            day = date.fromisoformat(data.business_date)
        except ValueError:
            raise ApiError("validation_failed", f"not a date: {data.business_date!r}") from None
        settings = context(request).settings
        key_path = None if settings.service_key_path is None else Path(settings.service_key_path)
        job_request = JobRequest(
            day, scope=data.scope, options=dict(data.options), service_key_path=key_path
        )
        reports = Path(settings.reports_dir)
        ctx = context(request)
        replica = None if ctx.read_ledger is None else Replica(ctx.read_ledger)
        done = run_job(ctx.ledger, data.job, job_request, out=reports, replica=replica)
        detail = {**run_out(done.run), "summary": done.run.summary}
        detail["files"] = _files(_folder(request, done.run), done.run)
        return json_response(201, detail, {"Location": f"/v1/reconciliation/runs/{done.run.id}"})

    return run_post(
        request, caller, body, handle, one_transaction=False
    )  # a job commits as it goes


@runs_router.get(
    "/{run_id}",
    response_model=RunDetailOut,
    summary="A reconciliation run with its summary and the files it has",
)
def run(request: Request, caller: Caller, run_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    found = _run(request, run_id)
    files = _files(_folder(request, found), found)
    return json_response(200, {**run_out(found), "summary": found.summary, "files": files})


@runs_router.get(
    "/{run_id}/files/{name:path}",
    summary="One of a run's files: its summary, its detail (the source of truth), its report,"
    " or a file the job made (the pack job's pack/...)",
    description="A job's extra file is served only while its bytes have the SHA-256 that"
    " the run's row recorded (409 run_file_changed otherwise).",
    response_class=Response,
    responses={
        200: {
            "description": "The file as the job wrote it",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            },
        },
        409: {
            "description": "The job's file changed since its run recorded it",
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        },
    },
)
def run_file(
    request: Request,
    caller: Caller,
    run_id: uuid.UUID,
    name: Annotated[str, PathParam(pattern=r"^[A-Za-z0-9._/-]{1,200}$")],
) -> Response:
    require_role(caller, READ_ALL)
    found = _run(request, run_id)
    extra = _extra_files(found)
    folder = _folder(request, found)
    if folder is None or (name not in FILE_TYPES and name not in extra):
        raise ApiError("not_found", f"run {run_id} has no {name} here", 404)
    try:
        data = (folder / name).read_bytes()
    except OSError:
        raise ApiError("not_found", f"run {run_id} has no {name} here", 404) from None
    if name in extra and hashlib.sha256(data).hexdigest() != extra[name]:
        raise ApiError(
            "run_file_changed", f"{name} no longer has the SHA-256 run {run_id} recorded"
        )
    headers = {
        "Content-Disposition": f'attachment; filename="{found.id}-{name.replace("/", "_")}"',
        "X-Content-Type-Options": "nosniff",
    }
    return Response(data, media_type=_content_type(name), headers=headers)


# -- checkpoints, the service key --------------------------------------------------------


@router.get(
    "/checkpoints",
    response_model=CheckpointList,
    summary="The sealed blocks' signed checkpoints, in block order (auditors, operators)",
)
def checkpoints(
    request: Request,
    caller: Caller,
    limit: Limit = None,
    starting_after: Annotated[
        int | None, Query(ge=0, le=BLOCK_NUMBER_MAX, description="last block number of a page")
    ] = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    first = (starting_after or 0) + 1
    found = blocks_page(context(request).reads, first, first + size)
    return json_response(
        200, {"data": [checkpoint_out(b) for b in found[:size]], "has_more": len(found) > size}
    )


@router.get(
    "/service-key",
    summary="The service's Ed25519 public key (PEM), which signs the checkpoints",
    response_class=Response,
    responses={
        200: {
            "description": "SubjectPublicKeyInfo PEM",
            "content": {PEM_CONTENT_TYPE: {"schema": {"type": "string"}}},
        }
    },
)
def service_key(request: Request, caller: Caller) -> Response:
    require_role(caller, READ_ALL)
    database_url: str = request.app.state.ledger_url
    path = context(request).settings.service_key_path
    try:
        key = existing_service_key(database_url, path)
    except (ServiceKeyError, OSError):
        raise ApiError("not_found", "the service key cannot be loaded", 404) from None
    if key is None:
        raise ApiError("not_found", "no service key is configured here", 404)
    return Response(key.public_pem(), media_type=PEM_CONTENT_TYPE)
