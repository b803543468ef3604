"""The cash-count job: an agent's counted cash against the ledger's expected cash-on-hand;
over or short needs a comment and proposes a variance that moves nothing until an
operator approves it, and then posts exactly once. Both engines."""

from __future__ import annotations

import csv
import json
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger import Ledger
from ledger.core import migrations
from ledger.core.errors import InvariantViolation
from ledger.flows import agent_float, cash, parties, principals
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.parties import Kind, Party, Role
from reconciliation import cash_count
from reconciliation.cash_count import CashCountRefused, approve_variance, reject_variance
from reconciliation.jobs import JobRequest, run_job
from reconciliation.runs import list_runs
from tests.conftest import Clock
from tests.consent_helpers import consenting_villager, withdrawal_code
from vledger.cli import main

KES = "KES"
DAY = date(2026, 6, 1)


@dataclass
class Shop:
    led: Ledger
    clock: Clock
    agent: Party
    villager: Party
    folder: Path

    def principal(self, role: str = "operator") -> uuid.UUID:
        """A new principal of ``role`` (an operator decides variances)."""
        made = principals.add_key(
            self.led,
            role=principals.Role(role),
            name=f"{role}-{uuid.uuid4().hex[:8]}",
            alg=principals.Alg.ED25519,
            material=uuid.uuid4().bytes * 2,
        )
        return made.principal_id

    @property
    def cash_minor(self) -> int:
        [a] = self.led.lookup_accounts([self.agent.account(Role.CASH)])
        return a.debits_posted - a.credits_posted

    def count_file(
        self, denominations: dict[str, int], comment: str | None = None, **extra: Any
    ) -> Path:
        body: dict[str, Any] = {
            "agent_id": str(self.agent.id),
            "counted_at": self.clock.now.isoformat(),
            "currency": KES,
            "denominations": denominations,
            **extra,
        }
        if comment is not None:
            body["comment"] = comment
        path = self.folder / f"count-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(body))
        return path

    def run(self, path: Path) -> Any:
        request = JobRequest(DAY, input_path=path, scope=str(self.agent.id))
        return run_job(self.led, "cash-count", request, out=self.folder / "reports")

    def variance_transfers(self) -> int:
        row = self.led.transact(
            lambda tx: tx.one(
                "SELECT COUNT(*) FROM transfers WHERE code = :code",
                {"code": cash_count.CASH_VARIANCE_CODE},
            )
        )
        assert row is not None
        return int(row[0])


@pytest.fixture
def shop(ledger: Ledger, clock: Clock, tmp_path: Path) -> Shop:
    """Wanjiru's shop: KES 50,000 of float, and a villager's KES 21,500 cash-in today."""
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    villager = consenting_villager(ledger, agent_id=agent.id, tier="tier1")
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=5_000_000, provider="BANK"
    )
    clock.advance(3600)
    cash.cash_in(
        ledger,
        cash_in_id=uuid.uuid4(),
        agent_id=agent.id,
        villager_id=villager.id,
        amount_minor=2_150_000,
    )
    clock.advance(3600)
    return Shop(ledger, clock, agent, villager, tmp_path)


SHORT_BY_100 = {"1000": 21, "200": 2}  # KES 21,400 against 21,500 expected


def test_short_count_proposes_a_variance_an_operator_approves_and_it_posts_once(
    shop: Shop,
) -> None:
    with pytest.raises(CashCountRefused, match=r"short by KES 100\.00.*needs a comment"):
        shop.run(shop.count_file(SHORT_BY_100))
    assert list_runs(shop.led, job="cash-count") == []
    path = shop.count_file(SHORT_BY_100, "a KES 100 note went with the change")
    done = shop.run(path)

    run = done.run
    assert (run.job, run.status, run.breaks, run.scope) == (
        "cash-count",
        "breaks",
        1,
        str(shop.agent.id),
    )
    s = run.summary
    assert (s["counted_minor"], s["expected_minor"], s["variance_minor"]) == (
        2_140_000,
        2_150_000,
        -10_000,
    )
    assert s["variance"]["direction"] == "short" and s["variance"]["state"] == "proposed"
    moves = {m["name"]: m for m in s["movements"]}
    assert moves["cash-in: cash received"]["cash_in_minor"] == 2_150_000
    assert moves["cash-in: float to wallet"]["float_out_minor"] == 2_150_000
    assert moves["float top-up"]["float_in_minor"] == 5_000_000
    assert s["opening_minor"] == 0 and s["cash_in_minor"] - s["cash_out_minor"] == 2_150_000
    with (done.folder / "detail.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(cash_count.DETAIL_HEADER)
    assert rows[1][:5] == ["short", str(shop.agent.id), s["variance"]["id"], "2150000", "2140000"]
    html = (done.folder / "report.html").read_text()
    assert "Cash counted (KES)" in html and "KES 1,000.00" in html

    # nothing moves until an operator approves; the same count again is the same proposal
    assert shop.cash_minor == 2_150_000 and shop.variance_transfers() == 0
    again_run = shop.run(path)
    assert again_run.run.attempt == 2
    assert again_run.run.summary["variance"]["id"] == s["variance"]["id"]
    other = shop.count_file({"1000": 21}, "recounted")
    with pytest.raises(CashCountRefused, match="another count"):
        shop.run(other)
    [variance] = cash_count.list_variances(shop.led, state="proposed")
    assert (variance.amount_minor, variance.direction) == (10_000, "short")

    akinyi = shop.principal()
    approved = approve_variance(shop.led, variance_id=variance.id, approver=akinyi)
    again = approve_variance(shop.led, variance_id=variance.id, approver=shop.principal())

    assert approved.state == "approved" and approved.transfer_id is not None
    assert (approved.decided_by, approved.decided_by_name) == (akinyi, None)
    assert again == approved
    assert shop.variance_transfers() == 1
    assert shop.cash_minor == 2_140_000
    [control] = shop.led.lookup_accounts([shop.agent.account(Role.CASH_CONTROL)])
    assert control.credits_posted - control.debits_posted == 2_140_000
    [posted] = shop.led.lookup_transfers([approved.transfer_id])
    assert posted.debit_account_id == shop.agent.account(Role.CASH_CONTROL)
    assert posted.credit_account_id == shop.agent.account(Role.CASH)
    assert shop.led.check_integrity().ok
    with pytest.raises(Conflict, match="variance_approved"):
        reject_variance(shop.led, variance_id=variance.id, decider=akinyi, reason="no")


def test_over_count_rejected_moves_nothing_and_vledger_exits_on_breaks(shop: Shop) -> None:
    done = shop.run(shop.count_file({"1000": 21, "500": 1, "50": 2}, "found KES 100 extra"))
    variance = cash_count.get_variance(
        shop.led, variance_id=uuid.UUID(done.run.summary["variance"]["id"])
    )
    assert (variance.direction, variance.amount_minor) == ("over", 10_000)
    akinyi = shop.principal()
    for not_an_operator in (shop.principal("auditor"), shop.principal("agent"), uuid.uuid4()):
        with pytest.raises(Refused, match="decider_not_operator"):
            reject_variance(shop.led, variance_id=variance.id, decider=not_an_operator, reason="no")
    with pytest.raises(Refused, match="decider_not_operator"):
        approve_variance(shop.led, variance_id=variance.id, approver="ops:akinyi")  # type: ignore[arg-type]
    with pytest.raises(Refused, match="reason_invalid"):
        reject_variance(shop.led, variance_id=variance.id, decider=akinyi, reason=" ")
    rejected = reject_variance(
        shop.led, variance_id=variance.id, decider=akinyi, reason="recount tomorrow"
    )
    assert rejected.state == "rejected" and rejected.reject_reason == "recount tomorrow"
    assert rejected.decided_by == akinyi
    with pytest.raises(Conflict, match="variance_rejected"):
        approve_variance(shop.led, variance_id=variance.id, approver=shop.principal())
    assert shop.cash_minor == 2_150_000 and shop.variance_transfers() == 0
    with pytest.raises(NotFound):
        approve_variance(shop.led, variance_id=uuid.uuid4(), approver=akinyi)

    # through the command line: exit 2 without the comment, 1 over the threshold, else 0
    shop.clock.advance(60)
    common = ["reconcile", "cash-count", "--database", shop.led.url, "--date", "2026-06-01"]
    out = ["--out", str(shop.folder / "cli"), "--scope", str(shop.agent.id)]
    assert main([*common, *out, "--input", str(shop.count_file(SHORT_BY_100))]) == 2
    short = shop.count_file(SHORT_BY_100, "short")
    assert main([*common, *out, "--input", str(short)]) == 1
    assert main([*common, *out, "--input", str(short), "--threshold", "1"]) == 0
    shop.clock.advance(60)
    assert main([*common, *out, "--input", str(shop.count_file({"1000": 21, "500": 1}))]) == 0


def test_a_balanced_count_is_ok_and_the_next_count_shows_movements_since_it(
    shop: Shop,
) -> None:
    path = shop.count_file({"1000": 21, "500": 1})
    request = JobRequest(DAY, input_path=path, scope=str(uuid.uuid4()))
    with pytest.raises(CashCountRefused, match="not the scope"):
        run_job(shop.led, "cash-count", request, out=shop.folder)
    stranger = shop.count_file({"1000": 1}, agent_id=str(uuid.uuid4()))
    with pytest.raises(CashCountRefused, match="no agent"):
        run_job(shop.led, "cash-count", JobRequest(DAY, input_path=stranger), out=shop.folder)
    future = shop.count_file({"1000": 21, "500": 1}, counted_at="2099-01-01T00:00:00+00:00")
    with pytest.raises(CashCountRefused, match="future"):
        shop.run(future)
    cash.request_cash_out(  # promised, not yet handed over: still in the drawer
        shop.led,
        cash_out_id=uuid.uuid4(),
        agent_id=shop.agent.id,
        villager_id=shop.villager.id,
        amount_minor=50_000,
        consent_code=withdrawal_code(
            shop.led, villager_id=shop.villager.id, agent_id=shop.agent.id, amount_minor=50_000
        ),
    )
    done = shop.run(path)
    assert done.run.status == "ok" and done.run.summary["variance"] is None
    assert done.run.summary["cash_pending_out_minor"] == 50_000
    shop.clock.advance(3600)
    cash.cash_in(
        shop.led,
        cash_in_id=uuid.uuid4(),
        agent_id=shop.agent.id,
        villager_id=shop.villager.id,
        amount_minor=100_050,
    )
    shop.clock.advance(60)
    later = shop.run(shop.count_file({"1000": 22, "500": 1, "0.50": 1}))
    s = later.run.summary
    assert later.run.status == "ok"
    assert s["previous_count_at"] == done.run.summary["counted_at"]
    assert s["opening_minor"] == 2_150_000 and s["cash_in_minor"] == 100_050
    assert s["expected_minor"] == s["counted_minor"] == 2_250_050


@pytest.mark.parametrize(
    ("currency", "denominations", "minor"),
    [("KES", {"1000": 2, "0.50": 3, "0.05": 1}, 200_155), ("UGX", {"5000": 3, "500": 1}, 15_500)],
)
def test_denominations_in_major_units_become_exact_minor_units(
    currency: str, denominations: dict[str, int], minor: int
) -> None:
    body = {
        "agent_id": str(uuid.uuid4()),
        "counted_at": "2026-06-01T18:00:00+03:00",
        "currency": currency,
        "denominations": denominations,
    }
    assert cash_count.parse_count(json.dumps(body).encode()).counted_minor == minor


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"denominations": {"0.005": 1}}, "fraction digits"),
        ({"denominations": {"1000": 1.5}}, "fraction"),
        ({"denominations": {"1000": -1}}, "integer"),
        ({"denominations": {"1e3": 1}}, "decimal amount"),
        ({"denominations": {}}, "1..64"),
        ({"counted_at": "2026-06-01T18:00:00"}, "offset"),
        ({"currency": "XTS"}, "ISO 4217"),
        ({"agent_id": "wanjiru"}, "UUID"),
        ({"till": 1}, "unknown fields"),
    ],
)
def test_malformed_counts_are_refused(change: dict[str, Any], message: str) -> None:
    body: dict[str, Any] = {
        "agent_id": str(uuid.uuid4()),
        "counted_at": "2026-06-01T18:00:00+00:00",
        "currency": "KES",
        "denominations": {"1000": 1},
        **change,
    }
    with pytest.raises(CashCountRefused, match=message):
        cash_count.parse_count(json.dumps(body).encode())


def test_the_command_line_lists_and_shows_variances_but_decides_none(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    shop.run(shop.count_file(SHORT_BY_100, "a KES 100 note went with the change"))
    [variance] = cash_count.list_variances(shop.led, state="proposed")
    url = ["--database", shop.led.url]
    assert main(["variance", "list", "--state", "proposed", *url]) == 0
    listed = capsys.readouterr().out
    assert f"{variance.id} proposed short KES 100.00 agent" in listed and "1 variance(s)" in listed
    assert main(["variance", "show", str(variance.id), *url]) == 0
    assert capsys.readouterr().out.startswith(f"{variance.id} proposed short KES 100.00")

    # a typed name decides nothing: approvals and rejections go through the signed API
    approve = ["variance", "approve", str(variance.id), "--operator", "ops:akinyi", *url]
    reject = ["variance", "reject", str(variance.id), "--operator", "o", "--reason", "no", *url]
    for argv in (approve, reject, approve[:3] + url):
        assert main(argv) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and "signed" in err[0] and "/v1/variances/" in err[0], err
    assert shop.variance_transfers() == 0 and shop.cash_minor == 2_150_000
    assert cash_count.get_variance(shop.led, variance_id=variance.id).state == "proposed"
    assert main(["variance", "show", str(uuid.uuid4()), *url]) == 2
    assert "variance_not_found" in capsys.readouterr().err


def test_a_name_typed_before_signed_decisions_is_kept_apart_from_principals(shop: Shop) -> None:
    """Revision 0030 keeps a variance decided with a typed name (the old command line) as
    ``decided_by_name``, with no principal, and gives the table back its guards."""
    done = shop.run(shop.count_file(SHORT_BY_100, "a KES 100 note went with the change"))
    variance_id = uuid.UUID(done.run.summary["variance"]["id"])
    migrations.downgrade(shop.led.url, "0029")
    shop.led.transact(
        lambda tx: tx.execute(
            "UPDATE recon_variances SET state = 'rejected', decided_by = :name,"
            " reject_reason = 'recount', decided_at_us = :now WHERE id = :id",
            {"name": "ops:akinyi", "now": tx.now_us, "id": variance_id},
        )
    )
    migrations.upgrade(shop.led.url)
    old = cash_count.get_variance(shop.led, variance_id=variance_id)
    assert (old.state, old.decided_by, old.decided_by_name) == ("rejected", None, "ops:akinyi")
    assert old.reject_reason == "recount"
    for statement in (
        "DELETE FROM recon_variances WHERE id = :id",
        "UPDATE recon_variances SET reject_reason = 'changed' WHERE id = :id",
    ):
        with pytest.raises(InvariantViolation, match="refused"):
            shop.led.transact(lambda tx, sql=statement: tx.execute(sql, {"id": variance_id}))
    assert cash_count.get_variance(shop.led, variance_id=variance_id) == old
