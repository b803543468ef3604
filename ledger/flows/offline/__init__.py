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

Hand-over of an order's goods (version 3)
    Goods waiting at the station for a villager (an order ``dispatched`` to a pickup point
    or by the agent, :data:`ledger.flows.pickup.HANDOVER_METHODS`) are handed over with
    the pickup code the villager was sent. Offline, the phone captures a **version 3**
    record of kind ``handover``: the order, the code she typed, and the order's amount,
    currency and villager as the phone last saw them. At sync, in this order:

    1. the order must be one the device's agent may hand over (it names this agent, or
       no agent yet, as ``GET /v1/orders/{id}`` lets an agent see it), else the
       exception ``order_not_found`` (another agent's order and no order alike; its code
       is not tried); its amount, currency and villager must be the record's, else
       ``record_order_mismatch`` (the code is not tried either);
    2. the code is checked through :func:`ledger.flows.pickup.check`, in a transaction
       of its own, exactly as the online hand-over checks it
       (:func:`ledger.flows.orders.deliver_order`): a wrong code is counted and the
       third wrong one voids the order's code. A wrong code is the exception
       ``pickup_code_invalid``; once the order has no open code (voided now or before,
       or replaced by the shop) ``pickup_code_void``;
    3. the order's delivery step (:func:`ledger.flows.orders.deliver_order_in`, step id
       :func:`handover_step_id` of the record id: all that is left in escrow; the code
       marked used) runs in the record's transaction with the record's row: ``applied``,
       its ``cash_operation_id`` the delivery step. An order no longer dispatched is the
       exception ``order_not_deliverable``.

    A hand-over moves no float: it neither spends nor is charged to the allowance. Once
    per record id, as every record: a re-sent record answers its stored outcome and its
    code is not tried again.

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

    Version 3 (kind ``handover`` only, and a hand-over is always version 3) has the nine
    keys and three more, in the same sorted order: ``"order_id"`` (a UUID),
    ``"pickup_code"`` (the six digits the villager typed, a string) and ``"version":3``;
    ``amount_minor``, ``currency`` and ``villager_id`` are the order's.

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

Modules: :mod:`~ledger.flows.offline.records` (the signed record format),
:mod:`~ledger.flows.offline.repository` (all SQL of ``devices`` and
``offline_records``), :mod:`~ledger.flows.offline.devices` (registering, allowances,
revoking). The sync itself is here, where :data:`SYNC_BATCH_MAX` and each record's step
are looked up when a sync runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC

from ledger.core.errors import InvariantViolation, MalformedRequest
from ledger.core.ledger import Ledger
from ledger.core.tx import Tx
from ledger.core.values import Status, Transfer
from ledger.flows import consent, events, parties
from ledger.flows.consent import Consent
from ledger.flows.errors import Conflict, FlowError, NotFound, Refused
from ledger.flows.offline import repository
from ledger.flows.offline.devices import (
    ALLOWANCE_HOLD_CODE,
    get_device,
    hold_allowance,
    locked_device,
    register_device,
    register_device_in,
    revoke_device,
    revoke_device_in,
    set_allowance,
    set_allowance_in,
    void_allowance,
)
from ledger.flows.offline.records import (
    OFFLINE_NAMESPACE,
    PICKUP_CODE_DIGITS,
    PUBLIC_KEY_LENGTH,
    RECORD_VERSIONS,
    SIGNATURE_LENGTH,
    OfflineRecord,
    RecordKind,
    SignedRecord,
    canonical_bytes,
    cash_operation_id,
    handover_step_id,
    invalid,
    record_from_canonical,
    sign_record,
    time_text,
    verify_record,
)
from ledger.flows.offline.repository import Device, DeviceState, RecordState, SyncedRecord
from ledger.flows.parties import Kind, Role
from ledger.flows.pickup import PickupProof
from ledger.flows.pickup import repository as pickup_codes
from ledger.limits import AMOUNT_MAX_MINOR as JSON_INT_MAX
from ledger.limits import LIST_PAGE_SIZE_MAX as EXCEPTIONS_PAGE_MAX

__all__ = [
    "ALLOWANCE_HOLD_CODE",
    "CONSENT_REASONS",
    "EXCEPTIONS_PAGE_MAX",
    "JSON_INT_MAX",
    "OFFLINE_NAMESPACE",
    "PICKUP_CODE_DIGITS",
    "PUBLIC_KEY_LENGTH",
    "RECORD_VERSIONS",
    "SIGNATURE_LENGTH",
    "SYNC_BATCH_MAX",
    "UNCONSENTED_CASH_CODE",
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
    "handover_step_id",
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

SYNC_BATCH_MAX = 500
"""The most records one :func:`sync` call takes."""

UNCONSENTED_CASH_CODE = 802
"""Core transfer ``code``: cash an agent handed over for an offline cash-out without a
valid consent (``cash_control`` -> ``cash``; the agent's loss)."""

CONSENT_REASONS = frozenset(
    {"consent_required", "consent_invalid", "consent_expired", "consent_rate_limited"}
)
"""Exception reasons charged to the agent's allowance (module docstring)."""


# -- stored records ---------------------------------------------------------------------


def get_record(led: Ledger, *, record_id: uuid.UUID) -> SyncedRecord:
    """A synced record and its outcome; :class:`NotFound` ``record_not_found``."""

    def work(tx: Tx) -> SyncedRecord:
        found = repository.read_record(tx, record_id)
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
    that names no such exception answers ``[]``), at most ``limit`` (1..1000; else
    :class:`~ledger.core.errors.MalformedRequest`, a ``ValueError``)."""
    if not isinstance(limit, int) or not 1 <= limit <= EXCEPTIONS_PAGE_MAX:
        raise MalformedRequest(f"limit must be 1..{EXCEPTIONS_PAGE_MAX}")
    return led.transact(
        lambda tx: repository.select_exceptions(tx, agent_id=agent_id, after=after, limit=limit)
    )


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
    device = repository.read_device(tx, device_id, lock=False)
    if device is None:
        raise NotFound("device_not_found", f"no device {device_id}")
    if device.state is not DeviceState.ACTIVE:
        raise Refused("device_revoked", f"device {device_id} is revoked")
    stored: dict[uuid.UUID, SyncedRecord] = {}
    for signed in records:
        rid = signed.record.record_id
        if not isinstance(rid, uuid.UUID):
            raise invalid(rid, "record_id must be a UUID")
        found = repository.read_record(tx, rid)
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
        given = _proof_of(led, device, signed.record)
        return led.transact(lambda tx: _apply_in(tx, device_id, signed, given))
    except _NotApplicable as refusal:
        reason = refusal
    return led.transact(lambda tx: _store_exception_in(tx, device_id, signed, reason))


def _proof_of(led: Ledger, device: Device, record: OfflineRecord) -> Consent | PickupProof | None:
    """What the record's code proves, checked before its transaction: a cash-out's
    consent, a hand-over's pickup proof, nothing for a cash-in."""
    if RecordKind(record.kind) is RecordKind.HANDOVER:
        return _pickup_of(led, device, record)
    return _consent_of(led, device, record)


def _pickup_of(led: Ledger, device: Device, record: OfflineRecord) -> PickupProof | None:
    """A hand-over's pickup code checked as the online hand-over checks it (module
    docstring, steps 1 and 2); ``None`` when the delivery step decides without a code
    (an order not dispatched, or one that needs none)."""
    from ledger.flows import orders, pickup  # late: orders imports much of the flows

    if record.agent_id != device.agent_id or record.order_id is None:
        return None  # refused as such in the record's transaction
    try:
        order = orders.get_order(led, order_id=record.order_id)
    except NotFound:
        raise _NotApplicable("order_not_found", f"no order {record.order_id}") from None
    if order.agent_id not in (None, device.agent_id):
        raise _NotApplicable("order_not_found", f"no order {record.order_id}")
    seen = (record.villager_id, record.amount_minor, record.currency)
    if seen != (order.villager_id, order.amount_minor, order.currency):
        raise _NotApplicable(
            "record_order_mismatch", f"order {order.id} is not the one the record describes"
        )
    if order.state is not orders.State.DISPATCHED or not pickup.needed(
        order.delivery_method, order.villager_id
    ):
        return None
    try:
        return pickup.check(led, order_id=order.id, code=record.pickup_code)
    except FlowError as refusal:
        if led.transact(lambda tx: pickup_codes.find_open(tx, order.id)) is None:
            raise _NotApplicable("pickup_code_void", refusal.detail) from refusal
        raise _NotApplicable(refusal.code, refusal.detail) from refusal


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
    device = locked_device(tx, device_id)
    record = signed.record
    found = repository.read_record(tx, record.record_id)
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
    tx: Tx, device_id: uuid.UUID, signed: SignedRecord, given: Consent | PickupProof | None
) -> tuple[SyncedRecord, int]:
    device, found = _claim(tx, device_id, signed)
    if found is not None:
        return found, 0
    record = signed.record
    handover = RecordKind(record.kind) is RecordKind.HANDOVER
    operation_id = (handover_step_id if handover else cash_operation_id)(record.record_id)
    try:
        _apply_money(tx, device, record, operation_id, given)
    except FlowError as refusal:
        raise _NotApplicable(refusal.code, refusal.detail) from refusal
    repository.insert_record(
        tx,
        device=device,
        signed=signed,
        state=RecordState.APPLIED,
        reason=None,
        operation_id=operation_id,
    )
    return _outcome(tx, record.record_id), 1


def _apply_money(
    tx: Tx,
    device: Device,
    record: OfflineRecord,
    operation_id: uuid.UUID,
    given: Consent | PickupProof | None,
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
    if kind is RecordKind.HANDOVER:
        _hand_over(tx, record, operation_id, given)
        return
    if given is not None and not isinstance(given, Consent):
        raise InvariantViolation(f"record {record.record_id}: a cash record with a pickup proof")
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
    void_allowance(tx, device.allowance_hold_id)
    cash.cash_in_in(
        tx,
        cash_in_id=operation_id,
        agent_id=device.agent_id,
        villager_id=record.villager_id,
        amount_minor=record.amount_minor,
        device_id=device.id,
    )
    remaining = device.allowance_minor - record.amount_minor
    hold_allowance(tx, device, remaining)


def _hand_over(
    tx: Tx, record: OfflineRecord, step_id: uuid.UUID, given: Consent | PickupProof | None
) -> None:
    """The order's delivery step, all that is left, with the proof of its pickup code
    (module docstring, step 3)."""
    from ledger.flows import orders  # late: orders imports much of the flows

    if record.order_id is None or isinstance(given, Consent):
        raise InvariantViolation(f"record {record.record_id}: a handover without its order")
    orders.deliver_order_in(tx, step_id=step_id, order_id=record.order_id, pickup_proof=given)


def _outcome(tx: Tx, record_id: uuid.UUID) -> SyncedRecord:
    """A record this transaction stored."""
    found = repository.read_record(tx, record_id)
    if found is None:
        raise InvariantViolation(f"record {record_id} vanished inside its transaction")
    return found[0]


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
    repository.insert_record(
        tx,
        device=device,
        signed=signed,
        state=RecordState.EXCEPTION,
        reason=refusal.reason,
        operation_id=None,
    )
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
            "captured_at": time_text(record.captured_at.astimezone(UTC)),
            "reason": refusal.reason,
            "detail": refusal.detail,
            "charged_minor": charged,
        },
        party_id=device.agent_id,
        subject_id=record.record_id,
    )
    return _outcome(tx, record.record_id), 1


def _charge_agent(tx: Tx, device: Device, record: OfflineRecord) -> int:
    """An offline cash-out without a valid consent: the cash left the agent's till
    against the device's allowance (module docstring, the two steps); what was charged."""
    agent = parties.get_party(tx, device.agent_id, Kind.AGENT)
    if record.currency != agent.currency:
        return 0
    leg = Transfer(
        uuid.uuid5(OFFLINE_NAMESPACE, f"unconsented:{record.record_id}"),
        debit_account_id=agent.account(Role.CASH_CONTROL),
        credit_account_id=agent.account(Role.CASH),
        amount=record.amount_minor,
        currency=agent.currency,
        code=UNCONSENTED_CASH_CODE,
        metadata={"record_id": str(record.record_id), "device_id": str(device.id)},
    )
    [result] = tx.create_transfers([leg])
    if result.status in (Status.EXCEEDS_CREDITS, Status.EXCEEDS_DEBITS):
        return 0
    if result.status != Status.CREATED:
        raise InvariantViolation(f"unconsented cash leg {leg.id}: {result.status}")
    held = locked_device(tx, device.id)
    if held.state is DeviceState.ACTIVE and held.allowance_minor > 0:
        remaining = max(0, held.allowance_minor - record.amount_minor)
        void_allowance(tx, held.allowance_hold_id)
        hold_allowance(tx, held, remaining)
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
