"""A throwaway PostgreSQL 15 primary and its streaming replica, for the read-replica tests.

Never the machine's own server: :func:`primary_and_replica` runs ``initdb`` in a new
folder under the system's temporary folder, starts the primary with ``pg_ctl`` on a free
port of 127.0.0.1, makes the replica with ``pg_basebackup -R -X stream`` (which writes
``standby.signal`` and ``primary_conninfo``), starts it on another free port, waits until
it streams, and stops and removes both when the test is done, failed or not.

``initdb`` refuses to run as root: when the tests run as root (CI on this machine kind
does), PostgreSQL's binaries run as the ``postgres`` user through ``runuser`` and the
folder is given to that user. Each server is a :class:`tests.pgcluster.Cluster`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.pgcluster import HOST, PG_BIN, SUPERUSER, Cluster, free_port, run_as

__all__ = ["Node", "primary_and_replica"]

Node = Cluster
"""One server of the pair."""

STREAMING_TIMEOUT_S = 60
"""How long the replica may take to start streaming from the primary."""


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
    """A running primary with an empty test database, and a hot standby streaming from
    it; both stopped and removed afterwards."""
    if not (PG_BIN / "pg_basebackup").exists():
        raise RuntimeError(f"PostgreSQL 15 binaries not found in {PG_BIN}")
    user = run_as()
    folder = _mkdir(Path(tempfile.mkdtemp(prefix="vledger-replica-")) / "pair", user)
    os.chmod(folder.parent, 0o755)  # the postgres user walks through it
    primary = Node(_mkdir(folder / "primary", user), free_port(), user)
    replica = Node(_mkdir(folder / "replica", user), free_port(), user)
    try:
        primary.init()
        primary.start()
        primary.create_database()
        primary.pg(
            "pg_basebackup", "-h", HOST, "-p", str(primary.port), "-U", SUPERUSER,
            "-D", str(replica.data), "-R", "-X", "stream", "--checkpoint=fast",
        )  # fmt: skip
        replica.start()
        _wait_streaming(replica)
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(folder.parent, ignore_errors=True)
