"""A throwaway PostgreSQL 15 primary and its streaming replica, for the read-replica tests.

Never the machine's own server: :func:`primary_and_replica` runs ``initdb`` in a new
folder under the system's temporary folder, starts the primary with ``pg_ctl`` on a free
port of 127.0.0.1, makes the replica with ``pg_basebackup -R -X stream`` (which writes
``standby.signal`` and ``primary_conninfo``), starts it on another free port, waits until
it streams, and stops and removes both when the test is done, failed or not.

``initdb`` refuses to run as root: when the tests run as root (CI on this machine kind
does), PostgreSQL's binaries run as the ``postgres`` user through ``runuser`` and the
folder is given to that user. (``tests/pgcluster.py`` does the same for one cluster.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg

__all__ = ["DATABASE", "Node", "primary_and_replica"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
HOST = "127.0.0.1"
SUPERUSER = "postgres"
RUN_AS_WHEN_ROOT = "postgres"
DATABASE = "vledger"
START_TIMEOUT_S = 60
COMMAND_TIMEOUT_S = 180
"""Bound on any one ``initdb`` / ``pg_ctl`` / ``pg_basebackup`` call."""
STREAMING_TIMEOUT_S = 60
"""How long the replica may take to start streaming from the primary."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    pwd.getpwnam(RUN_AS_WHEN_ROOT)  # KeyError: no such user, nothing can start
    return RUN_AS_WHEN_ROOT


@dataclass
class Node:
    """One server of the pair: its folder, port, and the user its binaries run as."""

    folder: Path
    port: int
    user: str | None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def url(self) -> str:
        """The ledger URL of the pair's database on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def conninfo(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{DATABASE}"

    def pg(self, binary: str, *args: str, check: bool = True) -> None:
        command = [str(PG_BIN / binary), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"{binary} {' '.join(args)} exited {done.returncode}:"
                f" {done.stdout}{done.stderr}\n{self.server_log()}"
            )

    def server_log(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={HOST}"
            f" -c unix_socket_directories={self.folder} -c fsync=off"
        )
        self.pg(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            options,
        )

    def stop(self) -> None:
        """Stop if running; never raises (the end of a test)."""
        with suppress(OSError, subprocess.TimeoutExpired):
            self.pg("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", check=False)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of one statement on the pair's database (a fresh superuser session)."""
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql.encode())
            return list(cursor.fetchall()) if cursor.description is not None else []


def _mkdir(path: Path, user: str | None) -> Path:
    path.mkdir(mode=0o700)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _wait_streaming(replica: Node) -> None:
    deadline = time.monotonic() + STREAMING_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            rows = replica.query("SELECT status FROM pg_stat_wal_receiver")
        except psycopg.Error:
            rows = []
        if rows and rows[0][0] == "streaming":
            return
        time.sleep(0.2)
    raise RuntimeError(f"the replica does not stream:\n{replica.server_log()}")


@contextmanager
def primary_and_replica() -> Iterator[tuple[Node, Node]]:
    """A running primary with an empty database :data:`DATABASE`, and a hot standby
    streaming from it; both stopped and removed afterwards."""
    if not (PG_BIN / "pg_basebackup").exists():
        raise RuntimeError(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    user = _run_as()
    folder = _mkdir(Path(tempfile.mkdtemp(prefix="vledger-replica-")) / "pair", user)
    os.chmod(folder.parent, 0o755)  # the postgres user walks through it
    primary = Node(_mkdir(folder / "primary", user), free_port(), user)
    replica = Node(_mkdir(folder / "replica", user), free_port(), user)
    try:
        primary.pg("initdb", "-D", str(primary.data), "-U", SUPERUSER, "--auth=trust")
        primary.start()
        with psycopg.connect(
            f"postgresql://{SUPERUSER}@{HOST}:{primary.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"'.encode())
        primary.pg(
            "pg_basebackup",
            "-h",
            HOST,
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-D",
            str(replica.data),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
        )
        replica.start()
        _wait_streaming(replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(folder.parent, ignore_errors=True)
