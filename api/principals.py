"""Principals (who calls the API, with one role) and the keys they sign with, as the API
uses them: the rows and their rules live in :mod:`ledger.flows.principals` (the owner of
``principals`` and ``api_keys``; its names are re-exported here).

An API process remembers the keys it looked up for :attr:`KeyCache.ttl_s` seconds
(:class:`KeyCache`), so that a request does not pay a database round trip to learn what it
learnt a moment ago. The bound this puts on revocation: a key revoked through this
process's own API is refused at once (the revocation forgets it here); a key revoked
anywhere else (``vledger keys revoke``, another API process) is refused by this process
at most ``ttl_s`` seconds later (``Settings.key_cache_ttl_s``, 2 s by default; 0 turns the
cache off). Unknown key ids are not remembered: a key added a moment ago is found at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ledger.flows.principals import (
    Alg,
    ApiKey,
    KeyRefused,
    Role,
    add_key,
    find_key,
    new_key_id,
    revoke_key,
)
from ledger.limits import NAME_LENGTH_MAX

__all__ = [
    "KEYS_CACHED_MAX",
    "NAME_LENGTH_MAX",
    "Alg",
    "ApiKey",
    "KeyCache",
    "KeyRefused",
    "Role",
    "add_key",
    "find_key",
    "new_key_id",
    "revoke_key",
]

KEYS_CACHED_MAX = 10_000
"""The most keys one process remembers (the least recently used are forgotten first)."""


class KeyCache:
    """Keys looked up in the last ``ttl_s`` seconds (found ones only), least recently used
    forgotten past :data:`KEYS_CACHED_MAX`. Safe to share between threads."""

    def __init__(
        self,
        lookup: Callable[[str], ApiKey | None],
        *,
        ttl_s: float,
        size_max: int = KEYS_CACHED_MAX,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``lookup``: the database's answer (:func:`find_key` on the API's ledger)."""
        if ttl_s < 0 or size_max < 1:
            raise ValueError("ttl_s must be >= 0 and size_max >= 1")
        self._lookup = lookup
        self.ttl_s = ttl_s
        self._size_max = size_max
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, tuple[float, ApiKey]] = OrderedDict()
        self._forgotten = 0
        """Counts :meth:`forget` calls: a lookup that ran across one is not remembered
        (it may have read the key before the revocation committed)."""

    def cached(self, key_id: str) -> ApiKey | None:
        """The key, when it was looked up less than ``ttl_s`` seconds ago; else None."""
        now = self._monotonic()
        with self._lock:
            found = self._keys.get(key_id)
            if found is None:
                return None
            if now - found[0] >= self.ttl_s:
                del self._keys[key_id]
                return None
            self._keys.move_to_end(key_id)
            return found[1]

    def find(self, key_id: str) -> ApiKey | None:
        """The lookup's answer, from memory when it was asked less than ``ttl_s`` ago."""
        hit = self.cached(key_id)
        if hit is not None:
            return hit
        with self._lock:
            looked_up_at, forgotten = self._monotonic(), self._forgotten
        key = self._lookup(key_id)
        if key is None or self.ttl_s == 0:
            return key
        with self._lock:
            if forgotten == self._forgotten:
                self._keys[key_id] = (looked_up_at, key)
                self._keys.move_to_end(key_id)
                while len(self._keys) > self._size_max:
                    self._keys.popitem(last=False)
        return key

    def forget(self, key_id: str) -> None:
        """Drop the key (it was just revoked here: the next request looks it up)."""
        with self._lock:
            self._forgotten += 1
            self._keys.pop(key_id, None)
