"""``/v1/fee-schedules``: fee schedules over the signed API, maker-checker
(``ledger.flows.fees``, ``ledger.flows.proposals``).

=====================================  ==================================================
``POST /v1/fee-schedules``             operators: a **proposal** (202) of the next version
                                       of a product's schedule in a currency, with a
                                       preview of its bands; nothing is published yet
``POST /v1/proposals/{id}/approve``    another operator (never the maker, 422
                                       ``proposal_maker_cannot_decide``): publishes it
``GET /v1/fee-schedules``              auditors, operators: the versions of one product
                                       in one currency, oldest first, paged by version
``GET /v1/fee-schedules/preview``      auditors, operators: the version in effect, its
                                       bands and what the given amounts cost under it
=====================================  ==================================================

Storefronts and agents have no business here (403). A read's malformed or unknown
product or currency is 400 ``invalid_parameter``; a preview with no version in effect
is 404 ``fee_schedule_missing``. Bad rules are refused whole (422
``fee_rules_invalid``, nothing proposed); ``effective_at`` in the past is refused (422
``effective_at_past``), and one that passes before the approval is clamped to the
approval's moment. Money is integer minor units in both directions.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.access import READ_ALL, require_role
from api.context import context, json_response, run_post
from api.principals import ApiKey, Role
from api.problems import ApiError
from api.routes.common import body_of, page_limit, signed
from api.routes.proposals import proposal_out
from api.routes.steps import parse, step_id, time_text
from api.schemas import FeePreviewOut, FeeScheduleCreate, FeeScheduleList, FeeScheduleProposed
from ledger.core import currency as iso4217
from ledger.core.store import from_us
from ledger.flows import fees
from ledger.flows.fees import Quote, Rules
from ledger.flows.fees.repository import VersionRow
from ledger.limits import AMOUNT_MAX_MINOR, API_PAGE_SIZE_MAX

router = APIRouter(prefix="/v1/fee-schedules", tags=["fee schedules"])

Caller = Annotated[ApiKey, Depends(signed)]
OPERATOR = frozenset({Role.OPERATOR})
ProductQuery = Annotated[
    str, Query(pattern=f"^{fees.PRODUCT_PATTERN.pattern}$", description="order, cash_in ...")
]
CurrencyQuery = Annotated[str, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217")]
Limit = Annotated[int | None, Query(ge=1, le=API_PAGE_SIZE_MAX, description="page size, 1..100")]
After = Annotated[
    int | None, Query(ge=0, le=2**31, description="the last version of the previous page")
]
Amounts = Annotated[
    list[int] | None,
    Query(
        alias="amount_minor",
        max_length=fees.PREVIEW_AMOUNTS_MAX,
        description="amounts to price (repeat the parameter); default: each band's edges",
    ),
]


def supported(currency: str) -> None:
    """A read's unknown currency is a bad parameter (400), as a malformed one is."""
    if not iso4217.is_supported(currency):
        raise ApiError("invalid_parameter", f"{currency!r} is not an active ISO 4217 code")


def quote_out(q: Quote) -> dict[str, Any]:
    return {
        "amount_minor": q.amount_minor,
        "fee_minor": q.fee_minor,
        "tax_minor": q.tax_minor,
        "agent_commission_minor": q.agent_commission_minor,
        "platform_income_minor": q.platform_income_minor,
        "rounding_minor": q.rounding_minor,
        "platform_commission_minor": q.platform_commission_minor,
    }


def preview_out(
    product: str, currency: str, version: int, rules: Rules, quotes: list[Quote]
) -> dict[str, Any]:
    return {
        "product": product,
        "currency": currency,
        "version": version,
        "bands": [
            {
                "up_to_minor": b.up_to_minor,
                "fixed_minor": b.fixed_minor,
                "bps": b.bps,
                "min_minor": b.min_minor,
                "max_minor": b.max_minor,
            }
            for b in rules.bands
        ],
        "tax_bps": rules.tax_bps,
        "agent_commission_bps": rules.agent_commission_bps,
        "quotes": [quote_out(q) for q in quotes],
    }


def version_out(product: str, currency: str, row: VersionRow) -> dict[str, Any]:
    return {
        "product": product,
        "currency": currency,
        "version": row.version,
        "effective_from": time_text(from_us(row.effective_from_us)),
        "created_at": time_text(from_us(row.created_at_us)),
        "rules": row.rules,
    }


@router.post(
    "",
    status_code=202,
    response_model=FeeScheduleProposed,
    summary="Propose a fee schedule's next version (another operator approves it)",
    openapi_extra={"x-request-model": "FeeScheduleCreate"},
)
def propose(request: Request, caller: Caller) -> Response:
    require_role(caller, OPERATOR)
    led = context(request).ledger
    body = body_of(request)

    def handle() -> Response:
        data = parse(request, body, FeeScheduleCreate)
        made = fees.propose_schedule(
            led,
            proposal_id=step_id(request, caller, data.id),
            product=data.product,
            currency=data.currency,
            rules=data.rules,
            effective_at=data.effective_at,
            proposed_by=caller.principal_id,
        )
        rules = fees.parse_rules(data.rules)
        quotes = fees.quotes_of(
            rules,
            fees.example_amounts(rules),
            product=data.product,
            currency=data.currency,
            version=0,
        )
        preview = preview_out(data.product, data.currency, 0, rules, quotes)
        return json_response(202, {"proposal": proposal_out(made), "preview": preview})

    return run_post(request, caller, body, handle)


@router.get("", response_model=FeeScheduleList, summary="List a schedule's versions, oldest first")
def list_versions(
    request: Request,
    caller: Caller,
    product: ProductQuery,
    currency: CurrencyQuery,
    limit: Limit = None,
    starting_after: After = None,
) -> Response:
    require_role(caller, READ_ALL)
    size = page_limit(request, limit)
    supported(currency)
    found = fees.versions(
        context(request).ledger,
        product=product,
        currency=currency,
        after_version=starting_after or 0,
        limit=size + 1,
    )
    data = [version_out(product, currency, row) for row in found[:size]]
    return json_response(200, {"data": data, "has_more": len(found) > size})


@router.get(
    "/preview",
    response_model=FeePreviewOut,
    summary="The schedule in effect: its bands and what amounts cost under it",
)
def preview(
    request: Request,
    caller: Caller,
    product: ProductQuery,
    currency: CurrencyQuery,
    amounts: Amounts = None,
) -> Response:
    require_role(caller, READ_ALL)
    supported(currency)
    if amounts is not None and not all(1 <= a <= AMOUNT_MAX_MINOR for a in amounts):
        raise ApiError("invalid_parameter", f"amount_minor is 1..{AMOUNT_MAX_MINOR}")
    version, rules, quotes = fees.preview(
        context(request).ledger, product=product, currency=currency, amounts_minor=amounts
    )
    return json_response(200, preview_out(product, currency, version, rules, quotes))
