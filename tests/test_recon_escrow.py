"""The orders job: a storefront's orders against its escrow. Escrow ties after releases,
refunds and a refund after release; a delivered order left unreleased for 20 days is
flagged; tampered order rows and a stray escrow transfer break; the storefront's own
file is matched line by line. Both engines."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path

import pytest

from ledger import Ledger, Transfer
from ledger.flows import orders
from ledger.flows.orders import Source, State
from ledger.flows.parties import Role
from reconciliation import escrow
from reconciliation.jobs import JobRequest, JobResult, run_job
from tests.conftest import Clock
from tests.test_flow_orders import Village, make_village
from vledger.cli import main

KES = "KES"
DAY_S = 86_400


def reconcile(
    village: Village, out: Path, *, file: Path | None = None, **options: str
) -> JobResult:
    request = JobRequest(
        village.clock.now.date(), input_path=file, scope=str(village.storefront), options=options
    )
    return run_job(village.led, "orders", request, out=out)


def kinds(done: JobResult) -> list[tuple[str, str]]:
    return sorted((str(line[0]), str(line[1])) for line in done.findings.detail)


@pytest.fixture
def village(ledger: Ledger, clock: Clock) -> Village:
    return make_village(ledger, clock)


def test_escrow_ties_after_releases_and_refunds_and_a_stale_delivery_is_flagged(
    village: Village, tmp_path: Path
) -> None:
    released = village.order(50_000)
    village.pay(released)
    village.dispatch(released)
    village.deliver(released)
    village.release(released)
    refunded = village.order(30_000)
    village.pay(refunded)
    orders.cancel_order(village.led, step_id=uuid.uuid4(), order_id=refunded)
    partly = village.order(40_000, villager=False)  # paid in cash at the agent
    village.pay(partly, Source.CASH)
    village.dispatch(partly)
    village.deliver(partly, 10_000)  # a part delivered is released at once
    village.release(partly)
    orders.refund_order(village.led, step_id=uuid.uuid4(), order_id=partly, after_release=True)
    waiting = village.order(20_000)
    village.pay(waiting)
    village.dispatch(waiting)
    village.clock.advance(DAY_S)
    village.deliver(waiting)
    village.order(5_000)  # created, never paid
    held = village.order(15_000)
    village.pay(held)
    assert village.get(partly).state is State.REFUNDED
    assert village.get(partly).reversed_minor == 40_000

    clean = reconcile(village, tmp_path)
    assert clean.run.status == "ok", clean.findings.detail
    s = clean.run.summary
    assert s["escrow_balance_minor"] == s["orders_escrow_minor"] == 20_000 + 15_000
    assert s["by_state"]["delivered"] == {"orders": 1, "escrow_minor": 20_000}
    assert s["orders"] == 6

    village.clock.advance(20 * DAY_S)  # the sweeper did not run: still delivered
    stale = reconcile(village, tmp_path)
    assert kinds(stale) == [("delivered_not_released", str(waiting))]
    assert stale.findings.detail[0][3] == 20_000
    assert reconcile(village, tmp_path, stale_days="30").run.status == "ok"
    early = reconcile(village, tmp_path, stale_days="30", evidence="deliver")
    assert kinds(early) == []  # every release here followed a delivery step

    # the storefront's own file: one amount differs, one order it never had, one missing
    rows = [
        (released, 50_000, "released"),
        (refunded, 30_000, "refunded"),  # the ledger says cancelled
        (partly, 40_000, "refunded"),
        (waiting, 20_001, "delivered"),
        (held, 15_000, "paid"),
        (uuid.uuid4(), 9_999, "paid"),
    ]
    path = tmp_path / "storefront.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["order_id", "amount_minor", "state"])
        writer.writerows(rows)
    filed = reconcile(village, tmp_path, file=path, stale_days="30")
    found = kinds(filed)
    assert [k for k, _ in found] == [
        "amount_differs",
        "file_only",
        "ledger_only",
        "state_differs",
    ]
    assert ("amount_differs", str(waiting)) in found
    assert ("file_only", str(rows[-1][0])) in found
    assert ("state_differs", str(refunded)) in found
    assert village.get(refunded).state is State.CANCELLED
    assert filed.run.input_sha256 != clean.run.input_sha256
    assert filed.run.checked == 6 + s["escrow_transfers"] + len(rows)


def test_tampered_rows_and_a_stray_transfer_break_and_vledger_exits_1(
    village: Village, tmp_path: Path
) -> None:
    delivered = village.order(20_000)
    village.pay(delivered)
    village.dispatch(delivered)
    village.deliver(delivered)
    paid = village.order(10_000)
    village.pay(paid)
    common = ["reconcile", "orders", "--database", village.led.url, "--out", str(tmp_path)]
    scope = ["--scope", str(village.storefront), "--date", village.clock.now.date().isoformat()]
    assert main([*common, *scope]) == 0

    village.led.transact(  # someone edits an order row directly
        lambda tx: tx.execute(
            "UPDATE orders SET released_minor = 500 WHERE id = :id", {"id": delivered}
        )
    )
    village.led.transact(
        lambda tx: tx.execute(
            "UPDATE orders SET state = 'released', released_minor = paid_minor WHERE id = :id",
            {"id": paid},
        )
    )
    stray = Transfer(
        uuid.uuid4(), village.bank, village.account(village.storefront, Role.ESCROW), 777, KES, 1
    )
    assert village.led.create_transfers([stray])[0].status == "created"

    done = reconcile(village, tmp_path)
    assert kinds(done) == sorted(
        [
            ("order_differs", str(delivered)),
            ("order_differs", str(paid)),
            ("released_without_delivery", str(paid)),
            ("transfer_unexplained", ""),
            ("escrow_total", ""),
        ]
    )
    lines = {(str(line[0]), str(line[1])): line for line in done.findings.detail}
    assert lines[("order_differs", str(delivered))][2:4] == (20_000, 19_500)
    assert lines[("escrow_total", "")][2:4] == (30_777, 19_500)
    assert lines[("transfer_unexplained", "")][3] == 777
    assert done.run.summary["breaks_by_kind"]["order_differs"] == 2
    with (done.folder / "detail.csv").open() as f:
        assert next(csv.reader(f)) == list(escrow.DETAIL_HEADER)
    assert "Escrow tie-out" in (done.folder / "report.html").read_text()
    assert main([*common, *scope]) == 1
    assert main([*common, *scope, "--threshold", "5"]) == 0
    assert main([*common, *scope, "--option", "stale_days=x"]) == 2
    assert main([*common, "--scope", "nobody"]) == 2


def test_a_malformed_storefront_file_is_refused() -> None:
    with pytest.raises(escrow.EscrowRefused, match="header"):
        escrow.parse_orders_file(b"id,amount\n")
    with pytest.raises(escrow.EscrowRefused, match="not an order state"):
        escrow.parse_orders_file(
            f"order_id,amount_minor,state\n{uuid.uuid4()},100,shipped\n".encode()
        )
    twice = uuid.uuid4()
    with pytest.raises(escrow.EscrowRefused, match="twice"):
        escrow.parse_orders_file(
            f"order_id,amount_minor,state\n{twice},1,paid\n{twice},1,paid\n".encode()
        )
    assert escrow.parse_orders_file(b"order_id,amount_minor,state\n") == []
    assert escrow.end_of(date(2026, 6, 1)) - escrow.end_of(date(2026, 5, 31)) == escrow.DAY_US
