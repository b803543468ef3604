"""Fees and commissions: versioned schedules in data, quoted in integer minor units.

A schedule is published per product (``order``, ``cash_in``, ``cash_out`` ...) and
currency, with the moment it takes effect; a published version is never edited (a
change is a new version, effective from a later moment). The version in effect at the
moment of an operation prices it, and the quote names that version.

Rules (a JSON object)::

    {
      "bands": [                                  # first band whose up_to_minor >= amount
        {"up_to_minor": 10000, "fixed_minor": 0},
        {"up_to_minor": 100000, "fixed_minor": 1100},
        {"up_to_minor": null, "bps": 100, "min_minor": 1500, "max_minor": 20000}
      ],
      "split_bps": {"tax": 1500, "agent_commission": 2000},   # shares of the fee
      "platform_commission": {"fixed_minor": 0, "bps": 50, "max_minor": 5000}  # optional
    }

The rounding rule, stated once: every basis-point computation rounds **down** (floor of
an integer division by 10,000). The fee is the band's fixed amount, or
``floor(amount * bps / 10000)`` clamped to the band's minimum and maximum. It splits into
``tax = floor(fee * tax_bps / 10000)``, ``agent_commission = floor(fee * commission_bps
/ 10000)`` and ``platform_income = floor(fee * (10000 - tax_bps - commission_bps) /
10000)``; what the three floors leave of the fee (0 to 2 minor units) is the
``rounding`` remainder and goes to the platform's ``rounding`` account. So the legs
always add up to the fee exactly: fees never create or destroy money.

``platform_commission`` is what the platform pays an agent for an operation out of its
``commission_expense`` account (e.g. on a cash-in, which carries no fee):
``min(fixed + floor(amount * bps / 10000), max)``.

Publishing over the API is maker-checker: :func:`propose_schedule` makes a proposal of
kind :data:`FEE_SCHEDULE` (``ledger.flows.proposals``); another operator's approval
publishes it in the approval's transaction and emits :data:`FEE_SCHEDULE_PUBLISHED`. An
``effective_at`` in the past is refused at the proposal (``effective_at_past``); one
that passes before the approval is clamped to the approval's moment.

The schedules' SQL lives in :mod:`ledger.flows.fees.repository`.
"""

from ledger.flows.fees.service import (
    BANDS_MAX,
    BPS_DENOMINATOR,
    FEE_CODE,
    FEE_SCHEDULE,
    FEE_SCHEDULE_PUBLISHED,
    LEG_NAMESPACE,
    PREVIEW_AMOUNTS_MAX,
    PRODUCT_LENGTH_MAX,
    PRODUCT_PATTERN,
    Band,
    Quote,
    Rules,
    example_amounts,
    fee_transfers,
    parse_rules,
    preview,
    price,
    propose_schedule,
    publish_schedule,
    publish_schedule_in,
    quote,
    quotes_of,
    schedule_in_effect,
    versions,
)

__all__ = [
    "BANDS_MAX",
    "BPS_DENOMINATOR",
    "Band",
    "FEE_CODE",
    "FEE_SCHEDULE",
    "FEE_SCHEDULE_PUBLISHED",
    "LEG_NAMESPACE",
    "PREVIEW_AMOUNTS_MAX",
    "PRODUCT_LENGTH_MAX",
    "PRODUCT_PATTERN",
    "Quote",
    "Rules",
    "example_amounts",
    "fee_transfers",
    "parse_rules",
    "preview",
    "price",
    "propose_schedule",
    "publish_schedule",
    "publish_schedule_in",
    "quote",
    "quotes_of",
    "schedule_in_effect",
    "versions",
]
