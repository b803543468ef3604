"""Per-key request rate limits shared by every process on one database (``rate_buckets``,
all its SQL): one GCRA bucket per API key.

A key may make ``burst`` requests at once, then one per ``interval_us`` (a token bucket of
``burst`` tokens refilled at one per ``interval_us``). The bucket is one integer per key,
``tat_us``, its *theoretical arrival time* (GCRA, the generic cell rate algorithm): UTC
microseconds since 1970. A request at ``now`` goes ahead when

    max(tat_us, now) + interval_us <= now + burst * interval_us

and moves ``tat_us`` to the left-hand side; refused, it changes nothing and waits the
difference. No refill job: time refills the bucket.

What it guarantees:

* exact across processes: the decision and the write are one statement (``INSERT ... ON
  CONFLICT DO UPDATE ... WHERE ... RETURNING``) on the key's row, so two processes never
  both take the last token. The row is locked from that statement until its transaction
  commits, which is the next thing it does (a refusal reads the row once more, for the
  wait); nothing else runs in that transaction.
* one round trip of work per request (two on a refusal), plus the transaction's own
  ``BEGIN`` and ``COMMIT``.
* on PostgreSQL the transaction commits with ``synchronous_commit = off`` (folded into the
  statement): no request waits for a disk flush for its rate limit. A crash of PostgreSQL
  may lose the bucket updates of its last moments (at most three times ``wal_writer_delay``,
  600 ms by default): the keys that made requests then get those requests back, at most
  their burst. A crash can forgive a few requests; it never refuses one wrongly.
* :func:`take` is a transaction of its own, never part of another: called while a
  :meth:`~ledger.Ledger.transact` on its ledger runs in the same context (which would make
  it a savepoint of that transaction, and that transaction's commit, a request's money
  say, asynchronous) it raises :class:`~ledger.core.errors.InvariantViolation` and takes
  nothing. :func:`take_in` takes in the caller's transaction instead (the API's POSTs: the
  take commits with the request, one transaction fewer): that take is as durable as the
  transaction, which commits as it would without it, and a rollback gives the request
  back (a request that never happened takes nothing).
* one row per key that made a request, written only after the request's signature was
  verified (``api.context.authenticate``), so the table is as large as ``api_keys`` at
  most (a foreign key says so too); nothing purges it.

What it assumes: each process's clock (the ledger's) is the time; a process whose clock
runs ahead by ``d`` sees every bucket fuller by ``d / interval_us`` requests (NTP keeps
that to milliseconds). Every process on a database should use the same rate and burst:
each judges the shared ``tat_us`` by its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.limits import US_PER_S

__all__ = ["TOLERANCE_US_MAX", "Rate", "take", "take_in"]

TOLERANCE_US_MAX = 366 * 86_400 * US_PER_S
"""The longest ``burst * interval_us`` (a year): a bucket's moments stay far inside BIGINT."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A key's limit: one request per ``interval_us`` after a burst of ``burst``."""

    interval_us: int
    """Microseconds between two requests at the sustained rate."""
    burst: int
    """Requests a key may make at once."""

    def __post_init__(self) -> None:
        if self.interval_us < 1 or self.burst < 1:
            raise ValueError("a rate needs interval_us >= 1 and burst >= 1")
        if self.tolerance_us > TOLERANCE_US_MAX:
            raise ValueError("burst / rate is longer than a year")

    @classmethod
    def per_second(cls, rate_per_s: float, burst: int) -> Rate:
        """``rate_per_s`` requests a second (rounded to whole microseconds apart)."""
        if not rate_per_s > 0:
            raise ValueError("rate_per_s must be > 0")
        return cls(max(1, round(US_PER_S / rate_per_s)), burst)

    @property
    def tolerance_us(self) -> int:
        """How far ahead of now a bucket's ``tat_us`` may be once a request is taken."""
        return self.burst * self.interval_us


def _without_flush(tx: Tx) -> str:
    """A condition that holds and, on PostgreSQL, makes the transaction commit without
    waiting for the disk (``set_config(..., true)`` is ``SET LOCAL``, folded into the
    statement to save a round trip)."""
    if tx.dialect == "postgresql":
        return "set_config('synchronous_commit', 'off', true) = 'off'"
    return "1 = 1"


_LATER = "CASE WHEN rate_buckets.tat_us > :now THEN rate_buckets.tat_us ELSE :now END"
"""``max(tat_us, now)`` on both engines."""


def take(led: Ledger, key_id: str, rate: Rate) -> int:
    """Take one request from ``key_id``'s bucket, in a transaction of its own at its clock:
    0 when taken, else the microseconds until one may be (nothing taken). Refused
    (:class:`InvariantViolation`) inside an open transaction on ``led``: see the module."""
    if led.in_transaction:
        raise InvariantViolation(
            "a rate-limit take runs outside any transaction: it commits with"
            " synchronous_commit = off, which would make the open transaction's commit"
            " asynchronous too"
        )
    return led.transact(lambda tx: _take_in(tx, key_id, rate))


def take_in(tx: Tx, key_id: str, rate: Rate) -> int:
    """:func:`take` in the caller's transaction ``tx``, committed (or rolled back) with it,
    durably: 0 when taken, else the microseconds until one may be."""
    return _take_in(tx, key_id, rate, flush=True)


def _take_in(tx: Tx, key_id: str, rate: Rate, *, flush: bool = False) -> int:
    limit_us = tx.now_us + rate.tolerance_us
    params = {"key_id": key_id, "now": tx.now_us, "interval": rate.interval_us, "limit": limit_us}
    condition = "1 = 1" if flush else _without_flush(tx)
    taken = tx.execute(
        "INSERT INTO rate_buckets (key_id, tat_us)"
        f" SELECT :key_id, :now + :interval WHERE {condition}"
        f" ON CONFLICT (key_id) DO UPDATE SET tat_us = {_LATER} + :interval"
        f" WHERE {_LATER} + :interval <= :limit"
        " RETURNING tat_us",
        params,
    )
    if taken:
        return 0
    row = tx.one("SELECT tat_us FROM rate_buckets WHERE key_id = :key_id", params)
    if row is None:  # the statement above met the row and holds it until the commit
        raise InvariantViolation(f"the rate bucket of {key_id!r} vanished")
    return max(1, max(int(row[0]), tx.now_us) + rate.interval_us - limit_us)
