"""The ageing job: open suspense items and what provider clearing accounts hold (aged
first-in first-out), in buckets 0-1, 2-7, 8-30 and >30 days as of the end of the
business date, with the amount-weighted age per bucket and overall. Both engines, on a
fixed clock."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path

from ledger import Ledger
from ledger.flows import agent_float, parties, suspense
from ledger.flows.parties import Kind
from reconciliation import ageing
from reconciliation.jobs import JobRequest, run_job
from tests.conftest import Clock
from vledger.cli import main

KES = "KES"
DAY_S = 86_400
BUSINESS_DATE = date(2026, 7, 11)  # ages run to 2026-07-12T00:00Z


def park(led: Ledger, provider: str, reference: str, amount: int) -> uuid.UUID:
    item = suspense.park(
        led,
        suspense_id=uuid.uuid4(),
        currency=KES,
        provider=provider,
        provider_reference=reference,
        amount_minor=amount,
    )
    return item.id


def test_open_items_fall_into_buckets_with_their_amount_weighted_age(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    start = clock.now  # 2026-06-01T08:00Z
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    villager = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.VILLAGER, name="Otieno", currency=KES,
        kyc_tier="tier1",
    )  # fmt: skip

    def top_up(amount: int) -> None:
        agent_float.top_up_float(
            ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=amount, provider="BANK"
        )

    top_up(100_000)  # day 0: 40 days old at the end of the business date
    clock.advance(20 * DAY_S)
    top_up(50_000)  # 20 days old
    clock.advance(5 * DAY_S)
    unclaimed = park(ledger, "MPESA", "QX-2201", 20_000)  # 15 days old, reassigned later
    clock.advance(10 * DAY_S)
    returned = park(ledger, "BANK", "BK-77", 40_000)  # 5 days old
    clock.advance(DAY_S)
    suspense.return_to_provider(ledger, suspense_id=returned, reason="not ours")
    clock.advance(3 * DAY_S)
    park(ledger, "MPESA", "QX-2290", 30_000)  # 1 day old
    assert (clock.now - start).days == 39
    clock.advance(6 * DAY_S)  # after the business date: counts as not yet happened
    suspense.reassign(ledger, suspense_id=unclaimed, to_villager_id=villager.id)
    park(ledger, "MPESA", "QX-2300", 99_000)

    done = run_job(ledger, "ageing", JobRequest(BUSINESS_DATE), out=tmp_path)

    items = sorted(
        (str(line[0]), str(line[1]), str(line[3]), int(str(line[5])), int(str(line[6])))
        for line in done.findings.detail
    )
    assert items == sorted(
        [
            ("age 0-1", "suspense", "MPESA QX-2290", 30_000, 1),
            ("age 8-30", "suspense", "MPESA QX-2201", 20_000, 15),
            ("age 0-1", "clearing", "provider_clearing:MPESA debit", 30_000, 1),
            ("age 8-30", "clearing", "provider_clearing:MPESA debit", 20_000, 15),
            ("age 2-7", "clearing", "provider_clearing:BANK debit", 40_000, 5),
            ("age 8-30", "clearing", "provider_clearing:BANK debit", 50_000, 20),
            ("age >30", "clearing", "provider_clearing:BANK debit", 60_000, 40),  # 60k of 100k
        ]
    )
    kes = done.run.summary["ageing"][KES]
    assert kes["buckets"] == {
        "0-1": {"items": 2, "amount_minor": 60_000, "weighted_age_days": 1},
        "2-7": {"items": 1, "amount_minor": 40_000, "weighted_age_days": 5},
        "8-30": {"items": 3, "amount_minor": 90_000, "weighted_age_days": 17},  # 17.8 floored
        ">30": {"items": 1, "amount_minor": 60_000, "weighted_age_days": 40},
    }
    assert kes["overall"] == {"items": 7, "amount_minor": 250_000, "weighted_age_days": 17}
    assert kes["sources"]["suspense"] == {
        "items": 2,
        "amount_minor": 50_000,
        "weighted_age_days": 6,
    }
    assert done.run.summary["breaks_by_kind"] == {
        "age 0-1": 2,
        "age 2-7": 1,
        "age 8-30": 3,
        "age >30": 1,
    }
    with (done.folder / "detail.csv").open() as f:
        assert next(csv.reader(f)) == list(ageing.DETAIL_HEADER)
    html = (done.folder / "report.html").read_text()
    assert "Ageing of open items (KES)" in html and "age &gt;30" in html

    # two days earlier the newest park (in suspense and at M-Pesa) had not happened yet
    before = run_job(ledger, "ageing", JobRequest(date(2026, 7, 9)), out=tmp_path)
    assert before.run.summary["ageing"][KES]["overall"] == {
        "items": 5,
        "amount_minor": 190_000,
        "weighted_age_days": 20,  # (20k*13 + 40k*3 + 50k*18 + 20k*13 + 60k*38) // 190k
    }

    common = ["reconcile", "ageing", "--database", ledger.url, "--out", str(tmp_path)]
    assert main([*common, "--date", BUSINESS_DATE.isoformat()]) == 1
    assert main([*common, "--date", BUSINESS_DATE.isoformat(), "--threshold", "7"]) == 0
    assert main([*common, "--date", "2026-05-31"]) == 0  # nothing was open yet
    assert main([*common, "--scope", "UGX"]) == 0
    assert main([*common, "--scope", "shillings"]) == 2
