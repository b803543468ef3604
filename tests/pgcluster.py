"""A throwaway PostgreSQL 15 cluster for tests that kill the database.

Never the machine's own server: :func:`throwaway_cluster` runs ``initdb`` in a new
folder under the system's temporary folder, starts it with ``pg_ctl`` on a free TCP
port of 127.0.0.1 (no Unix socket elsewhere than its own folder), trust authentication,
``fsync=on`` (an immediate shutdown must lose nothing committed), and removes everything
when the test is done, failed or not.

- :meth:`Cluster.kill` is ``pg_ctl stop -m immediate``: the postmaster and its backends
  quit at once without a checkpoint, as after a crash; the next start replays the WAL.
- :meth:`Cluster.start` starts it again on the same folder and port.

``initdb`` refuses to run as root. When the tests run as root (CI on this machine kind
does), every PostgreSQL binary runs as the ``postgres`` user through ``runuser``, and
the cluster's folder is given to that user; otherwise they run as the current user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

__all__ = ["HOST", "PG_BIN", "SUPERUSER", "Cluster", "free_port", "run_as", "throwaway_cluster"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "postgres"
"""The system user PostgreSQL's binaries run as when the tests run as root."""
DATABASE = "faults"
START_TIMEOUT_S = 30
"""How long ``pg_ctl start`` waits for the server to accept connections."""
STOP_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 120
"""Bound on any one ``initdb`` / ``pg_ctl`` / ``createdb`` call."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def run_as() -> str | None:
    """The user to run PostgreSQL's binaries as: ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError:
        raise RuntimeError(
            f"running as root, and there is no {RUN_AS_WHEN_ROOT!r} user for initdb"
        ) from None
    return RUN_AS_WHEN_ROOT


@dataclass
class Cluster:
    """One running (or killed) throwaway cluster."""

    folder: Path
    port: int
    user: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def url(self) -> str:
        """The ledger URL of the cluster's test database."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def conninfo(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    def pg(self, binary: str, *args: str, check: bool = True) -> None:
        """Run one of PostgreSQL's binaries (as :attr:`user`); RuntimeError if it fails."""
        command: list[str] = [str(PG_BIN / binary), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{binary} {' '.join(args)} exited {done.returncode}:"
                f" {done.stdout}{done.stderr}\n{self.server_log()}"
            )

    def server_log(self) -> str:
        """The server's log (for a failing test's message)."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def init(self) -> None:
        self.pg("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")

    def start(self) -> None:
        """Start (again) on the same folder and port; returns once it accepts connections."""
        options = " ".join(
            (
                f"-p {self.port}",
                f"-c listen_addresses={HOST}",
                f"-c unix_socket_directories={self.folder}",
                "-c fsync=on",
                "-c max_connections=100",
            )
        )
        self.pg(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            options,
        )

    def kill(self) -> None:
        """``pg_ctl stop -m immediate``: every backend gone at once, no checkpoint."""
        self.pg("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")

    def stop(self) -> None:
        """Stop if running (the end of a test); never raises."""
        with suppress(OSError, subprocess.TimeoutExpired):
            self.pg(
                "pg_ctl",
                "stop",
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
                check=False,
            )

    def is_up(self) -> bool:
        try:
            with psycopg.connect(self.conninfo, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def create_database(self) -> None:
        with psycopg.connect(
            f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Rows of one statement on the test database (a fresh connection)."""
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new cluster with an empty database :data:`DATABASE`, running; stopped and
    removed afterwards, whatever happened."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    user = run_as()
    folder = Path(tempfile.mkdtemp(prefix="vledger-pgcluster-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(folder, free_port(), user)
    try:
        cluster.init()
        cluster.start()
        cluster.create_database()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
