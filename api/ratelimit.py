"""Rate limits: per API key, shared by every process on the database; per network address
for the enrollment's redeem, in this process.

:class:`KeyRateLimit` (``api.context.authenticate``): each key may burst ``burst`` requests,
refilled at ``rate_per_s``, however many API processes serve it: the bucket is a row of
``rate_buckets`` taken by one statement (:mod:`ledger.flows.rate_buckets`, which says
what it guarantees). It does I/O: it runs in a worker thread, never on the event loop. A
POST takes in its own transaction (:meth:`KeyRateLimit.take_in`, ``api.context.run_post``):
one transaction per request, the take committed with it.
There is no in-process bucket in front of it: one would refuse what the shared bucket
still allows (its own count lags the other processes' requests) or allow what it refuses.

:class:`TokenBuckets`: an in-process token bucket, for a limit that is not a key's (the
enrollment's per-address limit: several processes allow it several times).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import rate_buckets
from ledger.limits import US_PER_S

__all__ = ["KeyRateLimit", "TokenBuckets"]


class KeyRateLimit:
    """The per-key limit, in the database (``Settings.rate_limit_per_s``, ``_burst``)."""

    def __init__(self, ledger: Ledger, *, rate_per_s: float, burst: int) -> None:
        self._ledger = ledger
        self.rate = rate_buckets.Rate.per_second(rate_per_s, burst)

    def take(self, key_id: str) -> int:
        """0 when the key's request may go ahead (taken), else the whole seconds to wait
        (``Retry-After``, at least 1). One transaction: call it from a worker thread."""
        wait_us = rate_buckets.take(self._ledger, key_id, self.rate)
        return -(-wait_us // US_PER_S)  # whole seconds, rounded up

    def take_in(self, tx: Tx, key_id: str) -> int:
        """:meth:`take` in the request's own transaction ``tx`` (a POST's: it commits, or
        rolls back, with the request)."""
        wait_us = rate_buckets.take_in(tx, key_id, self.rate)
        return -(-wait_us // US_PER_S)


class TokenBuckets:
    """Token buckets in this process, by any name: ``burst`` each, refilled at ``rate_per_s``."""

    def __init__(
        self, *, rate_per_s: float, burst: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> int:
        """0 when a request may go ahead, else the seconds to wait (Retry-After)."""
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / self._rate))
