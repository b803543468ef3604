"""Operators are people, and maker-checker needs two of them: a new operator, or a new key
for one, is a proposal (:mod:`ledger.flows.proposals`) that another operator approves.

* :func:`propose_operator` (kind :data:`OPERATOR`): a person's name and the raw Ed25519
  public key (standard base64, as enrollment takes it) that person made (the private half
  never leaves them). The approval creates the operator principal with that key and emits
  :data:`OPERATOR_ADDED`.
* :func:`propose_operator_key` (kind :data:`OPERATOR_KEY`): another Ed25519 public key for
  an existing operator (a new laptop, a lost key). The approval registers it and emits
  :data:`OPERATOR_KEY_ADDED`.

A proposal carries a public key only, never a secret: nothing its maker can read lets the
maker sign as the new operator. The payload shows the key's SHA-256 ``fingerprint``; the
checker compares it with the person's before approving (a maker who proposed a key of
their own under another name would otherwise hold two operators). A public key already
registered to anyone is refused, at the proposal and again at the approval.

The command line is the machine's tool, for setup and recovery only
(:func:`check_command_line_in`): it creates an operator principal only while fewer than
:data:`SETUP_OPERATORS` exist, and registers a key or an enrollment code for an existing
operator only while that operator holds no active key (its first key, or a replacement
after every key was revoked). Everything else goes through the signed API.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.flows import events, proposals
from ledger.flows.errors import NotFound, Refused
from ledger.flows.principals import repository
from ledger.flows.principals.repository import Alg, ApiKey, NewKey, Role
from ledger.flows.principals.service import KeyRefused, add_key_in, check_name, new_key_id
from ledger.flows.proposals import Proposal

__all__ = [
    "OPERATOR",
    "OPERATOR_ADDED",
    "OPERATOR_KEY",
    "OPERATOR_KEY_ADDED",
    "SETUP_OPERATORS",
    "add_command_line_key",
    "check_command_line_in",
    "command_line_operator",
    "fingerprint",
    "propose_operator",
    "propose_operator_key",
]

OPERATOR = "operator"
"""The proposal kind of a new operator."""
OPERATOR_KEY = "operator_key"
"""The proposal kind of another key for an existing operator."""
OPERATOR_ADDED = "operator.added"
OPERATOR_KEY_ADDED = "operator.key_added"
SETUP_OPERATORS = 2
"""How many operator principals the command line may create: the first two, at setup."""
_ED25519_BYTES = 32


def fingerprint(public_key: bytes) -> str:
    """``SHA256:<base64, unpadded>`` of the raw public key, as ``ssh-keygen -l`` shows one."""
    digest = base64.b64encode(hashlib.sha256(public_key).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _public_key(text: object) -> bytes:
    """The raw Ed25519 public key of its standard base64 text."""
    refused = Refused("public_key_invalid", "public_key is a raw Ed25519 key (32 bytes), base64")
    if not isinstance(text, str) or len(text) > 64:
        raise refused
    try:
        raw = base64.b64decode(text, validate=True)
        ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise refused from None
    if len(raw) != _ED25519_BYTES:
        raise refused
    return raw


def _text(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unregistered(tx: Tx, raw: bytes) -> None:
    if repository.material_registered(tx, raw):
        raise Refused("public_key_registered", "this public key is registered already")


def _free_name(tx: Tx, name: str) -> None:
    if repository.select_principal_id(tx, Role.OPERATOR, name) is not None:
        raise Refused("operator_exists", f"an operator named {name!r} exists")


def _operator(tx: Tx, principal_id: uuid.UUID) -> None:
    if repository.select_role(tx, principal_id) is not Role.OPERATOR:
        raise NotFound("operator_not_found", f"no operator {principal_id}")


def propose_operator(
    led: Ledger, *, proposal_id: uuid.UUID, name: str, public_key: str, proposed_by: uuid.UUID
) -> Proposal:
    """Propose a new operator: the person's ``name`` and the base64 raw Ed25519
    ``public_key`` they made. Nothing is created until another operator approves."""
    check_name(name)
    raw = _public_key(public_key)

    def check(tx: Tx) -> None:
        _free_name(tx, name)
        _unregistered(tx, raw)

    led.transact(check)
    payload = {"name": name, "public_key": _text(raw), "fingerprint": fingerprint(raw)}
    return proposals.propose(
        led, proposal_id=proposal_id, kind=OPERATOR, payload=payload, proposed_by=proposed_by
    )


def propose_operator_key(
    led: Ledger,
    *,
    proposal_id: uuid.UUID,
    principal_id: uuid.UUID,
    public_key: str,
    proposed_by: uuid.UUID,
) -> Proposal:
    """Propose another key for the operator ``principal_id``; registered on approval."""
    raw = _public_key(public_key)

    def check(tx: Tx) -> None:
        _operator(tx, principal_id)
        _unregistered(tx, raw)

    led.transact(check)
    payload = {
        "principal_id": str(principal_id),
        "public_key": _text(raw),
        "fingerprint": fingerprint(raw),
    }
    return proposals.propose(
        led, proposal_id=proposal_id, kind=OPERATOR_KEY, payload=payload, proposed_by=proposed_by
    )


def _register(tx: Tx, principal_id: uuid.UUID, payload: Mapping[str, Any]) -> dict[str, Any]:
    raw = _public_key(payload["public_key"])
    _unregistered(tx, raw)
    key_id = new_key_id()
    repository.insert_key(tx, NewKey(key_id, principal_id, Alg.ED25519, raw))
    return {
        "principal_id": str(principal_id),
        "key_id": key_id,
        "fingerprint": fingerprint(raw),
    }


def _apply_operator(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    name = str(payload["name"])
    _free_name(tx, name)
    principal_id = uuid.uuid4()
    repository.insert_principal(tx, principal_id, Role.OPERATOR, name)
    added = {"name": name, **_register(tx, principal_id, payload)}
    events.emit(tx, OPERATOR_ADDED, dict(added), subject_id=principal_id)
    return added


def _apply_operator_key(tx: Tx, payload: Mapping[str, Any]) -> dict[str, Any]:
    principal_id = uuid.UUID(str(payload["principal_id"]))
    _operator(tx, principal_id)
    added = _register(tx, principal_id, payload)
    events.emit(tx, OPERATOR_KEY_ADDED, dict(added), subject_id=principal_id)
    return added


proposals.register(OPERATOR, _apply_operator)
proposals.register(OPERATOR_KEY, _apply_operator_key)


def check_command_line_in(tx: Tx, *, role: Role, principal_id: uuid.UUID | None) -> None:
    """Refuse (:class:`KeyRefused`) what the command line may not do for an operator: a
    new operator principal (``principal_id`` None) once :data:`SETUP_OPERATORS` exist, a
    key or a code for an operator that holds an active key. Other roles pass."""
    if role is not Role.OPERATOR:
        return
    if principal_id is None:
        if repository.count_principals(tx, Role.OPERATOR) >= SETUP_OPERATORS:
            raise KeyRefused(
                f"the command line makes the first {SETUP_OPERATORS} operators only; a new"
                " operator is a proposal another operator approves (POST /v1/operators)"
            )
        return
    if repository.has_active_key(tx, principal_id):
        raise KeyRefused(
            "this operator holds an active key; another key is a proposal another operator"
            f" approves (POST /v1/operators/{principal_id}/keys)"
        )


def add_command_line_key(
    led: Ledger, *, role: Role, name: str, alg: Alg, material: bytes
) -> ApiKey:
    """``vledger keys create``: :func:`add_key_in` for (role, name), in the same
    transaction as :func:`check_command_line_in`."""

    def work(tx: Tx) -> ApiKey:
        found = repository.select_principal_id(tx, role, name)
        check_command_line_in(tx, role=role, principal_id=found)
        return add_key_in(tx, role=role, name=name, alg=alg, material=material)

    return led.transact(work)


def command_line_operator(led: Ledger, name: str) -> uuid.UUID:
    """``vledger agents enroll --operator NAME``: the operator principal named ``name``,
    created (with no key) if new, once :func:`check_command_line_in` allows it."""
    check_name(name)

    def work(tx: Tx) -> uuid.UUID:
        found = repository.select_principal_id(tx, Role.OPERATOR, name)
        check_command_line_in(tx, role=Role.OPERATOR, principal_id=found)
        if found is not None:
            return found
        principal_id = uuid.uuid4()
        repository.insert_principal(tx, principal_id, Role.OPERATOR, name)
        return principal_id

    return led.transact(work)
