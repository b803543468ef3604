"""The ageing job knows settlement times: a clearing item open no longer than its
provider's expected settlement time (``recon_settlement_times``) is in transit, shown and
not a break; older, it is a break. Both engines, on a fixed clock that starts at
2026-06-01T08:00Z; the business date 2026-06-01 ages to 2026-06-02T00:00Z."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import uuid
from datetime import date
from pathlib import Path

import pytest

from ledger import Ledger
from ledger.flows import agent_float, parties, suspense
from ledger.flows.parties import Kind
from reconciliation import ageing, report
from reconciliation.jobs import JobRequest, run_job
from tests.conftest import Clock
from vledger.cli import main

KES = "KES"
DAY_S = 86_400
TODAY = date(2026, 6, 1)
OPEN_S = 16 * 3600  # 08:00 to midnight


def agent_with_float(led: Ledger, amount: int, provider: str) -> uuid.UUID:
    agent = parties.onboard(
        led, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    top_up(led, agent.id, amount, provider)
    return agent.id


def top_up(led: Ledger, agent_id: uuid.UUID, amount: int, provider: str) -> None:
    agent_float.top_up_float(
        led, topup_id=uuid.uuid4(), agent_id=agent_id, amount_minor=amount, provider=provider
    )


def cli(led: Ledger, out: Path, day: date) -> int:
    return main(
        ["reconcile", "ageing", "--database", led.url, "--out", str(out), "--date", str(day)]
    )


def test_the_seeded_times_cover_mobile_money_banks_and_a_default(ledger: Ledger) -> None:
    times = ageing.settlement_times(ledger)
    assert times[ageing.DEFAULT_PROVIDER] == DAY_S
    assert times["MPESA"] == times["AIRTEL"] == DAY_S
    assert times["BANK"] == times["KCB"] == 4 * DAY_S


def test_a_healthy_ledger_with_same_day_clearing_has_no_breaks(
    ledger: Ledger, clock: Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = agent_with_float(ledger, 14_447_600, "MPESA")
    clock.advance(3600)
    top_up(ledger, agent, 250_000, "BANK")
    clock.advance(3600)
    top_up(ledger, agent, 1_000, "NEWPROVIDER")  # no row: the default, one day

    done = run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path)

    assert done.run.breaks == 0 and done.run.status == "ok"
    assert done.findings.detail == []
    kes = done.run.summary["ageing"][KES]
    assert kes["in_transit"] == {"items": 3, "amount_minor": 14_698_600, "weighted_age_days": 0}
    assert kes["overdue"] == {"items": 0, "amount_minor": 0, "weighted_age_days": None}
    assert kes["overall"]["items"] == 3
    with (done.folder / ageing.IN_TRANSIT_FILE).open() as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(ageing.DETAIL_HEADER)
    data = (done.folder / ageing.IN_TRANSIT_FILE).read_bytes()
    assert done.run.summary["files"] == {
        ageing.IN_TRANSIT_FILE: {"sha256": hashlib.sha256(data).hexdigest()}
    }
    assert sorted((r[0], r[3], r[5]) for r in lines[1:]) == [
        ("in transit", "provider_clearing:BANK debit", "250000"),
        ("in transit", "provider_clearing:MPESA debit", "14447600"),
        ("in transit", "provider_clearing:NEWPROVIDER debit", "1000"),
    ]
    html = (done.folder / "report.html").read_text()
    assert "No breaks." in html
    assert "In transit: inside the provider&#39;s settlement time, not breaks" in html
    assert "KES 144,476.00" in html and "KES 146,986.00" in html
    assert "14447600" not in html  # people read money, not minor units
    capsys.readouterr()
    assert cli(ledger, tmp_path, TODAY) == 0
    said = capsys.readouterr().out
    assert "0 break(s)" in said
    assert "in transit (inside their settlement time, not breaks): 3" in said


def test_an_item_older_than_its_providers_time_is_a_break(
    ledger: Ledger, clock: Clock, tmp_path: Path
) -> None:
    agent = agent_with_float(ledger, 100_000, "BANK")  # banks: four days
    top_up(ledger, agent, 30_000, "MPESA")  # mobile money: one day
    # on 2026-06-02 the M-Pesa item is 40 hours old: overdue; the bank one is in transit
    late = run_job(ledger, "ageing", JobRequest(date(2026, 6, 2)), out=tmp_path)
    assert [(line[0], line[3], line[5]) for line in late.findings.detail] == [
        ("age 0-1", "provider_clearing:MPESA debit", 30_000)
    ]
    assert late.run.summary["ageing"][KES]["in_transit"]["amount_minor"] == 100_000
    assert late.run.summary["breaks_by_kind"] == {"age 0-1": 1}
    assert cli(ledger, tmp_path, date(2026, 6, 2)) == 1
    # five days on, the bank item is overdue too
    later = run_job(ledger, "ageing", JobRequest(date(2026, 6, 5)), out=tmp_path)
    assert sorted(int(str(line[5])) for line in later.findings.detail) == [30_000, 100_000]
    assert later.run.summary["in_transit_items"] == 0
    html = (later.folder / "report.html").read_text()
    assert "KES 1,300.00" in html and "In transit:" not in html


@pytest.mark.parametrize(("settlement_time_s", "breaks"), [(OPEN_S, 0), (OPEN_S - 1, 1)])
def test_exactly_at_the_expected_time_is_still_in_transit(
    ledger: Ledger, tmp_path: Path, settlement_time_s: int, breaks: int
) -> None:
    agent_with_float(ledger, 50_000, "AIRTEL")  # open 16 hours at the end of the day
    ageing.set_settlement_time(ledger, provider="AIRTEL", settlement_time_s=settlement_time_s)
    assert ageing.settlement_times(ledger)["AIRTEL"] == settlement_time_s

    done = run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path)

    assert done.run.breaks == breaks
    assert done.run.summary["in_transit_items"] == 1 - breaks
    assert cli(ledger, tmp_path, TODAY) == breaks


def test_the_default_row_covers_providers_without_their_own(ledger: Ledger, tmp_path: Path) -> None:
    agent_with_float(ledger, 50_000, "SACCO")
    ageing.set_settlement_time(ledger, provider="*", settlement_time_s=OPEN_S - 1)
    assert run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path).run.breaks == 1
    ageing.set_settlement_time(ledger, provider="SACCO", settlement_time_s=OPEN_S)
    assert run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path).run.breaks == 0


def test_money_parked_in_suspense_is_a_break_even_the_same_day(
    ledger: Ledger, tmp_path: Path
) -> None:
    suspense.park(
        ledger,
        suspense_id=uuid.uuid4(),
        currency=KES,
        provider="MPESA",
        provider_reference="QX-1",
        amount_minor=20_000,
    )
    done = run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path)
    kinds = sorted((str(line[0]), str(line[1])) for line in done.findings.detail)
    assert kinds == [("age 0-1", "suspense")]  # the clearing side is in transit
    assert done.run.summary["in_transit_items"] == 1


@pytest.mark.parametrize(
    ("provider", "seconds"),
    [
        ("mpesa", DAY_S),
        ("<script>", DAY_S),
        ("X" * 33, DAY_S),
        ("", DAY_S),
        ("MPESA", -1),
        ("MPESA", ageing.SETTLEMENT_TIME_MAX_S + 1),
        ("MPESA", True),
        ("MPESA", 1.5),
    ],
)
def test_a_bad_settlement_time_is_refused_and_changes_nothing(
    ledger: Ledger, provider: str, seconds: int
) -> None:
    before = ageing.settlement_times(ledger)
    with pytest.raises(ageing.AgeingRefused):
        ageing.set_settlement_time(ledger, provider=provider, settlement_time_s=seconds)
    assert ageing.settlement_times(ledger) == before


def test_the_limits_are_accepted(ledger: Ledger) -> None:
    ageing.set_settlement_time(ledger, provider="MPESA", settlement_time_s=0)
    ageing.set_settlement_time(
        ledger, provider="BANK", settlement_time_s=ageing.SETTLEMENT_TIME_MAX_S
    )
    times = ageing.settlement_times(ledger)
    assert (times["MPESA"], times["BANK"]) == (0, ageing.SETTLEMENT_TIME_MAX_S)


def test_without_items_in_transit_there_is_no_extra_file(ledger: Ledger, tmp_path: Path) -> None:
    done = run_job(ledger, "ageing", JobRequest(TODAY), out=tmp_path)
    assert "files" not in done.run.summary or done.run.summary["files"] == {}
    assert not (done.folder / ageing.IN_TRANSIT_FILE).exists()


def test_the_report_shows_detail_amounts_as_money_and_escapes_markup(
    ledger: Ledger, tmp_path: Path
) -> None:
    agent = agent_with_float(ledger, 100_000, "BANK")
    top_up(ledger, agent, 30_000, "MPESA")
    done = run_job(ledger, "ageing", JobRequest(date(2026, 6, 5)), out=tmp_path)
    html = (done.folder / "report.html").read_text()
    assert "<th>amount</th>" in html and "<th>amount_minor</th>" not in html
    assert '<td class="n">KES 1,000.00</td>' in html and '<td class="n">KES 300.00</td>' in html
    with (done.folder / "detail.csv").open() as f:  # the CSV keeps minor units
        assert sorted(r[5] for r in list(csv.reader(f))[1:]) == ["100000", "30000"]

    odd = dataclasses.replace(
        done.findings,
        detail=[
            ("age 0-1", "clearing", "x", "<script>alert(1)</script>", "<b>", 500, 1, "t"),
            ("age 0-1", "clearing", "y", "r", "UGX", 12_500, 1, "t"),
            ("age 0-1", "clearing", "z", "r", "KES", "", 1, "t"),
        ],
    )
    page = report.render(done.run, odd)
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<td>500</td>" in page and "&lt;b&gt;" in page  # no known currency: as it is
    assert '<td class="n">UGX 12,500</td>' in page
