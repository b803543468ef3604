"""A device's registration, its offline allowance (a core hold on the agent's float)
and its revocation (the rules are in :mod:`ledger.flows.offline`'s docstring)."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger, transactional
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import agent_float, parties
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.offline import repository
from ledger.flows.offline.records import OFFLINE_NAMESPACE, PUBLIC_KEY_LENGTH
from ledger.flows.offline.repository import Device, DeviceState
from ledger.flows.parties import Kind, Role
from ledger.limits import AMOUNT_MAX_MINOR as JSON_INT_MAX

ALLOWANCE_HOLD_CODE = 801
"""Core transfer ``code`` of an allowance hold and of its void."""


def locked_device(tx: Tx, device_id: uuid.UUID) -> Device:
    """The device, locked ``FOR UPDATE``; :class:`NotFound` ``device_not_found``."""
    device = repository.read_device(tx, device_id, lock=True)
    if device is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    return device


def _check_allowance(allowance_minor: object) -> int:
    if (
        not isinstance(allowance_minor, int)
        or isinstance(allowance_minor, bool)
        or not 0 <= allowance_minor <= JSON_INT_MAX
    ):
        raise Refused("amount_invalid", f"an allowance is an integer 0..{JSON_INT_MAX}")
    return allowance_minor


def _hold(tx: Tx, device: Device, amount_minor: int) -> uuid.UUID | None:
    """Hold ``amount_minor`` of the agent's float for the device (none for zero); the
    device row's ``holds_made`` counts it (the hold ids derive from that count)."""
    number = repository.count_hold(tx, device.id)
    if amount_minor == 0:
        return None
    agent = parties.get_party(tx, device.agent_id, Kind.AGENT)
    hold_id = uuid.uuid5(OFFLINE_NAMESPACE, f"allowance:{device.id}:{number}")
    [result] = tx.create_transfers(
        [
            Transfer(
                hold_id,
                debit_account_id=agent.account(Role.FLOAT),
                credit_account_id=agent.account(Role.OFFLINE_ALLOWANCE),
                amount=amount_minor,
                currency=agent.currency,
                code=ALLOWANCE_HOLD_CODE,
                flags=TransferFlags.PENDING,
                timeout_s=0,
                metadata={"device_id": str(device.id)},
            )
        ]
    )
    if result.status == Status.EXCEEDS_CREDITS:
        raise Refused(
            "float_short",
            f"agent {device.agent_id}'s float cannot hold {amount_minor} for the device",
        )
    if result.status != Status.CREATED:
        raise InvariantViolation(f"allowance hold {hold_id}: {result.status}")
    return hold_id


def void_allowance(tx: Tx, hold_id: uuid.UUID | None) -> None:
    """Void an allowance hold (nothing for none)."""
    if hold_id is None:
        return
    void_id = uuid.uuid5(OFFLINE_NAMESPACE, f"void:{hold_id}")
    [result] = tx.create_transfers(
        [
            Transfer(
                void_id,
                debit_account_id=None,
                credit_account_id=None,
                amount=None,
                currency=None,
                code=ALLOWANCE_HOLD_CODE,
                flags=TransferFlags.VOID_PENDING,
                pending_id=hold_id,
            )
        ]
    )
    if result.status != Status.CREATED:
        raise InvariantViolation(f"void of allowance hold {hold_id}: {result.status}")


def hold_allowance(tx: Tx, device: Device, amount_minor: int) -> None:
    """Hold ``amount_minor`` as the device's allowance (its old hold already voided)."""
    hold_id = _hold(tx, device, amount_minor)
    repository.set_held(tx, device.id, allowance_minor=amount_minor, hold_id=hold_id)


def register_device_in(
    tx: Tx,
    *,
    device_id: uuid.UUID,
    agent_id: uuid.UUID,
    public_key: bytes,
    allowance_minor: int,
) -> Device:
    """Bind a phone's raw 32-byte Ed25519 public key to an agent and hold its offline
    allowance on the agent's float. A replay with the same details answers the device;
    the same ``device_id`` with other details is a :class:`Conflict`.
    (:func:`register_device` runs it in a transaction of its own.)"""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_LENGTH:
        raise Refused("public_key_invalid", "a public key is 32 raw bytes of Ed25519")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise Refused("public_key_invalid", "not an Ed25519 public key") from None
    _check_allowance(allowance_minor)
    parties.get_party(tx, agent_id, Kind.AGENT)
    found = repository.read_device(tx, device_id, lock=True)
    if found is not None:
        if (found.agent_id, found.public_key, found.allowance_registered_minor) != (
            agent_id,
            public_key,
            allowance_minor,
        ):
            raise Conflict("device_exists_different", f"device {device_id} has other details")
        return found
    if repository.key_in_use(tx, public_key):
        raise Conflict("public_key_in_use", "another device is registered with that key")
    repository.insert_device(
        tx,
        device_id=device_id,
        agent_id=agent_id,
        public_key=public_key,
        allowance_registered_minor=allowance_minor,
    )
    hold_allowance(tx, locked_device(tx, device_id), allowance_minor)
    agent_float.check_float_low(tx, agent_id)  # the held allowance lowers available float
    return repository.reread_device(tx, device_id)


register_device = transactional(register_device_in)


def set_allowance_in(tx: Tx, *, device_id: uuid.UUID, allowance_minor: int) -> Device:
    """Set what the device may spend offline from now on (this is how a spent allowance
    is replenished): the old hold is voided and the new amount held, in one transaction;
    ``float_short`` (and nothing changed) when the float cannot hold it. Setting the
    amount already held changes nothing, so a replay is harmless.
    (:func:`set_allowance` runs it in a transaction of its own.)"""
    _check_allowance(allowance_minor)
    device = locked_device(tx, device_id)
    if device.state is not DeviceState.ACTIVE:
        raise Refused("device_revoked", f"device {device_id} is revoked")
    if device.allowance_minor == allowance_minor:
        return device
    void_allowance(tx, device.allowance_hold_id)
    hold_allowance(tx, device, allowance_minor)
    agent_float.check_float_low(tx, device.agent_id)
    return repository.reread_device(tx, device_id)


set_allowance = transactional(set_allowance_in)


def revoke_device_in(tx: Tx, *, device_id: uuid.UUID) -> Device:
    """Revoke the device's key and give its allowance back to the float (the hold is
    voided). It syncs nothing afterwards. Revoking a revoked device changes nothing.
    (:func:`revoke_device` runs it in a transaction of its own.)"""
    device = locked_device(tx, device_id)
    if device.state is DeviceState.REVOKED:
        return device
    void_allowance(tx, device.allowance_hold_id)
    repository.mark_revoked(tx, device_id)
    return repository.reread_device(tx, device_id)


revoke_device = transactional(revoke_device_in)


def get_device(led: Ledger, *, device_id: uuid.UUID) -> Device:
    """The device; :class:`NotFound` ``device_not_found``."""

    def work(tx: Tx) -> Device:
        device = repository.read_device(tx, device_id, lock=False)
        if device is None:
            raise NotFound("device_not_found", f"no device {device_id}")
        return device

    return led.transact(work)
