"""Unsigned probes: ``/healthz`` (the process answers), ``/readyz`` (database reachable and
migrated; 503 ``not_ready`` with ``Retry-After`` otherwise), ``/metrics`` (Prometheus text
format; expose it to the scraper only)."""

from __future__ import annotations

import sqlite3

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.context import context, json_response
from api.problems import STORAGE_RETRY_AFTER_S, ApiError
from api.schemas import Health
from ledger import LedgerError
from ledger.core import migrations

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Response:
    return json_response(200, {"status": "ok"})


@router.get("/readyz", response_model=Health, summary="The database is reachable and migrated")
def readyz(request: Request) -> Response:
    led = context(request).ledger
    try:
        revision = led.transact(migrations.revision_in)
    except (LedgerError, OSError, sqlite3.Error, psycopg.Error) as exc:
        raise _not_ready(f"database unreachable: {type(exc).__name__}") from None
    head = migrations.head_revision()
    if revision != head:
        raise _not_ready(f"schema is at {revision}, not {head}")
    return json_response(200, {"status": "ready"})


def _not_ready(detail: str) -> ApiError:
    """503 ``not_ready`` with ``Retry-After``, as a request the database could not serve."""
    return ApiError("not_ready", detail, headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(context(request).metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
