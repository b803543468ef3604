"""The fees flow's service: its rules and functions (the package docstring,
:mod:`ledger.flows.fees`, says what they guarantee; the SQL is in its repository)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.core import currency as iso4217
from ledger.core.ledger import Ledger, transactional
from ledger.core.store import from_us, to_us
from ledger.core.tx import Tx
from ledger.core.values import Transfer
from ledger.flows import events, parties, proposals
from ledger.flows.errors import NotFound, Refused
from ledger.flows.fees import repository
from ledger.flows.fees.repository import VersionRow
from ledger.flows.parties import Role
from ledger.flows.proposals import Proposal
from ledger.limits import AMOUNT_MAX_MINOR

BPS_DENOMINATOR = 10_000
BANDS_MAX = 64
PRODUCT_LENGTH_MAX = 48
FEE_CODE = 501
"""Core transfer ``code`` of fee, tax, rounding and commission legs."""

LEG_NAMESPACE = uuid.UUID("0b7f1f6e-9a8e-4f43-8a3e-2f7d3c1f9b21")

FEE_SCHEDULE = "fee_schedule"
"""The proposal kind of a schedule's next version (:func:`propose_schedule`)."""
FEE_SCHEDULE_PUBLISHED = "fee_schedule.published"
"""The event of a version published by an approved proposal."""
PRODUCT_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,47}")
"""A product name: lower-case ASCII letters, digits and ``_``, at most 48 characters."""
PREVIEW_AMOUNTS_MAX = 20
"""At most this many example amounts in one preview."""


@dataclass(frozen=True, slots=True)
class Band:
    up_to_minor: int | None
    fixed_minor: int = 0
    bps: int = 0
    min_minor: int = 0
    max_minor: int | None = None

    def fee(self, amount_minor: int) -> int:
        if not self.bps:
            return self.fixed_minor
        fee = amount_minor * self.bps // BPS_DENOMINATOR
        fee = max(fee, self.min_minor)
        return fee if self.max_minor is None else min(fee, self.max_minor)


@dataclass(frozen=True, slots=True)
class Rules:
    bands: tuple[Band, ...]
    tax_bps: int = 0
    agent_commission_bps: int = 0
    platform_commission_fixed_minor: int = 0
    platform_commission_bps: int = 0
    platform_commission_max_minor: int | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """What an operation of ``amount_minor`` costs under one schedule version."""

    product: str
    currency: str
    version: int
    amount_minor: int
    fee_minor: int
    tax_minor: int
    agent_commission_minor: int
    platform_income_minor: int
    rounding_minor: int
    platform_commission_minor: int


_BAND_FIELDS = frozenset({"up_to_minor", "fixed_minor", "bps", "min_minor", "max_minor"})


def _bad(why: str) -> Refused:
    return Refused("fee_rules_invalid", why)


def _integer(value: object, name: str, *, low: int = 0, high: int = AMOUNT_MAX_MINOR) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _bad(f"{name} must be an integer in {low}..{high}")
    return value


def _optional(value: object, name: str) -> int | None:
    return None if value is None else _integer(value, name)


def parse_rules(raw: object) -> Rules:
    """Validate a rules object (see the module docstring); ``Refused`` if malformed."""
    if not isinstance(raw, dict) or set(raw) - {"bands", "split_bps", "platform_commission"}:
        raise _bad("rules are an object of bands, split_bps and platform_commission")
    bands = _parse_bands(raw.get("bands"))
    tax_bps, commission_bps = _parse_split(raw.get("split_bps", {}))
    pc = raw.get("platform_commission", {})
    if not isinstance(pc, dict) or set(pc) - {"fixed_minor", "bps", "max_minor"}:
        raise _bad("platform_commission has fixed_minor, bps and max_minor")
    return Rules(
        bands=bands,
        tax_bps=tax_bps,
        agent_commission_bps=commission_bps,
        platform_commission_fixed_minor=_integer(pc.get("fixed_minor", 0), "fixed_minor"),
        platform_commission_bps=_integer(pc.get("bps", 0), "bps", high=BPS_DENOMINATOR),
        platform_commission_max_minor=_optional(pc.get("max_minor"), "max_minor"),
    )


def _parse_bands(bands_raw: object) -> tuple[Band, ...]:
    """1..:data:`BANDS_MAX` bands, rising, the last one open-ended."""
    if not isinstance(bands_raw, list) or not 1 <= len(bands_raw) <= BANDS_MAX:
        raise _bad(f"bands must be a list of 1..{BANDS_MAX}")
    bands: list[Band] = []
    for i, raw in enumerate(bands_raw):
        bands.append(_parse_band(i, raw, bands[-1] if bands else None))
    if bands[-1].up_to_minor is not None:
        raise _bad("the last band must be open-ended (up_to_minor null)")
    return tuple(bands)


def _parse_band(i: int, raw: object, previous: Band | None) -> Band:
    """Band ``i``, which must rise above the ``previous`` one."""
    if not isinstance(raw, dict) or set(raw) - _BAND_FIELDS:
        raise _bad(f"band {i} has unknown fields")
    up_to = raw.get("up_to_minor")
    up_to = None if up_to is None else _integer(up_to, f"band {i} up_to_minor", low=1)
    if previous is not None and (
        previous.up_to_minor is None or (up_to is not None and up_to <= previous.up_to_minor)
    ):
        raise _bad("bands must rise, and only the last may be open-ended")
    if "bps" in raw and "fixed_minor" in raw:
        raise _bad(f"band {i} is either fixed or basis points")
    band = Band(
        up_to_minor=up_to,
        fixed_minor=_integer(raw.get("fixed_minor", 0), f"band {i} fixed_minor"),
        bps=_integer(raw.get("bps", 0), f"band {i} bps", high=BPS_DENOMINATOR),
        min_minor=_integer(raw.get("min_minor", 0), f"band {i} min_minor"),
        max_minor=_optional(raw.get("max_minor"), f"band {i} max_minor"),
    )
    if band.max_minor is not None and band.max_minor < band.min_minor:
        raise _bad(f"band {i}: max_minor below min_minor")
    return band


def _parse_split(split: object) -> tuple[int, int]:
    """(tax, agent commission) shares of the fee in basis points, at most the whole fee."""
    if not isinstance(split, dict) or set(split) - {"tax", "agent_commission"}:
        raise _bad("split_bps has tax and agent_commission")
    tax_bps = _integer(split.get("tax", 0), "split_bps.tax", high=BPS_DENOMINATOR)
    commission_bps = _integer(
        split.get("agent_commission", 0), "split_bps.agent_commission", high=BPS_DENOMINATOR
    )
    if tax_bps + commission_bps > BPS_DENOMINATOR:
        raise _bad("tax and agent commission shares add up to more than the fee")
    return tax_bps, commission_bps


def price(rules: Rules, amount_minor: int) -> tuple[int, int, int, int, int, int]:
    """(fee, tax, agent commission, platform income, rounding, platform commission)."""
    band = next(b for b in rules.bands if b.up_to_minor is None or amount_minor <= b.up_to_minor)
    fee = band.fee(amount_minor)
    tax = fee * rules.tax_bps // BPS_DENOMINATOR
    commission = fee * rules.agent_commission_bps // BPS_DENOMINATOR
    income = fee * (BPS_DENOMINATOR - rules.tax_bps - rules.agent_commission_bps) // BPS_DENOMINATOR
    rounding = fee - tax - commission - income
    paid = (
        rules.platform_commission_fixed_minor
        + amount_minor * rules.platform_commission_bps // BPS_DENOMINATOR
    )
    if rules.platform_commission_max_minor is not None:
        paid = min(paid, rules.platform_commission_max_minor)
    return fee, tax, commission, income, rounding, paid


# -- schedules ----------------------------------------------------------------------------


def publish_schedule_in(
    tx: Tx, *, product: str, currency: str, effective_from: datetime, rules: dict[str, Any]
) -> int:
    """Publish the next version of a product's schedule; its version number."""
    _check_product(product)
    parse_rules(rules)
    if effective_from.tzinfo is None:
        raise Refused("effective_from_naive", "effective_from must carry a time zone")
    version = repository.last_version(tx, product=product, currency=currency) + 1
    repository.insert(
        tx,
        schedule_id=uuid.uuid5(LEG_NAMESPACE, f"schedule:{product}:{currency}:{version}"),
        product=product,
        currency=currency,
        version=version,
        effective_from_us=to_us(effective_from),
        rules=rules,
    )
    return version


publish_schedule = transactional(publish_schedule_in)


def _check_product(product: str) -> None:
    if not isinstance(product, str) or not PRODUCT_PATTERN.fullmatch(product):
        raise Refused(
            "product_invalid",
            f"a product is 1-{PRODUCT_LENGTH_MAX} lower-case ASCII letters, digits or _",
        )


def _check_currency(currency: str) -> None:
    if not isinstance(currency, str) or not iso4217.is_supported(currency):
        raise Refused("currency_not_supported", f"{currency!r} is not an active ISO 4217 code")


# -- maker-checker: a version is proposed by one operator, published by another -----------


def propose_schedule(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    product: str,
    currency: str,
    rules: dict[str, Any],
    effective_at: datetime | None,
    proposed_by: uuid.UUID,
) -> Proposal:
    """Propose the next version of a schedule (nothing is published until another
    operator approves the proposal, :func:`ledger.flows.proposals.approve`).

    The rules, product and currency are checked now, so a proposal that could never be
    published is refused at once. ``effective_at`` (``None``: the approval's moment)
    must carry a time zone and may not be in the past (``effective_at_past``); if it
    has passed by the time of the approval, the version takes effect at the approval
    (clamped: a version never takes effect before it was published)."""
    _check_product(product)
    _check_currency(currency)
    parse_rules(rules)
    effective_text = None
    if effective_at is not None:
        if effective_at.tzinfo is None:
            raise Refused("effective_from_naive", "effective_at must carry a time zone")
        if effective_at < led.now():
            raise Refused("effective_at_past", "effective_at is in the past")
        effective_text = from_us(to_us(effective_at)).isoformat()
    payload = {
        "product": product,
        "currency": currency,
        "rules": rules,
        "effective_at": effective_text,
    }
    return proposals.propose(
        led, proposal_id=proposal_id, kind=FEE_SCHEDULE, payload=payload, proposed_by=proposed_by
    )


def _apply_schedule(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Publish a proposed version in the approval's transaction; what was published."""
    effective_from = tx.now
    if payload["effective_at"] is not None:
        effective_from = max(effective_from, datetime.fromisoformat(payload["effective_at"]))
    product, currency = payload["product"], payload["currency"]
    version = publish_schedule_in(
        tx,
        product=product,
        currency=currency,
        effective_from=effective_from,
        rules=dict(payload["rules"]),
    )
    published = {
        "product": product,
        "currency": currency,
        "version": version,
        "effective_from": effective_from.isoformat(),
    }
    schedule_id = uuid.uuid5(LEG_NAMESPACE, f"schedule:{product}:{currency}:{version}")
    events.emit(tx, FEE_SCHEDULE_PUBLISHED, dict(published), subject_id=schedule_id)
    return published


proposals.register(FEE_SCHEDULE, _apply_schedule)


# -- reading: versions and previews ---------------------------------------------------------


def versions(
    led: Ledger, *, product: str, currency: str, after_version: int, limit: int
) -> list[VersionRow]:
    """Up to ``limit`` published versions after ``after_version``, oldest first."""
    _check_product(product)
    _check_currency(currency)

    def work(tx: Tx) -> list[VersionRow]:
        return repository.select_versions(
            tx, product=product, currency=currency, after_version=after_version, limit=limit
        )

    return led.transact(work)


def example_amounts(rules: Rules) -> list[int]:
    """Amounts that show each band: 1, each band's upper edge and the edge after it,
    and ten times the last edge (for the open band)."""
    edges = [b.up_to_minor for b in rules.bands if b.up_to_minor is not None]
    found = {1, *edges, *(e + 1 for e in edges), (edges[-1] * 10 if edges else 100_000)}
    return sorted(a for a in found if a <= AMOUNT_MAX_MINOR)[:PREVIEW_AMOUNTS_MAX]


def quotes_of(
    rules: Rules, amounts_minor: Sequence[int], *, product: str, currency: str, version: int
) -> list[Quote]:
    """What each amount costs under ``rules`` (one version, or a proposal's: 0)."""
    if not 1 <= len(amounts_minor) <= PREVIEW_AMOUNTS_MAX:
        raise Refused("amount_invalid", f"a preview has 1..{PREVIEW_AMOUNTS_MAX} amounts")
    found: list[Quote] = []
    for amount in amounts_minor:
        if type(amount) is not int or not 1 <= amount <= AMOUNT_MAX_MINOR:
            raise Refused("amount_invalid", f"amount_minor must be in 1..{AMOUNT_MAX_MINOR}")
        fee, tax, commission, income, rounding, paid = price(rules, amount)
        found.append(
            Quote(product, currency, version, amount, fee, tax, commission, income, rounding, paid)
        )
    return found


def preview(
    led: Ledger, *, product: str, currency: str, amounts_minor: Sequence[int] | None
) -> tuple[int, Rules, list[Quote]]:
    """The version in effect now, its rules and what the amounts (``None``: the
    :func:`example_amounts`) cost under it; :class:`NotFound` ``fee_schedule_missing``
    if none is."""
    _check_product(product)
    _check_currency(currency)
    found = led.transact(lambda tx: repository.in_effect(tx, product=product, currency=currency))
    if found is None:  # a read of what is not there: not found, not a refused step
        raise NotFound("fee_schedule_missing", f"no {product} fee schedule in {currency} in effect")
    version, rules = found.version, parse_rules(found.rules)
    amounts = example_amounts(rules) if amounts_minor is None else amounts_minor
    return (
        version,
        rules,
        quotes_of(rules, amounts, product=product, currency=currency, version=version),
    )


def schedule_in_effect(tx: Tx, *, product: str, currency: str) -> tuple[int, Rules]:
    """The version in effect at ``tx.now`` (the newest one of the latest start)."""
    found = repository.in_effect(tx, product=product, currency=currency)
    if found is None:
        raise Refused("fee_schedule_missing", f"no {product} fee schedule in {currency} in effect")
    return found.version, parse_rules(found.rules)


def quote(tx: Tx, *, product: str, currency: str, amount_minor: int) -> Quote:
    """Price an operation of ``amount_minor`` under the schedule in effect now."""
    if type(amount_minor) is not int or amount_minor <= 0:
        raise Refused("amount_invalid", "amount_minor must be a positive integer")
    version, rules = schedule_in_effect(tx, product=product, currency=currency)
    fee, tax, commission, income, rounding, paid = price(rules, amount_minor)
    return Quote(
        product, currency, version, amount_minor, fee, tax, commission, income, rounding, paid
    )


def fee_transfers(
    tx: Tx,
    quote: Quote,
    *,
    payer_account: uuid.UUID,
    agent_id: uuid.UUID | None,
    currency: str,
    id_base: uuid.UUID,
) -> list[Transfer]:
    """The legs of a quote: the payer pays the fee into platform income, tax payable,
    rounding and the agent's commission; the platform pays its commission to the agent.
    Without an agent, the agent's share of the fee is platform income and the platform
    pays no commission. Ids derive from ``id_base``: a replay builds the same legs."""
    platform = parties.ensure_platform(tx, currency)
    agent_account = parties.account_id(agent_id, Role.COMMISSION) if agent_id else None
    income = quote.platform_income_minor + (0 if agent_id else quote.agent_commission_minor)
    legs: list[tuple[str, uuid.UUID, uuid.UUID, int]] = [
        ("fee", payer_account, platform.account(Role.FEE_INCOME), income),
        ("tax", payer_account, platform.account(Role.TAX_PAYABLE), quote.tax_minor),
        ("rounding", payer_account, platform.account(Role.ROUNDING), quote.rounding_minor),
    ]
    if agent_account is not None:
        legs.append(("commission", payer_account, agent_account, quote.agent_commission_minor))
        legs.append(
            (
                "platform_commission",
                platform.account(Role.COMMISSION_EXPENSE),
                agent_account,
                quote.platform_commission_minor,
            )
        )
    return [
        Transfer(
            id=uuid.uuid5(id_base, f"fee-leg:{name}"),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=amount_minor,
            currency=currency,
            code=FEE_CODE,
            metadata={"leg": name, "product": quote.product, "version": str(quote.version)},
        )
        for name, debit, credit, amount_minor in legs
        if amount_minor > 0
    ]
