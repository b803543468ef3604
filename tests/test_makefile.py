"""The Makefile and .ci/run say what the README promises (read with `make -n`, not run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make not installed")


def dry_run(*args: str) -> list[str]:
    """The commands `make -n -B ARGS` would run, one per line."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def index_of(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)


def test_run_installs_migrates_then_serves_the_api() -> None:
    lines = dry_run("run")
    steps = [
        index_of(lines, "-m venv .venv"),
        index_of(lines, "pip --quiet --disable-pip-version-check install -e ."),
        index_of(lines, "vledger migrate --database 'sqlite:///village.db'"),
        index_of(
            lines,
            "vledger serve --host '127.0.0.1' --port '8000' --database 'sqlite:///village.db'",
        ),
    ]
    assert steps == sorted(steps)


def test_demo_installs_migrates_then_runs_the_demo() -> None:
    lines = dry_run("demo")
    steps = [
        index_of(lines, "-m venv .venv"),
        index_of(lines, "pip --quiet --disable-pip-version-check install -e ."),
        index_of(lines, "vledger migrate --database 'sqlite:///village.db'"),
        index_of(lines, "vledger demo --database 'sqlite:///village.db'"),
    ]
    assert steps == sorted(steps)


def test_test_installs_the_test_extras_lints_then_runs_pytest() -> None:
    lines = dry_run("test", "PYTEST_ARGS=-k cli -x")
    steps = [
        index_of(lines, "install -e '.[test]'"),
        index_of(lines, "ruff check ."),
        index_of(lines, "ruff format --check ."),
        index_of(lines, "mypy --strict ledger/"),
        index_of(lines, "pytest -k cli -x"),
    ]
    assert steps == sorted(steps)


def test_bench_runs_w1_on_the_given_database() -> None:
    assert any(
        "-m bench.w1 --database 'postgresql+psycopg://postgres@127.0.0.1:5432/test'" in line
        for line in dry_run("bench")
    )
    assert any(
        "--database 'sqlite:///b.db'" in line
        for line in dry_run("bench", "BENCH_DATABASE=sqlite:///b.db")
    )


def test_no_registry_host_is_hard_coded() -> None:
    for name in ("Makefile", ".ci/run", "Dockerfile"):
        text = (REPO / name).read_text()
        for word in ("index-url", "extra-index", "trusted-host", "https://", "http://"):
            assert word not in text, f"{name} names {word}"


def test_ci_script_is_executable_bash_that_requires_postgres() -> None:
    script = REPO / ".ci" / "run"
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert "export VLEDGER_REQUIRE_POSTGRES=1" in text
    assert "exec make test" in text
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
