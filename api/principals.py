"""Principals (who calls the API, with one role) and the keys they sign with.

A principal is named by its role and name; adding a key to an existing (role, name)
adds a second valid key to the same principal, which is how keys rotate: add the new
key, move the clients over, then revoke the old one. A revoked key never comes back.

Ed25519 keys store the raw public key; HMAC-SHA256 keys store the shared secret (the
server must hold it to check the MAC, so a reader of ``api_keys`` could sign as that
principal: the reason agents, whose phones sign money movements, must use Ed25519).

An API process remembers the keys it looked up for :attr:`KeyCache.ttl_s` seconds
(:class:`KeyCache`), so that a request does not pay a database round trip to learn what it
learnt a moment ago. The bound this puts on revocation: a key revoked through this
process's own API is refused at once (the revocation forgets it here); a key revoked
anywhere else (``vledger keys revoke``, another API process) is refused by this process
at most ``ttl_s`` seconds later (``Settings.key_cache_ttl_s``, 2 s by default; 0 turns the
cache off). Unknown key ids are not remembered: a key added a moment ago is found at once.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ledger import Ledger
from ledger.core.tx import Tx


class Role(StrEnum):
    STOREFRONT = "storefront"
    AGENT = "agent"
    AUDITOR = "auditor"
    OPERATOR = "operator"


class Alg(StrEnum):
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"


NAME_LENGTH_MAX = 200
KEYS_CACHED_MAX = 10_000
"""The most keys one process remembers (the least recently used are forgotten first)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A registered key, with its principal's id and role."""

    key_id: str
    principal_id: uuid.UUID
    role: Role
    alg: Alg
    material: bytes
    """The raw Ed25519 public key (32 bytes) or the HMAC secret."""
    active: bool


class KeyRefused(ValueError):
    """A key that may not be registered (an agent with HMAC, an empty name ...)."""


def new_key_id() -> str:
    return "k_" + secrets.token_urlsafe(16)


def _principal(tx: Tx, role: Role, name: str) -> uuid.UUID:
    row = tx.one(
        "SELECT id FROM principals WHERE role = :role AND name = :name",
        {"role": role.value, "name": name},
    )
    if row is not None:
        found: uuid.UUID = row[0]
        return found
    principal_id = uuid.uuid4()
    tx.execute(
        "INSERT INTO principals (id, role, name, created_at_us) VALUES (:id, :role, :name, :now)",
        {"id": principal_id, "role": role.value, "name": name, "now": tx.now_us},
    )
    return principal_id


def add_key(led: Ledger, *, role: Role, name: str, alg: Alg, material: bytes) -> ApiKey:
    """Register a key for the principal (role, name), creating the principal if new."""
    if not name or len(name) > NAME_LENGTH_MAX or not name.isprintable():
        raise KeyRefused(f"a principal's name is 1..{NAME_LENGTH_MAX} printable characters")
    if role is Role.AGENT and alg is not Alg.ED25519:
        raise KeyRefused("agents sign with Ed25519 only")
    key_id = new_key_id()

    def work(tx: Tx) -> uuid.UUID:
        principal_id = _principal(tx, role, name)
        tx.execute(
            "INSERT INTO api_keys (key_id, principal_id, alg, key_material, state,"
            " created_at_us) VALUES (:key_id, :principal_id, :alg, :material, 'active', :now)",
            {
                "key_id": key_id,
                "principal_id": principal_id,
                "alg": alg.value,
                "material": base64.b64encode(material).decode("ascii"),
                "now": tx.now_us,
            },
        )
        return principal_id

    principal_id = led.transact(work)
    return ApiKey(key_id, principal_id, role, alg, material, True)


def revoke_key(led: Ledger, key_id: str) -> bool:
    """Revoke a key; False when no active key has that id."""

    def work(tx: Tx) -> bool:
        row = tx.one(
            f"SELECT state FROM api_keys WHERE key_id = :key_id{tx.for_update}",
            {"key_id": key_id},
        )
        if row is None or row[0] != "active":
            return False
        tx.execute(
            "UPDATE api_keys SET state = 'revoked', revoked_at_us = :now"
            " WHERE key_id = :key_id AND state = 'active'",
            {"key_id": key_id, "now": tx.now_us},
        )
        return True

    return led.transact(work)


def find_key(led: Ledger, key_id: str) -> ApiKey | None:
    """The key with this id (active or revoked), or None."""

    def work(tx: Tx) -> ApiKey | None:
        row = tx.one(
            "SELECT k.key_id, k.principal_id, p.role, k.alg, k.key_material, k.state"
            " FROM api_keys k JOIN principals p ON p.id = k.principal_id"
            " WHERE k.key_id = :key_id",
            {"key_id": key_id},
        )
        if row is None:
            return None
        return ApiKey(
            key_id=row[0],
            principal_id=row[1],
            role=Role(row[2]),
            alg=Alg(row[3]),
            material=base64.b64decode(row[4]),
            active=row[5] == "active",
        )

    return led.transact(work)


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
