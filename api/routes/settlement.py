"""Settlement windows and their payouts (``ledger.flows.settlement``).

Who may do what (another role: 403):

==========================  ==============================================================
open, close a window;       operators
confirm, fail a payout
list, get a window          auditors, operators (a window's totals are every storefront's
                            business together, so storefronts do not read windows)
report of a window          auditors, operators
a window's payouts          auditors and operators all of them; a storefront **only its
                            own**: at most one, since a window pays each storefront once
                            (an empty page when it has none there, or the window does not
                            exist: nothing leaks about others)
get a payout                its storefront; auditors, operators (another's: 404)
==========================  ==============================================================

A storefront learns its payouts' window and payout ids from its ``payout.created``,
``payout.confirmed`` and ``payout.failed`` webhooks. Agents have no business here (403).

A window's id is the client's (the operator's) permanent id: opening it again answers it.
Closing, confirming and failing are idempotent in the flow by the window's or payout's
id (the same provider, reference or reason answers the object unchanged), so they need no
id of their own.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import page_limit, page_of, signed, write
from api.routes.steps import id_text, time_text
from api.schemas import (
    PayoutConfirm,
    PayoutFail,
    PayoutList,
    PayoutOut,
    WindowClose,
    WindowList,
    WindowOpen,
    WindowOut,
    WindowReportOut,
)
from ledger import Ledger
from ledger.flows import settlement
from ledger.flows.errors import NotFound
from ledger.flows.settlement import Payout, Window, WindowReport, WindowState
from ledger.limits import API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/settlement-windows", tags=["settlement"])
payouts_router = APIRouter(prefix="/v1/payouts", tags=["settlement"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
PAYOUT_READERS = frozenset({Role.STOREFRONT}) | READ_ALL

Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX)]
After = Annotated[uuid.UUID | None, Query(description="last id of a page")]


def window_out(w: Window) -> dict[str, Any]:
    return {
        "id": str(w.id),
        "currency": w.currency,
        "state": w.state.value,
        "provider": w.provider,
        "payouts_count": w.payouts_count,
        "payouts_total_minor": w.payouts_total_minor,
        "opened_at": time_text(w.opened_at),
        "closed_at": time_text(w.closed_at),
        "settled_at": time_text(w.settled_at),
    }


def payout_out(p: Payout) -> dict[str, Any]:
    return {
        "id": str(p.id),
        "window_id": str(p.window_id),
        "storefront_id": str(p.storefront_id),
        "currency": p.currency,
        "provider": p.provider,
        "proceeds_account_id": str(p.proceeds_account_id),
        "clearing_account_id": str(p.clearing_account_id),
        "proceeds_before_minor": p.proceeds_before_minor,
        "amount_minor": p.amount_minor,
        "state": p.state.value,
        "hold_transfer_id": str(p.hold_transfer_id),
        "resolve_transfer_id": id_text(p.resolve_transfer_id),
        "provider_reference": p.provider_reference,
        "failure_reason": p.failure_reason,
        "created_at": time_text(p.created_at),
        "resolved_at": time_text(p.resolved_at),
    }


def report_out(r: WindowReport) -> dict[str, Any]:
    return {
        "window": window_out(r.window),
        "clearing_account_id": id_text(r.clearing_account_id),
        "lines": [
            {
                "storefront_id": str(line.storefront_id),
                "payout_id": str(line.payout_id),
                "state": line.state.value,
                "provider_reference": line.provider_reference,
                "proceeds_before_minor": line.proceeds_before_minor,
                "amount_minor": line.amount_minor,
                "held_minor": line.held_minor,
                "posted_minor": line.posted_minor,
                "voided_minor": line.voided_minor,
                "proceeds_after_minor": line.proceeds_after_minor,
                "ties": line.ties,
            }
            for line in r.lines
        ],
        "proceeds_before_total_minor": r.proceeds_before_total_minor,
        "payouts_total_minor": r.payouts_total_minor,
        "paid_total_minor": r.paid_total_minor,
        "failed_total_minor": r.failed_total_minor,
        "pending_total_minor": r.pending_total_minor,
        "ledger_held_minor": r.ledger_held_minor,
        "ledger_posted_minor": r.ledger_posted_minor,
        "ledger_voided_minor": r.ledger_voided_minor,
        "clearing_movement_minor": r.clearing_movement_minor,
        "proceeds_after_total_minor": r.proceeds_after_total_minor,
        "ties": r.ties,
        "problems": list(r.problems),
    }


# -- windows ----------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=WindowOut,
    summary="Open a settlement window for a currency (operators)",
    openapi_extra={"x-request-model": "WindowOpen"},
)
def open_window(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: WindowOpen) -> Window:
        return settlement.open_window(led, window_id=data.id, currency=data.currency)

    return write(
        request, caller, WindowOpen, act, window_out, status=201, location="/v1/settlement-windows"
    )


@router.get("", response_model=WindowList, summary="Settlement windows, oldest first")
def list_windows(
    request: Request,
    caller: Caller,
    limit: Limit = None,
    starting_after: After = None,
    currency: Annotated[
        str | None, Query(pattern=r"^[A-Z]{3}$", description="only this currency")
    ] = None,
    state: Annotated[WindowState | None, Query(description="only this state")] = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    led = context(request).ledger
    found = settlement.list_windows(
        led, currency=currency, state=state, limit=size + 1, starting_after=starting_after
    )
    return page_of(found, size, window_out)


@router.get("/{window_id}", response_model=WindowOut, summary="Get a settlement window")
def get_window(request: Request, caller: Caller, window_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    led = context(request).ledger
    return json_response(200, window_out(settlement.get_window(led, window_id=window_id)))


@router.post(
    "/{window_id}/close",
    response_model=WindowOut,
    summary="Close the window: each storefront's available proceeds become one payout",
    openapi_extra={"x-request-model": "WindowClose"},
)
def close_window(request: Request, caller: Caller, window_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: WindowClose) -> Window:
        return settlement.close_window(led, window_id=window_id, provider=data.provider)

    return write(request, caller, WindowClose, act, window_out)


@router.get(
    "/{window_id}/payouts",
    response_model=PayoutList,
    summary="A window's payouts in id order (a storefront: only its own)",
)
def list_payouts(
    request: Request,
    caller: Caller,
    window_id: uuid.UUID,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    require_role(caller, PAYOUT_READERS)
    size = page_limit(request, limit)
    led = context(request).ledger
    if caller.role is Role.STOREFRONT:
        mine = settlement.payout_id_of(window_id, caller.principal_id)
        try:
            found = [settlement.get_payout(led, payout_id=mine)]
        except NotFound:
            found = []
        if starting_after is not None and starting_after >= mine:
            found = []
        return json_response(200, {"data": [payout_out(p) for p in found], "has_more": False})
    payouts = settlement.list_payouts(
        led, window_id=window_id, limit=size + 1, starting_after=starting_after
    )
    return page_of(payouts, size, payout_out)


@router.get(
    "/{window_id}/report",
    response_model=WindowReportOut,
    summary="The window's payouts beside the ledger's transfers, and whether they tie",
)
def window_report(request: Request, caller: Caller, window_id: uuid.UUID) -> Response:
    require_role(caller, READ_ALL)
    led = context(request).ledger
    return json_response(200, report_out(settlement.window_report(led, window_id=window_id)))


# -- payouts ----------------------------------------------------------------------------


def _payout(request: Request, caller: ApiKey, payout_id: uuid.UUID) -> Payout:
    led = context(request).ledger
    found = settlement.get_payout(led, payout_id=payout_id)
    if caller.role not in READ_ALL and found.storefront_id != caller.principal_id:
        raise ApiError("payout_not_found", f"no payout {payout_id}", 404)
    return found


@payouts_router.get("/{payout_id}", response_model=PayoutOut, summary="Get a payout")
def get_payout(request: Request, caller: Caller, payout_id: uuid.UUID) -> Response:
    require_role(caller, PAYOUT_READERS)
    return json_response(200, payout_out(_payout(request, caller, payout_id)))


@payouts_router.post(
    "/{payout_id}/confirm",
    response_model=PayoutOut,
    summary="The provider paid the payout: its hold posts (operators)",
    openapi_extra={"x-request-model": "PayoutConfirm"},
)
def confirm_payout(request: Request, caller: Caller, payout_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: PayoutConfirm) -> Payout:
        reference = data.provider_reference
        return settlement.confirm_payout(led, payout_id=payout_id, provider_reference=reference)

    return write(request, caller, PayoutConfirm, act, payout_out)


@payouts_router.post(
    "/{payout_id}/fail",
    response_model=PayoutOut,
    summary="The provider could not pay: the hold is voided, proceeds wait for the next"
    " window (operators)",
    openapi_extra={"x-request-model": "PayoutFail"},
)
def fail_payout(request: Request, caller: Caller, payout_id: uuid.UUID) -> Response:
    require_role(caller, OPERATOR)

    def act(led: Ledger, data: PayoutFail) -> Payout:
        return settlement.fail_payout(led, payout_id=payout_id, reason=data.reason)

    return write(request, caller, PayoutFail, act, payout_out)
