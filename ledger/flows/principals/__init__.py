"""Principals (who calls the API, with one role) and the keys they sign with: the owner
of ``principals`` and ``api_keys`` (all their SQL in :mod:`ledger.flows.principals.repository`,
the rules in :mod:`~ledger.flows.principals.service`).

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

from ledger.flows.principals.repository import Alg, ApiKey, KeyState, Role
from ledger.flows.principals.service import (
    KeyRefused,
    add_key,
    add_key_for_in,
    add_key_in,
    find_key,
    find_key_in,
    new_key_id,
    principal_role,
    principal_role_in,
    revoke_key,
    revoke_key_in,
)

__all__ = [
    "Alg",
    "ApiKey",
    "KeyRefused",
    "KeyState",
    "Role",
    "add_key",
    "add_key_for_in",
    "add_key_in",
    "find_key",
    "find_key_in",
    "new_key_id",
    "principal_role",
    "principal_role_in",
    "revoke_key",
    "revoke_key_in",
]
