"""The FastAPI application: :func:`create_app` wires the ledger, the routes and the pipeline.

Every answer carries ``Date`` (the server's clock, which signatures are checked against)
and ``X-Request-Id``; every error is problem+json (:mod:`api.problems`): a database that
cannot serve the request (:class:`~ledger.StorageError`) is 503 ``not_ready`` with
``Retry-After``, any other unexpected exception 500 ``internal_error``; one JSON log line
per request, with no header values, keys or bodies.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.background import refuse_exposed_key, start_background, stop_all
from api.context import Context, problem_response, take_late
from api.docs import install_docs
from api.observability import LOGGER_NAME, REQUEST_ID_PATTERN
from api.openapi import install_openapi
from api.problems import ApiError, problem_of
from api.routes import (
    accounts,
    admin,
    audit,
    cash,
    commission,
    counts,
    devices,
    enrollment,
    kyc,
    operators,
    orders,
    parties,
    proposals,
    search,
    settlement,
    station,
    suspense,
    system,
    tills,
    transfers,
    ussd,
    villagers,
    webhooks,
)
from api.routes import fees as fee_routes
from api.settings import Settings
from api.web import install_web
from api.web.console import install_console
from api.web.station import install_station
from ledger import LedgerError, StorageError, open_ledger
from ledger.core.replica import check_read_url, open_read_ledger
from sms.worker import start_sms_worker
from webhooks import WebhookSettings, Worker

log = logging.getLogger(LOGGER_NAME)

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class _Pipeline:
    """Pure ASGI wrapper: request id, Date, metrics and the access log line."""

    def __init__(self, app: ASGIApp, ctx: Context) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                given = value.decode("latin-1")
        request_id = given if REQUEST_ID_PATTERN.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = {"code": 500}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"date", b"x-content-type-options")
                ]
                headers.append((b"date", self.ctx.http_date().encode("latin-1")))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                # No answer is ever to be sniffed into HTML (a problem echoes the path).
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            await take_late(self.ctx, state)
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope.get("method", "")
            self.ctx.metrics.requests.labels(method, template, str(status["code"])).inc()
            self.ctx.metrics.duration.labels(method, template).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path"),
                    "route": template,
                    "status": status["code"],
                    "duration_ms": round(elapsed * 1000, 2),
                    "key_id": state.get("key_id"),
                    "principal_id": state.get("principal_id"),
                    "code": state.get("problem_code"),
                },
            )


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(LedgerError)
    async def refused(request: Request, exc: LedgerError) -> JSONResponse:
        """The whole error tree, rendered by :func:`api.problems.problem_of`; a bug is
        raised on to the 500 handler below."""
        problem = problem_of(exc)
        if problem is None:
            raise exc
        if isinstance(exc, StorageError):
            log.warning(
                "storage unavailable: %s",
                exc,
                extra={"request_id": request.scope.get("state", {}).get("request_id")},
            )
        return problem_response(request, problem)

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"pointer": "/" + "/".join(str(p) for p in e.get("loc", ())), "detail": e.get("msg")}
            for e in list(exc.errors())[:20]
        ]
        detail = "; ".join(f"{e['pointer']}: {e['detail']}" for e in errors)
        return problem_response(
            request, ApiError("invalid_parameter", detail, extra={"errors": errors})
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "not_found")
        return problem_response(request, ApiError(code, str(exc.detail), status=exc.status_code))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"request_id": request.scope.get("state", {}).get("request_id")},
        )
        return problem_response(request, ApiError("internal_error", "see the server log"))


def _include_routes(app: FastAPI) -> None:
    """Every API router, in the order their paths are matched."""
    app.include_router(system.router)
    app.include_router(ussd.router)  # early: the aggregator's every step matches few paths
    for module in (accounts, transfers, admin, parties, orders, devices, webhooks):
        app.include_router(module.router)
    app.include_router(proposals.router)
    app.include_router(fee_routes.router)  # fee schedules: proposed here, approved as proposals
    for router in (
        devices.exceptions_router,
        cash.agents_router,
        cash.cash_ins_router,
        cash.cash_outs_router,
        settlement.router,
        settlement.payouts_router,
        audit.runs_router,
        audit.router,
        villagers.router,
        enrollment.router,
        tills.router,
        kyc.router,
        suspense.router,
        counts.router,
        commission.router,
        operators.router,
        search.router,
        station.router,
    ):
        app.include_router(router)


def create_app(
    ledger_url: str,
    *,
    settings: Settings | None = None,
    webhook_settings: WebhookSettings | None = None,
) -> FastAPI:
    """The API on the ledger at ``ledger_url`` (migrated already; see ``/readyz``), with
    the webhook worker (unless ``worker_enabled`` is off), the timers' sweeper and the
    sealer (unless their intervals are ``None``: :mod:`api.background`) running while it
    serves."""
    settings = settings or Settings()
    hooks = webhook_settings or WebhookSettings()
    if settings.seal_interval_s is not None:  # vledger serve: one line, exit 2
        refuse_exposed_key(ledger_url, settings.service_key_path)
    led = open_ledger(ledger_url, clock=settings.clock)
    reads = None
    if settings.read_database_url is not None:
        try:
            check_read_url(settings.read_database_url, primary_url=ledger_url)
            reads = open_read_ledger(settings.read_database_url, clock=settings.clock)
        except BaseException:
            led.close()
            raise
    ctx = Context(ledger=led, settings=settings, read_ledger=reads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        background = start_background(led, ledger_url, settings)  # first: it may refuse
        worker = Worker(led, hooks).start() if hooks.worker_enabled else None
        texts = start_sms_worker(led) if hooks.worker_enabled else None  # a gateway set
        try:
            yield {}
        finally:
            stop_all(background)
            if worker is not None:
                worker.stop()
            if texts is not None:
                texts.stop()
            led.close()
            if reads is not None:
                reads.close()

    app = FastAPI(
        title="Village Ledger API",
        version="1",
        summary="Signed REST API of the Village Ledger: accounts, transfers, parties, orders,"
        " cash at agents, agents' float, devices, settlement, webhooks and audit.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    app.state.ledger_url = ledger_url
    app.state.webhooks = hooks
    _install_errors(app)
    _include_routes(app)
    install_openapi(app)
    install_web(app)  # /web/shared/*.js: the browser's signer (station app, console)
    install_console(app)  # /console/: the back office in a browser (auditors, operators)
    install_station(app)  # /station/: the village agent's app (phone first, offline shell)
    install_docs(app)  # /docs: human docs from installed assets (FastAPI's CDN page stays off)
    app.add_middleware(_Pipeline, ctx=ctx)
    return app
