"""Offline capture: an agent's phone records cash-ins and cash-outs while offline, signs
each record with its device key, and syncs them later; each applies exactly once.

Devices
    :func:`register_device` binds a phone's raw 32-byte Ed25519 public key to an agent and
    reserves the device's **offline allowance**: a core ``PENDING`` hold (no timeout: it
    lasts until voided) of that much of the agent's ``float``, towards the agent's
    ``offline_allowance`` account. Registering refuses (``float_short``) when the float
    cannot cover it. The allowance is what the device's offline **cash-ins** may spend:
    the phone may promise a villager that much e-money while nobody can check the float.
    Each applied offline cash-in spends its amount from the allowance (the hold shrinks);
    the allowance is **replenished** only by :func:`set_allowance`, which voids the hold
    and holds the new amount in one transaction (the agent's app asks for it when it is
    online and low). :func:`revoke_device` voids the hold; a revoked device syncs nothing
    more (revoke is for a lost or compromised key: sync first to retire a phone in order).
    An offline **cash-out** does not spend float (it earns float), so it does not touch
    the allowance, unless it had no valid consent (below).

Consent for an offline cash-out (issue 11)
    The villager makes an ``offline_withdrawal`` code for the agent and the exact amount
    (:func:`ledger.flows.consent.make_code`), which holds ``amount + fee`` of the wallet
    towards the agent's float for 24 h; the phone captures the cash-out with the code in
    a **version 2** record. At sync the code is checked
    (:func:`ledger.flows.consent.check_code`, the agent as caller: a wrong code counts
    towards voiding the villager's codes and towards the agent's rate limit, so a phone
    cannot guess codes faster than any other caller) and the record's cash-out posts that
    hold (:func:`ledger.flows.cash.cash_out_in`: the hold posted for the amount, the fee
    legs out of the wallet at the fee quoted when the code was made, and the agent's cash
    leg ``cash_control`` -> ``cash``), exactly once: the cash-out's id derives from the
    record id and the code is used once.

    A cash-out record whose code is wrong, spent, voided or expired, or that carries none
    (every version 1 cash-out record, and a version 2 one with ``consent_code`` null), or
    that comes while the agent is rate-limited, becomes an exception (``consent_invalid``,
    ``consent_expired``, ``consent_required``, ``consent_rate_limited``) that is
    **charged to the agent, never to the wallet**: the cash left the agent's till against
    the device's allowance. In the exception's transaction:

    1. ``cash_control`` -> ``cash`` of the agent, ``amount_minor``, code
       :data:`UNCONSENTED_CASH_CODE` (transfer id ``uuid5(OFFLINE_NAMESPACE,
       "unconsented:<record_id>")``): the agent's expected cash-on-hand shrinks by the
       cash it handed over, so its cash count still ties; the float earns nothing for
       it, which is the agent's loss. (When the agent's ``cash`` account cannot go that
       low, nothing is written, the allowance included, and ``charged_minor`` is 0: the
       cash count shows the difference.)
    2. the allowance hold is voided and ``allowance - amount`` (at least 0) held again,
       as an offline cash-in spends it (:data:`ALLOWANCE_HOLD_CODE`): the device may
       risk that much less until :func:`set_allowance` replenishes it.

    The wallet and the villager's codes are untouched (a held code stays held until it
    is used or expires). The ``offline.exception`` event says ``charged_minor``.

Canonical bytes of a record (what the phone signs)
    The UTF-8 bytes of one JSON object, with exactly these nine keys (version 1), sorted,
    written with no whitespace at all (separators ``,`` and ``:``), ASCII only::

        {"agent_id":"<uuid>","amount_minor":<int>,"captured_at":"<time>",
         "currency":"<ISO 4217>","device_id":"<uuid>","kind":"cash_in"|"cash_out",
         "record_id":"<uuid>","seq":<int>,"villager_id":"<uuid>"}

    (shown on three lines here; the bytes are one line with no newline at the end).
    Version 2 has two keys more, in the same sorted order: ``"consent_code"``, the
    villager's six-digit offline withdrawal code as a string for a cash-out (or
    ``null``: no code), always ``null`` for a cash-in; and ``"version":2``. Version 1
    records still verify and apply as before for cash-ins.

    - UUIDs: lower-case hexadecimal in the 8-4-4-4-12 hyphenated form;
    - ``amount_minor``: a JSON integer, 1 to 2**53-1, minor units of ``currency``;
    - ``seq``: a JSON integer, 1 to 2**53-1; the device's capture counter: 1 for its
      first record, then each record one more than the one before;
    - ``currency``: three upper-case ASCII letters;
    - ``captured_at``: RFC 3339 in UTC with milliseconds and a ``Z``, exactly
      ``YYYY-MM-DDTHH:MM:SS.sssZ`` (what JavaScript's ``Date.toISOString()`` writes).

    The signature is Ed25519 (RFC 8032, pure, no context) over those bytes: 64 bytes.
    :func:`canonical_bytes` writes them; :func:`record_from_canonical` reads them back and
    refuses bytes that are not exactly canonical.

Sync
    :func:`sync` takes a batch (at most :data:`SYNC_BATCH_MAX` records, in capture order).
    Before it applies anything it checks the whole batch and refuses all of it (nothing
    applied) when a record names another device (``record_device_mismatch``), is not a
    well-formed record (``record_invalid``), carries a signature the device's registered
    key does not verify (``signature_invalid``), or breaks the order: ``seq`` must
    increase strictly through the batch (``records_out_of_order``), a record id already
    stored must come with the same bytes (``record_exists_different``), a new record may
    not reuse a stored ``seq`` (``record_seq_reused``), and the new records must continue
    the device's sequence without a gap (``record_gap``: the phone must send the missing
    record first, so that no captured record can be skipped and lost).

    Then each new record applies in **its own transaction** (one failing record undoes
    no other; a crash mid-batch keeps what was applied): the record's row in
    ``offline_records`` (state ``applied``, its canonical bytes, signature and the cash
    operation it became), the money through :func:`ledger.flows.cash.cash_in_in` or
    :func:`ledger.flows.cash.cash_out_in`, and for a cash-in the allowance hold voided and
    held again less the amount. The cash operation's id is derived from the record id
    (``uuid5(OFFLINE_NAMESPACE, record_id)``), so a device cannot name someone else's
    operation. A record that can no longer apply (``allowance_spent``, ``float_short``,
    ``limit_exceeded_daily``, ``wallet_short``, ``villager_not_found``,
    ``record_agent_mismatch``, ``currency_mismatch`` ...) is rolled back and then stored
    in a second transaction as an ``exception`` row with that reason, with an
    ``offline.exception`` event to the agent: visible in :func:`list_exceptions` for
    reconciliation, never lost, never retried (its ``seq`` is consumed).

    Exactly once: a record id is stored once (primary key), a device's ``seq`` once
    (unique); a re-sent batch, whole or after a crash, finds what it stored and answers
    each stored record's outcome unchanged, applying only what is new. Each batch that
    stored something new emits one ``offline.synced`` event with its counts (a batch that
    was all replays writes nothing).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.core.errors import InvariantViolation
from ledger.core.ledger import Ledger
from ledger.core.store import from_us, to_us
from ledger.core.tx import Row, Tx
from ledger.core.values import Status, Transfer, TransferFlags
from ledger.flows import agent_float, consent, events, parties
from ledger.flows.consent import Consent
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.parties import Kind, Role

__all__ = [
    "ALLOWANCE_HOLD_CODE",
    "CONSENT_REASONS",
    "RECORD_VERSIONS",
    "UNCONSENTED_CASH_CODE",
    "EXCEPTIONS_PAGE_MAX",
    "OFFLINE_NAMESPACE",
    "SYNC_BATCH_MAX",
    "Device",
    "DeviceState",
    "OfflineRecord",
    "RecordKind",
    "RecordState",
    "SignedRecord",
    "SyncReport",
    "SyncedRecord",
    "canonical_bytes",
    "cash_operation_id",
    "get_device",
    "get_record",
    "list_exceptions",
    "record_from_canonical",
    "register_device",
    "register_device_in",
    "revoke_device",
    "revoke_device_in",
    "set_allowance",
    "set_allowance_in",
    "sign_record",
    "sync",
    "verify_record",
]

OFFLINE_NAMESPACE = uuid.UUID("8c2f4e0a-6b1d-4d6e-9f3a-1e7b5c9d2a40")
"""Derives a record's cash operation id and the allowance holds' ids."""

ALLOWANCE_HOLD_CODE = 801
"""Core transfer ``code`` of an allowance hold and of its void."""

SYNC_BATCH_MAX = 500
"""The most records one :func:`sync` call takes."""

EXCEPTIONS_PAGE_MAX = 1000
"""The largest page :func:`list_exceptions` answers."""

JSON_INT_MAX = 2**53 - 1
"""The largest ``amount_minor`` or ``seq`` a record may carry (every JSON client holds it)."""

PUBLIC_KEY_LENGTH = 32
SIGNATURE_LENGTH = 64

_FIELDS = frozenset(
    {
        "agent_id",
        "amount_minor",
        "captured_at",
        "currency",
        "device_id",
        "kind",
        "record_id",
        "seq",
        "villager_id",
    }
)
_FIELDS_V2 = _FIELDS | {"consent_code", "version"}

RECORD_VERSIONS = (1, 2)
"""Version 1: the nine keys; version 2 adds ``consent_code`` and ``version``."""

UNCONSENTED_CASH_CODE = 802
"""Core transfer ``code``: cash an agent handed over for an offline cash-out without a
valid consent (``cash_control`` -> ``cash``; the agent's loss)."""

CONSENT_REASONS = frozenset(
    {"consent_required", "consent_invalid", "consent_expired", "consent_rate_limited"}
)
"""Exception reasons charged to the agent's allowance (module docstring)."""


class RecordKind(StrEnum):
    CASH_IN = "cash_in"
    CASH_OUT = "cash_out"


class RecordState(StrEnum):
    APPLIED = "applied"
    EXCEPTION = "exception"


class DeviceState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


# -- records and their bytes ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfflineRecord:
    """One operation as the phone captured it (the fields it signs)."""

    record_id: uuid.UUID
    device_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    kind: RecordKind
    amount_minor: int
    """Minor units of ``currency``."""
    currency: str
    seq: int
    """The device's capture counter: 1, 2, 3 ..."""
    captured_at: datetime
    """When the phone captured it (UTC, whole milliseconds)."""
    consent_code: str | None = None
    """Version 2: the villager's offline withdrawal code for a cash-out (never logged)."""
    version: int = 1
    """The canonical form: 1 (nine keys) or 2 (with ``consent_code``)."""


@dataclass(frozen=True, slots=True)
class SignedRecord:
    """A record and the device's Ed25519 signature over its canonical bytes."""

    record: OfflineRecord
    signature: bytes


def _invalid(record_id: object, detail: str) -> Refused:
    return Refused("record_invalid", f"record {record_id}: {detail}")


def _json_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= JSON_INT_MAX


def _time_text(at: datetime) -> str:
    return (
        f"{at.year:04d}-{at.month:02d}-{at.day:02d}T{at.hour:02d}:{at.minute:02d}:"
        f"{at.second:02d}.{at.microsecond // 1000:03d}Z"
    )


def canonical_bytes(record: OfflineRecord) -> bytes:
    """The bytes a device signs for ``record`` (the format is in the module docstring);
    :class:`Refused` ``record_invalid`` for a record that has none."""
    rid = record.record_id
    for name in ("record_id", "device_id", "agent_id", "villager_id"):
        if not isinstance(getattr(record, name), uuid.UUID):
            raise _invalid(rid, f"{name} must be a UUID")
    if record.kind not in tuple(RecordKind):
        raise _invalid(rid, "kind must be cash_in or cash_out")
    if not _json_int(record.amount_minor):
        raise _invalid(rid, f"amount_minor must be an integer 1..{JSON_INT_MAX}")
    if not _json_int(record.seq):
        raise _invalid(rid, f"seq must be an integer 1..{JSON_INT_MAX}")
    currency = record.currency
    if not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
        and currency.isupper()
    ):
        raise _invalid(rid, "currency must be three upper-case letters")
    at = record.captured_at
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise _invalid(rid, "captured_at must be a timezone-aware datetime")
    at = at.astimezone(UTC)
    if at.microsecond % 1000:
        raise _invalid(rid, "captured_at carries whole milliseconds only")
    fields: dict[str, Any] = {
        "agent_id": str(record.agent_id),
        "amount_minor": record.amount_minor,
        "captured_at": _time_text(at),
        "currency": currency,
        "device_id": str(record.device_id),
        "kind": RecordKind(record.kind).value,
        "record_id": str(record.record_id),
        "seq": record.seq,
        "villager_id": str(record.villager_id),
    }
    fields.update(_versioned(record))
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _versioned(record: OfflineRecord) -> dict[str, Any]:
    """The keys a record's version adds (none for version 1)."""
    rid, code = record.record_id, record.consent_code
    if type(record.version) is not int or record.version not in RECORD_VERSIONS:
        raise _invalid(rid, f"version must be one of {RECORD_VERSIONS}")
    if record.version == 1:
        if code is not None:
            raise _invalid(rid, "a version 1 record carries no consent_code")
        return {}
    if code is not None and (
        RecordKind(record.kind) is not RecordKind.CASH_OUT
        or not isinstance(code, str)
        or not (len(code) == 6 and code.isascii() and code.isdigit())
    ):
        raise _invalid(rid, "consent_code is six digits, on a cash_out only")
    return {"consent_code": code, "version": record.version}


def record_from_canonical(payload: bytes) -> OfflineRecord:
    """The record whose canonical bytes are ``payload``; :class:`Refused`
    ``record_invalid`` unless ``payload`` is exactly canonical."""
    try:
        fields = json.loads(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid("?", "payload is not ASCII JSON") from None
    if not isinstance(fields, dict) or set(fields) not in (_FIELDS, _FIELDS_V2):
        raise _invalid("?", f"payload must be an object with exactly {sorted(_FIELDS)}")
    rid = fields["record_id"]
    try:
        ids = {
            name: uuid.UUID(fields[name])
            for name in ("record_id", "device_id", "agent_id", "villager_id")
        }
        kind = RecordKind(fields["kind"])
        text = fields["captured_at"]
        if not isinstance(text, str) or not text.endswith("Z"):
            raise ValueError("captured_at must end in Z")
        captured_at = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except (TypeError, ValueError, AttributeError) as exc:
        raise _invalid(rid, str(exc)) from None
    record = OfflineRecord(
        record_id=ids["record_id"],
        device_id=ids["device_id"],
        agent_id=ids["agent_id"],
        villager_id=ids["villager_id"],
        kind=kind,
        amount_minor=fields["amount_minor"],
        currency=fields["currency"],
        seq=fields["seq"],
        captured_at=captured_at,
        consent_code=fields.get("consent_code"),
        version=fields.get("version", 1),
    )
    if canonical_bytes(record) != payload:
        raise _invalid(rid, "payload is not in canonical form")
    return record


def sign_record(private_key: Ed25519PrivateKey, record: OfflineRecord) -> SignedRecord:
    """What a phone does: sign ``record``'s canonical bytes (tests and the demo use it)."""
    return SignedRecord(record, private_key.sign(canonical_bytes(record)))


def verify_record(public_key: bytes, signed: SignedRecord) -> bool:
    """Whether ``signed.signature`` is the key's Ed25519 signature of the record's bytes."""
    signature = signed.signature
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            signature, canonical_bytes(signed.record)
        )
    except InvalidSignature:
        return False
    return True


def cash_operation_id(record_id: uuid.UUID) -> uuid.UUID:
    """The id of the cash-in or cash-out a record becomes."""
    return uuid.uuid5(OFFLINE_NAMESPACE, f"record:{record_id}")


# -- devices ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Device:
    """An agent's phone, its key and its offline allowance."""

    id: uuid.UUID
    agent_id: uuid.UUID
    public_key: bytes
    state: DeviceState
    allowance_registered_minor: int
    """Minor units: the allowance asked for at registration."""
    allowance_minor: int
    """Minor units still held for the device's offline cash-ins."""
    allowance_hold_id: uuid.UUID | None
    """The core hold (float -> offline_allowance) that reserves ``allowance_minor``."""
    last_seq: int
    """The highest record ``seq`` stored for the device (0 before its first sync)."""
    created_at: datetime
    updated_at: datetime


_DEVICE_COLUMNS = (
    "id, agent_id, public_key, state, allowance_registered_minor, allowance_minor,"
    " allowance_hold_id, holds_made, last_seq, created_at_us, updated_at_us"
)


def _device(row: Row) -> Device:
    return Device(
        id=row[0],
        agent_id=row[1],
        public_key=bytes(row[2]),
        state=DeviceState(row[3]),
        allowance_registered_minor=row[4],
        allowance_minor=row[5],
        allowance_hold_id=row[6],
        last_seq=row[8],
        created_at=from_us(row[9]),
        updated_at=from_us(row[10]),
    )


def _device_row(tx: Tx, device_id: uuid.UUID, *, lock: bool) -> Row | None:
    return tx.one(
        f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = :id{tx.for_update if lock else ''}",
        {"id": device_id},
    )


def _locked_device(tx: Tx, device_id: uuid.UUID) -> Row:
    row = _device_row(tx, device_id, lock=True)
    if row is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    return row


def _check_allowance(allowance_minor: object) -> int:
    if (
        not isinstance(allowance_minor, int)
        or isinstance(allowance_minor, bool)
        or not 0 <= allowance_minor <= JSON_INT_MAX
    ):
        raise Refused("amount_invalid", f"an allowance is an integer 0..{JSON_INT_MAX}")
    return allowance_minor


def _hold(tx: Tx, row: Row, amount_minor: int) -> uuid.UUID | None:
    """Hold ``amount_minor`` of the agent's float for the device (none for zero); the
    device row's ``holds_made`` counts it (the hold ids derive from that count)."""
    device_id, agent_id, holds_made = row[0], row[1], row[7]
    tx.execute(
        "UPDATE devices SET holds_made = :n WHERE id = :id",
        {"n": holds_made + 1, "id": device_id},
    )
    if amount_minor == 0:
        return None
    agent = parties.get_party(tx, agent_id, Kind.AGENT)
    hold_id = uuid.uuid5(OFFLINE_NAMESPACE, f"allowance:{device_id}:{holds_made + 1}")
    [result] = tx.create_transfers(
        [
            Transfer(
                hold_id,
                agent.account(Role.FLOAT),
                agent.account(Role.OFFLINE_ALLOWANCE),
                amount_minor,
                agent.currency,
                ALLOWANCE_HOLD_CODE,
                TransferFlags.PENDING,
                timeout_s=0,
                metadata={"device_id": str(device_id)},
            )
        ]
    )
    if result.status == Status.EXCEEDS_CREDITS:
        raise Refused(
            "float_short", f"agent {agent_id}'s float cannot hold {amount_minor} for the device"
        )
    if result.status != Status.CREATED:
        raise InvariantViolation(f"allowance hold {hold_id}: {result.status}")
    return hold_id


def _void(tx: Tx, hold_id: uuid.UUID | None) -> None:
    if hold_id is None:
        return
    void_id = uuid.uuid5(OFFLINE_NAMESPACE, f"void:{hold_id}")
    [result] = tx.create_transfers(
        [
            Transfer(
                void_id,
                None,
                None,
                None,
                None,
                ALLOWANCE_HOLD_CODE,
                TransferFlags.VOID_PENDING,
                pending_id=hold_id,
            )
        ]
    )
    if result.status != Status.CREATED:
        raise InvariantViolation(f"void of allowance hold {hold_id}: {result.status}")


def _set_held(tx: Tx, device_id: uuid.UUID, amount_minor: int, hold_id: uuid.UUID | None) -> None:
    tx.execute(
        "UPDATE devices SET allowance_minor = :amount, allowance_hold_id = :hold,"
        " updated_at_us = :now WHERE id = :id",
        {"amount": amount_minor, "hold": hold_id, "now": tx.now_us, "id": device_id},
    )


def _reread(tx: Tx, device_id: uuid.UUID) -> Device:
    row = _device_row(tx, device_id, lock=False)
    assert row is not None  # written in this transaction
    return _device(row)


def register_device(
    led: Ledger,
    *,
    device_id: uuid.UUID,
    agent_id: uuid.UUID,
    public_key: bytes,
    allowance_minor: int,
) -> Device:
    """Bind a phone's raw 32-byte Ed25519 public key to an agent and hold its offline
    allowance on the agent's float. A replay with the same details answers the device;
    the same ``device_id`` with other details is a :class:`Conflict`."""
    return led.transact(
        lambda tx: register_device_in(
            tx,
            device_id=device_id,
            agent_id=agent_id,
            public_key=public_key,
            allowance_minor=allowance_minor,
        )
    )


def register_device_in(
    tx: Tx,
    *,
    device_id: uuid.UUID,
    agent_id: uuid.UUID,
    public_key: bytes,
    allowance_minor: int,
) -> Device:
    """:func:`register_device` inside a transaction someone else opened."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_LENGTH:
        raise Refused("public_key_invalid", "a public key is 32 raw bytes of Ed25519")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        raise Refused("public_key_invalid", "not an Ed25519 public key") from None
    _check_allowance(allowance_minor)
    parties.get_party(tx, agent_id, Kind.AGENT)
    existing = _device_row(tx, device_id, lock=True)
    if existing is not None:
        found = _device(existing)
        if (found.agent_id, found.public_key, found.allowance_registered_minor) != (
            agent_id,
            public_key,
            allowance_minor,
        ):
            raise Conflict("device_exists_different", f"device {device_id} has other details")
        return found
    if tx.one("SELECT id FROM devices WHERE public_key = :key", {"key": public_key}):
        raise Conflict("public_key_in_use", "another device is registered with that key")
    tx.execute(
        f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (:id, :agent, :key, 'active',"
        " :allowance, 0, NULL, 0, 0, :now, :now)",
        {
            "id": device_id,
            "agent": agent_id,
            "key": public_key,
            "allowance": allowance_minor,
            "now": tx.now_us,
        },
    )
    row = _locked_device(tx, device_id)
    _set_held(tx, device_id, allowance_minor, _hold(tx, row, allowance_minor))
    agent_float.check_float_low(tx, agent_id)  # the held allowance lowers available float
    return _reread(tx, device_id)


def set_allowance(led: Ledger, *, device_id: uuid.UUID, allowance_minor: int) -> Device:
    """Set what the device may spend offline from now on (this is how a spent allowance
    is replenished): the old hold is voided and the new amount held, in one transaction;
    ``float_short`` (and nothing changed) when the float cannot hold it. Setting the
    amount already held changes nothing, so a replay is harmless."""
    return led.transact(
        lambda tx: set_allowance_in(tx, device_id=device_id, allowance_minor=allowance_minor)
    )


def set_allowance_in(tx: Tx, *, device_id: uuid.UUID, allowance_minor: int) -> Device:
    """:func:`set_allowance` inside a transaction someone else opened."""
    _check_allowance(allowance_minor)
    row = _locked_device(tx, device_id)
    device = _device(row)
    if device.state is not DeviceState.ACTIVE:
        raise Refused("device_revoked", f"device {device_id} is revoked")
    if device.allowance_minor == allowance_minor:
        return device
    _void(tx, device.allowance_hold_id)
    _set_held(tx, device_id, allowance_minor, _hold(tx, row, allowance_minor))
    agent_float.check_float_low(tx, device.agent_id)
    return _reread(tx, device_id)


def revoke_device(led: Ledger, *, device_id: uuid.UUID) -> Device:
    """Revoke the device's key and give its allowance back to the float (the hold is
    voided). It syncs nothing afterwards. Revoking a revoked device changes nothing."""
    return led.transact(lambda tx: revoke_device_in(tx, device_id=device_id))


def revoke_device_in(tx: Tx, *, device_id: uuid.UUID) -> Device:
    """:func:`revoke_device` inside a transaction someone else opened."""
    device = _device(_locked_device(tx, device_id))
    if device.state is DeviceState.REVOKED:
        return device
    _void(tx, device.allowance_hold_id)
    tx.execute(
        "UPDATE devices SET state = 'revoked', allowance_minor = 0, allowance_hold_id = NULL,"
        " updated_at_us = :now WHERE id = :id",
        {"now": tx.now_us, "id": device_id},
    )
    return _reread(tx, device_id)


def get_device(led: Ledger, *, device_id: uuid.UUID) -> Device:
    """The device; :class:`NotFound` ``device_not_found``."""

    def work(tx: Tx) -> Device:
        row = _device_row(tx, device_id, lock=False)
        if row is None:
            raise NotFound("device_not_found", f"no device {device_id}")
        return _device(row)

    return led.transact(work)


# -- stored records ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncedRecord:
    """A record as stored by a sync, with its outcome."""

    record_id: uuid.UUID
    device_id: uuid.UUID
    agent_id: uuid.UUID
    villager_id: uuid.UUID
    seq: int
    kind: RecordKind
    amount_minor: int
    """Minor units of ``currency``."""
    currency: str
    state: RecordState
    reason: str | None
    """Why an ``exception`` did not apply (a refusal code); ``None`` when applied."""
    cash_operation_id: uuid.UUID | None
    """The cash-in or cash-out an ``applied`` record became."""
    captured_at: datetime
    synced_at: datetime


_RECORD_COLUMNS = (
    "id, device_id, agent_id, villager_id, seq, kind, amount_minor, currency, state, reason,"
    " cash_operation_id, captured_at_us, synced_at_us"
)


def _synced(row: Row) -> SyncedRecord:
    return SyncedRecord(
        record_id=row[0],
        device_id=row[1],
        agent_id=row[2],
        villager_id=row[3],
        seq=row[4],
        kind=RecordKind(row[5]),
        amount_minor=row[6],
        currency=row[7],
        state=RecordState(row[8]),
        reason=row[9],
        cash_operation_id=row[10],
        captured_at=from_us(row[11]),
        synced_at=from_us(row[12]),
    )


def _stored(tx: Tx, record_id: uuid.UUID) -> tuple[SyncedRecord, bytes] | None:
    row = tx.one(
        f"SELECT {_RECORD_COLUMNS}, payload FROM offline_records WHERE id = :id",
        {"id": record_id},
    )
    return None if row is None else (_synced(row), bytes(row[13]))


def get_record(led: Ledger, *, record_id: uuid.UUID) -> SyncedRecord:
    """A synced record and its outcome; :class:`NotFound` ``record_not_found``."""

    def work(tx: Tx) -> SyncedRecord:
        found = _stored(tx, record_id)
        if found is None:
            raise NotFound("record_not_found", f"no synced record {record_id}")
        return found[0]

    return led.transact(work)


def list_exceptions(
    led: Ledger,
    *,
    agent_id: uuid.UUID | None = None,
    after: uuid.UUID | None = None,
    limit: int = 100,
) -> list[SyncedRecord]:
    """Records that became exceptions (of one agent, if given), in the order they were
    synced (then by device and ``seq``), after the cursor ``after`` (a record id; one
    that names no such exception answers ``[]``)."""
    if not isinstance(limit, int) or not 1 <= limit <= EXCEPTIONS_PAGE_MAX:
        raise ValueError(f"limit must be 1..{EXCEPTIONS_PAGE_MAX}")

    def work(tx: Tx) -> list[SyncedRecord]:
        where = "state = 'exception'"
        params: dict[str, Any] = {"limit": limit, "agent": agent_id}
        if agent_id is not None:
            where += " AND agent_id = :agent"
        if after is not None:
            cursor = tx.one(
                "SELECT synced_at_us, device_id, seq FROM offline_records"
                f" WHERE id = :id AND {where}",
                {"id": after, "agent": agent_id},
            )
            if cursor is None:
                return []
            where += " AND (synced_at_us, device_id, seq) > (:at, :device, :seq)"
            params.update(at=cursor[0], device=cursor[1], seq=cursor[2])
        rows = tx.execute(
            f"SELECT {_RECORD_COLUMNS} FROM offline_records WHERE {where}"
            " ORDER BY synced_at_us, device_id, seq LIMIT :limit",
            params,
        )
        return [_synced(row) for row in rows]

    return led.transact(work)


# -- sync -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a sync answers: each record's stored outcome, in the batch's order (the same
    for a re-sent batch), and how many of them this call stored."""

    device_id: uuid.UUID
    records: tuple[SyncedRecord, ...]
    stored_now: int
    """Records this call stored (applied or exception); the rest were stored before."""

    @property
    def applied(self) -> int:
        return sum(r.state is RecordState.APPLIED for r in self.records)

    @property
    def exceptions(self) -> int:
        return sum(r.state is RecordState.EXCEPTION for r in self.records)

    @property
    def replayed(self) -> int:
        return len(self.records) - self.stored_now


class _NotApplicable(Exception):
    """Raised inside a record's transaction to roll it back: the record becomes an
    exception with ``reason`` (a refusal code)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def sync(led: Ledger, *, device_id: uuid.UUID, records: Sequence[SignedRecord]) -> SyncReport:
    """Apply a device's batch of signed records exactly once, in capture order (see the
    module docstring for what refuses the whole batch and what becomes an exception)."""
    if len(records) > SYNC_BATCH_MAX:
        raise Refused("batch_too_large", f"a sync takes at most {SYNC_BATCH_MAX} records")
    for signed in records:
        if not isinstance(signed, SignedRecord):
            raise Refused("record_invalid", "a batch holds SignedRecord values")
    device, stored = led.transact(lambda tx: _load_batch(tx, device_id, records))
    _check_batch(device, stored, records)

    outcomes: list[SyncedRecord] = []
    stored_now = 0
    for signed in records:
        known = stored.get(signed.record.record_id)
        if known is not None:
            outcomes.append(known)
            continue
        outcome, new = _apply_one(led, device, signed)
        outcomes.append(outcome)
        stored_now += new
    report = SyncReport(device_id, tuple(outcomes), stored_now)
    if stored_now:
        led.transact(lambda tx: _emit_synced(tx, device, report))
    return report


def _load_batch(
    tx: Tx, device_id: uuid.UUID, records: Sequence[SignedRecord]
) -> tuple[Device, dict[uuid.UUID, SyncedRecord]]:
    row = _device_row(tx, device_id, lock=False)
    if row is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    device = _device(row)
    if device.state is not DeviceState.ACTIVE:
        raise Refused("device_revoked", f"device {device_id} is revoked")
    stored: dict[uuid.UUID, SyncedRecord] = {}
    for signed in records:
        rid = signed.record.record_id
        if not isinstance(rid, uuid.UUID):
            raise _invalid(rid, "record_id must be a UUID")
        found = _stored(tx, rid)
        if found is None:
            continue
        if found[1] != canonical_bytes(signed.record) or found[0].device_id != device_id:
            raise Conflict("record_exists_different", f"record {rid} was synced with other content")
        stored[rid] = found[0]
    return device, stored


def _check_batch(
    device: Device, stored: dict[uuid.UUID, SyncedRecord], records: Sequence[SignedRecord]
) -> None:
    """Every check that refuses the whole batch, before anything applies."""
    for signed in records:
        record = signed.record
        if record.device_id != device.id:
            raise Refused(
                "record_device_mismatch",
                f"record {record.record_id} names device {record.device_id}, not {device.id}",
            )
        canonical_bytes(record)
        if not verify_record(device.public_key, signed):
            raise Refused(
                "signature_invalid",
                f"record {record.record_id}: the device's key does not verify its signature",
            )
    previous = 0
    for signed in records:
        record = signed.record
        if record.seq <= previous:
            raise Refused(
                "records_out_of_order",
                f"record {record.record_id} has seq {record.seq} after seq {previous}",
            )
        previous = record.seq
    expected = device.last_seq + 1
    for signed in records:
        record = signed.record
        if record.record_id in stored:
            continue
        if record.seq <= device.last_seq:
            raise Conflict(
                "record_seq_reused",
                f"record {record.record_id}: seq {record.seq} belongs to another record",
            )
        if record.seq != expected:
            raise Refused(
                "record_gap",
                f"record {record.record_id} has seq {record.seq}; seq {expected} comes first",
            )
        expected += 1


def _apply_one(led: Ledger, device: Device, signed: SignedRecord) -> tuple[SyncedRecord, int]:
    """Apply one record in its own transaction, or store it as an exception in another;
    its stored outcome, and 1 if this call stored it (0 if someone else did first). A
    cash-out's code is checked first, in a transaction of its own."""
    device_id = device.id
    try:
        given = _consent_of(led, device, signed.record)
        return led.transact(lambda tx: _apply_in(tx, device_id, signed, given))
    except _NotApplicable as refusal:
        reason = refusal
    return led.transact(lambda tx: _store_exception_in(tx, device_id, signed, reason))


def _consent_of(led: Ledger, device: Device, record: OfflineRecord) -> Consent | None:
    """The consent a cash-out record's code gives (``None`` for a cash-in); a missing,
    wrong, spent or expired code is :class:`_NotApplicable`."""
    if RecordKind(record.kind) is not RecordKind.CASH_OUT or record.agent_id != device.agent_id:
        return None  # a cash-in needs none; another agent's record is refused as such
    if record.consent_code is None:
        raise _NotApplicable("consent_required", "the cash-out carries no withdrawal code")
    try:
        return consent.check_code(
            led,
            caller_id=device.agent_id,
            villager_id=record.villager_id,
            code=record.consent_code,
            purpose=consent.Purpose.OFFLINE_WITHDRAWAL,
            amount_minor=record.amount_minor,
            agent_id=device.agent_id,
        )
    except FlowError as refusal:
        raise _NotApplicable(refusal.code, refusal.detail) from refusal


def _claim(
    tx: Tx, device_id: uuid.UUID, signed: SignedRecord
) -> tuple[Device, SyncedRecord | None]:
    """Lock the device; the record's stored outcome if a concurrent sync stored it,
    else check that it is the device's next record."""
    device = _device(_locked_device(tx, device_id))
    record = signed.record
    found = _stored(tx, record.record_id)
    if found is not None:
        return device, found[0]
    if device.state is not DeviceState.ACTIVE:
        raise Refused("device_revoked", f"device {device_id} is revoked")
    if record.seq <= device.last_seq:
        raise Conflict(
            "record_seq_reused",
            f"record {record.record_id}: seq {record.seq} belongs to another record",
        )
    if record.seq != device.last_seq + 1:
        raise Refused(
            "record_gap",
            f"record {record.record_id} has seq {record.seq};"
            f" seq {device.last_seq + 1} comes first",
        )
    return device, None


def _apply_in(
    tx: Tx, device_id: uuid.UUID, signed: SignedRecord, given: Consent | None
) -> tuple[SyncedRecord, int]:
    device, found = _claim(tx, device_id, signed)
    if found is not None:
        return found, 0
    record = signed.record
    operation_id = cash_operation_id(record.record_id)
    try:
        _apply_money(tx, device, record, operation_id, given)
    except FlowError as refusal:
        raise _NotApplicable(refusal.code, refusal.detail) from refusal
    _insert_record(tx, device, signed, RecordState.APPLIED, None, operation_id)
    stored = _stored(tx, record.record_id)
    assert stored is not None  # just written
    return stored[0], 1


def _apply_money(
    tx: Tx,
    device: Device,
    record: OfflineRecord,
    operation_id: uuid.UUID,
    given: Consent | None,
) -> None:
    agent = parties.get_party(tx, device.agent_id, Kind.AGENT)
    if record.agent_id != device.agent_id:
        raise _NotApplicable(
            "record_agent_mismatch",
            f"record names agent {record.agent_id}; the device is agent {device.agent_id}'s",
        )
    if record.currency != agent.currency:
        raise _NotApplicable(
            "currency_mismatch", f"record in {record.currency}; the agent's is {agent.currency}"
        )
    kind = RecordKind(record.kind)
    if kind is RecordKind.CASH_IN and record.amount_minor > device.allowance_minor:
        raise _NotApplicable(
            "allowance_spent",
            f"{record.amount_minor} asked, {device.allowance_minor} left of the allowance",
        )

    from ledger.flows import cash  # late: cash imports much of the flows

    if kind is RecordKind.CASH_OUT:
        cash.cash_out_in(
            tx,
            cash_out_id=operation_id,
            agent_id=device.agent_id,
            villager_id=record.villager_id,
            amount_minor=record.amount_minor,
            consent=given,
            device_id=device.id,
        )
        return
    # The allowance's float is released for this cash-in, and the rest held again.
    _void(tx, device.allowance_hold_id)
    cash.cash_in_in(
        tx,
        cash_in_id=operation_id,
        agent_id=device.agent_id,
        villager_id=record.villager_id,
        amount_minor=record.amount_minor,
        device_id=device.id,
    )
    remaining = device.allowance_minor - record.amount_minor
    row = _locked_device(tx, device.id)
    _set_held(tx, device.id, remaining, _hold(tx, row, remaining))


def _insert_record(
    tx: Tx,
    device: Device,
    signed: SignedRecord,
    state: RecordState,
    reason: str | None,
    operation_id: uuid.UUID | None,
) -> None:
    record = signed.record
    tx.execute(
        f"INSERT INTO offline_records ({_RECORD_COLUMNS}, payload, signature) VALUES"
        " (:id, :device, :agent, :villager, :seq, :kind, :amount, :currency, :state,"
        " :reason, :operation, :captured, :now, :payload, :signature)",
        {
            "id": record.record_id,
            "device": device.id,
            "agent": device.agent_id,
            "villager": record.villager_id,
            "seq": record.seq,
            "kind": RecordKind(record.kind).value,
            "amount": record.amount_minor,
            "currency": record.currency,
            "state": str(state),
            "reason": reason,
            "operation": operation_id,
            "captured": to_us(record.captured_at),
            "now": tx.now_us,
            "payload": canonical_bytes(record),
            "signature": signed.signature,
        },
    )
    tx.execute(
        "UPDATE devices SET last_seq = :seq, updated_at_us = :now WHERE id = :id",
        {"seq": record.seq, "now": tx.now_us, "id": device.id},
    )


def _store_exception_in(
    tx: Tx, device_id: uuid.UUID, signed: SignedRecord, refusal: _NotApplicable
) -> tuple[SyncedRecord, int]:
    device, found = _claim(tx, device_id, signed)
    if found is not None:
        return found, 0
    record = signed.record
    charged = 0
    if RecordKind(record.kind) is RecordKind.CASH_OUT and refusal.reason in CONSENT_REASONS:
        charged = _charge_agent(tx, device, record)
    _insert_record(tx, device, signed, RecordState.EXCEPTION, refusal.reason, None)
    events.emit(
        tx,
        events.OFFLINE_EXCEPTION,
        {
            "record_id": str(record.record_id),
            "device_id": str(device.id),
            "agent_id": str(device.agent_id),
            "villager_id": str(record.villager_id),
            "seq": record.seq,
            "kind": RecordKind(record.kind).value,
            "amount_minor": record.amount_minor,
            "currency": record.currency,
            "captured_at": _time_text(record.captured_at.astimezone(UTC)),
            "reason": refusal.reason,
            "detail": refusal.detail,
            "charged_minor": charged,
        },
        party_id=device.agent_id,
        subject_id=record.record_id,
    )
    stored = _stored(tx, record.record_id)
    assert stored is not None  # just written
    return stored[0], 1


def _charge_agent(tx: Tx, device: Device, record: OfflineRecord) -> int:
    """An offline cash-out without a valid consent: the cash left the agent's till
    against the device's allowance (module docstring, the two steps); what was charged."""
    agent = parties.get_party(tx, device.agent_id, Kind.AGENT)
    if record.currency != agent.currency:
        return 0
    leg = Transfer(
        uuid.uuid5(OFFLINE_NAMESPACE, f"unconsented:{record.record_id}"),
        agent.account(Role.CASH_CONTROL),
        agent.account(Role.CASH),
        record.amount_minor,
        agent.currency,
        UNCONSENTED_CASH_CODE,
        metadata={"record_id": str(record.record_id), "device_id": str(device.id)},
    )
    [result] = tx.create_transfers([leg])
    if result.status in (Status.EXCEEDS_CREDITS, Status.EXCEEDS_DEBITS):
        return 0
    if result.status != Status.CREATED:
        raise InvariantViolation(f"unconsented cash leg {leg.id}: {result.status}")
    row = _locked_device(tx, device.id)
    held = _device(row)
    if held.state is DeviceState.ACTIVE and held.allowance_minor > 0:
        remaining = max(0, held.allowance_minor - record.amount_minor)
        _void(tx, held.allowance_hold_id)
        _set_held(tx, device.id, remaining, _hold(tx, row, remaining))
    return record.amount_minor


def _emit_synced(tx: Tx, device: Device, report: SyncReport) -> None:
    events.emit(
        tx,
        events.OFFLINE_SYNCED,
        {
            "device_id": str(device.id),
            "agent_id": str(device.agent_id),
            "records": len(report.records),
            "stored_now": report.stored_now,
            "replayed": report.replayed,
            "applied": report.applied,
            "exceptions": report.exceptions,
            "first_seq": report.records[0].seq,
            "last_seq": report.records[-1].seq,
        },
        party_id=device.agent_id,
        subject_id=device.id,
    )
