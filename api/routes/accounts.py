"""``/v1/accounts``: create, get, list, statement, balance at a moment."""

from __future__ import annotations

import functools
import operator
import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api import accounts, strictjson
from api.access import WRITERS, can_read_account, require_role
from api.context import context, json_response, require_json, run_post
from api.principals import ApiKey
from api.problems import ApiError, status_error
from api.routes.common import account_out, body_of, page_limit, signed, transfer_out
from api.schemas import (
    ACCOUNT_FLAGS,
    AccountCreate,
    AccountList,
    AccountOut,
    BalanceOut,
    TransferList,
)
from ledger import Account, AccountFlags, Status
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

Caller = Annotated[ApiKey, Depends(signed)]
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[uuid.UUID | None, Query(description="the last id of the previous page")]


def _account(data: AccountCreate) -> Account:
    flags = functools.reduce(operator.or_, (ACCOUNT_FLAGS[f] for f in data.flags), AccountFlags(0))
    return Account(
        id=data.id,
        currency=data.currency,
        code=data.code,
        flags=flags,
        metadata=dict(data.metadata) if data.metadata is not None else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=AccountOut,
    summary="Create an account (owned by the caller)",
    responses={200: {"model": AccountOut, "description": "the caller's account existed"}},
    openapi_extra={"x-request-model": "AccountCreate"},
)
def create_account(request: Request, caller: Caller) -> Response:
    require_role(caller, WRITERS)
    ctx = context(request)
    body = body_of(request)

    def handle() -> Response:
        require_json(request)
        data = strictjson.parse(body, AccountCreate)
        created = accounts.create_account(ctx.ledger, caller, _account(data))
        if created.account is None:
            raise status_error(created.status, "the account was not created")
        status = 201 if created.status is Status.CREATED else 200
        return json_response(
            status,
            account_out(created.account),
            {"Location": f"/v1/accounts/{created.account.id}"},
        )

    return run_post(request, caller, body, handle)


@router.get("", response_model=AccountList, summary="List the accounts the caller may read")
def list_accounts(
    request: Request, caller: Caller, limit: Limit = None, starting_after: After = None
) -> Response:
    size = page_limit(request, limit)
    page = accounts.list_accounts(
        context(request).ledger, caller, starting_after=starting_after, limit=size
    )
    if page is None:
        raise ApiError("invalid_parameter", "starting_after names no account of this list")
    found, has_more = page
    return json_response(200, {"data": [account_out(a) for a in found], "has_more": has_more})


def _readable(request: Request, caller: ApiKey, account_id: uuid.UUID) -> None:
    if not can_read_account(context(request).ledger, caller, account_id):
        raise ApiError("not_found", "no such account")


@router.get("/{account_id}", response_model=AccountOut, summary="Get an account")
def get_account(request: Request, caller: Caller, account_id: uuid.UUID) -> Response:
    _readable(request, caller, account_id)
    found = context(request).ledger.lookup_accounts([account_id])
    if not found:
        raise ApiError("not_found", "no such account")
    return json_response(200, account_out(found[0]))


@router.get(
    "/{account_id}/transfers",
    response_model=TransferList,
    summary="The account's statement: transfers touching it, in the order applied",
)
def account_transfers(
    request: Request,
    caller: Caller,
    account_id: uuid.UUID,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    _readable(request, caller, account_id)
    size = page_limit(request, limit)
    found = context(request).ledger.account_transfers(
        account_id, after=starting_after, limit=size + 1
    )
    return json_response(
        200, {"data": [transfer_out(t) for t in found[:size]], "has_more": len(found) > size}
    )


@router.get(
    "/{account_id}/balance",
    response_model=BalanceOut,
    summary="Posted counters as of a moment (inclusive)",
)
def balance(
    request: Request,
    caller: Caller,
    account_id: uuid.UUID,
    at: Annotated[
        datetime | None,
        Query(
            description="RFC 3339 time with an offset; default: now",
            examples=["2026-06-01T08:00:00Z"],
        ),
    ] = None,
) -> Response:
    _readable(request, caller, account_id)
    led = context(request).ledger
    if at is None:
        at = led.now()
    if at.tzinfo is None or at.utcoffset() is None:
        raise ApiError("invalid_parameter", "at needs a time zone offset (Z or +03:00)")
    found = led.balance_at(account_id, at)
    if found is None:
        raise ApiError("not_found", "no such account")
    return json_response(
        200,
        {
            "account_id": str(account_id),
            "at": at.isoformat(),
            "debits_posted": found.debits_posted,
            "credits_posted": found.credits_posted,
            "balance_posted": found.balance_posted,
        },
    )
