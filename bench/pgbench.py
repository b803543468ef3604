"""The PostgreSQL side of the benchmarks: throwaway databases and pgbench's baseline.

Every benchmark run gets a database of its own, created on the server the URL names and
dropped afterwards (the database in the URL is only used as the maintenance database).
:class:`PgBench` runs pgbench's built-in TPC-B-like script against the same server, so
the ledger's figures are quoted beside what plain PostgreSQL does on the same machine in
the same run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

PGBENCH_DEFAULT = "/usr/bin/pgbench"
PGBENCH_SCALE = 4
PGBENCH_DATABASE = "vledger_pgbench"
PGBENCH_WARMUP_S = 5
PGBENCH_DURATION_S = 15
PGBENCH_TIMEOUT_MARGIN_S = 120
"""How long past its planned duration a pgbench run may take before it is killed."""

CONNECT_TIMEOUT_S = 10
SERVER_SETTINGS = ("fsync", "synchronous_commit", "shared_buffers", "wal_level", "max_wal_size")
"""Settings printed with the results: they decide what a commit costs."""

_TPS_LINE = re.compile(r"^tps = ([0-9.]+) \((without initial connection time|excluding)", re.M)
_TPS_ANY = re.compile(r"^tps = ([0-9.]+)", re.M)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql+psycopg://", "postgresql://", "postgres://"))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:///")


def libpq_url(url: str) -> str:
    """The libpq URI of a SQLAlchemy-style URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` instead (scheme, credentials and query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def log(message: str) -> None:
    """Progress goes to stderr, so ``--json`` output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def _connect_maintenance(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)


def drop_database(url: str, database: str) -> None:
    with _connect_maintenance(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def create_fresh_database(url: str, database: str) -> str:
    """Drop ``database`` if it exists, create it empty; answer a URL naming it."""
    if database == urlsplit(url).path.lstrip("/"):
        raise ValueError(f"refusing to drop the maintenance database {database!r}")
    drop_database(url, database)
    with _connect_maintenance(url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return with_database(url, database)


@contextmanager
def fresh_database(url: str, database: str) -> Iterator[str]:
    """A freshly created database on the server of ``url``; dropped on the way out."""
    fresh_url = create_fresh_database(url, database)
    try:
        yield fresh_url
    finally:
        drop_database(url, database)


def server_settings(url: str) -> dict[str, str]:
    """The server's version and the settings that decide the cost of a commit."""
    found: dict[str, str] = {}
    with _connect_maintenance(url) as conn:
        for name in ("server_version", *SERVER_SETTINGS):
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            found[name] = str(row[0]) if row else "?"
    return found


def parse_tps(output: str) -> float:
    """The ``tps = ...`` figure of a pgbench report (excluding connection set-up)."""
    match = _TPS_LINE.search(output) or _TPS_ANY.search(output)
    if match is None:
        raise ValueError(f"no 'tps = ' line in pgbench output:\n{output}")
    return float(match.group(1))


@dataclass(frozen=True, slots=True)
class PgBenchRun:
    clients: int
    threads: int
    duration_s: int
    tps: float


class PgBench:
    """pgbench's TPC-B-like script on its own database (``-i -s 4``) of the server."""

    def __init__(
        self,
        url: str,
        *,
        database: str = PGBENCH_DATABASE,
        scale: int = PGBENCH_SCALE,
        executable: str | None = None,
    ) -> None:
        self.url = url
        self.database = database
        self.scale = scale
        found = executable or shutil.which("pgbench") or PGBENCH_DEFAULT
        if not os.path.exists(found):
            raise FileNotFoundError(f"pgbench not found (looked for {found})")
        self.executable = found
        parts = urlsplit(libpq_url(url))
        self._connection_args = [
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 5432),
            "-U",
            unquote(parts.username or "postgres"),
        ]
        self._env: Mapping[str, str] = dict(os.environ)
        if parts.password:
            self._env = {**self._env, "PGPASSWORD": unquote(parts.password)}

    def _pgbench(self, args: list[str], timeout_s: float) -> str:
        command = [self.executable, *self._connection_args, *args, self.database]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self._env,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done.stdout + done.stderr

    def initialise(self) -> None:
        """A fresh pgbench database at the configured scale."""
        create_fresh_database(self.url, self.database)
        self._pgbench(["-i", "-q", "-s", str(self.scale)], timeout_s=PGBENCH_TIMEOUT_MARGIN_S)

    def run(self, *, clients: int, threads: int, duration_s: int) -> PgBenchRun:
        output = self._pgbench(
            ["-c", str(clients), "-j", str(threads), "-T", str(duration_s)],
            timeout_s=duration_s + PGBENCH_TIMEOUT_MARGIN_S,
        )
        return PgBenchRun(clients, threads, duration_s, parse_tps(output))

    def warm_up(self, duration_s: int = PGBENCH_WARMUP_S) -> None:
        self.run(clients=1, threads=1, duration_s=duration_s)

    def drop(self) -> None:
        drop_database(self.url, self.database)
