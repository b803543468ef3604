"""Every ``vledger`` usage error is one line on stderr and exit 2, nothing written: the
parser's own (unknown command or option, bad choice, missing argument, bad type or date)
as well as the ones a command finds; ``--help`` still prints help and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger import Ledger
from vledger.cli import main

BAD_INPUTS = [
    (["fly"], "vledger: argument COMMAND: invalid choice: 'fly'"),
    ([], "vledger: the following arguments are required: COMMAND"),
    (["migrate", "--databse", "x"], "vledger migrate: unrecognized arguments: --databse x"),
    (
        ["keys", "create", "--role", "king", "--name", "n", "--out", "{tmp}/k.key"],
        "vledger keys create: argument --role: invalid choice: 'king'",
    ),
    (["keys", "create", "--role", "agent", "--out", "{tmp}/k.key"], "required: --name"),
    (["keys"], "vledger keys: the following arguments are required: ACTION"),
    (["serve", "--port", "eighty"], "vledger serve: argument --port: invalid int value"),
    (
        ["reconcile", "integrity", "--date", "2026-02-30", "--out", "{tmp}/reports"],
        "argument --date: not a date (YYYY-MM-DD): '2026-02-30'",
    ),
    (["reconcile", "integrity", "--threshold", "x"], "argument --threshold: invalid int"),
    (["reconcile", "fly", "--out", "{tmp}/reports"], "invalid choice: 'fly'"),
    (["reconcile", "integrity", "--out", "{tmp}/r", "--bogus"], "unrecognized arguments: --bogus"),
    (["variance", "approve", "not-a-uuid", "--operator", "o"], "invalid UUID value"),
    (["variance", "list", "--state", "maybe"], "vledger variance list: argument --state"),
    (["audit", "export", "--to", "2026-01-01"], "vledger audit export: argument --to"),
    (["reconcile", "integrity", "--quiet=yes"], "ignored explicit argument"),
]


@pytest.mark.parametrize(("argv", "expected"), BAD_INPUTS)
def test_a_usage_error_is_one_line_and_exit_2_and_writes_nothing(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "village.db"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with_db = [*argv, "--database", f"sqlite:///{database}"] if len(argv) > 1 else argv
    assert main(with_db) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert expected in lines[0]
    assert lines[0].startswith("vledger")
    assert lines[0].endswith("--help)")  # the hint names the command's own help
    assert "usage:" not in captured.err and "None" not in captured.err
    assert list(tmp_path.iterdir()) == []  # no key file, no database, no report folder


def test_the_hint_names_the_innermost_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["variance", "reject", "not-a-uuid", "--operator", "o", "--reason", "r"]) == 2
    assert capsys.readouterr().err.endswith("(see vledger variance reject --help)\n")


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["reconcile", "--help"], ["keys", "create", "--help"], ["seal", "-h"]],
)
def test_help_still_prints_help_and_exits_0(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: vledger")
    assert "--quiet" in captured.out
    assert captured.err == ""


def test_quiet_is_taken_by_every_command_and_its_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vledger.cli import parse

    assert parse(["migrate", "--quiet"]).quiet is True
    assert parse(["keys", "revoke", "k1", "-q"]).quiet is True
    assert parse(["keys", "--quiet", "revoke", "k1"]).quiet is True  # before the action too
    assert getattr(parse(["migrate"]), "quiet", False) is False
    assert parse(["reconcile", "integrity", "--quiet"]).quiet is True
    assert capsys.readouterr().err == ""


def test_a_child_process_prints_one_line_without_traceback(tmp_path: Path) -> None:
    key, database = tmp_path / "k.key", f"sqlite:///{tmp_path / 'village.db'}"
    argv = ["keys", "create", "--role", "king", "--name", "n", "--out", str(key)]
    done = subprocess.run(
        [sys.executable, "-m", "vledger", *argv, "--database", database],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("vledger keys create: argument --role: invalid choice")
    assert list(tmp_path.iterdir()) == []


def test_a_command_error_after_parsing_is_one_line_too(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconcile", "integrity", "--database", ledger.url, "--out", str(tmp_path / "r")]
    assert main([*argv, "--threshold", "-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "vledger reconcile: --threshold must be 0 or more\n"
    assert not (tmp_path / "r").exists()


def test_a_reconcile_run_lists_every_problem_at_once(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconcile", "statement", "--database", ledger.url, "--out", str(tmp_path / "r")]
    bad = ["--option", "tolerance=lots", "--option", "window_days=99", "--option", "<b>=1"]
    assert main([*argv, *bad, "--option", "nameless", "--threshold", "-2"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    line = captured.err.rstrip("\n")
    assert line.startswith("vledger reconcile: statement needs --scope PROVIDER, --input FILE; ")
    for part in (
        "statement has no option <b> (its options: tolerance, window_days, format,",
        "option tolerance must be a decimal amount of 0 or more, like 50 or 0.50, not 'lots'",
        "option window_days must be a whole number of days 0..31, not '99'",
        "--option takes NAME=VALUE, not 'nameless'",
        "--threshold must be 0 or more",
    ):
        assert part in line
    assert "None" not in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["orders"], "orders needs --scope STOREFRONT_ID"),
        (["settlement", "--scope", "MPESA"], "settlement needs --input FILE"),
        (["integrity", "--input", "{tmp}/x.csv"], "integrity takes no --input"),
        (["cash-count", "--input", "{tmp}/missing.json"], "no such file"),
        (["ageing", "--option", "x=1"], "ageing has no option x (its options: none)"),
        (["pack", "--option", "from=June"], "option from must be a date YYYY-MM-DD, not 'June'"),
        (["orders", "--scope", "s", "--option", "evidence=magic"], "option evidence must be"),
        (["statement", "--option", "x=" + "9" * 10_000], "statement needs --scope"),
    ],
)
def test_reconcile_refuses_what_a_job_does_not_take(
    argv: list[str],
    problem: str,
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "x.csv").write_text("a\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    out = tmp_path / "reports"
    assert main(["reconcile", *argv, "--database", ledger.url, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert problem in captured.err
    assert len(captured.err) < 600  # an oversized value is not echoed whole
    assert not out.exists()


@pytest.mark.parametrize(
    ("job", "says"),
    [
        ("statement", ["--scope PROVIDER (required)", "--input FILE (required)", "tolerance:"]),
        ("orders", ["--scope STOREFRONT_ID (required)", "--input FILE (optional)", "stale_days"]),
        ("integrity", ["--scope: not taken", "--input: not taken", "options: none"]),
        ("pack", ["from: the first day", "(default: the business date)"]),
        ("settlement", ["fee_max_minor:", "(default: 0)", "--input FILE (required)"]),
    ],
)
def test_reconcile_job_help_lists_its_scope_input_and_options(
    job: str, says: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reconcile", job, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: vledger reconcile {job}")
    flat = " ".join(out.split())  # the epilog is wrapped
    for text in says:
        assert text in flat
    assert all(len(line) <= 100 for line in out.splitlines())
