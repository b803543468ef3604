"""Offline capture: an agent's phone registers its key and an allowance held on the float,
signs records over canonical bytes, and syncs them; each applies exactly once, in capture
order, and one that can no longer apply becomes a visible exception."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import Account, Ledger, Status, Transfer, open_ledger
from ledger.core.tx import Tx
from ledger.flows import events, offline, parties
from ledger.flows.errors import Conflict, NotFound, Refused
from ledger.flows.offline import (
    DeviceState,
    OfflineRecord,
    RecordKind,
    RecordState,
    SignedRecord,
    canonical_bytes,
    record_from_canonical,
    sign_record,
)
from ledger.flows.parties import Kind, Party, Role
from tests.conftest import Clock

KES = "KES"
TOP_UP_CODE = 999

# RFC 8032, section 7.1, TEST 1: a fixed key from a fixed seed.
VECTOR_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
VECTOR_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
VECTOR_RECORD = OfflineRecord(
    record_id=uuid.UUID("7a1c9e52-3b4d-4f60-8e21-5c0d9b3a7f14"),
    device_id=uuid.UUID("d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6"),
    agent_id=uuid.UUID("a9e8d7c6-b5a4-4938-8271-605f4e3d2c1b"),
    villager_id=uuid.UUID("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"),
    kind=RecordKind.CASH_IN,
    amount_minor=120_000,
    currency=KES,
    seq=1,
    captured_at=datetime(2026, 6, 1, 7, 45, 30, 250_000, tzinfo=UTC),
)
VECTOR_BYTES = (
    b'{"agent_id":"a9e8d7c6-b5a4-4938-8271-605f4e3d2c1b","amount_minor":120000,'
    b'"captured_at":"2026-06-01T07:45:30.250Z","currency":"KES",'
    b'"device_id":"d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6","kind":"cash_in",'
    b'"record_id":"7a1c9e52-3b4d-4f60-8e21-5c0d9b3a7f14","seq":1,'
    b'"villager_id":"5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"}'
)
VECTOR_SIGNATURE = bytes.fromhex(
    "ffadc368c993f27479c6f0dd195126335d591b20ff125ad113e618801628d417"
    "fea8ea60cd0aedbb543e4b9321c29a03129670d632549db8b9878da5bc5a8e0e"
)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# -- a village with an agent, a villager and a phone ------------------------------------


@dataclass
class Village:
    led: Ledger
    agent: Party
    villager: Party
    key: Ed25519PrivateKey
    device_id: uuid.UUID
    captured_at: datetime

    def account(self, account_id: uuid.UUID) -> Account:
        [found] = self.led.lookup_accounts([account_id])
        return found

    @property
    def float_(self) -> Account:
        return self.account(self.agent.account(Role.FLOAT))

    @property
    def allowance_account(self) -> Account:
        return self.account(self.agent.account(Role.OFFLINE_ALLOWANCE))

    def record(
        self,
        seq: int,
        amount_minor: int,
        kind: RecordKind = RecordKind.CASH_IN,
        **changes: object,
    ) -> SignedRecord:
        record = OfflineRecord(
            record_id=uuid.uuid4(),
            device_id=self.device_id,
            agent_id=self.agent.id,
            villager_id=self.villager.id,
            kind=kind,
            amount_minor=amount_minor,
            currency=KES,
            seq=seq,
            captured_at=self.captured_at + timedelta(minutes=seq),
        )
        return sign_record(self.key, replace(record, **changes))  # type: ignore[arg-type]

    def register(self, allowance_minor: int) -> offline.Device:
        return offline.register_device(
            self.led,
            device_id=self.device_id,
            agent_id=self.agent.id,
            public_key=raw_public(self.key),
            allowance_minor=allowance_minor,
        )

    def stored_records(self) -> int:
        row = self.led.transact(lambda tx: tx.one("SELECT count(*) FROM offline_records"))
        assert row is not None
        return int(row[0])

    def events_of(self, event_type: str) -> list[events.Event]:
        found = self.led.transact(
            lambda tx: events.read_events(tx, party_id=self.agent.id, limit=1000)
        )
        return [e for e in found if e.type == event_type]


def fund_float(led: Ledger, agent: Party, amount_minor: int) -> None:
    """The agent deposits cash at the bank: float arrives through the bank's clearing."""

    def work(tx: Tx) -> list[Status]:
        bank = parties.provider_clearing(tx, KES, "BANK")
        top_up = Transfer(
            uuid.uuid4(), bank, agent.account(Role.FLOAT), amount_minor, KES, TOP_UP_CODE
        )
        return [r.status for r in tx.create_transfers([top_up])]

    assert led.transact(work) == [Status.CREATED]


@pytest.fixture
def village(ledger: Ledger) -> Village:
    agent = parties.onboard(
        ledger, party_id=uuid.uuid4(), kind=Kind.AGENT, name="Wanjiru's shop", currency=KES
    )
    villager = parties.onboard(
        ledger,
        party_id=uuid.uuid4(),
        kind=Kind.VILLAGER,
        name="Otieno",
        currency=KES,
        kyc_tier="tier1",
    )
    fund_float(ledger, agent, 1_000_000)
    return Village(
        ledger,
        agent,
        villager,
        Ed25519PrivateKey.generate(),
        uuid.uuid4(),
        datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
    )


# -- canonical bytes --------------------------------------------------------------------


def test_the_key_from_the_fixed_seed_is_rfc_8032_test_1() -> None:
    key = Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    assert raw_public(key) == VECTOR_PUBLIC
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_vector_a_phone_signs_1_200_kes_cash_in_to_these_bytes_and_signature() -> None:
    key = Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    assert canonical_bytes(VECTOR_RECORD) == VECTOR_BYTES
    signed = sign_record(key, VECTOR_RECORD)
    assert signed.signature == VECTOR_SIGNATURE
    assert offline.verify_record(VECTOR_PUBLIC, SignedRecord(VECTOR_RECORD, VECTOR_SIGNATURE))
    assert record_from_canonical(VECTOR_BYTES) == VECTOR_RECORD


def test_canonical_bytes_are_the_same_from_any_utc_offset() -> None:
    nairobi = VECTOR_RECORD.captured_at.astimezone(timezone(timedelta(hours=3)))
    assert nairobi.hour == 10
    assert canonical_bytes(replace(VECTOR_RECORD, captured_at=nairobi)) == VECTOR_BYTES


@pytest.mark.parametrize(
    "payload",
    [
        VECTOR_BYTES.replace(b",", b", ", 1),  # whitespace
        VECTOR_BYTES.replace(b"120000", b"120000.0"),  # a float
        VECTOR_BYTES.replace(b"120000", b"0"),  # zero
        VECTOR_BYTES.replace(b"120000", b"9007199254740992"),  # 2**53
        VECTOR_BYTES.replace(b"30.250Z", b"30.25Z"),  # not exactly milliseconds
        VECTOR_BYTES.replace(b"30.250Z", b"30.250+00:00"),
        VECTOR_BYTES.replace(b"cash_in", b"cash_back"),
        VECTOR_BYTES.replace(b"7a1c9e52", b"7A1C9E52"),  # upper-case UUID
        VECTOR_BYTES.replace(b'"seq":1', b'"seq":true'),
        VECTOR_BYTES.replace(b'"seq":1,', b""),  # a key missing
        VECTOR_BYTES[:-1] + b',"note":"x"}',  # a key too many
        VECTOR_BYTES + b"\n",
        b"\xff",
    ],
)
def test_bytes_that_are_not_exactly_canonical_are_refused(payload: bytes) -> None:
    with pytest.raises(Refused) as refused:
        record_from_canonical(payload)
    assert refused.value.code == "record_invalid"


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": 0},
        {"amount_minor": 2**53},
        {"amount_minor": True},
        {"seq": 0},
        {"currency": "kes"},
        {"captured_at": datetime(2026, 6, 1, 7, 45, 30, 250_001, tzinfo=UTC)},
        {"captured_at": datetime(2026, 6, 1, 7, 45, 30)},  # naive
        {"kind": "cash_back"},
    ],
)
def test_a_record_with_no_canonical_form_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(Refused) as refused:
        canonical_bytes(replace(VECTOR_RECORD, **changes))  # type: ignore[arg-type]
    assert refused.value.code == "record_invalid"


def test_a_version_2_cash_out_carries_the_villagers_code_in_its_signed_bytes() -> None:
    record = replace(VECTOR_RECORD, kind=RecordKind.CASH_OUT, consent_code="048213", version=2)
    payload = canonical_bytes(record)
    assert payload == (
        b'{"agent_id":"a9e8d7c6-b5a4-4938-8271-605f4e3d2c1b","amount_minor":120000,'
        b'"captured_at":"2026-06-01T07:45:30.250Z","consent_code":"048213","currency":"KES",'
        b'"device_id":"d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6","kind":"cash_out",'
        b'"record_id":"7a1c9e52-3b4d-4f60-8e21-5c0d9b3a7f14","seq":1,"version":2,'
        b'"villager_id":"5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"}'
    )
    assert record_from_canonical(payload) == record
    key = Ed25519PrivateKey.from_private_bytes(VECTOR_SEED)
    assert offline.verify_record(VECTOR_PUBLIC, sign_record(key, record))
    # Version 1 still reads as it did: no code, version 1.
    assert record_from_canonical(VECTOR_BYTES).version == 1
    no_code = replace(VECTOR_RECORD, kind=RecordKind.CASH_OUT, version=2)
    assert b'"consent_code":null' in canonical_bytes(no_code)


@pytest.mark.parametrize(
    "changes",
    [
        {"consent_code": "048213"},  # a code in a version 1 record
        {"consent_code": "048213", "version": 2},  # a code on a cash-in
        {"kind": RecordKind.CASH_OUT, "consent_code": "04821", "version": 2},
        {"kind": RecordKind.CASH_OUT, "consent_code": "04821x", "version": 2},
        {"kind": RecordKind.CASH_OUT, "consent_code": 48213, "version": 2},
        {"version": 3},
        {"version": True},
    ],
)
def test_a_version_2_record_with_a_bad_code_or_version_has_no_canonical_form(
    changes: dict[str, object],
) -> None:
    with pytest.raises(Refused) as refused:
        canonical_bytes(replace(VECTOR_RECORD, **changes))  # type: ignore[arg-type]
    assert refused.value.code == "record_invalid"
    v2 = VECTOR_BYTES.replace(b"}", b',"consent_code":null,"version":1}')
    with pytest.raises(Refused):
        record_from_canonical(v2)  # version 2's keys with version 1


# -- devices and their allowance --------------------------------------------------------


def test_registering_a_phone_holds_its_5_000_kes_allowance_on_the_float(village: Village) -> None:
    device = village.register(500_000)
    assert device.state is DeviceState.ACTIVE
    assert (device.allowance_minor, device.last_seq) == (500_000, 0)
    assert device.allowance_hold_id is not None
    float_ = village.float_
    assert (float_.credits_posted, float_.debits_posted, float_.debits_pending) == (
        1_000_000,
        0,
        500_000,
    )
    assert village.allowance_account.credits_pending == 500_000
    [hold] = village.led.lookup_transfers([device.allowance_hold_id])
    assert hold.timeout_s == 0  # held until voided: it never expires
    # A replay answers the device and holds nothing more.
    assert village.register(500_000) == device
    assert village.float_.debits_pending == 500_000
    assert offline.get_device(village.led, device_id=village.device_id) == device
    assert village.led.check_integrity().ok


def test_registering_refuses_a_changed_replay_a_used_key_and_a_bad_key(village: Village) -> None:
    village.register(100_000)
    with pytest.raises(Conflict) as conflict:
        village.register(200_000)
    assert conflict.value.code == "device_exists_different"
    with pytest.raises(Conflict) as conflict:
        offline.register_device(
            village.led,
            device_id=uuid.uuid4(),
            agent_id=village.agent.id,
            public_key=raw_public(village.key),
            allowance_minor=0,
        )
    assert conflict.value.code == "public_key_in_use"
    for bad_key in (b"\x01" * 31, "not bytes"):
        with pytest.raises(Refused) as refused:
            offline.register_device(
                village.led,
                device_id=uuid.uuid4(),
                agent_id=village.agent.id,
                public_key=bad_key,  # type: ignore[arg-type]
                allowance_minor=0,
            )
        assert refused.value.code == "public_key_invalid"
    with pytest.raises(NotFound):
        offline.register_device(
            village.led,
            device_id=uuid.uuid4(),
            agent_id=village.villager.id,
            public_key=raw_public(Ed25519PrivateKey.generate()),
            allowance_minor=0,
        )
    assert village.float_.debits_pending == 100_000


def test_registering_with_more_allowance_than_float_is_refused(village: Village) -> None:
    with pytest.raises(Refused) as refused:
        village.register(1_000_001)
    assert refused.value.code == "float_short"
    with pytest.raises(NotFound):
        offline.get_device(village.led, device_id=village.device_id)
    assert village.float_.debits_pending == 0
    # Exactly the float is fine.
    assert village.register(1_000_000).allowance_minor == 1_000_000
    assert village.led.check_integrity().ok


def test_setting_the_allowance_voids_the_old_hold_and_holds_the_new(village: Village) -> None:
    first = village.register(300_000)
    raised = offline.set_allowance(
        village.led, device_id=village.device_id, allowance_minor=800_000
    )
    assert raised.allowance_minor == 800_000
    assert raised.allowance_hold_id not in (None, first.allowance_hold_id)
    assert village.float_.debits_pending == 800_000
    assert first.allowance_hold_id is not None
    [old] = village.led.lookup_transfers([first.allowance_hold_id])
    assert old.amount == 300_000
    # The same amount again changes nothing.
    assert (
        offline.set_allowance(village.led, device_id=village.device_id, allowance_minor=800_000)
        == raised
    )
    # More than the float could hold: refused, the old hold stays.
    with pytest.raises(Refused) as refused:
        offline.set_allowance(village.led, device_id=village.device_id, allowance_minor=1_000_001)
    assert refused.value.code == "float_short"
    assert offline.get_device(village.led, device_id=village.device_id) == raised
    assert village.float_.debits_pending == 800_000
    # Zero holds nothing.
    zero = offline.set_allowance(village.led, device_id=village.device_id, allowance_minor=0)
    assert (zero.allowance_minor, zero.allowance_hold_id) == (0, None)
    assert village.float_.debits_pending == 0
    assert village.allowance_account.credits_pending == 0
    with pytest.raises(Refused) as refused:
        offline.set_allowance(village.led, device_id=village.device_id, allowance_minor=-1)
    assert refused.value.code == "amount_invalid"
    assert village.led.check_integrity().ok


def test_a_revoked_phone_gives_its_allowance_back_and_syncs_nothing(village: Village) -> None:
    village.register(400_000)
    revoked = offline.revoke_device(village.led, device_id=village.device_id)
    assert (revoked.state, revoked.allowance_minor, revoked.allowance_hold_id) == (
        DeviceState.REVOKED,
        0,
        None,
    )
    assert village.float_.debits_pending == 0
    assert offline.revoke_device(village.led, device_id=village.device_id) == revoked
    with pytest.raises(Refused) as refused:
        offline.sync(village.led, device_id=village.device_id, records=[village.record(1, 100)])
    assert refused.value.code == "device_revoked"
    with pytest.raises(Refused) as refused:
        offline.set_allowance(village.led, device_id=village.device_id, allowance_minor=1)
    assert refused.value.code == "device_revoked"
    assert village.stored_records() == 0
    assert village.led.check_integrity().ok


# -- what refuses a whole batch ---------------------------------------------------------


def test_a_tampered_amount_refuses_the_whole_batch(village: Village) -> None:
    village.register(500_000)
    first = village.record(1, 10_000)
    second = village.record(2, 20_000)
    tampered = SignedRecord(replace(second.record, amount_minor=200_000), second.signature)
    with pytest.raises(Refused) as refused:
        offline.sync(village.led, device_id=village.device_id, records=[first, tampered])
    assert refused.value.code == "signature_invalid"
    assert str(second.record.record_id) in refused.value.detail
    assert village.stored_records() == 0
    assert offline.get_device(village.led, device_id=village.device_id).last_seq == 0
    assert village.float_.debits_pending == 500_000
    assert village.led.check_integrity().ok


def test_a_record_signed_by_another_key_refuses_the_whole_batch(village: Village) -> None:
    village.register(500_000)
    stranger = Ed25519PrivateKey.generate()
    forged = sign_record(stranger, village.record(1, 10_000).record)
    short = SignedRecord(village.record(1, 10_000).record, b"\x00" * 63)
    for bad in (forged, short):
        with pytest.raises(Refused) as refused:
            offline.sync(village.led, device_id=village.device_id, records=[bad])
        assert refused.value.code == "signature_invalid"
    assert village.stored_records() == 0
    assert village.led.check_integrity().ok


def test_batches_out_of_order_with_a_gap_or_for_another_device_are_refused(
    village: Village,
) -> None:
    village.register(500_000)
    one, two, three = (village.record(seq, 1_000) for seq in (1, 2, 3))
    cases = {
        "records_out_of_order": [one, three, two],
        "record_gap": [one, three],
    }
    for code, batch in cases.items():
        with pytest.raises(Refused) as refused:
            offline.sync(village.led, device_id=village.device_id, records=batch)
        assert refused.value.code == code
    with pytest.raises(Refused) as refused:
        offline.sync(village.led, device_id=village.device_id, records=[two])
    assert refused.value.code == "record_gap"
    other = village.record(1, 1_000, device_id=uuid.uuid4())
    with pytest.raises(Refused) as refused:
        offline.sync(village.led, device_id=village.device_id, records=[other])
    assert refused.value.code == "record_device_mismatch"
    with pytest.raises(NotFound) as not_found:
        offline.sync(village.led, device_id=uuid.uuid4(), records=[one])
    assert not_found.value.code == "device_not_found"
    assert village.stored_records() == 0


def test_a_batch_has_a_size_limit(village: Village, monkeypatch: pytest.MonkeyPatch) -> None:
    village.register(0)
    monkeypatch.setattr(offline, "SYNC_BATCH_MAX", 2)
    # Two records of a device with no allowance: both become exceptions, which is enough
    # to show that two are taken.
    report = offline.sync(
        village.led,
        device_id=village.device_id,
        records=[village.record(1, 100), village.record(2, 100)],
    )
    assert len(report.records) == 2
    with pytest.raises(Refused) as refused:
        offline.sync(
            village.led,
            device_id=village.device_id,
            records=[village.record(seq, 100) for seq in (3, 4, 5)],
        )
    assert refused.value.code == "batch_too_large"


def test_an_empty_batch_answers_an_empty_report_and_writes_nothing(village: Village) -> None:
    village.register(1_000)
    report = offline.sync(village.led, device_id=village.device_id, records=[])
    assert (report.records, report.stored_now) == ((), 0)
    assert village.events_of(events.OFFLINE_SYNCED) == []


# -- records that can no longer apply ---------------------------------------------------


def test_a_cash_in_beyond_the_allowance_becomes_an_exception_with_an_event(
    village: Village,
) -> None:
    village.register(5_000)
    too_big = village.record(1, 5_001)
    report = offline.sync(village.led, device_id=village.device_id, records=[too_big])
    [outcome] = report.records
    assert (outcome.state, outcome.reason, outcome.cash_operation_id) == (
        RecordState.EXCEPTION,
        "allowance_spent",
        None,
    )
    assert (report.applied, report.exceptions, report.stored_now) == (0, 1, 1)
    # Nothing moved: the hold is whole, the wallet untouched.
    assert village.float_.debits_pending == 5_000
    assert village.float_.debits_posted == 0
    assert village.account(village.villager.account(Role.WALLET)).credits_posted == 0
    [event] = village.events_of(events.OFFLINE_EXCEPTION)
    assert event.subject_id == too_big.record.record_id
    assert event.payload["reason"] == "allowance_spent"
    assert event.payload["amount_minor"] == 5_001
    [synced] = village.events_of(events.OFFLINE_SYNCED)
    assert synced.payload["exceptions"] == 1
    assert offline.list_exceptions(village.led, agent_id=village.agent.id) == [outcome]
    assert offline.get_record(village.led, record_id=too_big.record.record_id) == outcome
    assert offline.get_device(village.led, device_id=village.device_id).last_seq == 1
    assert village.led.check_integrity().ok


def test_records_naming_another_agent_or_currency_become_exceptions(village: Village) -> None:
    village.register(5_000)
    batch = [
        village.record(1, 100, agent_id=uuid.uuid4()),
        village.record(2, 100, currency="UGX"),
    ]
    report = offline.sync(village.led, device_id=village.device_id, records=batch)
    assert [r.reason for r in report.records] == ["record_agent_mismatch", "currency_mismatch"]
    assert [r.agent_id for r in report.records] == [village.agent.id] * 2
    assert len(village.events_of(events.OFFLINE_EXCEPTION)) == 2


def test_a_resent_batch_of_exceptions_answers_the_same_and_writes_nothing(
    village: Village,
) -> None:
    village.register(0)
    batch = [village.record(1, 100), village.record(2, 200)]
    first = offline.sync(village.led, device_id=village.device_id, records=batch)
    again = offline.sync(village.led, device_id=village.device_id, records=batch)
    assert again.records == first.records
    assert (first.stored_now, again.stored_now, again.replayed) == (2, 0, 2)
    assert len(village.events_of(events.OFFLINE_EXCEPTION)) == 2
    assert len(village.events_of(events.OFFLINE_SYNCED)) == 1
    # The stored record sent again with other content is a conflict, its seq is taken.
    changed = village.record(1, 100, record_id=batch[0].record.record_id, villager_id=uuid.uuid4())
    with pytest.raises(Conflict) as conflict:
        offline.sync(village.led, device_id=village.device_id, records=[changed])
    assert conflict.value.code == "record_exists_different"
    with pytest.raises(Conflict) as conflict:
        offline.sync(village.led, device_id=village.device_id, records=[village.record(2, 5)])
    assert conflict.value.code == "record_seq_reused"
    # Stored records first, then the next new one: the new one is taken.
    third = village.record(3, 300)
    report = offline.sync(village.led, device_id=village.device_id, records=[*batch, third])
    assert (report.stored_now, report.replayed) == (1, 2)
    assert report.records[:2] == first.records


def test_exceptions_page_by_cursor_and_by_agent(village: Village) -> None:
    village.register(0)
    batch = [village.record(seq, 100 * seq) for seq in range(1, 6)]
    offline.sync(village.led, device_id=village.device_id, records=batch)
    page = offline.list_exceptions(village.led, limit=2)
    rest = offline.list_exceptions(village.led, after=page[-1].record_id, limit=10)
    assert [r.seq for r in page + rest] == [1, 2, 3, 4, 5]
    assert offline.list_exceptions(village.led, agent_id=uuid.uuid4()) == []
    assert offline.list_exceptions(village.led, after=uuid.uuid4()) == []
    for bad in (0, offline.EXCEPTIONS_PAGE_MAX + 1):
        with pytest.raises(ValueError):
            offline.list_exceptions(village.led, limit=bad)
    assert len(offline.list_exceptions(village.led, limit=offline.EXCEPTIONS_PAGE_MAX)) == 5


def test_two_syncs_of_one_batch_at_once_store_each_record_once(
    village: Village, clock: Clock
) -> None:
    """A phone on a flaky line sends the same batch twice at once: two transactions race
    on the device's row; each record is stored once and both answers agree."""
    village.register(0)
    batch = [village.record(seq, 100 * seq) for seq in range(1, 7)]
    answers: list[object] = []
    barrier = threading.Barrier(2)

    def racer() -> None:
        led = open_ledger(village.led.url, clock=clock)
        try:
            barrier.wait()
            answers.append(offline.sync(led, device_id=village.device_id, records=batch))
        except Exception as exc:  # collected, then asserted below
            answers.append(exc)
        finally:
            led.close()

    threads = [threading.Thread(target=racer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reports = [a for a in answers if isinstance(a, offline.SyncReport)]
    assert len(reports) == 2, answers
    assert reports[0].records == reports[1].records
    assert sum(r.stored_now for r in reports) == 6
    assert village.stored_records() == 6
    assert len(village.events_of(events.OFFLINE_EXCEPTION)) == 6
    assert offline.get_device(village.led, device_id=village.device_id).last_seq == 6
    assert village.led.check_integrity().ok


def test_a_sync_cut_off_mid_batch_keeps_what_it_stored_and_a_resend_stores_the_rest(
    village: Village, monkeypatch: pytest.MonkeyPatch
) -> None:
    village.register(0)
    batch = [village.record(seq, 100 * seq) for seq in range(1, 6)]
    real_apply = offline._apply_one
    calls = 0

    def power_cut(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the phone's connection dropped")
        return real_apply(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(offline, "_apply_one", power_cut)
    with pytest.raises(RuntimeError):
        offline.sync(village.led, device_id=village.device_id, records=batch)
    monkeypatch.undo()
    assert village.stored_records() == 2
    report = offline.sync(village.led, device_id=village.device_id, records=batch)
    assert (report.replayed, report.stored_now) == (2, 3)
    assert [r.seq for r in report.records] == [1, 2, 3, 4, 5]
    assert village.stored_records() == 5
    assert len(village.events_of(events.OFFLINE_EXCEPTION)) == 5
    assert village.led.check_integrity().ok
