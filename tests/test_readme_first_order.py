"""README.md's "First order in ten minutes", run as it is written.

The section's ```sh blocks run in order in one bash process at the root of the
repository (so their shell variables carry over, as in the reader's terminal), on a fresh
SQLite file in a temporary folder. Only what must differ is substituted, through the
variables the README itself reads: ``HERE`` (the folder), ``PORT`` and ``HOOK_PORT`` (free
ports); and ``make`` is told not to reinstall ``.venv`` (``-o .venv/.installed``; when
pyproject.toml is newer than that install, ``PYTHONPATH`` names the repository's root so
that a package added since is found as a fresh install would find it). The
```text block after a command block is its expected output: each of its lines must
appear in that block's output, in order; ``...`` in a line stands for anything (ids,
times). The background processes the section starts are stopped by the section
itself (``kill``); the whole process group is killed afterwards in any case.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TITLE = "## First order in ten minutes"
MARKER = "@@@ README block {} @@@"
RUN_TIMEOUT_S = 300
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Step:
    commands: str
    expected: list[str]


def section(text: str) -> str:
    start = text.index(TITLE + "\n")
    end = text.find("\n## ", start + len(TITLE))
    return text[start : end if end != -1 else len(text)]


def steps_of(text: str) -> list[Step]:
    """Each sh block with the lines of the text block that follows it (if one does)."""
    found: list[Step] = []
    for match in FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        if lang == "sh":
            found.append(Step(body, []))
        elif lang == "text" and found and not found[-1].expected:
            lines = [line.rstrip() for line in body.splitlines() if line.strip()]
            found[-1] = Step(found[-1].commands, lines)
    return found


def line_pattern(expected: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in expected.split("...")))


def missing_lines(expected: list[str], output: str) -> list[str]:
    """The expected lines not found in ``output`` in order (empty: all were)."""
    actual = [line.rstrip() for line in output.splitlines()]
    at = 0
    for i, want in enumerate(expected):
        pattern = line_pattern(want)
        while at < len(actual) and not pattern.fullmatch(actual[at]):
            at += 1
        if at == len(actual):
            return expected[i:]
        at += 1
    return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the parser and the matcher themselves ------------------------------------------


def test_the_section_has_commands_each_with_its_expected_output() -> None:
    steps = steps_of(section(README.read_text()))
    assert len(steps) >= 6
    assert all(step.expected for step in steps)  # every command block shows its output
    whole = "\n".join(step.commands for step in steps)
    for needed in ("vledger keys create", "/v1/parties", "cash-ins", "pay-code", "deliver"):
        assert needed in whole
    assert "python examples/" not in whole.replace(".venv/bin/python examples/", "")
    # the service's own routes and settings, not stand-ins that write the database
    for needed in ("/v1/fee-schedules", "/approve", "VLEDGER_WEBHOOK_NETWORKS_ALLOWED="):
        assert needed in whole
    assert ".venv/bin/vledger serve" in whole
    for stand_in in ("examples/fee_schedule.py", "examples/local_service.py"):
        assert stand_in not in whole


def test_the_matcher_needs_every_line_in_order() -> None:
    out = "a 1\nb xyz\nc\n"
    assert missing_lines(["a ...", "c"], out) == []
    assert missing_lines(["c", "a ..."], out) == ["a ..."]
    assert missing_lines(["b x"], out) == ["b x"]  # a whole line, not a part
    assert missing_lines(["d"], out) == ["d"]


# -- the walkthrough ------------------------------------------------------------------


def stale_install() -> bool:
    stamp = ROOT / ".venv" / ".installed"
    return not stamp.exists() or stamp.stat().st_mtime < (ROOT / "pyproject.toml").stat().st_mtime


def make_without_install(bin_dir: Path) -> None:
    """A ``make`` first on PATH that runs the real one with ``-o .venv/.installed``: the
    README's ``make migrate`` runs as written but never reinstalls the shared ``.venv``
    (the test's own interpreter is that ``.venv``, installed already)."""
    real = shutil.which("make")
    if real is None:
        pytest.skip("no make on PATH")
    bin_dir.mkdir()
    wrapper = bin_dir / "make"
    wrapper.write_text(f'#!/bin/sh\nexec {real} -o .venv/.installed "$@"\n')
    wrapper.chmod(0o755)


@pytest.mark.slow
def test_the_first_order_runs_as_written(tmp_path: Path) -> None:
    make_without_install(tmp_path / "bin")
    steps = steps_of(section(README.read_text()))
    script = ["set -e"]
    for i, step in enumerate(steps):
        script += [f"echo '{MARKER.format(i)}'", step.commands]
    here = tmp_path / "first-order"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLEDGER_", "VIRTUAL_ENV"))}
    env.update(HERE=str(here), PORT=str(free_port()), HOOK_PORT=str(free_port()))
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if stale_install():
        # pyproject.toml changed since .venv was installed (make would reinstall it, which
        # a test must not do to the shared .venv): a top-level package added since is not
        # in the editable install yet, so the repository's root stands in for it.
        env["PYTHONPATH"] = str(ROOT)
    env.pop("BASE", None)
    log = tmp_path / "output.txt"
    with log.open("w") as out:
        # A file, not a pipe: a background process left running cannot hold the test.
        run = subprocess.Popen(
            ["bash", "-c", "\n".join(script)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            run.wait(timeout=RUN_TIMEOUT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)  # anything the section left running
    output = log.read_text()
    assert run.returncode == 0, output[-4000:]
    parts = re.split(r"^@@@ README block (\d+) @@@$", output, flags=re.MULTILINE)
    by_step = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    assert sorted(by_step) == list(range(len(steps))), output[-4000:]
    for i, step in enumerate(steps):
        missing = missing_lines(step.expected, by_step[i])
        assert not missing, f"block {i}:\n{step.commands}\nmissing {missing} in:\n{by_step[i]}"
    received = (here / "webhooks.log").read_text().splitlines()
    assert [line.split()[0] for line in received[1:]] == [
        "order.paid",
        "order.dispatched",
        "order.delivered",
        "order.released",
    ]
