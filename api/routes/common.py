"""Pieces every route uses: the signed-caller dependency, paging, shaping answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.context import (
    context,
    defer_take,
    json_response,
    raw_body,
    run_post,
    run_post_async,
    take_or_refuse,
    verify_looked_up,
    verify_remembered,
)
from api.principals import ApiKey
from api.problems import ApiError
from api.routes.steps import parse
from api.schemas import account_flag_names, transfer_flag_names
from ledger import Account, Ledger, Transfer
from ledger.limits import API_PAGE_SIZE_MAX
from ledger.limits import API_PAGE_SIZE_MAX as PAGE_SIZE_MAX

__all__ = [
    "PAGE_SIZE_MAX",
    "account_out",
    "body_of",
    "page_limit",
    "page_of",
    "signed",
    "transfer_out",
    "write",
    "write_async",
]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


async def signed(request: Request) -> ApiKey:
    """The caller, once the body is read (size-limited), the signature verified and the
    key's rate limit taken. The signature is checked on the event loop when the key is
    remembered (a worker thread looks it up otherwise). The take is a statement in the
    database, shared by every process: a POST's is made in the request's own transaction
    (:func:`api.context.run_post`), any other request's in a worker thread now."""
    body = await raw_body(request)
    key = verify_remembered(request, body)
    if key is None:
        key = await run_in_threadpool(verify_looked_up, request, body)
    if request.method == "POST":
        defer_take(request)
    else:
        await run_in_threadpool(take_or_refuse, request, key)
    return key


def body_of(request: Request) -> bytes:
    found: bytes = request.scope["state"]["raw_body"]
    return found


def write(
    request: Request,
    caller: ApiKey,
    model: type[M],
    act: Callable[[Ledger, M], T],
    shape: Callable[[T], dict[str, Any]],
    *,
    status: int = 200,
    location: str | None = None,
    empty_ok: bool = False,
) -> Response:
    """A write route's body, once per Idempotency-Key (:func:`api.context.run_post`):
    parse the signed body as ``model`` (empty allowed with ``empty_ok``), make the one
    flow call ``act``, answer ``shape`` of what it made with ``status`` (and, given
    ``location``, a ``Location`` of that prefix and the answer's ``id``)."""
    handle = _handler(request, model, act, shape, status, location, empty_ok)
    return run_post(request, caller, body_of(request), handle)


async def write_async(
    request: Request,
    caller: ApiKey,
    model: type[M],
    act: Callable[[Ledger, M], T],
    shape: Callable[[T], dict[str, Any]],
    *,
    status: int = 200,
    location: str | None = None,
    empty_ok: bool = False,
) -> Response:
    """:func:`write` from the event loop, no worker thread (:func:`api.context.run_post_async`:
    the parse, the flow call and the answer run on one of the ledger's writer threads, in
    the request's transaction). For a route whose body does nothing else (no I/O of its
    own on the loop)."""
    handle = _handler(request, model, act, shape, status, location, empty_ok)
    return await run_post_async(request, caller, body_of(request), handle)


def _handler(
    request: Request,
    model: type[M],
    act: Callable[[Ledger, M], T],
    shape: Callable[[T], dict[str, Any]],
    status: int,
    location: str | None,
    empty_ok: bool,
) -> Callable[[], Response]:
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        answer = shape(act(led, parse(request, body, model, empty_ok=empty_ok)))
        headers = None if location is None else {"Location": f"{location}/{answer['id']}"}
        return json_response(status, answer, headers)

    return handle


def page_of(found: Sequence[T], size: int, shape: Callable[[T], dict[str, Any]]) -> Response:
    """A list answer: the first ``size`` of ``found`` (fetched with one more than
    ``size``, so that ``has_more`` says whether another page follows), shaped."""
    return json_response(
        200, {"data": [shape(x) for x in found[:size]], "has_more": len(found) > size}
    )


def page_limit(request: Request, limit: int | None) -> int:
    settings = context(request).settings
    if limit is None:
        return settings.page_size_default
    if not 1 <= limit <= min(settings.page_size_max, API_PAGE_SIZE_MAX):
        raise ApiError("invalid_parameter", f"limit is 1..{settings.page_size_max}")
    return limit


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _id(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def account_out(a: Account) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "currency": a.currency,
        "code": a.code,
        "flags": account_flag_names(a.flags),
        "metadata": a.metadata,
        "debits_pending": a.debits_pending,
        "debits_posted": a.debits_posted,
        "credits_pending": a.credits_pending,
        "credits_posted": a.credits_posted,
        "created_at": _time(a.created_at),
    }


def transfer_out(t: Transfer) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "debit_account_id": _id(t.debit_account_id),
        "credit_account_id": _id(t.credit_account_id),
        "amount": t.amount,
        "currency": t.currency,
        "code": t.code,
        "flags": transfer_flag_names(t.flags),
        "pending_id": _id(t.pending_id),
        "timeout_s": t.timeout_s,
        "reverses_id": _id(t.reverses_id),
        "metadata": t.metadata,
        "created_at": _time(t.created_at),
    }
