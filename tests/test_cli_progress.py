"""Progress of long commands: lines on stderr when it is not a terminal (at most one every
``LINE_EVERY_S``; none for a quick command), a ``rich`` bar on a terminal, nothing with
``--quiet``; standard output holds the same result whatever is shown."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

import vledger.progress
from ledger import Ledger
from reconciliation.progress import SILENT, Timed
from vledger.cli import main
from vledger.progress import LineProgress, shown


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def step(self, description: str) -> None:
        self.calls.append(("step", description))

    def advance(self, done: int, total: int | None = None) -> None:
        self.calls.append(("advance", done, total))


# -- the pieces -------------------------------------------------------------------------------


def test_lines_are_throttled_and_say_phase_count_and_time() -> None:
    out = io.StringIO()
    every = LineProgress("vledger x", out, every_s=0)
    every.step("reading")
    every.advance(1_200, 5_000)
    every.advance(5_000)
    assert out.getvalue().splitlines() == [
        "vledger x: reading (0 s)",
        "vledger x: reading 1,200/5,000 (0 s)",
        "vledger x: reading 5,000 (0 s)",
    ]
    quiet_out = io.StringIO()
    slow = LineProgress("vledger x", quiet_out, every_s=3600)
    for done in range(1000):
        slow.advance(done, 1000)
    slow.step("next")
    slow.finish()
    assert quiet_out.getvalue() == ""  # a quick command prints nothing, not even "done"


def test_a_long_phase_without_counts_still_gets_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vledger.progress, "LINE_EVERY_S", 0.05)
    out = io.StringIO()
    with shown("vledger slow", stream=out, terminal=False) as progress:
        progress.step("one long query")
        time.sleep(0.4)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3, lines
    assert all(line.startswith("vledger slow: ") for line in lines)
    assert "one long query" in lines[-2]
    assert lines[-1].startswith("vledger slow: done (")


def test_quiet_shows_nothing_and_an_error_ends_without_done() -> None:
    out = io.StringIO()
    with shown("vledger q", quiet=True, stream=out) as progress:
        assert progress is SILENT
        progress.step("anything")
    assert out.getvalue() == ""
    failing = io.StringIO()
    with pytest.raises(RuntimeError), shown("vledger e", stream=failing, terminal=False) as p:
        assert isinstance(p, LineProgress)
        p._every_s = 0  # every call prints
        p.step("working")
        raise RuntimeError("boom")
    assert failing.getvalue() == "vledger e: working (0 s)\n"


def test_the_bar_draws_on_a_terminal() -> None:
    out = io.StringIO()
    with shown("vledger bar", stream=out, terminal=True) as progress:
        assert not isinstance(progress, LineProgress)
        progress.step("sealing blocks")
        progress.advance(3, 7)
        time.sleep(0.3)  # the bar refreshes itself ten times a second
    drawn = out.getvalue()
    assert "vledger bar: sealing blocks" in drawn
    assert "3/7" in drawn
    assert "\x1b[" in drawn  # terminal control: the bar is drawn, then cleared


def test_timed_keeps_each_steps_seconds_and_passes_everything_on() -> None:
    seen = _Recorder()
    timed = Timed(seen, "staging lines")
    timed.advance(10)
    timed.step("matching")
    timed.close()
    assert seen.calls == [("step", "staging lines"), ("advance", 10, None), ("step", "matching")]
    assert set(timed.seconds) == {"staging lines", "matching"}
    assert all(0 <= s < 5 for s in timed.seconds.values())


# -- the commands -----------------------------------------------------------------------------


def test_reconcile_shows_progress_on_stderr_and_the_result_on_stdout(
    ledger: Ledger,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["reconcile", "integrity", "--database", ledger.url, "--date", "2026-11-28"]
    assert main([*argv, "--out", str(tmp_path / "quiet"), "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    monkeypatch.setattr(vledger.progress, "LINE_EVERY_S", 0)
    assert main([*argv, "--out", str(tmp_path / "shown")]) == 0
    shown_run = capsys.readouterr()
    lines = shown_run.err.splitlines()
    assert lines[0] == "vledger reconcile integrity: reconciling (0 s)"
    assert lines[1] == "vledger reconcile integrity: checking the seal chain (0 s)"
    assert any("checking counters" in line for line in lines)
    assert any("writing the run's files" in line for line in lines)
    assert lines[-1].startswith("vledger reconcile integrity: done (")
    # stdout is the same result either way (the run id and folder differ by attempt)
    assert shown_run.out.count("\n") == quiet.out.count("\n")
    assert shown_run.out.startswith("integrity 2026-11-28: ok, 0 break(s)")
    assert "checking" not in shown_run.out


def test_quick_reconcile_prints_no_progress_by_default(
    ledger: Ledger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["reconcile", "ageing", "--database", ledger.url, "--out", str(tmp_path)]
    assert main([*argv, "--date", "2026-11-28"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith("ageing 2026-11-28:")


def test_sweep_and_expire_show_progress_unless_quiet(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vledger.progress, "LINE_EVERY_S", 0)
    assert main(["sweep", "--database", ledger.url]) == 0
    swept = capsys.readouterr()
    assert swept.err.splitlines()[0] == "vledger sweep: running the flows' timers (0 s)"
    assert swept.err.splitlines()[-1].startswith("vledger sweep: done (")
    assert "timers" not in swept.out
    assert main(["sweep", "--database", ledger.url, "--quiet"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == swept.out
    assert main(["expire", "-q", "--database", ledger.url]) == 0
    assert capsys.readouterr() == ("expired holds voided: 0\n", "")


def test_the_statement_job_reports_its_phases_and_keeps_their_seconds(
    ledger: Ledger, tmp_path: Path
) -> None:
    from reconciliation.jobs import JobRequest, run_job
    from tests.test_recon_statement import DATA, DAY, PROVIDER, Story

    Story(ledger).build()
    seen = _Recorder()
    request = JobRequest(DAY, DATA / "mpesa-2026-06-01.sta", PROVIDER, {})
    done = run_job(ledger, "statement", request, out=tmp_path, progress=seen)
    steps = [call[1] for call in seen.calls if call[0] == "step"]
    assert steps == [
        "reconciling",
        "staging lines",
        "ledger side",
        "pass 1: reference",
        "pass 2: amount and date",
        "pass 3: group sums",
        "reading breaks",
        "recording the run",
        "writing the run's files",
    ]
    lines = done.run.summary["statement"]["lines"]
    assert ("advance", lines, None) in seen.calls  # the staged count, at the end of staging
    assert set(done.run.summary["seconds"]) == set(steps[1:7])
    assert done.run.breaks == 10
