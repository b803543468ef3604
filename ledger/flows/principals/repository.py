"""All SQL of ``principals`` and ``api_keys``: a principal is (role, name) with an id; a key
belongs to one principal, its material stored base64 (the raw Ed25519 public key or the
HMAC secret), its ``state`` moving ``active`` -> ``revoked`` once. Moments are UTC
microseconds since 1970 (``*_us``)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from enum import StrEnum

from ledger.core.tx import Tx

__all__ = [
    "Alg",
    "ApiKey",
    "KeyState",
    "NewKey",
    "Role",
    "count_principals",
    "has_active_key",
    "insert_key",
    "insert_principal",
    "lock_key_state",
    "material_registered",
    "revoke",
    "select_key",
    "select_principal_id",
    "select_role",
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


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key to store, active from now."""

    key_id: str
    principal_id: uuid.UUID
    alg: Alg
    material: bytes


def select_principal_id(tx: Tx, role: Role, name: str) -> uuid.UUID | None:
    """The id of the principal (role, name), or None."""
    row = tx.one(
        "SELECT id FROM principals WHERE role = :role AND name = :name",
        {"role": role.value, "name": name},
    )
    if row is None:
        return None
    found: uuid.UUID = row[0]
    return found


def insert_principal(tx: Tx, principal_id: uuid.UUID, role: Role, name: str) -> None:
    tx.execute(
        "INSERT INTO principals (id, role, name, created_at_us) VALUES (:id, :role, :name, :now)",
        {"id": principal_id, "role": role.value, "name": name, "now": tx.now_us},
    )


def insert_key(tx: Tx, new: NewKey) -> None:
    tx.execute(
        "INSERT INTO api_keys (key_id, principal_id, alg, key_material, state,"
        " created_at_us) VALUES (:key_id, :principal_id, :alg, :material, 'active', :now)",
        {
            "key_id": new.key_id,
            "principal_id": new.principal_id,
            "alg": new.alg.value,
            "material": base64.b64encode(new.material).decode("ascii"),
            "now": tx.now_us,
        },
    )


def lock_key_state(tx: Tx, key_id: str) -> KeyState | None:
    """The key's state, its row locked until the transaction ends; None: no such key."""
    row = tx.one(
        f"SELECT state FROM api_keys WHERE key_id = :key_id{tx.for_update}",
        {"key_id": key_id},
    )
    return None if row is None else KeyState(row[0])


def revoke(tx: Tx, key_id: str) -> None:
    """Mark the key revoked now, if it is active."""
    tx.execute(
        "UPDATE api_keys SET state = 'revoked', revoked_at_us = :now"
        " WHERE key_id = :key_id AND state = 'active'",
        {"key_id": key_id, "now": tx.now_us},
    )


def select_key(tx: Tx, key_id: str) -> ApiKey | None:
    """The key with this id (active or revoked), with its principal's role; or None."""
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


def select_role(tx: Tx, principal_id: uuid.UUID) -> Role | None:
    """The role of the principal with this id, or None."""
    row = tx.one("SELECT role FROM principals WHERE id = :id", {"id": principal_id})
    return None if row is None else Role(row[0])


def count_principals(tx: Tx, role: Role) -> int:
    """How many principals have ``role``."""
    row = tx.one("SELECT COUNT(*) FROM principals WHERE role = :role", {"role": role.value})
    return 0 if row is None else int(row[0])


def has_active_key(tx: Tx, principal_id: uuid.UUID) -> bool:
    """Whether the principal holds at least one active key."""
    row = tx.one(
        "SELECT 1 FROM api_keys WHERE principal_id = :id AND state = 'active' LIMIT 1",
        {"id": principal_id},
    )
    return row is not None


def material_registered(tx: Tx, material: bytes) -> bool:
    """Whether any key (of any principal, active or revoked) holds this material."""
    row = tx.one(
        "SELECT 1 FROM api_keys WHERE key_material = :material LIMIT 1",
        {"material": base64.b64encode(material).decode("ascii")},
    )
    return row is not None
