"""The demo raises tiers and publishes fee schedules the way operators must: each one a
proposal made by one operator and approved by another (issue 16, maker-checker), never
written on the ledger directly.

The day is told on a fresh database, on each engine, through each desk (the flows in
this process, ``vledger demo --direct``, and the signed API, ``vledger demo``); then the
database itself is read: every fee schedule version in it was published by an approved
``fee_schedule`` proposal naming that version, and every villager above tier0 got there
by an approved ``kyc_tier`` proposal naming her and her tier; in both, the maker and the
checker are two different operator principals. A demo that called
``fees.publish_schedule`` or ``limits.set_kyc_tier`` leaves versions and tiers that no
proposal explains, and fails here.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ledger import Ledger, open_ledger
from ledger.flows import fees, kyc, proposals
from ledger.flows.proposals import Proposal, State
from vledger.demo import CURRENCY, FEE_SCHEDULES, run_demo
from vledger.demo_http import run_demo_http

DEMOS: dict[str, Callable[..., int]] = {"direct": run_demo, "http": run_demo_http}
PAGE = 100


@pytest.fixture(params=sorted(DEMOS))
def told(request: pytest.FixtureRequest, db_url: str) -> str:
    """The database a demo (one desk) told its day on; its output must end clean."""
    out = io.StringIO()
    assert DEMOS[request.param](db_url, out=out) == 0, out.getvalue()
    assert out.getvalue().rstrip().endswith("integrity: ok")
    return db_url


def approved(led: Ledger, kind: str) -> list[Proposal]:
    found: list[Proposal] = []
    after: uuid.UUID | None = None
    while True:
        answer = proposals.page(led, state=State.APPROVED, starting_after=after, limit=PAGE)
        assert answer is not None
        page, more = answer
        found += [p for p in page if p.kind == kind]
        if not more:
            return found
        after = page[-1].id


def role_of(led: Ledger, principal_id: uuid.UUID | None) -> Any:
    row = led.transact(
        lambda tx: tx.one("SELECT role FROM principals WHERE id = :id", {"id": principal_id})
    )
    return None if row is None else row[0]


def two_operators(led: Ledger, proposal: Proposal) -> None:
    """Made by one operator, approved by another."""
    assert proposal.decided_by is not None and proposal.decided_by != proposal.proposed_by
    assert role_of(led, proposal.proposed_by) == "operator"
    assert role_of(led, proposal.decided_by) == "operator"


def test_every_fee_schedule_the_demo_published_was_approved_by_a_second_operator(
    told: str,
) -> None:
    with open_ledger(told) as led:
        published = {
            (product, row.version)
            for product in FEE_SCHEDULES
            for row in fees.versions(
                led, product=product, currency=CURRENCY, after_version=0, limit=PAGE
            )
        }
        assert published == {(product, 1) for product in FEE_SCHEDULES}
        made = approved(led, fees.FEE_SCHEDULE)
        explained = set()
        for proposal in made:
            two_operators(led, proposal)
            assert proposal.payload["rules"] == FEE_SCHEDULES[proposal.payload["product"]]
            explained.add((proposal.result["product"], proposal.result["version"]))
        assert explained == published
        assert len(made) == len(published)


def test_every_villager_above_tier0_was_raised_by_a_second_operators_approval(
    told: str,
) -> None:
    with open_ledger(told) as led:
        rows = led.transact(
            lambda tx: tx.execute(
                "SELECT id, kyc_tier FROM parties WHERE kind = 'villager' AND kyc_tier <> 'tier0'"
            )
        )
        raised = {(str(party_id), tier) for party_id, tier in rows}
        assert len(raised) == 2  # Amina and Baraka, tier1
        assert {tier for _, tier in raised} == {"tier1"}
        made = approved(led, kyc.KYC_TIER)
        for proposal in made:
            two_operators(led, proposal)
            assert proposal.result["kyc_tier"] == proposal.payload["tier"]
        assert {(p.payload["villager_id"], p.payload["tier"]) for p in made} == raised
