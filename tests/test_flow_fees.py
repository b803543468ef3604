"""Fee schedules: bands, basis points with minimum and maximum, the split into tax,
agent commission and platform income, the rounding remainder, and versions by date."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import Ledger, Status, Transfer
from ledger.flows import fees, parties
from ledger.flows.errors import Refused
from ledger.flows.parties import Kind, Role
from tests.conftest import Clock

KES = "KES"

CASH_OUT_RULES: dict[str, Any] = {
    "bands": [
        {"up_to_minor": 10_000, "fixed_minor": 0},
        {"up_to_minor": 50_000, "fixed_minor": 1_100},
        {"up_to_minor": None, "bps": 150, "min_minor": 1_500, "max_minor": 20_000},
    ],
    "split_bps": {"tax": 1_500, "agent_commission": 3_333},
}


def test_bands_pick_the_first_band_that_covers_the_amount() -> None:
    rules = fees.parse_rules(CASH_OUT_RULES)
    assert fees.price(rules, 1)[0] == 0
    assert fees.price(rules, 10_000)[0] == 0
    assert fees.price(rules, 10_001)[0] == 1_100
    assert fees.price(rules, 50_000)[0] == 1_100
    assert fees.price(rules, 50_001)[0] == 1_500  # 1.5% of 500.01 is 750: the minimum applies
    assert fees.price(rules, 200_000)[0] == 3_000  # 1.5% of 2,000.00
    assert fees.price(rules, 10_000_000)[0] == 20_000  # the maximum applies


def test_split_rounds_down_and_the_remainder_goes_to_rounding() -> None:
    rules = fees.parse_rules(CASH_OUT_RULES)
    fee, tax, commission, income, rounding, paid = fees.price(rules, 20_000)
    assert fee == 1_100
    assert tax == 165  # 15% of 11.00
    assert commission == 366  # 33.33% of 11.00 = 366.63, down
    assert income == 568  # 51.67% of 11.00 = 568.37, down
    assert rounding == 1  # what the floors left
    assert tax + commission + income + rounding == fee
    assert paid == 0


def test_platform_commission_is_capped() -> None:
    rules = fees.parse_rules(
        {
            "bands": [{"up_to_minor": None, "fixed_minor": 0}],
            "platform_commission": {"fixed_minor": 10, "bps": 50, "max_minor": 500},
        }
    )
    assert fees.price(rules, 10_000)[5] == 60  # 10 + 0.5% of 100.00
    assert fees.price(rules, 1_000_000)[5] == 500


@pytest.mark.parametrize(
    "rules",
    [
        {},
        {"bands": []},
        {"bands": [{"up_to_minor": 100, "fixed_minor": 1}]},  # not open-ended
        {"bands": [{"up_to_minor": None, "fixed_minor": 1.5}]},  # a float
        {"bands": [{"up_to_minor": None, "fixed_minor": True}]},  # a bool is not an amount
        {"bands": [{"up_to_minor": None, "fixed_minor": -1}]},
        {"bands": [{"up_to_minor": None, "bps": 10_001}]},
        {"bands": [{"up_to_minor": None, "bps": 10, "fixed_minor": 1}]},
        {"bands": [{"up_to_minor": None, "bps": 10, "min_minor": 5, "max_minor": 4}]},
        {
            "bands": [
                {"up_to_minor": 100, "fixed_minor": 1},
                {"up_to_minor": 100, "fixed_minor": 2},
                {"up_to_minor": None, "fixed_minor": 3},
            ]
        },
        {
            "bands": [{"up_to_minor": None, "fixed_minor": 1}],
            "split_bps": {"tax": 6_000, "agent_commission": 5_000},
        },
        {"bands": [{"up_to_minor": None, "fixed_minor": 1}], "surprise": 1},
    ],
)  # fmt: skip
def test_malformed_rules_are_refused(rules: dict[str, Any]) -> None:
    with pytest.raises(Refused) as refused:
        fees.parse_rules(rules)
    assert refused.value.code == "fee_rules_invalid"


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    tax = draw(st.integers(0, 10_000))
    commission = draw(st.integers(0, 10_000 - tax))
    low = draw(st.integers(0, 10**6))
    return {
        "bands": [
            {
                "up_to_minor": draw(st.integers(1, 10**6)),
                "fixed_minor": draw(st.integers(0, 10**6)),
            },
            {
                "up_to_minor": None,
                "bps": draw(st.integers(0, 10_000)),
                "min_minor": low,
                "max_minor": draw(st.integers(low, 10**7)),
            },
        ],
        "split_bps": {"tax": tax, "agent_commission": commission},
    }


@given(rules=rule_sets(), amount=st.integers(1, 2**53 - 1))
def test_the_legs_add_up_to_the_fee_exactly(rules: dict[str, Any], amount: int) -> None:
    """Fees never create or destroy money: tax + commission + income + rounding = fee, every
    part non-negative, and the rounding remainder is below 3 minor units."""
    fee, tax, commission, income, rounding, _ = fees.price(fees.parse_rules(rules), amount)
    assert min(fee, tax, commission, income, rounding) >= 0
    assert tax + commission + income + rounding == fee
    assert rounding < 3


# -- on the ledger ------------------------------------------------------------------------


def test_versions_take_effect_at_their_moment(ledger: Ledger, clock: Clock) -> None:
    start = clock.now
    fees.publish_schedule(
        ledger, product="cash_out", currency=KES, effective_from=start, rules=CASH_OUT_RULES
    )
    cheaper = {"bands": [{"up_to_minor": None, "fixed_minor": 500}]}
    version = fees.publish_schedule(
        ledger,
        product="cash_out",
        currency=KES,
        effective_from=start + timedelta(days=1),
        rules=cheaper,
    )
    assert version == 2

    def fee_now() -> tuple[int, int]:
        q = ledger.transact(
            lambda tx: fees.quote(tx, product="cash_out", currency=KES, amount_minor=20_000)
        )
        return q.version, q.fee_minor

    assert fee_now() == (1, 1_100)
    clock.advance(timedelta(days=1).total_seconds())
    assert fee_now() == (2, 500)
    with pytest.raises(Refused) as refused:
        ledger.transact(lambda tx: fees.quote(tx, product="order", currency=KES, amount_minor=1))
    assert refused.value.code == "fee_schedule_missing"


def test_a_published_version_cannot_be_edited(ledger: Ledger, clock: Clock) -> None:
    from ledger import InvariantViolation

    fees.publish_schedule(
        ledger, product="cash_out", currency=KES, effective_from=clock.now, rules=CASH_OUT_RULES
    )
    with pytest.raises(InvariantViolation):
        ledger.transact(lambda tx: tx.execute("UPDATE fee_schedules SET rules = '{}'"))


def test_villager_pays_a_cash_out_fee_split_four_ways(ledger: Ledger, clock: Clock) -> None:
    """Amina pays the 11.00 KES fee on a 200.00 KES cash-out: 1.65 tax, 3.66 to Juma the
    agent, 5.68 platform income, 0.01 rounding; the platform's books balance."""
    fees.publish_schedule(
        ledger, product="cash_out", currency=KES, effective_from=clock.now, rules=CASH_OUT_RULES
    )
    amina = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Amina", currency=KES,
        kyc_tier="basic",
    )  # fmt: skip
    juma = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Juma", currency=KES
    )
    wallet = amina.account(Role.WALLET)

    def work(tx: Any) -> list[Status]:
        clearing = parties.provider_clearing(tx, KES, "MPESA")
        funded = tx.create_transfers([Transfer(uuid.uuid4(), clearing, wallet, 50_000, KES, 1)])
        q = fees.quote(tx, product="cash_out", currency=KES, amount_minor=20_000)
        legs = fees.fee_transfers(
            tx, q, payer_account=wallet, agent_id=juma.id, currency=KES, id_base=uuid.uuid4()
        )
        return [r.status for r in funded + tx.create_transfers(legs)]

    assert set(ledger.transact(work)) == {Status.CREATED}
    platform = ledger.transact(lambda tx: parties.get_party(tx, parties.platform_id(KES)))
    got = {
        role: a.credits_posted - a.debits_posted
        for role, a in zip(
            ("fee_income", "tax", "rounding", "commission", "wallet"),
            ledger.lookup_accounts(
                [
                    platform.account(Role.FEE_INCOME),
                    platform.account(Role.TAX_PAYABLE),
                    platform.account(Role.ROUNDING),
                    juma.account(Role.COMMISSION),
                    wallet,
                ]
            ),
            strict=True,
        )
    }
    assert got == {
        "fee_income": 568,
        "tax": 165,
        "rounding": 1,
        "commission": 366,
        "wallet": 50_000 - 1_100,
    }
    assert ledger.check_integrity().ok
