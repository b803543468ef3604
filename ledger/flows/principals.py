"""Principals (who calls the API, with one role) and the keys they sign with: the owner
of ``principals`` and ``api_keys``.

A principal is named by its role and name; adding a key to an existing (role, name)
adds a second valid key to the same principal, which is how keys rotate: add the new
key, move the clients over, then revoke the old one. A revoked key never comes back.

Ed25519 keys store the raw public key; HMAC-SHA256 keys store the shared secret (the
server must hold it to check the MAC, so a reader of ``api_keys`` could sign as that
principal: the reason agents, whose phones sign money movements, must use Ed25519).

The API's process-wide cache of keys (``api.principals.KeyCache``) reads through
:func:`find_key`.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.flows.errors import Refused
from ledger.limits import NAME_LENGTH_MAX

__all__ = [
    "Alg",
    "ApiKey",
    "KeyRefused",
    "KeyState",
    "Role",
    "add_key",
    "add_key_in",
    "find_key",
    "find_key_in",
    "new_key_id",
    "principal_role",
    "principal_role_in",
    "revoke_key",
    "revoke_key_in",
]


class Role(StrEnum):
    """``principals.role``: what a principal may do through the API."""

    STOREFRONT = "storefront"
    AGENT = "agent"
    AUDITOR = "auditor"
    OPERATOR = "operator"


class Alg(StrEnum):
    """``api_keys.alg``: how a key signs."""

    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"


class KeyState(StrEnum):
    """``api_keys.state``: a revoked key never comes back."""

    ACTIVE = "active"
    REVOKED = "revoked"


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


class KeyRefused(Refused, ValueError):
    """A key that may not be registered (an agent with HMAC, an empty name ...); nothing
    was written. Its message is the detail alone (``vledger keys create`` prints it)."""

    def __init__(self, detail: str) -> None:
        super().__init__("key_refused", detail)
        self.args = (detail,)


def new_key_id() -> str:
    return "k_" + secrets.token_urlsafe(16)


def _check_key(*, role: Role, name: str, alg: Alg) -> None:
    if not name or len(name) > NAME_LENGTH_MAX or not name.isprintable():
        raise KeyRefused(f"a principal's name is 1..{NAME_LENGTH_MAX} printable characters")
    if role is Role.AGENT and alg is not Alg.ED25519:
        raise KeyRefused("agents sign with Ed25519 only")


def _principal(tx: Tx, role: Role, name: str) -> uuid.UUID:
    """The id of the principal (role, name), created if new."""
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


def add_key_in(tx: Tx, *, role: Role, name: str, alg: Alg, material: bytes) -> ApiKey:
    """Register a key for the principal (role, name), creating the principal if new;
    :class:`KeyRefused` for a name or an algorithm the role may not have."""
    _check_key(role=role, name=name, alg=alg)
    key_id = new_key_id()
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
    return ApiKey(key_id, principal_id, role, alg, material, True)


def revoke_key_in(tx: Tx, key_id: str) -> bool:
    """Revoke a key; False when no active key has that id."""
    row = tx.one(
        f"SELECT state FROM api_keys WHERE key_id = :key_id{tx.for_update}",
        {"key_id": key_id},
    )
    if row is None or row[0] != KeyState.ACTIVE:
        return False
    tx.execute(
        "UPDATE api_keys SET state = 'revoked', revoked_at_us = :now"
        " WHERE key_id = :key_id AND state = 'active'",
        {"key_id": key_id, "now": tx.now_us},
    )
    return True


def find_key_in(tx: Tx, key_id: str) -> ApiKey | None:
    """The key with this id (active or revoked), or None."""
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
        active=row[5] == KeyState.ACTIVE,
    )


def principal_role_in(tx: Tx, principal_id: uuid.UUID) -> Role | None:
    """The role of the principal with this id, or None."""
    row = tx.one("SELECT role FROM principals WHERE id = :id", {"id": principal_id})
    return None if row is None else Role(row[0])


add_key = transactional(add_key_in)
revoke_key = transactional(revoke_key_in)
find_key = transactional(find_key_in)
principal_role = transactional(principal_role_in)
