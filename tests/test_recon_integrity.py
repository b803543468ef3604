"""The integrity job: one snapshot, a run row that never changes, and its three files."""

from __future__ import annotations

import csv
import json
import threading
import uuid
from datetime import date
from pathlib import Path

import pytest

from ledger import (
    Account,
    AccountFlags,
    Ledger,
    LedgerError,
    Status,
    Transfer,
    TransferFlags,
    open_ledger,
)
from reconciliation import integrity
from reconciliation.jobs import JobRequest, run_job
from reconciliation.runs import get_run, list_runs
from tests.conftest import Clock
from vledger.cli import main

KES = "KES"
DAY = date(2026, 11, 28)


def open_accounts(led: Ledger, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    bank = uuid.uuid4()
    results = led.create_accounts(
        [Account(id=bank, currency=KES, code=1)]
        + [
            Account(id=i, currency=KES, code=2, flags=AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
            for i in ids
        ]
    )
    assert all(r.status is Status.CREATED for r in results)
    funding = [
        Transfer(
            id=uuid.uuid4(),
            debit_account_id=bank,
            credit_account_id=i,
            amount=100_000,
            currency=KES,
            code=1,
        )
        for i in ids
    ]
    assert all(r.status is Status.CREATED for r in led.create_transfers(funding))
    return ids


def pay(led: Ledger, src: uuid.UUID, dst: uuid.UUID, amount: int, flags: int = 0) -> Transfer:
    transfer = Transfer(
        id=uuid.uuid4(),
        debit_account_id=src,
        credit_account_id=dst,
        amount=amount,
        currency=KES,
        code=7,
        flags=TransferFlags(flags),
    )
    [result] = led.create_transfers([transfer])
    assert result.status is Status.CREATED
    return transfer


def test_a_clean_ledger_records_an_ok_run_with_its_files(ledger: Ledger, tmp_path: Path) -> None:
    a, b, c = open_accounts(ledger, 3)
    pay(ledger, a, b, 2_500)
    pay(ledger, b, c, 700, TransferFlags.PENDING)  # an open hold counts too

    done = run_job(ledger, "integrity", JobRequest(DAY), out=tmp_path)

    run = done.run
    assert (run.job, run.business_date, run.status, run.breaks) == (
        "integrity",
        "2026-11-28",
        "ok",
        0,
    )
    assert run.attempt == 1
    balance = run.summary["trial_balance"][KES]
    assert balance["accounts"] == 4
    assert balance["debits_posted"] == balance["credits_posted"] == 3 * 100_000 + 2_500
    assert balance["debits_pending"] == balance["credits_pending"] == 700
    assert run.summary["transfers"] == 5
    assert run.checked == 4 + 5
    assert get_run(ledger, run.id) == run
    files = sorted(p.name for p in done.folder.iterdir())
    assert files == ["detail.csv", "report.html", "summary.json"]
    assert json.loads((done.folder / "summary.json").read_text()) == run.summary
    with (done.folder / "detail.csv").open() as f:
        assert list(csv.reader(f)) == [list(integrity.DETAIL_HEADER)]
    assert "No breaks." in (done.folder / "report.html").read_text()


def test_money_from_nowhere_is_found_by_kind_and_the_run_says_breaks(
    ledger: Ledger, tmp_path: Path
) -> None:
    a, b = open_accounts(ledger, 2)
    pay(ledger, a, b, 1_000)
    ledger.transact(
        lambda tx: tx.execute(
            "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = :id", {"id": b}
        )
    )

    done = run_job(ledger, "integrity", JobRequest(DAY), out=tmp_path)

    assert done.run.status == "breaks"
    kinds = done.run.summary["breaks_by_kind"]
    assert kinds == {"trial_balance": 1, "counters": 1, "last_balance": 1}
    with (done.folder / "detail.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["object_id"] for r in rows if r["kind"] != "trial_balance"} == {str(b)}
    [trial] = [r for r in rows if r["kind"] == "trial_balance"]
    assert int(trial["actual"]) - int(trial["expected"]) == 1  # credits exceed debits by 1
    assert "<rect" in (done.folder / "report.html").read_text()


def test_a_run_is_immutable_and_running_again_is_a_new_attempt(
    ledger: Ledger, tmp_path: Path
) -> None:
    open_accounts(ledger, 1)
    first = run_job(ledger, "integrity", JobRequest(DAY), out=tmp_path).run
    second = run_job(ledger, "integrity", JobRequest(DAY), out=tmp_path).run
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.input_sha256 == second.input_sha256  # the same state read twice
    assert [r.id for r in list_runs(ledger, job="integrity")] == [second.id, first.id]
    with pytest.raises(LedgerError, match="immutable"):
        ledger.transact(
            lambda tx: tx.execute(
                "UPDATE recon_runs SET breaks = 9 WHERE id = :id", {"id": first.id}
            )
        )
    with pytest.raises(LedgerError, match="immutable"):
        ledger.transact(
            lambda tx: tx.execute("DELETE FROM recon_runs WHERE id = :id", {"id": first.id})
        )
    assert get_run(ledger, first.id) == first


def test_the_command_exits_1_over_the_threshold_and_0_within_it(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = open_accounts(ledger, 2)
    pay(ledger, a, b, 10)
    common = ["reconcile", "integrity", "--database", ledger.url, "--out", str(tmp_path)]
    assert main([*common, "--date", "2026-11-28"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("integrity 2026-11-28: ok, 0 break(s)")
    ledger.transact(
        lambda tx: tx.execute(
            "UPDATE accounts SET debits_posted = debits_posted + 5 WHERE id = :id", {"id": a}
        )
    )
    assert main([*common, "--date", "2026-11-28"]) == 1
    out = capsys.readouterr().out
    assert "breaks, 3 break(s)" in out
    assert "  counters: 1" in out
    assert main([*common, "--threshold", "3"]) == 0
    capsys.readouterr()
    assert main([*common, "--date", "28/11/2026"]) == 2
    assert "not a date" in capsys.readouterr().err


@pytest.mark.postgres
def test_a_run_during_concurrent_writes_reads_one_snapshot(
    pg_url: str, clock: Clock, tmp_path: Path
) -> None:
    """Without one snapshot the trial balance and the per-account sums would be read at
    different moments and report breaks that are not there."""
    with open_ledger(pg_url, migrate=True, clock=clock) as led:
        ids = open_accounts(led, 8)
        stop = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with open_ledger(pg_url, clock=clock) as writer:
                    n = 0
                    while not stop.is_set():
                        pay(writer, ids[n % 8], ids[(n + 1) % 8], 1 + n % 50)
                        n += 1
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=write) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            runs = [run_job(led, "integrity", JobRequest(DAY), out=tmp_path).run for _ in range(8)]
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors
        assert [r.breaks for r in runs] == [0] * 8
        assert len({r.summary["transfers"] for r in runs}) > 1  # writes happened meanwhile
