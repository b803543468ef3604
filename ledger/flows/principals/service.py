"""Registering, revoking and finding keys (see :mod:`ledger.flows.principals`); the rows are
:mod:`ledger.flows.principals.repository`'s."""

from __future__ import annotations

import secrets
import uuid

from ledger.core.ledger import transactional
from ledger.core.tx import Tx
from ledger.flows.errors import Refused
from ledger.flows.principals import repository
from ledger.flows.principals.repository import Alg, ApiKey, KeyState, NewKey, Role
from ledger.limits import NAME_LENGTH_MAX

__all__ = [
    "KeyRefused",
    "add_key",
    "add_key_for_in",
    "add_key_in",
    "check_name",
    "find_key",
    "find_key_in",
    "new_key_id",
    "principal_role",
    "principal_role_in",
    "revoke_key",
    "revoke_key_in",
]


class KeyRefused(Refused, ValueError):
    """A key that may not be registered (an agent with HMAC, an empty name ...); nothing
    was written. Its message is the detail alone (``vledger keys create`` prints it)."""

    def __init__(self, detail: str) -> None:
        super().__init__("key_refused", detail)
        self.args = (detail,)


def new_key_id() -> str:
    return "k_" + secrets.token_urlsafe(16)


def check_name(name: object) -> str:
    """A principal's name (a storefront, an agent, a person): :class:`KeyRefused` unless
    1..:data:`~ledger.limits.NAME_LENGTH_MAX` printable characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= NAME_LENGTH_MAX or not name.isprintable():
        raise KeyRefused(f"a principal's name is 1..{NAME_LENGTH_MAX} printable characters")
    return name


def _check_key(*, role: Role, name: str, alg: Alg) -> None:
    check_name(name)
    if role is Role.AGENT and alg is not Alg.ED25519:
        raise KeyRefused("agents sign with Ed25519 only")


def _principal(tx: Tx, role: Role, name: str) -> uuid.UUID:
    """The id of the principal (role, name), created if new."""
    found = repository.select_principal_id(tx, role, name)
    if found is not None:
        return found
    principal_id = uuid.uuid4()
    repository.insert_principal(tx, principal_id, role, name)
    return principal_id


def add_key_in(tx: Tx, *, role: Role, name: str, alg: Alg, material: bytes) -> ApiKey:
    """Register a key for the principal (role, name), creating the principal if new;
    :class:`KeyRefused` for a name or an algorithm the role may not have."""
    _check_key(role=role, name=name, alg=alg)
    key_id = new_key_id()
    principal_id = _principal(tx, role, name)
    repository.insert_key(tx, NewKey(key_id, principal_id, alg, material))
    return ApiKey(key_id, principal_id, role, alg, material, True)


def add_key_for_in(tx: Tx, *, principal_id: uuid.UUID, alg: Alg, material: bytes) -> ApiKey:
    """Register a key for the existing principal ``principal_id`` (enrollment knows the
    principal by id); :class:`KeyRefused` when there is no such principal or its role
    may not sign with ``alg``."""
    role = repository.select_role(tx, principal_id)
    if role is None:
        raise KeyRefused(f"no principal {principal_id}")
    if role is Role.AGENT and alg is not Alg.ED25519:
        raise KeyRefused("agents sign with Ed25519 only")
    key_id = new_key_id()
    repository.insert_key(tx, NewKey(key_id, principal_id, alg, material))
    return ApiKey(key_id, principal_id, role, alg, material, True)


def revoke_key_in(tx: Tx, key_id: str) -> bool:
    """Revoke a key; False when no active key has that id."""
    if repository.lock_key_state(tx, key_id) is not KeyState.ACTIVE:
        return False
    repository.revoke(tx, key_id)
    return True


def find_key_in(tx: Tx, key_id: str) -> ApiKey | None:
    """The key with this id (active or revoked), or None."""
    return repository.select_key(tx, key_id)


def principal_role_in(tx: Tx, principal_id: uuid.UUID) -> Role | None:
    """The role of the principal with this id, or None."""
    return repository.select_role(tx, principal_id)


add_key = transactional(add_key_in)
revoke_key = transactional(revoke_key_in)
find_key = transactional(find_key_in)
principal_role = transactional(principal_role_in)
