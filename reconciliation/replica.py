"""When a reconciliation job reads a streaming replica, and what its run then says.

A deployment may give a read-only replica (``VLEDGER_READ_DATABASE``, opened by
:func:`ledger.core.replica.open_read_ledger`). Jobs, reports and packs read there to keep
their long scans off the primary; the run row is always written on the primary, and
money never goes near the replica. :func:`plan_reads` decides, for one run:

1. **No replica, SQLite, or a job that writes or stages** (``cash-count`` records the
   count; ``statement`` stages lines in temporary tables, which a standby refuses): the
   primary, as before.
2. **An open date.** A job covering business dates up to ``D`` (the business date; for a
   pack the period's last day) waits for ``D`` to close: midnight UTC after ``D`` plus
   :data:`CLOSE_SETTLE_S`. The settle time is there because a transfer is stamped with
   the ledger's clock when its transaction begins and commits a moment later: one
   stamped 23:59:59.9 can commit after midnight. Before the close the job reads the
   primary at once (waiting for the replica could not give it a day that is not over).
3. **A closed date.** The job reads the primary's WAL insert position ``P``
   (``pg_current_wal_insert_lsn()``) as it starts. ``D`` closed before that, so ``P`` is
   at or past the primary's position at ``D``'s close, and every transaction of ``D`` has
   its commit before ``P``. It then polls the replica's ``pg_last_wal_replay_lsn()``
   every ``poll_s``: once that is at or past ``P`` the job reads the replica, and the
   run records the replay position it saw (``read_lsn``, read before the job's first
   snapshot, so its reads include everything up to it) and ``P`` (``close_lsn``). If the
   replica has not passed ``P`` after ``wait_max_s`` (:data:`REPLICA_WAIT_MAX_S`), or
   cannot be reached, or is not in recovery, the job reads the primary, and the run
   records ``primary``, the primary's position then (``read_lsn``) and ``P``.

Why ``P`` and not a position recorded at midnight: nothing in the service runs at the
close, so a position "at the close" would be one written some time after it, no better
than ``P``; and a later position is always safe (waiting for more never reads less).
It is also what makes a replica run equal to a primary one: jobs read more than ``D``'s
rows (integrity checks are cumulative, a pack reads counters and runs as they stand),
and a run on a replica at or past ``P`` reads what the primary held when the job
started, and possibly a little more, exactly as a run on the primary starting then
would.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time

import psycopg

from ledger import Ledger
from ledger.core.errors import StorageError
from ledger.core.replica import Lsn, primary_lsn, replay_lsn
from reconciliation.runs import PRIMARY_READS, SOURCE_PRIMARY, SOURCE_REPLICA, RunReads

__all__ = [
    "CLOSE_SETTLE_S",
    "REPLICA_POLL_S",
    "REPLICA_WAIT_MAX_S",
    "ReadPlan",
    "Replica",
    "closed",
    "plan_reads",
]

log = logging.getLogger("vledger.reconciliation.replica")

CLOSE_SETTLE_S = 60
"""A business date counts as closed this long after its midnight UTC (transfers stamped
just before midnight commit just after it)."""
REPLICA_WAIT_MAX_S = 30.0
"""How long a job waits for the replica to replay past the primary's position before
it reads the primary instead."""
REPLICA_POLL_S = 0.2
"""How often a waiting job asks the replica how far it has replayed."""


@dataclass(frozen=True, slots=True)
class Replica:
    """A read ledger on a streaming replica, and how long a job waits for it."""

    ledger: Ledger
    wait_max_s: float = REPLICA_WAIT_MAX_S
    poll_s: float = REPLICA_POLL_S
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """The ledger a run reads, and what its row records about it."""

    ledger: Ledger
    reads: RunReads


def closed(last_day: date, now: datetime) -> bool:
    """Whether business dates up to ``last_day`` are over at ``now`` (see the module)."""
    midnight = datetime.combine(last_day + timedelta(days=1), day_time(0), tzinfo=UTC)
    return now >= midnight + timedelta(seconds=CLOSE_SETTLE_S)


def _replayed(replica: Ledger) -> Lsn | None:
    """The replica's replay position; ``None`` when it cannot say (down, not a standby)."""
    try:
        return replay_lsn(replica)
    except (StorageError, psycopg.Error) as exc:
        log.warning("read replica not answering: reading the primary", extra={"error": str(exc)})
        return None


def _primary(primary: Ledger, close: Lsn | None) -> ReadPlan:
    close_text = None if close is None else str(close)
    return ReadPlan(primary, RunReads(SOURCE_PRIMARY, str(primary_lsn(primary)), close_text))


def plan_reads(primary: Ledger, replica: Replica | None, last_day: date) -> ReadPlan:
    """Where a job covering business dates up to ``last_day`` reads (see the module)."""
    if primary.dialect != "postgresql":
        return ReadPlan(primary, PRIMARY_READS)
    if replica is None or not closed(last_day, primary.now()):
        return _primary(primary, None)
    close = primary_lsn(primary)
    deadline = time.monotonic() + replica.wait_max_s
    while True:
        replayed = _replayed(replica.ledger)
        if replayed is None:
            break
        if replayed >= close:
            return ReadPlan(replica.ledger, RunReads(SOURCE_REPLICA, str(replayed), str(close)))
        if time.monotonic() >= deadline:
            log.warning(
                "read replica behind the close: reading the primary",
                extra={"replay_lsn": str(replayed), "close_lsn": str(close)},
            )
            break
        replica.sleep(replica.poll_s)
    return _primary(primary, close)
