"""The settlement job: payouts of settlement windows against a provider's credits, matched
by the provider's reference, by window id, then by window total (ties flagged, never
guessed); fees show as amount differences; missing credits and unknown credits break.
Both engines."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.flows import settlement
from reconciliation import payouts
from reconciliation.jobs import JobRequest, JobResult, run_job
from tests.test_flow_settlement import MPESA, Market, make_market
from vledger.cli import main

DAY = date(2026, 6, 1)


def window(market: Market, releases: dict[uuid.UUID, int], references: list[str]) -> uuid.UUID:
    """Release to the storefronts, close a window through M-Pesa, confirm its payouts with
    the references given (in the order of ``releases``)."""
    for storefront, amount in releases.items():
        market.release(storefront, amount)
    window_id = uuid.uuid4()
    settlement.open_window(market.led, window_id=window_id, currency=market.currency)
    settlement.close_window(market.led, window_id=window_id, provider=MPESA)
    for storefront, reference in zip(releases, references, strict=True):
        settlement.confirm_payout(
            market.led,
            payout_id=settlement.payout_id_of(window_id, storefront),
            provider_reference=reference,
        )
    return window_id


def credits_file(folder: Path, lines: list[tuple[str, int]], currency: bool = True) -> Path:
    path = folder / f"credits-{uuid.uuid4().hex[:8]}.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["reference", "amount_minor", "date", *(["currency"] if currency else [])])
        for reference, amount in lines:
            writer.writerow([reference, amount, "2026-06-01", *(["KES"] if currency else [])])
    return path


def reconcile(led: Ledger, path: Path, out: Path, **options: str) -> JobResult:
    request = JobRequest(DAY, input_path=path, scope=MPESA, options=options)
    return run_job(led, "settlement", request, out=out)


def test_credits_match_payouts_and_windows_fees_ties_and_missing_credits_break(
    ledger: Ledger, tmp_path: Path
) -> None:
    market = make_market(ledger, names=("Duka la Mama", "Mbegu Seeds", "Kuku Farm", "Maziwa"))
    a, b, c, d = market.storefronts
    w1 = window(market, {a: 100_000, b: 50_000, c: 30_000}, ["MP-A1", "MP-B1", "MP-C1"])
    w2 = window(market, {d: 70_000, a: 20_000}, ["MP-D2", "MP-A2"])
    w3 = window(market, {a: 10_000}, ["MP-A3"])
    w4 = window(market, {b: 10_000}, ["MP-B4"])
    w5 = window(market, {c: 25_000}, ["MP-C5"])
    lines = [
        ("MP-A1", 100_000),  # one payout, paid in full
        ("MP-B1", 49_500),  # one payout less a fee of 500
        (str(w2).upper(), 89_000),  # a whole window less a fee of 1,000
        ("", 10_000),  # W3 or W4? a tie
        ("", 10_000),
        ("", 24_900),  # W5 less a fee of 100, by its total
        ("XYZ-999", 12_345),  # nobody's
    ]
    done = reconcile(ledger, credits_file(tmp_path, lines), tmp_path, fee_max_minor="200")

    found = sorted((str(x[0]), str(x[1]), str(x[2])) for x in done.findings.detail)
    c1 = settlement.payout_id_of(w1, c)
    assert found == sorted(
        [
            ("amount_differs", "MP-B1", str(settlement.payout_id_of(w1, b))),
            ("amount_differs", str(w2).upper(), str(w2)),
            ("amount_differs", "", str(w5)),
            ("tie", "", ""),
            ("tie", "", ""),
            ("credit_without_payout", "XYZ-999", ""),
            ("payout_without_credit", "", str(c1)),
        ]
    )
    s = done.run.summary
    assert s["matched_by_stage"] == {"reference": 2, "window id": 1, "window total": 1}
    assert s["fees_minor"] == 500 + 1_000 + 100
    assert s["payouts_paid"] == 8 and s["credits"] == 7
    ties = [x for x in done.findings.detail if x[0] == "tie"]
    assert all(str(w3) in str(x[5]) and str(w4) in str(x[5]) for x in ties)
    missing = next(x for x in done.findings.detail if x[0] == "payout_without_credit")
    assert missing[3] == 30_000
    assert done.run.status == "breaks" and done.run.breaks == 7
    assert "Matching by stage" in (done.folder / "report.html").read_text()

    # without the fee allowance W5's credit stays unmatched, and so do its payouts
    strict = reconcile(ledger, credits_file(tmp_path, lines), tmp_path)
    strict_kinds = strict.run.summary["breaks_by_kind"]
    assert strict_kinds["credit_without_payout"] == 2
    assert strict_kinds["payout_without_credit"] == 2

    # the command line: currency by option, exit 1 on breaks, 2 without the file
    common = ["reconcile", "settlement", "--database", ledger.url, "--out", str(tmp_path)]
    scoped = [*common, "--scope", MPESA, "--date", "2026-06-01", "--option", "currency=KES"]
    path = credits_file(tmp_path, lines, currency=False)
    assert main([*scoped, "--input", str(path)]) == 1
    assert main([*scoped, "--input", str(path), "--threshold", "20"]) == 0
    assert main(scoped) == 2
    assert main([*common, "--scope", "mpesa", "--input", str(path)]) == 2


def test_clean_credits_give_no_break(ledger: Ledger, tmp_path: Path) -> None:
    market = make_market(ledger)
    a, b = market.storefronts
    window(market, {a: 40_000, b: 60_000}, ["R-1", "R-2"])
    window(market, {a: 5_000}, ["R-3"])
    lines = [("R-1", 40_000), ("R-2", 60_000), ("", 5_000)]
    done = reconcile(ledger, credits_file(tmp_path, lines), tmp_path)
    assert done.run.status == "ok", done.findings.detail
    assert done.run.summary["matched_by_stage"] == {"reference": 2, "window total": 1}
    # a credit naming a payout outside the period still matches it
    later = JobRequest(
        date(2026, 8, 1), input_path=credits_file(tmp_path, lines), scope=MPESA, options={}
    )
    assert run_job(ledger, "settlement", later, out=tmp_path).run.status == "ok"


def test_malformed_credit_files_are_refused() -> None:
    with pytest.raises(payouts.PayoutsRefused, match="header"):
        payouts.parse_credits(b"ref,amount\n", "KES")
    with pytest.raises(payouts.PayoutsRefused, match="currency="):
        payouts.parse_credits(b"reference,amount_minor,date\nA,1,2026-06-01\n", None)
    with pytest.raises(payouts.PayoutsRefused, match="whole number"):
        payouts.parse_credits(b"reference,amount_minor,date\nA,1.50,2026-06-01\n", "KES")
    with pytest.raises(payouts.PayoutsRefused, match="YYYY-MM-DD"):
        payouts.parse_credits(b"reference,amount_minor,date\nA,150,01/06/2026\n", "KES")
    [credit] = payouts.parse_credits(b"amount_minor,reference,date\n150,,2026-06-01\n", "UGX")
    assert (credit.reference, credit.amount_minor, credit.currency) == (None, 150, "UGX")
