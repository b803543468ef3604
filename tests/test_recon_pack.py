"""The pack job: an auditor pack for a period (CSVs, a JSON summary, Beancount text, a
SHA-256 manifest signed with the service key), on both engines.

The story: a bank funds Alice (KES) and a UGX wallet on 31 May; on 1 June Alice pays
Bob, holds money for Bob and posts part of it, Bob holds money for Alice; on 2 June that
hold is voided, Bob pays Alice and the UGX wallet pays out; on 3 June one more payment.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ledger import Account, AccountFlags, Ledger, Status, Transfer, TransferFlags
from ledger.core.tx import Tx
from ledger.flows import agent_float, parties
from ledger.flows.parties import Kind
from reconciliation import pack
from reconciliation.jobs import JobRequest, JobResult, run_job
from reconciliation.seal import seal_pending
from reconciliation.service_key import ENV_VAR, ServiceKey, load_service_key
from tests.conftest import Clock
from vledger.cli import main

KES, UGX = "KES", "UGX"
JUNE_1, JUNE_2, JUNE_3 = date(2026, 6, 1), date(2026, 6, 2), date(2026, 6, 3)


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceKey:
    """The service key, found through ``$VLEDGER_SERVICE_KEY`` as in production."""
    made = load_service_key("sqlite:///unused.db", tmp_path / "keys" / "service-key.pem")
    monkeypatch.setenv(ENV_VAR, str(made.path))
    return made


@dataclass(frozen=True, slots=True)
class Story:
    bank: uuid.UUID
    alice: uuid.UUID
    bob: uuid.UUID
    ug_bank: uuid.UUID
    ug_wallet: uuid.UUID
    payment: uuid.UUID  # Alice -> Bob 2,500.00 on 1 June


def move(
    led: Ledger,
    debit: uuid.UUID | None,
    credit: uuid.UUID | None,
    amount: int | None,
    *,
    currency: str | None = KES,
    flags: TransferFlags = TransferFlags(0),
    pending_id: uuid.UUID | None = None,
) -> uuid.UUID:
    transfer = Transfer(
        id=uuid.uuid4(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=amount,
        currency=currency,
        code=7,
        flags=flags,
        pending_id=pending_id,
    )
    [result] = led.create_transfers([transfer])
    assert result.status is Status.CREATED
    return transfer.id


def tell_story(led: Ledger, clock: Clock) -> Story:
    clock.now = datetime(2026, 5, 31, 9, 0, tzinfo=UTC)
    s = Story(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    wallet = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
    results = led.create_accounts(
        [
            Account(id=s.bank, currency=KES, code=1),
            Account(id=s.alice, currency=KES, code=2, flags=wallet),
            Account(id=s.bob, currency=KES, code=2, flags=wallet),
            Account(id=s.ug_bank, currency=UGX, code=1),
            Account(id=s.ug_wallet, currency=UGX, code=2, flags=wallet),
        ]
    )
    assert all(r.status is Status.CREATED for r in results)
    move(led, s.bank, s.alice, 100_000)  # seq 1
    move(led, s.ug_bank, s.ug_wallet, 50_000, currency=UGX)  # seq 2
    clock.now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    [result] = led.create_transfers(
        [Transfer(s.payment, s.alice, s.bob, 2_500, KES, code=7)]
    )  # seq 3
    assert result.status is Status.CREATED
    hold = move(led, s.alice, s.bob, 1_000, flags=TransferFlags.PENDING)  # seq 4
    clock.advance(3600)
    move(led, None, None, 600, currency=None, flags=TransferFlags.POST_PENDING, pending_id=hold)
    clock.advance(3600)
    open_hold = move(led, s.bob, s.alice, 300, flags=TransferFlags.PENDING)  # seq 6
    clock.now = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
    move(
        led, None, None, None, currency=None, flags=TransferFlags.VOID_PENDING, pending_id=open_hold
    )
    move(led, s.bob, s.alice, 1_234)  # seq 8
    move(led, s.ug_wallet, s.ug_bank, 1_500, currency=UGX)  # seq 9
    clock.now = datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
    move(led, s.alice, s.bob, 10)  # seq 10
    return s


def make_pack(led: Ledger, out: Path, day: date, **options: str) -> JobResult:
    return run_job(led, "pack", JobRequest(day, options=options), out=out)


def read_csv(folder: Path, name: str) -> list[dict[str, str]]:
    with (folder / "pack" / name).open(newline="") as f:
        return list(csv.DictReader(f))


def by_account(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["account_id"]: row for row in rows}


def ints(row: dict[str, str], *names: str) -> tuple[int, ...]:
    return tuple(int(row[name]) for name in names)


POSTING = re.compile(
    r"^  (?P<account>[A-Z][A-Za-z0-9:-]+)\s+(?P<amount>-?\d+(\.\d+)?) (?P<cur>[A-Z]{3})$"
)


def beancount_entries(text: str) -> tuple[list[list[tuple[str, Decimal, str]]], dict[str, Decimal]]:
    """A minimal reading: each transaction's postings, and each balance assertion."""
    transactions: list[list[tuple[str, Decimal, str]]] = []
    balances: dict[str, Decimal] = {}
    current: list[tuple[str, Decimal, str]] | None = None
    for line in text.splitlines():
        if re.match(r"^\d{4}-\d\d-\d\d \* ", line):
            current = []
            transactions.append(current)
        elif (m := POSTING.match(line)) and current is not None:
            current.append((m["account"], Decimal(m["amount"]), m["cur"]))
        elif found := re.match(r"^\d{4}-\d\d-\d\d balance (\S+)\s+(-?\d+(\.\d+)?) [A-Z]{3}$", line):
            balances[found[1]] = Decimal(found[2])
            current = None
        elif not line.startswith("  "):
            current = None
    return transactions, balances


def test_one_day_pack_has_exact_rows_ties_and_a_signed_manifest(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    s = tell_story(ledger, clock)
    seal_pending(ledger, key, block_size_max=3)  # blocks: seq 1-3, 4-6, 7-9, 10
    integrity = run_job(ledger, "integrity", JobRequest(JUNE_1), out=tmp_path).run

    done = make_pack(ledger, tmp_path, JUNE_1)

    assert done.run.status == "ok", done.findings.detail
    assert done.run.scope == "2026-06-01..2026-06-01"
    folder = done.folder
    transfers = read_csv(folder, "transfers.csv")
    assert [(t["seq"], t["kind"], t["amount"]) for t in transfers] == [
        ("3", "transfer", "2500"),
        ("4", "hold", "1000"),
        ("5", "post", "600"),
        ("6", "hold", "300"),
    ]
    assert transfers[0]["id"] == str(s.payment)
    assert transfers[0]["created_at"] == "2026-06-01T10:00:00+00:00"
    balances = by_account(read_csv(folder, "balances.csv"))
    columns = (
        "opening_debits_posted",
        "opening_credits_posted",
        "period_debits_minor",
        "period_credits_minor",
        "closing_debits_posted",
        "closing_credits_posted",
    )
    assert ints(balances[str(s.alice)], *columns) == (0, 100_000, 3_100, 0, 3_100, 100_000)
    assert ints(balances[str(s.bob)], *columns) == (0, 0, 0, 3_100, 0, 3_100)
    assert ints(balances[str(s.bank)], *columns) == (100_000, 0, 0, 0, 100_000, 0)
    assert ints(balances[str(s.ug_wallet)], *columns) == (0, 50_000, 0, 0, 0, 50_000)
    for row in balances.values():
        opening_d, opening_c, moved_d, moved_c, closing_d, closing_c = ints(row, *columns)
        assert (opening_d + moved_d, opening_c + moved_c) == (closing_d, closing_c)
        assert row["ties"] == "yes"
    accounts = by_account(read_csv(folder, "accounts.csv"))
    assert len(accounts) == 5
    pending = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
    assert ints(accounts[str(s.alice)], *pending) == (3_100, 100_000, 0, 300)  # Bob's hold
    assert ints(accounts[str(s.bob)], *pending) == (0, 3_100, 300, 0)
    assert accounts[str(s.alice)]["beancount_account"] == f"Assets:Code2:{s.alice.hex.upper()}"
    [integrity_run] = read_csv(folder, "runs.csv")
    assert (integrity_run["job"], integrity_run["status"]) == ("integrity", "ok")
    # where the run read: the primary (no replica here), its position on PostgreSQL
    assert (integrity_run["run_id"], integrity_run["read_source"]) == (str(integrity.id), "primary")
    assert integrity_run["read_lsn"] == (integrity.reads.read_lsn or "")
    assert (integrity_run["read_lsn"] == "") == (ledger.dialect == "sqlite")
    assert integrity_run["close_lsn"] == ""
    blocks = read_csv(folder, "checkpoints.csv")
    assert [b["block"] for b in blocks] == ["1", "2"]  # the blocks holding seq 3 .. 6
    note = (folder / "pack" / blocks[0]["checkpoint_file"]).read_text()
    assert note.startswith(ledger.transact(_first_checkpoint_line))

    summary = json.loads((folder / "pack" / "summary.json").read_text())
    assert summary["counts"] == {
        "accounts": 5,
        "transfers": 4,
        "transfers_by_kind": {"hold": 2, "post": 1, "transfer": 1},
        "transfers_sealed": 4,
        "runs": 1,
        "checkpoints": 2,
    }
    assert summary["totals"] == {
        KES: {
            "transfers": 4,
            "posted_minor": 3_100,
            "held_minor": 1_300,
            "hold_posted_minor": 600,
            "voided_minor": 0,
        }
    }
    assert summary["trial_balance"][KES] == {
        "accounts": 3,
        "debits_posted": 103_100,
        "credits_posted": 103_100,
        "debits_pending": 300,
        "credits_pending": 300,
    }
    assert summary["trial_balance"][UGX]["debits_posted"] == 50_000
    assert summary["counters_checked"] is False  # later transfers exist

    # the manifest lists every file but itself, its signature and the key, with digests
    manifest = (folder / "pack" / "MANIFEST.sha256").read_text()
    listed = [line.split("  ", 1) for line in manifest.splitlines()]
    present = sorted(
        p.relative_to(folder / "pack").as_posix()
        for p in (folder / "pack").rglob("*")
        if p.is_file()
    )
    unlisted = {"MANIFEST.sha256", "MANIFEST.sha256.sig", "service-key.pem"}
    assert [name for _, name in listed] == [name for name in present if name not in unlisted]
    for digest, name in listed:
        assert hashlib.sha256((folder / "pack" / name).read_bytes()).hexdigest() == digest
    signature = base64.b64decode((folder / "pack" / "MANIFEST.sha256.sig").read_bytes())
    key.public_key.verify(signature, manifest.encode())  # raises if it does not verify
    assert (folder / "pack" / "service-key.pem").read_bytes() == key.public_pem()
    assert done.run.input_sha256 == hashlib.sha256(manifest.encode()).hexdigest()
    assert pack.verify_pack(folder / "pack", key.public_key).ok

    # what was checked: each file with its rows and digest, in the run's summary and report
    files = done.run.summary["files"]
    assert files["pack/transfers.csv"]["rows"] == 4
    assert files["pack/accounts.csv"]["rows"] == 5
    assert (folder / "detail.csv").read_text() == ",".join(pack.DETAIL_HEADER) + "\n"
    assert "pack/ledger.beancount" in (folder / "report.html").read_text()


def _first_checkpoint_line(tx: Tx) -> str:
    row = tx.one("SELECT checkpoint FROM seal_blocks WHERE number = 1")
    assert row is not None
    return str(row[0]).splitlines()[0]


def test_two_day_pack_ties_and_its_beancount_balances_exactly(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    s = tell_story(ledger, clock)

    done = make_pack(ledger, tmp_path, JUNE_2, **{"from": "2026-06-01", "to": "2026-06-02"})

    assert done.run.status == "ok", done.findings.detail
    assert done.run.scope == "2026-06-01..2026-06-02"
    folder = done.folder
    transfers = read_csv(folder, "transfers.csv")
    assert [(t["kind"], t["amount"], t["currency"]) for t in transfers] == [
        ("transfer", "2500", KES),
        ("hold", "1000", KES),
        ("post", "600", KES),
        ("hold", "300", KES),
        ("void", "300", KES),
        ("transfer", "1234", KES),
        ("transfer", "1500", UGX),
    ]
    balances = by_account(read_csv(folder, "balances.csv"))
    closing = ("closing_debits_posted", "closing_credits_posted")
    assert ints(balances[str(s.alice)], *closing) == (3_100, 101_234)
    assert ints(balances[str(s.bob)], *closing) == (1_234, 3_100)
    assert ints(balances[str(s.ug_wallet)], *closing) == (1_500, 50_000)
    assert balances[str(s.ug_wallet)]["closing_balance_minor"] == "-48500"
    accounts = by_account(read_csv(folder, "accounts.csv"))
    assert ints(accounts[str(s.bob)], "debits_pending") == (0,)  # the hold was voided

    text = (folder / "pack" / "ledger.beancount").read_text()
    assert 'option "operating_currency" "KES"' in text
    assert 'option "operating_currency" "UGX"' in text
    transactions, asserted = beancount_entries(text)
    # 4 opening balances (bank, Alice, UGX bank and wallet) + 4 transfers that post money
    assert len(transactions) == 8
    running: dict[str, Decimal] = {}
    for postings in transactions:
        assert len(postings) == 2
        assert sum(amount for _, amount, _ in postings) == 0  # exact: Decimal, never float
        for account, amount, _ in postings:
            running[account] = running.get(account, Decimal(0)) + amount
    alice = f"Assets:Code2:{s.alice.hex.upper()}"
    wallet = f"Assets:Code2:{s.ug_wallet.hex.upper()}"
    assert asserted[alice] == Decimal("-981.34")  # 3,100 debits - 101,234 credits, cents
    assert asserted[wallet] == Decimal("-48500")  # UGX has no minor digits
    assert f"2026-06-03 balance {wallet}  -48500 UGX" in text
    for account, amount in asserted.items():
        assert running.get(account, Decimal(0)) == amount, account
    assert text.count(" note ") == 3  # two holds and the void: notes, not postings
    assert f"2026-06-03 balance {alice}" in text  # the day after the period


def test_a_pack_is_deterministic_for_the_same_state_and_period(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    tell_story(ledger, clock)
    period = {"from": "2026-06-01", "to": "2026-06-02"}
    first = make_pack(ledger, tmp_path, date(2026, 6, 9), **period)
    second = make_pack(ledger, tmp_path, date(2026, 6, 9), **period)
    assert (first.run.attempt, second.run.attempt) == (1, 2)
    assert first.run.input_sha256 == second.run.input_sha256
    assert first.folder != second.folder


def test_the_period_reaching_now_checks_the_counters_too(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    tell_story(ledger, clock)
    done = make_pack(ledger, tmp_path, JUNE_3, **{"from": "2026-05-31"})
    assert done.run.status == "ok", done.findings.detail
    summary = json.loads((done.folder / "pack" / "summary.json").read_text())
    assert summary["counters_checked"] is True
    assert summary["counts"]["transfers"] == 10


def test_changing_one_byte_of_any_file_fails_verification(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    tell_story(ledger, clock)
    seal_pending(ledger, key)
    folder = make_pack(ledger, tmp_path / "runs", JUNE_1).folder / "pack"
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "checkpoints/0000000001.txt" in names and "ledger.beancount" in names
    for name in names:
        copy = tmp_path / "copy" / name.replace("/", "_")
        shutil.copytree(folder, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        report = pack.verify_pack(copy, key.public_key)
        assert not report.ok, name
    # a file slipped in, a file dropped, another key
    extra = tmp_path / "extra"
    shutil.copytree(folder, extra)
    (extra / "more.csv").write_text("a\n")
    assert pack.verify_pack(extra, key.public_key).problems == ["more.csv: not in the manifest"]
    (extra / "more.csv").unlink()
    (extra / "runs.csv").unlink()
    assert pack.verify_pack(extra, key.public_key).problems == ["runs.csv: listed but missing"]
    other = load_service_key("sqlite:///unused.db", tmp_path / "other.pem")
    assert not pack.verify_pack(folder, other.public_key).ok
    assert pack.verify_pack(folder, folder / "service-key.pem").ok


def test_a_transfer_changed_behind_the_triggers_does_not_tie(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    s = tell_story(ledger, clock)

    def tamper(tx: Tx) -> None:
        if tx.dialect == "postgresql":
            tx.execute("ALTER TABLE transfers DISABLE TRIGGER transfers_immutable")
        else:
            tx.execute("DROP TRIGGER transfers_no_update")
        tx.execute("UPDATE transfers SET amount = 2501 WHERE id = :id", {"id": s.payment})

    ledger.transact(tamper)
    done = make_pack(ledger, tmp_path, JUNE_1)

    assert done.run.status == "breaks"
    assert done.run.summary["breaks_by_kind"] == {"balance_tie": 2}
    with (done.folder / "detail.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["object_id"], r["expected"], r["actual"]) for r in rows} == {
        (str(s.alice), "3101 100000", "3100 100000"),
        (str(s.bob), "0 3101", "0 3100"),
    }
    balances = by_account(read_csv(done.folder, "balances.csv"))
    assert balances[str(s.alice)]["ties"] == "no"
    assert balances[str(s.bank)]["ties"] == "yes"
    assert pack.verify_pack(done.folder / "pack", key.public_key).ok  # signed as found


def test_bad_periods_and_options_are_refused(
    ledger: Ledger, tmp_path: Path, key: ServiceKey
) -> None:
    refusals = {
        "starts after it ends": {"from": "2026-06-02", "to": "2026-06-01"},
        "takes a date": {"from": "1 June"},
        "not fro": {"fro": "2026-06-01"},
        "at most 366 days": {"from": "2025-06-01", "to": "2026-06-02"},
    }
    for message, options in refusals.items():
        with pytest.raises(pack.PackRefused, match=message):
            make_pack(ledger, tmp_path, JUNE_1, **options)
    with pytest.raises(pack.PackRefused, match="no --scope"):
        run_job(ledger, "pack", JobRequest(JUNE_1, scope="MPESA"), out=tmp_path)
    # 366 days is the limit, and allowed
    done = make_pack(ledger, tmp_path, JUNE_1, **{"from": "2025-06-01", "to": "2026-06-01"})
    assert done.run.status == "ok"
    assert done.run.scope == "2025-06-01..2026-06-01"


def test_a_pack_holds_at_most_pack_rows_max_accounts_and_transfers(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    tell_story(ledger, clock)  # 5 accounts; 4 transfers on 1 June
    monkeypatch.setattr(pack, "PACK_ROWS_MAX", 5)
    assert make_pack(ledger, tmp_path, JUNE_1).run.status == "ok"
    monkeypatch.setattr(pack, "PACK_ROWS_MAX", 4)
    with pytest.raises(pack.PackRefused, match="at most 4"):
        make_pack(ledger, tmp_path, JUNE_1)


def test_without_a_service_key_the_pack_is_refused(
    ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    with pytest.raises(pack.PackRefused, match="no service key"):
        make_pack(ledger, tmp_path, JUNE_1)


def test_the_command_writes_a_pack_signed_with_the_key_vledger_seal_uses(
    ledger: Ledger,
    clock: Clock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tell_story(ledger, clock)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # PostgreSQL's key lives here
    out = tmp_path / "reports"
    common = ["reconcile", "pack", "--database", ledger.url, "--out", str(out)]
    assert main([*common, "--date", "2026-06-01"]) == 2
    assert "no service key" in capsys.readouterr().err
    assert main(["seal", "--database", ledger.url]) == 0  # makes the key
    capsys.readouterr()

    assert main([*common, "--date", "2026-06-01"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("pack 2026-06-01: ok, 0 break(s)")
    [folder] = (out / "pack" / "2026-06-01").iterdir()
    public = load_service_key(ledger.url).public_key
    assert pack.verify_pack(folder / "pack", public).ok
    period = ["--option", "from=2026-06-01", "--option", "to=2026-06-02"]
    assert main([*common, "--date", "2026-06-02", *period]) == 0
    capsys.readouterr()
    assert main([*common, "--option", "from=2026-06-03", "--option", "to=2026-06-01"]) == 2
    assert "starts after it ends" in capsys.readouterr().err


@pytest.mark.skipif(
    shutil.which("bean-check") is None,
    reason="bean-check is not on PATH (install beancount outside the project to run it; it is"
    " GPL and not a dependency)",
)
def test_bean_check_accepts_the_export(
    ledger: Ledger, clock: Clock, tmp_path: Path, key: ServiceKey
) -> None:
    s = tell_story(ledger, clock)
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    agent_float.top_up_float(
        ledger, topup_id=uuid.uuid4(), agent_id=agent.id, amount_minor=75_050, provider="MPESA"
    )
    clock.now += timedelta(days=1)
    done = make_pack(ledger, tmp_path, JUNE_3, **{"from": "2026-06-01"})
    assert done.run.status == "ok", done.findings.detail
    text = (done.folder / "pack" / "ledger.beancount").read_text()
    assert "Liabilities:Agent:Float:" in text and "Assets:Platform:Clearing:" in text
    assert 'role: "provider_clearing:MPESA"' in text
    assert f"Assets:Code2:{s.bob.hex.upper()}" in text
    found = subprocess.run(
        ["bean-check", str(done.folder / "pack" / "ledger.beancount")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert found.returncode == 0, found.stdout + found.stderr


def test_beancount_amounts_use_the_currency_exponent() -> None:
    assert pack.beancount_amount(120_000, KES) == "1200.00"
    assert pack.beancount_amount(-5, KES) == "-0.05"
    assert pack.beancount_amount(1_500, UGX) == "1500"
    assert pack.beancount_amount(1_234, "BHD") == "1.234"
    assert pack.beancount_amount(0, KES) == "0.00"
