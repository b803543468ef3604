"""`vledger` end to end: the demo, migrate, expire and bad input, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ledger import Account, AccountFlags, Status, Transfer, TransferFlags, open_ledger
from vledger.cli import main
from vledger.demo import format_amount

REPO = Path(__file__).resolve().parent.parent
UNREACHABLE_PG_URL = "postgresql+psycopg://postgres:secret@127.0.0.1:1/test"


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def run_vledger(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m vledger ARGS`` in a child process, as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k != "VLEDGER_DATABASE"}
    return subprocess.run(
        [sys.executable, "-m", "vledger", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# -- demo ---------------------------------------------------------------------------


DEMO_STORY = (
    "an operator proposes Amina and Baraka for tier1, a second approves (Chebet stays tier0)",
    "fee schedules published: order, cash_in, cash_out (each proposed by one operator,"
    " approved by another)",
    "float.low: Kamau's kiosk's float is down to KES 7,000.00",
    "alarm re-armed",
    "refused, limit_exceeded_per_transaction",
    "the same answer, nothing moved",
    "seller KES 1,176.00",  # KES 1,200 less the 2% fee
    "KES 3,000.00 released",
    "refused, order_not_payable",
    "cash-out without the villager's consent: refused, consent_required",
    "with his code (fee KES 30.00): held, cash handed over, confirmed",
    "the same code again: refused, consent_invalid",
    "Baraka dials *384*55#: 5 (withdraw cash), PIN, Wanjiru's till number, 2,000, 1 Confirm;"
    " the last screen: END Namba ya kutoa pesa: ###### | Kwa KES 2,000.00 kwa Wanjiru's shop,"
    " till <till>.",
    "the aggregator repeats that step: the same screen, no second code",
    "SMS to Baraka (consent.code_made): Namba ya kutoa pesa ya KES 2,000.00 imetengenezwa.",
    "SMS to Baraka (wallet.receipt): Umelipa KES 2,000.00 kwa Wanjiru's shop tarehe dd/mm/yyyy",
    "with her PIN and never comes",
    "1 expired, hold voided",
    "refused, below_minimum",
    "2 applied, 1 exception (allowance_spent)",
    "0 stored, 3 already known; nothing moved",
    "parked in suspense",
    "1 order(s) auto-released",
    "Duka Solar's KES 2,940.00 failed; report ties to the ledger",
    "Duka Solar's KES 2,940.00 paid now; settled, report ties",
    "the same operator approving the return: refused, proposal_maker_cannot_decide",
    "a second operator approves: the money goes back through the bank (returned)",
    "KES 50.00 short: a variance",
    "an operator proposes posting it, a second approves: the shortfall is posted",
    "KES 20.00 over: a variance",
    "is paid through the bank, proposed by one operator and approved by another",
    "its float (KES 12,000.00) is below it, so the back office lists it",
    "Wanjiru's shop cash on hand  KES 21,450.00",  # KES 50.00 short, posted
)
"""Lines (or parts) both ways of telling the day print."""

HTTP_TRAFFIC = re.compile(
    r"^over HTTP: (\d+) signed requests \((\d+) POSTs with an Idempotency-Key,"
    r" (\d+) answered from the idempotency store, (\d+) refusals as problem\+json\)$",
    re.MULTILINE,
)


def api_rows(db_url: str) -> tuple[int, int]:
    """(idempotency records, principals) in the database: what only signed requests and
    their keys leave behind."""
    with open_ledger(db_url) as led:
        return led.transact(
            lambda tx: (
                tx.one("SELECT count(*) FROM idempotency_records")[0],
                tx.one("SELECT count(*) FROM principals")[0],
            )
        )


def same_story(out: str) -> list[str]:
    """The lines both ways tell alike: not the HTTP-only lines, nor how a refusal came."""
    return [
        re.sub(r" \(HTTP \d{3} problem\+json\)$", "", line)
        for line in out.splitlines()[1:]
        if not line.startswith(("[on the ledger directly", "keys: ", "over HTTP: "))
        and "with reference DEP-" not in line
    ]


def test_demo_goes_through_the_signed_api_and_ends_with_a_clean_integrity_check(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--database", db_url]) == 0
    out = capsys.readouterr().out
    assert last_line(out) == "integrity: ok"
    for expected in DEMO_STORY:
        assert expected in out, expected
    assert "through the signed API at http://127.0.0.1:" in out.splitlines()[0]
    # The refusals are the API's problem+json answers.
    assert "refused, limit_exceeded_per_transaction (HTTP 422 problem+json)" in out
    assert "refused, order_not_payable (HTTP 409 problem+json)" in out
    assert "refused, below_minimum (HTTP 422 problem+json)" in out
    assert "refused, consent_required (HTTP 422 problem+json)" in out
    # The steps without a route say that they ran on the ledger.
    assert (
        "[on the ledger directly, no HTTP route: the operator's sweep of the order timers]" in out
    )
    assert "[on the ledger directly, no HTTP route: reconciliation parks the bank's" in out
    [traffic] = HTTP_TRAFFIC.findall(out)
    requests, posts, replayed, problems = map(int, traffic)
    assert requests >= 60
    assert posts >= 40
    assert (replayed, problems) == (1, 6)
    # Every POST went through the API's idempotency store (one record per key; the replay
    # reused its key), signed by a key of the day: a demo that called the flows directly
    # would leave neither behind.
    records, principals = api_rows(db_url)
    assert records == posts - replayed
    assert principals == 7  # two operators, an auditor, 2 storefronts, 2 agents


def test_demo_direct_calls_the_flows_and_tells_the_same_day(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--direct", "--database", db_url]) == 0
    direct = capsys.readouterr().out
    assert last_line(direct) == "integrity: ok"
    for expected in DEMO_STORY:
        assert expected in direct, expected
    assert "HTTP" not in direct
    assert api_rows(db_url) == (0, 6)  # no request; the day's operators, shops and agents

    assert main(["demo", "--database", db_url]) == 0
    over_http = capsys.readouterr().out
    assert last_line(over_http) == "integrity: ok"

    # The same story, the same balances and the same events, told through the API.
    def story(out: str) -> list[str]:
        return [line for line in same_story(out) if not line.startswith("fee schedules")]

    assert story(direct) == story(over_http)


def test_demo_runs_again_on_the_same_database(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--database", db_url]) == 0
    first = capsys.readouterr().out
    assert main(["demo", "--database", db_url]) == 0
    second = capsys.readouterr().out
    assert last_line(second) == "integrity: ok"
    assert "fee schedules already in effect: order, cash_in, cash_out" in second

    def story(out: str) -> list[str]:
        """The lines that must repeat: not the schedules' line, not the bank's reference,
        not the count of requests (a retried request counts again)."""
        return [
            line
            for line in out.splitlines()[1:]
            if not line.startswith(("fee schedules", "over HTTP: "))
            and "with reference DEP-" not in line
        ]

    # Fresh ids and fresh keys each run: the second day is the same story, not a replay.
    assert story(first) == story(second)
    assert api_rows(db_url)[1] == 14


def test_demo_as_a_child_process(db_url: str) -> None:
    done = run_vledger("demo", "--database", db_url)
    assert done.returncode == 0, done.stderr
    assert last_line(done.stdout) == "integrity: ok"
    assert HTTP_TRAFFIC.search(done.stdout)
    assert "Traceback" not in done.stderr
    assert done.stderr == ""


def test_demo_reports_a_tampered_database_and_fails(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--database", sqlite_url]) == 0
    capsys.readouterr()
    # Money appears from nowhere: a counter that no transfer explains.
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE flags = 0")
    conn.close()
    assert main(["demo", "--database", sqlite_url]) == 1
    out = capsys.readouterr().out
    assert "integrity: FAILED" in out
    assert last_line(out) != "integrity: ok"


def test_demo_uses_vledger_database_when_no_option_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("VLEDGER_DATABASE", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert last_line(capsys.readouterr().out) == "integrity: ok"
    assert path.is_file()
    assert not (tmp_path / "village.db").exists()


@pytest.mark.parametrize(
    ("amount_minor", "text"),
    [
        (0, "KES 0.00"),
        (5, "KES 0.05"),
        (120_000, "KES 1,200.00"),
        (123_456_789, "KES 1,234,567.89"),
        (-150, "KES -1.50"),
        (2**63 - 1, "KES 92,233,720,368,547,758.07"),
    ],
)
def test_amounts_are_formatted_from_minor_units(amount_minor: int, text: str) -> None:
    assert format_amount(amount_minor) == text


# -- migrate and expire ---------------------------------------------------------------


def test_migrate_prints_the_revision_and_is_repeatable(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database", db_url]) == 0
    first = capsys.readouterr().out
    assert "to revision" in first
    assert main(["migrate", "--database", db_url]) == 0
    assert capsys.readouterr().out == first


def test_expire_voids_the_holds_whose_timeout_has_passed(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--database", db_url]) == 0
    assert main(["expire", "--database", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "expired holds voided: 0"

    # Two holds placed an hour ago: one timed out after a minute, one has a day to go.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    wallet, shop = uuid.uuid4(), uuid.uuid4()
    stale, fresh = uuid.uuid4(), uuid.uuid4()
    with open_ledger(db_url, clock=lambda: hour_ago) as led:
        accounts = [
            Account(wallet, "KES", 1, AccountFlags(0)),
            Account(shop, "KES", 4, AccountFlags(0)),
        ]
        assert {r.status for r in led.create_accounts(accounts)} == {Status.CREATED}
        holds = [
            Transfer(stale, wallet, shop, 1_000, "KES", 1, TransferFlags.PENDING, timeout_s=60),
            Transfer(fresh, wallet, shop, 2_000, "KES", 1, TransferFlags.PENDING, timeout_s=86_400),
        ]
        assert {r.status for r in led.create_transfers(holds)} == {Status.CREATED}

    assert main(["expire", "--database", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "expired holds voided: 1"
    assert main(["expire", "--database", db_url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "expired holds voided: 0"
    with open_ledger(db_url) as led:
        [account] = led.lookup_accounts([wallet])
        assert account.debits_pending == 2_000


def test_expire_on_a_database_not_migrated_says_so(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["expire", "--database", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert "migrate" in err
    assert len(err.strip().splitlines()) == 1


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "demo", "expire"])
@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/ledger",
        "not a url",
        "sqlite:///no/such/folder/anywhere/ledger.db",
    ],
)
def test_bad_database_url_exits_2_with_one_line(
    command: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--database", url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"vledger {command}: ")


def test_unreachable_postgresql_exits_2_without_traceback_or_password() -> None:
    done = run_vledger("migrate", "--database", UNREACHABLE_PG_URL)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("vledger migrate: ")
    assert "secret" not in done.stderr


def test_bad_url_in_a_child_process_has_no_traceback() -> None:
    done = run_vledger("demo", "--database", "mysql://root@localhost/ledger")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [[], ["fly"], ["demo", "--databse", "x"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vledger") and err.count("\n") == 1  # one line, no usage block


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("migrate", "demo", "expire"):
        assert command in out
